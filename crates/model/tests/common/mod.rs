//! Helpers shared by the model tests that run real models.
#![allow(dead_code)] // each test binary uses its own subset

use lingqiao_model::Model;
use std::path::PathBuf;

/// `file` in the model cache (`$LINGQIAO_HOME/models`, default `~/.cache/lingqiao/models`),
/// which must be installed (`lingqiao pull`).
pub fn model_file(file: &str) -> PathBuf {
    let home = std::env::var_os("LINGQIAO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lingqiao")
        });
    let path = home.join("models").join(file);
    assert!(
        path.exists(),
        "{} is missing: run `lingqiao pull` first",
        path.display()
    );
    path
}

pub fn load(file: &str) -> Model {
    Model::load(model_file(file)).unwrap()
}

/// Deterministic pseudo-random token ids (a 64-bit LCG from `seed`), avoiding the first
/// 10 specials.
pub fn tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (10 + (s >> 33) as usize % (n_vocab - 10)) as u32
        })
        .collect()
}
