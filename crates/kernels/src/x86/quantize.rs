//! AVX2 activation quantizers: Q8_0, Q8_1 and Q8_K rows, bit-identical to the scalar ones
//! (which are themselves bit-identical to ggml's x86 `quantize_row_q8_0`/`q8_1` and to
//! `quantize_row_q8_K_ref`). Every matmul quantizes its activations first, so on a portable
//! build, where `round_ties_even` is a libm call per element, this was ~5% of a prompt.
//!
//! Identity holds because each step is the same IEEE operation as in the scalar code: the
//! absolute maximum (exact), the scale (same scalar division), `v * id` (same multiply),
//! round-to-nearest-even (`vroundps` with the same mode), and integer sums.

use crate::blocks::{BlockQ8_0, BlockQ8_1, BlockQ8K, QK};
use crate::scalar::blocks_mut;
use core::arch::x86_64::*;
use half::f16;
use lingqiao_gguf::QK_K;

const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// Eight f32 from `s[..8]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load8(s: &[f32]) -> __m256 {
    let s = &s[..8];
    // SAFETY: 8 readable f32, unaligned load.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn abs8(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// Round `v * scale` for 32 values to even and pack them to i8 in order; returns the bytes
/// and their integer sum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn round_pack32(x: &[f32], scale: f32, out: &mut [i8]) -> i32 {
    let s = _mm256_set1_ps(scale);
    let q: [__m256i; 4] = core::array::from_fn(|i| {
        _mm256_cvtps_epi32(_mm256_round_ps::<ROUND>(_mm256_mul_ps(
            load8(&x[8 * i..]),
            s,
        )))
    });
    let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    // packs work within 128-bit lanes: (0,1),(2,3) -> i16 lanes [0a 1a 0b 1b] etc.; the final
    // permute restores element order.
    let p01 = _mm256_packs_epi32(q[0], q[1]);
    let p23 = _mm256_packs_epi32(q[2], q[3]);
    let b = _mm256_packs_epi16(p01, p23);
    let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let out = &mut out[..32];
    // SAFETY: 32 writable bytes, unaligned store.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), b) };
    let s4 = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32::<0b01_00_11_10>(s4));
    let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32::<0b10_11_00_01>(s4));
    _mm_cvtsi128_si32(s4)
}

/// Absolute maximum of 32 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn amax32(x: &[f32]) -> f32 {
    let m = _mm256_max_ps(
        _mm256_max_ps(abs8(load8(x)), abs8(load8(&x[8..]))),
        _mm256_max_ps(abs8(load8(&x[16..])), abs8(load8(&x[24..]))),
    );
    hmax(m)
}

/// ggml's x86 `quantize_row_q8_0`: id = 127 / amax, round half to even.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ8_0>(dst)) {
        let amax = amax32(x);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        round_pack32(x, id, &mut b.qs);
        b.d = f16::from_f32(amax / 127.0).to_le_bytes();
    }
}

/// ggml's x86 `quantize_row_q8_1`: as Q8_0 plus s = d * sum(qs) rounded once to f16.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(blocks_mut::<BlockQ8_1>(dst)) {
        let amax = amax32(x);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let sum = round_pack32(x, id, &mut b.qs);
        let d = amax / 127.0;
        b.d = f16::from_f32(d).to_le_bytes();
        b.s = f16::from_f32(sum as f32 * d).to_le_bytes();
    }
}

/// ggml's `quantize_row_q8_K_ref`: the scale from the signed element of largest magnitude
/// (the first on ties), values clamped to 127 above, sums of each 16.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(blocks_mut::<BlockQ8K>(dst)) {
        let amax = (0..QK_K / 32)
            .map(|i| amax32(&x[32 * i..]))
            .fold(0f32, f32::max);
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        let max = *x
            .iter()
            .find(|v| v.abs() == amax)
            .expect("amax is some |x|");
        let iscale = -127.0f32 / max;
        let s = _mm256_set1_ps(iscale);
        let hi = _mm256_set1_epi32(127);
        for g in 0..QK_K / 16 {
            let q0 = _mm256_min_epi32(
                _mm256_cvtps_epi32(_mm256_round_ps::<ROUND>(_mm256_mul_ps(
                    load8(&x[16 * g..]),
                    s,
                ))),
                hi,
            );
            let q1 = _mm256_min_epi32(
                _mm256_cvtps_epi32(_mm256_round_ps::<ROUND>(_mm256_mul_ps(
                    load8(&x[16 * g + 8..]),
                    s,
                ))),
                hi,
            );
            let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q0, q1));
            let bytes =
                _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
            let out = &mut b.qs[16 * g..16 * g + 16];
            // SAFETY: 16 writable bytes, unaligned store.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), bytes) };
            let sum = _mm256_add_epi32(q0, q1);
            let s4 = _mm_add_epi32(
                _mm256_castsi256_si128(sum),
                _mm256_extracti128_si256::<1>(sum),
            );
            let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32::<0b01_00_11_10>(s4));
            let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32::<0b10_11_00_01>(s4));
            b.bsums[g] = (_mm_cvtsi128_si32(s4) as i16).to_le_bytes();
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
        for scale in [1e-6f32, 0.01, 1.0, 37.5, 1e4] {
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
        out
    }

    #[test]
    fn avx2_quantizers_equal_scalar() {
        if !super::super::has_avx2() {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        type Q = fn(&[f32], &mut [u8]);
        let pairs: [(GgmlType, Q, Q); 3] = [
            (GgmlType::Q8_0, scalar::quantize_row_q8_0, |s, d| unsafe {
                super::quantize_row_q8_0(s, d)
            }),
            (GgmlType::Q8_1, scalar::quantize_row_q8_1, |s, d| unsafe {
                super::quantize_row_q8_1(s, d)
            }),
            (GgmlType::Q8_K, scalar::quantize_row_q8_k, |s, d| unsafe {
                super::quantize_row_q8_k(s, d)
            }),
        ];
        for x in cases() {
            for (ty, reference, simd) in pairs {
                let nb = row_bytes(ty, x.len()).unwrap();
                let (mut a, mut b) = (vec![0u8; nb], vec![1u8; nb]);
                reference(&x, &mut a);
                simd(&x, &mut b);
                assert_eq!(a, b, "{ty}");
            }
        }
    }
}
