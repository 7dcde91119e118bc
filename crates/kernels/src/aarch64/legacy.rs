//! The float rows and the 32-element quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) on NEON, and the
//! quants with SDOT.
//!
//! The quant kernels take two blocks per step, as ggml's NEON kernels do, and decode the
//! weight blocks and widen their f16 scales once for all `N` activation rows. Every row then
//! goes through the same float operations in the same order whatever `N` is, which is what
//! makes the four-token kernels equal the one-token ones bit for bit. A row's integer sums
//! of a pair of blocks end up in one i32x4 (two lanes per block), converted once and
//! multiplied by [s0, s0, s1, s1] into the row's single f32x4 accumulator; the horizontal
//! sum comes once at the end. ggml converts and scales each block on its own and converts
//! every f16 scale with a scalar `fcvt`; here the first four bytes of two blocks (d and m,
//! d and s, or d and two data bytes that are never used) are widened in one `fcvtl`.
//!
//! Without SDOT the byte products are formed in i16 lanes (`smull`, `smlal2`) and widened to
//! i32 only where the next sum could overflow: 4-bit and 5-bit weights (|q| <= 31) keep 8
//! products per i16 lane (31 * 128 * 8 < 2^15), Q8_0 only 2 (128 * 127 * 2 < 2^15, as the
//! activation quantizers never produce -128). ggml widens after every single product.

use super::rows;
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
use core::arch::aarch64::*;
use core::arch::asm;

