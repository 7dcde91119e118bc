//! AVX-512 (F, BW, VL) + VNNI kernels (Ice Lake, Sapphire Rapids, Zen 4 and later).
//!
//! Every kernel is generic over the number of activation rows `N` it runs one weight row
//! against: `N = 1` is the table's `vec_dot`, `N = 4` its four-token kernel. The float
//! operations applied to each activation row are the same for every `N` (only the integer
//! work, which is exact, is shared or arranged differently), so the four-token results are
//! bit-identical to the single ones.
//!
//! The 32-element quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) work on one block per 256-bit register
//! and use no 512-bit instruction at all: while one is in flight, port 1 takes no vector
//! work, and nearly all of their work (VNNI's `vpdpbusd`, conversions, FMAs) runs on ports 0
//! and 1. What they save over AVX2 is per block: one `vpdpbusd` instead of `vpmaddubsw` +
//! `vpmaddwd`, the two f16 scales of eight blocks read with one gather each and converted
//! and multiplied together, and nibbles split without a shift ([`nibbles16`]). They differ from the scalar
//! kernels in the last bits (f32 accumulation order), as the AVX2 ones do.
//!
//! The K-quants work on 64 elements per 512-bit register (512-bit multiplies issue on two
//! ports here): `vpdpbusd` sums fours of q * y (small enough for i16), `vpackssdw` packs
//! two registers' sums into one, and one `vpdpwssd` applies the sub-block scales of both
//! (so a block needs two scale vectors, not four). Their integer sums are exact, as the scalar kernels' are, but they are not
//! summed per block: each block's lanes are scaled by its d and added to float lanes, which
//! are summed once per row ([`KAcc`]). So they differ from the scalar kernels in the last
//! bits, within `crate::kquant_reorder_bound` (the scalar kernel's per-block horizontal sums
//! and float expression were about a third of the instructions). Each comes in a second
//! build with GFNI (its own table, picked where the CPU has it), which splits nibbles with
//! one `vgf2p8affineqb` instead of a shift and a mask.
//!
//! Helpers that take part in the hot loops are `#[inline(always)] unsafe fn`s without target
//! features (a `#[target_feature]` function cannot be `#[inline(always)]`, and LLVM left
//! plain `#[inline]` ones, and closures, as calls); they are only called from the
//! `#[target_feature]` kernels, whose features they rely on.
//!
//! Every function here must only be called after `super::has_avx512` confirmed the features
//! (and the probe ran them): `super::avx512_table` is the only caller.

use super::avx2::hsum_f32;
use super::rows;
use crate::blocks::*;
use core::arch::x86_64::*;
use lingqiao_gguf::QK_K;

/// 32 bytes from the start of `s` (panics if shorter; every caller passes a block field).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld256(s: &[u8]) -> __m256i {
    let s = &s[..32];
    // SAFETY: `s` has 32 readable bytes; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// 64 bytes from the start of `s`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld512(s: &[u8]) -> __m512i {
    let s = &s[..64];
    // SAFETY: `s` has 64 readable bytes; loadu has no alignment requirement.
    unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
}

/// As [`ld512`] for the i8 arrays of activation blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld512_i8(s: &[i8]) -> __m512i {
    ld512(bytemuck::cast_slice(s))
}

/// 32 bytes from the start of `s` in both halves of a 512-bit register (one load, no shuffle).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld256_twice(s: &[u8]) -> __m512i {
    _mm512_broadcast_i64x4(ld256(s))
}

/// The 32 nibbles of 16 bytes as bytes: low nibbles (elements 0..16) then high (16..32).
/// The 16 bytes are loaded into both 128-bit halves and the upper half shifted by 4.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn nibbles(s: &[u8; 16]) -> __m256i {
    // SAFETY: 16 readable bytes, unaligned load.
    let t = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(s.as_ptr().cast()) });
    let t = _mm256_srlv_epi64(t, _mm256_set_epi64x(4, 4, 0, 0));
    _mm256_and_si256(t, _mm256_set1_epi8(0x0F))
}

/// The 32 nibbles of 16 bytes without a shift: the 16 bytes in both 128-bit halves, the low
/// half masked to the low nibbles (elements 0..16), the high half to the high nibbles, which
/// so stay 16 times their value (elements 16..32, values 0..240 in steps of 16). Lanes 4..8
/// of a `vpdpbusd` on them come out 16 times too large, which the caller undoes once.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn nibbles16(s: &[u8; 16]) -> __m256i {
    // SAFETY: 16 readable bytes, unaligned load.
    let t = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(s.as_ptr().cast()) });
    _mm256_and_si256(
        t,
        _mm256_set_m128i(_mm_set1_epi8(0xF0u8 as i8), _mm_set1_epi8(0x0F)),
    )
}

/// The offsets of [`nibbles16`] values for Q4_0's q - 8: 8 in the low half, 16 * 8 in the
/// high one.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn nibble_offsets() -> __m256i {
    _mm256_set_m128i(_mm_set1_epi8(-128), _mm_set1_epi8(8))
}

/// u8 x i8 products summed in fours into 8 i32 lanes (`vpdpbusd` from zero).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

/// i8 x i8 products summed in fours: `abs_q` is |q| for a signed q, and y takes q's sign.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot_signed(abs_q: __m256i, q: __m256i, y: __m256i) -> __m256i {
    dot_u8_i8(abs_q, _mm256_sign_epi8(y, q))
}

/// Blocks whose scale products are formed together.
const CHUNK: usize = 8;

/// A 32-element block type as the drivers see it.
trait Legacy: bytemuck::Pod {
    /// Q4_1/Q5_1/Q8_1: the f16 after `d` (`m`, `s`) is used too.
    const PAIR: bool;
}

