//! Every SIMD table against the scalar reference kernels, on many random blocks.

mod common;

use common::{FIXTURE_TYPES, random_activations, random_weights, rng};
use lingqiao_kernels::{
    GgmlType, Kernels, dequantize_row, isa, kquant_reorder_bound, vec_dot_type,
};

/// How a table's kernel for `ty` must relate to the scalar one.
#[derive(Clone, Copy, PartialEq)]
enum Agreement {
    /// Bit for bit: the K-quant kernels that keep the scalar kernel's exact per-block integer
    /// sums and its float expression (AVX2's and every aarch64 table's, and Q2_K/Q3_K
    /// everywhere).
    Exact,
    /// The same exact integer block sums, added in another f32 order (the AVX-512 Q4_K, Q5_K
    /// and Q6_K kernels accumulate in lanes): within `kquant_reorder_bound`.
    Reordered,
    /// Everything else accumulates in SIMD lanes (ggml's order, not scalar's): within a
    /// relative 1e-5 of sum |w_i x_i|.
    Lanes,
}

fn agreement(table: &Kernels, ty: GgmlType) -> Agreement {
    match ty {
        GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K if table.isa == "avx512" => {
            Agreement::Reordered
        }
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
            Agreement::Exact
        }
        _ => Agreement::Lanes,
    }
}

fn tables() -> Vec<&'static Kernels> {
    Kernels::simd_tables()
}

#[test]
fn a_simd_table_exists_where_the_cpu_has_avx2() {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        assert_eq!(Kernels::avx2().is_some(), avx2);
        // A table whose probe fails is left out silently; here that is a bug. (Where CPUID
        // claims more than the machine runs, this test is the place that says so.)
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni");
        assert_eq!(Kernels::avx512().is_some(), avx512);
        if std::env::var("LINGQIAO_FORCE_SCALAR").is_ok_and(|v| v == "1") {
            assert_eq!(isa(), "scalar");
        } else if avx2 {
            assert_ne!(isa(), "scalar");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // Advanced SIMD is part of every ARMv8-A core.
        assert!(Kernels::neon().is_some(), "the NEON table failed its probe");
        let dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
        assert_eq!(Kernels::dotprod().is_some(), dotprod);
        let i8mm = dotprod && std::arch::is_aarch64_feature_detected!("i8mm");
        assert_eq!(Kernels::i8mm().is_some(), i8mm);
        if std::env::var("LINGQIAO_FORCE_SCALAR").is_ok_and(|v| v == "1") {
            assert_eq!(isa(), "scalar");
        } else if std::env::var("LINGQIAO_ISA").is_err() {
            let best = if i8mm {
                "i8mm"
            } else if dotprod {
                "dotprod"
            } else {
                "neon"
            };
            assert_eq!(isa(), best);
        }
    }
    println!("dispatch picked {}", isa());
}

#[test]
fn simd_matches_scalar_for_every_type() {
    let tables = tables();
    assert!(
        !tables.is_empty() || !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")),
        "no SIMD table on this CPU"
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
                let agree = agreement(table, ty);
                if agree == Agreement::Exact {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {ty} n={n}: {got} vs scalar {want}",
                        table.isa
                    );
                    continue;
                }
                if agree == Agreement::Reordered {
                    let bound = kquant_reorder_bound(ty, n, &w, &xq).unwrap();
                    let err = (got as f64 - want as f64).abs();
                    worst = worst.max(err / bound);
                    assert!(
                        err <= bound,
                        "{} {ty} n={n}: {got} vs scalar {want} (diff {err:e}, bound {bound:e})",
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
                match agreement(table, ty) {
                    Agreement::Exact => "bit-identical".to_string(),
                    Agreement::Reordered => format!("max diff {worst:.3} of the bound"),
                    Agreement::Lanes => format!("max rel diff {worst:.2e}"),
                }
            );
        }
    }
}

