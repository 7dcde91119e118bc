//! The two inner loops of attention over an F16 KV cache, for a group of query heads that
//! share one KV head (grouped-query attention): each cached key and value row is converted
//! from f16 once and used by every head of the group.
//!
//! - [`scores_f16`]: `out[h][r] = q_h · k_r` for a run of key rows.
//! - [`values_f16`]: `o_h += sum_r p_h[r] * v_r` for a run of value rows, in row order.
//!
//! Each has a portable version, an AVX2+FMA+F16C one and an AVX-512 one; the kernel table
//! ([`crate::Kernels`]) holds the one its instruction set uses. The dot products sum in a
//! different order from ggml's `ggml_vec_dot_f16` (8 or 16 lanes, then across), so scores
//! can differ from it in the last bits; the value sums are one fused multiply-add per
//! element and row, in row order, in every version, so they agree bit for bit.

use half::f16;

/// A run of `rows` cache rows of `hd` elements each, `stride` elements apart from the start
/// of `data`: one KV head's keys or values at consecutive slots (a cache row holds every KV
/// head, so `stride` is the row and `hd` one head of it).
#[derive(Clone, Copy)]
pub struct CacheRows<'a> {
    data: &'a [f16],
    stride: usize,
    rows: usize,
    hd: usize,
}

impl<'a> CacheRows<'a> {
    /// Panics if `data` is too short for `rows` rows.
    pub fn new(data: &'a [f16], stride: usize, rows: usize, hd: usize) -> CacheRows<'a> {
        assert!(rows == 0 || data.len() >= (rows - 1) * stride + hd);
        CacheRows {
            data,
            stride,
            rows,
            hd,
        }
    }

    /// Row `r`'s `hd` elements.
    #[inline(always)]
    fn row(&self, r: usize) -> &'a [f16] {
        &self.data[r * self.stride..][..self.hd]
    }

    /// Asks for row `r + ROWS_AHEAD` in L2, if the slice has it (see [`ROWS_AHEAD`]).
    #[inline(always)]
    fn prefetch_ahead(&self, r: usize) {
        let at = (r + ROWS_AHEAD) * self.stride;
        if let Some(row) = self.data.get(at..at + self.hd) {
            crate::ops::prefetch_l2(bytemuck::cast_slice(row));
        }
    }
}

