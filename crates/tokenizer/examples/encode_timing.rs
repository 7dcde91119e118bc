//! Times loading a tokenizer and encoding a text file, and measures the resident memory the
//! tokenizer adds:
//! `cargo run --release -p lingqiao-tokenizer --example encode_timing -- model.gguf file.txt`.
//!
//! Memory is `VmRSS` / `VmHWM` from `/proc/self/status` (Linux) before and after
//! `Tokenizer::from_gguf`, with the file mapped as the runtime maps it. One model per process:
//! the allocator keeps freed memory, so a second build would be measured on a warmer heap.

use std::time::Instant;

use lingqiao_tokenizer::Tokenizer;

/// A `kB` field of `/proc/self/status` (e.g. "VmRSS:"), in MB; None off Linux.
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: encode_timing MODEL.gguf TEXT_FILE");
        std::process::exit(2);
    };
    let t0 = Instant::now();
    let gguf = lingqiao_gguf::GgufFile::open(model)?;
    let rss0 = status_mb("VmRSS:");
    let t1 = Instant::now();
    let tok = Tokenizer::from_gguf(gguf.metadata())?;
    let t2 = Instant::now();
    let (rss1, hwm) = (status_mb("VmRSS:"), status_mb("VmHWM:"));
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
    if let (Some(rss0), Some(rss1), Some(hwm)) = (rss0, rss1, hwm) {
        println!(
            "tokenizer memory: vocab {}, RSS +{:.1} MB after the build, peak +{:.1} MB",
            tok.n_vocab(),
            rss1 - rss0,
            hwm - rss0
        );
    }
    Ok(())
}
