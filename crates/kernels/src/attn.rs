//! The two inner loops of attention over an F16 KV cache, for a group of query heads that
//! share one KV head (grouped-query attention): each cached key and value row is converted
//! from f16 once and used by every head of the group.
//!
//! - [`dot_f16_group`]: `out[h] = q_h · k` for one key row.
//! - [`axpy_f16_group`]: `o_h += p_h * v` for one value row.
//!
//! Both have a portable version and an AVX2+FMA+F16C one; the kernel table
//! ([`crate::Kernels`]) holds the one its instruction set uses. They sum in a different
//! order from ggml's `ggml_vec_dot_f16` (8 lanes, then across), so scores can differ from the
//! one-head kernel in the last bits.

use half::f16;

/// [`dot_f16_group`]'s signature, a slot of the kernel table.
pub type AttnDotFn = fn(k: &[f16], q: &[f32], hd: usize, out: &mut [f32]);
/// [`axpy_f16_group`]'s signature, a slot of the kernel table.
pub type AttnAxpyFn = fn(v: &[f16], p: &[f32], o: &mut [f32], hd: usize);

/// `out[h] = dot(q[h * hd..][..hd], k)` for `h < out.len()`; `k` has `hd` elements.
#[inline]
pub fn dot_f16_group(k: &[f16], q: &[f32], hd: usize, out: &mut [f32]) {
    assert!(k.len() >= hd && q.len() >= out.len() * hd);
    (crate::Kernels::get().attn_dot)(k, q, hd, out)
}

/// `o[h * hd..][..hd] += p[h] * v` for `h < p.len()`; `v` has `hd` elements.
#[inline]
pub fn axpy_f16_group(v: &[f16], p: &[f32], o: &mut [f32], hd: usize) {
    assert!(v.len() >= hd && o.len() >= p.len() * hd);
    (crate::Kernels::get().attn_axpy)(v, p, o, hd)
}

/// Portable reference of [`dot_f16_group`], summing in the same 8-lane order as the AVX2
/// version (lane `i % 8`, then lanes pairwise) so the two agree closely.
pub fn dot_f16_group_scalar(k: &[f16], q: &[f32], hd: usize, out: &mut [f32]) {
    for (h, o) in out.iter_mut().enumerate() {
        let qh = &q[h * hd..][..hd];
        let mut lanes = [0f32; 8];
        for (i, (a, b)) in k[..hd].iter().zip(qh).enumerate() {
            lanes[i % 8] = a.to_f32().mul_add(*b, lanes[i % 8]);
        }
        *o = lanes.iter().sum();
    }
}

/// Portable reference of [`axpy_f16_group`].
pub fn axpy_f16_group_scalar(v: &[f16], p: &[f32], o: &mut [f32], hd: usize) {
    for (h, &ph) in p.iter().enumerate() {
        for (acc, e) in o[h * hd..][..hd].iter_mut().zip(&v[..hd]) {
            *acc = ph.mul_add(e.to_f32(), *acc);
        }
    }
}

/// Safe wrappers of the AVX2 versions, for the SIMD tables.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2_safe {
    use half::f16;

    // SAFETY (both): only reachable through a table, which exists only after AVX2, FMA and
    // F16C were detected and the table's probe passed.
    pub(crate) fn dot(k: &[f16], q: &[f32], hd: usize, out: &mut [f32]) {
        unsafe { super::avx2::dot_f16_group(k, q, hd, out) }
    }
    pub(crate) fn axpy(v: &[f16], p: &[f32], o: &mut [f32], hd: usize) {
        unsafe { super::avx2::axpy_f16_group(v, p, o, hd) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;
    use half::f16;

    /// 8 f16 from `s[i..i + 8]` as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_f16x8(s: &[f16], i: usize) -> __m256 {
        let s = &s[i..i + 8];
        // SAFETY: 8 readable f16 (16 bytes), unaligned load.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(s.as_ptr().cast()) })
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load8(s: &[f32], i: usize) -> __m256 {
        let s = &s[i..i + 8];
        // SAFETY: 8 readable f32, unaligned load.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        // Pairwise as the scalar reference: (l0+l4)+(l2+l6) ... close enough to be within
        // rounding; exact order is not part of the contract.
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_f16_group(k: &[f16], q: &[f32], hd: usize, out: &mut [f32]) {
        if !hd.is_multiple_of(8) {
            return super::dot_f16_group_scalar(k, q, hd, out);
        }
        // Up to 8 heads share each converted key vector.
        for (hc, oc) in out.chunks_mut(8).enumerate() {
            let mut acc = [_mm256_setzero_ps(); 8];
            for i in (0..hd).step_by(8) {
                let kv = load_f16x8(k, i);
                for (h, a) in acc.iter_mut().enumerate().take(oc.len()) {
                    *a = _mm256_fmadd_ps(kv, load8(q, (hc * 8 + h) * hd + i), *a);
                }
            }
            for (o, a) in oc.iter_mut().zip(acc) {
                *o = hsum(a);
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy_f16_group(v: &[f16], p: &[f32], o: &mut [f32], hd: usize) {
        if !hd.is_multiple_of(8) {
            return super::axpy_f16_group_scalar(v, p, o, hd);
        }
        for i in (0..hd).step_by(8) {
            let vv = load_f16x8(v, i);
            for (h, &ph) in p.iter().enumerate() {
                let dst = &mut o[h * hd + i..h * hd + i + 8];
                // SAFETY: 8 readable and writable f32, unaligned.
                unsafe {
                    let cur = _mm256_loadu_ps(dst.as_ptr());
                    _mm256_storeu_ps(
                        dst.as_mut_ptr(),
                        _mm256_fmadd_ps(_mm256_set1_ps(ph), vv, cur),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_agrees_with_scalar() {
        let mut s = 12345u32;
        let mut rnd = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        for (hd, heads) in [(64, 1), (64, 3), (64, 7), (256, 4), (128, 9), (12, 2)] {
            let k: Vec<f16> = (0..hd).map(|_| f16::from_f32(rnd())).collect();
            let q: Vec<f32> = (0..hd * heads).map(|_| rnd()).collect();
            let p: Vec<f32> = (0..heads).map(|_| rnd().abs()).collect();
            let (mut a, mut b) = (vec![0f32; heads], vec![0f32; heads]);
            dot_f16_group_scalar(&k, &q, hd, &mut a);
            dot_f16_group(&k, &q, hd, &mut b);
            for h in 0..heads {
                let exact: f64 = (0..hd).map(|i| k[i].to_f64() * q[h * hd + i] as f64).sum();
                assert!((a[h] as f64 - exact).abs() < 1e-5, "scalar {hd}x{heads}");
                assert!(
                    (b[h] as f64 - exact).abs() < 1e-5,
                    "dispatched {hd}x{heads}"
                );
            }
            let base: Vec<f32> = (0..hd * heads).map(|_| rnd()).collect();
            let (mut oa, mut ob) = (base.clone(), base.clone());
            axpy_f16_group_scalar(&k, &p, &mut oa, hd);
            axpy_f16_group(&k, &p, &mut ob, hd);
            // Both are one fused multiply-add per element: identical.
            assert_eq!(oa, ob);
        }
    }
}
