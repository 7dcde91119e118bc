//! Activation functions over whole rows.
//!
//! - [`swiglu`]: `gate = silu(gate) * up`, ggml's `ggml_vec_swiglu_f32`.
//!
//! The portable version calls the C library's `expf` per element; the SIMD ones evaluate
//! e^x as 2^n * e^r (n = round(x / ln 2), |r| <= ln 2 / 2) with the degree-7 Taylor
//! polynomial of e^r, whose truncation error (r^8 / 8!, below 6e-9 relative) is well under
//! half an f32 ulp, so they differ from the portable version by about one ulp. ggml's own
//! SIMD silu (`ggml_v_silu`) is likewise an approximation of that order. Decoding qwen15
//! (28 layers of 8960 elements), the portable loop takes 0.65-0.69 ms per token, the AVX-512
//! one 0.19-0.22 and the AVX2 one 0.25 (one thread or two: it runs on one).

/// [`swiglu`]'s signature, a slot of the kernel table.
pub type SwigluFn = fn(gate: &mut [f32], up: &[f32]);

/// `gate[i] = gate[i] / (1 + e^-gate[i]) * up[i]` for `i < gate.len()` (`up` at least as
/// long).
#[inline]
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    assert!(up.len() >= gate.len());
    (crate::Kernels::get().swiglu)(gate, up)
}

/// Portable [`swiglu`].
pub fn swiglu_scalar(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// Inputs of e^x are clamped to this range: below it e^x is under the smallest normal f32
/// (silu then divides by 1 + a value too small to matter), above it 2^n would overflow;
/// silu of a gate below -EXP_HI is taken as `0 * gate` (the portable version's
/// `gate / inf` for gates below -88.72; between the two it is under 1e-36 in size).
const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;
/// ln 2 in two parts, the first exact in few bits, so n * LN2_HI is exact for |n| <= 128.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// Safe wrappers of the SIMD versions, for the tables.
/// Safe wrappers of the NEON version, for the aarch64 tables.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon_safe {
    pub(crate) fn swiglu(gate: &mut [f32], up: &[f32]) {
        // SAFETY: only reachable through the aarch64 tables, which exist only after NEON
        // was detected and their probe passed.
        unsafe { super::neon::swiglu(gate, up) }
    }
}

