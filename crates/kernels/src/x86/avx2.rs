//! AVX2 + FMA + F16C kernels (Haswell and later).
//!
//! The K-quant kernels keep the scalar kernels' exact per-block integer sums and combine them
//! with the same f32 expression in the same order, so they equal the scalar results bit for
//! bit. The 32-element quants and the float rows accumulate in 8 f32 lanes, as ggml does,
//! and so differ from scalar in the last bits.
//!
//! Every function here must only be called after `is_x86_feature_detected!` confirmed avx2,
//! fma and f16c: `super::avx2_table` is the only caller.

use super::rows;
use crate::blocks::*;
use core::arch::x86_64::*;
use lingqiao_gguf::QK_K;

/// 32 bytes from the start of `s` (panics if shorter; every caller passes a block field).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn ld(s: &[u8]) -> __m256i {
    let s = &s[..32];
    // SAFETY: `s` has 32 readable bytes; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// As [`ld`] for the i8 arrays of activation blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn ld_i8(s: &[i8]) -> __m256i {
    ld(bytemuck::cast_slice(s))
}

/// An f16 (little-endian bytes) to f32 with the F16C instruction; same value as `half`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16(b: [u8; 2]) -> f32 {
    f16_pair(b, [0, 0]).0
}

/// Two f16 to f32 in one conversion. Keeping two lanes live makes LLVM move them in with a
/// zeroing `vmovd`; with one lane it inserted the value into a stale register (the previous
/// block's accumulator), chaining every block's scale to the last block's result.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_pair(a: [u8; 2], b: [u8; 2]) -> (f32, f32) {
    let both = u32::from(u16::from_le_bytes(a)) | (u32::from(u16::from_le_bytes(b)) << 16);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(both as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The product of two f16 scales as f32: the same value as converting each and multiplying.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_product(a: [u8; 2], b: [u8; 2]) -> f32 {
    let (a, b) = f16_pair(a, b);
    a * b
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_f32(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The 32 nibbles of 16 bytes as bytes: low nibbles (elements 0..16) then high (16..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles(s: &[u8; 16]) -> __m256i {
    // SAFETY: 16 readable bytes, unaligned load.
    let t = unsafe { _mm_loadu_si128(s.as_ptr().cast()) };
    // The 16 bytes in both halves (a load that broadcasts, no shuffle), the high half shifted
    // by 4 in 64-bit lanes: one fewer shuffle than shifting a copy and inserting it.
    let both = _mm256_srlv_epi64(
        _mm256_broadcastsi128_si256(t),
        _mm256_set_epi64x(4, 4, 0, 0),
    );
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// Byte i is 0xFF where bit i of `bits` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bits_to_bytes(bits: u32) -> __m256i {
    // Spread byte k of `bits` over output bytes 8k..8k+8 (shuffles stay within 128-bit lanes,
    // but every lane holds all four bytes after the broadcast).
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(
            0x0303030303030303,
            0x0202020202020202,
            0x0101010101010101,
            0,
        ),
    );
    let mask = _mm256_set1_epi64x(0x8040201008040201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask)
}

/// Sums of 4 adjacent products of unsigned `u` (< 128) and signed `s` bytes, in 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// A weight block of the signed 32-element quants (Q8_0, Q4_0, Q5_0), partner of Q8_0.
trait Signed: bytemuck::Pod {
    /// The block's 32 values as signed bytes.
    /// # Safety
    /// The CPU must have AVX2 (only called from this module's `#[target_feature]` kernels).
    unsafe fn q(&self) -> __m256i;
    fn d(&self) -> [u8; 2];
}

impl Signed for BlockQ8_0 {
    #[inline(always)]
    unsafe fn q(&self) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { ld_i8(&self.qs) }
    }
    fn d(&self) -> [u8; 2] {
        self.d
    }
}

impl Signed for BlockQ4_0 {
    #[inline(always)]
    unsafe fn q(&self) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { _mm256_sub_epi8(nibbles(&self.qs), _mm256_set1_epi8(8)) }
    }
    fn d(&self) -> [u8; 2] {
        self.d
    }
}

impl Signed for BlockQ5_0 {
    #[inline(always)]
    unsafe fn q(&self) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { _mm256_sub_epi8(q5_values(&self.qs, self.qh), _mm256_set1_epi8(16)) }
    }
    fn d(&self) -> [u8; 2] {
        self.d
    }
}

/// The shape of ggml's AVX2 `ggml_vec_dot_q8_0_q8_0`, `_q4_0_q8_0` and `_q5_0_q8_0`, for `N`
/// activation rows: per block, |q| times y with q's sign, scaled by d_w * d_x.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn signed_q8_0<const N: usize, W: Signed>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let (w, xs) = rows::<W, BlockQ8_0, N>(n / QK, w, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        for (i, a) in w.iter().enumerate() {
            let q = a.q();
            let abs_q = _mm256_sign_epi8(q, q);
            for j in 0..N {
                let b = &xs[j][i];
                let d = _mm256_set1_ps(f16_product(a.d(), b.d));
                let s = dot_u8_i8(abs_q, _mm256_sign_epi8(ld_i8(&b.qs), q));
                acc[j] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[j]);
            }
        }
        for j in 0..N {
            out[j] = hsum_f32(acc[j]);
        }
    }
}

/// Matches ggml's AVX2 `ggml_vec_dot_q8_0_q8_0`, for `N` activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q8_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { signed_q8_0::<N, BlockQ8_0>(n, w, x, out) }
}