impl Legacy for BlockQ4_0 {
    const PAIR: bool = false;
}
impl Legacy for BlockQ5_0 {
    const PAIR: bool = false;
}
impl Legacy for BlockQ8_0 {
    const PAIR: bool = false;
}
impl Legacy for BlockQ4_1 {
    const PAIR: bool = true;
}
impl Legacy for BlockQ5_1 {
    const PAIR: bool = true;
}
impl Legacy for BlockQ8_1 {
    const PAIR: bool = true;
}

/// The activation blocks of the 32-element quants.
trait Act: Legacy {
    fn qs(&self) -> &[i8; QK];
}

macro_rules! impl_act {
    ($($t:ty),*) => {$(
        impl Act for $t {
            #[inline(always)]
            fn qs(&self) -> &[i8; QK] {
                &self.qs
            }
        }
    )*};
}
impl_act!(BlockQ8_0, BlockQ8_1);

/// One 32-element kernel: how a weight block is decoded (once for all rows) and dotted with
/// one row's activation block. The functions are only called from the `#[target_feature]`
/// kernels below, into which they are always inlined.
trait Kernel32 {
    type W: Legacy;
    type X: Act;
    type D: Copy;
    /// Whether lanes 4..8 of the lane sums hold 16 times their value (see [`nibbles16`]);
    /// the accumulators' lanes 4..8 are then divided by 16 at the end, which is exact.
    const HI16: bool;
    /// # Safety
    /// The CPU must have the features of this module.
    unsafe fn decode<const N: usize>(a: &Self::W) -> Self::D;
    /// The 8 i32 lane sums of a decoded block against activation bytes `y`, the method
    /// picked for `N` rows (all methods give the same lane sums).
    /// # Safety
    /// As [`Kernel32::decode`].
    unsafe fn dot<const N: usize>(d: Self::D, y: __m256i) -> __m256i;
}

/// `v`, passed through an empty asm block so the compiler cannot use its value (and so
/// cannot replace an operation on it by a longer sequence it considers cheaper).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn opaque_vec(mut v: __m256i) -> __m256i {
    // SAFETY: an empty asm block: it executes nothing.
    unsafe {
        core::arch::asm!("/* {v} */", v = inout(ymm_reg) v, options(pure, nomem, nostack, preserves_flags));
    }
    v
}

/// The first four bytes of each of the first `len` (<= 8) blocks of `b`, one gather.
///
/// The f16 scales of a chunk are read this way: a gather is mostly load-port work, while
/// inserting them one by one (or permuting them out of wider loads) costs a shuffle-port
/// uop each, and that port is busy enough.
///
/// # Safety
/// The CPU must have the features of this module.
#[inline(always)]
unsafe fn gather_heads<B: Legacy>(b: &[B], len: usize) -> __m256i {
    let b = &b[..len];
    let stride = size_of::<B>() as i32;
    // SAFETY: lane i (i < len) reads bytes 4 * 0..4 of block i, inside `b` (blocks are at
    // least 18 bytes); lanes past `len` are masked off and read nothing.
    unsafe {
        let offsets = _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(stride),
        );
        _mm256_mmask_i32gather_epi32::<1>(
            _mm256_setzero_si256(),
            ((1u32 << len) - 1) as __mmask8,
            offsets,
            b.as_ptr().cast(),
        )
    }
}

/// Scale products of a chunk of `len` blocks, for pair types (Q4_1, Q5_1): lanes 0..8 of the
/// result pair blocks 0..4 (d_w * d_x in lane 2i, m * s in lane 2i + 1), lanes 8..16 blocks
/// 4..8. For the other types lane i of the first half is d_w * d_x of block i.
///
/// # Safety
/// The CPU must have the features of this module.
#[inline(always)]
unsafe fn chunk_products<W: Legacy>(hw: __m256i, hx: __m256i) -> [__m256; 2] {
    // SAFETY: the features are the caller's promise.
    unsafe {
        if W::PAIR {
            // Each head is the f16 pair itself.
            let lo = _mm256_mul_ps(
                _mm256_cvtph_ps(_mm256_castsi256_si128(hw)),
                _mm256_cvtph_ps(_mm256_castsi256_si128(hx)),
            );
            let hi = _mm256_mul_ps(
                _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(hw)),
                _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(hx)),
            );
            [lo, hi]
        } else {
            // The low word of each head is d.
            let dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(hw));
            let dx = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(hx));
            [_mm256_mul_ps(dw, dx), _mm256_setzero_ps()]
        }
    }
}

/// Accumulators of the 32-element kernels for `N` rows.
struct LegacyAcc<const N: usize> {
    /// Blocks at even and odd positions go to separate accumulators: two FMA chains per row
    /// (for one row their latency is about the time per block; four rows would not fit the
    /// registers with more).
    even: [__m256; N],
    odd: [__m256; N],
    /// Q4_1, Q5_1: the m * s products, in the odd lanes.
    summs: [__m256; N],
}

