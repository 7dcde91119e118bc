//! The tile kernels (see [`crate::tile`]) of the dotprod and the i8mm table, and their
//! packing ([`pack`], NEON and DOTPROD, for both tables).
//!
//! ## dotprod: `sdot` by element ([`run_dotprod`])
//!
//! The portable tile is already what `sdot vd.4s, vn.16b, vm.4b[j]` wants: a 16-byte quarter
//! of a line is 4 consecutive elements of 4 rows, and lane j of a token's 16 bytes is its
//! elements 4j..4j + 4, which line j of the 16 elements holds. So the kernel reads the tile
//! as it is: per 16 elements, 16 weight vectors (4 lines), per token one vector of
//! activations and 16 `sdot`, one per vector of rows, into 4 accumulators of 4 rows each.
//! `sdot` is signed x signed: the activations are made signed again (y = u ^ 0x80, one `eor`
//! per 16 bytes), so the sums are those of y * q themselves, which are exactly the
//! reference's corrected sums of u * q (the tile's `corr` is not needed), and the float
//! chain of [`crate::tile::run_ref`] then runs lane by lane (row) per token: the same bits.
//! A pass is 16 rows x 2 tokens: 8 integer and 8 float accumulators (16 for the K-quants'
//! per-256 sums) beside 4 weight and 2 activation vectors fit the 32 registers, where 4
//! tokens would need 32 accumulators alone. Per group of 32 elements and pass (1024
//! multiply-adds): 64 `sdot`, 8 `ld1` of weight lines, 4 loads and `eor` of activations, and
//! per accumulator a zeroing, a conversion, a multiply of the row scales by the token's
//! scale and an FMA (the min's FMA besides). Counted under qemu (`bench/arm_insn`), a whole
//! call of 16 rows x 64 tokens is 30.6 instructions per 256 for Q4_0, Q5_0 and Q8_0, 33.4
//! for Q4_1 and Q5_1, 33.9 for Q4_K and Q5_K, 38.3 for Q6_K; ggml's dotprod `gemm` kernels
//! take 39.7 (Q4_0), 33.7 (Q8_0), 63.9 (Q4_K), 74.4 (Q5_K) and 63.2 (Q6_K).
//!
//! ggml's counterpart is `ggml_gemm_q4_0_4x4_q8_0` (its `repack.cpp`), also `sdot` by
//! element, on weights repacked at load time into 4-row blocks and activations quantized
//! into a 4-token interleave; here both come from the portable tiles.
//!
//! ## i8mm: `usmmla` ([`run`])
//!
//! `usmmla` multiplies a 2 x 8 matrix of unsigned bytes (two tokens' activations, y + 128)
//! by the transpose of a 2 x 8 matrix of signed bytes (two weight rows' q) into a 2 x 2
//! block of i32 sums, 32 multiply-adds per instruction. Each lane then does exactly what [`crate::tile::run_ref`] does for its row
//! and token, so the results are the same bits.
//!
//! The portable tile ([`WeightTile`]) keeps 4 consecutive elements of the 16 rows in one
//! 64-byte line (the layout of `vpdpbusd`). `usmmla` wants 8 consecutive elements of a row
//! pair instead: `[ra k0..k8, rb k0..k8]`. Two consecutive lines hold exactly that, one
//! 32-bit zip apart: `zip1.4s` of the 16-byte pieces for rows 0..4 of lines k4 and k4 + 1 is
//! `[r0 k0..4, r0 k4..8, r1 k0..4, r1 k4..8]`, and `zip2.4s` the same for rows 2, 3. Each
//! call first rewrites its tile that way into a per-thread scratch (once per 16 rows and up
//! to 64 tokens: about 0.5 instructions per 256 multiply-adds at 64 tokens), the activations
//! likewise into token pairs (`zip1.2d`/`zip2.2d` of two tokens' 16 bytes, 1.6), and the
//! corrections, scales and mins, and the tokens' scales and sums, into the lanes of the 2 x 2
//! sums they go with (`[t0 ra, t0 rb, t1 ra, t1 rb]`: row values as `[a, b, a, b]`, token
//! values as `[0, 0, 1, 1]`; 1.5 together). The inner loop is then only whole-vector loads
//! and arithmetic.
//!
//! A pass is 8 rows x 4 tokens: 8 accumulators of 2 x 2 sums (row pairs x token pairs), with
//! 8 float accumulators beside them (16 for the K-quants' per-256 sums), which fits the 32
//! vector registers; a 16 x 4 pass would need 32 accumulators alone. Per group of 32
//! elements and pass (1024 multiply-adds): 32 `usmmla`; 8 single `ld1` of the operands and 2
//! of the corrections, which start the sums; per accumulator a conversion, a multiply of the
//! row scales by the token scales and an FMA (the min's FMA besides); about 78 instructions,
//! 19.5 per 256. (The multi-register `ld1` are written as assembly: LLVM splits
//! `vld1q_s8_x4` into `ldp` pairs and adds their addresses, some 10 instructions more per
//! group.) Counted under qemu (`bench/arm_insn`), a whole call of 16 rows x 64 tokens is 23
//! instructions per 256 for Q4_0, Q5_0 and Q8_0, 27.7 for Q4_1 and Q5_1, 25.3 for Q4_K and
//! Q5_K, 29.5 for Q6_K; ggml's i8mm `gemm` kernels take 33.7 (Q4_0), 32.2 (Q8_0), 51.2
//! (Q4_K), 68.1 (Q5_K) and 57.3 (Q6_K).
//!
//! ggml does the same product in `ggml_gemm_q4_0_4x8_q8_0` (its `repack.cpp`) with `smmla`
//! (signed activations), on weights repacked at load time into 4-row blocks of 8-byte slices
//! and activations quantized straight into a 4-token interleave (`block_q8_0x4`). Here both
//! operands come from the portable tiles, so the file's weights stay as they are, and the
//! unsigned activations of the tile (y + 128, for `vpdpbusd`) are used as they are, with the
//! tile's correction.
//!
//! Only called through `super::DOTPROD` and `super::I8MM` (each kernel through the tables
//! with its features), which exist after the features were detected and the probe passed.