/// Four f16 (bit patterns) widened to f32 (FCVTL, ARMv8.0; `float16x4_t` is unstable).
#[inline]
#[target_feature(enable = "neon")]
fn fcvtl(h: uint16x4_t) -> float32x4_t {
    let r: float32x4_t;
    // SAFETY: fcvtl only reads and writes the two registers; the feature is enabled.
    unsafe {
        asm!(
            "fcvtl {r:v}.4s, {h:v}.4h",
            r = lateout(vreg) r,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    r
}

/// The upper four of eight f16 widened to f32 (FCVTL2).
#[inline]
#[target_feature(enable = "neon")]
fn fcvtl2(h: uint16x8_t) -> float32x4_t {
    let r: float32x4_t;
    // SAFETY: fcvtl2 only reads and writes the two registers; the feature is enabled.
    unsafe {
        asm!(
            "fcvtl2 {r:v}.4s, {h:v}.8h",
            r = lateout(vreg) r,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    r
}

/// 16 bytes from an array.
#[inline(always)]
fn ld_u8(s: &[u8; 16]) -> uint8x16_t {
    // SAFETY: 16 readable bytes; ld1 has no alignment requirement; NEON is part of the
    // aarch64 target.
    unsafe { vld1q_u8(s.as_ptr()) }
}

/// The 32 bytes of a Q8 block as elements 0..16 and 16..32.
#[inline(always)]
fn ld_q8(s: &[i8; QK]) -> [int8x16_t; 2] {
    // SAFETY: 32 readable bytes; ld1 has no alignment requirement; NEON is part of the
    // aarch64 target.
    unsafe { [vld1q_s8(s.as_ptr()), vld1q_s8(s.as_ptr().add(16))] }
}

/// The first four bytes of a block (d and its neighbour field) as a u32.
#[inline(always)]
fn head<B: bytemuck::Pod>(b: &B) -> u32 {
    let s = bytemuck::bytes_of(b);
    u32::from_le_bytes([s[0], s[1], s[2], s[3]])
}

/// The first two f16 of two blocks, widened: [d0, m0, d1, m1].
#[inline(always)]
fn heads<B: bytemuck::Pod>(a: &B, b: &B) -> float32x4_t {
    // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
    unsafe {
        fcvtl(vreinterpret_u16_u32(vset_lane_u32::<1>(
            head(b),
            vcreate_u32(head(a) as u64),
        )))
    }
}

/// As [`heads`] for a last odd block: [d0, m0, 0, 0], so that the empty half adds nothing.
#[inline(always)]
pub(super) fn heads_one<B: bytemuck::Pod>(a: &B) -> float32x4_t {
    // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
    unsafe { fcvtl(vreinterpret_u16_u32(vcreate_u32(head(a) as u64))) }
}

/// An activation block of the 32-element quants.
pub(super) trait Act: bytemuck::Pod {
    fn qs(&self) -> &[i8; QK];
}

impl Act for BlockQ8_0 {
    #[inline(always)]
    fn qs(&self) -> &[i8; QK] {
        &self.qs
    }
}

impl Act for BlockQ8_1 {
    #[inline(always)]
    fn qs(&self) -> &[i8; QK] {
        &self.qs
    }
}

/// Products of byte vectors in i16 lanes: lane k of the result holds 4 products (one from
/// each of the four 8-byte halves).
#[inline(always)]
fn prod_i16(q: [int8x16_t; 2], y: [int8x16_t; 2]) -> int16x8_t {
    // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
    unsafe {
        let p = vmull_s8(vget_low_s8(q[0]), vget_low_s8(y[0]));
        let p = vmlal_high_s8(p, q[0], y[0]);
        let p = vmlal_s8(p, vget_low_s8(q[1]), vget_low_s8(y[1]));
        vmlal_high_s8(p, q[1], y[1])
    }
}

/// A weight block of the 32-element quants.
pub(super) trait Weight: bytemuck::Pod {
    /// The activation block it pairs with.
    type X: Act;
    /// Whether the second f16 is a minimum m, whose term m * s_x is added per block
    /// (Q4_1, Q5_1 with Q8_1's s = d * sum(q)).
    const MIN: bool;
    /// The factor on the sum of the SDOT products for the values of [`Weight::q_sdot`].
    const SDOT_SCALE: f32 = 1.0;

    /// The 32 values (minus the type's offset) as signed bytes: elements 0..16, 16..32.
    fn q(&self) -> [int8x16_t; 2];

    /// The values for the SDOT kernels: those of [`Weight::q`] times 1 / `SDOT_SCALE`.
    #[inline(always)]
    fn q_sdot(&self) -> [int8x16_t; 2] {
        self.q()
    }

    /// A pair of blocks' products without SDOT: lanes 0 and 1 add up to block 0's sum,
    /// lanes 2 and 3 to block 1's. This default is for values |q| <= 31 (see the module
    /// comment for why 8 products fit an i16 lane).
    #[inline(always)]
    fn ints_neon(q: [[int8x16_t; 2]; 2], y: [[int8x16_t; 2]; 2]) -> int32x4_t {
        let (p0, p1) = (prod_i16(q[0], y[0]), prod_i16(q[1], y[1]));
        // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
        unsafe { vpaddlq_s16(vpaddq_s16(p0, p1)) }
    }
}

/// The two nibble halves of 16 bytes: elements 0..16 (low nibbles) and 16..32 (high).
#[inline(always)]
fn nibbles(qs: &[u8; 16]) -> [uint8x16_t; 2] {
    let v = ld_u8(qs);
    // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
    unsafe { [vandq_u8(v, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(v)] }
}

/// 0xFF in byte j (of elements 0..16, then 16..32) where bit j of `qh` is set.
#[inline(always)]
fn high_bits(qh: u32) -> [uint8x16_t; 2] {
    const LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: register-only intrinsics and loads of the constants (16 bytes each); NEON is
    // part of the aarch64 target.
    unsafe {
        let h = vreinterpretq_u8_u32(vdupq_n_u32(qh));
        let bit = vld1q_u8(BIT.as_ptr());
        [
            vtstq_u8(vqtbl1q_u8(h, vld1q_u8(LO.as_ptr())), bit),
            vtstq_u8(vqtbl1q_u8(h, vld1q_u8(HI.as_ptr())), bit),
        ]
    }
}

impl Weight for BlockQ4_0 {
    type X = BlockQ8_0;
    const MIN: bool = false;
    const SDOT_SCALE: f32 = 1.0 / 16.0;

    #[inline(always)]
    fn q(&self) -> [int8x16_t; 2] {
        let [lo, hi] = nibbles(&self.qs);
        // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
        unsafe {
            let eight = vdupq_n_u8(8);
            [
                vreinterpretq_s8_u8(vsubq_u8(lo, eight)),
                vreinterpretq_s8_u8(vsubq_u8(hi, eight)),
            ]
        }
    }

    /// 16 (q - 8) in three instructions instead of four: with bit 3 of each nibble flipped
    /// a nibble read as a signed 4-bit number is q - 8, and in the top half of a byte it
    /// reads as 16 times that. (The NEON products cannot take the factor 16: 8 of them
    /// share an i16 lane.)
    #[inline(always)]
    fn q_sdot(&self) -> [int8x16_t; 2] {
        // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
        unsafe {
            let v = veorq_u8(ld_u8(&self.qs), vdupq_n_u8(0x88));
            [
                vreinterpretq_s8_u8(vshlq_n_u8::<4>(v)),
                vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0xF0))),
            ]
        }
    }
}

impl Weight for BlockQ4_1 {
    type X = BlockQ8_1;
    const MIN: bool = true;

    #[inline(always)]
    fn q(&self) -> [int8x16_t; 2] {
        // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
        nibbles(&self.qs).map(|v| unsafe { vreinterpretq_s8_u8(v) })
    }
}

impl Weight for BlockQ5_0 {
    type X = BlockQ8_0;
    const MIN: bool = false;

    /// q - 16 = the five bits with the fifth inverted, sign-extended: the nibble with
    /// 0xF where the bit is clear, 0 where it is set, on top (one `bsl` / `sri` per half).
    #[inline(always)]
    fn q(&self) -> [int8x16_t; 2] {
        let clear = high_bits(!u32::from_le_bytes(self.qh));
        let v = ld_u8(&self.qs);
        // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
        unsafe {
            [
                vreinterpretq_s8_u8(vbslq_u8(vdupq_n_u8(0xF0), clear[0], v)),
                vreinterpretq_s8_u8(vsriq_n_u8::<4>(clear[1], v)),
            ]
        }
    }
}

impl Weight for BlockQ5_1 {
    type X = BlockQ8_1;
    const MIN: bool = true;

    #[inline(always)]
    fn q(&self) -> [int8x16_t; 2] {
        let set = high_bits(u32::from_le_bytes(self.qh));
        let v = ld_u8(&self.qs);
        // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
        unsafe {
            let lo = vbslq_u8(vdupq_n_u8(0x10), set[0], vandq_u8(v, vdupq_n_u8(0x0F)));
            // 0xFF >> 3 = 0x1F puts the bit at 0x10 under the inserted high nibble.
            let hi = vsriq_n_u8::<4>(vshrq_n_u8::<3>(set[1]), v);
            [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)]
        }
    }
}

impl Weight for BlockQ8_0 {
    type X = BlockQ8_0;
    const MIN: bool = false;

    #[inline(always)]
    fn q(&self) -> [int8x16_t; 2] {
        ld_q8(&self.qs)
    }

    /// Two products per i16 lane (see the module comment), then widened.
    #[inline(always)]
    fn ints_neon(q: [[int8x16_t; 2]; 2], y: [[int8x16_t; 2]; 2]) -> int32x4_t {
        // SAFETY: register-only intrinsics; NEON is part of the aarch64 target.
        unsafe {
            let block = |q: [int8x16_t; 2], y: [int8x16_t; 2]| {
                let a = vmlal_high_s8(vmull_s8(vget_low_s8(q[0]), vget_low_s8(y[0])), q[0], y[0]);
                let b = vmlal_high_s8(vmull_s8(vget_low_s8(q[1]), vget_low_s8(y[1])), q[1], y[1]);
                vpadalq_s16(vpaddlq_s16(a), b)
            };
            vpaddq_s32(block(q[0], y[0]), block(q[1], y[1]))
        }
    }
}

/// The SDOT version of [`Weight::ints_neon`].
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn ints_sdot(q: [[int8x16_t; 2]; 2], y: [[int8x16_t; 2]; 2]) -> int32x4_t {
    let z = vdupq_n_s32(0);
    let b0 = super::sdot(super::sdot(z, q[0][0], y[0][0]), q[0][1], y[0][1]);
    let b1 = super::sdot(super::sdot(z, q[1][0], y[1][0]), q[1][1], y[1][1]);
    vpaddq_s32(b0, b1)
}

/// The kernel of every 32-element quant at both levels (`SDOT` or not), for `N` rows.
///
/// # Safety
/// The CPU must have NEON, and SDOT if `SDOT`.
#[inline(always)]
unsafe fn quant<const N: usize, W: Weight, const SDOT: bool>(
    n: usize,
    w: &[u8],
    x: &[u8],
    out: &mut [f32; N],
) {
    let (w, xs) = rows::<W, W::X, N>(n / QK, w, x);
    let ints = |q: [[int8x16_t; 2]; 2], y: [[int8x16_t; 2]; 2]| {
        if SDOT {
            // SAFETY: SDOT is the caller's promise.
            unsafe { ints_sdot(q, y) }
        } else {
            W::ints_neon(q, y)
        }
    };
    let decode = |a: &W| if SDOT { a.q_sdot() } else { a.q() };
    // SAFETY: register-only intrinsics; NEON is part of the aarch64 target. `rows` cut every
    // row to the blocks of `w`, so each row has a pair wherever `w` has one, and the index of
    // `w`'s last block.
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); N];
        let mut mins = [vdupq_n_f32(0.0); N];
        // Adds a pair's (or the last block's) products to row j; `xh` are the activation
        // blocks' widened heads.
        let mut step = |j: usize, q, y, wh: float32x4_t, xh: float32x4_t| {
            let p = vmulq_f32(wh, xh);
            if W::MIN {
                mins[j] = vaddq_f32(mins[j], p);
            }
            acc[j] = vfmaq_f32(acc[j], vcvtq_f32_s32(ints(q, y)), vtrn1q_f32(p, p));
        };
        let pairs = w.chunks_exact(2);
        let last = pairs.remainder().first();
        let mut x_pairs = xs.map(|r| r.chunks_exact(2));
        for a in pairs {
            let q = [decode(&a[0]), decode(&a[1])];
            let wh = heads(&a[0], &a[1]);
            for (j, xp) in x_pairs.iter_mut().enumerate() {
                let b = xp.next().unwrap_unchecked();
                step(
                    j,
                    q,
                    [ld_q8(b[0].qs()), ld_q8(b[1].qs())],
                    wh,
                    heads(&b[0], &b[1]),
                );
            }
        }
        if let Some(a) = last {
            let z = vdupq_n_s8(0);
            let q = [decode(a), [z, z]];
            let wh = heads_one(a);
            for (j, x) in xs.iter().enumerate() {
                let b = x.get_unchecked(w.len() - 1);
                step(j, q, [ld_q8(b.qs()), [z, z]], wh, heads_one(b));
            }
        }
        for j in 0..N {
            let mut s = vaddvq_f32(acc[j]);
            if SDOT {
                s *= W::SDOT_SCALE;
            }
            if W::MIN {
                s += vgetq_lane_f32::<1>(mins[j]) + vgetq_lane_f32::<3>(mins[j]);
            }
            out[j] = s;
        }
    }
}