#[test]
fn prefetching_kernels_equal_single_ones_on_random_data() {
    let mut r = rng(23);
    let mut checked = 0;
    for table in tables() {
        for ty in FIXTURE_TYPES {
            let Some(pf) = table.vec_dot_pf_fn(ty) else {
                continue;
            };
            for trial in 0..40 {
                let n = ty.block_size() * (1 + trial % 40);
                let w = random_weights(ty, n, &mut r);
                let (_, x) = random_activations(ty, n, &mut r);
                let want = table.vec_dot(ty, n, &w, &x);
                // The region to prefetch: none, shorter than the row, or as long.
                let other = random_weights(ty, n, &mut r);
                for region in [&other[..0], &other[..other.len() / 3], &other[..]] {
                    let got = pf(n, &w, &x, region);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {ty} n={n} region {}: {got} vs vec_dot {want}",
                        table.isa,
                        region.len()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 0 || Kernels::avx512().is_none(),
        "the AVX-512 table has prefetching K-quant kernels"
    );
}

/// Every four-row kernel (decoding's) gives, for each of its rows, the bits of the table's
/// one-row kernel on that row: a token's result must not depend on how its rows were
/// grouped. Rows of every length up to 40 blocks, with a gap between rows (row_bytes larger
/// than the row) as well as without.
#[test]
fn four_row_kernels_equal_single_ones_on_random_data() {
    let mut r = rng(29);
    let mut checked = 0;
    for table in tables() {
        for ty in FIXTURE_TYPES {
            let Some(r4) = table.vec_dot_r4_fn(ty) else {
                continue;
            };
            for trial in 0..60 {
                let n = ty.block_size() * (1 + trial % 40);
                let rows: Vec<Vec<u8>> = (0..4).map(|_| random_weights(ty, n, &mut r)).collect();
                let (_, x) = random_activations(ty, n, &mut r);
                let gap = if trial % 2 == 0 { 0 } else { 64 };
                let rb = rows[0].len() + gap;
                let mut w = vec![0u8; 4 * rb];
                for (i, row) in rows.iter().enumerate() {
                    w[i * rb..i * rb + row.len()].copy_from_slice(row);
                }
                let mut got = [0f32; 4];
                r4(n, &w, rb, &x, &rows[0], &mut got);
                for (i, row) in rows.iter().enumerate() {
                    let want = table.vec_dot(ty, n, row, &x);
                    assert_eq!(
                        got[i].to_bits(),
                        want.to_bits(),
                        "{} {ty} n={n} row {i}: {} vs vec_dot {want}",
                        table.isa,
                        got[i]
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0 || Kernels::avx2().is_none(),
        "the AVX2 table has four-row kernels"
    );
}

/// The tables that have four-token kernels, and the types they have them for.
fn x4_cases() -> Vec<(&'static Kernels, GgmlType)> {
    let mut cases = Vec::new();
    for table in tables() {
        for ty in FIXTURE_TYPES {
            if table.vec_dot_x4_fn(ty).is_some() {
                cases.push((table, ty));
            }
        }
    }
    cases
}

/// `x4` on the four rows of `x` against `vec_dot` on each, bit for bit.
fn assert_x4_matches_single(
    table: &Kernels,
    ty: GgmlType,
    n: usize,
    w: &[u8],
    x: &[u8],
    what: &str,
) {
    let x_row = x.len() / 4;
    let mut four = [0f32; 4];
    table.vec_dot_x4_fn(ty).unwrap()(n, w, x, &mut four);
    for (j, got) in four.iter().enumerate() {
        let want = table.vec_dot(ty, n, w, &x[j * x_row..(j + 1) * x_row]);
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{} {ty} n={n} {what} row {j}: x4 {got} vs vec_dot {want}",
            table.isa
        );
    }
}

#[test]
fn four_token_kernels_equal_single_ones_on_random_data() {
    let cases = x4_cases();
    assert!(
        !cases.is_empty() || !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")),
        "no four-token kernels on this CPU"
    );
    let mut r = rng(21);
    for (table, ty) in cases {
        for trial in 0..60 {
            // Up to 20 blocks: every chunk tail of the 32-element kernels; float rows get
            // lengths that are not multiples of the SIMD width.
            let n = if ty.block_size() == 1 {
                1 + (trial * 53) % 900
            } else {
                ty.block_size() * (1 + trial % 20)
            };
            let w = random_weights(ty, n, &mut r);
            let mut x = Vec::new();
            for _ in 0..4 {
                x.extend(random_activations(ty, n, &mut r).1);
            }
            assert_x4_matches_single(table, ty, n, &w, &x, "random");
        }
    }
}

#[test]
fn four_token_kernels_equal_single_ones_on_fixture_rows() {
    // The fixtures are rows of the real models (or gguf-py quantizations) with the seeded
    // activations; the four activation rows are those activations scaled and rotated.
    let act = common::activations();
    for (table, ty) in x4_cases() {
        let f = common::fixture(ty);
        let vdt = vec_dot_type(ty);
        let xrb = vdt.row_bytes(f.n as u64).unwrap() as usize;
        let mut x = vec![0u8; 4 * xrb];
        for j in 0..4 {
            let row: Vec<f32> = (0..f.n)
                .map(|i| act[(i + 97 * j) % f.n] * (1.0 + j as f32))
                .collect();
            lingqiao_kernels::quantize_row(vdt, &row, &mut x[j * xrb..(j + 1) * xrb]).unwrap();
        }
        assert_x4_matches_single(table, ty, f.n, &f.weights, &x, &f.source);
    }
}

#[test]
fn isa_names_parse_and_cap_the_choice() {
    use lingqiao_kernels::Isa;
    assert_eq!(Isa::parse("scalar"), Some(Isa::Scalar));
    assert_eq!(Isa::parse("sse4"), None);
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(Isa::parse("avx2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse(" AVX512 "), Some(Isa::Avx512));
        // Another architecture's level cannot cap this one's.
        assert_eq!(Isa::parse("neon"), None);
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(Isa::parse("neon"), Some(Isa::Neon));
        assert_eq!(Isa::parse("dotprod"), Some(Isa::Dotprod));
        assert_eq!(Isa::parse(" I8MM "), Some(Isa::I8mm));
        assert_eq!(Isa::parse("avx2"), None);
    }
    // Each level gets the best table at or below it, walking down the levels.
    let levels = Isa::LEVELS;
    for (i, &cap) in levels.iter().enumerate() {
        let want = levels[i..]
            .iter()
            .find_map(|&l| table_of(l))
            .map_or("scalar", |t| t.isa);
        assert_eq!(Kernels::best_up_to(cap).isa, want, "cap {cap:?}");
    }
    assert_eq!(Kernels::best_up_to(Isa::Scalar).isa, "scalar");
}

fn table_of(l: lingqiao_kernels::Isa) -> Option<&'static Kernels> {
    use lingqiao_kernels::Isa;
    match l {
        Isa::Scalar => Some(Kernels::scalar()),
        Isa::Avx2 => Kernels::avx2(),
        Isa::Avx512 => Kernels::avx512(),
        Isa::Neon => Kernels::neon(),
        Isa::Dotprod => Kernels::dotprod(),
        Isa::I8mm => Kernels::i8mm(),
    }
}

/// Prints the table the dispatch picked (for [`dispatch_honours_lingqiao_isa`], which runs
/// this test binary again with the environment set).
#[test]
fn report_isa() {
    println!("picked: {}", isa());
}

#[test]
fn dispatch_honours_lingqiao_isa() {
    use lingqiao_kernels::Isa;
    let exe = std::env::current_exe().unwrap();
    for &cap in Isa::LEVELS {
        let value = cap.name();
        let out = std::process::Command::new(&exe)
            .args(["--exact", "report_isa", "--nocapture", "--test-threads=1"])
            .env("LINGQIAO_ISA", value)
            .env_remove("LINGQIAO_FORCE_SCALAR")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The harness prints "test report_isa ... " on the same line.
        let picked = stdout
            .split("picked: ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no report in {stdout}"));
        assert_eq!(picked, Kernels::best_up_to(cap).isa, "LINGQIAO_ISA={value}");
    }
    let out = std::process::Command::new(&exe)
        .args(["--exact", "report_isa", "--nocapture"])
        .env("LINGQIAO_ISA", Isa::LEVELS[0].name())
        .env("LINGQIAO_FORCE_SCALAR", "1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("picked: scalar"));
}
