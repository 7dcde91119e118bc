//! The AVX-512 + VNNI tile kernel (see [`crate::tile`]): 16 weight rows in the lanes of a
//! 512-bit register, four tokens at a time, each lane doing exactly what
//! [`crate::tile::run_ref`] does for its row, so the results are the same bits.
//!
//! Per group of 32 elements and token: 8 `vpdpbusd` (4 bytes of the token broadcast against
//! the 16 rows' 4 bytes), one conversion, one multiply and one FMA, for 512 multiply-adds.
//! The four tokens' sums are independent chains, which keeps the `vpdpbusd` latency hidden.
//!
//! Only called through `super::AVX512`, which exists after the features were detected and
//! the probe passed.

use crate::tile::{ActTile, Format, TILE_ROWS, check};

use core::arch::x86_64::*;
use std::ops::Range;

/// Tokens per kernel pass.
const T: usize = 4;

/// Tokens `t0..t0 + NT` against the tile; results to `out[j * 16..]` for token `t0 + j`.
///
/// # Safety
/// The CPU must have AVX512F/BW/VL and VNNI, and [`check`] must have passed for a token
/// range covering `t0..t0 + NT` and an `out` of at least `NT * 16`.
#[inline(always)]
unsafe fn pass<const G: usize, const GPD: usize, const MIN: bool, const NT: usize>(
    w: &crate::tile::WeightTile,
    x: &ActTile,
    t0: usize,
    out: &mut [f32],
) {
    let n = w.n;
    let ng = n / G;
    // SAFETY: every pointer below stays inside the vectors `check` sized: q holds n * 16
    // bytes (k4 < n / 4, 64 each), corr/sw/mw ng * 16, u n per token, dx ndx and gx ng per
    // token for the tokens of the range, out NT * 16.
    unsafe {
        let q = w.q.as_ptr();
        let u: [*const u8; NT] = core::array::from_fn(|j| x.u.as_ptr().add((t0 + j) * n));
        let dx: [*const f32; NT] = core::array::from_fn(|j| x.dx.as_ptr().add((t0 + j) * x.ndx));
        let gx: [*const f32; NT] = core::array::from_fn(|j| {
            if MIN {
                x.gx.as_ptr().add((t0 + j) * ng)
            } else {
                core::ptr::null()
            }
        });
        let mut acc = [_mm512_setzero_ps(); NT];
        let mut a = [_mm512_setzero_ps(); NT];
        for g in 0..ng {
            let corr = _mm512_loadu_si512(w.corr.as_ptr().add(g * TILE_ROWS).cast());
            let mut s = [corr; NT];
            for c in 0..G / 4 {
                let k4 = g * (G / 4) + c;
                let wv = _mm512_loadu_si512(q.add(k4 * 64).cast());
                for j in 0..NT {
                    let y = _mm512_set1_epi32(u[j].add(k4 * 4).cast::<i32>().read_unaligned());
                    s[j] = _mm512_dpbusd_epi32(s[j], y, wv);
                }
            }
            let sw = _mm512_loadu_ps(w.sw.as_ptr().add(g * TILE_ROWS));
            let mw = if MIN {
                _mm512_loadu_ps(w.mw.as_ptr().add(g * TILE_ROWS))
            } else {
                _mm512_setzero_ps()
            };
            for j in 0..NT {
                let v = _mm512_cvtepi32_ps(s[j]);
                if GPD == 1 {
                    let scale = _mm512_mul_ps(sw, _mm512_set1_ps(*dx[j].add(g)));
                    acc[j] = _mm512_fmadd_ps(v, scale, acc[j]);
                    if MIN {
                        acc[j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*gx[j].add(g)), acc[j]);
                    }
                } else {
                    a[j] = _mm512_fmadd_ps(v, sw, a[j]);
                    if MIN {
                        a[j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*gx[j].add(g)), a[j]);
                    }
                }
            }
            if GPD > 1 && (g + 1) % GPD == 0 {
                for j in 0..NT {
                    let d = _mm512_set1_ps(*dx[j].add(g / GPD));
                    acc[j] = _mm512_fmadd_ps(a[j], d, acc[j]);
                    a[j] = _mm512_setzero_ps();
                }
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.as_mut_ptr().add(j * TILE_ROWS), *acc);
        }
    }
}

/// All tokens of `tokens`, four at a time and then one at a time.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn run_typed<const G: usize, const GPD: usize, const MIN: bool>(
    w: &crate::tile::WeightTile,
    x: &ActTile,
    tokens: Range<usize>,
    out: &mut [f32],
) {
    let mut t = tokens.start;
    let mut o = 0;
    // SAFETY: the caller ran `check` for `tokens` and `out`; each pass stays inside both.
    unsafe {
        while t + T <= tokens.end {
            pass::<G, GPD, MIN, T>(w, x, t, &mut out[o..]);
            t += T;
            o += T * TILE_ROWS;
        }
        while t < tokens.end {
            pass::<G, GPD, MIN, 1>(w, x, t, &mut out[o..]);
            t += 1;
            o += TILE_ROWS;
        }
    }
}