/// The common shape of the 32-element kernels: one weight row against `N` activation rows.
/// Per chunk of up to 8 blocks the scale products d_w * d_x (exact in f32: 11-bit mantissas)
/// are formed at once; pair types (Q4_1, Q5_1) also get m * s in the odd lanes and sum those.
/// Per block, `K::decode` runs once and `K::dot` once per row.
///
/// # Safety
/// The CPU must have the features of this module.
#[inline(always)]
unsafe fn legacy<const N: usize, K: Kernel32>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let (w, xs) = rows::<K::W, K::X, N>(n / QK, w, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let mut acc = LegacyAcc {
            even: [_mm256_setzero_ps(); N],
            odd: [_mm256_setzero_ps(); N],
            summs: [_mm256_setzero_ps(); N],
        };
        // `vpermps` indices picking block i's scale product; hidden from the compiler,
        // which would otherwise broadcast with two shuffles where one permute does.
        let mut idx = [_mm256_setzero_si256(); CHUNK];
        for (i, idx) in idx.iter_mut().enumerate() {
            let lane = if K::W::PAIR { 2 * (i % 4) } else { i };
            *idx = opaque_vec(_mm256_set1_epi32(lane as i32));
        }
        // Whole chunks (their length is a constant to the compiler), then the rest.
        let full = w.len() / CHUNK * CHUNK;
        let mut i0 = 0;
        while i0 < full {
            let mut xc: [&[K::X]; N] = [&[]; N];
            for j in 0..N {
                xc[j] = &xs[j][i0..i0 + CHUNK];
            }
            legacy_chunk::<N, K>(&w[i0..i0 + CHUNK], &xc, &idx, &mut acc);
            i0 += CHUNK;
        }
        if full < w.len() {
            let mut xc: [&[K::X]; N] = [&[]; N];
            for j in 0..N {
                xc[j] = &xs[j][full..];
            }
            legacy_chunk::<N, K>(&w[full..], &xc, &idx, &mut acc);
        }
        for (j, out) in out.iter_mut().enumerate() {
            let mut a = _mm256_add_ps(acc.even[j], acc.odd[j]);
            if K::HI16 {
                a = _mm256_mul_ps(
                    a,
                    _mm256_setr_ps(1.0, 1.0, 1.0, 1.0, 0.0625, 0.0625, 0.0625, 0.0625),
                );
            }
            *out = hsum_f32(a);
            if K::W::PAIR {
                *out += hsum_f32(acc.summs[j]);
            }
        }
    }
}

/// One chunk of [`legacy`]: `w` and every row of `xs` have the same length, at most 8.
///
/// # Safety
/// As [`legacy`].
#[inline(always)]
unsafe fn legacy_chunk<const N: usize, K: Kernel32>(
    w: &[K::W],
    xs: &[&[K::X]; N],
    idx: &[__m256i; CHUNK],
    acc: &mut LegacyAcc<N>,
) {
    // SAFETY: the features are the caller's promise.
    unsafe {
        let len = w.len();
        let hw = gather_heads(w, len);
        let mut sc = [[_mm256_setzero_ps(); 2]; N];
        for j in 0..N {
            sc[j] = chunk_products::<K::W>(hw, gather_heads(xs[j], len));
            if K::W::PAIR {
                let odd = _mm256_add_ps(sc[j][0], sc[j][1]);
                acc.summs[j] = _mm256_mask_add_ps(acc.summs[j], 0xAA, acc.summs[j], odd);
            }
        }
        // Chunks hold an even number of blocks but the last, so block i uses accumulator i % 2.
        let mut i = 0;
        while i < len {
            legacy_block::<N, K>(w, xs, i, &sc, idx[i], &mut acc.even);
            if i + 1 < len {
                legacy_block::<N, K>(w, xs, i + 1, &sc, idx[i + 1], &mut acc.odd);
            }
            i += 2;
        }
    }
}

/// Block `i` of a chunk into `acc`, for every row.
///
/// # Safety
/// As [`legacy`].
#[inline(always)]
unsafe fn legacy_block<const N: usize, K: Kernel32>(
    w: &[K::W],
    xs: &[&[K::X]; N],
    i: usize,
    sc: &[[__m256; 2]; N],
    idx: __m256i,
    acc: &mut [__m256; N],
) {
    // SAFETY: the features are the caller's promise; 32 readable bytes per load.
    unsafe {
        // Block i's product is in lane i, or for pairs in lane 2i % 8 of half i / 4.
        let half = if K::W::PAIR { i / 4 } else { 0 };
        let q = K::decode::<N>(&w[i]);
        for j in 0..N {
            let y = _mm256_loadu_si256(xs[j][i].qs().as_ptr().cast());
            let s = _mm256_cvtepi32_ps(K::dot::<N>(q, y));
            let d = _mm256_permutevar8x32_ps(sc[j][half], idx);
            acc[j] = _mm256_fmadd_ps(d, s, acc[j]);
        }
    }
}

