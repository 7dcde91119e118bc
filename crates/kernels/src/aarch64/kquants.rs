//! The K-quants (Q2_K .. Q6_K) against Q8_K on NEON and with SDOT.
//!
//! Every kernel computes the scalar kernel's per-block integer sums exactly (integer sums do
//! not depend on the order of their terms) and combines them with the scalar kernel's f32
//! expression, term by term in the same order, so the results equal
//! `crate::scalar::vec_dot_q*_k_q8_k` bit for bit, and the four-token kernels equal the
//! one-token ones. ggml's NEON kernels add per-group products in lanes and floats in another
//! order; the integer work here follows them where that costs no exactness.
//!
//! Shape shared by all: a weight block is unpacked once into signed bytes in element order
//! (16 vectors of 16), then, for each of the N activation rows, the products of 16- or
//! 32-element groups are reduced to one i32 per group with pairwise adds (four groups to an
//! i32x4), multiplied by a vector of four group scales and accumulated. One horizontal add per
//! block and row gives the scalar's `isum`. Groups of one block never mix in a lane before
//! their scale is applied, since each has its own scale.
//!
//! The NEON level multiplies bytes into i16 (`smull`/`smlal`), which holds up to 8 products
//! of the 5-bit weights and 4 of the 6-bit ones (|w·y| ≤ 31·128 resp. 32·128) before
//! widening; the dotprod level uses `sdot` per group.

use crate::blocks::{BlockQ6K, BlockQ8K};
use core::arch::aarch64::*;
use lingqiao_gguf::QK_K;

/// 16 bytes from the start of `s` (panics if shorter; every caller passes a fixed-size block
/// field at a constant offset, so the check folds away).
#[inline]
#[target_feature(enable = "neon")]
fn ld(s: &[u8]) -> uint8x16_t {
    let s = &s[..16];
    // SAFETY: `s` has 16 readable bytes; ld1 has no alignment requirement.
    unsafe { vld1q_u8(s.as_ptr()) }
}

/// 32 bytes from the start of `s`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn ld2(s: &[u8]) -> [uint8x16_t; 2] {
    let s = &s[..32];
    // SAFETY: `s` has 32 readable bytes; ld1 has no alignment requirement.
    let v = unsafe { vld1q_u8_x2(s.as_ptr()) };
    [v.0, v.1]
}

/// 64 bytes from the start of `s`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn ld4(s: &[u8]) -> [uint8x16_t; 4] {
    let s = &s[..64];
    // SAFETY: `s` has 64 readable bytes; ld1 has no alignment requirement.
    let v = unsafe { vld1q_u8_x4(s.as_ptr()) };
    [v.0, v.1, v.2, v.3]
}

