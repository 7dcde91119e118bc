//! Helpers shared by the quantize tests: the model cache, the fixtures of
//! tools/reference/gen_quantize_golden.py (testdata/quantize-files/), and quantized files
//! made once per test binary.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use lingqiao_quantize::{QuantizeOptions, Target, quantize_file};
use sha2::{Digest, Sha256};

// The model cache lookup of the model tests, not a second copy of it.
#[path = "../../../model/tests/common/mod.rs"]
mod model_common;
pub use model_common::model_file;

pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

pub fn fixture(rel: &str) -> serde_json::Value {
    let path = testdata("quantize-files").join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn sha256_file(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: a test's own output file, not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    sha256_hex(&map)
}

/// The tests' directory under cargo's scratch space. A fixed name, so each run replaces the
/// previous run's files (a few hundred MB) instead of adding to them.
pub fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quantize-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn opts(target: Target) -> QuantizeOptions {
    QuantizeOptions {
        target,
        threads: 2,
        pure: false,
        progress: false,
    }
}

/// smollm2's F16 "original", made the way the fixture script made the file llama-quantize
/// was run on; its sha256 must be that file's.
pub fn smollm2_f16() -> PathBuf {
    static F16: OnceLock<PathBuf> = OnceLock::new();
    F16.get_or_init(|| {
        let out = scratch().join("smollm2-f16.gguf");
        let src = model_file("SmolLM2-135M-Instruct.Q4_1.gguf");
        let r = quantize_file(&src, &out, &opts(Target::F16)).unwrap();
        assert!(r.requantized);
        let want = fixture("smollm2/f16.json")["sha256"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            sha256_file(&out),
            want,
            "our F16 smollm2 is not the file llama-quantize was given"
        );
        out
    })
    .clone()
}

/// smollm2's F16 quantized by us to `target`, made once per test binary.
pub fn smollm2_ours(target: Target) -> PathBuf {
    static MADE: OnceLock<Mutex<HashMap<Target, PathBuf>>> = OnceLock::new();
    let f16 = smollm2_f16();
    let mut made = MADE.get_or_init(Default::default).lock().unwrap();
    made.entry(target)
        .or_insert_with(|| {
            let out = scratch().join(format!("smollm2-{target}.gguf"));
            quantize_file(&f16, &out, &opts(target)).unwrap();
            out
        })
        .clone()
}