/// Matches ggml's AVX2 `ggml_vec_dot_q4_0_q8_0`, for `N` activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q4_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { signed_q8_0::<N, BlockQ4_0>(n, w, x, out) }
}

/// Matches ggml's AVX2 `ggml_vec_dot_q5_0_q8_0`, for `N` activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q5_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { signed_q8_0::<N, BlockQ5_0>(n, w, x, out) }
}

/// A weight block of the unsigned 32-element quants with a minimum (Q4_1, Q5_1), partner
/// of Q8_1.
trait Unsigned: bytemuck::Pod {
    /// The block's 32 values as unsigned bytes.
    /// # Safety
    /// The CPU must have AVX2 (only called from this module's `#[target_feature]` kernels).
    unsafe fn q(&self) -> __m256i;
    fn d(&self) -> [u8; 2];
    fn m(&self) -> [u8; 2];
}

impl Unsigned for BlockQ4_1 {
    #[inline(always)]
    unsafe fn q(&self) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { nibbles(&self.qs) }
    }
    fn d(&self) -> [u8; 2] {
        self.d
    }
    fn m(&self) -> [u8; 2] {
        self.m
    }
}

impl Unsigned for BlockQ5_1 {
    #[inline(always)]
    unsafe fn q(&self) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { q5_values(&self.qs, self.qh) }
    }
    fn d(&self) -> [u8; 2] {
        self.d
    }
    fn m(&self) -> [u8; 2] {
        self.m
    }
}

/// The shape of ggml's AVX2 `ggml_vec_dot_q4_1_q8_1` and `_q5_1_q8_1`, for `N` activation
/// rows: per block, q times y scaled by d_w * d_x, plus m_w * s_x.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn unsigned_q8_1<const N: usize, W: Unsigned>(
    n: usize,
    w: &[u8],
    x: &[u8],
    out: &mut [f32; N],
) {
    let (w, xs) = rows::<W, BlockQ8_1, N>(n / QK, w, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut summs = [0f32; N];
        for (i, a) in w.iter().enumerate() {
            let q = a.q();
            for j in 0..N {
                let b = &xs[j][i];
                summs[j] += f16_product(a.m(), b.s);
                let d = _mm256_set1_ps(f16_product(a.d(), b.d));
                let s = _mm256_cvtepi32_ps(dot_u8_i8(q, ld_i8(&b.qs)));
                acc[j] = _mm256_fmadd_ps(d, s, acc[j]);
            }
        }
        for j in 0..N {
            out[j] = hsum_f32(acc[j]) + summs[j];
        }
    }
}

/// Matches ggml's AVX2 `ggml_vec_dot_q4_1_q8_1`, for `N` activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q4_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { unsigned_q8_1::<N, BlockQ4_1>(n, w, x, out) }
}

/// The 5-bit values of a Q5 block as unsigned bytes 0..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q5_values(qs: &[u8; 16], qh: [u8; 4]) -> __m256i {
    let high = _mm256_and_si256(
        bits_to_bytes(u32::from_le_bytes(qh)),
        _mm256_set1_epi8(0x10),
    );
    _mm256_or_si256(nibbles(qs), high)
}

/// Matches ggml's AVX2 `ggml_vec_dot_q5_1_q8_1`, for `N` activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q5_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { unsigned_q8_1::<N, BlockQ5_1>(n, w, x, out) }
}

/// Four consecutive weight rows of `W` blocks (each `rb` bytes of `w`) and one activation
/// row, cut to the whole blocks all of them have, at most `nb`.
#[inline(always)]
fn rows4<'a, W: bytemuck::Pod, X: bytemuck::Pod>(
    nb: usize,
    w: &'a [u8],
    rb: usize,
    x: &'a [u8],
) -> ([&'a [W]; 4], &'a [X]) {
    let ws: [&[W]; 4] = core::array::from_fn(|r| {
        crate::scalar::blocks::<W>(w.get(r * rb..(r + 1) * rb).unwrap_or(&[]))
    });
    let xs = crate::scalar::blocks::<X>(x);
    let nb = ws.iter().fold(nb.min(xs.len()), |m, r| m.min(r.len()));
    (ws.map(|r| &r[..nb]), &xs[..nb])
}

/// At block `i` of a four-row kernel, asks for the cache lines of four blocks' worth of `pf`
/// from `4 * i` blocks on: over a row's blocks, four rows' worth (see [`crate::VecDotR4Fn`]).
/// One prefetch per 64 bytes from the region's start (for the 32-element types, whose region
/// is at most 4 x 34 bytes, the loop unrolls away), and nothing at or past `pf`'s end.
#[inline(always)]
fn prefetch4<B>(pf: &[u8], i: usize) {
    let size = 4 * size_of::<B>();
    let at = i * size;
    let mut line = 0;
    while line < size {
        if at + line >= pf.len() {
            break;
        }
        // SAFETY: a prefetch is a hint and never faults; the address is inside `pf`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(pf.as_ptr().add(at + line).cast()) };
        line += 64;
    }
}

/// Four f16 scales (little-endian bytes) as four f32 lanes, lane r from `h[r]`.
#[inline(always)]
unsafe fn f16x4(h: [[u8; 2]; 4]) -> __m128 {
    let v = h.iter().rev().fold(0u64, |acc, b| {
        (acc << 16) | u64::from(u16::from_le_bytes(*b))
    });
    // SAFETY: the features are the caller's promise.
    unsafe { _mm_cvtph_ps(_mm_cvtsi64_si128(v as i64)) }
}

/// Lane `r` (< 4) of `v` in all eight lanes.
#[inline(always)]
unsafe fn lane8(v: __m128, r: usize) -> __m256 {
    // SAFETY: the features are the caller's promise.
    unsafe { _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(r as i32)) }
}