/// The activations of a Q8_K block, behind a pointer whose origin the compiler cannot see.
/// Otherwise it folds the 4-byte offset of `qs` into every load, and offsets that are not
/// multiples of 16 cannot be paired: 16 single loads per row and block instead of 8 `ldp`.
#[inline]
#[target_feature(enable = "neon")]
// The pointer is only passed through, never read in the asm: `nomem` is right.
#[allow(clippy::pointers_in_nomem_asm_block)]
fn act(b: &BlockQ8K) -> &[i8; QK_K] {
    let mut p = b.qs.as_ptr();
    // SAFETY: the empty template only passes the pointer through a register unchanged.
    unsafe {
        core::arch::asm!(
            "// {p}",
            p = inout(reg) p,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    // SAFETY: `p` is `b.qs`'s address, so it points to its 256 bytes, borrowed as long as `b`.
    unsafe { &*p.cast::<[i8; QK_K]>() }
}

/// Activations `64 c .. 64 c + 64` of a row from [`act`].
#[inline]
#[target_feature(enable = "neon")]
fn y64(y: &[i8; QK_K], c: usize) -> [int8x16_t; 4] {
    let s = &y[64 * c..64 * c + 64];
    // SAFETY: `s` has 64 readable bytes; ld1 has no alignment requirement.
    let v = unsafe { vld1q_s8_x4(s.as_ptr()) };
    [v.0, v.1, v.2, v.3]
}

/// The 16 bsums of a Q8_K block as i16 lanes (loaded as bytes: the block may sit at any
/// address, and the target is little-endian like the format).
#[inline]
#[target_feature(enable = "neon")]
fn bsums(b: &BlockQ8K) -> [int16x8_t; 2] {
    let [lo, hi] = ld2(b.bsums.as_flattened());
    [vreinterpretq_s16_u8(lo), vreinterpretq_s16_u8(hi)]
}

/// Sum over the 8 groups of 32 of `m[g] · (bsums[2g] + bsums[2g+1])` in i32 (exact for any
/// i16 bsums): the mins term of Q4_K/Q5_K.
#[inline]
#[target_feature(enable = "neon")]
fn mins_dot(s: [int16x8_t; 2], m: [int32x4_t; 2]) -> i32 {
    let p = vmulq_s32(vpaddlq_s16(s[0]), m[0]);
    vaddvq_s32(vmlaq_s32(p, vpaddlq_s16(s[1]), m[1]))
}

/// Sum over 16 lanes of `s[k] · m[k]` in i32 (exact for any i16 bsums and 8-bit weights).
#[inline]
#[target_feature(enable = "neon")]
fn bsums_dot(s: [int16x8_t; 2], m: [int16x8_t; 2]) -> i32 {
    let p = vmull_s16(vget_low_s16(s[0]), vget_low_s16(m[0]));
    let p = vmlal_high_s16(p, s[0], m[0]);
    let p = vmlal_s16(p, vget_low_s16(s[1]), vget_low_s16(m[1]));
    vaddvq_s32(vmlal_high_s16(p, s[1], m[1]))
}

/// Two f16 (little-endian bytes) as f32, in one `fcvtl`: the values `half` gives, without its
/// run-time feature check on every block.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn f16_pair(a: [u8; 2], b: [u8; 2]) -> (f32, f32) {
    let bits = u64::from(u16::from_le_bytes(a)) | (u64::from(u16::from_le_bytes(b)) << 16);
    let h = vcreate_u16(bits);
    let f: float32x4_t;
    // SAFETY: fcvtl (half to single, base Advanced SIMD) only reads and writes registers.
    unsafe {
        core::arch::asm!(
            "fcvtl {f:v}.4s, {h:v}.4h",
            f = lateout(vreg) f,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (vgetq_lane_f32::<0>(f), vgetq_lane_f32::<1>(f))
}

/// `v` unchanged, but opaque to the compiler. Without this LLVM tracks that decoded weights
/// are small and non-negative and rewrites `smull`/`smlal` on them into widen-and-narrow
/// sequences outside the row loop (some 40 extra instructions per block at four rows).
#[inline]
#[target_feature(enable = "neon")]
fn opaque<const K: usize>(mut v: [int8x16_t; K]) -> [int8x16_t; K] {
    for v in &mut v {
        // SAFETY: the empty template leaves the register as it is.
        unsafe {
            core::arch::asm!(
                "// {v:v}",
                v = inout(vreg) * v,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
    }
    v
}

/// Bytes as i32 in four vectors (lanes 0..4, 4..8, 8..12, 12..16).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn widen_s8(v: int8x16_t) -> [int32x4_t; 4] {
    let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
    [
        vmovl_s16(vget_low_s16(lo)),
        vmovl_high_s16(lo),
        vmovl_s16(vget_low_s16(hi)),
        vmovl_high_s16(hi),
    ]
}

/// Little-endian word `k` of 12 scale bytes.
#[inline(always)]
fn u32_at(s: &[u8; 12], k: usize) -> u32 {
    u32::from_le_bytes([s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]])
}

/// The scales and the mins of a Q4_K/Q5_K block as i32 (groups 0..4, 4..8);
/// `scales_mins_k4` with word operations (as ggml's kmask decoding).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn k4_scales(s: &[u8; 12]) -> ([int32x4_t; 2], [int32x4_t; 2]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let (u0, u1, u2) = (u32_at(s, 0), u32_at(s, 1), u32_at(s, 2));
    let sc = u64::from(u0 & LOW6) | (u64::from((u2 & LOW4) | (((u0 >> 6) & LOW2) << 4)) << 32);
    let m =
        u64::from(u1 & LOW6) | (u64::from(((u2 >> 4) & LOW4) | (((u1 >> 6) & LOW2) << 4)) << 32);
    let sc = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(sc)));
    let m = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(m)));
    (
        [vmovl_s16(vget_low_s16(sc)), vmovl_high_s16(sc)],
        [vmovl_s16(vget_low_s16(m)), vmovl_high_s16(m)],
    )
}

/// The 16 signed scales of a Q3_K block (minus 32, as `scales_q3k`), from word operations as
/// ggml's kmask decoding.
#[inline]
#[target_feature(enable = "neon")]
fn q3_scales(s: &[u8; 12]) -> int8x16_t {
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let (u0, u1, t) = (u32_at(s, 0), u32_at(s, 1), u32_at(s, 2));
    let a0 = (u0 & LOW4) | ((t & LOW2) << 4);
    let a1 = (u1 & LOW4) | (((t >> 2) & LOW2) << 4);
    let a2 = ((u0 >> 4) & LOW4) | (((t >> 4) & LOW2) << 4);
    let a3 = ((u1 >> 4) & LOW4) | (((t >> 6) & LOW2) << 4);
    let lo = u64::from(a0) | (u64::from(a1) << 32);
    let hi = u64::from(a2) | (u64::from(a3) << 32);
    let v = vreinterpretq_s8_u8(vcombine_u8(vcreate_u8(lo), vcreate_u8(hi)));
    vsubq_s8(v, vdupq_n_s8(32))
}