/// [`crate::tile::WeightTile::pack`] for this module's features: the rows are unpacked by
/// the portable code (compiled here with AVX-512, which vectorizes it), then interleaved by
/// 16 x 16 transposes of 4-byte quads, and each group's sum of q is one `vpdpbusd` of the
/// interleaved lines against ones per 4 elements, for all 16 rows at once.
///
/// # Safety
/// The CPU must have AVX512F/BW/VL, VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn pack(
    t: &mut crate::tile::WeightTile,
    f: &Format,
    n: usize,
    rows: &[u8],
    row_bytes: usize,
) {
    crate::tile::unpack_rows(t, f, n, rows, row_bytes);
    let quads = n / 4;
    let src: &[[i8; 4]] = bytemuck::cast_slice(&t.row_q);
    let dst: &mut [[[i8; 4]; TILE_ROWS]] = bytemuck::cast_slice_mut(&mut t.q);
    assert!(src.len() == quads * TILE_ROWS && dst.len() == quads);
    // Whole blocks of 16 quads (64 bytes of each row) by transposes, then the rest.
    let blocks = quads / 16;
    for b in 0..blocks {
        // SAFETY: row r's block b is 16 quads at r * quads + 16 * b, inside `src` (asserted
        // above); the 16 lines 16 * b.. are inside `dst`.
        unsafe {
            let mut v: [__m512i; 16] = core::array::from_fn(|r| {
                _mm512_loadu_si512(src.as_ptr().add(r * quads + 16 * b).cast())
            });
            transpose16(&mut v);
            for (i, v) in v.iter().enumerate() {
                _mm512_storeu_si512(dst.as_mut_ptr().add(16 * b + i).cast(), *v);
            }
        }
    }
    for (k4, line) in dst.iter_mut().enumerate().skip(blocks * 16) {
        for (r, slot) in line.iter_mut().enumerate() {
            *slot = src[r * quads + k4];
        }
    }
    // corr = -128 * (sum of q per row and group), from the interleaved lines.
    let per_group = f.group / 4;
    let ones = _mm512_set1_epi8(1);
    for (g, lines) in dst.chunks_exact(per_group).enumerate() {
        let mut acc = _mm512_setzero_si512();
        for line in lines {
            // SAFETY: one 64-byte line.
            acc = _mm512_dpbusd_epi32(acc, ones, unsafe {
                _mm512_loadu_si512(line.as_ptr().cast())
            });
        }
        let corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(acc));
        let out = &mut t.corr[g * TILE_ROWS..(g + 1) * TILE_ROWS];
        // SAFETY: 16 i32 of `corr`.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), corr) };
    }
}

/// Transposes a 16 x 16 matrix of 32-bit elements held in 16 registers (row i in `v[i]`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn transpose16(v: &mut [__m512i; 16]) {
    // 32-bit, then 64-bit interleaves within 128-bit lanes: 4 x 4 blocks transposed.
    let mut a = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    let mut b = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        let (p, q) = (4 * i, 4 * i + 2);
        b[4 * i] = _mm512_unpacklo_epi64(a[p], a[q]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[p], a[q]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[p + 1], a[q + 1]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[p + 1], a[q + 1]);
    }
    // Now b[4i + j] holds, in 128-bit lane l, column 4l + j of rows 4i..4i + 4. Gather the
    // lanes: first pairs of rows-blocks, then the halves.
    let mut c = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        // Rows 0..8 (blocks 0, 1) and rows 8..16 (blocks 2, 3).
        c[j] = _mm512_shuffle_i32x4::<0x88>(b[j], b[4 + j]); // lanes 0, 2 of each
        c[4 + j] = _mm512_shuffle_i32x4::<0xDD>(b[j], b[4 + j]); // lanes 1, 3
        c[8 + j] = _mm512_shuffle_i32x4::<0x88>(b[8 + j], b[12 + j]);
        c[12 + j] = _mm512_shuffle_i32x4::<0xDD>(b[8 + j], b[12 + j]);
    }
    for j in 0..4 {
        // Column 4l + j for l = 0, 2 are in c[j] (rows 0..8) and c[8 + j] (rows 8..16).
        v[j] = _mm512_shuffle_i32x4::<0x88>(c[j], c[8 + j]); // lane 0
        v[8 + j] = _mm512_shuffle_i32x4::<0xDD>(c[j], c[8 + j]); // lane 2
        v[4 + j] = _mm512_shuffle_i32x4::<0x88>(c[4 + j], c[12 + j]); // lane 1
        v[12 + j] = _mm512_shuffle_i32x4::<0xDD>(c[4 + j], c[12 + j]); // lane 3
    }
}

/// The tile kernel for the formats of [`Format::of`].
///
/// # Safety
/// The CPU must have AVX512F/BW/VL and VNNI.
pub(super) unsafe fn run(
    f: &Format,
    w: &crate::tile::WeightTile,
    x: &ActTile,
    tokens: Range<usize>,
    out: &mut [f32],
) {
    check(f, w, x, &tokens, out);
    // SAFETY: the features are the caller's promise; `check` passed.
    unsafe { crate::tile::dispatch_format!(f, run_typed(w, x, tokens, out)) }
}
