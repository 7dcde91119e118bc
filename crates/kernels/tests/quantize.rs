//! The weight quantizers ([`quantize_weights`]) against independent references, from the
//! fixtures in testdata/quantize made by tools/reference/gen_quantize.py:
//! gguf-py's bytes for the float and legacy types, ggml's own `ggml_quantize_chunk` (the
//! C library llama_cpp_python ships) for the K-quants.
//!
//! `cargo test --release -p lingqiao-kernels --test quantize -- --nocapture` prints the
//! K-quant RMSE table.

use lingqiao_kernels::{
    GgmlType, KernelError, WEIGHT_TYPES, dequantize_row, is_weight_quant_type, quantize_weights,
    row_bytes,
};
use std::path::PathBuf;

const GGUF_PY_TYPES: [GgmlType; 7] = [
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
];
const K_TYPES: [GgmlType; 5] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/quantize")
}

fn read(name: &str) -> Vec<u8> {
    let p = dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "fixture {} missing ({e}); run tools/reference/gen_quantize.py",
            p.display()
        )
    })
}

fn index() -> serde_json::Value {
    serde_json::from_slice(&read("index.json")).expect("index.json parses")
}

/// One data class: its rows and the fixture entries of its types.
struct Class {
    name: String,
    n_per_row: usize,
    rows: Vec<Vec<f32>>,
    types: serde_json::Value,
}

fn classes() -> Vec<Class> {
    let idx = index();
    let n_per_row = idx["n_per_row"].as_u64().unwrap() as usize;
    let mut out = Vec::new();
    for (name, c) in idx["classes"].as_object().unwrap() {
        let data: Vec<f32> = read(c["input"].as_str().unwrap())
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(data.len(), n_per_row * c["rows"].as_u64().unwrap() as usize);
        out.push(Class {
            name: name.clone(),
            n_per_row,
            rows: data.chunks_exact(n_per_row).map(<[f32]>::to_vec).collect(),
            types: c["types"].clone(),
        });
    }
    out
}

impl Class {
    fn reference(&self, ty: GgmlType) -> Vec<u8> {
        read(self.types[ty.name()]["file"].as_str().unwrap())
    }

    /// Ours, one `quantize_weights` call per row (as the quantize command calls it).
    fn ours(&self, ty: GgmlType) -> Vec<u8> {
        let rb = row_bytes(ty, self.n_per_row).unwrap();
        let mut out = vec![0u8; rb * self.rows.len()];
        for (row, dst) in self.rows.iter().zip(out.chunks_exact_mut(rb)) {
            quantize_weights(ty, row, dst).unwrap();
        }
        out
    }

    fn input(&self) -> Vec<f32> {
        self.rows.concat()
    }
}

/// Indices of the blocks of `ty` where `a` and `b` differ.
fn differing_blocks(ty: GgmlType, a: &[u8], b: &[u8]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    a.chunks_exact(ty.type_size())
        .zip(b.chunks_exact(ty.type_size()))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .collect()
}

/// Root mean square of dequantize(q) - x, dequantized with our dequantizer (itself checked
/// against gguf-py in tests/reference.rs), in f64.
fn rmse(ty: GgmlType, q: &[u8], x: &[f32]) -> f64 {
    let mut y = vec![0f32; x.len()];
    dequantize_row(ty, q, &mut y).unwrap();
    let sum: f64 = x
        .iter()
        .zip(&y)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    (sum / x.len() as f64).sqrt()
}

#[test]
fn float_and_legacy_types_are_byte_identical_to_gguf_py() {
    for c in classes() {
        for ty in GGUF_PY_TYPES {
            let (ours, reference) = (c.ours(ty), c.reference(ty));
            let diff = differing_blocks(ty, &ours, &reference);
            assert!(
                diff.is_empty(),
                "{} {ty}: {} of {} blocks differ from gguf-py, first block {}",
                c.name,
                diff.len(),
                ours.len() / ty.type_size(),
                diff[0]
            );
            println!(
                "{:8} {ty:5} {} blocks identical to gguf-py",
                c.name,
                ours.len() / ty.type_size()
            );
        }
    }
}

/// The K-quants: our round-trip error must be no worse than ggml's on the same data (to a
/// relative 1e-3), class by class. The bytes are identical too (our helpers repeat ggml's
/// f32 operations in order and its C library is built without fused multiply-adds), which is
/// asserted as well: any drift from `quantize_row_q*_K_ref` shows up here first. The
/// `extreme` class (scales overflowing f16, subnormal inputs) has no finite RMSE and is
/// compared by bytes alone.
#[test]
fn kquants_error_no_worse_than_ggml() {
    println!("class    type  RMSE ours       RMSE ggml       ours/ggml  identical blocks");
    for c in classes() {
        let x = c.input();
        for ty in K_TYPES {
            let (ours, ggml) = (c.ours(ty), c.reference(ty));
            let diff = differing_blocks(ty, &ours, &ggml);
            let blocks = ours.len() / ty.type_size();
            let (e_ours, e_ggml) = (rmse(ty, &ours, &x), rmse(ty, &ggml, &x));
            println!(
                "{:8} {ty:5} {e_ours:.9e} {e_ggml:.9e} {:9.6}  {}/{blocks}",
                c.name,
                e_ours / e_ggml,
                blocks - diff.len()
            );
            if let Some(fixture_rmse) = c.types[ty.name()]["rmse"].as_f64() {
                // The fixture's RMSE was computed from gguf-py's dequantization of ggml's
                // bytes: agreeing with it checks our reading of the fixture.
                assert!(
                    (e_ggml - fixture_rmse).abs() <= 1e-6 * fixture_rmse,
                    "{} {ty}: ggml's RMSE {e_ggml} here, {fixture_rmse} in the fixture",
                    c.name
                );
                assert!(
                    e_ours <= e_ggml * (1.0 + 1e-3),
                    "{} {ty}: RMSE ours {e_ours} > ggml's {e_ggml}",
                    c.name
                );
            }
            assert!(
                diff.is_empty(),
                "{} {ty}: {} of {blocks} blocks differ from ggml's, first block {}",
                c.name,
                diff.len(),
                diff[0]
            );
        }
    }
}

