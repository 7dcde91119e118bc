//! aarch64 SIMD kernels, in three tables that match the Arm fleet:
//!
//! - **neon** (ARMv8.0 Advanced SIMD: Cortex-A53/A55 in watches and low-end phones): every
//!   weight type, one-token and four-token, the activation quantizers, attention and SwiGLU.
//! - **dotprod** (ARMv8.2 SDOT: most phones since 2018): the neon table with the integer
//!   products of the quantized types done by `sdot`, and prompt tiles ([`crate::tile`]) on
//!   `sdot` by element, as the AVX-512 table runs them on `vpdpbusd`.
//! - **i8mm** (ARMv8.6 SMMLA/USMMLA: recent phones): the dotprod table with its prompt tiles
//!   on `usmmla` instead.
//!
//! Each `#[target_feature]` kernel is wrapped in a safe function that is only placed in a
//! table after `is_aarch64_feature_detected!` confirmed its features and the table passed a
//! probe run in a child process ([`crate::probe`]). The agreement with the portable
//! reference is the x86 tables': the K-quant products keep the scalar kernels' exact block
//! sums and float expression (bit for bit), the 32-element quants and float rows accumulate
//! in lanes as ggml's NEON kernels do (within a relative 1e-5 of sum |w_i x_i|), four-token
//! kernels equal one-token ones bit for bit, tiles give [`crate::tile::run_ref`]'s bits, and
//! attention, SwiGLU and the quantizers give the portable versions' bits.
//!
//! The dot-product and matrix instructions are written as inline assembly: their intrinsics
//! (`vdotq_s32`, `vusmmlaq_s32`) are still unstable in Rust's `core::arch`.

mod kquants;
mod legacy;
mod quantize;
mod tile;

use crate::dispatch::{Kernels, SCALAR, VecDotX4Fn, no_pf, no_r4};
use bytemuck::Pod;
use core::arch::aarch64::*;
use lingqiao_gguf::GgmlType;
use std::sync::OnceLock;

/// The weight row `w` as blocks, and the `N` activation rows stored back to back in `x` (each
/// `nb` blocks), all cut to the number of whole blocks every one of them has; short input
/// makes a kernel stop early rather than panic. (The same as the x86 module's.)
#[inline(always)]
fn rows<'a, W: Pod, X: Pod, const N: usize>(
    nb: usize,
    w: &'a [u8],
    x: &'a [u8],
) -> (&'a [W], [&'a [X]; N]) {
    let w = crate::scalar::blocks::<W>(w);
    let row = nb * size_of::<X>();
    let xs: [&[X]; N] =
        core::array::from_fn(|j| crate::scalar::blocks::<X>(x.get(j * row..).unwrap_or(&[])));
    let nb = xs.iter().fold(nb.min(w.len()), |m, r| m.min(r.len()));
    (&w[..nb], xs.map(|r| &r[..nb]))
}

