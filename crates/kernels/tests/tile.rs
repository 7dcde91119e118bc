//! The tile path of prompt processing (`lingqiao_kernels::tile`): packing keeps the
//! dequantized values, the SIMD tile kernels give the reference's bits, and the reference is
//! within the one-token kernels' bounds of the scalar dot product.

mod common;

use common::{FIXTURE_TYPES, random_activations, random_weights, rng};
use lingqiao_kernels::tile::{ActTile, Format, TILE_ROWS, WeightTile, run_ref};
use lingqiao_kernels::{GgmlType, Kernels, dequantize_row, vec_dot_type};
use rand_chacha::ChaCha8Rng;

fn tile_types() -> Vec<GgmlType> {
    FIXTURE_TYPES
        .into_iter()
        .filter(|&ty| Format::of(ty).is_some())
        .collect()
}

/// `rows` random weight rows and `n_tokens` random activation rows (quantized), `n` each.
fn case(
    ty: GgmlType,
    n: usize,
    rows: usize,
    n_tokens: usize,
    r: &mut ChaCha8Rng,
) -> (Vec<u8>, Vec<u8>) {
    let w = random_weights(ty, rows * n, r);
    let mut x = Vec::new();
    for _ in 0..n_tokens {
        x.extend(random_activations(ty, n, r).1);
    }
    (w, x)
}

fn pack(f: &Format, n: usize, w: &[u8]) -> WeightTile {
    let mut t = WeightTile::default();
    t.pack(f, n, w, f.ty.row_bytes(n as u64).unwrap() as usize);
    t
}

fn acts(f: &Format, n: usize, n_tokens: usize, xq: &[u8]) -> ActTile {
    let x_row = vec_dot_type(f.ty).row_bytes(n as u64).unwrap() as usize;
    let mut a = ActTile::default();
    a.fill(f, n, n_tokens, xq, x_row);
    a
}

#[test]
fn packed_tiles_hold_the_dequantized_values() {
    let mut r = rng(31);
    for ty in tile_types() {
        let f = Format::of(ty).unwrap();
        let n = 512;
        let rb = ty.row_bytes(n as u64).unwrap() as usize;
        // A full tile and a short one (the last rows of a matrix), whose missing rows are 0.
        for rows in [TILE_ROWS, 5] {
            let w = random_weights(ty, rows * n, &mut r);
            let t = pack(&f, n, &w);
            for row in 0..TILE_ROWS {
                let mut want = vec![0f32; n];
                if row < rows {
                    dequantize_row(ty, &w[row * rb..(row + 1) * rb], &mut want).unwrap();
                }
                for g in 0..n / f.group {
                    let mut sum = 0i32;
                    let k0 = g * f.group;
                    for (k, &want) in (k0..).zip(&want[k0..k0 + f.group]) {
                        let q = t.q[(k / 4 * TILE_ROWS + row) * 4 + k % 4];
                        sum += i32::from(q);
                        let sw = t.sw[g * TILE_ROWS + row];
                        let mw = if f.min {
                            t.mw[g * TILE_ROWS + row]
                        } else {
                            0.0
                        };
                        let got = sw * f32::from(q) + mw;
                        // Equal values (0 and -0 differ only in how the zero was reached).
                        assert!(
                            got == want,
                            "{ty} rows={rows} row {row} element {k}: {got} vs {want}"
                        );
                    }
                    assert_eq!(t.corr[g * TILE_ROWS + row], -128 * sum, "{ty} corr");
                }
            }
        }
    }
}

