//! Prints the token ids and pieces of a text: `cargo run -p lingqiao-tokenizer --example
//! tokenize -- model.gguf "text" [--special]`.

use lingqiao_tokenizer::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(text)) = (args.first(), args.get(1)) else {
        eprintln!("usage: tokenize MODEL.gguf TEXT [--special]");
        std::process::exit(2);
    };
    let special = args.iter().any(|a| a == "--special");
    let gguf = lingqiao_gguf::GgufFile::open(path)?;
    let tok = Tokenizer::from_gguf(gguf.metadata())?;
    let ids = tok.encode(text, special, special);
    println!("{ids:?}");
    for id in ids {
        let piece = tok.token_to_piece(id, true);
        println!("{id:>8} {:?}", String::from_utf8_lossy(&piece));
    }
    Ok(())
}