/// The 128 Q4_K values 0..=15 of 64 qs bytes (two 64-element chunks) in element order:
/// low nibbles of the first 32 bytes, their high nibbles, then the same for the next 32.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn q4_values(q: [uint8x16_t; 4]) -> [uint8x16_t; 8] {
    let m4 = vdupq_n_u8(0x0F);
    [
        vandq_u8(q[0], m4),
        vandq_u8(q[1], m4),
        vshrq_n_u8::<4>(q[0]),
        vshrq_n_u8::<4>(q[1]),
        vandq_u8(q[2], m4),
        vandq_u8(q[3], m4),
        vshrq_n_u8::<4>(q[2]),
        vshrq_n_u8::<4>(q[3]),
    ]
}

/// The bytes as signed (decoded values are all below 128).
#[inline]
#[target_feature(enable = "neon")]
fn s8(v: [uint8x16_t; 8]) -> [int8x16_t; 8] {
    let r = |k: usize| vreinterpretq_s8_u8(v[k]);
    [r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7)]
}

/// The 64 Q5_K values 0..=31 of one 64-element chunk: qs bytes `q` and the chunk's qh bits,
/// which `hq` (the qh bytes shifted right by 2 per chunk) holds at bits 0 (low nibbles) and
/// 1 (high nibbles).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn q5_chunk(q: [uint8x16_t; 2], hq: [uint8x16_t; 2]) -> [uint8x16_t; 4] {
    let m5 = vdupq_n_u8(0x1F);
    // Insert bit 0 at bit 4 above the low nibble, resp. (shifted by 3) bit 1 at bit 4 below
    // the high nibble moved down; the bits above 4 that come along are masked off.
    let lo = |k: usize| vandq_u8(vsliq_n_u8::<4>(q[k], hq[k]), m5);
    let hi = |k: usize| vandq_u8(vsriq_n_u8::<4>(vshlq_n_u8::<3>(hq[k]), q[k]), m5);
    [lo(0), lo(1), hi(0), hi(1)]
}

/// The 128 Q6_K values of half `h` of a block as signed -32..=31, in element order.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn q6_half(a: &BlockQ6K, h: usize) -> [int8x16_t; 8] {
    let l = ld4(&a.ql[64 * h..]);
    let [h0, h1] = ld2(&a.qh[32 * h..]);
    let (h0s, h1s) = (vshrq_n_u8::<2>(h0), vshrq_n_u8::<2>(h1));
    let m6 = vdupq_n_u8(0x3F);
    let m32 = vdupq_n_s8(32);
    // Quarters 0, 1: low nibbles with qh bits 0-1 resp. 2-3 inserted at bits 4-5 (the two
    // bits above come along and are masked off); quarters 2, 3: high nibbles shifted in
    // under qh bits 4-5 resp. 6-7 (for the latter nothing lies above).
    let v = [
        vandq_u8(vsliq_n_u8::<4>(l[0], h0), m6),
        vandq_u8(vsliq_n_u8::<4>(l[1], h1), m6),
        vandq_u8(vsliq_n_u8::<4>(l[2], h0s), m6),
        vandq_u8(vsliq_n_u8::<4>(l[3], h1s), m6),
        vandq_u8(vsriq_n_u8::<4>(h0, l[0]), m6),
        vandq_u8(vsriq_n_u8::<4>(h1, l[1]), m6),
        vsriq_n_u8::<4>(h0s, l[2]),
        vsriq_n_u8::<4>(h1s, l[3]),
    ];
    let r = |k: usize| vsubq_s8(vreinterpretq_s8_u8(v[k]), m32);
    [r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7)]
}

/// The 128 Q3_K values of chunk `n` (qs bytes `q`) as signed -4..=3, in element order. `nh`
/// is the inverted hmask shifted left so that bit `4 n + 3` sits at bit 7; it comes back
/// shifted to bit `4 n - 1` for the next lower chunk.
#[inline]
#[target_feature(enable = "neon")]
fn q3_chunk(q: [uint8x16_t; 2], nh: [uint8x16_t; 2]) -> ([int8x16_t; 8], [uint8x16_t; 2]) {
    // Value = -4·(hmask bit clear) + two low bits: with the low bits at 7-6 of `q`, SRI by 1
    // puts them at 6-5 under bit 7 of `nh`, and an arithmetic shift right by 5 gives the
    // value. Walking k = 3 down to 0, `q` moves up by 2 (bits 2k, 2k + 1 to 7-6) and `nh`
    // by 1 (bit 4 n + k to 7) each step.
    let mut out = [vdupq_n_s8(0); 8];
    let (mut q, mut nh) = (q, nh);
    for k in (0..4).rev() {
        if k < 3 {
            q = [vshlq_n_u8::<2>(q[0]), vshlq_n_u8::<2>(q[1])];
            nh = [vshlq_n_u8::<1>(nh[0]), vshlq_n_u8::<1>(nh[1])];
        }
        for half in 0..2 {
            let v = vsriq_n_u8::<1>(nh[half], q[half]);
            out[2 * k + half] = vshrq_n_s8::<5>(vreinterpretq_s8_u8(v));
        }
    }
    (out, [vshlq_n_u8::<1>(nh[0]), vshlq_n_u8::<1>(nh[1])])
}