/// [`signed_q8_0`] for four weight rows and one activation row: the activation block is
/// loaded and its scale converted once for the four rows, and the four rows' scales in one
/// conversion. Row `r`'s arithmetic is that of [`signed_q8_0`] on row `r` (the same
/// `f32(d_w) * f32(d_x)` scale, integer lanes and fused multiply-adds in the same order), so
/// its result is the same bits.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn signed_r4<W: Signed>(
    n: usize,
    w: &[u8],
    rb: usize,
    x: &[u8],
    pf: &[u8],
    out: &mut [f32; 4],
) {
    let (ws, xs) = rows4::<W, BlockQ8_0>(n / QK, w, rb, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, b) in xs.iter().enumerate() {
            prefetch4::<W>(pf, i);
            let y = ld_i8(&b.qs);
            let d = _mm_mul_ps(
                f16x4([ws[0][i].d(), ws[1][i].d(), ws[2][i].d(), ws[3][i].d()]),
                _mm_set1_ps(f16(b.d)),
            );
            for r in 0..4 {
                let q = ws[r][i].q();
                let s = dot_u8_i8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q));
                acc[r] = _mm256_fmadd_ps(lane8(d, r), _mm256_cvtepi32_ps(s), acc[r]);
            }
        }
        for r in 0..4 {
            out[r] = hsum_f32(acc[r]);
        }
    }
}

/// A signed 32-element weight type stored as unsigned values with a fixed offset (Q4_0:
/// q = v - 8; Q5_0: q = v - 16), for [`offset_r4`].
trait Offset: Signed {
    /// The offset, in every byte.
    const OFFSET: i8;
    /// The block's 32 unsigned values v (q + OFFSET).
    /// # Safety
    /// The CPU must have AVX2 (only called from this module's `#[target_feature]` kernels).
    unsafe fn v(&self) -> __m256i;
}

impl Offset for BlockQ4_0 {
    const OFFSET: i8 = 8;
    #[inline(always)]
    unsafe fn v(&self) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { nibbles(&self.qs) }
    }
}

impl Offset for BlockQ5_0 {
    const OFFSET: i8 = 16;
    #[inline(always)]
    unsafe fn v(&self) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { q5_values(&self.qs, self.qh) }
    }
}

/// [`signed_r4`] for the types with an offset: each lane's products are summed as
/// `v * y - OFFSET * y` (both products exact in i16, and `OFFSET * y` made once for the four
/// rows) instead of with the sign trick, which gives the same exact integer in every lane,
/// so the same bits, with two fewer operations per row and block.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn offset_r4<W: Offset>(
    n: usize,
    w: &[u8],
    rb: usize,
    x: &[u8],
    pf: &[u8],
    out: &mut [f32; 4],
) {
    let (ws, xs) = rows4::<W, BlockQ8_0>(n / QK, w, rb, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let ones = _mm256_set1_epi16(1);
        for (i, b) in xs.iter().enumerate() {
            prefetch4::<W>(pf, i);
            let y = ld_i8(&b.qs);
            let oy = _mm256_maddubs_epi16(_mm256_set1_epi8(W::OFFSET), y);
            let d = _mm_mul_ps(
                f16x4([ws[0][i].d(), ws[1][i].d(), ws[2][i].d(), ws[3][i].d()]),
                _mm_set1_ps(f16(b.d)),
            );
            for r in 0..4 {
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(ws[r][i].v(), y), oy);
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[r] = _mm256_fmadd_ps(lane8(d, r), s, acc[r]);
            }
        }
        for r in 0..4 {
            out[r] = hsum_f32(acc[r]);
        }
    }
}

/// [`unsigned_q8_1`] for four weight rows and one activation row, as [`signed_r4`] is for
/// [`signed_q8_0`]; the four rows' `m_w * s_x` sums run in the lanes of one vector, each
/// lane the same sequence of adds as the one-row kernel's scalar sum.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn unsigned_r4<W: Unsigned>(
    n: usize,
    w: &[u8],
    rb: usize,
    x: &[u8],
    pf: &[u8],
    out: &mut [f32; 4],
) {
    let (ws, xs) = rows4::<W, BlockQ8_1>(n / QK, w, rb, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut summs = _mm_setzero_ps();
        for (i, b) in xs.iter().enumerate() {
            prefetch4::<W>(pf, i);
            let y = ld_i8(&b.qs);
            let (dx, sx) = f16_pair(b.d, b.s);
            let m = f16x4([ws[0][i].m(), ws[1][i].m(), ws[2][i].m(), ws[3][i].m()]);
            summs = _mm_add_ps(summs, _mm_mul_ps(m, _mm_set1_ps(sx)));
            let d = _mm_mul_ps(
                f16x4([ws[0][i].d(), ws[1][i].d(), ws[2][i].d(), ws[3][i].d()]),
                _mm_set1_ps(dx),
            );
            for r in 0..4 {
                let s = _mm256_cvtepi32_ps(dot_u8_i8(ws[r][i].q(), y));
                acc[r] = _mm256_fmadd_ps(lane8(d, r), s, acc[r]);
            }
        }
        let mut m = [0f32; 4];
        _mm_storeu_ps(m.as_mut_ptr(), summs);
        for r in 0..4 {
            out[r] = hsum_f32(acc[r]) + m[r];
        }
    }
}