/// The NEON version: the AVX2 one's operations in two 4-lane halves (the same roundings,
/// fused multiply-adds where it has them, and its 8-element steps and scalar tail), so it
/// gives the AVX2 version's results.
#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{EXP_HI, EXP_LO, LN2_HI, LN2_LO, swiglu_scalar};
    use core::arch::aarch64::*;

    /// 1/k! for k = 7 down to 2, the Horner order of the polynomial after `1 + r` (the
    /// x86 module's constants).
    const INV_FACT: [f32; 6] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];

    /// e^x in 4 lanes (see the module's comment), for x already in [EXP_LO, EXP_HI].
    #[inline]
    #[target_feature(enable = "neon")]
    fn exp4(x: float32x4_t) -> float32x4_t {
        let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(core::f32::consts::LOG2_E)));
        // x - n * c in one rounding, as x86's fnmadd.
        let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
        let mut p = vdupq_n_f32(INV_FACT[0]);
        for c in &INV_FACT[1..] {
            p = vfmaq_f32(vdupq_n_f32(*c), p, r);
        }
        let one = vdupq_n_f32(1.0);
        p = vfmaq_f32(one, p, r);
        p = vfmaq_f32(one, p, r);
        // 2^n from the exponent field (n is in -126..=127 here).
        let two_n = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(
            vcvtnq_s32_f32(n),
            vdupq_n_s32(127),
        )));
        vmulq_f32(p, two_n)
    }

    /// silu(x) * u in 4 lanes.
    #[inline]
    #[target_feature(enable = "neon")]
    fn swiglu4(x: float32x4_t, u: float32x4_t) -> float32x4_t {
        let zero = vdupq_n_f32(0.0);
        // 0 - x rather than a negation: +0 for x = -0, as on x86. maxnm/minnm take a NaN x
        // to the bound as x86's max/min do; it stays NaN in x / (...).
        let m = vminnmq_f32(
            vmaxnmq_f32(vsubq_f32(zero, x), vdupq_n_f32(EXP_LO)),
            vdupq_n_f32(EXP_HI),
        );
        let s = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0), exp4(m)));
        let tiny = vcltq_f32(x, vdupq_n_f32(-EXP_HI));
        let s = vbslq_f32(tiny, vmulq_f32(x, zero), s);
        vmulq_f32(s, u)
    }

    /// See [`super::swiglu`].
    #[target_feature(enable = "neon")]
    pub(super) fn swiglu(gate: &mut [f32], up: &[f32]) {
        let n = gate.len() / 8 * 8;
        for (g, u) in gate[..n].chunks_exact_mut(8).zip(up.chunks_exact(8)) {
            let (g, u) = (&mut g[..8], &u[..8]);
            // SAFETY: 8 readable (and for `g` writable) f32 each; vld1q/vst1q need only
            // f32 alignment.
            unsafe {
                let a = swiglu4(vld1q_f32(g.as_ptr()), vld1q_f32(u.as_ptr()));
                let b = swiglu4(vld1q_f32(g.as_ptr().add(4)), vld1q_f32(u.as_ptr().add(4)));
                vst1q_f32(g.as_mut_ptr(), a);
                vst1q_f32(g.as_mut_ptr().add(4), b);
            }
        }
        swiglu_scalar(&mut gate[n..], &up[n..]);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The AVX2 version's operations one element at a time, in scalar f32.
        // max then min as the vector code does (`clamp` differs on NaN).
        #[allow(clippy::manual_clamp)]
        fn avx2_model(x: f32, u: f32) -> f32 {
            let m = (0.0 - x).max(EXP_LO).min(EXP_HI);
            let n = (m * core::f32::consts::LOG2_E).round_ties_even();
            let r = (-n).mul_add(LN2_HI, m);
            let r = (-n).mul_add(LN2_LO, r);
            let mut p = INV_FACT[0];
            for c in &INV_FACT[1..] {
                p = p.mul_add(r, *c);
            }
            p = p.mul_add(r, 1.0);
            p = p.mul_add(r, 1.0);
            let e = p * f32::from_bits(((n as i32 + 127) << 23) as u32);
            let s = if x < -EXP_HI { x * 0.0 } else { x / (1.0 + e) };
            s * u
        }

        /// The NEON version gives the AVX2 version's bits (whole 8-element steps; the
        /// tail is the portable code in both).
        #[test]
        fn neon_gives_the_avx2_bits() {
            let mut rnd = crate::test_util::uniform(31337);
            let mut gate: Vec<f32> = (0..4000)
                .map(|i| rnd() * [1.0, 8.0, 40.0, 100.0][i % 4])
                .collect();
            gate.extend([
                0.0,
                -0.0,
                1e-30,
                -1e-30,
                86.9,
                87.1,
                -87.9,
                -88.1,
                100.0,
                -100.0,
                1e30,
                -1e30,
                f32::INFINITY,
                f32::NEG_INFINITY,
                88.0,
                -88.0,
            ]);
            let up: Vec<f32> = (0..gate.len()).map(|_| rnd() * 2.0).collect();
            let mut got = gate.clone();
            super::super::neon_safe::swiglu(&mut got, &up);
            for (i, (&x, &u)) in gate.iter().zip(&up).enumerate() {
                let want = avx2_model(x, u);
                assert!(
                    got[i].to_bits() == want.to_bits() || (got[i].is_nan() && want.is_nan()),
                    "swiglu({x}) * {u}: {} vs {want}",
                    got[i]
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod simd_safe {
    // SAFETY (both): only reachable through a table, which exists only after its features
    // (AVX2, FMA and F16C; AVX-512F for the second) were detected and its probe passed.
    pub(crate) fn swiglu_avx2(gate: &mut [f32], up: &[f32]) {
        unsafe { super::x86::swiglu_avx2(gate, up) }
    }
    pub(crate) fn swiglu_avx512(gate: &mut [f32], up: &[f32]) {
        unsafe { super::x86::swiglu_avx512(gate, up) }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{EXP_HI, EXP_LO, LN2_HI, LN2_LO, swiglu_scalar};
    use core::arch::x86_64::*;

    /// 1/k! for k = 7 down to 2, the Horner order of the polynomial after `1 + r`.
    const INV_FACT: [f32; 6] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];

    /// e^x in 8 lanes (see the module's comment), for x already in [EXP_LO, EXP_HI].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(core::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(INV_FACT[0]);
        for c in &INV_FACT[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
        }
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
        // 2^n from the exponent field (n is in -126..=127 here).
        let two_n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        )));
        _mm256_mul_ps(p, two_n)
    }

    /// [`exp8`] in 16 lanes, the same operations.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn exp16(x: __m512) -> __m512 {
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(core::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(INV_FACT[0]);
        for c in &INV_FACT[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
        }
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
        let two_n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        )));
        _mm512_mul_ps(p, two_n)
    }

    /// See [`super::swiglu`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn swiglu_avx2(gate: &mut [f32], up: &[f32]) {
        let n = gate.len() / 8 * 8;
        let (lo, hi) = (_mm256_set1_ps(EXP_LO), _mm256_set1_ps(EXP_HI));
        let one = _mm256_set1_ps(1.0);
        for (g, u) in gate[..n].chunks_exact_mut(8).zip(up.chunks_exact(8)) {
            // SAFETY: 8 readable (and for `g` writable) f32 each, unaligned.
            unsafe {
                let x = _mm256_loadu_ps(g.as_ptr());
                // -x, clamped; a NaN x becomes a bound here but stays NaN in x / (...).
                let m = _mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), x), lo), hi);
                let s = _mm256_div_ps(x, _mm256_add_ps(one, exp8(m)));
                let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-EXP_HI));
                let s = _mm256_blendv_ps(s, _mm256_mul_ps(x, _mm256_setzero_ps()), tiny);
                _mm256_storeu_ps(
                    g.as_mut_ptr(),
                    _mm256_mul_ps(s, _mm256_loadu_ps(u.as_ptr())),
                );
            }
        }
        swiglu_scalar(&mut gate[n..], &up[n..]);
    }

    /// See [`super::swiglu`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn swiglu_avx512(gate: &mut [f32], up: &[f32]) {
        let n = gate.len() / 16 * 16;
        let (lo, hi) = (_mm512_set1_ps(EXP_LO), _mm512_set1_ps(EXP_HI));
        let one = _mm512_set1_ps(1.0);
        for (g, u) in gate[..n].chunks_exact_mut(16).zip(up.chunks_exact(16)) {
            // SAFETY: 16 readable (and for `g` writable) f32 each, unaligned.
            unsafe {
                let x = _mm512_loadu_ps(g.as_ptr());
                let m = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), lo), hi);
                let s = _mm512_div_ps(x, _mm512_add_ps(one, exp16(m)));
                let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(-EXP_HI));
                let s = _mm512_mask_mul_ps(s, tiny, x, _mm512_setzero_ps());
                _mm512_storeu_ps(
                    g.as_mut_ptr(),
                    _mm512_mul_ps(s, _mm512_loadu_ps(u.as_ptr())),
                );
            }
        }
        // The tail in 8 lanes, then scalar: the same results as the AVX2 version.
        swiglu_avx2(&mut gate[n..], &up[n..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_agrees_with_the_portable_version() {
        let mut rnd = crate::test_util::uniform(987_654_321);
        // Typical gate values, wide ones, and the edges of the clamped range.
        let mut gate: Vec<f32> = (0..997).map(|i| rnd() * [1.0, 8.0, 40.0][i % 3]).collect();
        gate.extend([
            0.0, -0.0, 1e-30, -1e-30, 86.9, 87.1, -87.9, -88.1, 100.0, -100.0, 1e30, -1e30,
        ]);
        let up: Vec<f32> = (0..gate.len()).map(|_| rnd() * 2.0).collect();
        let mut want = gate.clone();
        swiglu_scalar(&mut want, &up);
        let tables = crate::test_util::all_tables();
        for table in tables {
            for len in [gate.len(), 7, 16, 23] {
                let mut got = gate[..len].to_vec();
                (table.swiglu)(&mut got, &up);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    // A few ulps, and values under 1e-30 count as zero.
                    let tol = 4.0 * f32::EPSILON * w.abs() + 1e-30;
                    assert!(
                        (g - w).abs() <= tol,
                        "{} swiglu({}) * {}: {g} vs {w}",
                        table.isa,
                        gate[i],
                        up[i]
                    );
                }
            }
            let mut nan = vec![f32::NAN; 17];
            (table.swiglu)(&mut nan, &up);
            assert!(
                nan.iter().all(|v| v.is_nan()),
                "{}: NaN stays NaN",
                table.isa
            );
        }
    }
}