/// Kernel bodies shared by the two levels; `sums16`, `sums32` and `dot64` come from the
/// module the macro is expanded in.
macro_rules! kquant_kernels {
    ($feat:literal, $level:literal) => {
        use super::*;
        use crate::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};

        #[doc = concat!("Matches ggml's ", $level, " `ggml_vec_dot_q2_K_q8_K`,")]
        /// for `N` activation rows;
        /// bit-identical to the scalar kernel. The 2-bit values are multiplied by their 4-bit
        /// group scales once per block (at most 45, still a byte), so all 256 products of a
        /// row go into one accumulator; the mins meet the bsums.
        #[target_feature(enable = $feat)]
        pub(crate) fn q2_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
            let (w, xs) = super::super::rows::<BlockQ2K, BlockQ8K, N>(n / QK_K, w, x);
            let mut sumf = [0f32; N];
            for (i, a) in w.iter().enumerate() {
                let bj: [&BlockQ8K; N] = core::array::from_fn(|j| &xs[j][i]);
                let yj: [&[i8; QK_K]; N] = core::array::from_fn(|j| act(bj[j]));
                let s = ld(&a.scales);
                let sc = vandq_u8(s, vdupq_n_u8(0x0F));
                let m = vshrq_n_u8::<4>(s);
                let mins = [
                    vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m))),
                    vreinterpretq_s16_u16(vmovl_high_u8(m)),
                ];
                let sc = [
                    vdupq_laneq_u8::<0>(sc),
                    vdupq_laneq_u8::<1>(sc),
                    vdupq_laneq_u8::<2>(sc),
                    vdupq_laneq_u8::<3>(sc),
                    vdupq_laneq_u8::<4>(sc),
                    vdupq_laneq_u8::<5>(sc),
                    vdupq_laneq_u8::<6>(sc),
                    vdupq_laneq_u8::<7>(sc),
                    vdupq_laneq_u8::<8>(sc),
                    vdupq_laneq_u8::<9>(sc),
                    vdupq_laneq_u8::<10>(sc),
                    vdupq_laneq_u8::<11>(sc),
                    vdupq_laneq_u8::<12>(sc),
                    vdupq_laneq_u8::<13>(sc),
                    vdupq_laneq_u8::<14>(sc),
                    vdupq_laneq_u8::<15>(sc),
                ];
                let (ad, amin) = f16_pair(a.d, a.dmin);
                let mut acc = [vdupq_n_s32(0); N];
                for c in 0..2 {
                    let mut q = ld2(&a.qs[32 * c..]);
                    for kk in 0..2 {
                        // Elements 128 c + 64 kk .. + 64: shifts 2k for k = 2 kk, 2 kk + 1.
                        let mut v = [vdupq_n_s8(0); 4];
                        for k in 0..2 {
                            if kk + k > 0 {
                                q = [vshrq_n_u8::<2>(q[0]), vshrq_n_u8::<2>(q[1])];
                            }
                            for half in 0..2 {
                                let g = 8 * c + 4 * kk + 2 * k + half;
                                let val = vandq_u8(q[half], vdupq_n_u8(3));
                                v[2 * k + half] = vreinterpretq_s8_u8(vmulq_u8(val, sc[g]));
                            }
                        }
                        let v = opaque(v);
                        for j in 0..N {
                            acc[j] = dot64(acc[j], v, y64(yj[j], 2 * c + kk));
                        }
                    }
                }
                for j in 0..N {
                    let b = bj[j];
                    let isum = vaddvq_s32(acc[j]);
                    let summs = bsums_dot(bsums(b), mins);
                    let dall = b.d() * ad;
                    let dmin = b.d() * amin;
                    sumf[j] += dall * isum as f32 - dmin * summs as f32;
                }
            }
            *out = sumf;
        }

        #[doc = concat!("Matches ggml's ", $level, " `ggml_vec_dot_q3_K_q8_K`,")]
        /// for `N` activation rows;
        /// bit-identical to the scalar kernel. The values are decoded signed (-4..=3), so no
        /// bsums correction is needed.
        #[target_feature(enable = $feat)]
        pub(crate) fn q3_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
            let (w, xs) = super::super::rows::<BlockQ3K, BlockQ8K, N>(n / QK_K, w, x);
            let mut sumf = [0f32; N];
            for (i, a) in w.iter().enumerate() {
                let bj: [&BlockQ8K; N] = core::array::from_fn(|j| &xs[j][i]);
                let yj: [&[i8; QK_K]; N] = core::array::from_fn(|j| act(bj[j]));
                let sc = widen_s8(q3_scales(&a.scales));
                let ad = f16_pair(a.d, [0, 0]).0;
                // Bit 7 of the inverted hmask is chunk 1's k = 3 bit.
                let [h0, h1] = ld2(&a.hmask);
                let mut nh = [vmvnq_u8(h0), vmvnq_u8(h1)];
                let mut acc = [vdupq_n_s32(0); N];
                for c in (0..2).rev() {
                    let (v, next) = q3_chunk(ld2(&a.qs[32 * c..]), nh);
                    let v = opaque(v);
                    nh = next;
                    for (h, v) in [[v[0], v[1], v[2], v[3]], [v[4], v[5], v[6], v[7]]]
                        .into_iter()
                        .enumerate()
                    {
                        for j in 0..N {
                            let g = sums16(v, y64(yj[j], 2 * c + h));
                            acc[j] = vmlaq_s32(acc[j], g, sc[2 * c + h]);
                        }
                    }
                }
                for j in 0..N {
                    let b = bj[j];
                    let isum = vaddvq_s32(acc[j]);
                    sumf[j] += (ad * b.d()) * isum as f32;
                }
            }
            *out = sumf;
        }

        #[doc = concat!("Matches ggml's ", $level, " `ggml_vec_dot_q4_K_q8_K`,")]
        /// for `N` activation rows;
        /// bit-identical to the scalar kernel.
        #[target_feature(enable = $feat)]
        pub(crate) fn q4_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
            let (w, xs) = super::super::rows::<BlockQ4K, BlockQ8K, N>(n / QK_K, w, x);
            let mut sumf = [0f32; N];
            for (i, a) in w.iter().enumerate() {
                let bj: [&BlockQ8K; N] = core::array::from_fn(|j| &xs[j][i]);
                let yj: [&[i8; QK_K]; N] = core::array::from_fn(|j| act(bj[j]));
                let (sc, mins) = k4_scales(&a.scales);
                let (ad, amin) = f16_pair(a.d, a.dmin);
                let mut acc = [vdupq_n_s32(0); N];
                for h in 0..2 {
                    let q = opaque(s8(q4_values(ld4(&a.qs[64 * h..]))));
                    for j in 0..N {
                        let y = yj[j];
                        let g = sums32(q, [y64(y, 2 * h), y64(y, 2 * h + 1)]);
                        acc[j] = vmlaq_s32(acc[j], g, sc[h]);
                    }
                }
                for j in 0..N {
                    let b = bj[j];
                    let isum = vaddvq_s32(acc[j]);
                    let summs = mins_dot(bsums(b), mins);
                    let d = b.d() * ad;
                    let dmin = b.d() * amin;
                    sumf[j] += d * isum as f32 - dmin * summs as f32;
                }
            }
            *out = sumf;
        }

        #[doc = concat!("Matches ggml's ", $level, " `ggml_vec_dot_q5_K_q8_K`,")]
        /// for `N` activation rows;
        /// bit-identical to the scalar kernel.
        #[target_feature(enable = $feat)]
        pub(crate) fn q5_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
            let (w, xs) = super::super::rows::<BlockQ5K, BlockQ8K, N>(n / QK_K, w, x);
            let mut sumf = [0f32; N];
            for (i, a) in w.iter().enumerate() {
                let bj: [&BlockQ8K; N] = core::array::from_fn(|j| &xs[j][i]);
                let yj: [&[i8; QK_K]; N] = core::array::from_fn(|j| act(bj[j]));
                let (sc, mins) = k4_scales(&a.scales);
                let (ad, amin) = f16_pair(a.d, a.dmin);
                let mut hq = ld2(&a.qh);
                let mut acc = [vdupq_n_s32(0); N];
                for h in 0..2 {
                    let q = ld4(&a.qs[64 * h..]);
                    let c0 = q5_chunk([q[0], q[1]], hq);
                    hq = [vshrq_n_u8::<2>(hq[0]), vshrq_n_u8::<2>(hq[1])];
                    let c1 = q5_chunk([q[2], q[3]], hq);
                    hq = [vshrq_n_u8::<2>(hq[0]), vshrq_n_u8::<2>(hq[1])];
                    let q = opaque(s8([c0[0], c0[1], c0[2], c0[3], c1[0], c1[1], c1[2], c1[3]]));
                    for j in 0..N {
                        let y = yj[j];
                        let g = sums32(q, [y64(y, 2 * h), y64(y, 2 * h + 1)]);
                        acc[j] = vmlaq_s32(acc[j], g, sc[h]);
                    }
                }
                for j in 0..N {
                    let b = bj[j];
                    let isum = vaddvq_s32(acc[j]);
                    let summs = mins_dot(bsums(b), mins);
                    let d = b.d() * ad;
                    let dmin = b.d() * amin;
                    sumf[j] += d * isum as f32 - dmin * summs as f32;
                }
            }
            *out = sumf;
        }

        #[doc = concat!("Matches ggml's ", $level, " `ggml_vec_dot_q6_K_q8_K`,")]
        /// for `N` activation rows;
        /// bit-identical to the scalar kernel. The values are decoded signed (-32..=31) once
        /// per block instead of correcting every row with its bsums.
        #[target_feature(enable = $feat)]
        pub(crate) fn q6_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
            let (w, xs) = super::super::rows::<BlockQ6K, BlockQ8K, N>(n / QK_K, w, x);
            let mut sumf = [0f32; N];
            for (i, a) in w.iter().enumerate() {
                let bj: [&BlockQ8K; N] = core::array::from_fn(|j| &xs[j][i]);
                let yj: [&[i8; QK_K]; N] = core::array::from_fn(|j| act(bj[j]));
                let sc = widen_s8(vreinterpretq_s8_u8(ld(bytemuck::cast_slice(&a.scales))));
                let ad = f16_pair(a.d, [0, 0]).0;
                let mut acc = [vdupq_n_s32(0); N];
                for h in 0..2 {
                    let v = opaque(q6_half(a, h));
                    for (k, v) in [[v[0], v[1], v[2], v[3]], [v[4], v[5], v[6], v[7]]]
                        .into_iter()
                        .enumerate()
                    {
                        for j in 0..N {
                            let g = sums16(v, y64(yj[j], 2 * h + k));
                            acc[j] = vmlaq_s32(acc[j], g, sc[2 * h + k]);
                        }
                    }
                }
                for j in 0..N {
                    let b = bj[j];
                    let isum = vaddvq_s32(acc[j]);
                    sumf[j] += (ad * b.d()) * isum as f32;
                }
            }
            *out = sumf;
        }
    };
}