/// An element type of the float rows, widened to f32 lanes.
trait Float {
    /// Bytes per element.
    const SIZE: usize;
    /// # Safety
    /// `p` must have 8 * SIZE readable bytes.
    unsafe fn load8(p: *const u8) -> [float32x4_t; 2];
    /// # Safety
    /// `p` must have 4 * SIZE readable bytes.
    unsafe fn load4(p: *const u8) -> float32x4_t;
}

struct F32;
struct F16;
struct Bf16;

impl Float for F32 {
    const SIZE: usize = 4;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> [float32x4_t; 2] {
        // SAFETY: the caller's promise; ld1 has no alignment requirement.
        unsafe { [vld1q_f32(p.cast()), vld1q_f32(p.add(16).cast())] }
    }
    #[inline(always)]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: the caller's promise.
        unsafe { vld1q_f32(p.cast()) }
    }
}

impl Float for F16 {
    const SIZE: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> [float32x4_t; 2] {
        // SAFETY: the caller's promise; the conversions are register-only.
        unsafe {
            let h = vld1q_u16(p.cast());
            [fcvtl(vget_low_u16(h)), fcvtl2(h)]
        }
    }
    #[inline(always)]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: the caller's promise.
        unsafe { fcvtl(vld1_u16(p.cast())) }
    }
}