/// The four-row ([`crate::VecDotR4Fn`]) kernels, `name => shape`, as safe functions for the
/// AVX2 table: each compiles its shape with the features (an inner `#[target_feature]`
/// function, so the shape's intrinsics inline) and calls it.
macro_rules! r4_kernels {
    ($($name:ident => $shape:path;)*) => {$(
        pub(super) fn $name(n: usize, w: &[u8], rb: usize, x: &[u8], pf: &[u8], out: &mut [f32; 4]) {
            #[target_feature(enable = "avx2,fma,f16c")]
            fn with_features(
                n: usize,
                w: &[u8],
                rb: usize,
                x: &[u8],
                pf: &[u8],
                out: &mut [f32; 4],
            ) {
                // SAFETY: this function has the features.
                unsafe { $shape(n, w, rb, x, pf, out) }
            }
            // SAFETY: only the AVX2 table (`super::avx2_r4`) holds these functions, and it
            // exists only after AVX2, FMA and F16C were detected and its probe passed.
            unsafe { with_features(n, w, rb, x, pf, out) }
        }
    )*};
}

r4_kernels! {
    r4_q8_0 => signed_r4::<BlockQ8_0>;
    r4_q4_0 => offset_r4::<BlockQ4_0>;
    r4_q5_0 => offset_r4::<BlockQ5_0>;
    r4_q4_1 => unsigned_r4::<BlockQ4_1>;
    r4_q5_1 => unsigned_r4::<BlockQ5_1>;
    r4_q4_k => k4_r4::<BlockQ4K>;
    r4_q5_k => k4_r4::<BlockQ5K>;
    r4_q6_k => q6_r4;
}

/// (v >> k) & mask on every byte, for a run-time k < 8.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn shr_mask(v: __m256i, k: u32, mask: i8) -> __m256i {
    // A 16-bit shift drags bits of the upper byte into the lower one's top; the mask drops them.
    _mm256_and_si256(
        _mm256_srl_epi16(v, _mm_cvtsi32_si128(k as i32)),
        _mm256_set1_epi8(mask),
    )
}

/// Scale for i16 lanes 0..8 (elements 0..16 of a 32-run) and 8..16 (elements 16..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_pair(lo: i16, hi: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

/// Matches ggml's AVX2 `ggml_vec_dot_q2_K_q8_K`, for `N` activation rows; bit-identical to
/// the scalar kernel. A block's 2-bit values and scales are unpacked once for all N rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q2_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let (w, xs) = rows::<BlockQ2K, BlockQ8K, N>(n / QK_K, w, x);
    let mut sumf = [0f32; N];
    for (i, a) in w.iter().enumerate() {
        let mut sumi = [_mm256_setzero_si256(); N];
        for c in 0..2 {
            let qs = ld(&a.qs[32 * c..]);
            for k in 0..4 {
                let q = shr_mask(qs, 2 * k as u32, 0x03);
                let g = 8 * c + 2 * k;
                let sc = scale_pair((a.scales[g] & 0x0F) as i16, (a.scales[g + 1] & 0x0F) as i16);
                for j in 0..N {
                    let y = ld_i8(&xs[j][i].qs[128 * c + 32 * k..]);
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), sc);
                    sumi[j] = _mm256_add_epi32(sumi[j], p);
                }
            }
        }
        let (ad, amin) = f16_pair(a.d, a.dmin);
        for j in 0..N {
            let b = &xs[j][i];
            let mut summs = 0i32;
            for g in 0..16 {
                summs += (a.scales[g] >> 4) as i32 * b.bsum(g) as i32;
            }
            let dall = f32::from_le_bytes(b.d) * ad;
            let dmin = f32::from_le_bytes(b.d) * amin;
            sumf[j] += dall * hsum_i32(sumi[j]) as f32 - dmin * summs as f32;
        }
    }
    *out = sumf;
}

/// Matches ggml's AVX2 `ggml_vec_dot_q3_K_q8_K`, for `N` activation rows; bit-identical to
/// the scalar kernel. The values q - 4 (q = 0..8 from two low bits and the hmask bit) are
/// summed as q, and 4 times the scaled bsums taken off at the end.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q3_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let (w, xs) = rows::<BlockQ3K, BlockQ8K, N>(n / QK_K, w, x);
    let mut sumf = [0f32; N];
    for (i, a) in w.iter().enumerate() {
        let sc = scales_q3k(&a.scales);
        let hm = ld(&a.hmask);
        let mut sumi = [_mm256_setzero_si256(); N];
        for c in 0..2 {
            let qs = ld(&a.qs[32 * c..]);
            for k in 0..4 {
                let low = shr_mask(qs, 2 * k as u32, 0x03);
                let high = _mm256_slli_epi16::<2>(shr_mask(hm, (4 * c + k) as u32, 0x01));
                let q = _mm256_or_si256(low, high);
                let g = 8 * c + 2 * k;
                let scv = scale_pair(sc[g] as i16, sc[g + 1] as i16);
                for j in 0..N {
                    let y = ld_i8(&xs[j][i].qs[128 * c + 32 * k..]);
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), scv);
                    sumi[j] = _mm256_add_epi32(sumi[j], p);
                }
            }
        }
        let ad = f16(a.d);
        for j in 0..N {
            let b = &xs[j][i];
            let corr: i32 = sc
                .iter()
                .enumerate()
                .map(|(g, &s)| s as i32 * b.bsum(g) as i32)
                .sum();
            let isum = hsum_i32(sumi[j]) - 4 * corr;
            sumf[j] += (ad * f32::from_le_bytes(b.d)) * isum as f32;
        }
    }
    *out = sumf;
}