/// Defines a 32-element kernel: a `Kernel32` impl and its `#[target_feature]` entry point.
macro_rules! kernel32 {
    (
        $(#[$doc:meta])*
        $name:ident, $k:ident, $w:ty, $x:ty, hi16: $hi16:literal,
        decode: |$a:ident| -> $d:ty $decode:block,
        dot: |$q:ident, $y:ident| $dot:block $(,)?
    ) => {
        struct $k;

        impl Kernel32 for $k {
            type W = $w;
            type X = $x;
            type D = $d;
            const HI16: bool = $hi16;

            #[inline(always)]
            unsafe fn decode<const N: usize>($a: &$w) -> $d {
                // SAFETY: the features are the caller's promise.
                unsafe { $decode }
            }

            #[inline(always)]
            unsafe fn dot<const N: usize>($q: $d, $y: __m256i) -> __m256i {
                // SAFETY: the features are the caller's promise.
                unsafe { $dot }
            }
        }

        $(#[$doc])*
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(super) fn $name<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
            // SAFETY: this function has the features.
            unsafe { legacy::<N, $k>(n, w, x, out) }
        }
    };
}

kernel32!(
    /// ggml's `ggml_vec_dot_q8_0_q8_0` with VNNI: |q| times y with q's sign. (Taking q + 128
    /// unsigned and 128 * sum(y) off was measured slower.)
    q8_0_q8_0, Q8_0Kernel, BlockQ8_0, BlockQ8_0, hi16: false,
    decode: |a| -> (__m256i, __m256i) {
        let q = _mm256_loadu_si256(a.qs.as_ptr().cast());
        (q, _mm256_abs_epi8(q))
    },
    dot: |q, y| { dot_signed(q.1, q.0, y) },
);

kernel32!(
    /// ggml's `ggml_vec_dot_q4_0_q8_0` with VNNI, on [`nibbles16`]. For one row the values
    /// go into `vpdpbusd` unsigned and the offset (8 per low nibble, 128 per high one) times
    /// y is taken off per lane; for several, the signed values are formed once and each row
    /// costs a sign and a `vpdpbusd`. Both give the same lane sums.
    q4_0_q8_0, Q4_0Kernel, BlockQ4_0, BlockQ8_0, hi16: true,
    decode: |a| -> (__m256i, __m256i, __m256i) {
        let u = nibbles16(&a.qs);
        let q = _mm256_sub_epi8(u, nibble_offsets());
        (u, q, _mm256_abs_epi8(q))
    },
    dot: |q, y| {
        if N == 1 {
            _mm256_sub_epi32(dot_u8_i8(q.0, y), dot_u8_i8(nibble_offsets(), y))
        } else {
            dot_signed(q.2, q.1, y)
        }
    },
);

kernel32!(
    /// ggml's `ggml_vec_dot_q5_0_q8_0` with VNNI: the fifth bits (one per element in `qh`)
    /// become a mask register. For one row the values 0..32 (the nibble, plus 16 where the
    /// bit is set) go into `vpdpbusd` unsigned and 16 * sum(y) is taken off per lane; for
    /// several, q - 16 is formed once (the nibble minus 16 where the bit is clear) and each
    /// row costs a sign and a `vpdpbusd`.
    q5_0_q8_0, Q5_0Kernel, BlockQ5_0, BlockQ8_0, hi16: false,
    decode: |a| -> (__m256i, __m256i) {
        let bits = u32::from_le_bytes(a.qh);
        let nib = nibbles(&a.qs);
        let sixteen = _mm256_set1_epi8(16);
        if N == 1 {
            (_mm256_mask_add_epi8(nib, bits, nib, sixteen), nib)
        } else {
            let q = _mm256_mask_sub_epi8(nib, !bits, nib, sixteen);
            (q, _mm256_abs_epi8(q))
        }
    },
    dot: |q, y| {
        if N == 1 {
            _mm256_sub_epi32(dot_u8_i8(q.0, y), dot_u8_i8(_mm256_set1_epi8(16), y))
        } else {
            dot_signed(q.1, q.0, y)
        }
    },
);

kernel32!(
    /// ggml's `ggml_vec_dot_q4_1_q8_1` with VNNI, on [`nibbles16`]. Weights are d * q + m
    /// and the activation block stores s = d_x * sum(y), so a block contributes
    /// d_w * d_x * sum(q * y) + m * s; the values go into `vpdpbusd` unsigned as they are.
    q4_1_q8_1, Q4_1Kernel, BlockQ4_1, BlockQ8_1, hi16: true,
    decode: |a| -> __m256i { nibbles16(&a.qs) },
    dot: |q, y| { dot_u8_i8(q, y) },
);

kernel32!(
    /// ggml's `ggml_vec_dot_q5_1_q8_1` with VNNI: as Q4_1, with the fifth bits (a mask
    /// register from `qh`) adding 16; the values 0..32 go into `vpdpbusd` unsigned.
    q5_1_q8_1, Q5_1Kernel, BlockQ5_1, BlockQ8_1, hi16: false,
    decode: |a| -> __m256i {
        let nib = nibbles(&a.qs);
        _mm256_mask_add_epi8(nib, u32::from_le_bytes(a.qh), nib, _mm256_set1_epi8(16))
    },
    dot: |q, y| { dot_u8_i8(q, y) },
);

/// Word indices for `vpermw`, per 128-bit lane: 4 copies of `a` and 4 of `b` in lanes 0
/// and 1, 4 of `c` and 4 of `d` in lanes 2 and 3 (the layout `vpackssdw` gives the i32 lanes
/// of two registers, whose low halves hold groups a and b and high halves c and d).
const fn pack_index(a: i16, b: i16, c: i16, d: i16) -> [i16; 32] {
    let mut idx = [0; 32];
    let mut i = 0;
    while i < 32 {
        let (lo, hi) = if i < 16 { (a, b) } else { (c, d) };
        idx[i] = if i % 8 < 4 { lo } else { hi };
        i += 1;
    }
    idx
}

/// Word indices for `vpermw`: in 128-bit lane l, 4 copies of word `a + l` and 4 of `b + l`
/// (the layout `vpackssdw` gives the i32 lanes of two Q6_K registers, whose lane l holds
/// groups a + l and b + l).
const fn quad_pack_index(a: i16, b: i16) -> [i16; 32] {
    let mut idx = [0; 32];
    let mut i = 0;
    while i < 32 {
        let l = (i / 8) as i16;
        idx[i] = if i % 8 < 4 { a + l } else { b + l };
        i += 1;
    }
    idx
}

/// Words 8..16 (the mins of a Q4_K/Q5_K block) each twice: one per 16-element bsum.
const MINS_INDEX: [i16; 16] = [8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15];

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn index512(idx: &[i16; 32]) -> __m512i {
    ld512(bytemuck::cast_slice(idx))
}

/// The activation scale d_x of a Q8_K block in every lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn q8k_d(b: &BlockQ8K) -> __m128 {
    _mm_set1_ps(f32::from_le_bytes(b.d))
}

