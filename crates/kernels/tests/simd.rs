//! Every SIMD table against the scalar reference kernels, on many random blocks.

mod common;

use common::{FIXTURE_TYPES, random_activations, random_weights, rng};
use lingqiao_kernels::{GgmlType, Kernels, dequantize_row, isa, vec_dot_type};

/// K-quant kernels keep exact per-block integer sums and the scalar float expression, so they
/// must be bit-identical; the others accumulate in SIMD lanes (ggml's order, not scalar's).
fn exact(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K
    )
}

fn tables() -> Vec<&'static Kernels> {
    let mut t = Vec::new();
    t.extend(Kernels::avx2());
    t.extend(Kernels::avx512());
    t
}

#[test]
fn a_simd_table_exists_where_the_cpu_has_avx2() {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        assert_eq!(Kernels::avx2().is_some(), avx2);
        if std::env::var("LINGQIAO_FORCE_SCALAR").is_ok_and(|v| v == "1") {
            assert_eq!(isa(), "scalar");
        } else if avx2 {
            assert_ne!(isa(), "scalar");
        }
    }
    println!("dispatch picked {}", isa());
}

#[test]
fn simd_matches_scalar_for_every_type() {
    let tables = tables();
    assert!(
        !tables.is_empty() || !cfg!(target_arch = "x86_64"),
        "no SIMD table on this x86-64 CPU"
    );
    let mut r = rng(7);
    for table in tables {
        for ty in FIXTURE_TYPES {
            let bs = ty.block_size().max(32);
            let mut worst = 0f64;
            for trial in 0..300 {
                // Float rows also get lengths that are not multiples of the SIMD width.
                let n = if ty.block_size() == 1 {
                    1 + (trial * 37) % 700
                } else {
                    bs * (1 + trial % 8)
                };
                let w = random_weights(ty, n, &mut r);
                let (_, xq) = random_activations(ty, n, &mut r);
                let want = Kernels::scalar().vec_dot(ty, n, &w, &xq);
                let got = table.vec_dot(ty, n, &w, &xq);
                if exact(ty) {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {ty} n={n}: {got} vs scalar {want}",
                        table.isa
                    );
                    continue;
                }
                // Relative to sum |w_i x_i|, the scale at which rounding happens.
                let mut wd = vec![0f32; n];
                let mut xd = vec![0f32; n];
                dequantize_row(ty, &w, &mut wd).unwrap();
                dequantize_row(vec_dot_type(ty), &xq, &mut xd).unwrap();
                let scale: f64 = wd
                    .iter()
                    .zip(&xd)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                let err = (got as f64 - want as f64).abs() / scale.max(1e-30);
                worst = worst.max(err);
                assert!(
                    err <= 1e-5,
                    "{} {ty} n={n}: {got} vs scalar {want} (rel {err:e})",
                    table.isa
                );
            }
            println!(
                "{} {ty:5} {}",
                table.isa,
                if exact(ty) {
                    "bit-identical".to_string()
                } else {
                    format!("max rel diff {worst:.2e}")
                }
            );
        }
    }
}
