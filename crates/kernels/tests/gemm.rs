//! The float32 product: every table gives the reference's bits at every shape and thread
//! count, and the reference computes the product (checked in f64).

use lingqiao_kernels::Kernels;
use lingqiao_kernels::gemm::{
    PackedF32, gemm_f32, gemm_f32_nt, gemm_f32_nt_with, gemm_f32_ref, gemm_f32_with,
};
use lingqiao_pool::ThreadPool;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The scalar table (the portable micro-kernel through the blocked driver) and every SIMD
/// table this CPU runs.
fn tables() -> Vec<&'static Kernels> {
    let mut t = vec![Kernels::scalar()];
    t.extend(Kernels::simd_tables());
    t
}

/// Values in [-1, 1), with a few exact zeros of both signs and some large and tiny ones,
/// so signed-zero sums and wide magnitude ranges are covered too.
fn values(n: usize, r: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n)
        .map(|_| match r.random_range(0..40) {
            0 => 0.0,
            1 => -0.0,
            2 => r.random_range(-1e4f32..1e4),
            3 => r.random_range(-1e-4f32..1e-4),
            _ => r.random_range(-1.0f32..1.0),
        })
        .collect()
}

fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i} is {} not {}", got[i], want[i]);
    }
}

/// Tokens x rows x cols: every combination of the small edges (tokens around the AVX2
/// kernel's 6, rows around a panel's 16, k from 1 to past one run of 256), then the sizes
/// Whisper runs with the other dimensions at edges.
fn shapes() -> Vec<(usize, usize, usize)> {
    let mut s = Vec::new();
    for t in [1, 5, 6, 7] {
        for r in [1, 15, 16, 17, 384] {
            for k in [1, 7, 384] {
                s.push((t, r, k));
            }
        }
    }
    s.extend([
        (1500, 17, 1500),
        (1500, 384, 7),
        (1500, 1, 384),
        (7, 384, 1500),
        (1, 15, 1500),
        (1500, 16, 1),
        (1500, 384, 384),
        (97, 33, 257),
        (3, 0, 5),
        (0, 5, 3),
        (4, 5, 0),
    ]);
    s
}

#[test]
fn every_table_gives_the_reference_bits_at_every_shape_and_thread_count() {
    let mut r = ChaCha8Rng::seed_from_u64(1);
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    let mut shapes = shapes();
    // And some random ones.
    for _ in 0..12 {
        shapes.push((
            r.random_range(1..200),
            r.random_range(1..80),
            r.random_range(1..700),
        ));
    }
    for (t, rows, cols) in shapes {
        let w = values(rows * cols, &mut r);
        let x = values(t * cols, &mut r);
        let mut want = vec![0f32; t * rows];
        gemm_f32_ref(&w, rows, cols, &x, t, &mut want);
        let packed = PackedF32::pack(&w, rows, cols);
        for table in tables() {
            for pool in &pools {
                let mut got = vec![f32::NAN; t * rows];
                pool.install(|| gemm_f32_with(table, &packed, &x, t, &mut got));
                let what = format!(
                    "{} {t}x{rows}x{cols}, {} threads",
                    table.isa,
                    pool.n_threads()
                );
                assert_same_bits(&got, &want, &what);
            }
        }
    }
}

#[test]
fn the_activation_product_gives_the_reference_bits_with_b_as_weights() {
    let mut r = ChaCha8Rng::seed_from_u64(2);
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    // (m, n, k): attention's shapes for one head (scores; p·v with v transposed), and edges.
    let shapes = [
        (1500, 1500, 64),
        (1500, 64, 1500),
        (1, 1, 1),
        (7, 17, 64),
        (6, 16, 300),
        (5, 33, 1),
    ];
    for (m, n, k) in shapes {
        let a = values(m * k, &mut r);
        let b = values(n * k, &mut r);
        let mut want = vec![0f32; m * n];
        gemm_f32_ref(&b, n, k, &a, m, &mut want);
        for table in tables() {
            // Scalar at the largest shapes is slow and adds nothing the other test lacks.
            if table.isa == "scalar" && m * n * k > 10_000_000 {
                continue;
            }
            for pool in &pools {
                let mut got = vec![f32::NAN; m * n];
                pool.install(|| gemm_f32_nt_with(table, &a, m, &b, n, k, &mut got));
                let what = format!("nt {} {m}x{n}x{k}, {} threads", table.isa, pool.n_threads());
                assert_same_bits(&got, &want, &what);
            }
        }
    }
}