/// One row's float accumulators in the K-quant kernels. A block's integer sums stay in
/// lanes (16 of scale * q * y, 8 of min * bsum, each exact) and are scaled and added lane by
/// lane, d = d_x * d_w and dmin = d_x * dmin_w rounded once each; the lanes are summed once
/// per row, at the end ([`KAcc::sum`]). ggml's AVX2 kernels do the same with 8 lanes.
#[derive(Clone, Copy)]
struct KAcc {
    d: __m512,
    /// Q4_K/Q5_K only.
    m: __m256,
}

impl KAcc {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn zero() -> KAcc {
        KAcc {
            d: _mm512_setzero_ps(),
            m: _mm256_setzero_ps(),
        }
    }

    /// sum(d lanes) - sum(m lanes), in a fixed order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn sum(self) -> f32 {
        let d = _mm256_add_ps(
            _mm512_castps512_ps256(self.d),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.d))),
        );
        hsum_f32(_mm256_sub_ps(d, self.m))
    }
}

/// Per-block state of a decoded Q4_K/Q5_K block shared by all activation rows.
struct GroupsOf32 {
    /// Values 0..32 as bytes; register c holds groups 2c (low half) and 2c + 1.
    q: [__m512i; 4],
    /// The i16 scale of each group, spread over the words `vpackssdw` makes of the sums of
    /// fours of q[0] and q[1] (`scales[0]`) and of q[2] and q[3].
    scales: [__m512i; 2],
    /// The mins as i16, each twice (matching the 16 bsums of the activations).
    mins: __m256i,
    /// d_w and dmin_w in lanes 0 and 1.
    dw: __m128,
    /// `vpermps` indices broadcasting lane 1 (see [`K4Consts`]).
    lane1: __m256i,
}

/// Index vectors of the Q4_K/Q5_K kernels, made once per call and hidden from the compiler,
/// which would otherwise replace the one-uop permutes they drive by two-uop sequences.
#[derive(Clone, Copy)]
struct K4Consts {
    /// The mins of [`k4_head`]'s 16 words each twice.
    mins: __m256i,
    /// 8 x lane 1.
    lane1: __m256i,
}

impl K4Consts {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn new() -> K4Consts {
        K4Consts {
            mins: opaque_vec(ld256(bytemuck::cast_slice(&MINS_INDEX))),
            lane1: opaque_vec(_mm256_set1_epi32(1)),
        }
    }
}

/// The f16 fields d and dmin and the 12 bytes of 6-bit scales and mins that open every
/// Q4_K/Q5_K block (`h`: the block's first 20 bytes; the last 4 are ignored), as [d_w,
/// dmin_w] in lanes 0 and 1 of a float vector, the scales spread over the pair sums of
/// their groups (register c: group 2c in the low half, 2c + 1 in the high one) and the mins
/// as i16, each twice (one per 16-element bsum of the activations).
///
/// The scales and mins are unpacked in one 128-bit register (ggml's `get_scale_min_k4`
/// lays them out): a byte shuffle puts each value's 4 or 6 low bits in its byte, a 64-bit
/// shift brings the 2 high bits of values 4..8 from bytes 0..4 and 8..12, and a ternary-logic
/// op merges them.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn k4_head(h: &[u8; 20], k: K4Consts) -> (__m128, [__m512i; 2], __m256i) {
    // SAFETY: 8 and 16 readable bytes, unaligned loads.
    let (head, raw) = unsafe {
        (
            _mm_loadl_epi64(h.as_ptr().cast()),
            _mm_loadu_si128(h[4..].as_ptr().cast()),
        )
    };
    // Lanes 2 and 3 (the first scale bytes read as f16) are not used.
    let dw = _mm_cvtph_ps(head);
    // [q0..4 q8..12 | q4..8 q8..12]: scales 0..4, the low nibbles of scales 4..8 | mins 0..4,
    // and in bytes 12..16 the high nibbles of q8..12 (mins 4..8), shifted down.
    let a = _mm_shuffle_epi8(
        raw,
        _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11),
    );
    let lo = _mm_mask_srli_epi16(a, 0xC0, a, 4);
    // Bits 6, 7 of bytes 0..4 and 8..12 land on bits 4, 5 of bytes 4..8 and 12..16.
    let hi = _mm_slli_epi64::<30>(a);
    // Per byte: 6 bits of lo (values 0..4), or 4 of lo and bits 4, 5 of hi (values 4..8).
    let keep = _mm_setr_epi32(0x3F3F_3F3F, 0x0F0F_0F0F, 0x3F3F_3F3F, 0x0F0F_0F0F);
    let sm = _mm_and_si128(
        _mm_ternarylogic_epi32::<0xE4>(lo, hi, keep),
        _mm_set1_epi8(0x3F),
    );
    let sm = _mm256_cvtepu8_epi16(sm);
    let smz = _mm512_castsi256_si512(sm);
    let idx = [pack_index(0, 2, 1, 3), pack_index(4, 6, 5, 7)];
    let scales = [
        _mm512_permutexvar_epi16(index512(&idx[0]), smz),
        _mm512_permutexvar_epi16(index512(&idx[1]), smz),
    ];
    let mins = _mm256_permutexvar_epi16(k.mins, sm);
    (dw, scales, mins)
}

