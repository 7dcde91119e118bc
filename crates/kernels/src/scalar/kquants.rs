//! The 256-element super-block quants: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the Q8_K activations.
//!
//! Each type has an `unpack_*` that spells out where element e's bits live; dequantize and the
//! dot product both go through it, so the bit layout is written once.

use super::{blocks, blocks_mut};
use crate::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, scales_mins_k4, scales_q3k,
};
use lingqiao_gguf::QK_K;

/// Q2_K values 0..=3. Element e sits in chunk e / 128 (32 bytes of qs), at bit 2 * ((e % 128) / 32)
/// of byte e % 32 of that chunk.
fn unpack_q2k(b: &BlockQ2K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        let (n, r) = (e / 128, e % 128);
        *v = (b.qs[32 * n + r % 32] >> (2 * (r / 32))) & 3;
    }
    q
}

/// Q3_K values -4..=3: two low bits laid out as Q2_K, the third bit is bit e / 32 of hmask[e % 32]
/// and, oddly, a clear bit means "subtract 4".
fn unpack_q3k(b: &BlockQ3K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        let (n, r) = (e / 128, e % 128);
        let low = (b.qs[32 * n + r % 32] >> (2 * (r / 32))) & 3;
        let high = (b.hmask[e % 32] >> (e / 32)) & 1;
        *v = low as i8 - if high == 1 { 0 } else { 4 };
    }
    q
}

/// Q4_K values 0..=15: each 64-element chunk c uses 32 bytes, low nibbles first.
fn unpack_q4k(qs: &[u8; QK_K / 2]) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        let (c, r) = (e / 64, e % 64);
        let byte = qs[32 * c + r % 32];
        *v = if r < 32 { byte & 0x0F } else { byte >> 4 };
    }
    q
}

/// Q5_K values 0..=31: Q4_K's nibbles plus bit e / 32 of qh[e % 32] as the fifth bit.
fn unpack_q5k(b: &BlockQ5K) -> [u8; QK_K] {
    let mut q = unpack_q4k(&b.qs);
    for (e, v) in q.iter_mut().enumerate() {
        *v |= ((b.qh[e % 32] >> (e / 32)) & 1) << 4;
    }
    q
}

/// Q6_K values -32..=31. Half h = e / 128 uses 64 bytes of ql and 32 of qh. Element l of quarter
/// k of the half takes byte l + 32 * (k % 2) of ql (low nibble for k < 2, high for k >= 2) and
/// bits 2k, 2k + 1 of qh[l] on top.
fn unpack_q6k(b: &BlockQ6K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        let (h, r) = (e / 128, e % 128);
        let (k, l) = (r / 32, r % 32);
        let byte = b.ql[64 * h + l + 32 * (k & 1)];
        let low = if k < 2 { byte & 0x0F } else { byte >> 4 };
        let high = (b.qh[32 * h + l] >> (2 * k)) & 3;
        *v = (low | (high << 4)) as i8 - 32;
    }
    q
}

/// Matches ggml's `dequantize_row_q2_K`.
pub fn dequantize_row_q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ2K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (b.d(), b.dmin());
        let q = unpack_q2k(b);
        for (g, yg) in y.chunks_exact_mut(16).enumerate() {
            let dl = d * (b.scales[g] & 0x0F) as f32;
            let ml = dmin * (b.scales[g] >> 4) as f32;
            for (i, o) in yg.iter_mut().enumerate() {
                *o = dl * q[16 * g + i] as f32 - ml;
            }
        }
    }
}

/// Matches ggml's `dequantize_row_q3_K`.
pub fn dequantize_row_q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ3K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        let sc = scales_q3k(&b.scales);
        let q = unpack_q3k(b);
        for (g, yg) in y.chunks_exact_mut(16).enumerate() {
            let dl = d * sc[g] as f32;
            for (i, o) in yg.iter_mut().enumerate() {
                *o = dl * q[16 * g + i] as f32;
            }
        }
    }
}

/// Shared by Q4_K and Q5_K, whose groups of 32 have a 6-bit scale and a 6-bit min.
fn dequantize_groups_of_32(d: f32, dmin: f32, scales: &[u8; 12], q: &[u8; QK_K], y: &mut [f32]) {
    let (sc, m) = scales_mins_k4(scales);
    for (g, yg) in y.chunks_exact_mut(32).enumerate() {
        let d1 = d * sc[g] as f32;
        let m1 = dmin * m[g] as f32;
        for (i, o) in yg.iter_mut().enumerate() {
            *o = d1 * q[32 * g + i] as f32 - m1;
        }
    }
}

/// Matches ggml's `dequantize_row_q4_K`.
pub fn dequantize_row_q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ4K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        dequantize_groups_of_32(b.d(), b.dmin(), &b.scales, &unpack_q4k(&b.qs), y);
    }
}

/// Matches ggml's `dequantize_row_q5_K`.
pub fn dequantize_row_q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ5K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        dequantize_groups_of_32(b.d(), b.dmin(), &b.scales, &unpack_q5k(b), y);
    }
}

