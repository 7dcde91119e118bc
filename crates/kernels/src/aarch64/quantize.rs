//! The activation quantizers on NEON: Q8_0, Q8_1 and Q8_K rows, byte for byte the scalar
//! quantizers' (ggml's x86 `quantize_row_q8_0`/`q8_1` and `quantize_row_q8_K_ref`), for every
//! input, NaN, infinities and subnormal maxima included.
//!
//! Identity holds because each step is the same IEEE operation as in the scalar code, in a
//! form whose special cases agree with Rust's:
//! - the absolute maximum with `fmaxnm` from 0, which skips NaN as `f32::max` does (the
//!   order of the reduction cannot matter then: the maximum of numbers is exact);
//! - the scale by the same scalar division, and `v * id` by the same multiply;
//! - `fcvtns` (round half to even, saturating to i32, NaN to 0), which is Rust's
//!   `round_ties_even() as i32`; Q8_0/Q8_1 then narrow saturating (`sqxtn`), which with it is
//!   `as i8`, while Q8_K clamps to 127 and narrows truncating (`xtn`), which is its
//!   `.min(127) as i8` (an overflowed scale gives -inf * x there: i32::MIN, low byte 0);
//! - the sums over the stored bytes, as the scalar code sums them.

use crate::blocks::{BlockQ8_0, BlockQ8_1, BlockQ8K, QK};
use crate::scalar::blocks_mut;
use core::arch::aarch64::*;
use half::f16;
use lingqiao_gguf::QK_K;

/// Four f32 from `s[at..at + 4]`.
#[inline]
#[target_feature(enable = "neon")]
fn load4(s: &[f32], at: usize) -> float32x4_t {
    let s = &s[at..at + 4];
    // SAFETY: the slice above has 4 readable f32; vld1q needs no alignment beyond f32's.
    unsafe { vld1q_f32(s.as_ptr()) }
}

/// Sixteen bytes to `d[at..at + 16]`.
#[inline]
#[target_feature(enable = "neon")]
fn store16(d: &mut [i8], at: usize, v: int8x16_t) {
    let d = &mut d[at..at + 16];
    // SAFETY: the slice above has 16 writable bytes; vst1q_s8 has no alignment requirement.
    unsafe { vst1q_s8(d.as_mut_ptr(), v) }
}

/// The largest |x| of `x[..n]` (`n` a multiple of 16), NaN skipped, 0 for no numbers: the
/// scalar `fold(0, |a, v| a.max(v.abs()))`.
#[inline]
#[target_feature(enable = "neon")]
fn amax(x: &[f32], n: usize) -> f32 {
    // Starting every lane from 0 keeps an all-NaN input at 0, as the scalar fold's start does.
    let mut m = [vdupq_n_f32(0.0); 4];
    for i in (0..n).step_by(16) {
        for (j, m) in m.iter_mut().enumerate() {
            *m = vmaxnmq_f32(*m, vabsq_f32(load4(x, i + 4 * j)));
        }
    }
    vmaxnmvq_f32(vmaxnmq_f32(
        vmaxnmq_f32(m[0], m[1]),
        vmaxnmq_f32(m[2], m[3]),
    ))
}

/// `x[at..at + 16] * s`, rounded half to even and saturated to i32 (`fcvtns`).
#[inline]
#[target_feature(enable = "neon")]
fn round16(x: &[f32], at: usize, s: float32x4_t) -> [int32x4_t; 4] {
    core::array::from_fn(|j| vcvtnq_s32_f32(vmulq_f32(load4(x, at + 4 * j), s)))
}

/// Sixteen i32 saturated to i8 in order (Rust's `as i8` of the rounded floats).
#[inline]
#[target_feature(enable = "neon")]
fn narrow_sat(q: [int32x4_t; 4]) -> int8x16_t {
    let lo = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
    let hi = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
    vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi))
}

/// Q8_0/Q8_1's 32 bytes of one block with scale `id`; returns their sum.
#[inline]
#[target_feature(enable = "neon")]
fn round_pack32(x: &[f32], id: f32, out: &mut [i8; QK]) -> i32 {
    let s = vdupq_n_f32(id);
    let a = narrow_sat(round16(x, 0, s));
    let b = narrow_sat(round16(x, 16, s));
    store16(out, 0, a);
    store16(out, 16, b);
    // The bytes, not the i32s: they differ where the scale overflowed to infinity.
    vaddlvq_s8(a) as i32 + vaddlvq_s8(b) as i32
}

/// ggml's x86 `quantize_row_q8_0`: id = 127 / amax, round half to even.
#[target_feature(enable = "neon")]
pub(super) fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ8_0>(dst)) {
        let amax = amax(x, QK);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        round_pack32(x, id, &mut b.qs);
        b.d = f16::from_f32(amax / 127.0).to_le_bytes();
    }
}

