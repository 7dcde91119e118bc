//! Pulls models by key with progress, for trying the mechanism by hand:
//! `cargo run -p lingqiao-fetch --example pull -- whisper-tiny-en [--force] [--verify]`.
//! With no key it lists the registry and what is installed.

use lingqiao_fetch::{PullOptions, is_installed, model_path, pull, registry, verify};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let force = args.iter().any(|a| a == "--force");
    let check = args.iter().any(|a| a == "--verify");
    let keys: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if keys.is_empty() {
        for m in registry() {
            let mark = if is_installed(m.key) { "*" } else { " " };
            println!("{mark} {:16} {}", m.key, m.description);
        }
        return Ok(());
    }
    for key in keys {
        let start = std::time::Instant::now();
        let opts = PullOptions {
            progress: true,
            force,
            ..PullOptions::default()
        };
        let path = pull(key, &opts)?;
        eprintln!(
            "{key}: {} in {:.1} s",
            path.display(),
            start.elapsed().as_secs_f64()
        );
        if check {
            verify(key)?;
            eprintln!("{key}: sha256 verified again");
        }
        debug_assert_eq!(model_path(key), Some(path));
    }
    Ok(())
}
