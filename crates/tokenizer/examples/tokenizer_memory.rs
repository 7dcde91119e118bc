//! Measures what building a tokenizer costs in resident memory, and how fast it encodes:
//! `cargo run --release -p lingqiao-tokenizer --example tokenizer_memory -- model.gguf
//! [text_file]`.
//!
//! Reads `VmRSS` / `VmHWM` from `/proc/self/status` (Linux) before and after
//! `Tokenizer::from_gguf`, with the file opened by mmap as the runtime does. With a text
//! file, its first 100 KB (repeated if shorter) are encoded 10 times. Run one model per
//! process: the allocator keeps freed memory, so a second build in the same process
//! would be measured against a warmer heap.

use std::time::Instant;

use lingqiao_tokenizer::Tokenizer;

/// A `kB` field of `/proc/self/status`, in MB; None off Linux.
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
    let Some(model) = args.first() else {
        eprintln!("usage: tokenizer_memory MODEL.gguf [TEXT_FILE]");
        std::process::exit(2);
    };
    let gguf = lingqiao_gguf::GgufFile::open(model)?;
    let rss0 = status_mb("VmRSS:").ok_or("no VmRSS in /proc/self/status")?;
    let t0 = Instant::now();
    let tok = Tokenizer::from_gguf(gguf.metadata())?;
    let build = t0.elapsed();
    let rss1 = status_mb("VmRSS:").ok_or("no VmRSS")?;
    let hwm = status_mb("VmHWM:").ok_or("no VmHWM")?;
    println!(
        "{model}: vocab {}, RSS {rss0:.1} -> {rss1:.1} MB (+{:.1} MB), peak +{:.1} MB, build {:.0} ms",
        tok.n_vocab(),
        rss1 - rss0,
        hwm - rss0,
        build.as_secs_f64() * 1e3
    );

    if let Some(file) = args.get(1) {
        let src = std::fs::read_to_string(file)?;
        if src.is_empty() {
            return Err("empty text file".into());
        }
        let mut text = String::with_capacity(100_000 + 4);
        while text.len() < 100_000 {
            for c in src.chars() {
                if text.len() >= 100_000 {
                    break;
                }
                text.push(c);
            }
        }
        let mut n_ids = 0;
        let mut best = f64::INFINITY;
        let t = Instant::now();
        for _ in 0..10 {
            let ti = Instant::now();
            n_ids = tok.encode(&text, false, true).len();
            best = best.min(ti.elapsed().as_secs_f64());
        }
        let total = t.elapsed().as_secs_f64();
        println!(
            "encode {} bytes -> {n_ids} ids: 10x in {:.1} ms (best {:.2} ms)",
            text.len(),
            total * 1e3,
            best * 1e3
        );
    }
    Ok(())
}