/// The 6-bit scales and minimums of a Q4_K/Q5_K block ([`crate::blocks::scales_mins_k4`])
/// with whole-word operations, as ggml's AVX2 `ggml_vec_dot_q4_K_q8_K` unpacks them: with
/// the 12 bytes as words w0, w1, w2, scales 0..4 are the low 6 bits of w0's bytes, minimums
/// 0..4 those of w1's; scales 4..8 take their low 4 bits from w2's low nibbles and their top
/// 2 from w0's top bits, minimums 4..8 from w2's high nibbles and w1's top bits.
#[inline(always)]
fn scales_mins_k4_words(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let w = |k: usize| u32::from_le_bytes([q[4 * k], q[4 * k + 1], q[4 * k + 2], q[4 * k + 3]]);
    let (w0, w1, w2) = (w(0), w(1), w(2));
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let sc_hi = (w2 & LOW4) | (((w0 >> 6) & LOW2) << 4);
    let m_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & LOW2) << 4);
    let sc = (u64::from(sc_hi) << 32) | u64::from(w0 & LOW6);
    let m = (u64::from(m_hi) << 32) | u64::from(w1 & LOW6);
    (sc.to_le_bytes(), m.to_le_bytes())
}

/// Scaled sums of two 32-element runs (groups 2c and 2c + 1 of a Q4_K/Q5_K block), added to acc.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn add_group_pair(
    acc: __m256i,
    lo: __m256i,
    hi: __m256i,
    y: &[i8],
    sc0: __m256i,
    sc1: __m256i,
) -> __m256i {
    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ld_i8(y)), sc0);
    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ld_i8(&y[32..])), sc1);
    _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1))
}

/// The eight scales of a Q4_K/Q5_K block as i16 in both 128-bit halves, for [`scale_of`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_i16(sc: &[u8; 8]) -> __m256i {
    let v = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(*sc)));
    _mm256_broadcastsi128_si256(v)
}

/// Lane `g` (< 8) of each 128-bit half of `scales` ([`scales_i16`], [`scales_i16_q6`]) over
/// that half: one byte shuffle instead of a move from a general register and a broadcast.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_of(scales: __m256i, g: usize) -> __m256i {
    /// Byte shuffles that repeat i16 lane g of a 128-bit half over the half.
    static SPREAD: [[u8; 32]; 8] = {
        let mut t = [[0u8; 32]; 8];
        let mut g = 0;
        while g < 8 {
            let mut k = 0;
            while k < 32 {
                t[g][k] = (2 * g + k % 2) as u8;
                k += 1;
            }
            g += 1;
        }
        t
    };
    _mm256_shuffle_epi8(scales, ld(&SPREAD[g]))
}

/// A Q4_K or Q5_K block, for [`k4_dot`] and [`k4_r4`]: two f16 scales, 6-bit scales and
/// minimums per 32-element group, and 4- or 5-bit unsigned values.
trait K4: bytemuck::Pod {
    fn d_dmin(&self) -> ([u8; 2], [u8; 2]);
    fn packed_scales(&self) -> &[u8; 12];
    /// The values of groups 2c and 2c + 1 as unsigned bytes.
    /// # Safety
    /// The CPU must have AVX2 (only called from this module's `#[target_feature]` kernels).
    unsafe fn groups(&self, c: usize) -> (__m256i, __m256i);
}

/// [`K4`]'s scale accessors, the same fields in both blocks.
macro_rules! k4_header {
    () => {
        fn d_dmin(&self) -> ([u8; 2], [u8; 2]) {
            (self.d, self.dmin)
        }
        fn packed_scales(&self) -> &[u8; 12] {
            &self.scales
        }
    };
}

impl K4 for BlockQ4K {
    k4_header!();
    #[inline(always)]
    unsafe fn groups(&self, c: usize) -> (__m256i, __m256i) {
        // SAFETY: the caller's promise.
        unsafe { k4_nibbles(&self.qs, c) }
    }
}

impl K4 for BlockQ5K {
    k4_header!();
    #[inline(always)]
    unsafe fn groups(&self, c: usize) -> (__m256i, __m256i) {
        // SAFETY: the caller's promise.
        unsafe {
            let (lo, hi) = k4_nibbles(&self.qs, c);
            let qh = ld(&self.qh);
            let h0 = _mm256_slli_epi16::<4>(shr_mask(qh, 2 * c as u32, 0x01));
            let h1 = _mm256_slli_epi16::<4>(shr_mask(qh, 2 * c as u32 + 1, 0x01));
            (_mm256_or_si256(lo, h0), _mm256_or_si256(hi, h1))
        }
    }
}

/// [`K4::groups`] of 128 packed nibbles (Q5_K's low bits are laid out as Q4_K's).
/// # Safety
/// The CPU must have AVX2.
#[inline(always)]
unsafe fn k4_nibbles(qs: &[u8; QK_K / 2], c: usize) -> (__m256i, __m256i) {
    // SAFETY: the caller's promise.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        let q = ld(&qs[32 * c..]);
        let hi = _mm256_srli_epi16::<4>(q);
        (_mm256_and_si256(q, low4), _mm256_and_si256(hi, low4))
    }
}