use super::kquants::{f16_pair, k4_scales, ld2, ld4, q4_values, q5_chunk, q6_half, widen_s8};
use super::legacy::{Weight, heads_one};
use super::{sdot, sdot_lane, usmmla};
use crate::blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, QK,
};
use crate::scalar::blocks;
use crate::tile::{ActTile, Format, TILE_ROWS, WeightTile, check};
use crate::{GgmlType, QK_K};

use core::arch::aarch64::*;
use std::cell::RefCell;
use std::ops::Range;

/// Tokens per pass (two token pairs).
const T: usize = 4;

/// The operands of one call, rewritten for `usmmla` (see the module docs).
#[derive(Default)]
struct Scratch {
    /// Per half h of the tile (rows 8h..8h + 8), 8-element chunk c and row pair p
    /// (rows 8h + 2p, 8h + 2p + 1), at `(h * n / 8 + c) * 64 + p * 16`: the pair's 8 q each.
    w: Vec<i8>,
    /// Per block b of 4 tokens, chunk c and token pair j, at `(b * n / 8 + c) * 32 + j * 16`:
    /// the pair's 8 activations each. Tokens past the range repeat its last token.
    x: Vec<u8>,
    /// Per block, activation scale i and token, at `(b * ndx + i) * 8 + 2 * token`: the
    /// scale, twice (the token's two lanes in a 2 x 2 block).
    dx: Vec<f32>,
    /// The same for the group sums (types with a min).
    gx: Vec<f32>,
    /// Per half h and group g, 16 vectors at `(h * ng + g) * 64`: the group's corrections as
    /// they start the sums (row pair p and token pair j at 2p + j, `[ca, cb, ca, cb]`), then
    /// the scales and the mins (as f32 bits) of the 4 row pairs in the same lanes.
    coef: Vec<i32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Rewrites the tile's q (16 rows, `n` elements) as row pairs of 8 elements (`Scratch::w`).
#[target_feature(enable = "neon")]
fn zip_weights(q: &[i8], n: usize, out: &mut Vec<i8>) {
    assert!(n.is_multiple_of(8) && q.len() == n * TILE_ROWS);
    out.resize(n * TILE_ROWS, 0);
    let (lo, hi) = out.split_at_mut(n * TILE_ROWS / 2);
    for c in 0..n / 8 {
        // SAFETY: lines 2c and 2c + 1 are the 128 bytes at 128c of q (n / 4 lines of 64);
        // chunk c of each half is the 64 bytes at 64c of its n * 8.
        unsafe {
            let a = vld1q_s8_x4(q.as_ptr().add(c * 128));
            let b = vld1q_s8_x4(q.as_ptr().add(c * 128 + 64));
            let z = |x: int8x16_t, y: int8x16_t| {
                let (x, y) = (vreinterpretq_s32_s8(x), vreinterpretq_s32_s8(y));
                (
                    vreinterpretq_s8_s32(vzip1q_s32(x, y)),
                    vreinterpretq_s8_s32(vzip2q_s32(x, y)),
                )
            };
            let (p0, p1) = z(a.0, b.0);
            let (p2, p3) = z(a.1, b.1);
            let (p4, p5) = z(a.2, b.2);
            let (p6, p7) = z(a.3, b.3);
            vst1q_s8_x4(lo.as_mut_ptr().add(c * 64), int8x16x4_t(p0, p1, p2, p3));
            vst1q_s8_x4(hi.as_mut_ptr().add(c * 64), int8x16x4_t(p4, p5, p6, p7));
        }
    }
}

/// The tile's corrections, scales and mins in the lanes of the sums (`Scratch::coef`).
#[target_feature(enable = "neon")]
fn spread_rows(w: &WeightTile, ng: usize, min: bool, out: &mut Vec<i32>) {
    assert!(w.corr.len() == ng * TILE_ROWS && w.sw.len() == ng * TILE_ROWS);
    assert!(!min || w.mw.len() == ng * TILE_ROWS);
    out.resize(2 * ng * 64, 0);
    // [a, b, c, d] -> [a, b, a, b], [c, d, c, d]
    let pairs = |v: int32x4_t| {
        let v = vreinterpretq_s64_s32(v);
        (
            vreinterpretq_s32_s64(vzip1q_s64(v, v)),
            vreinterpretq_s32_s64(vzip2q_s64(v, v)),
        )
    };
    for h in 0..2 {
        for g in 0..ng {
            let at = g * TILE_ROWS + 8 * h;
            // SAFETY: 8 values at `at` of corr, sw, mw (g < ng); 64 i32 at (h * ng + g) * 64
            // of `out` (2 * ng * 64).
            unsafe {
                let d = out.as_mut_ptr().add((h * ng + g) * 64);
                let c = vld1q_s32_x2(w.corr.as_ptr().add(at));
                let ((c0, c1), (c2, c3)) = (pairs(c.0), pairs(c.1));
                vst1q_s32_x4(d, int32x4x4_t(c0, c0, c1, c1));
                vst1q_s32_x4(d.add(16), int32x4x4_t(c2, c2, c3, c3));
                let v = vld1q_s32_x2(w.sw.as_ptr().add(at).cast());
                let ((v0, v1), (v2, v3)) = (pairs(v.0), pairs(v.1));
                vst1q_s32_x4(d.add(32), int32x4x4_t(v0, v1, v2, v3));
                if min {
                    let v = vld1q_s32_x2(w.mw.as_ptr().add(at).cast());
                    let ((v0, v1), (v2, v3)) = (pairs(v.0), pairs(v.1));
                    vst1q_s32_x4(d.add(48), int32x4x4_t(v0, v1, v2, v3));
                }
            }
        }
    }
}

/// Rewrites the activations of `tokens` as token pairs of 8 elements (`Scratch::x`), in
/// blocks of 4 tokens, the last block filled up with the range's last token.
#[target_feature(enable = "neon")]
fn zip_acts(x: &ActTile, tokens: &Range<usize>, out: &mut Vec<u8>) {
    let n = x.n;
    assert!(n.is_multiple_of(16) && !tokens.is_empty() && tokens.end <= x.n_tokens);
    assert!(x.u.len() >= x.n_tokens * n);
    let blocks = tokens.len().div_ceil(T);
    out.resize(blocks * T * n, 0);
    for (b, dst) in out.chunks_exact_mut(T * n).enumerate() {
        let src: [*const u8; T] = core::array::from_fn(|i| {
            let t = (tokens.start + b * T + i).min(tokens.end - 1);
            x.u[t * n..].as_ptr()
        });
        let zip = |a: uint8x16_t, b: uint8x16_t| {
            let (a, b) = (vreinterpretq_u64_u8(a), vreinterpretq_u64_u8(b));
            (
                vreinterpretq_u8_u64(vzip1q_u64(a, b)),
                vreinterpretq_u8_u64(vzip2q_u64(a, b)),
            )
        };
        // 64 elements (8 chunks) at a time, then 16 (2 chunks). The first loop is written out
        // in assembly: LLVM splits the loads into `ldp` and adds as many instructions for
        // the addresses as there are for the data.
        let (mut s, mut d) = (src, dst.as_mut_ptr());
        // SAFETY: each source holds n bytes (a token of u), the block's destination 4n; the
        // loops read n bytes of each source and write 4n.
        unsafe {
            for _ in 0..n / 64 {
                // Each token's 64 bytes in one load; per 16 elements, the pairs' two chunks.
                core::arch::asm!(
                    "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{s0}], #64",
                    "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{s1}], #64",
                    "ld1 {{v16.16b, v17.16b, v18.16b, v19.16b}}, [{s2}], #64",
                    "ld1 {{v20.16b, v21.16b, v22.16b, v23.16b}}, [{s3}], #64",
                    "zip1 v24.2d, v0.2d, v4.2d",
                    "zip1 v25.2d, v16.2d, v20.2d",
                    "zip2 v26.2d, v0.2d, v4.2d",
                    "zip2 v27.2d, v16.2d, v20.2d",
                    "st1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{d}], #64",
                    "zip1 v24.2d, v1.2d, v5.2d",
                    "zip1 v25.2d, v17.2d, v21.2d",
                    "zip2 v26.2d, v1.2d, v5.2d",
                    "zip2 v27.2d, v17.2d, v21.2d",
                    "st1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{d}], #64",
                    "zip1 v24.2d, v2.2d, v6.2d",
                    "zip1 v25.2d, v18.2d, v22.2d",
                    "zip2 v26.2d, v2.2d, v6.2d",
                    "zip2 v27.2d, v18.2d, v22.2d",
                    "st1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{d}], #64",
                    "zip1 v24.2d, v3.2d, v7.2d",
                    "zip1 v25.2d, v19.2d, v23.2d",
                    "zip2 v26.2d, v3.2d, v7.2d",
                    "zip2 v27.2d, v19.2d, v23.2d",
                    "st1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{d}], #64",
                    s0 = inout(reg) s[0],
                    s1 = inout(reg) s[1],
                    s2 = inout(reg) s[2],
                    s3 = inout(reg) s[3],
                    d = inout(reg) d,
                    out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                    out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                    out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                    out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                    out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                    options(nostack, preserves_flags)
                );
            }
            for _ in 0..n % 64 / 16 {
                let u: [uint8x16_t; T] = core::array::from_fn(|i| vld1q_u8(s[i]));
                s = s.map(|p| p.add(16));
                let (a0, a1) = zip(u[0], u[1]);
                let (b0, b1) = zip(u[2], u[3]);
                vst1q_u8_x4(d, uint8x16x4_t(a0, b0, a1, b1));
                d = d.add(64);
            }
        }
    }
}

/// `per` values of each token of `tokens` (token t's at `src[t * per..]`) spread over the
/// lanes they scale (`Scratch::dx`), in blocks of 4 tokens as in [`zip_acts`].
#[target_feature(enable = "neon")]
fn spread(src: &[f32], per: usize, tokens: &Range<usize>, out: &mut Vec<f32>) {
    assert!(!tokens.is_empty() && src.len() >= tokens.end * per);
    let blocks = tokens.len().div_ceil(T);
    out.resize(blocks * per * 8, 0.0);
    for (b, dst) in out.chunks_exact_mut(per * 8).enumerate() {
        let s: [&[f32]; T] = core::array::from_fn(|i| {
            let t = (tokens.start + b * T + i).min(tokens.end - 1);
            &src[t * per..(t + 1) * per]
        });
        let mut i = 0;
        while i + 4 <= per {
            for j in 0..2 {
                // SAFETY: i + 4 <= per values of each token; entries i..i + 4 of 8 floats
                // are inside dst (per * 8).
                unsafe {
                    let a = vld1q_f32(s[2 * j].as_ptr().add(i));
                    let c = vld1q_f32(s[2 * j + 1].as_ptr().add(i));
                    let (lo, hi) = (vzip1q_f32(a, c), vzip2q_f32(a, c));
                    let d = dst.as_mut_ptr().add(i * 8 + 4 * j);
                    vst1q_f32(d, vzip1q_f32(lo, lo));
                    vst1q_f32(d.add(8), vzip2q_f32(lo, lo));
                    vst1q_f32(d.add(16), vzip1q_f32(hi, hi));
                    vst1q_f32(d.add(24), vzip2q_f32(hi, hi));
                }
            }
            i += 4;
        }
        for i in i..per {
            for (j, s) in s.iter().enumerate() {
                dst[i * 8 + 2 * j] = s[i];
                dst[i * 8 + 2 * j + 1] = s[i];
            }
        }
    }
}

/// 64 bytes at `*p` in one `ld1` of four registers, `*p` moved past them (LLVM splits
/// `vld1q_s8_x4` into two `ldp` and adds the offsets: four instructions instead of one).
///
/// # Safety
/// `*p` must be valid for reading 64 bytes.
#[inline(always)]
unsafe fn ld1x4(p: &mut *const i8) -> [int8x16_t; 4] {
    let (a, b, c, d): (int8x16_t, int8x16_t, int8x16_t, int8x16_t);
    // SAFETY: reads the 64 bytes the caller vouches for.
    unsafe {
        core::arch::asm!(
            "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{p}], #64",
            p = inout(reg) *p,
            out("v0") a, out("v1") b, out("v2") c, out("v3") d,
            options(readonly, nostack, preserves_flags)
        );
    }
    [a, b, c, d]
}

/// 32 bytes at `*p` in one `ld1` of two registers, `*p` moved past them (see [`ld1x4`]).
///
/// # Safety
/// `*p` must be valid for reading 32 bytes.
#[inline(always)]
unsafe fn ld1x2(p: &mut *const u8) -> [uint8x16_t; 2] {
    let (a, b): (uint8x16_t, uint8x16_t);
    // SAFETY: reads the 32 bytes the caller vouches for.
    unsafe {
        core::arch::asm!(
            "ld1 {{v4.16b, v5.16b}}, [{p}], #32",
            p = inout(reg) *p,
            out("v4") a, out("v5") b,
            options(readonly, nostack, preserves_flags)
        );
    }
    [a, b]
}

/// 128 bytes at `p` as 8 i32 vectors, in two `ld1` of four registers (see [`ld1x4`]).
///
/// # Safety
/// `p` must be valid for reading 128 bytes.
#[inline(always)]
unsafe fn ld1x8_s32(p: *const i32) -> [int32x4_t; 8] {
    let r: [int32x4_t; 8];
    // SAFETY: reads the 128 bytes the caller vouches for.
    unsafe {
        let (a, b, c, d, e, f, g, h);
        core::arch::asm!(
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{p}], #64",
            "ld1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{p}]",
            p = inout(reg) p => _,
            out("v16") a, out("v17") b, out("v18") c, out("v19") d,
            out("v20") e, out("v21") f, out("v22") g, out("v23") h,
            options(readonly, nostack, preserves_flags)
        );
        r = [a, b, c, d, e, f, g, h];
    }
    r
}

