//! Loading the gguf-py fixtures in testdata/kernels (made by tools/reference/gen_kernel_fixtures.py).
#![allow(dead_code)]

use lingqiao_kernels::GgmlType;
use std::path::PathBuf;

/// Every weight type; each has a gguf-py fixture.
pub const FIXTURE_TYPES: [GgmlType; 13] = lingqiao_kernels::WEIGHT_TYPES;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kernels")
}

pub fn bytes(name: &str) -> Vec<u8> {
    let p = dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "fixture {} missing ({e}); run tools/reference/gen_kernel_fixtures.py",
            p.display()
        )
    })
}

pub fn f32s(name: &str) -> Vec<f32> {
    bytes(name)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub struct Fixture {
    pub ty: GgmlType,
    pub n: usize,
    pub weights: Vec<u8>,
    pub dequant: Vec<f32>,
    pub source: String,
}

pub fn index() -> serde_json::Value {
    serde_json::from_slice(&bytes("index.json")).expect("index.json parses")
}

pub fn fixture(ty: GgmlType) -> Fixture {
    let idx = index();
    let n = idx["n"].as_u64().expect("n") as usize;
    let t = &idx["types"][ty.name()];
    assert!(t.is_object(), "no fixture for {ty}");
    Fixture {
        ty,
        n,
        weights: bytes(t["weights"].as_str().unwrap()),
        dequant: f32s(t["dequant"].as_str().unwrap()),
        source: t["source"].as_str().unwrap().to_string(),
    }
}

/// The seeded activations (f32) of the fixtures.
pub fn activations() -> Vec<f32> {
    f32s("act.f32.bin")
}

use half::f16;
use lingqiao_kernels::{quantize_row, vec_dot_type};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A random row of n elements of weight type `ty`: random bits with sane scales, or random
/// normal-ish floats for the float types.
pub fn random_weights(ty: GgmlType, n: usize, r: &mut ChaCha8Rng) -> Vec<u8> {
    let floats: Vec<f32> = (0..n).map(|_| r.random_range(-2.0f32..2.0)).collect();
    if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        let mut out = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
        quantize_row(ty, &floats, &mut out).unwrap();
        return out;
    }
    let ts = ty.type_size();
    let mut out: Vec<u8> = (0..ty.row_bytes(n as u64).unwrap() as usize)
        .map(|_| r.random())
        .collect();
    for block in out.chunks_exact_mut(ts) {
        for &off in lingqiao_kernels::f16_scale_offsets(ty) {
            let v = r.random_range(-0.05f32..0.05);
            block[off..off + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
        }
    }
    out
}

/// Random activations (f32) and the same quantized to `vec_dot_type(ty)`.
pub fn random_activations(ty: GgmlType, n: usize, r: &mut ChaCha8Rng) -> (Vec<f32>, Vec<u8>) {
    let x: Vec<f32> = (0..n).map(|_| r.random_range(-3.0f32..3.0)).collect();
    let vdt = vec_dot_type(ty);
    let mut q = vec![0u8; vdt.row_bytes(n as u64).unwrap() as usize];
    quantize_row(vdt, &x, &mut q).unwrap();
    (x, q)
}