/// ggml's x86 `quantize_row_q8_1`: as Q8_0 plus s = d * sum(qs) rounded once to f16.
#[target_feature(enable = "neon")]
pub(super) fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ8_1>(dst)) {
        let amax = amax(x, QK);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let sum = round_pack32(x, id, &mut b.qs);
        let d = amax / 127.0;
        b.d = f16::from_f32(d).to_le_bytes();
        b.s = f16::from_f32(sum as f32 * d).to_le_bytes();
    }
}

/// The first element of `x` whose magnitude is `amax` (which is some |x_i|).
#[inline]
#[target_feature(enable = "neon")]
fn first_at(x: &[f32], amax: f32) -> f32 {
    let m = vdupq_n_f32(amax);
    for i in (0..x.len()).step_by(4) {
        let v = load4(x, i);
        if vmaxvq_u32(vceqq_f32(vabsq_f32(v), m)) != 0 {
            return *x[i..i + 4]
                .iter()
                .find(|v| v.abs() == amax)
                .expect("a lane matched");
        }
    }
    unreachable!("amax is the magnitude of an element")
}

/// ggml's `quantize_row_q8_K_ref`: the scale from the signed element of largest magnitude
/// (the first on ties), values clamped to 127 above, sums of each 16.
#[target_feature(enable = "neon")]
pub(super) fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) {
    let hi = vdupq_n_s32(127);
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ8K>(dst)) {
        let amax = amax(x, QK_K);
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        let iscale = -127.0f32 / first_at(x, amax);
        let s = vdupq_n_f32(iscale);
        for g in 0..QK_K / 16 {
            let q = round16(x, 16 * g, s).map(|q| vminq_s32(q, hi));
            // Truncating narrows: the low byte, as the scalar `as i8` of an i32.
            let h0 = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
            let h1 = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
            let bytes = vcombine_s8(vmovn_s16(h0), vmovn_s16(h1));
            store16(&mut b.qs, 16 * g, bytes);
            b.bsums[g] = vaddlvq_s8(bytes).to_le_bytes();
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

#[cfg(test)]
mod tests {
    use crate::{GgmlType, row_bytes, scalar};

    fn cases() -> Vec<Vec<f32>> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let n = 4 * 256;
        let mut out = vec![vec![0.0; n]];
        for scale in [1e-40f32, 1e-37, 1e-6, 0.01, 1.0, 37.5, 1e4, 1e38] {
            out.push(
                (0..n)
                    .map(|_| ((next() >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * scale)
                    .collect(),
            );
        }
        // Ties: values that land exactly on .5 after scaling, and equal +/- maxima.
        out.push((0..n).map(|i| ((i % 255) as f32 - 127.0) * 0.5).collect());
        out.push(
            (0..n)
                .map(|i| if i % 2 == 0 { 3.0 } else { -3.0 })
                .collect(),
        );
        out.push(
            (0..n)
                .map(|i| {
                    if i % 7 == 0 {
                        -2.0
                    } else {
                        0.25 * (i % 5) as f32
                    }
                })
                .collect(),
        );
        // Special values sprinkled over ordinary ones, a block of them alone, and maxima
        // so small that the scale overflows (127 / amax or -127 / max is infinite).
        let specials = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::MIN_POSITIVE,
            f32::MAX,
            -f32::MAX,
        ];
        for (k, &sp) in specials.iter().enumerate() {
            out.push(
                (0..n)
                    .map(|i| {
                        if i % (13 + k) == 3 {
                            sp
                        } else {
                            ((next() >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * 3.0
                        }
                    })
                    .collect(),
            );
            out.push(vec![sp; n]);
            out.push(
                (0..n)
                    .map(|i| [sp, 0.0, f32::from_bits(3), -f32::from_bits(2)][i % 4])
                    .collect(),
            );
        }
        out.push(
            (0..n)
                .map(|i| f32::from_bits((next() as u32) & 0x807f_ffff) * [1.0, 0.0][i % 2])
                .collect(),
        );
        out
    }

    /// Every table's activation quantizers give the scalar quantizers' bytes.
    #[test]
    fn every_table_quantizes_as_scalar() {
        for table in crate::test_util::all_tables() {
            type Q = fn(&[f32], &mut [u8]);
            let pairs: [(GgmlType, Q, Q); 3] = [
                (
                    GgmlType::Q8_0,
                    scalar::quantize_row_q8_0,
                    table.quantize_q8_0,
                ),
                (
                    GgmlType::Q8_1,
                    scalar::quantize_row_q8_1,
                    table.quantize_q8_1,
                ),
                (
                    GgmlType::Q8_K,
                    scalar::quantize_row_q8_k,
                    table.quantize_q8_k,
                ),
            ];
            for (c, x) in cases().iter().enumerate() {
                for (ty, reference, simd) in pairs {
                    let nb = row_bytes(ty, x.len()).unwrap();
                    let (mut a, mut b) = (vec![0u8; nb], vec![1u8; nb]);
                    reference(x, &mut a);
                    simd(x, &mut b);
                    assert_eq!(a, b, "{} {ty} case {c}", table.isa);
                }
            }
        }
    }
}