/// 128 bytes at `p` as two sets of 4 f32 vectors, in two `ld1` (see [`ld1x4`]) into the
/// registers of the chunk loads, free at that point. (For the scales alone, without mins,
/// the `ldp` LLVM makes come out shorter.)
///
/// # Safety
/// `p` must be valid for reading 128 bytes.
#[inline(always)]
unsafe fn ld1x8_f32(p: *const f32) -> ([float32x4_t; 4], [float32x4_t; 4]) {
    let r: ([float32x4_t; 4], [float32x4_t; 4]);
    // SAFETY: reads the 128 bytes the caller vouches for.
    unsafe {
        let (a, b, c, d, e, f, g, h);
        core::arch::asm!(
            "ld1 {{v0.4s, v1.4s, v2.4s, v3.4s}}, [{p}], #64",
            "ld1 {{v4.4s, v5.4s, v6.4s, v7.4s}}, [{p}]",
            p = inout(reg) p => _,
            out("v0") a, out("v1") b, out("v2") c, out("v3") d,
            out("v4") e, out("v5") f, out("v6") g, out("v7") h,
            options(pure, readonly, nostack, preserves_flags)
        );
        r = ([a, b, c, d], [e, f, g, h]);
    }
    r
}

/// One pass: rows 8h..8h + 8 of the tile (`w`, `coef`: that half of `Scratch::w` and
/// `Scratch::coef`) against the 4 tokens of one block (`x`, `dx`, `gx`: that block of the
/// scratch). Returns the accumulators, row pair p and token pair j at 2p + j, lanes
/// `[t0 ra, t0 rb, t1 ra, t1 rb]`.
///
/// # Safety
/// The CPU must have NEON and I8MM; the pointers must hold `ng` groups of `G` elements
/// (`ng * G / 8` chunks for `w`, `x`; 64 values per group for `coef`; 8 per scale for `dx`,
/// `gx`).
#[inline(always)]
unsafe fn pass<const G: usize, const GPD: usize, const MIN: bool>(
    ng: usize,
    mut w: *const i8,
    mut x: *const u8,
    coef: *const i32,
    dx: *const f32,
    gx: *const f32,
) -> [float32x4_t; 8] {
    let chunks = G / 8;
    // SAFETY: the reads stay inside what the caller promised (see above); the features are
    // the caller's promise.
    unsafe {
        let zero = vdupq_n_f32(0.0);
        let mut acc = [zero; 8];
        let mut a = [zero; 8];
        for g in 0..ng {
            // Each group's sums start from its correction.
            let cg = coef.add(g * 64);
            let mut s = ld1x8_s32(cg);
            for _ in 0..chunks {
                let wv = ld1x4(&mut w);
                let xv = ld1x2(&mut x);
                for p in 0..4 {
                    for j in 0..2 {
                        s[2 * p + j] = usmmla(s[2 * p + j], xv[j], wv[p]);
                    }
                }
            }
            // Row scales and mins as [a, b, a, b]; token scales and sums as [0, 0, 1, 1].
            let (swv, mwv) = if MIN {
                ld1x8_f32(cg.add(32).cast())
            } else {
                let v = vld1q_f32_x4(cg.add(32).cast());
                ([v.0, v.1, v.2, v.3], [zero; 4])
            };
            let gxv = if MIN {
                let v = vld1q_f32_x2(gx.add(g * 8));
                [v.0, v.1]
            } else {
                [zero; 2]
            };
            if GPD == 1 {
                let d = vld1q_f32_x2(dx.add(g * 8));
                let d = [d.0, d.1];
                for p in 0..4 {
                    let (swp, mwp) = (swv[p], mwv[p]);
                    for (j, (dj, gj)) in d.into_iter().zip(gxv).enumerate() {
                        let i = 2 * p + j;
                        let v = vcvtq_f32_s32(s[i]);
                        acc[i] = vfmaq_f32(acc[i], v, vmulq_f32(swp, dj));
                        if MIN {
                            acc[i] = vfmaq_f32(acc[i], mwp, gj);
                        }
                    }
                }
            } else {
                for p in 0..4 {
                    let (swp, mwp) = (swv[p], mwv[p]);
                    for (j, gj) in gxv.into_iter().enumerate() {
                        let i = 2 * p + j;
                        a[i] = vfmaq_f32(a[i], vcvtq_f32_s32(s[i]), swp);
                        if MIN {
                            a[i] = vfmaq_f32(a[i], mwp, gj);
                        }
                    }
                }
                if (g + 1) % GPD == 0 {
                    let d = vld1q_f32_x2(dx.add(g / GPD * 8));
                    let d = [d.0, d.1];
                    for i in 0..8 {
                        acc[i] = vfmaq_f32(acc[i], a[i], d[i % 2]);
                        a[i] = zero;
                    }
                }
            }
        }
        acc
    }
}