/// ggml's tests/test-quantize-fns.cpp: quantize 4096 values of 0.1 + 2 cos(i) and bound the
/// round trip's `sqrt(sum of squared errors) / n` by its constants (0.002; 2-bit 0.0075,
/// 3-bit 0.0040).
#[test]
fn round_trip_error_within_ggml_test_bounds() {
    let n = 32 * 128;
    let x: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect();
    for ty in WEIGHT_TYPES {
        let bound = match ty {
            GgmlType::Q2_K => 0.0075,
            GgmlType::Q3_K => 0.0040,
            _ => 0.002,
        };
        let mut q = vec![0u8; row_bytes(ty, n).unwrap()];
        quantize_weights(ty, &x, &mut q).unwrap();
        let mut y = vec![0f32; n];
        dequantize_row(ty, &q, &mut y).unwrap();
        let sum: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let err = sum.sqrt() / n as f64;
        println!("{ty:5} test-quantize-fns error {err:.3e} (bound {bound})");
        assert!(err < bound, "{ty}: error {err} >= {bound}");
    }
}

/// Rows split anywhere at block boundaries quantize to the same bytes: the quantize command
/// may cut a tensor into chunks for threads.
#[test]
fn splitting_a_row_at_block_boundaries_changes_nothing() {
    let c = classes().into_iter().find(|c| c.name == "heavy").unwrap();
    let x = &c.rows[0];
    for ty in WEIGHT_TYPES {
        let whole = {
            let mut q = vec![0u8; row_bytes(ty, x.len()).unwrap()];
            quantize_weights(ty, x, &mut q).unwrap();
            q
        };
        let cut = ty.block_size() * 3;
        let (a, b) = x.split_at(cut);
        let mut q = vec![0u8; whole.len()];
        let (qa, qb) = q.split_at_mut(row_bytes(ty, cut).unwrap());
        quantize_weights(ty, a, qa).unwrap();
        quantize_weights(ty, b, qb).unwrap();
        assert_eq!(q, whole, "{ty}");
    }
}

#[test]
fn weight_types_are_exactly_the_quantizable_ones() {
    for id in 0..64u32 {
        let Some(ty) = GgmlType::from_u32(id) else {
            continue;
        };
        let n = ty.block_size();
        let mut dst = vec![0u8; ty.type_size()];
        let r = quantize_weights(ty, &vec![0.5f32; n], &mut dst);
        assert_eq!(is_weight_quant_type(ty), WEIGHT_TYPES.contains(&ty), "{ty}");
        assert_eq!(r.is_ok(), is_weight_quant_type(ty), "{ty}: {r:?}");
        if !is_weight_quant_type(ty) {
            assert!(matches!(r, Err(KernelError::Unsupported { .. })), "{ty}");
        }
    }
}

#[test]
fn bad_lengths_are_errors() {
    for ty in WEIGHT_TYPES {
        let bs = ty.block_size();
        let rb = ty.type_size();
        let x = vec![0.25f32; 2 * bs];
        let mut dst = vec![0u8; 2 * rb];
        if bs > 1 {
            let r = quantize_weights(ty, &x[..2 * bs - 1], &mut dst);
            assert!(matches!(r, Err(KernelError::NotWholeBlocks { .. })), "{ty}");
        }
        for len in [0, 2 * rb - 1, 2 * rb + 1, 3 * rb] {
            let mut dst = vec![0u8; len];
            let r = quantize_weights(ty, &x, &mut dst);
            assert!(
                matches!(r, Err(KernelError::ByteLength { .. })),
                "{ty} {len}"
            );
        }
        // Empty input is zero blocks: fine.
        quantize_weights(ty, &[], &mut []).unwrap();
    }
}

/// ggml asserts on non-finite weights; we return an error naming the element and leave the
/// destination untouched.
#[test]
fn non_finite_input_is_an_error_naming_the_element() {
    for ty in WEIGHT_TYPES {
        let n = 2 * ty.block_size().max(32);
        for (bad, name) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "+inf"),
            (f32::NEG_INFINITY, "-inf"),
        ] {
            let mut x = vec![0.1f32; n];
            x[n - 3] = bad;
            let mut dst = vec![0xA5u8; row_bytes(ty, n).unwrap()];
            let r = quantize_weights(ty, &x, &mut dst);
            assert_eq!(
                r,
                Err(KernelError::NonFinite {
                    index: n - 3,
                    value: name
                }),
                "{ty}"
            );
            assert!(dst.iter().all(|&b| b == 0xA5), "{ty}: wrote on error");
        }
    }
}
