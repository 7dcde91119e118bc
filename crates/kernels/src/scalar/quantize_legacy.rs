//! Weight quantizers for the 32-element quants Q4_0, Q4_1, Q5_0, Q5_1 (Q8_0's is
//! `quantize_row_q8_0_ref` in legacy.rs): ggml's `quantize_row_q*_ref`, the ones
//! `ggml_quantize_chunk` runs without an importance matrix.
//!
//! They are bit-for-bit gguf-py's `gguf.quants.quantize`, which differs from the C code in
//! the sign of zero scales and mins of blocks whose extremes are signed zeros (see
//! [`signed_absmax`], [`min_max`]), and in a clamp that cannot bite with finite input:
//! gguf-py clamps Q5_1's values to 31, ggml does not (it would take an error of more than a
//! unit in `(max - min) * (1 / d)`). Everything is f32 arithmetic in the C code's order, no
//! fused multiply-adds, so `x * id + 8.5` rounds twice as numpy's does.
//!
//! Scalar on purpose: quantizing a file is offline work that the caller spreads over rows.

use super::{blocks_mut, c_cast_low_byte};
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, QK};
use half::f16;

/// The value of largest magnitude with its sign, the first one if several tie (gguf-py's
/// `argmax`). ggml starts from +0.0 instead of the first element, which only differs on an
/// all-zero block starting with -0.0: gguf-py stores d = -0.0 / -8 = +0.0, ggml -0.0.
#[inline(always)]
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (x[0].abs(), x[0]);
    for &v in &x[1..] {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// numpy's `min`/`max` reductions keep the last of equal values where ggml's `v < min`
/// keeps the first; they differ only in the sign of a zero min (or max), which is stored in
/// the block's m (or changes the sign of d = 0). We follow gguf-py.
#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v <= lo {
            lo = v;
        }
        if v >= hi {
            hi = v;
        }
    }
    (lo, hi)
}

#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Symmetric blocks: d = max / -half, where max is the signed value of largest magnitude, so
/// that value lands exactly on level 0 and the other side gets one level more.
fn symmetric_levels(x: &[f32], half: f32, top: u8) -> (f32, [u8; QK]) {
    let d = signed_absmax(x) / -half;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = c_cast_low_byte((v * id + (half + 0.5)).trunc()).min(top);
    }
    (d, q)
}

/// Blocks with an offset: d = (max - min) / top, values counted up from min.
fn offset_levels(x: &[f32], top: u8) -> (f32, f32, [u8; QK]) {
    let (min, max) = min_max(x);
    let d = (max - min) / f32::from(top);
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = c_cast_low_byte(((v - min) * id + 0.5).trunc()).min(top);
    }
    (d, min, q)
}

fn pack_nibbles(q: &[u8; QK]) -> [u8; QK / 2] {
    std::array::from_fn(|j| (q[j] & 0x0F) | ((q[j + QK / 2] & 0x0F) << 4))
}

fn pack_fifth_bits(q: &[u8; QK]) -> [u8; 4] {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |h, (j, &v)| h | (u32::from(v >> 4 & 1) << j));
    qh.to_le_bytes()
}

/// Matches ggml's `quantize_row_q4_0_ref`.
pub fn quantize_row_q4_0_ref(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ4_0>(dst)) {
        let (d, q) = symmetric_levels(x, 8.0, 15);
        b.d = f16::from_f32(d).to_le_bytes();
        b.qs = pack_nibbles(&q);
    }
}

/// Matches ggml's `quantize_row_q4_1_ref`.
pub fn quantize_row_q4_1_ref(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ4_1>(dst)) {
        let (d, min, q) = offset_levels(x, 15);
        b.d = f16::from_f32(d).to_le_bytes();
        b.m = f16::from_f32(min).to_le_bytes();
        b.qs = pack_nibbles(&q);
    }
}

/// Matches ggml's `quantize_row_q5_0_ref`.
pub fn quantize_row_q5_0_ref(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ5_0>(dst)) {
        let (d, q) = symmetric_levels(x, 16.0, 31);
        b.d = f16::from_f32(d).to_le_bytes();
        b.qh = pack_fifth_bits(&q);
        b.qs = pack_nibbles(&q);
    }
}

/// Matches ggml's `quantize_row_q5_1_ref` (with gguf-py's clamp to 31, see the module notes).
pub fn quantize_row_q5_1_ref(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ5_1>(dst)) {
        let (d, min, q) = offset_levels(x, 31);
        b.d = f16::from_f32(d).to_le_bytes();
        b.m = f16::from_f32(min).to_le_bytes();
        b.qh = pack_fifth_bits(&q);
        b.qs = pack_nibbles(&q);
    }
}
