//! Portable reference kernels, one per type: the `_generic` functions of ggml's CPU backend.
//!
//! These define the results; the SIMD kernels in `x86` are tested against them. They are
//! written for clarity, with integer sums kept exact per block, so a SIMD kernel that keeps the
//! same per-block integer sums can reproduce them bit for bit.
//!
//! Every function takes whole blocks. Lengths are the caller's job (checked once at the public
//! entry points, or at model load for the hot path); a short slice makes a kernel stop early
//! rather than panic.

mod float;
mod kquants;
mod legacy;
mod quantize_kquants;
mod quantize_legacy;

pub use float::*;
pub use kquants::*;
pub use legacy::*;
pub use quantize_kquants::*;
pub use quantize_legacy::*;

use bytemuck::Pod;

/// The whole blocks at the start of `bytes`, viewed in place (blocks have alignment 1).
#[inline(always)]
pub(crate) fn blocks<B: Pod>(bytes: &[u8]) -> &[B] {
    let whole = bytes.len() / size_of::<B>() * size_of::<B>();
    bytemuck::cast_slice(&bytes[..whole])
}

/// As [`blocks`], mutable.
#[inline(always)]
pub(crate) fn blocks_mut<B: Pod>(bytes: &mut [u8]) -> &mut [B] {
    let whole = bytes.len() / size_of::<B>() * size_of::<B>();
    bytemuck::cast_slice_mut(&mut bytes[..whole])
}

/// The low byte of C's float-to-integer conversion of an integral `v` as x86 performs it
/// (`(int8_t)v`, `(uint8_t)v`, numpy's `astype(np.int8 / np.uint8)`): cvttss2si, which turns
/// NaN and out-of-range values into 0x80000000, whose low byte is 0. Rust's `as` saturates
/// instead (inf -> 127), which differs on blocks whose scale is a subnormal with an infinite
/// reciprocal: there the C code and gguf-py store zeros.
#[inline(always)]
pub(crate) fn c_cast_low_byte(v: f32) -> u8 {
    if v.is_finite() && v.abs() < 2_147_483_648.0 {
        v as i32 as u8
    } else {
        0
    }
}
