//! Times loading a tokenizer and encoding a text file:
//! `cargo run --release -p lingqiao-tokenizer --example encode_timing -- model.gguf file.txt`.

use std::time::Instant;

use lingqiao_tokenizer::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: encode_timing MODEL.gguf TEXT_FILE");
        std::process::exit(2);
    };
    let t0 = Instant::now();
    let gguf = lingqiao_gguf::GgufFile::open(model)?;
    let t1 = Instant::now();
    let tok = Tokenizer::from_gguf(gguf.metadata())?;
    let t2 = Instant::now();
    let text = std::fs::read_to_string(file)?;
    let ids = tok.encode(&text, false, false);
    let t3 = Instant::now();
    let back = tok.decode(&ids, false);
    let t4 = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    println!(
        "open {:.0} ms, build {:.0} ms, encode {} bytes -> {} ids in {:.1} ms, decode {:.1} ms (round trip {})",
        ms(t0, t1),
        ms(t1, t2),
        text.len(),
        ids.len(),
        ms(t2, t3),
        ms(t3, t4),
        if back == text { "exact" } else { "differs" }
    );
    Ok(())
}