/// [`scores_f16`]'s signature, a slot of the kernel table.
pub type AttnDotFn = fn(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize);
/// [`values_f16`]'s signature, a slot of the kernel table.
pub type AttnAxpyFn = fn(v: CacheRows<'_>, p: &[f32], p_stride: usize, o: &mut [f32]);

/// `out[h * out_stride + r] = dot(q[h * hd..][..hd], row r of k)` for every row `r` of `k` and
/// every head `h < q.len() / hd`.
#[inline]
pub fn scores_f16(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize) {
    let heads = q.len() / k.hd.max(1);
    assert!(heads == 0 || out.len() >= (heads - 1) * out_stride + k.rows);
    (crate::Kernels::get().attn_dot)(k, q, out, out_stride)
}

/// `o[h * hd..][..hd] += p[h * p_stride + r] * row r of v` for every row `r` of `v`, in
/// order, for every head `h < o.len() / hd`.
#[inline]
pub fn values_f16(v: CacheRows<'_>, p: &[f32], p_stride: usize, o: &mut [f32]) {
    let heads = o.len() / v.hd.max(1);
    assert!(heads == 0 || p.len() >= (heads - 1) * p_stride + v.rows);
    (crate::Kernels::get().attn_axpy)(v, p, p_stride, o)
}

/// Cache rows this far ahead of the one being used are asked for in L2: while decoding,
/// the rows come from memory (the previous token's weights evicted them). qwen15 decoding
/// on two threads at context 256-320, together with fewer items per KV head (see the
/// model's attention): 3.2-4.0 ms of attention per token before, 2.2-3.0 after; with the
/// old 6 items per layer, prefetching alone was within the noise.
const ROWS_AHEAD: usize = 16;

/// Heads the one-row kernels take per call in [`scores_by_row`] and [`values_by_row`] (the
/// AVX2 score kernel's group): every head's arithmetic is its own, so grouping does not
/// change results, and the per-row buffers stay on the stack.
const HEADS_AT_ONCE: usize = 8;

/// [`scores_f16`] one row at a time through a one-row kernel.
#[inline(always)]
fn scores_by_row(
    k: CacheRows<'_>,
    q: &[f32],
    out: &mut [f32],
    out_stride: usize,
    dot: impl Fn(&[f16], &[f32], usize, &mut [f32]),
) {
    let hd = k.hd;
    let heads = q.len() / hd.max(1);
    for r in 0..k.rows {
        k.prefetch_ahead(r);
        let kr = k.row(r);
        // Heads in groups of HEADS_AT_ONCE, through a buffer on the stack.
        for h0 in (0..heads).step_by(HEADS_AT_ONCE) {
            let nh = HEADS_AT_ONCE.min(heads - h0);
            let mut dots = [0f32; HEADS_AT_ONCE];
            dot(kr, &q[h0 * hd..(h0 + nh) * hd], hd, &mut dots[..nh]);
            for (h, d) in dots[..nh].iter().enumerate() {
                out[(h0 + h) * out_stride + r] = *d;
            }
        }
    }
}

/// [`values_f16`] one row at a time through a one-row kernel.
#[inline(always)]
fn values_by_row(
    v: CacheRows<'_>,
    p: &[f32],
    p_stride: usize,
    o: &mut [f32],
    axpy: impl Fn(&[f16], &[f32], &mut [f32], usize),
) {
    let hd = v.hd;
    let heads = o.len() / hd.max(1);
    for r in 0..v.rows {
        v.prefetch_ahead(r);
        let vr = v.row(r);
        for h0 in (0..heads).step_by(HEADS_AT_ONCE) {
            let nh = HEADS_AT_ONCE.min(heads - h0);
            let mut pr = [0f32; HEADS_AT_ONCE];
            for (h, x) in pr[..nh].iter_mut().enumerate() {
                *x = p[(h0 + h) * p_stride + r];
            }
            axpy(vr, &pr[..nh], &mut o[h0 * hd..(h0 + nh) * hd], hd);
        }
    }
}

/// Portable [`scores_f16`].
pub fn scores_f16_scalar(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize) {
    scores_by_row(k, q, out, out_stride, dot_f16_group_scalar)
}

/// Portable [`values_f16`].
pub fn values_f16_scalar(v: CacheRows<'_>, p: &[f32], p_stride: usize, o: &mut [f32]) {
    values_by_row(v, p, p_stride, o, axpy_f16_group_scalar)
}

/// One key row against every head: the portable reference, summing in the same 8-lane order
/// as the AVX2 version (lane `i % 8`, then lanes pairwise) so the two agree closely.
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

/// One value row into every head's output: the portable reference.
pub fn axpy_f16_group_scalar(v: &[f16], p: &[f32], o: &mut [f32], hd: usize) {
    for (h, &ph) in p.iter().enumerate() {
        for (acc, e) in o[h * hd..][..hd].iter_mut().zip(&v[..hd]) {
            *acc = ph.mul_add(e.to_f32(), *acc);
        }
    }
}

/// Safe wrappers of the AVX2 and AVX-512 versions, for the SIMD tables.
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd_safe {
    use super::CacheRows;

    // SAFETY (all): only reachable through a table, which exists only after its features
    // (AVX2, FMA and F16C; AVX-512F for the last two) were detected and its probe passed.
    pub(crate) fn dot(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize) {
        super::scores_by_row(k, q, out, out_stride, |k, q, hd, o| unsafe {
            super::avx2::dot_f16_group(k, q, hd, o)
        })
    }
    pub(crate) fn axpy(v: CacheRows<'_>, p: &[f32], p_stride: usize, o: &mut [f32]) {
        super::values_by_row(v, p, p_stride, o, |v, p, o, hd| unsafe {
            super::avx2::axpy_f16_group(v, p, o, hd)
        })
    }
    pub(crate) fn dot512(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize) {
        unsafe { super::avx512::scores(k, q, out, out_stride) }
    }
    pub(crate) fn axpy512(v: CacheRows<'_>, p: &[f32], p_stride: usize, o: &mut [f32]) {
        unsafe { super::avx512::values(v, p, p_stride, o) }
    }
}

/// Safe wrappers of the NEON versions, for the aarch64 tables.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon_safe {
    use super::CacheRows;

    // SAFETY (both): only reachable through the aarch64 tables, which exist only after NEON
    // was detected and their probe passed.
    pub(crate) fn dot(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize) {
        super::scores_by_row(k, q, out, out_stride, |k, q, hd, o| unsafe {
            super::neon::dot_f16_group(k, q, hd, o)
        })
    }
    pub(crate) fn axpy(v: CacheRows<'_>, p: &[f32], p_stride: usize, o: &mut [f32]) {
        super::values_by_row(v, p, p_stride, o, |v, p, o, hd| unsafe {
            super::neon::axpy_f16_group(v, p, o, hd)
        })
    }
}

