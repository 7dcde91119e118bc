//! The 32-element quants: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.

use super::{blocks, blocks_mut};
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
use half::f16;

/// Matches ggml's `dequantize_row_q4_0`.
pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ4_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for (j, &q) in b.qs.iter().enumerate() {
            y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Matches ggml's `dequantize_row_q4_1`.
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ4_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, m) = (b.d(), b.m());
        for (j, &q) in b.qs.iter().enumerate() {
            y[j] = (q & 0x0F) as f32 * d + m;
            y[j + QK / 2] = (q >> 4) as f32 * d + m;
        }
    }
}

/// The two 5-bit values packed at position j (< 16) of a Q5 block: elements j and j + 16.
#[inline(always)]
pub(crate) fn q5_pair(qs: &[u8; 16], qh: u32, j: usize) -> (u8, u8) {
    let h0 = (((qh >> j) & 1) << 4) as u8;
    let h1 = (((qh >> (j + 16)) & 1) << 4) as u8;
    ((qs[j] & 0x0F) | h0, (qs[j] >> 4) | h1)
}

/// Matches ggml's `dequantize_row_q5_0`.
pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ5_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, qh) = (b.d(), b.qh());
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&b.qs, qh, j);
            y[j] = (q0 as i32 - 16) as f32 * d;
            y[j + QK / 2] = (q1 as i32 - 16) as f32 * d;
        }
    }
}

/// Matches ggml's `dequantize_row_q5_1`.
pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ5_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, m, qh) = (b.d(), b.m(), b.qh());
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&b.qs, qh, j);
            y[j] = q0 as f32 * d + m;
            y[j + QK / 2] = q1 as f32 * d + m;
        }
    }
}

/// Matches ggml's `dequantize_row_q8_0`.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ8_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

/// Q8_1 has no dequantizer in ggml; this is the obvious d * q.
pub fn dequantize_row_q8_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ8_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = b.d();
        for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

/// How a 32-element activation block is rounded to int8.
#[derive(Clone, Copy)]
enum Q8Rounding {
    /// ggml's `quantize_row_q8_*_ref` (and gguf-py): q = roundf(x * (1 / d)), halves away
    /// from zero.
    Reference,
    /// ggml's x86 `quantize_row_q8_0` / `quantize_row_q8_1` (arch/x86/quants.c), which
    /// llama.cpp runs on activations on this kind of machine: q = x * (127 / amax) rounded
    /// half to even. It differs from the reference by one unit in some elements, and those
    /// flips are amplified through the layers, so activations use this one.
    X86,
}

/// Scale and rounded values of one block; d = amax / 127 either way.
#[inline(always)]
fn q8_block(x: &[f32], rounding: Q8Rounding) -> (f32, [i8; QK]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let mut qs = [0i8; QK];
    match rounding {
        Q8Rounding::Reference => {
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            for (q, v) in qs.iter_mut().zip(x) {
                *q = super::c_cast_low_byte((v * id).round()) as i8;
            }
        }
        Q8Rounding::X86 => {
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            for (q, v) in qs.iter_mut().zip(x) {
                *q = (v * id).round_ties_even() as i8;
            }
        }
    }
    (d, qs)
}

fn q8_0_blocks(src: &[f32], dst: &mut [u8], rounding: Q8Rounding) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ8_0>(dst)) {
        let (d, qs) = q8_block(x, rounding);
        b.d = f16::from_f32(d).to_le_bytes();
        b.qs = qs;
    }
}

/// `s` is d times the integer sum of the rounded values, rounded once to f16.
fn q8_1_blocks(src: &[f32], dst: &mut [u8], rounding: Q8Rounding) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ8_1>(dst)) {
        let (d, qs) = q8_block(x, rounding);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        b.d = f16::from_f32(d).to_le_bytes();
        b.s = f16::from_f32(sum as f32 * d).to_le_bytes();
        b.qs = qs;
    }
}

/// Bit-for-bit ggml's x86 `quantize_row_q8_0` (the activation quantizer).
pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    q8_0_blocks(src, dst, Q8Rounding::X86);
}

/// Bit-for-bit ggml's x86 `quantize_row_q8_1` (the activation quantizer).
pub fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) {
    q8_1_blocks(src, dst, Q8Rounding::X86);
}

/// Bit-for-bit ggml's `quantize_row_q8_0_ref` (and gguf-py's Q8_0): for writing files.
pub fn quantize_row_q8_0_ref(src: &[f32], dst: &mut [u8]) {
    q8_0_blocks(src, dst, Q8Rounding::Reference);
}

/// Bit-for-bit ggml's `quantize_row_q8_1_ref`.
pub fn quantize_row_q8_1_ref(src: &[f32], dst: &mut [u8]) {
    q8_1_blocks(src, dst, Q8Rounding::Reference);
}

#[inline(always)]
fn dot_i8(a: &[i8; QK], b: &[i8; QK]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Matches ggml's `ggml_vec_dot_q4_0_q8_0_generic`.
pub fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ4_0>(w), blocks::<BlockQ8_0>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += ((a.qs[j] & 0x0F) as i32 - 8) * b.qs[j] as i32;
            sumi += ((a.qs[j] >> 4) as i32 - 8) * b.qs[j + QK / 2] as i32;
        }
        sumf += (a.d() * b.d()) * sumi as f32;
    }
    sumf
}

/// Matches ggml's `ggml_vec_dot_q4_1_q8_1_generic`: the offset term uses the activation's s.
pub fn vec_dot_q4_1_q8_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ4_1>(w), blocks::<BlockQ8_1>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += (a.qs[j] & 0x0F) as i32 * b.qs[j] as i32;
            sumi += (a.qs[j] >> 4) as i32 * b.qs[j + QK / 2] as i32;
        }
        sumf += (a.d() * b.d()) * sumi as f32 + a.m() * b.s();
    }
    sumf
}

/// Matches ggml's `ggml_vec_dot_q5_0_q8_0_generic`.
pub fn vec_dot_q5_0_q8_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ5_0>(w), blocks::<BlockQ8_0>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK) {
        let qh = a.qh();
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&a.qs, qh, j);
            sumi += (q0 as i32 - 16) * b.qs[j] as i32;
            sumi += (q1 as i32 - 16) * b.qs[j + QK / 2] as i32;
        }
        sumf += (a.d() * b.d()) * sumi as f32;
    }
    sumf
}

/// Matches ggml's `ggml_vec_dot_q5_1_q8_1_generic`.
pub fn vec_dot_q5_1_q8_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ5_1>(w), blocks::<BlockQ8_1>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK) {
        let qh = a.qh();
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&a.qs, qh, j);
            sumi += q0 as i32 * b.qs[j] as i32;
            sumi += q1 as i32 * b.qs[j + QK / 2] as i32;
        }
        sumf += (a.d() * b.d()) * sumi as f32 + a.m() * b.s();
    }
    sumf
}

/// Matches ggml's `ggml_vec_dot_q8_0_q8_0_generic`.
pub fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ8_0>(w), blocks::<BlockQ8_0>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK) {
        sumf += (a.d() * b.d()) * dot_i8(&a.qs, &b.qs) as f32;
    }
    sumf
}

/// Q8_1 weights against Q8_1 activations (ggml has no such kernel; here so every type has one).
pub fn vec_dot_q8_1_q8_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (blocks::<BlockQ8_1>(w), blocks::<BlockQ8_1>(x));
    let mut sumf = 0f32;
    for (a, b) in w.iter().zip(x).take(n / QK) {
        sumf += (a.d() * b.d()) * dot_i8(&a.qs, &b.qs) as f32;
    }
    sumf
}
