//! F32, F16 and BF16 rows.

use half::{bf16, f16};

/// ggml's `ggml_compute_fp32_to_bf16`: round to nearest even, NaNs kept quiet.
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        ((u >> 16) | 64) as u16
    } else {
        ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
    }
}

#[inline(always)]
fn f16_at(src: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([src[2 * i], src[2 * i + 1]]).to_f32()
}

#[inline(always)]
fn bf16_at(src: &[u8], i: usize) -> f32 {
    bf16::from_le_bytes([src[2 * i], src[2 * i + 1]]).to_f32()
}

#[inline(always)]
fn f32_at(src: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]])
}

pub fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) {
    for (i, d) in dst.iter_mut().enumerate().take(src.len() / 4) {
        *d = f32_at(src, i);
    }
}

/// Matches ggml's `ggml_fp16_to_fp32_row`.
pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    for (i, d) in dst.iter_mut().enumerate().take(src.len() / 2) {
        *d = f16_at(src, i);
    }
}

/// Matches ggml's `ggml_bf16_to_fp32_row`.
pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    for (i, d) in dst.iter_mut().enumerate().take(src.len() / 2) {
        *d = bf16_at(src, i);
    }
}

pub fn quantize_row_f32(src: &[f32], dst: &mut [u8]) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(4)) {
        d.copy_from_slice(&x.to_le_bytes());
    }
}

/// Matches ggml's `ggml_fp32_to_fp16_row` (round to nearest even, as F16C does).
pub fn quantize_row_f16(src: &[f32], dst: &mut [u8]) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&f16::from_f32(*x).to_le_bytes());
    }
}

/// Matches ggml's `ggml_fp32_to_bf16_row_ref`.
pub fn quantize_row_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
    }
}

/// Matches ggml's scalar `ggml_vec_dot_f32`: f32 products summed in f64.
pub fn vec_dot_f32(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let n = n.min(w.len() / 4).min(x.len() / 4);
    let mut sum = 0f64;
    for i in 0..n {
        sum += (f32_at(w, i) * f32_at(x, i)) as f64;
    }
    sum as f32
}

/// Matches ggml's scalar `ggml_vec_dot_f16`: f32 products summed in f64.
pub fn vec_dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let n = n.min(w.len() / 2).min(x.len() / 2);
    let mut sum = 0f64;
    for i in 0..n {
        sum += (f16_at(w, i) * f16_at(x, i)) as f64;
    }
    sum as f32
}

/// Matches ggml's scalar `ggml_vec_dot_bf16`: f32 products summed in f64.
pub fn vec_dot_bf16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let n = n.min(w.len() / 2).min(x.len() / 2);
    let mut sum = 0f64;
    for i in 0..n {
        sum += (bf16_at(w, i) * bf16_at(x, i)) as f64;
    }
    sum as f32
}