/// A bf16 is the upper half of an f32: widening is a shift by 16 (`shll`).
impl Float for Bf16 {
    const SIZE: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> [float32x4_t; 2] {
        // SAFETY: the caller's promise; the shifts are register-only.
        unsafe {
            let h = vld1q_u16(p.cast());
            [
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
                vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
            ]
        }
    }
    #[inline(always)]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: the caller's promise.
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p.cast()))) }
    }
}

/// The float row kernel, for `N` rows: four f32x4 accumulators per row over runs of 16
/// elements, then runs of 4 (the last one zero-padded) into the first.
///
/// # Safety
/// The CPU must have NEON.
#[inline(always)]
unsafe fn float<const N: usize, T: Float>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
    let size = T::SIZE;
    let row = size * n;
    let xs: [&[u8]; N] = core::array::from_fn(|j| x.get(j * row..).unwrap_or(&[]));
    let n = xs
        .iter()
        .fold(n.min(w.len() / size), |m, r| m.min(r.len() / size));
    let main = n / 16 * 16;
    let quads = n / 4 * 4;
    // SAFETY: the loads from `w` and the rows read below element `n`, which they all have;
    // the tail's reads 16 bytes of its buffer. Register-only intrinsics otherwise; NEON is
    // part of the aarch64 target.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 4]; N];
        for i in (0..main).step_by(16) {
            let p = w.as_ptr().add(i * size);
            let wv = [T::load8(p), T::load8(p.add(8 * size))];
            for j in 0..N {
                let p = xs[j].as_ptr().add(i * size);
                let xv = [T::load8(p), T::load8(p.add(8 * size))];
                for k in 0..4 {
                    let a = &mut acc[j][k];
                    *a = vfmaq_f32(*a, wv[k / 2][k % 2], xv[k / 2][k % 2]);
                }
            }
        }
        for i in (main..quads).step_by(4) {
            let wv = T::load4(w.as_ptr().add(i * size));
            for j in 0..N {
                let xv = T::load4(xs[j].as_ptr().add(i * size));
                acc[j][0] = vfmaq_f32(acc[j][0], wv, xv);
            }
        }
        // The last 1 to 3 elements as one more run of 4, zero-padded (the padding adds 0 * 0).
        if quads < n {
            let tail = |s: &[u8]| {
                let mut b = [0u8; 16];
                b[..(n - quads) * size].copy_from_slice(&s[quads * size..n * size]);
                T::load4(b.as_ptr())
            };
            let wv = tail(w);
            for j in 0..N {
                acc[j][0] = vfmaq_f32(acc[j][0], wv, tail(xs[j]));
            }
        }
        for j in 0..N {
            let a = &acc[j];
            out[j] = vaddvq_f32(vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3])));
        }
    }
}

