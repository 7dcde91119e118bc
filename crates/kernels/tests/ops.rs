//! matmul and get_row: thread-count independence, agreement with per-row vec_dot, errors.

mod common;

use common::{FIXTURE_TYPES, random_weights, rng};
use lingqiao_kernels::ops::{WeightView, get_row, matmul};
use lingqiao_kernels::tile::{ActTile, Format, TILE_ROWS, WeightTile, run_ref};
use lingqiao_kernels::{
    GgmlType, KernelError, Kernels, dequantize_row, quantize_row, vec_dot, vec_dot_type,
};
use rand::Rng;

/// `rows` x `n_tokens` outputs of the portable tile reference, tile by tile.
fn tile_reference(
    ty: GgmlType,
    data: &[u8],
    rows: usize,
    cols: usize,
    xq: &[u8],
    n_tokens: usize,
) -> Vec<f32> {
    let f = Format::of(ty).unwrap();
    let (wrb, xrb) = (
        ty.row_bytes(cols as u64).unwrap() as usize,
        vec_dot_type(ty).row_bytes(cols as u64).unwrap() as usize,
    );
    let mut a = ActTile::default();
    a.fill(&f, cols, n_tokens, xq, xrb);
    let mut want = vec![0f32; n_tokens * rows];
    let mut tile = WeightTile::default();
    let mut out = vec![0f32; n_tokens * TILE_ROWS];
    for r0 in (0..rows).step_by(TILE_ROWS) {
        let r1 = (r0 + TILE_ROWS).min(rows);
        tile.pack(&f, cols, &data[r0 * wrb..r1 * wrb], wrb);
        run_ref(&f, &tile, &a, 0..n_tokens, &mut out);
        for t in 0..n_tokens {
            want[t * rows + r0..t * rows + r1]
                .copy_from_slice(&out[t * TILE_ROWS..t * TILE_ROWS + (r1 - r0)]);
        }
    }
    want
}

fn in_pool<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    lingqiao_pool::ThreadPool::new(threads).install(f)
}

#[test]
fn matmul_is_thread_count_independent_and_equals_vec_dot() {
    let mut r = rng(11);
    // 300 rows: several tasks per thread, and a ragged last task.
    let (rows, cols) = (300, 512);
    for ty in FIXTURE_TYPES {
        let data = random_weights(ty, rows * cols, &mut r);
        let w = WeightView {
            ty,
            data: &data,
            rows,
            cols,
        };

        for n_tokens in [1, 3, 6, 9, 17, 33] {
            let x: Vec<f32> = (0..n_tokens * cols)
                .map(|_| r.random_range(-2.0f32..2.0))
                .collect();
            let mut one = vec![0f32; n_tokens * rows];
            let mut three = vec![0f32; n_tokens * rows];
            in_pool(1, || matmul(&w, &x, n_tokens, &mut one));
            in_pool(3, || matmul(&w, &x, n_tokens, &mut three));
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&one),
                bits(&three),
                "{ty} n_tokens={n_tokens}: 1 vs 3 threads"
            );

            let vdt = vec_dot_type(ty);
            let xrb = vdt.row_bytes(cols as u64).unwrap() as usize;
            let wrb = ty.row_bytes(cols as u64).unwrap() as usize;
            let mut xq = vec![0u8; n_tokens * xrb];
            for (t, xq) in xq.chunks_exact_mut(xrb).enumerate() {
                quantize_row(vdt, &x[t * cols..(t + 1) * cols], xq).unwrap();
            }
            // A prompt runs as tiles where the table has a tile kernel and the type a tile
            // format: then every output is the tile reference's, bit for bit; otherwise
            // each is the one-token kernel's.
            let tiled = Kernels::get().tile.is_some()
                && Format::of(ty).is_some_and(|f| n_tokens >= f.min_tokens());
            let want = if tiled {
                tile_reference(ty, &data, rows, cols, &xq, n_tokens)
            } else {
                let mut want = vec![0f32; n_tokens * rows];
                for t in 0..n_tokens {
                    for row in 0..rows {
                        let xt = &xq[t * xrb..(t + 1) * xrb];
                        want[t * rows + row] =
                            vec_dot(ty, cols, &data[row * wrb..(row + 1) * wrb], xt);
                    }
                }
                want
            };
            for t in 0..n_tokens {
                for row in 0..rows {
                    assert_eq!(
                        one[t * rows + row].to_bits(),
                        want[t * rows + row].to_bits(),
                        "{ty} token {t} row {row} (tiled: {tiled})"
                    );
                }
            }
        }
    }
}

#[test]
fn get_row_dequantizes_one_row() {
    let mut r = rng(12);
    let (rows, cols) = (5, 256);
    for ty in [GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16] {
        let data = random_weights(ty, rows * cols, &mut r);
        let w = WeightView {
            ty,
            data: &data,
            rows,
            cols,
        };
        let rb = ty.row_bytes(cols as u64).unwrap() as usize;
        let mut got = vec![0f32; cols];
        let mut want = vec![0f32; cols];
        get_row(&w, 3, &mut got).unwrap();
        dequantize_row(ty, &data[3 * rb..4 * rb], &mut want).unwrap();
        assert_eq!(got, want);
        assert_eq!(
            get_row(&w, 5, &mut got),
            Err(KernelError::RowOutOfRange { row: 5, rows: 5 })
        );
        assert!(get_row(&w, 0, &mut got[1..]).is_err());
        let short = WeightView {
            data: &data[1..],
            ..w
        };
        assert!(get_row(&short, 0, &mut got).is_err());
    }
}

/// Continuous batching puts several sequences' tokens in one matmul. Each segment's
/// results must be bit for bit those of the segment run alone, whatever its neighbours
/// (tile-length prompts, single decode tokens) and the thread count.
#[test]
fn segmented_matmul_equals_each_segment_alone() {
    let mut r = rng(23);
    let (rows, cols) = (70, 512);
    // Decode tokens, a short prompt, a tile-length prompt for every format, decode again.
    let segments = [1usize, 1, 3, 1, 30, 1, 9, 1, 1];
    let n: usize = segments.iter().sum();
    for ty in FIXTURE_TYPES {
        let data = random_weights(ty, rows * cols, &mut r);
        let w = WeightView {
            ty,
            data: &data,
            rows,
            cols,
        };
        let x: Vec<f32> = (0..n * cols).map(|_| r.random_range(-2.0..2.0)).collect();
        for threads in [1, 3] {
            let mut batched = vec![f32::NAN; n * rows];
            in_pool(threads, || {
                lingqiao_kernels::ops::matmul_segments(&mut [(w, &mut batched)], &x, &segments)
            });
            let mut t0 = 0;
            for &len in &segments {
                let mut alone = vec![f32::NAN; len * rows];
                in_pool(threads, || {
                    matmul(&w, &x[t0 * cols..(t0 + len) * cols], len, &mut alone)
                });
                let got = &batched[t0 * rows..(t0 + len) * rows];
                for (i, (a, b)) in got.iter().zip(&alone).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{ty} segment at {t0} (len {len}) element {i}, {threads} threads: batched {a} vs alone {b}"
                    );
                }
                t0 += len;
            }
        }
    }
}
