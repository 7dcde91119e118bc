//! Our kernels against gguf-py (an independent implementation of the block formats).

mod common;

use common::{FIXTURE_TYPES, activations, bytes, fixture};
use lingqiao_kernels::tile::{ActTile, Format, TILE_ROWS, WeightTile, run_ref};
use lingqiao_kernels::{
    GgmlType, Kernels, dequantize_row, quantize_row, quantize_row_ref, scalar_vec_dot, vec_dot,
    vec_dot_type,
};

#[test]
fn dequantize_matches_gguf_py_for_every_type() {
    for ty in FIXTURE_TYPES {
        let f = fixture(ty);
        let mut out = vec![0f32; f.n];
        dequantize_row(ty, &f.weights, &mut out).unwrap();
        let exact = matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        let mut max_rel = 0f64;
        for (i, (&a, &b)) in out.iter().zip(&f.dequant).enumerate() {
            if exact {
                assert_eq!(a.to_bits(), b.to_bits(), "{ty} element {i}: {a} vs {b}");
            }
            let rel = (a as f64 - b as f64).abs() / (b.abs() as f64).max(1e-30);
            if a != b {
                max_rel = max_rel.max(rel);
            }
            assert!(rel <= 1e-6, "{ty} element {i}: ours {a}, gguf-py {b}");
        }
        println!("{ty:5} max relative error {max_rel:.3e}  ({})", f.source);
    }
}

#[test]
fn dequantize_rejects_bad_lengths() {
    let f = fixture(GgmlType::Q4_K);
    let mut out = vec![0f32; f.n - 1];
    assert!(dequantize_row(GgmlType::Q4_K, &f.weights, &mut out).is_err());
    let mut out = vec![0f32; f.n];
    assert!(dequantize_row(GgmlType::Q4_K, &f.weights[1..], &mut out).is_err());
}

#[test]
fn quantize_q8_activations_bit_exact() {
    let act = activations();
    for (ty, file) in [
        (GgmlType::Q8_0, "act.Q8_0.bin"),
        (GgmlType::Q8_1, "act.Q8_1.bin"),
        (GgmlType::Q8_K, "act.Q8_K.bin"),
    ] {
        let expected = bytes(file);
        let mut ours = vec![0u8; expected.len()];
        quantize_row_ref(ty, &act, &mut ours).unwrap();
        let first_diff = ours.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "{ty}: first differing byte");
    }
}

/// The activation quantizers follow ggml's x86 path, checked against a numpy transcription
/// of it (tools/reference/gen_q8_x86_fixture.py) on blocks that separate it from the
/// reference path.
#[test]
fn quantize_q8_activations_match_ggml_x86_path() {
    let act: Vec<f32> = bytes("act.x86.f32.bin")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    for (ty, file) in [
        (GgmlType::Q8_0, "act.Q8_0.x86.bin"),
        (GgmlType::Q8_1, "act.Q8_1.x86.bin"),
    ] {
        let expected = bytes(file);
        let mut ours = vec![0u8; expected.len()];
        quantize_row(ty, &act, &mut ours).unwrap();
        let first_diff = ours.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "{ty}: first differing byte");
        let mut reference = vec![0u8; expected.len()];
        quantize_row_ref(ty, &act, &mut reference).unwrap();
        assert_ne!(
            reference, ours,
            "{ty}: the fixture must separate the two rounding rules"
        );
    }
}

#[test]
fn quantize_rejects_weight_types() {
    let mut dst = vec![0u8; GgmlType::Q4_K.type_size()];
    assert!(quantize_row(GgmlType::Q4_K, &[0.0; 256], &mut dst).is_err());
}

/// Per-type bound on |ours - exact| / sum |w_i x_i|, where "exact" is the f64 dot of gguf-py's
/// dequantized weights with the f32 activations. The error is that of quantizing the
/// activations to vec_dot_type: none for F32, f16 rounding for F16, bf16's 8 bits for BF16,
/// 8 bits (Q8_0/Q8_1 per 32, Q8_K per 256) for the quants. Thresholds are a few times the
/// measured errors, which are printed.
fn dot_threshold(ty: GgmlType) -> f64 {
    match ty {
        GgmlType::F32 => 1e-6,  // measured 4e-12
        GgmlType::F16 => 5e-6,  // measured 5.5e-7
        GgmlType::BF16 => 3e-4, // measured 3.1e-5
        _ => 3e-3,              // measured 1.5e-5 .. 5.1e-4 (Q6_K)
    }
}

#[test]
fn vec_dot_close_to_exact_dot_for_every_type() {
    let act = activations();
    for ty in FIXTURE_TYPES {
        let f = fixture(ty);
        let exact: f64 = f
            .dequant
            .iter()
            .zip(&act)
            .map(|(&w, &x)| w as f64 * x as f64)
            .sum();
        let scale: f64 = f
            .dequant
            .iter()
            .zip(&act)
            .map(|(&w, &x)| (w as f64 * x as f64).abs())
            .sum();
        let vdt = vec_dot_type(ty);
        let mut xq = vec![0u8; vdt.row_bytes(f.n as u64).unwrap() as usize];
        quantize_row(vdt, &act, &mut xq).unwrap();
        let mut results = vec![
            ("dispatch", vec_dot(ty, f.n, &f.weights, &xq)),
            ("scalar", scalar_vec_dot(ty, f.n, &f.weights, &xq)),
        ];
        // The prompt path's tiles: the portable reference, and the table's kernel if any.
        if let Some(tf) = Format::of(ty) {
            let mut w = WeightTile::default();
            w.pack(&tf, f.n, &f.weights, f.weights.len());
            let mut a = ActTile::default();
            a.fill(&tf, f.n, 1, &xq, xq.len());
            let mut out = [0f32; TILE_ROWS];
            run_ref(&tf, &w, &a, 0..1, &mut out);
            results.push(("tile ref", out[0]));
            if let Some(tk) = Kernels::get().tile {
                (tk.run)(&tf, &w, &a, 0..1, &mut out);
                results.push(("tile", out[0]));
            }
        }
        for (name, got) in results {
            let err = (got as f64 - exact).abs() / scale;
            println!(
                "{ty:5} {name:8} dot {got:12.6} exact {exact:12.6} normalized error {err:.2e}"
            );
            assert!(
                err <= dot_threshold(ty),
                "{ty} {name}: normalized error {err:e} > {:e}",
                dot_threshold(ty)
            );
        }
    }
}