/// ARMv8.0 Advanced SIMD kernels.
pub(crate) mod neon {
    use super::*;

    /// Matches ggml's NEON `ggml_vec_dot_f32` (f32 lanes; the scalar reference sums in
    /// f64), for `N` activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn f32_f32<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { float::<N, F32>(n, w, x, out) }
    }

    /// Matches ggml's NEON `ggml_vec_dot_f16` without FP16 arithmetic (f16 widened to f32
    /// lanes; the FP16 variant accumulates in f16, too coarse for the contract), for `N`
    /// activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn f16_f16<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { float::<N, F16>(n, w, x, out) }
    }

    /// ggml's `ggml_vec_dot_bf16` has no NEON path (on Arm it is the scalar loop summing in
    /// f64, as the reference here); this is its AVX2 shape, bf16 widened to f32 lanes, for
    /// `N` activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn bf16_bf16<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { float::<N, Bf16>(n, w, x, out) }
    }

    /// Matches ggml's NEON (pre-dotprod) `ggml_vec_dot_q4_0_q8_0`, for `N` activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn q4_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { quant::<N, BlockQ4_0, false>(n, w, x, out) }
    }

    /// Matches ggml's NEON (pre-dotprod) `ggml_vec_dot_q4_1_q8_1`, for `N` activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn q4_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { quant::<N, BlockQ4_1, false>(n, w, x, out) }
    }

    /// Matches ggml's NEON (pre-dotprod) `ggml_vec_dot_q5_0_q8_0`, for `N` activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn q5_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { quant::<N, BlockQ5_0, false>(n, w, x, out) }
    }

    /// Matches ggml's NEON (pre-dotprod) `ggml_vec_dot_q5_1_q8_1`, for `N` activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn q5_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { quant::<N, BlockQ5_1, false>(n, w, x, out) }
    }

    /// Matches ggml's NEON (pre-dotprod) `ggml_vec_dot_q8_0_q8_0`, for `N` activation rows.
    #[target_feature(enable = "neon")]
    pub(crate) fn q8_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the feature.
        unsafe { quant::<N, BlockQ8_0, false>(n, w, x, out) }
    }
}