#[test]
fn the_entry_points_use_the_selected_table() {
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let (t, rows, cols) = (13, 40, 50);
    let w = values(rows * cols, &mut r);
    let x = values(t * cols, &mut r);
    let packed = PackedF32::pack(&w, rows, cols);
    let mut want = vec![0f32; t * rows];
    gemm_f32_with(Kernels::get(), &packed, &x, t, &mut want);
    let mut got = vec![0f32; t * rows];
    gemm_f32(&packed, &x, t, &mut got);
    assert_same_bits(&got, &want, "gemm_f32");
    gemm_f32_nt(&x, t, &w, rows, cols, &mut got);
    assert_same_bits(&got, &want, "gemm_f32_nt");
}

/// The reference is the product: each element within the bound of K fused multiply-adds
/// in a chain, `gamma_K * sum_k |x_k w_k|` with gamma_K = K u / (1 - K u), u = 2^-24, of
/// the product computed in f64 (exact here to far below that bound: the products of two
/// f32 are exact in f64, and f64 sums of K <= 1500 of them err by < 1e-13 relative).
#[test]
fn the_reference_computes_the_product_within_the_rounding_bound() {
    let mut r = ChaCha8Rng::seed_from_u64(4);
    let u = f64::from(f32::EPSILON) / 2.0;
    for (t, rows, cols) in [(3, 5, 1), (7, 17, 384), (2, 9, 1500), (5, 3, 4096)] {
        let w = values(rows * cols, &mut r);
        let x = values(t * cols, &mut r);
        let mut got = vec![0f32; t * rows];
        gemm_f32_ref(&w, rows, cols, &x, t, &mut got);
        let gamma = cols as f64 * u / (1.0 - cols as f64 * u);
        for i in 0..t {
            for j in 0..rows {
                let (xs, ws) = (&x[i * cols..][..cols], &w[j * cols..][..cols]);
                let exact: f64 = xs.iter().zip(ws).map(|(&a, &b)| a as f64 * b as f64).sum();
                let scale: f64 = xs
                    .iter()
                    .zip(ws)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                let err = (got[i * rows + j] as f64 - exact).abs();
                assert!(
                    err <= gamma * scale,
                    "{t}x{rows}x{cols} [{i}][{j}]: {} vs {exact} (bound {})",
                    got[i * rows + j],
                    gamma * scale
                );
            }
        }
    }
}

/// Small integers make every step exact: the result is the integer dot product, and its
/// signed zeros are those of a chain started at +0.
#[test]
fn the_reference_is_exact_on_small_integers_and_starts_at_plus_zero() {
    let (t, rows, cols) = (4, 3, 50);
    let x: Vec<f32> = (0..t * cols).map(|i| (i % 7) as f32 - 3.0).collect();
    let w: Vec<f32> = (0..rows * cols).map(|i| (i % 5) as f32 - 2.0).collect();
    let mut got = vec![0f32; t * rows];
    gemm_f32_ref(&w, rows, cols, &x, t, &mut got);
    for i in 0..t {
        for j in 0..rows {
            let want: i64 = (0..cols)
                .map(|k| x[i * cols + k] as i64 * w[j * cols + k] as i64)
                .sum();
            assert_eq!(got[i * rows + j], want as f32);
        }
    }
    // -0 * 1 = -0, and +0 + -0 = +0: the chain gives +0, and so does every table.
    let packed = PackedF32::pack(&[1.0], 1, 1);
    for table in tables() {
        let mut out = [f32::NAN];
        gemm_f32_with(table, &packed, &[-0.0], 1, &mut out);
        assert_eq!(out[0].to_bits(), 0.0f32.to_bits(), "{}", table.isa);
    }
}

#[test]
fn packed_weights_report_their_shape_and_padded_size() {
    let p = PackedF32::pack(&vec![0.5; 17 * 30], 17, 30);
    assert_eq!((p.rows(), p.cols()), (17, 30));
    // Two panels of 16 rows, 30 lines of 64 bytes each.
    assert_eq!(p.bytes(), 2 * 30 * 64);
    let p = PackedF32::pack(&[], 0, 30);
    assert_eq!(p.bytes(), 0);
}

#[test]
#[should_panic(expected = "not n_tokens x cols")]
fn a_short_activation_matrix_panics() {
    let p = PackedF32::pack(&[1.0; 6], 2, 3);
    let mut out = [0f32; 4];
    gemm_f32(&p, &[1.0; 5], 2, &mut out);
}