/// The NEON one-row kernels, bit for bit the portable ones: the 8 lanes of
/// [`dot_f16_group_scalar`] are two 4-lane accumulators, each step the same fused
/// multiply-add (`fmla`), a head size's tail and the final sum of the lanes done as the
/// portable code does them; the value sums are the same fused multiply-add per element.
#[cfg(target_arch = "aarch64")]
mod neon {
    use core::arch::aarch64::*;
    use half::f16;

    /// 8 f16 from `s[i..i + 8]` as f32 (exactly), lanes 0-3 and 4-7.
    #[inline]
    #[target_feature(enable = "neon")]
    fn load_f16x8(s: &[f16], i: usize) -> (float32x4_t, float32x4_t) {
        let s = &s[i..i + 8];
        // SAFETY: the slice above has 8 readable u16-sized, u16-aligned elements.
        let h = unsafe { vld1q_u16(s.as_ptr().cast()) };
        let (lo, hi): (float32x4_t, float32x4_t);
        // SAFETY: fcvtl/fcvtl2 only read and write the named registers (plain `out`, so
        // neither output shares `h`'s register before the second reads it); half-precision
        // conversion is part of ARMv8.0 Advanced SIMD. Assembly because the f16 vector
        // types and their intrinsics are still unstable in Rust.
        unsafe {
            core::arch::asm!(
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                lo = out(vreg) lo,
                hi = out(vreg) hi,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        (lo, hi)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn load4(s: &[f32], at: usize) -> float32x4_t {
        let s = &s[at..at + 4];
        // SAFETY: the slice above has 4 readable f32; vld1q needs only f32 alignment.
        unsafe { vld1q_f32(s.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn store4(d: &mut [f32], at: usize, v: float32x4_t) {
        let d = &mut d[at..at + 4];
        // SAFETY: the slice above has 4 writable f32; vst1q needs only f32 alignment.
        unsafe { vst1q_f32(d.as_mut_ptr(), v) }
    }

    /// See [`super::dot_f16_group_scalar`].
    #[target_feature(enable = "neon")]
    pub(super) fn dot_f16_group(k: &[f16], q: &[f32], hd: usize, out: &mut [f32]) {
        let k = &k[..hd];
        let body = hd / 8 * 8;
        // Up to 8 heads share each converted key vector: 16 accumulators of the 32 registers.
        for (hc, oc) in out.chunks_mut(8).enumerate() {
            let mut acc = [[vdupq_n_f32(0.0); 2]; 8];
            for i in (0..body).step_by(8) {
                let (k0, k1) = load_f16x8(k, i);
                for (h, a) in acc.iter_mut().enumerate().take(oc.len()) {
                    let at = (hc * 8 + h) * hd + i;
                    a[0] = vfmaq_f32(a[0], k0, load4(q, at));
                    a[1] = vfmaq_f32(a[1], k1, load4(q, at + 4));
                }
            }
            for (h, (o, a)) in oc.iter_mut().zip(acc).enumerate() {
                let mut lanes = [0f32; 8];
                store4(&mut lanes, 0, a[0]);
                store4(&mut lanes, 4, a[1]);
                let qh = &q[(hc * 8 + h) * hd..][..hd];
                for i in body..hd {
                    lanes[i % 8] = k[i].to_f32().mul_add(qh[i], lanes[i % 8]);
                }
                // The portable reference's sum, so the same order of additions.
                *o = lanes.iter().sum();
            }
        }
    }

    /// See [`super::axpy_f16_group_scalar`].
    #[target_feature(enable = "neon")]
    pub(super) fn axpy_f16_group(v: &[f16], p: &[f32], o: &mut [f32], hd: usize) {
        let v = &v[..hd];
        let body = hd / 8 * 8;
        for i in (0..body).step_by(8) {
            let (v0, v1) = load_f16x8(v, i);
            for (h, &ph) in p.iter().enumerate() {
                let (at, ph) = (h * hd + i, vdupq_n_f32(ph));
                store4(o, at, vfmaq_f32(load4(o, at), ph, v0));
                store4(o, at + 4, vfmaq_f32(load4(o, at + 4), ph, v1));
            }
        }
        for (h, &ph) in p.iter().enumerate() {
            for i in body..hd {
                o[h * hd + i] = ph.mul_add(v[i].to_f32(), o[h * hd + i]);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::*;

        /// The NEON kernels give the portable ones' bits (the table test only bounds the
        /// scores' error), for head sizes with and without a tail and head counts past one
        /// group of eight.
        #[test]
        fn neon_gives_the_portable_bits() {
            let mut rnd = crate::test_util::uniform(4242);
            for (hd, heads, rows, stride) in [
                (64, 1, 3, 64),
                (128, 9, 7, 256),
                (80, 3, 5, 160),
                (12, 2, 3, 12),
                (13, 17, 4, 20),
                (5, 4, 2, 5),
                (3, 1, 6, 3),
            ] {
                let k: Vec<f16> = (0..rows * stride)
                    .map(|_| f16::from_f32(rnd() * 4.0))
                    .collect();
                let q: Vec<f32> = (0..hd * heads).map(|_| rnd()).collect();
                let kr = CacheRows::new(&k, stride, rows, hd);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let (mut want, mut got) = (vec![0f32; heads * rows], vec![1f32; heads * rows]);
                scores_f16_scalar(kr, &q, &mut want, rows);
                neon_safe::dot(kr, &q, &mut got, rows);
                assert_eq!(bits(&want), bits(&got), "scores hd {hd} heads {heads}");
                let p: Vec<f32> = (0..heads * rows).map(|_| rnd()).collect();
                let base: Vec<f32> = (0..hd * heads).map(|_| rnd()).collect();
                let (mut want, mut got) = (base.clone(), base);
                values_f16_scalar(kr, &p, rows, &mut want);
                neon_safe::axpy(kr, &p, rows, &mut got);
                assert_eq!(bits(&want), bits(&got), "values hd {hd} heads {heads}");
            }
        }
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

/// The AVX-512 kernels: the scores of 16 key rows at a time, each row converted once into
/// a block that every head then runs over with one accumulator per row (so no horizontal
/// sum per row and head: one transposing reduction per 16 rows and head), and the value
/// sums with each head's output held in registers across the rows. Head sizes 64, 128 and
/// 256; others go row by row through the AVX2 kernels. Rows further on are asked
/// for in L2 as the kernels go ([`ROWS_AHEAD`]).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::CacheRows;
    use core::arch::x86_64::*;
    use half::f16;

    /// Key rows per block.
    const BLOCK: usize = 16;

    /// 16 f16 from `s[at..at + 16]` as f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn load16(s: &[f16], at: usize) -> __m512 {
        let s = &s[at..at + 16];
        // SAFETY: 16 readable f16 (32 bytes), unaligned load.
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(s.as_ptr().cast()) })
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn loadf(s: &[f32], at: usize) -> __m512 {
        let s = &s[at..at + 16];
        // SAFETY: 16 readable f32, unaligned load.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn storef(d: &mut [f32], at: usize, v: __m512) {
        let d = &mut d[at..at + 16];
        // SAFETY: 16 writable f32, unaligned store.
        unsafe { _mm512_storeu_ps(d.as_mut_ptr(), v) }
    }

    /// Lane `i` of the result: the sum of the lanes of `a[i]`. Halves, then quarters, then
    /// a 4 x 4 transpose within 128-bit lanes, and one permute into row order.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn sum16(a: &[__m512; 16]) -> __m512 {
        // x[i]: the 128-bit lanes [0 + 2, 1 + 3] of a[2i], then of a[2i + 1].
        let x: [__m512; 8] = core::array::from_fn(|i| {
            let (p, q) = (a[2 * i], a[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(p, q),
                _mm512_shuffle_f32x4::<0xEE>(p, q),
            )
        });
        // y[i]: 128-bit lane k holds four partial sums of a[4i + k].
        let y: [__m512; 4] = core::array::from_fn(|i| {
            let (p, q) = (x[2 * i], x[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(p, q),
                _mm512_shuffle_f32x4::<0xDD>(p, q),
            )
        });
        let u0 = _mm512_add_ps(
            _mm512_unpacklo_ps(y[0], y[1]),
            _mm512_unpackhi_ps(y[0], y[1]),
        );
        let u1 = _mm512_add_ps(
            _mm512_unpacklo_ps(y[2], y[3]),
            _mm512_unpackhi_ps(y[2], y[3]),
        );
        let (u0, u1) = (_mm512_castps_pd(u0), _mm512_castps_pd(u1));
        // Element 4k + j: the sum of a[4j + k].
        let w = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(u0, u1)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(u0, u1)),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, w)
    }

    /// See [`super::scores_f16`].
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(super) fn scores(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize) {
        match k.hd {
            64 => scores_w::<4>(k, q, out, out_stride),
            128 => scores_w::<8>(k, q, out, out_stride),
            256 => scores_w::<16>(k, q, out, out_stride),
            _ => super::simd_safe::dot(k, q, out, out_stride),
        }
    }

    /// [`scores`] for head size `16 * W`.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn scores_w<const W: usize>(k: CacheRows<'_>, q: &[f32], out: &mut [f32], out_stride: usize) {
        let hd = 16 * W;
        let heads = q.len() / hd;
        let mut block = [[_mm512_setzero_ps(); W]; BLOCK];
        // A short last block is padded with zero rows, so every row's score is summed the
        // same way wherever its run starts (a ring's two runs must give a whole cache's
        // scores bit for bit).
        for r0 in (0..k.rows).step_by(BLOCK) {
            let n = BLOCK.min(k.rows - r0);
            for (r, kr) in block.iter_mut().enumerate() {
                if r >= n {
                    *kr = [_mm512_setzero_ps(); W];
                    continue;
                }
                k.prefetch_ahead(r0 + r);
                let row = k.row(r0 + r);
                for (c, v) in kr.iter_mut().enumerate() {
                    *v = load16(row, 16 * c);
                }
            }
            for h in 0..heads {
                let mut acc = [_mm512_setzero_ps(); BLOCK];
                for c in 0..W {
                    let qv = loadf(q, h * hd + 16 * c);
                    for (a, kr) in acc.iter_mut().zip(&block) {
                        *a = _mm512_fmadd_ps(kr[c], qv, *a);
                    }
                }
                let sums = sum16(&acc);
                let at = h * out_stride + r0;
                if n == BLOCK {
                    storef(out, at, sums);
                } else {
                    let mut all = [0f32; BLOCK];
                    storef(&mut all, 0, sums);
                    out[at..at + n].copy_from_slice(&all[..n]);
                }
            }
        }
    }

    /// See [`super::values_f16`].
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(super) fn values(v: CacheRows<'_>, p: &[f32], p_stride: usize, o: &mut [f32]) {
        // Heads per pass: 16 registers of output.
        match v.hd {
            64 => values_w::<4, 4>(v, p, p_stride, o),
            128 => values_w::<8, 2>(v, p, p_stride, o),
            256 => values_w::<16, 1>(v, p, p_stride, o),
            _ => super::simd_safe::axpy(v, p, p_stride, o),
        }
    }

    /// [`values`] for head size `16 * W`, `H` heads per pass over the rows (then one at a
    /// time for the rest).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn values_w<const W: usize, const H: usize>(
        v: CacheRows<'_>,
        p: &[f32],
        p_stride: usize,
        o: &mut [f32],
    ) {
        let heads = o.len() / (16 * W);
        let mut h0 = 0;
        while h0 + H <= heads {
            values_pass::<W, H>(v, p, p_stride, o, h0);
            h0 += H;
        }
        for h in h0..heads {
            values_pass::<W, 1>(v, p, p_stride, o, h);
        }
    }

    /// Heads `h0..h0 + H` of [`values`].
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn values_pass<const W: usize, const H: usize>(
        v: CacheRows<'_>,
        p: &[f32],
        p_stride: usize,
        o: &mut [f32],
        h0: usize,
    ) {
        let hd = 16 * W;
        let mut acc: [[__m512; W]; H] =
            core::array::from_fn(|h| core::array::from_fn(|c| loadf(o, (h0 + h) * hd + 16 * c)));
        for r in 0..v.rows {
            if h0 == 0 {
                v.prefetch_ahead(r);
            }
            let row = v.row(r);
            let vr: [__m512; W] = core::array::from_fn(|c| load16(row, 16 * c));
            for (h, a) in acc.iter_mut().enumerate() {
                let ph = _mm512_set1_ps(p[(h0 + h) * p_stride + r]);
                for (a, vv) in a.iter_mut().zip(&vr) {
                    // ph * v + o: the operation order of the other versions.
                    *a = _mm512_fmadd_ps(ph, *vv, *a);
                }
            }
        }
        for (h, a) in acc.iter().enumerate() {
            for (c, a) in a.iter().enumerate() {
                storef(o, (h0 + h) * hd + 16 * c, *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_agrees_with_exact_sums() {
        let mut rnd = crate::test_util::uniform(12345);
        let tables = crate::test_util::all_tables();
        // Head sizes with and without an AVX-512 block kernel; row counts around the
        // 16-row block; rows spaced wider than a head, as in a cache of several KV heads.
        for (hd, heads, rows, stride) in [
            (64, 1, 1, 64),
            (64, 7, 33, 128),
            (128, 6, 16, 256),
            (128, 2, 47, 256),
            (128, 9, 5, 128),
            (256, 4, 20, 512),
            (80, 3, 18, 160),
            (12, 2, 3, 12),
            (128, 3, 0, 128),
        ] {
            let k: Vec<f16> = (0..rows * stride).map(|_| f16::from_f32(rnd())).collect();
            let q: Vec<f32> = (0..hd * heads).map(|_| rnd()).collect();
            let out_stride = rows + 3;
            let p: Vec<f32> = (0..heads * out_stride).map(|_| rnd().abs()).collect();
            let base: Vec<f32> = (0..hd * heads).map(|_| rnd()).collect();
            let mut first_values: Option<Vec<f32>> = None;
            for table in &tables {
                let mut out = vec![f32::NAN; heads * out_stride];
                (table.attn_dot)(
                    CacheRows::new(&k, stride, rows, hd),
                    &q,
                    &mut out,
                    out_stride,
                );
                for h in 0..heads {
                    for r in 0..rows {
                        let exact: f64 = (0..hd)
                            .map(|i| k[r * stride + i].to_f64() * q[h * hd + i] as f64)
                            .sum();
                        let got = out[h * out_stride + r];
                        assert!(
                            (got as f64 - exact).abs() < 1e-5,
                            "{} scores hd {hd} heads {heads} rows {rows}: row {r} head {h}: \
                             {got} vs {exact}",
                            table.isa
                        );
                    }
                }
                let mut o = base.clone();
                (table.attn_axpy)(CacheRows::new(&k, stride, rows, hd), &p, out_stride, &mut o);
                for h in 0..heads {
                    for i in 0..hd {
                        let exact = base[h * hd + i] as f64
                            + (0..rows)
                                .map(|r| p[h * out_stride + r] as f64 * k[r * stride + i].to_f64())
                                .sum::<f64>();
                        assert!(
                            (o[h * hd + i] as f64 - exact).abs() < 1e-4,
                            "{} values hd {hd} heads {heads} rows {rows}",
                            table.isa
                        );
                    }
                }
                // One fused multiply-add per element and row, in row order, everywhere.
                match &first_values {
                    None => first_values = Some(o),
                    Some(f) => assert_eq!(
                        f.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        o.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        "{} values differ from the scalar table's",
                        table.isa
                    ),
                }
            }
        }
    }
    #[test]
    fn a_run_cut_in_two_scores_the_same_bits() {
        // A sliding-window ring hands the kernel its positions as two runs; every score must
        // come out as it does from one run over the same rows.
        let mut rnd = crate::test_util::uniform(77);
        let (hd, heads, rows, stride) = (128, 3, 45, 256);
        let k: Vec<f16> = (0..rows * stride).map(|_| f16::from_f32(rnd())).collect();
        let q: Vec<f32> = (0..hd * heads).map(|_| rnd()).collect();
        let tables = crate::test_util::all_tables();
        for table in tables {
            let mut whole = vec![0f32; heads * rows];
            (table.attn_dot)(CacheRows::new(&k, stride, rows, hd), &q, &mut whole, rows);
            for cut in [1, 7, 16, 20, 33, 44] {
                let mut parts = vec![0f32; heads * rows];
                (table.attn_dot)(CacheRows::new(&k, stride, cut, hd), &q, &mut parts, rows);
                (table.attn_dot)(
                    CacheRows::new(&k[cut * stride..], stride, rows - cut, hd),
                    &q,
                    &mut parts[cut..],
                    rows,
                );
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&whole), bits(&parts), "{} cut at {cut}", table.isa);
            }
        }
    }
}