/// Matches ggml's `dequantize_row_q6_K`.
pub fn dequantize_row_q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ6K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        let q = unpack_q6k(b);
        for (g, yg) in y.chunks_exact_mut(16).enumerate() {
            let dl = d * b.scales[g] as f32;
            for (i, o) in yg.iter_mut().enumerate() {
                *o = dl * q[16 * g + i] as f32;
            }
        }
    }
}

/// Matches ggml's `dequantize_row_q8_K`.
pub fn dequantize_row_q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ8K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
            *o = d * q as f32;
        }
    }
}

/// ggml's `nearest_int`: round half to even (it adds 1.5 * 2^23 and reads the mantissa).
#[inline(always)]
fn nearest_int(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// Bit-for-bit ggml's `quantize_row_q8_K_ref`. The scale comes from the *signed* element of
/// largest magnitude (the first one on ties), so that element maps to exactly -127 and the
/// range is -127..=127; d is stored as 1 / iscale in f32.
pub fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ8K>(dst)) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        let iscale = -127.0f32 / max;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (j, s) in b.bsums.iter_mut().enumerate() {
            let sum: i32 = b.qs[16 * j..16 * (j + 1)].iter().map(|&q| q as i32).sum();
            *s = (sum as i16).to_le_bytes();
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// Matches ggml's `ggml_vec_dot_q2_K_q8_K_generic`: the mins enter through the activation's
/// bsums, so only the scaled part needs the per-element products.
pub fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ2K>(w), blocks::<BlockQ8K>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK_K) {
        let q = unpack_q2k(a);
        let (mut isum, mut summs) = (0i32, 0i32);
        for g in 0..16 {
            let s: i32 = (0..16)
                .map(|i| q[16 * g + i] as i32 * b.qs[16 * g + i] as i32)
                .sum();
            isum += (a.scales[g] & 0x0F) as i32 * s;
            summs += (a.scales[g] >> 4) as i32 * b.bsum(g) as i32;
        }
        let dall = b.d() * a.d();
        let dmin = b.d() * a.dmin();
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Matches ggml's `ggml_vec_dot_q3_K_q8_K_generic` (with the integer sum kept exact per block).
pub fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ3K>(w), blocks::<BlockQ8K>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK_K) {
        let q = unpack_q3k(a);
        let sc = scales_q3k(&a.scales);
        let mut isum = 0i32;
        for g in 0..16 {
            let s: i32 = (0..16)
                .map(|i| q[16 * g + i] as i32 * b.qs[16 * g + i] as i32)
                .sum();
            isum += sc[g] as i32 * s;
        }
        sumf += (a.d() * b.d()) * isum as f32;
    }
    sumf
}

/// Integer part of a Q4_K/Q5_K block against Q8_K: (sum of scale * q * q8, sum of min * bsums).
#[inline(always)]
fn groups_of_32_dot(scales: &[u8; 12], q: &[u8; QK_K], b: &BlockQ8K) -> (i32, i32) {
    let (sc, m) = scales_mins_k4(scales);
    let (mut isum, mut summs) = (0i32, 0i32);
    for g in 0..8 {
        let s: i32 = (0..32)
            .map(|i| q[32 * g + i] as i32 * b.qs[32 * g + i] as i32)
            .sum();
        isum += sc[g] as i32 * s;
        summs += m[g] as i32 * (b.bsum(2 * g) as i32 + b.bsum(2 * g + 1) as i32);
    }
    (isum, summs)
}

/// Matches ggml's `ggml_vec_dot_q4_K_q8_K_generic`.
pub fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ4K>(w), blocks::<BlockQ8K>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK_K) {
        let (isum, summs) = groups_of_32_dot(&a.scales, &unpack_q4k(&a.qs), b);
        let d = b.d() * a.d();
        let dmin = b.d() * a.dmin();
        sumf += d * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Matches ggml's `ggml_vec_dot_q5_K_q8_K_generic`.
pub fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ5K>(w), blocks::<BlockQ8K>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK_K) {
        let (isum, summs) = groups_of_32_dot(&a.scales, &unpack_q5k(a), b);
        let d = b.d() * a.d();
        let dmin = b.d() * a.dmin();
        sumf += d * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Matches ggml's `ggml_vec_dot_q6_K_q8_K_generic`.
pub fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ6K>(w), blocks::<BlockQ8K>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK_K) {
        let q = unpack_q6k(a);
        let mut isum = 0i32;
        for g in 0..16 {
            let s: i32 = (0..16)
                .map(|i| q[16 * g + i] as i32 * b.qs[16 * g + i] as i32)
                .sum();
            isum += a.scales[g] as i32 * s;
        }
        sumf += (a.d() * b.d()) * isum as f32;
    }
    sumf
}

/// Q8_K against Q8_K (ggml has none on the CPU; here so every type has a dot product).
pub fn vec_dot_q8_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ8K>(w), blocks::<BlockQ8K>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK_K) {
        let isum: i32 =
            a.qs.iter()
                .zip(&b.qs)
                .map(|(&p, &q)| p as i32 * q as i32)
                .sum();
        sumf += (a.d() * b.d()) * isum as f32;
    }
    sumf
}