/// The minimums of a Q4_K/Q5_K block (8 bytes) as eight i16.
#[inline(always)]
unsafe fn mins_i16(m: &[u8; 8]) -> __m128i {
    // SAFETY: the caller's features (AVX2 implies SSE4.1).
    unsafe { _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(*m))) }
}

/// The 16 bsums of an activation super-block added in pairs, the eight sums of its 32-element
/// groups (each pair at most 2 x 16 x 128 in magnitude, exact in i16).
#[inline(always)]
unsafe fn group_bsums(b: &BlockQ8K) -> __m128i {
    let bs: &[u8; 32] = bytemuck::cast_ref(&b.bsums);
    // SAFETY: 16-byte unaligned loads of 32 readable bytes; the caller's features.
    unsafe {
        let lo = _mm_loadu_si128(bs.as_ptr().cast());
        let hi = _mm_loadu_si128(bs[16..].as_ptr().cast());
        _mm_hadd_epi16(lo, hi)
    }
}

/// The shape of ggml's AVX2 `ggml_vec_dot_q4_K_q8_K` and `_q5_K_q8_K`, for `N` activation
/// rows; bit-identical to the scalar kernels: per super-block the exact integer sums of
/// scale x dot and of minimum x bsum, combined in f32 as the scalar kernel does.
#[inline(always)]
unsafe fn k4_dot<const N: usize, W: K4>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let (w, xs) = rows::<W, BlockQ8K, N>(n / QK_K, w, x);
    let mut sumf = [0f32; N];
    // SAFETY: the features are the caller's promise.
    unsafe {
        for (i, a) in w.iter().enumerate() {
            let (sc, m) = scales_mins_k4_words(a.packed_scales());
            let scales = scales_i16(&sc);
            let mut sumi = [_mm256_setzero_si256(); N];
            for c in 0..4 {
                let (s0, s1) = (scale_of(scales, 2 * c), scale_of(scales, 2 * c + 1));
                let (lo, hi) = a.groups(c);
                for j in 0..N {
                    let y = &xs[j][i].qs[64 * c..];
                    sumi[j] = add_group_pair(sumi[j], lo, hi, y, s0, s1);
                }
            }
            let (d, dmin) = a.d_dmin();
            let (ad, amin) = f16_pair(d, dmin);
            let mins = mins_i16(&m);
            for j in 0..N {
                let b = &xs[j][i];
                let summs = hsum_i32x4(_mm_madd_epi16(mins, group_bsums(b)));
                let d = f32::from_le_bytes(b.d) * ad;
                let dmin = f32::from_le_bytes(b.d) * amin;
                sumf[j] += d * hsum_i32(sumi[j]) as f32 - dmin * summs as f32;
            }
        }
    }
    *out = sumf;
}

/// Matches ggml's AVX2 `ggml_vec_dot_q4_K_q8_K` ([`k4_dot`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q4_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { k4_dot::<N, BlockQ4K>(n, w, x, out) }
}

/// Matches ggml's AVX2 `ggml_vec_dot_q5_K_q8_K` ([`k4_dot`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q5_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { k4_dot::<N, BlockQ5K>(n, w, x, out) }
}

/// The sum of the four i32 lanes of `v`.
#[inline(always)]
unsafe fn hsum_i32x4(v: __m128i) -> i32 {
    // SAFETY: the caller's features.
    unsafe {
        let s = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// Lane r of the result is the sum of the eight i32 lanes of `v[r]`: the integers
/// [`hsum_i32`] gives for each (a sum of integers does not depend on its order; both wrap).
#[inline(always)]
unsafe fn hsum4_i32(v: [__m256i; 4]) -> __m128i {
    // SAFETY: the caller's features.
    unsafe {
        let t = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t))
    }
}

/// Lane r of the result is the sum of the four i32 lanes of `v[r]` ([`hsum_i32x4`] of each).
#[inline(always)]
unsafe fn hsum4_i32x4(v: [__m128i; 4]) -> __m128i {
    // SAFETY: the caller's features.
    unsafe { _mm_hadd_epi32(_mm_hadd_epi32(v[0], v[1]), _mm_hadd_epi32(v[2], v[3])) }
}

/// [`k4_dot`] for four weight rows and one activation row. Per row and super-block the
/// integer sums are [`k4_dot`]'s (the same integers, summed in another order), and the f32
/// expression is the same one in the four lanes of a vector (`d * isum - dmin * summs` added
/// to the row's sum, each operation rounded as in the scalar code), so every row's result
/// is the same bits. What four rows share: the activation block's bsums, its scale, and the
/// final sums and float arithmetic, done for four rows at once instead of one lane at a time.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn k4_r4<W: K4>(n: usize, w: &[u8], rb: usize, x: &[u8], pf: &[u8], out: &mut [f32; 4]) {
    let (ws, xs) = rows4::<W, BlockQ8K>(n / QK_K, w, rb, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut sumf = _mm_setzero_ps();
        for (i, b) in xs.iter().enumerate() {
            prefetch4::<W>(pf, i);
            let pairs = group_bsums(b);
            // Four rows written out, not a loop over r: a loop kept the sums in memory.
            let a = [&ws[0][i], &ws[1][i], &ws[2][i], &ws[3][i]];
            let (s0, m0) = k4_sums(a[0], b, pairs);
            let (s1, m1) = k4_sums(a[1], b, pairs);
            let (s2, m2) = k4_sums(a[2], b, pairs);
            let (s3, m3) = k4_sums(a[3], b, pairs);
            let isum = _mm_cvtepi32_ps(hsum4_i32([s0, s1, s2, s3]));
            let summs = _mm_cvtepi32_ps(hsum4_i32x4([m0, m1, m2, m3]));
            let yd = _mm_set1_ps(f32::from_le_bytes(b.d));
            let dd = [a[0].d_dmin(), a[1].d_dmin(), a[2].d_dmin(), a[3].d_dmin()];
            let d = _mm_mul_ps(yd, f16x4([dd[0].0, dd[1].0, dd[2].0, dd[3].0]));
            let dmin = _mm_mul_ps(yd, f16x4([dd[0].1, dd[1].1, dd[2].1, dd[3].1]));
            let t = _mm_sub_ps(_mm_mul_ps(d, isum), _mm_mul_ps(dmin, summs));
            sumf = _mm_add_ps(sumf, t);
        }
        _mm_storeu_ps(out.as_mut_ptr(), sumf);
    }
}