/// ARMv8.0 Advanced SIMD kernels: byte products in i16 lanes (`smull`/`smlal`).
pub(crate) mod neon {
    /// Products of 16 signed bytes into 8 i16 lanes (two per lane).
    #[inline]
    #[target_feature(enable = "neon")]
    fn mul16(q: int8x16_t, y: int8x16_t) -> int16x8_t {
        vmlal_high_s8(vmull_s8(vget_low_s8(q), vget_low_s8(y)), q, y)
    }

    /// `[G0, G1, G2, G3]`, the sums of products of four 16-element groups (`q[g]`, `y[g]`).
    /// Needs |q| ≤ 32: a lane holds 4 products before widening (4 · 32 · 128 = 2^14).
    #[inline]
    #[target_feature(enable = "neon")]
    fn sums16(q: [int8x16_t; 4], y: [int8x16_t; 4]) -> int32x4_t {
        let a = vpaddq_s16(mul16(q[0], y[0]), mul16(q[1], y[1]));
        let b = vpaddq_s16(mul16(q[2], y[2]), mul16(q[3], y[3]));
        vpaddq_s32(vpaddlq_s16(a), vpaddlq_s16(b))
    }

    /// Products of 32 bytes (`q0 q1` against `y0 y1`) into 8 i16 lanes (four per lane).
    #[inline]
    #[target_feature(enable = "neon")]
    fn mul32(q0: int8x16_t, q1: int8x16_t, y0: int8x16_t, y1: int8x16_t) -> int16x8_t {
        let p = vmlal_s8(mul16(q0, y0), vget_low_s8(q1), vget_low_s8(y1));
        vmlal_high_s8(p, q1, y1)
    }