/// `acc + ` the dot products of each 4 signed bytes of `a` and `b`, in 4 i32 lanes (SDOT).
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(super) fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: sdot only reads and writes the three registers; the feature is enabled.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `acc +` the dot products of each 4 signed bytes of `a` with the 4 signed bytes in lane `J`
/// (0..4) of `b`, in 4 i32 lanes (SDOT by element: `sdot vd.4s, vn.16b, vm.4b[J]`).
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(super) fn sdot_lane<const J: u32>(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    const { assert!(J < 4) };
    // SAFETY: sdot only reads and writes the three registers; the feature is enabled.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.4b[{j}]",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            j = const J,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `acc +` the 2x2 products of two 2x8 byte matrices (rows of 8 bytes: `a` unsigned, `b`
/// signed; `acc` lanes r0·c0, r0·c1, r1·c0, r1·c1) (USMMLA).
#[inline]
#[target_feature(enable = "neon,i8mm")]
pub(super) fn usmmla(mut acc: int32x4_t, a: uint8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: usmmla only reads and writes the three registers; the feature is enabled.
    unsafe {
        core::arch::asm!(
            "usmmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Safe wrappers around generic kernels (`fn k<const N: usize>(n, w, x, out: &mut [f32; N])`)
/// of one module: a `one` ([`crate::VecDotFn`]) and a `four` ([`VecDotX4Fn`]) instance each.
macro_rules! safe_wrappers {
    ($safe:ident => $file:ident :: $level:ident : [$($gen:ident),* $(,)?]) => {
        mod $safe {
            $(
                pub(crate) mod $gen {
                    pub(crate) fn one(n: usize, w: &[u8], x: &[u8]) -> f32 {
                        let mut out = [0f32; 1];
                        // SAFETY: only reachable through the tables of this module, which
                        // exist only after their features were detected and probe passed.
                        unsafe { crate::aarch64::$file::$level::$gen::<1>(n, w, x, &mut out) };
                        out[0]
                    }

                    pub(crate) fn four(n: usize, w: &[u8], x: &[u8], out: &mut [f32; 4]) {
                        // SAFETY: as for `one`.
                        unsafe { crate::aarch64::$file::$level::$gen::<4>(n, w, x, out) }
                    }
                }
            )*
        }
    };
}

safe_wrappers!(neon_legacy => legacy::neon: [
    f32_f32, f16_f16, bf16_bf16, q4_0_q8_0, q4_1_q8_1, q5_0_q8_0, q5_1_q8_1, q8_0_q8_0,
]);
safe_wrappers!(dotprod_legacy => legacy::dotprod: [
    q4_0_q8_0, q4_1_q8_1, q5_0_q8_0, q5_1_q8_1, q8_0_q8_0,
]);
safe_wrappers!(neon_k => kquants::neon: [
    q2_k_q8_k, q3_k_q8_k, q4_k_q8_k, q5_k_q8_k, q6_k_q8_k,
]);
safe_wrappers!(dotprod_k => kquants::dotprod: [
    q2_k_q8_k, q3_k_q8_k, q4_k_q8_k, q5_k_q8_k, q6_k_q8_k,
]);

fn neon_x4(ty: GgmlType) -> Option<VecDotX4Fn> {
    use neon_k::*;
    use neon_legacy::*;
    Some(match ty {
        GgmlType::F32 => f32_f32::four,
        GgmlType::F16 => f16_f16::four,
        GgmlType::BF16 => bf16_bf16::four,
        GgmlType::Q4_0 => q4_0_q8_0::four,
        GgmlType::Q4_1 => q4_1_q8_1::four,
        GgmlType::Q5_0 => q5_0_q8_0::four,
        GgmlType::Q5_1 => q5_1_q8_1::four,
        GgmlType::Q8_0 => q8_0_q8_0::four,
        GgmlType::Q2_K => q2_k_q8_k::four,
        GgmlType::Q3_K => q3_k_q8_k::four,
        GgmlType::Q4_K => q4_k_q8_k::four,
        GgmlType::Q5_K => q5_k_q8_k::four,
        GgmlType::Q6_K => q6_k_q8_k::four,
        _ => return None,
    })
}

fn dotprod_x4(ty: GgmlType) -> Option<VecDotX4Fn> {
    use dotprod_k::*;
    use dotprod_legacy::*;
    Some(match ty {
        GgmlType::Q4_0 => q4_0_q8_0::four,
        GgmlType::Q4_1 => q4_1_q8_1::four,
        GgmlType::Q5_0 => q5_0_q8_0::four,
        GgmlType::Q5_1 => q5_1_q8_1::four,
        GgmlType::Q8_0 => q8_0_q8_0::four,
        GgmlType::Q2_K => q2_k_q8_k::four,
        GgmlType::Q3_K => q3_k_q8_k::four,
        GgmlType::Q4_K => q4_k_q8_k::four,
        GgmlType::Q5_K => q5_k_q8_k::four,
        GgmlType::Q6_K => q6_k_q8_k::four,
        // The float rows have no integer products: the neon kernels.
        _ => return neon_x4(ty),
    })
}

/// Safe wrappers of the NEON activation quantizers, for the tables.
mod quantize_safe {
    // SAFETY (each): only reachable through a table, which exists only after its features
    // were detected and its probe passed (NEON is in every table).
    pub(super) fn q8_0(src: &[f32], dst: &mut [u8]) {
        unsafe { super::quantize::quantize_row_q8_0(src, dst) }
    }
    pub(super) fn q8_1(src: &[f32], dst: &mut [u8]) {
        unsafe { super::quantize::quantize_row_q8_1(src, dst) }
    }
    pub(super) fn q8_k(src: &[f32], dst: &mut [u8]) {
        unsafe { super::quantize::quantize_row_q8_k(src, dst) }
    }
}

const NEON: Kernels = Kernels {
    isa: "neon",
    f32: neon_legacy::f32_f32::one,
    f16: neon_legacy::f16_f16::one,
    bf16: neon_legacy::bf16_bf16::one,
    q4_0: neon_legacy::q4_0_q8_0::one,
    q4_1: neon_legacy::q4_1_q8_1::one,
    q5_0: neon_legacy::q5_0_q8_0::one,
    q5_1: neon_legacy::q5_1_q8_1::one,
    q8_0: neon_legacy::q8_0_q8_0::one,
    // Activation-only types, never a weight in a model: the reference kernels.
    q8_1: SCALAR.q8_1,
    q2_k: neon_k::q2_k_q8_k::one,
    q3_k: neon_k::q3_k_q8_k::one,
    q4_k: neon_k::q4_k_q8_k::one,
    q5_k: neon_k::q5_k_q8_k::one,
    q6_k: neon_k::q6_k_q8_k::one,
    q8_k: SCALAR.q8_k,
    x4: neon_x4,
    pf: no_pf,
    r4: no_r4,
    quantize_q8_0: quantize_safe::q8_0,
    quantize_q8_1: quantize_safe::q8_1,
    quantize_q8_k: quantize_safe::q8_k,
    attn_dot: crate::attn::neon_safe::dot,
    attn_axpy: crate::attn::neon_safe::axpy,
    swiglu: crate::act::neon_safe::swiglu,
    // The portable micro-kernel until a NEON one is written (same bits, slower).
    gemm_f32: SCALAR.gemm_f32,
    tile: None,
};

const DOTPROD: Kernels = Kernels {
    isa: "dotprod",
    q4_0: dotprod_legacy::q4_0_q8_0::one,
    q4_1: dotprod_legacy::q4_1_q8_1::one,
    q5_0: dotprod_legacy::q5_0_q8_0::one,
    q5_1: dotprod_legacy::q5_1_q8_1::one,
    q8_0: dotprod_legacy::q8_0_q8_0::one,
    q2_k: dotprod_k::q2_k_q8_k::one,
    q3_k: dotprod_k::q3_k_q8_k::one,
    q4_k: dotprod_k::q4_k_q8_k::one,
    q5_k: dotprod_k::q5_k_q8_k::one,
    q6_k: dotprod_k::q6_k_q8_k::one,
    x4: dotprod_x4,
    tile: Some(crate::tile::TileKernels {
        pack: tile_safe::pack,
        run: tile_safe::run_dotprod,
    }),
    ..NEON
};

/// Safe wrappers of the tile kernels, for the dotprod and i8mm tables.
mod tile_safe {
    use crate::tile::{ActTile, Format, WeightTile};
    use std::ops::Range;

    // SAFETY (each): `pack` and `run_dotprod` need NEON and DOTPROD, `run` NEON, DOTPROD and
    // I8MM; each is only reachable through a table that has them (`pack` the dotprod and the
    // i8mm table, `run_dotprod` the dotprod table, `run` the i8mm table), which exists only
    // after its features were detected and its probe passed.
    pub(super) fn pack(t: &mut WeightTile, f: &Format, n: usize, rows: &[u8], row_bytes: usize) {
        unsafe { super::tile::pack(t, f, n, rows, row_bytes) }
    }
    pub(super) fn run(
        f: &Format,
        w: &WeightTile,
        x: &ActTile,
        tokens: Range<usize>,
        out: &mut [f32],
    ) {
        unsafe { super::tile::run(f, w, x, tokens, out) }
    }
    pub(super) fn run_dotprod(
        f: &Format,
        w: &WeightTile,
        x: &ActTile,
        tokens: Range<usize>,
        out: &mut [f32],
    ) {
        unsafe { super::tile::run_dotprod(f, w, x, tokens, out) }
    }
}

const I8MM: Kernels = Kernels {
    isa: "i8mm",
    tile: Some(crate::tile::TileKernels {
        pack: tile_safe::pack,
        run: tile_safe::run,
    }),
    ..DOTPROD
};

/// The NEON table if it passes the probe (Advanced SIMD is part of every ARMv8-A core, but
/// the probe still runs: it costs a millisecond once).
pub(crate) fn neon_table() -> Option<&'static Kernels> {
    static PASSED: OnceLock<bool> = OnceLock::new();
    let ok = || std::arch::is_aarch64_feature_detected!("neon") && crate::probe::passes(&NEON);
    (*PASSED.get_or_init(ok)).then_some(&NEON)
}

fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
        && std::arch::is_aarch64_feature_detected!("dotprod")
}

/// The dotprod table if the CPU reports SDOT and the table passes the probe.
pub(crate) fn dotprod_table() -> Option<&'static Kernels> {
    static PASSED: OnceLock<bool> = OnceLock::new();
    let ok = || has_dotprod() && crate::probe::passes(&DOTPROD);
    (*PASSED.get_or_init(ok)).then_some(&DOTPROD)
}

/// The i8mm table if the CPU reports SDOT and the 8-bit matrix multiplies and the table
/// passes the probe.
pub(crate) fn i8mm_table() -> Option<&'static Kernels> {
    static PASSED: OnceLock<bool> = OnceLock::new();
    let ok = || {
        has_dotprod()
            && std::arch::is_aarch64_feature_detected!("i8mm")
            && crate::probe::passes(&I8MM)
    };
    (*PASSED.get_or_init(ok)).then_some(&I8MM)
}

/// Every SIMD table this CPU runs (detected and probed), for the tests.
pub(crate) fn simd_tables() -> Vec<&'static Kernels> {
    let mut t = Vec::new();
    t.extend(neon_table());
    t.extend(dotprod_table());
    t.extend(i8mm_table());
    t
}