/// One row's super-block for [`k4_r4`]: the scale x dot sums (eight i32 lanes) and the
/// minimum x bsum products (four i32 lanes), given the activation's group bsums `pairs`.
#[inline(always)]
unsafe fn k4_sums<W: K4>(a: &W, b: &BlockQ8K, pairs: __m128i) -> (__m256i, __m128i) {
    // SAFETY: the caller's features.
    unsafe {
        let (sc, m) = scales_mins_k4_words(a.packed_scales());
        let scales = scales_i16(&sc);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let (s0, s1) = (scale_of(scales, 2 * c), scale_of(scales, 2 * c + 1));
            let (lo, hi) = a.groups(c);
            sumi = add_group_pair(sumi, lo, hi, &b.qs[64 * c..], s0, s1);
        }
        (sumi, _mm_madd_epi16(mins_i16(&m), pairs))
    }
}

/// Scales 8h..8h+8 of a Q6_K block as i16, the high 128-bit half shifted by one lane, so
/// that [`scale_of`] lane 2k gives [`scale_pair`] of scales 2k and 2k + 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_i16_q6(scales: &[i8; 16], h: usize) -> __m256i {
    let half: [u8; 8] = bytemuck::cast_slice::<i8, u8>(&scales[8 * h..8 * h + 8])
        .try_into()
        .expect("8 bytes");
    let v = _mm_cvtepi8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(half)));
    // The high half one lane on, so lane 2k holds scale 2k below and 2k + 1 above.
    _mm256_set_m128i(_mm_srli_si128::<2>(v), v)
}

/// Quarter k (elements 128h + 32k..) of half h of a Q6_K block as unsigned bytes 0..64.
#[inline(always)]
unsafe fn q6_quarter(a: &BlockQ6K, h: usize, k: usize) -> __m256i {
    // SAFETY: the caller's features.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        let ql = ld(&a.ql[64 * h + 32 * (k % 2)..]);
        let low = _mm256_and_si256(
            if k < 2 {
                ql
            } else {
                _mm256_srli_epi16::<4>(ql)
            },
            low4,
        );
        let qh = ld(&a.qh[32 * h..]);
        let high = _mm256_slli_epi16::<4>(shr_mask(qh, 2 * k as u32, 0x03));
        _mm256_or_si256(low, high)
    }
}

/// The 16 scales of a Q6_K block as i16, for [`q6_corr`].
#[inline(always)]
unsafe fn q6_scales16(a: &BlockQ6K) -> __m256i {
    // SAFETY: a 16-byte unaligned load of the 16 scale bytes; the caller's features.
    unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(a.scales.as_ptr().cast())) }
}

/// The sum of scale x bsum over a Q6_K block's 16 groups ([`q6_scales16`]), in the eight i32
/// lanes of the result (exact, as the scalar loop's sum).
#[inline(always)]
unsafe fn q6_corr(sc16: __m256i, b: &BlockQ8K) -> __m256i {
    let bs: &[u8; 32] = bytemuck::cast_ref(&b.bsums);
    // SAFETY: the caller's features.
    unsafe { _mm256_madd_epi16(sc16, ld(bs)) }
}

/// Matches ggml's AVX2 `ggml_vec_dot_q6_K_q8_K`, for `N` activation rows; bit-identical to
/// the scalar kernel. Values are summed unsigned (0..64) and 32 times the scaled bsums taken
/// off at the end.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q6_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let (w, xs) = rows::<BlockQ6K, BlockQ8K, N>(n / QK_K, w, x);
    let mut sumf = [0f32; N];
    for (i, a) in w.iter().enumerate() {
        let mut sumi = [_mm256_setzero_si256(); N];
        for h in 0..2 {
            let half_scales = scales_i16_q6(&a.scales, h);
            for k in 0..4 {
                // SAFETY: this function has the features.
                let q = unsafe { q6_quarter(a, h, k) };
                let scv = scale_of(half_scales, 2 * k);
                for j in 0..N {
                    let y = ld_i8(&xs[j][i].qs[128 * h + 32 * k..]);
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), scv);
                    sumi[j] = _mm256_add_epi32(sumi[j], p);
                }
            }
        }
        let ad = f16(a.d);
        // SAFETY: this function has the features.
        let sc16 = unsafe { q6_scales16(a) };
        for j in 0..N {
            let b = &xs[j][i];
            // SAFETY: this function has the features.
            let corr = hsum_i32(unsafe { q6_corr(sc16, b) });
            let isum = hsum_i32(sumi[j]) - 32 * corr;
            sumf[j] += (ad * f32::from_le_bytes(b.d)) * isum as f32;
        }
    }
    *out = sumf;
}