/// `acc + ` the products of the i16 pairs of `a` and `b`, summed per i32 lane (`vpdpwssd`),
/// as one instruction: LLVM otherwise splits most of a chain of them into `vpmaddwd` +
/// `vpaddd` (shorter latency, but one more uop each, and the uops are what these kernels
/// run out of).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dpwssd(mut acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: one `vpdpwssd` on registers, which this function's features allow.
    unsafe {
        core::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(zmm_reg) acc,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Shared tail of Q4_K and Q5_K: one decoded block against block `i` of every row, into
/// the rows' accumulators (the same operations for every row and every `N`).
///
/// # Safety
/// The CPU must have the features of this module.
#[inline(always)]
unsafe fn groups_of_32_rows<const N: usize>(
    g: &GroupsOf32,
    xs: &[&[BlockQ8K]; N],
    i: usize,
    acc: &mut [KAcc; N],
) {
    // SAFETY: the features are the caller's promise.
    unsafe {
        for j in 0..N {
            let b = &xs[j][i];
            // Sums of fours of q * y (|sum| <= 4 * 31 * 128: i16), two registers' packed into
            // one, so one `vpdpwssd` applies the scales of four groups.
            let dp = |c: usize| {
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), g.q[c], ld512_i8(&b.qs[64 * c..]))
            };
            let p01 = _mm512_packs_epi32(dp(0), dp(1));
            let p23 = _mm512_packs_epi32(dp(2), dp(3));
            let isum = dpwssd(_mm512_madd_epi16(p01, g.scales[0]), p23, g.scales[1]);
            let bsums = ld256(bytemuck::cast_slice(&b.bsums));
            let summs = _mm256_madd_epi16(bsums, g.mins);
            // [d, dmin] = d_x * [d_w, dmin_w]
            let dd = _mm_mul_ps(g.dw, q8k_d(b));
            acc[j].d = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(isum),
                _mm512_broadcastss_ps(dd),
                acc[j].d,
            );
            let dmin = _mm256_permutexvar_ps(g.lane1, _mm256_castps128_ps256(dd));
            acc[j].m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summs), dmin, acc[j].m);
        }
    }
}

/// Shift counts that move the high nibbles of the upper 256 bits down.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn hi_half_by_4() -> __m512i {
    _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0)
}

/// The nibbles of a 32-byte chunk loaded into both halves of `both`: the low ones (as bytes)
/// in the low half, the high ones in the high half. With GFNI (`G`) one `vgf2p8affineqb`
/// does it (per qword, a bit matrix keeping bits 0..4, or moving bits 4..8 down), else a
/// shift of the high half and a mask.
///
/// # Safety
/// The CPU must have the features of this module, and GFNI if `G`.
#[inline(always)]
unsafe fn split_nibbles<const G: bool>(both: __m512i) -> __m512i {
    // SAFETY: the features are the caller's promise.
    unsafe {
        if G {
            // Output bit k takes the input bits of byte 7 - k of the qword's matrix.
            const LOW: i64 = 0x0102_0408_0000_0000;
            const HIGH: i64 = 0x1020_4080_0000_0000;
            let m = _mm512_set_epi64(HIGH, HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW);
            _mm512_gf2p8affine_epi64_epi8::<0>(both, m)
        } else {
            _mm512_and_si512(
                _mm512_srlv_epi64(both, hi_half_by_4()),
                _mm512_set1_epi8(0x0F),
            )
        }
    }
}

/// The high nibbles of the bytes of `v`, as bytes (see [`split_nibbles`]).
///
/// # Safety
/// As [`split_nibbles`].
#[inline(always)]
unsafe fn high_nibbles<const G: bool>(v: __m512i) -> __m512i {
    // SAFETY: the features are the caller's promise.
    unsafe {
        if G {
            const HIGH: i64 = 0x1020_4080_0000_0000;
            _mm512_gf2p8affine_epi64_epi8::<0>(v, _mm512_set1_epi64(HIGH))
        } else {
            _mm512_and_si512(_mm512_srli_epi16::<4>(v), _mm512_set1_epi8(0x0F))
        }
    }
}

/// At every fourth block `i` of a row, asks for the cache lines of the bytes of blocks
/// `i..i + 4` in `pf`, a region as long as the row (see [`crate::VecDotPfFn`]); nothing past
/// its end, so nothing at all when `pf` is empty. Why groups of four (576-840 bytes, about
/// one qwen15 gate or up row): in alternated runs of `lingqiao-kernels --example
/// decode_stream` on qwen15 with two threads, prefetching one block at a time was not
/// clearly faster than one burst per row (21.2-24.7 against 22.5-24.1 tok/s), while groups
/// of four were (23.0-24.6 against 20.9-24.5).
#[inline(always)]
fn prefetch_block<B>(pf: &[u8], i: usize) {
    const GROUP: usize = 4;
    if !i.is_multiple_of(GROUP) {
        return;
    }
    let size = size_of::<B>();
    let Some(bytes) = pf.get(i * size..) else {
        return;
    };
    crate::ops::prefetch_lines::<{ crate::ops::L1 }>(&bytes[..bytes.len().min(GROUP * size)]);
}

/// ggml's `ggml_vec_dot_q4_K_q8_K`, accumulated in lanes (see [`KAcc`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn q4_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { q4_k::<N, false>(n, w, x, out, &[]) }
}

/// [`q4_k_q8_k`] with GFNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,gfni")]
pub(super) fn q4_k_q8_k_gfni<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { q4_k::<N, true>(n, w, x, out, &[]) }
}