/// ARMv8.2 dotprod kernels.
pub(crate) mod dotprod {
    use super::*;

    /// Matches ggml's NEON dotprod `ggml_vec_dot_q4_0_q8_0`, for `N` activation rows.
    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q4_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the features.
        unsafe { quant::<N, BlockQ4_0, true>(n, w, x, out) }
    }

    /// Matches ggml's NEON dotprod `ggml_vec_dot_q4_1_q8_1`, for `N` activation rows.
    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q4_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the features.
        unsafe { quant::<N, BlockQ4_1, true>(n, w, x, out) }
    }

    /// Matches ggml's NEON dotprod `ggml_vec_dot_q5_0_q8_0`, for `N` activation rows.
    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q5_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the features.
        unsafe { quant::<N, BlockQ5_0, true>(n, w, x, out) }
    }

    /// Matches ggml's NEON dotprod `ggml_vec_dot_q5_1_q8_1`, for `N` activation rows.
    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q5_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the features.
        unsafe { quant::<N, BlockQ5_1, true>(n, w, x, out) }
    }

    /// Matches ggml's NEON dotprod `ggml_vec_dot_q8_0_q8_0`, for `N` activation rows.
    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q8_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        // SAFETY: this function has the features.
        unsafe { quant::<N, BlockQ8_0, true>(n, w, x, out) }
    }
}

#[cfg(test)]
mod tests {
    //! The largest products each type can form, where an i16 lane would overflow first: with
    //! unit scales every sum is an integer that f32 holds exactly, so the kernels must give
    //! the scalar result bit for bit. (The random blocks of tests/simd.rs rarely get near.)

    use crate::blocks::*;
    use bytemuck::{Pod, bytes_of};
    use half::f16;

    /// Odd, so the last block goes through the single-block step.
    const NB: usize = 7;
    const ONE: [u8; 2] = [0x00, 0x3C];

    type One = unsafe fn(usize, &[u8], &[u8], &mut [f32; 1]);
    type Four = unsafe fn(usize, &[u8], &[u8], &mut [f32; 4]);
    type Scalar = fn(usize, &[u8], &[u8]) -> f32;

    fn row<B: Pod>(b: B) -> Vec<u8> {
        bytes_of(&b).repeat(NB)
    }

    fn q8_0(y: i8) -> Vec<u8> {
        row(BlockQ8_0 {
            d: ONE,
            qs: [y; 32],
        })
    }

    fn q8_1(y: i8) -> Vec<u8> {
        let s = f16::from_f32(32.0 * y as f32).to_le_bytes();
        row(BlockQ8_1 {
            d: ONE,
            s,
            qs: [y; 32],
        })
    }

