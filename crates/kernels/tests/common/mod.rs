//! Loading the gguf-py fixtures in testdata/kernels (made by tools/reference/gen_kernel_fixtures.py).
#![allow(dead_code)]

use lingqiao_kernels::GgmlType;
use std::path::PathBuf;

pub const FIXTURE_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

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