    /// `[G0, G1, G2, G3]`, the sums of products of four 32-element groups (`q[2g], q[2g+1]`).
    /// Needs 0 ≤ q ≤ 31: a lane holds 8 products before widening (8 · 31 · 128 < 2^15).
    #[inline]
    #[target_feature(enable = "neon")]
    fn sums32(q: [int8x16_t; 8], y: [[int8x16_t; 4]; 2]) -> int32x4_t {
        let [y0, y1] = y;
        let a = vpaddq_s16(
            mul32(q[0], q[1], y0[0], y0[1]),
            mul32(q[2], q[3], y0[2], y0[3]),
        );
        let b = vpaddq_s16(
            mul32(q[4], q[5], y1[0], y1[1]),
            mul32(q[6], q[7], y1[2], y1[3]),
        );
        vpaddq_s32(vpaddlq_s16(a), vpaddlq_s16(b))
    }

    /// `acc +` the products of 64 bytes, for pre-scaled weights 0 ≤ q ≤ 45 (4 products per
    /// i16 lane: 4 · 45 · 128 < 2^15).
    #[inline]
    #[target_feature(enable = "neon")]
    fn dot64(acc: int32x4_t, q: [int8x16_t; 4], y: [int8x16_t; 4]) -> int32x4_t {
        let acc = vpadalq_s16(acc, mul32(q[0], q[1], y[0], y[1]));
        vpadalq_s16(acc, mul32(q[2], q[3], y[2], y[3]))
    }