/// All tokens of `tokens`, in blocks of 4, each block as two passes of 8 rows.
#[target_feature(enable = "neon,i8mm")]
fn run_typed<const G: usize, const GPD: usize, const MIN: bool>(
    w: &WeightTile,
    x: &ActTile,
    tokens: Range<usize>,
    out: &mut [f32],
) {
    let (n, ng) = (w.n, w.n / G);
    let (nc, ndx) = (n / 8, x.ndx);
    SCRATCH.with_borrow_mut(|s| {
        zip_weights(&w.q, n, &mut s.w);
        zip_acts(x, &tokens, &mut s.x);
        spread_rows(w, ng, MIN, &mut s.coef);
        spread(&x.dx, ndx, &tokens, &mut s.dx);
        if MIN {
            spread(&x.gx, ng, &tokens, &mut s.gx);
        }
        for b in 0..tokens.len().div_ceil(T) {
            for h in 0..2 {
                // SAFETY: the scratch was sized above for ng groups per half and block of
                // tokens; the features are enabled here.
                let acc = unsafe {
                    pass::<G, GPD, MIN>(
                        ng,
                        s.w.as_ptr().add(h * nc * 64),
                        s.x.as_ptr().add(b * nc * 32),
                        s.coef.as_ptr().add(h * ng * 64),
                        s.dx.as_ptr().add(b * ndx * 8),
                        if MIN {
                            s.gx.as_ptr().add(b * ng * 8)
                        } else {
                            s.gx.as_ptr()
                        },
                    )
                };
                // Token 2j + e of the block is lane pair e of acc[2p + j].
                for j in 0..2 {
                    let rows = [
                        vzip1q_f64(
                            vreinterpretq_f64_f32(acc[j]),
                            vreinterpretq_f64_f32(acc[2 + j]),
                        ),
                        vzip1q_f64(
                            vreinterpretq_f64_f32(acc[4 + j]),
                            vreinterpretq_f64_f32(acc[6 + j]),
                        ),
                        vzip2q_f64(
                            vreinterpretq_f64_f32(acc[j]),
                            vreinterpretq_f64_f32(acc[2 + j]),
                        ),
                        vzip2q_f64(
                            vreinterpretq_f64_f32(acc[4 + j]),
                            vreinterpretq_f64_f32(acc[6 + j]),
                        ),
                    ];
                    for e in 0..2 {
                        let t = b * T + 2 * j + e;
                        if t < tokens.len() {
                            let o = &mut out[t * TILE_ROWS + 8 * h..t * TILE_ROWS + 8 * h + 8];
                            // SAFETY: 8 floats of `o`.
                            unsafe {
                                vst1q_f32(o.as_mut_ptr(), vreinterpretq_f32_f64(rows[2 * e]));
                                vst1q_f32(
                                    o.as_mut_ptr().add(4),
                                    vreinterpretq_f32_f64(rows[2 * e + 1]),
                                );
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The tile kernel for the formats of [`Format::of`].
///
/// # Safety
/// The CPU must have NEON and I8MM.
pub(super) unsafe fn run(
    f: &Format,
    w: &WeightTile,
    x: &ActTile,
    tokens: Range<usize>,
    out: &mut [f32],
) {
    check(f, w, x, &tokens, out);
    if tokens.is_empty() {
        return;
    }
    // SAFETY: the features are the caller's promise; `check` passed.
    unsafe { crate::tile::dispatch_format!(f, run_typed(w, x, tokens, out)) }
}

/// Tokens per pass of the dotprod kernel: 16 rows x 2 tokens are 8 accumulators of sums,
/// 8 of floats (16 for the K-quants' per-256 sums) beside 4 weight vectors and 2 tokens'
/// activations, which fits the 32 vector registers; 4 tokens would not.
const DT: usize = 2;

/// One pass of the dotprod kernel: the 16 rows of the tile (`q`, `sw`, `mw`: its lines,
/// scales and mins) against 2 tokens (`u`: their activations, y + 128; `dx`, `gx`: their
/// scales and group sums). Returns the accumulators, row vector i (rows 4i..4i + 4) and
/// token j at `[i][j]`.
///
/// Per 16 elements: 4 lines of 4 vectors (4 rows x 4 elements each) and per token its 16
/// bytes, made signed (y = u ^ 0x80); `sdot` by element multiplies a vector's 4 rows with
/// lane m of a token (its elements 4m..4m + 4), which line m holds. The sums are then exactly
/// the sums of y * q, which are the reference's corrected sums of u * q: no correction.
/// Each line is one `ld1` of four registers ([`ld1x4`]; the `ldp` pairs LLVM makes of
/// `vld1q_s8` cost 1.25 instructions more per 256 multiply-adds).
///
/// # Safety
/// The CPU must have NEON and DOTPROD; `q` must hold `ng * G * 16` bytes, `sw` (and `mw` if
/// `MIN`) `ng * 16` values, each `u` `ng * G` bytes, each `dx` `ng / GPD` values and each
/// `gx` (if `MIN`) `ng` values.
#[inline(always)]
unsafe fn dot_pass<const G: usize, const GPD: usize, const MIN: bool>(
    ng: usize,
    mut q: *const i8,
    sw: *const f32,
    mw: *const f32,
    mut u: [*const u8; DT],
    dx: [*const f32; DT],
    gx: [*const f32; DT],
) -> [[float32x4_t; DT]; 4] {
    // SAFETY: the reads stay inside what the caller promised (see above); the features are
    // the caller's promise.
    unsafe {
        let flip = vdupq_n_u8(0x80);
        let zero = vdupq_n_f32(0.0);
        let mut acc = [[zero; DT]; 4];
        let mut a = [[zero; DT]; 4];
        for g in 0..ng {
            let mut s = [[vdupq_n_s32(0); DT]; 4];
            for _ in 0..G / 16 {
                let y: [int8x16_t; DT] =
                    core::array::from_fn(|j| vreinterpretq_s8_u8(veorq_u8(vld1q_u8(u[j]), flip)));
                u = u.map(|p| p.add(16));
                macro_rules! line {
                    ($m:literal) => {{
                        let l = ld1x4(&mut q);
                        for i in 0..4 {
                            for j in 0..DT {
                                s[i][j] = sdot_lane::<$m>(s[i][j], l[i], y[j]);
                            }
                        }
                    }};
                }
                line!(0);
                line!(1);
                line!(2);
                line!(3);
            }
            // run_ref's chain, lane by lane (row) for each token.
            let swv: [float32x4_t; 4] = core::array::from_fn(|i| vld1q_f32(sw.add(g * 16 + 4 * i)));
            let mwv: [float32x4_t; 4] = if MIN {
                core::array::from_fn(|i| vld1q_f32(mw.add(g * 16 + 4 * i)))
            } else {
                [zero; 4]
            };
            let gxj: [f32; DT] = if MIN {
                core::array::from_fn(|j| *gx[j].add(g))
            } else {
                [0.0; DT]
            };
            if GPD == 1 {
                let d: [f32; DT] = core::array::from_fn(|j| *dx[j].add(g));
                for i in 0..4 {
                    for j in 0..DT {
                        let v = vcvtq_f32_s32(s[i][j]);
                        acc[i][j] = vfmaq_f32(acc[i][j], v, vmulq_n_f32(swv[i], d[j]));
                        if MIN {
                            acc[i][j] = vfmaq_n_f32(acc[i][j], mwv[i], gxj[j]);
                        }
                    }
                }
            } else {
                for i in 0..4 {
                    for j in 0..DT {
                        a[i][j] = vfmaq_f32(a[i][j], vcvtq_f32_s32(s[i][j]), swv[i]);
                        if MIN {
                            a[i][j] = vfmaq_n_f32(a[i][j], mwv[i], gxj[j]);
                        }
                    }
                }
                if (g + 1) % GPD == 0 {
                    let d: [f32; DT] = core::array::from_fn(|j| *dx[j].add(g / GPD));
                    for i in 0..4 {
                        for j in 0..DT {
                            acc[i][j] = vfmaq_n_f32(acc[i][j], a[i][j], d[j]);
                            a[i][j] = zero;
                        }
                    }
                }
            }
        }
        acc
    }
}

/// All tokens of `tokens`, 2 at a time (a last odd token computed twice, stored once).
#[target_feature(enable = "neon,dotprod")]
fn dot_typed<const G: usize, const GPD: usize, const MIN: bool>(
    w: &WeightTile,
    x: &ActTile,
    tokens: Range<usize>,
    out: &mut [f32],
) {
    let (n, ng, ndx) = (w.n, w.n / G, x.ndx);
    assert!(n.is_multiple_of(16) && w.q.len() == n * TILE_ROWS && x.u.len() >= x.n_tokens * n);
    assert!(w.sw.len() == ng * TILE_ROWS && (!MIN || w.mw.len() == ng * TILE_ROWS));
    assert!(x.dx.len() >= x.n_tokens * ndx && (!MIN || x.gx.len() >= x.n_tokens * ng));
    assert!(tokens.end <= x.n_tokens && out.len() >= tokens.len() * TILE_ROWS);
    for (b, t0) in tokens.clone().step_by(DT).enumerate() {
        let ts: [usize; DT] = core::array::from_fn(|j| (t0 + j).min(tokens.end - 1));
        // SAFETY: every token of `ts` is below x.n_tokens, so its activations, scales and sums
        // are inside the asserted lengths; the tile's are ng groups; the features are enabled.
        let acc = unsafe {
            dot_pass::<G, GPD, MIN>(
                ng,
                w.q.as_ptr(),
                w.sw.as_ptr(),
                w.mw.as_ptr(),
                ts.map(|t| x.u.as_ptr().add(t * n)),
                ts.map(|t| x.dx.as_ptr().add(t * ndx)),
                ts.map(|t| {
                    if MIN {
                        x.gx.as_ptr().add(t * ng)
                    } else {
                        x.gx.as_ptr()
                    }
                }),
            )
        };
        for j in 0..DT {
            let t = b * DT + j;
            if t < tokens.len() {
                let o = &mut out[t * TILE_ROWS..(t + 1) * TILE_ROWS];
                for (i, acc) in acc.iter().enumerate() {
                    // SAFETY: 4 floats at 4i of the 16 of `o`.
                    unsafe { vst1q_f32(o.as_mut_ptr().add(4 * i), acc[j]) };
                }
            }
        }
    }
}

/// The dotprod tile kernel (indexed `sdot` on the portable tile as it is) for the formats
/// of [`Format::of`].
///
/// # Safety
/// The CPU must have NEON and DOTPROD.
pub(super) unsafe fn run_dotprod(
    f: &Format,
    w: &WeightTile,
    x: &ActTile,
    tokens: Range<usize>,
    out: &mut [f32],
) {
    check(f, w, x, &tokens, out);
    if tokens.is_empty() {
        return;
    }
    // SAFETY: the features are the caller's promise; `check` passed.
    unsafe { crate::tile::dispatch_format!(f, dot_typed(w, x, tokens, out)) }
}

/// Row `r` of a tile of a 32-element type: its q to `q` (element order), its scales (and
/// mins) to `sw[g * 16 + r]` (`mw[g * 16 + r]`).
#[inline]
#[target_feature(enable = "neon")]
fn legacy_row<W: Weight>(row: &[u8], q: &mut [i8], sw: &mut [f32], mw: &mut [f32], r: usize) {
    let b = blocks::<W>(row);
    let nb = b.len().min(q.len() / QK);
    assert!(r < TILE_ROWS && sw.len() >= nb * TILE_ROWS && (!W::MIN || mw.len() >= sw.len()));
    for (g, (b, q)) in b.iter().zip(q.chunks_exact_mut(QK)).enumerate() {
        let v = b.q();
        // [d, m] (for the types without m, the next field's bits, unused).
        let h = heads_one(b);
        // SAFETY: `q` is one block's 32 bytes; g < nb, so g * 16 + r is inside sw (and mw).
        unsafe {
            vst1q_s8_x2(q.as_mut_ptr(), int8x16x2_t(v[0], v[1]));
            *sw.get_unchecked_mut(g * TILE_ROWS + r) = vgetq_lane_f32::<0>(h);
            if W::MIN {
                *mw.get_unchecked_mut(g * TILE_ROWS + r) = vgetq_lane_f32::<1>(h);
            }
        }
    }
}

/// Row `r` of a Q4_K (or with `Q5`, Q5_K) tile, as [`legacy_row`]: per group of 32 the
/// scale d * sc and the min -(dmin * m), as the portable `scales_k`.
#[inline]
#[target_feature(enable = "neon")]
fn k4_row<const Q5: bool>(row: &[u8], q: &mut [i8], sw: &mut [f32], mw: &mut [f32], r: usize) {
    let put = |q: &mut [i8], v: [uint8x16_t; 8]| {
        // SAFETY: `q` is 128 bytes (half a block).
        unsafe {
            let p = q.as_mut_ptr().cast::<u8>();
            vst1q_u8_x4(p, uint8x16x4_t(v[0], v[1], v[2], v[3]));
            vst1q_u8_x4(p.add(64), uint8x16x4_t(v[4], v[5], v[6], v[7]));
        }
    };
    assert!(r < TILE_ROWS);
    // Block i's 8 groups of scales (mins) are sw[i * 128..][..128] (mw), row r of each.
    let scales =
        |i: usize, d: [u8; 2], dmin: [u8; 2], s: &[u8; 12], sw: &mut [f32], mw: &mut [f32]| {
            let sw: &mut [f32; 128] = (&mut sw[128 * i..128 * i + 128]).try_into().unwrap();
            let mw: &mut [f32; 128] = (&mut mw[128 * i..128 * i + 128]).try_into().unwrap();
            let (sc, m) = k4_scales(s);
            let (d, dmin) = f16_pair(d, dmin);
            for h in 0..2 {
                let s = vmulq_n_f32(vcvtq_f32_s32(sc[h]), d);
                let m = vnegq_f32(vmulq_n_f32(vcvtq_f32_s32(m[h]), dmin));
                let (s, m): ([f32; 4], [f32; 4]) = (lanes(s), lanes(m));
                for j in 0..4 {
                    let g = 4 * h + j;
                    sw[g * TILE_ROWS + r] = s[j];
                    mw[g * TILE_ROWS + r] = m[j];
                }
            }
        };
    if Q5 {
        for (i, (b, q)) in blocks::<BlockQ5K>(row)
            .iter()
            .zip(q.chunks_exact_mut(QK_K))
            .enumerate()
        {
            let mut hq = ld2(&b.qh);
            for (h, q) in q.chunks_exact_mut(128).enumerate() {
                let v = ld4(&b.qs[64 * h..]);
                let c0 = q5_chunk([v[0], v[1]], hq);
                hq = [vshrq_n_u8::<2>(hq[0]), vshrq_n_u8::<2>(hq[1])];
                let c1 = q5_chunk([v[2], v[3]], hq);
                hq = [vshrq_n_u8::<2>(hq[0]), vshrq_n_u8::<2>(hq[1])];
                put(q, [c0[0], c0[1], c0[2], c0[3], c1[0], c1[1], c1[2], c1[3]]);
            }
            scales(i, b.d, b.dmin, &b.scales, sw, mw);
        }
    } else {
        for (i, (b, q)) in blocks::<BlockQ4K>(row)
            .iter()
            .zip(q.chunks_exact_mut(QK_K))
            .enumerate()
        {
            for (h, q) in q.chunks_exact_mut(128).enumerate() {
                put(q, q4_values(ld4(&b.qs[64 * h..])));
            }
            scales(i, b.d, b.dmin, &b.scales, sw, mw);
        }
    }
}

/// Row `r` of a Q6_K tile, as [`legacy_row`]: per group of 16 the scale d * sc.
#[inline]
#[target_feature(enable = "neon")]
fn q6k_row(row: &[u8], q: &mut [i8], sw: &mut [f32], r: usize) {
    assert!(r < TILE_ROWS);
    for (i, (b, q)) in blocks::<BlockQ6K>(row)
        .iter()
        .zip(q.chunks_exact_mut(QK_K))
        .enumerate()
    {
        for (h, q) in q.chunks_exact_mut(128).enumerate() {
            let v = q6_half(b, h);
            // SAFETY: `q` is 128 bytes (half a block).
            unsafe {
                vst1q_s8_x4(q.as_mut_ptr(), int8x16x4_t(v[0], v[1], v[2], v[3]));
                vst1q_s8_x4(q.as_mut_ptr().add(64), int8x16x4_t(v[4], v[5], v[6], v[7]));
            }
        }
        let (d, _) = f16_pair(b.d, [0, 0]);
        let sw: &mut [f32; 256] = (&mut sw[256 * i..256 * i + 256]).try_into().unwrap();
        // SAFETY: 16 bytes.
        let sc = widen_s8(unsafe { vld1q_s8(b.scales.as_ptr()) });
        for (k, sc) in sc.into_iter().enumerate() {
            let s: [f32; 4] = lanes(vmulq_n_f32(vcvtq_f32_s32(sc), d));
            for j in 0..4 {
                sw[(4 * k + j) * TILE_ROWS + r] = s[j];
            }
        }
    }
}

/// A vector's lanes as an array.
#[inline(always)]
fn lanes(v: float32x4_t) -> [f32; 4] {
    // SAFETY: float32x4_t and [f32; 4] have the same size, and every bit pattern is valid.
    unsafe { core::mem::transmute(v) }
}

/// [`WeightTile::pack`] for this module's features. The rows are decoded by the NEON
/// decoders of the one-token kernels (`legacy`'s [`Weight::q`], `kquants`' `q4_values`,
/// `q5_chunk`, `q6_half`), which give the portable decoding's values, with the scales
/// converted as there (`fcvtl`, exact) and written straight to their places in the tile;
/// then interleaved 4 rows x 16 quads at a time (four 64-byte row loads, sixteen 4-lane
/// structure stores, each writing one quad of the 4 rows into its line); and each group's
/// sum of q for 16 rows is one `sdot` per 16 bytes of the interleaved lines against ones.
///
/// # Safety
/// The CPU must have NEON and DOTPROD.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn pack(t: &mut WeightTile, f: &Format, n: usize, rows: &[u8], row_bytes: usize) {
    crate::tile::shape_weights(t, f, n, rows, row_bytes);
    for (r, row) in rows.chunks_exact(row_bytes).enumerate() {
        let q = &mut t.row_q[r * n..(r + 1) * n];
        let (sw, mw) = (&mut t.sw[..], &mut t.mw[..]);
        match f.ty {
            GgmlType::Q4_0 => legacy_row::<BlockQ4_0>(row, q, sw, mw, r),
            GgmlType::Q4_1 => legacy_row::<BlockQ4_1>(row, q, sw, mw, r),
            GgmlType::Q5_0 => legacy_row::<BlockQ5_0>(row, q, sw, mw, r),
            GgmlType::Q5_1 => legacy_row::<BlockQ5_1>(row, q, sw, mw, r),
            GgmlType::Q8_0 => legacy_row::<BlockQ8_0>(row, q, sw, mw, r),
            GgmlType::Q4_K => k4_row::<false>(row, q, sw, mw, r),
            GgmlType::Q5_K => k4_row::<true>(row, q, sw, mw, r),
            GgmlType::Q6_K => q6k_row(row, q, sw, r),
            other => unreachable!("Format::of has no tile format for {other}"),
        }
    }
    let quads = n / 4;
    let src: &[i32] = bytemuck::cast_slice(&t.row_q);
    let dst: &mut [i32] = bytemuck::cast_slice_mut(&mut t.q);
    assert!(src.len() == quads * TILE_ROWS && dst.len() == quads * TILE_ROWS);
    let blocks = quads / 16;
    for b in 0..blocks {
        for rg in 0..TILE_ROWS / 4 {
            // SAFETY: row r's quads 16b..16b + 16 are at r * quads + 16b in `src`; quad k of
            // rows 4rg..4rg + 4 is 4 i32 at k * 16 + 4rg in `dst` (k < quads).
            unsafe {
                let v: [int32x4x4_t; 4] = core::array::from_fn(|i| {
                    vld1q_s32_x4(src.as_ptr().add((4 * rg + i) * quads + 16 * b))
                });
                let d = dst.as_mut_ptr().add(16 * b * TILE_ROWS + 4 * rg);
                macro_rules! quads {
                    ($m:tt) => {{
                        let q = int32x4x4_t(v[0].$m, v[1].$m, v[2].$m, v[3].$m);
                        let d = d.add(4 * $m * TILE_ROWS);
                        vst4q_lane_s32::<0>(d, q);
                        vst4q_lane_s32::<1>(d.add(TILE_ROWS), q);
                        vst4q_lane_s32::<2>(d.add(2 * TILE_ROWS), q);
                        vst4q_lane_s32::<3>(d.add(3 * TILE_ROWS), q);
                    }};
                }
                quads!(0);
                quads!(1);
                quads!(2);
                quads!(3);
            }
        }
    }
    for k4 in blocks * 16..quads {
        for r in 0..TILE_ROWS {
            dst[k4 * TILE_ROWS + r] = src[r * quads + k4];
        }
    }
    // corr = -128 * (sum of q per row and group), from the interleaved lines: lane r % 4 of
    // sum r / 4.
    match f.group {
        32 => corr::<8>(t),
        16 => corr::<4>(t),
        other => unreachable!("no tile group of {other}"),
    }
}

/// `t.corr` from the interleaved lines of `t.q`, for groups of `L` lines: -128 times the sum
/// of each row's q in the group, lane r % 4 of sum r / 4 (`L` constant, so that the lines of
/// a group are one straight run of loads and `sdot`).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn corr<const L: usize>(t: &mut WeightTile) {
    let ones = vdupq_n_s8(1);
    let lines: &[[i8; 64]] = bytemuck::cast_slice(&t.q);
    assert!(t.corr.len() * L == lines.len() * TILE_ROWS);
    for (lines, out) in lines
        .chunks_exact(L)
        .zip(t.corr.chunks_exact_mut(TILE_ROWS))
    {
        let mut s = [vdupq_n_s32(0); 4];
        for line in lines {
            // SAFETY: one 64-byte line.
            let v = unsafe { vld1q_s8_x4(line.as_ptr()) };
            s[0] = sdot(s[0], v.0, ones);
            s[1] = sdot(s[1], v.1, ones);
            s[2] = sdot(s[2], v.2, ones);
            s[3] = sdot(s[3], v.3, ones);
        }
        let c = s.map(|s| vmulq_n_s32(s, -128));
        // SAFETY: 16 i32 of `corr`.
        unsafe { vst1q_s32_x4(out.as_mut_ptr(), int32x4x4_t(c[0], c[1], c[2], c[3])) };
    }
}