#[test]
fn simd_tile_kernels_give_the_reference_bits() {
    // Every SIMD table of this CPU that has tile kernels (x86: AVX-512; aarch64: dotprod, i8mm).
    let tables: Vec<&Kernels> = Kernels::simd_tables()
        .into_iter()
        .filter(|k| k.tile.is_some())
        .collect();
    if tables.is_empty() {
        // No table here has a tile kernel: nothing to compare, and nothing is counted.
        println!("no table with a tile kernel on this CPU");
        return;
    }
    let mut r = rng(32);
    for table in tables {
        let tk = table.tile.expect("filtered on tile kernels");
        for ty in tile_types() {
            let f = Format::of(ty).unwrap();
            // Rows of whole 64-element pieces, and (32-element blocks) one with a rest.
            let short = (ty.block_size() < 256).then_some(96);
            for n in [256, 512, 1536].into_iter().chain(short) {
                let n_tokens = 11;
                let (w, x) = case(ty, n, 13, n_tokens, &mut r);
                let (t, a) = (pack(&f, n, &w), acts(&f, n, n_tokens, &x));
                // The table's packing: the same tile, field by field.
                let mut tt = WeightTile::default();
                let rb = ty.row_bytes(n as u64).unwrap() as usize;
                (tk.pack)(&mut tt, &f, n, &w, rb);
                assert_eq!(t.q, tt.q, "{} {ty} n={n}: packed q", table.isa);
                assert_eq!(t.corr, tt.corr, "{} {ty} n={n}: packed corr", table.isa);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&t.sw),
                    bits(&tt.sw),
                    "{} {ty} n={n}: packed sw",
                    table.isa
                );
                assert_eq!(
                    bits(&t.mw),
                    bits(&tt.mw),
                    "{} {ty} n={n}: packed mw",
                    table.isa
                );
                // Whole passes of four tokens, single-token tails, and an offset start.
                for tokens in [0..n_tokens, 3..10, 5..6] {
                    let mut want = vec![0f32; tokens.len() * TILE_ROWS];
                    let mut got = vec![f32::NAN; tokens.len() * TILE_ROWS];
                    run_ref(&f, &t, &a, tokens.clone(), &mut want);
                    (tk.run)(&f, &t, &a, tokens.clone(), &mut got);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{} {ty} n={n} tokens {tokens:?} out {i}: {g} vs {w}",
                            table.isa
                        );
                    }
                }
            }
        }
        println!("{}: tile packing and kernel give the reference", table.isa);
    }
}

#[test]
fn tile_results_are_within_the_simd_bound_of_scalar_vec_dot() {
    let mut r = rng(33);
    for ty in tile_types() {
        let f = Format::of(ty).unwrap();
        let mut worst = 0f64;
        for n in [256, 768, 2048] {
            let n_tokens = 6;
            let (w, x) = case(ty, n, TILE_ROWS, n_tokens, &mut r);
            let (t, a) = (pack(&f, n, &w), acts(&f, n, n_tokens, &x));
            let mut out = vec![0f32; n_tokens * TILE_ROWS];
            run_ref(&f, &t, &a, 0..n_tokens, &mut out);
            let (rb, xb) = (
                ty.row_bytes(n as u64).unwrap() as usize,
                vec_dot_type(ty).row_bytes(n as u64).unwrap() as usize,
            );
            for tok in 0..n_tokens {
                let xq = &x[tok * xb..(tok + 1) * xb];
                let mut xd = vec![0f32; n];
                dequantize_row(vec_dot_type(ty), xq, &mut xd).unwrap();
                for row in 0..TILE_ROWS {
                    let wr = &w[row * rb..(row + 1) * rb];
                    let want = Kernels::scalar().vec_dot(ty, n, wr, xq);
                    let mut wd = vec![0f32; n];
                    dequantize_row(ty, wr, &mut wd).unwrap();
                    let scale: f64 = wd
                        .iter()
                        .zip(&xd)
                        .map(|(&a, &b)| (a as f64 * b as f64).abs())
                        .sum();
                    let got = out[tok * TILE_ROWS + row];
                    let err = (got as f64 - want as f64).abs() / scale.max(1e-30);
                    worst = worst.max(err);
                    assert!(
                        err <= 1e-5,
                        "{ty} n={n} token {tok} row {row}: {got} vs scalar {want} (rel {err:e})"
                    );
                }
            }
        }
        println!("{ty:5} tile vs scalar vec_dot: max rel diff {worst:.2e}");
    }
}

/// The batching engine relies on MAX_MIN_TOKENS bounding every format's threshold.
#[test]
fn max_min_tokens_bounds_every_format() {
    let types = tile_types();
    assert!(!types.is_empty());
    for ty in types {
        let f = Format::of(ty).unwrap();
        assert!(
            f.min_tokens() <= lingqiao_kernels::tile::MAX_MIN_TOKENS,
            "{ty}"
        );
    }
}