/// The body of [`q4_k_q8_k`], with GFNI if `G`.
///
/// # Safety
/// As [`split_nibbles`].
#[inline(always)]
unsafe fn q4_k<const N: usize, const G: bool>(
    n: usize,
    w: &[u8],
    x: &[u8],
    out: &mut [f32; N],
    pf: &[u8],
) {
    let (w, xs) = rows::<BlockQ4K, BlockQ8K, N>(n / QK_K, w, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let k4 = K4Consts::new();
        let mut acc = [KAcc::zero(); N];
        for (i, a) in w.iter().enumerate() {
            prefetch_block::<BlockQ4K>(pf, i);
            let (dw, scales, mins) = k4_head(bytemuck::bytes_of(a)[..20].try_into().unwrap(), k4);
            // Chunk c (32 bytes) holds groups 2c (low nibbles) and 2c + 1 (high nibbles).
            let mut q = [_mm512_setzero_si512(); 4];
            for (c, q) in q.iter_mut().enumerate() {
                *q = split_nibbles::<G>(ld256_twice(&a.qs[32 * c..]));
            }
            let g = GroupsOf32 {
                q,
                scales,
                mins,
                dw,
                lane1: k4.lane1,
            };
            groups_of_32_rows(&g, &xs, i, &mut acc);
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = a.sum();
        }
    }
}

/// ggml's `ggml_vec_dot_q5_K_q8_K`, accumulated in lanes (see [`KAcc`]). The fifth bit of
/// the elements of group g is bit g of `qh`; a per-qword rotation brings bits 2c and 2c + 1
/// to bit 4 of their bytes, and a ternary-logic op merges it into the nibble.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn q5_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { q5_k::<N, false>(n, w, x, out, &[]) }
}

/// [`q5_k_q8_k`] with GFNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,gfni")]
pub(super) fn q5_k_q8_k_gfni<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { q5_k::<N, true>(n, w, x, out, &[]) }
}

/// The body of [`q5_k_q8_k`], with GFNI if `G`.
///
/// # Safety
/// As [`split_nibbles`].
#[inline(always)]
unsafe fn q5_k<const N: usize, const G: bool>(
    n: usize,
    w: &[u8],
    x: &[u8],
    out: &mut [f32; N],
    pf: &[u8],
) {
    let (w, xs) = rows::<BlockQ5K, BlockQ8K, N>(n / QK_K, w, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let bit4 = _mm512_set1_epi8(0x10);
        // Rotate-left counts (mod 64) taking bit 2c to 4 in the low half, bit 2c + 1 in the high.
        let rots = [
            _mm512_set_epi64(3, 3, 3, 3, 4, 4, 4, 4),
            _mm512_set_epi64(1, 1, 1, 1, 2, 2, 2, 2),
            _mm512_set_epi64(63, 63, 63, 63, 0, 0, 0, 0),
            _mm512_set_epi64(61, 61, 61, 61, 62, 62, 62, 62),
        ];
        let k4 = K4Consts::new();
        let mut acc = [KAcc::zero(); N];
        for (i, a) in w.iter().enumerate() {
            prefetch_block::<BlockQ5K>(pf, i);
            let (dw, scales, mins) = k4_head(bytemuck::bytes_of(a)[..20].try_into().unwrap(), k4);
            let qh = ld256_twice(&a.qh);
            let mut q = [_mm512_setzero_si512(); 4];
            for (c, q) in q.iter_mut().enumerate() {
                let nib = split_nibbles::<G>(ld256_twice(&a.qs[32 * c..]));
                // nib | (rotated qh & 0x10)
                *q = _mm512_ternarylogic_epi32::<0xF8>(nib, _mm512_rolv_epi64(qh, rots[c]), bit4);
            }
            let g = GroupsOf32 {
                q,
                scales,
                mins,
                dw,
                lane1: k4.lane1,
            };
            groups_of_32_rows(&g, &xs, i, &mut acc);
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = a.sum();
        }
    }
}

/// ggml's `ggml_vec_dot_q6_K_q8_K`, accumulated in lanes (see [`KAcc`]). Values are summed
/// unsigned (0..64) and 32 * scale * bsum taken off per group of 16, folded into the same
/// integer sum with one more `vpdpwssd`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn q6_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { q6_k::<N, false>(n, w, x, out, &[]) }
}

/// [`q6_k_q8_k`] with GFNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,gfni")]
pub(super) fn q6_k_q8_k_gfni<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    // SAFETY: this function has the features.
    unsafe { q6_k::<N, true>(n, w, x, out, &[]) }
}