/// [`vec_dot_q6_k_q8_k`] for four weight rows and one activation row, as [`k4_r4`] is for
/// [`k4_dot`]: the same integers per row and super-block, and `(d_w * d_x) * isum` added to
/// each row's sum in the lanes of one vector, so every row's result is the same bits.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn q6_r4(n: usize, w: &[u8], rb: usize, x: &[u8], pf: &[u8], out: &mut [f32; 4]) {
    let (ws, xs) = rows4::<BlockQ6K, BlockQ8K>(n / QK_K, w, rb, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut sumf = _mm_setzero_ps();
        for (i, b) in xs.iter().enumerate() {
            prefetch4::<BlockQ6K>(pf, i);
            // Four rows written out, as in [`k4_r4`].
            let a = [&ws[0][i], &ws[1][i], &ws[2][i], &ws[3][i]];
            let (s0, c0) = q6_sums(a[0], b);
            let (s1, c1) = q6_sums(a[1], b);
            let (s2, c2) = q6_sums(a[2], b);
            let (s3, c3) = q6_sums(a[3], b);
            let corr = hsum4_i32([c0, c1, c2, c3]);
            let isum = _mm_sub_epi32(hsum4_i32([s0, s1, s2, s3]), _mm_slli_epi32::<5>(corr));
            let ad = f16x4([a[0].d, a[1].d, a[2].d, a[3].d]);
            let d = _mm_mul_ps(ad, _mm_set1_ps(f32::from_le_bytes(b.d)));
            sumf = _mm_add_ps(sumf, _mm_mul_ps(d, _mm_cvtepi32_ps(isum)));
        }
        _mm_storeu_ps(out.as_mut_ptr(), sumf);
    }
}

/// One row's super-block for [`q6_r4`]: the scaled sums of its unsigned values and its
/// [`q6_corr`], each in eight i32 lanes.
#[inline(always)]
unsafe fn q6_sums(a: &BlockQ6K, b: &BlockQ8K) -> (__m256i, __m256i) {
    // SAFETY: the caller's features.
    unsafe {
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let half_scales = scales_i16_q6(&a.scales, h);
            for k in 0..4 {
                let y = ld_i8(&b.qs[128 * h + 32 * k..]);
                let p = _mm256_maddubs_epi16(q6_quarter(a, h, k), y);
                let p = _mm256_madd_epi16(p, scale_of(half_scales, 2 * k));
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        (sumi, q6_corr(q6_scales16(a), b))
    }
}

/// Four 8-lane accumulators per activation row over runs of 32 elements, then the tail in
/// scalar f32.
macro_rules! float_dot {
    ($name:ident, $ggml:literal, $size:literal, $load:ident, $scalar:expr) => {
        #[doc = concat!("Matches ggml's AVX2 `", $ggml, "` (f32 lanes; scalar sums in f64), for `N` activation rows.")]
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) fn $name<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
            let row = $size * n;
            let xs: [&[u8]; N] = core::array::from_fn(|j| x.get(j * row..).unwrap_or(&[]));
            let n = xs.iter().fold(n.min(w.len() / $size), |m, r| m.min(r.len() / $size));
            let mut acc = [[_mm256_setzero_ps(); 4]; N];
            let main = n / 32 * 32;
            for i in (0..main).step_by(32) {
                for k in 0..4 {
                    let off = (i + 8 * k) * $size;
                    let wv = $load(&w[off..]);
                    for j in 0..N {
                        acc[j][k] = _mm256_fmadd_ps(wv, $load(&xs[j][off..]), acc[j][k]);
                    }
                }
            }
            for j in 0..N {
                let a = &acc[j];
                let v = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
                let mut sum = hsum_f32(v);
                for i in main..n {
                    let f: fn(&[u8], usize) -> f32 = $scalar;
                    sum += f(w, i) * f(xs[j], i);
                }
                out[j] = sum;
            }
        }
    };
}

/// 8 f32 from 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_f32x8(s: &[u8]) -> __m256 {
    _mm256_castsi256_ps(ld(s))
}

/// 8 f16 (16 bytes) widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_f16x8(s: &[u8]) -> __m256 {
    let s = &s[..16];
    // SAFETY: 16 readable bytes, unaligned load.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(s.as_ptr().cast()) })
}

/// 8 bf16 (16 bytes) widened to f32: a bf16 is the top half of an f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_bf16x8(s: &[u8]) -> __m256 {
    let s = &s[..16];
    // SAFETY: 16 readable bytes, unaligned load.
    let h = unsafe { _mm_loadu_si128(s.as_ptr().cast()) };
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

float_dot!(vec_dot_f32, "ggml_vec_dot_f32", 4, load_f32x8, |s, i| {
    f32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]])
});
float_dot!(vec_dot_f16, "ggml_vec_dot_f16", 2, load_f16x8, |s, i| {
    half::f16::from_le_bytes([s[2 * i], s[2 * i + 1]]).to_f32()
});
float_dot!(vec_dot_bf16, "ggml_vec_dot_bf16", 2, load_bf16x8, |s, i| {
    half::bf16::from_le_bytes([s[2 * i], s[2 * i + 1]]).to_f32()
});