    /// Each kernel pair against `scalar` on `w` with every row of `xs` (one-token), and on
    /// the first four rows at once (four-token).
    fn check(kernels: &[(&str, One, Four)], scalar: Scalar, w: &[u8], xs: &[Vec<u8>]) {
        let n = NB * 32;
        for &(name, one, four) in kernels {
            let mut want = [0f32; 4];
            for (j, x) in xs.iter().enumerate() {
                let mut got = [0f32; 1];
                // SAFETY: `kernels` holds only kernels whose features this CPU has.
                unsafe { one(n, w, x, &mut got) };
                let s = scalar(n, w, x);
                assert_eq!(
                    got[0].to_bits(),
                    s.to_bits(),
                    "{name} row {j}: {} vs {s}",
                    got[0]
                );
                if j < 4 {
                    want[j] = s;
                }
            }
            let mut got = [0f32; 4];
            // SAFETY: as above.
            unsafe { four(n, w, &xs[..4].concat(), &mut got) };
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{name} four");
        }
    }

    fn dotprod() -> bool {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }

    macro_rules! kernels {
        ($k:ident) => {{
            let mut v: Vec<(&str, One, Four)> = vec![(
                concat!("neon ", stringify!($k)),
                super::neon::$k::<1>,
                super::neon::$k::<4>,
            )];
            if dotprod() {
                v.push((
                    concat!("dotprod ", stringify!($k)),
                    super::dotprod::$k::<1>,
                    super::dotprod::$k::<4>,
                ));
            }
            v
        }};
    }

    #[test]
    fn q4_0_extremes() {
        let xs = [q8_0(-127), q8_0(127), q8_0(-1), q8_0(0)];
        for qs in [0x00, 0xFF, 0x0F, 0xF0] {
            let w = row(BlockQ4_0 {
                d: ONE,
                qs: [qs; 16],
            });
            check(
                &kernels!(q4_0_q8_0),
                crate::scalar::vec_dot_q4_0_q8_0,
                &w,
                &xs,
            );
        }
    }

    #[test]
    fn q4_1_extremes() {
        let xs = [q8_1(-127), q8_1(127), q8_1(-1), q8_1(0)];
        for qs in [0x00, 0xFF, 0x0F, 0xF0] {
            let w = row(BlockQ4_1 {
                d: ONE,
                m: ONE,
                qs: [qs; 16],
            });
            check(
                &kernels!(q4_1_q8_1),
                crate::scalar::vec_dot_q4_1_q8_1,
                &w,
                &xs,
            );
        }
    }

    #[test]
    fn q5_0_extremes() {
        let xs = [q8_0(-127), q8_0(127), q8_0(-1), q8_0(0)];
        for (qs, qh) in [
            (0x00, 0),
            (0xFF, u32::MAX),
            (0x0F, 0x0000_FFFF),
            (0xF0, 0xFFFF_0000),
        ] {
            let w = row(BlockQ5_0 {
                d: ONE,
                qh: qh.to_le_bytes(),
                qs: [qs; 16],
            });
            check(
                &kernels!(q5_0_q8_0),
                crate::scalar::vec_dot_q5_0_q8_0,
                &w,
                &xs,
            );
        }
    }

    #[test]
    fn q5_1_extremes() {
        let xs = [q8_1(-127), q8_1(127), q8_1(-1), q8_1(0)];
        for (qs, qh) in [
            (0x00, 0),
            (0xFF, u32::MAX),
            (0x0F, 0x0000_FFFF),
            (0xF0, 0xFFFF_0000),
        ] {
            let w = row(BlockQ5_1 {
                d: ONE,
                m: ONE,
                qh: qh.to_le_bytes(),
                qs: [qs; 16],
            });
            check(
                &kernels!(q5_1_q8_1),
                crate::scalar::vec_dot_q5_1_q8_1,
                &w,
                &xs,
            );
        }
    }

    #[test]
    fn q8_0_extremes() {
        let xs = [q8_0(-127), q8_0(127), q8_0(-1), q8_0(0)];
        for q in [i8::MIN, i8::MAX, -127] {
            let w = row(BlockQ8_0 {
                d: ONE,
                qs: [q; 32],
            });
            check(
                &kernels!(q8_0_q8_0),
                crate::scalar::vec_dot_q8_0_q8_0,
                &w,
                &xs,
            );
        }
    }
}