/// The body of [`q6_k_q8_k`], with GFNI if `G`.
///
/// # Safety
/// As [`split_nibbles`].
#[inline(always)]
unsafe fn q6_k<const N: usize, const G: bool>(
    n: usize,
    w: &[u8],
    x: &[u8],
    out: &mut [f32; N],
    pf: &[u8],
) {
    let (w, xs) = rows::<BlockQ6K, BlockQ8K, N>(n / QK_K, w, x);
    // SAFETY: the features are the caller's promise.
    unsafe {
        let low4 = _mm512_set1_epi8(0x0F);
        let bits45 = _mm512_set1_epi8(0x30);
        let up = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4);
        let down = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
        let idx = [quad_pack_index(0, 4), quad_pack_index(8, 12)];
        // `vpermps` indices broadcasting lane 3, hidden (see [`K4Consts`]).
        let lane3 = _mm512_castsi256_si512(opaque_vec(_mm256_set1_epi32(3)));
        let lane3 = _mm512_broadcast_i64x4(_mm512_castsi512_si256(lane3));
        let mut acc = [KAcc::zero(); N];
        for (i, a) in w.iter().enumerate() {
            prefetch_block::<BlockQ6K>(pf, i);
            // 16 readable bytes, unaligned load.
            let sc8 = _mm_loadu_si128(a.scales.as_ptr().cast());
            let sc16 = _mm256_cvtepi8_epi16(sc8);
            let scz = _mm512_castsi256_si512(sc16);
            // -32 * scale per group of 16, in the low 256 bits (the high ones zero).
            let neg32 = _mm512_zextsi256_si512(_mm256_sub_epi16(
                _mm256_setzero_si256(),
                _mm256_slli_epi16::<5>(sc16),
            ));
            // Half h: 64 bytes of ql (quarters 0, 1 in the low nibbles, 2, 3 in the high) and 32
            // of qh (bits 2k, 2k + 1 for quarter k). Register 2h + p holds quarters 2p, 2p + 1.
            let mut q = [_mm512_setzero_si512(); 4];
            for h in 0..2 {
                let ql = ld512(&a.ql[64 * h..]);
                let qh = ld256_twice(&a.qh[32 * h..]);
                let lo = _mm512_and_si512(ql, low4);
                let hi = high_nibbles::<G>(ql);
                // lo | (qh << 4 or 2) & 0x30, hi | (qh >> 0 or 2) & 0x30
                q[2 * h] = _mm512_ternarylogic_epi32::<0xF8>(lo, _mm512_sllv_epi64(qh, up), bits45);
                q[2 * h + 1] =
                    _mm512_ternarylogic_epi32::<0xF8>(hi, _mm512_srlv_epi64(qh, down), bits45);
            }
            let scales = [
                _mm512_permutexvar_epi16(index512(&idx[0]), scz),
                _mm512_permutexvar_epi16(index512(&idx[1]), scz),
            ];
            // d_w is the block's last 2 bytes: lane 3 of the 8 bytes before its end, converted
            // straight from memory (lanes 0..3, scale bytes read as f16, are not used).
            let tail = &bytemuck::bytes_of(a)[size_of::<BlockQ6K>() - 8..];
            // 8 readable bytes, unaligned load.
            let dw = _mm_cvtph_ps(_mm_loadl_epi64(tail.as_ptr().cast()));
            for (acc, x) in acc.iter_mut().zip(&xs) {
                let b = &x[i];
                // Sums of fours of q * y (|sum| <= 4 * 63 * 128: i16), packed in pairs of
                // registers as in the Q4_K kernel.
                let dp = |r: usize| {
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[r], ld512_i8(&b.qs[64 * r..]))
                };
                let p01 = _mm512_packs_epi32(dp(0), dp(1));
                let p23 = _mm512_packs_epi32(dp(2), dp(3));
                let mut isum = dpwssd(_mm512_madd_epi16(p01, scales[0]), p23, scales[1]);
                let bsums = _mm512_zextsi256_si512(ld256(bytemuck::cast_slice(&b.bsums)));
                isum = dpwssd(isum, bsums, neg32);
                let d =
                    _mm512_permutexvar_ps(lane3, _mm512_castps128_ps512(_mm_mul_ps(dw, q8k_d(b))));
                acc.d = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), d, acc.d);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = a.sum();
        }
    }
}

macro_rules! with_prefetch {
    ($($name:ident => $body:ident, $g:literal, $features:literal;)*) => {$(
        /// The one-row kernel of the same name without `_pf`, prefetching `pf` as it goes
        /// (see [`crate::VecDotPfFn`]).
        #[target_feature(enable = $features)]
        pub(super) fn $name(n: usize, w: &[u8], x: &[u8], pf: &[u8]) -> f32 {
            let mut out = [0f32; 1];
            // SAFETY: this function has the features.
            unsafe { $body::<1, $g>(n, w, x, &mut out, pf) };
            out[0]
        }
    )*};
}

with_prefetch! {
    q4_k_q8_k_pf => q4_k, false, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
    q5_k_q8_k_pf => q5_k, false, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
    q6_k_q8_k_pf => q6_k, false, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
    q4_k_q8_k_gfni_pf => q4_k, true, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,gfni";
    q5_k_q8_k_gfni_pf => q5_k, true, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,gfni";
    q6_k_q8_k_gfni_pf => q6_k, true, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,gfni";
}

/// F16 x F16 in 16-lane f32: two accumulators per row over 32 elements, then a masked tail.
/// Not the scalar kernel's f64 sum, so it differs from it in the last bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn f16_f16<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let row = 2 * n;
    let xs: [&[u8]; N] = core::array::from_fn(|j| x.get(j * row..).unwrap_or(&[]));
    let n = xs
        .iter()
        .fold(n.min(w.len() / 2), |m, r| m.min(r.len() / 2));
    let mut acc = [[_mm512_setzero_ps(); 2]; N];
    let main = n / 32 * 32;
    let cvt = |s: &[u8]| _mm512_cvtph_ps(ld256(s));
    for e in (0..main).step_by(32) {
        let w0 = cvt(&w[2 * e..]);
        let w1 = cvt(&w[2 * e + 32..]);
        for j in 0..N {
            acc[j][0] = _mm512_fmadd_ps(w0, cvt(&xs[j][2 * e..]), acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps(w1, cvt(&xs[j][2 * e + 32..]), acc[j][1]);
        }
    }
    let rem = n - main;
    if rem > 0 {
        // Masked loads of the last rem (< 32) elements; masked-off lanes read nothing.
        let part = |s: &[u8], off: usize| {
            let s = &s[2 * (main + off)..2 * n];
            let k = ((1u32 << (s.len() / 2).min(16)) - 1) as __mmask16;
            // SAFETY: lane l is read only if bit l of k is set, and those lanes lie in `s`.
            _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(k, s.as_ptr().cast()) })
        };
        let w0 = part(w, 0);
        for j in 0..N {
            acc[j][0] = _mm512_fmadd_ps(w0, part(xs[j], 0), acc[j][0]);
        }
        if rem > 16 {
            let w1 = part(w, 16);
            for j in 0..N {
                acc[j][1] = _mm512_fmadd_ps(w1, part(xs[j], 16), acc[j][1]);
            }
        }
    }
    for j in 0..N {
        out[j] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]));
    }
}