    kquant_kernels!("neon", "NEON");
}

/// ARMv8.2 dotprod kernels: byte products summed in i32 lanes by `sdot`.
pub(crate) mod dotprod {
    use super::super::sdot;

    /// `[G0, G1, G2, G3]`, the sums of products of four 16-element groups (`q[g]`, `y[g]`).
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn sums16(q: [int8x16_t; 4], y: [int8x16_t; 4]) -> int32x4_t {
        let z = vdupq_n_s32(0);
        let a = vpaddq_s32(sdot(z, q[0], y[0]), sdot(z, q[1], y[1]));
        let b = vpaddq_s32(sdot(z, q[2], y[2]), sdot(z, q[3], y[3]));
        vpaddq_s32(a, b)
    }

    /// `[G0, G1, G2, G3]`, the sums of products of four 32-element groups (`q[2g], q[2g+1]`).
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn sums32(q: [int8x16_t; 8], y: [[int8x16_t; 4]; 2]) -> int32x4_t {
        let z = vdupq_n_s32(0);
        let [y0, y1] = y;
        let g0 = sdot(sdot(z, q[0], y0[0]), q[1], y0[1]);
        let g1 = sdot(sdot(z, q[2], y0[2]), q[3], y0[3]);
        let g2 = sdot(sdot(z, q[4], y1[0]), q[5], y1[1]);
        let g3 = sdot(sdot(z, q[6], y1[2]), q[7], y1[3]);
        vpaddq_s32(vpaddq_s32(g0, g1), vpaddq_s32(g2, g3))
    }

    /// `acc +` the products of 64 bytes.
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn dot64(acc: int32x4_t, q: [int8x16_t; 4], y: [int8x16_t; 4]) -> int32x4_t {
        let acc = sdot(sdot(acc, q[0], y[0]), q[1], y[1]);
        sdot(sdot(acc, q[2], y[2]), q[3], y[3])
    }

    kquant_kernels!("neon,dotprod", "dotprod");
}

#[cfg(test)]
mod tests {
    use crate::blocks::*;
    use lingqiao_gguf::{GgmlType, QK_K};

    pub(super) struct Rng(pub(super) u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    type Kernel<const N: usize> = fn(usize, &[u8], &[u8], &mut [f32; N]);

    /// Random bytes everywhere (activations -128..=127 and bsums that need not match them:
    /// the kernels must agree on every input), finite f16 and f32 scales.
    pub(super) fn case(ty: GgmlType, nb: usize, r: &mut Rng) -> (Vec<u8>, Vec<u8>) {
        let mut w: Vec<u8> = (0..nb * ty.type_size()).map(|_| r.next() as u8).collect();
        for block in w.chunks_exact_mut(ty.type_size()) {
            for &off in crate::f16_scale_offsets(ty) {
                let v = half::f16::from_f32((r.next() % 2001) as f32 / 1000.0 - 1.0);
                block[off..off + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        let xs = size_of::<BlockQ8K>();
        let mut x: Vec<u8> = (0..4 * nb * xs).map(|_| r.next() as u8).collect();
        for (k, block) in x.chunks_exact_mut(xs).enumerate() {
            // Extremes now and then: all -128, or bsums at the i16 limits.
            match r.next() % 8 {
                0 => block[4..4 + QK_K].fill(0x80),
                1 => block[4 + QK_K..].fill(if k % 2 == 0 { 0x80 } else { 0x7f }),
                _ => {}
            }
            let d = (r.next() % 2001) as f32 / 100.0 - 10.0;
            block[..4].copy_from_slice(&d.to_le_bytes());
        }
        (w, x)
    }

    fn check(
        ty: GgmlType,
        scalar: fn(usize, &[u8], &[u8]) -> f32,
        one: Kernel<1>,
        four: Kernel<4>,
        level: &str,
    ) {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ ty.type_size() as u64);
        for trial in 0..200 {
            let nb = 1 + trial % 5;
            let n = nb * QK_K;
            let (w, x) = case(ty, nb, &mut r);
            let row = x.len() / 4;
            let mut got4 = [0f32; 4];
            four(n, &w, &x, &mut got4);
            for j in 0..4 {
                let xj = &x[j * row..(j + 1) * row];
                let want = scalar(n, &w, xj);
                let mut got = [0f32; 1];
                one(n, &w, xj, &mut got);
                assert_eq!(
                    got[0].to_bits(),
                    want.to_bits(),
                    "{level} {ty} n={n}: {} vs {want}",
                    got[0]
                );
                assert_eq!(got4[j].to_bits(), want.to_bits(), "{level} {ty} x4 row {j}");
            }
        }
    }

    macro_rules! check_level {
        ($level:ident, $name:literal) => {{
            use super::$level::*;
            use crate::scalar::*;
            // SAFETY (each): the caller checked the level's features.
            check(
                GgmlType::Q2_K,
                vec_dot_q2_k_q8_k,
                |n, w, x, o| unsafe { q2_k_q8_k::<1>(n, w, x, o) },
                |n, w, x, o| unsafe { q2_k_q8_k::<4>(n, w, x, o) },
                $name,
            );
            check(
                GgmlType::Q3_K,
                vec_dot_q3_k_q8_k,
                |n, w, x, o| unsafe { q3_k_q8_k::<1>(n, w, x, o) },
                |n, w, x, o| unsafe { q3_k_q8_k::<4>(n, w, x, o) },
                $name,
            );
            check(
                GgmlType::Q4_K,
                vec_dot_q4_k_q8_k,
                |n, w, x, o| unsafe { q4_k_q8_k::<1>(n, w, x, o) },
                |n, w, x, o| unsafe { q4_k_q8_k::<4>(n, w, x, o) },
                $name,
            );
            check(
                GgmlType::Q5_K,
                vec_dot_q5_k_q8_k,
                |n, w, x, o| unsafe { q5_k_q8_k::<1>(n, w, x, o) },
                |n, w, x, o| unsafe { q5_k_q8_k::<4>(n, w, x, o) },
                $name,
            );
            check(
                GgmlType::Q6_K,
                vec_dot_q6_k_q8_k,
                |n, w, x, o| unsafe { q6_k_q8_k::<1>(n, w, x, o) },
                |n, w, x, o| unsafe { q6_k_q8_k::<4>(n, w, x, o) },
                $name,
            );
        }};
    }

    #[test]
    fn neon_kquants_equal_scalar_bit_for_bit() {
        if std::arch::is_aarch64_feature_detected!("neon") {
            check_level!(neon, "neon");
        }
    }

    #[test]
    fn dotprod_kquants_equal_scalar_bit_for_bit() {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            check_level!(dotprod, "dotprod");
        }
    }
}

#[cfg(test)]
mod count {
    /// For counting instructions under qemu's plugin: `LQ_KQ="level type n reps"` runs that
    /// kernel `reps` times on 16 blocks (per-block count: difference of two runs).
    #[test]
    #[ignore]
    fn run_kernel_for_instruction_counts() {
        use lingqiao_gguf::GgmlType;
        let spec = std::env::var("LQ_KQ").unwrap_or_default();
        let f: Vec<&str> = spec.split_whitespace().collect();
        let [level, ty, tokens, reps] = f[..] else {
            return;
        };
        let reps: usize = reps.parse().unwrap();
        let ty = match ty {
            "q2_k" => GgmlType::Q2_K,
            "q3_k" => GgmlType::Q3_K,
            "q4_k" => GgmlType::Q4_K,
            "q5_k" => GgmlType::Q5_K,
            _ => GgmlType::Q6_K,
        };
        let mut r = super::tests::Rng(1);
        let (w, x) = super::tests::case(ty, 16, &mut r);
        let n = 16 * 256;
        let mut o1 = [0f32; 1];
        let mut o4 = [0f32; 4];
        macro_rules! go {
            ($m:ident) => {{
                use super::$m::*;
                for _ in 0..reps {
                    // SAFETY: run only where the level's features exist.
                    unsafe {
                        match (ty, tokens) {
                            (GgmlType::Q2_K, "1") => q2_k_q8_k::<1>(n, &w, &x, &mut o1),
                            (GgmlType::Q3_K, "1") => q3_k_q8_k::<1>(n, &w, &x, &mut o1),
                            (GgmlType::Q4_K, "1") => q4_k_q8_k::<1>(n, &w, &x, &mut o1),
                            (GgmlType::Q5_K, "1") => q5_k_q8_k::<1>(n, &w, &x, &mut o1),
                            (GgmlType::Q6_K, "1") => q6_k_q8_k::<1>(n, &w, &x, &mut o1),
                            (GgmlType::Q2_K, _) => q2_k_q8_k::<4>(n, &w, &x, &mut o4),
                            (GgmlType::Q3_K, _) => q3_k_q8_k::<4>(n, &w, &x, &mut o4),
                            (GgmlType::Q4_K, _) => q4_k_q8_k::<4>(n, &w, &x, &mut o4),
                            (GgmlType::Q5_K, _) => q5_k_q8_k::<4>(n, &w, &x, &mut o4),
                            _ => q6_k_q8_k::<4>(n, &w, &x, &mut o4),
                        }
                    }
                    std::hint::black_box((&o1, &o4));
                }
            }};
        }
        if level == "neon" {
            go!(neon)
        } else {
            go!(dotprod)
        }
    }
}
