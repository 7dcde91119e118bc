//! x86-64 SIMD kernels. Each `#[target_feature]` kernel is wrapped in a safe function that is
//! only ever placed in a table after the features were detected at run time and the table
//! passed a probe run in a child process (see [`crate::probe`]).
//!
//! Most kernels are generic over the number `N` of activation rows they take at once: the
//! table's `vec_dot` is `N = 1`, its four-token kernel `N = 4`.

mod avx2;
mod avx512;
pub(crate) mod quantize;
mod tile;

use crate::dispatch::{Kernels, VecDotPfFn, VecDotR4Fn, VecDotX4Fn, no_pf, no_r4};
use crate::scalar::{self, blocks};
use bytemuck::Pod;
use lingqiao_gguf::GgmlType;
use std::sync::OnceLock;

/// The weight row `w` as blocks, and the `N` activation rows stored back to back in `x` (each
/// `nb` blocks), all cut to the number of whole blocks every one of them has; short input
/// makes a kernel stop early rather than panic.
#[inline(always)]
fn rows<'a, W: Pod, X: Pod, const N: usize>(
    nb: usize,
    w: &'a [u8],
    x: &'a [u8],
) -> (&'a [W], [&'a [X]; N]) {
    let w = blocks::<W>(w);
    let row = nb * size_of::<X>();
    let xs: [&[X]; N] = core::array::from_fn(|j| blocks::<X>(x.get(j * row..).unwrap_or(&[])));
    let nb = xs.iter().fold(nb.min(w.len()), |m, r| m.min(r.len()));
    (&w[..nb], xs.map(|r| &r[..nb]))
}

/// Safe wrappers around the kernels of one module, for its table: `single` ones are plain
/// [`crate::VecDotFn`]s, `generic` ones get a `one` ([`crate::VecDotFn`]) and a `four`
/// ([`VecDotX4Fn`]) instance.
macro_rules! safe_wrappers {
    (
        $safe:ident => $module:ident,
        single: [$($one:ident),* $(,)?],
        generic: [$($gen:ident),* $(,)?] $(,)?
    ) => {
        mod $safe {
            $(
                pub(crate) fn $one(n: usize, w: &[u8], x: &[u8]) -> f32 {
                    // SAFETY: only reachable through the table of this module, which exists
                    // only after its target features were detected and its probe passed.
                    unsafe { super::$module::$one(n, w, x) }
                }
            )*
            $(
                pub(crate) mod $gen {
                    pub(crate) fn one(n: usize, w: &[u8], x: &[u8]) -> f32 {
                        let mut out = [0f32; 1];
                        // SAFETY: as for the single wrappers.
                        unsafe { super::super::$module::$gen::<1>(n, w, x, &mut out) };
                        out[0]
                    }

                    pub(crate) fn four(n: usize, w: &[u8], x: &[u8], out: &mut [f32; 4]) {
                        // SAFETY: as for the single wrappers.
                        unsafe { super::super::$module::$gen::<4>(n, w, x, out) }
                    }
                }
            )*
        }
    };
}

safe_wrappers!(
    avx2_safe => avx2,
    single: [],
    generic: [
        vec_dot_f32,
        vec_dot_f16,
        vec_dot_bf16,
        vec_dot_q4_0_q8_0,
        vec_dot_q4_1_q8_1,
        vec_dot_q5_0_q8_0,
        vec_dot_q5_1_q8_1,
        vec_dot_q8_0_q8_0,
        vec_dot_q2_k_q8_k,
        vec_dot_q3_k_q8_k,
        vec_dot_q4_k_q8_k,
        vec_dot_q5_k_q8_k,
        vec_dot_q6_k_q8_k,
    ],
);

safe_wrappers!(
    avx512_safe => avx512,
    single: [],
    generic: [
        f16_f16,
        q4_0_q8_0,
        q4_1_q8_1,
        q5_0_q8_0,
        q5_1_q8_1,
        q8_0_q8_0,
        q4_k_q8_k,
        q5_k_q8_k,
        q6_k_q8_k,
        q4_k_q8_k_gfni,
        q5_k_q8_k_gfni,
        q6_k_q8_k_gfni,
    ],
);

pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// CPUID and the OS's XSAVE state (both checked by `is_x86_feature_detected!`) for everything
/// the AVX-512 table uses, including the AVX2 kernels it keeps for the cold types.
fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

fn avx2_x4(ty: GgmlType) -> Option<VecDotX4Fn> {
    use avx2_safe::*;
    Some(match ty {
        GgmlType::F32 => vec_dot_f32::four,
        GgmlType::F16 => vec_dot_f16::four,
        GgmlType::BF16 => vec_dot_bf16::four,
        GgmlType::Q4_0 => vec_dot_q4_0_q8_0::four,
        GgmlType::Q4_1 => vec_dot_q4_1_q8_1::four,
        GgmlType::Q5_0 => vec_dot_q5_0_q8_0::four,
        GgmlType::Q5_1 => vec_dot_q5_1_q8_1::four,
        GgmlType::Q8_0 => vec_dot_q8_0_q8_0::four,
        GgmlType::Q2_K => vec_dot_q2_k_q8_k::four,
        GgmlType::Q3_K => vec_dot_q3_k_q8_k::four,
        GgmlType::Q4_K => vec_dot_q4_k_q8_k::four,
        GgmlType::Q5_K => vec_dot_q5_k_q8_k::four,
        GgmlType::Q6_K => vec_dot_q6_k_q8_k::four,
        _ => return None,
    })
}

fn avx2_r4(ty: GgmlType) -> Option<VecDotR4Fn> {
    use avx2::*;
    Some(match ty {
        GgmlType::Q4_0 => r4_q4_0,
        GgmlType::Q4_1 => r4_q4_1,
        GgmlType::Q5_0 => r4_q5_0,
        GgmlType::Q5_1 => r4_q5_1,
        GgmlType::Q8_0 => r4_q8_0,
        GgmlType::Q4_K => r4_q4_k,
        GgmlType::Q5_K => r4_q5_k,
        GgmlType::Q6_K => r4_q6_k,
        _ => return None,
    })
}

const AVX2: Kernels = Kernels {
    isa: "avx2",
    f32: avx2_safe::vec_dot_f32::one,
    f16: avx2_safe::vec_dot_f16::one,
    bf16: avx2_safe::vec_dot_bf16::one,
    q4_0: avx2_safe::vec_dot_q4_0_q8_0::one,
    q4_1: avx2_safe::vec_dot_q4_1_q8_1::one,
    q5_0: avx2_safe::vec_dot_q5_0_q8_0::one,
    q5_1: avx2_safe::vec_dot_q5_1_q8_1::one,
    q8_0: avx2_safe::vec_dot_q8_0_q8_0::one,
    // Not hot in any model we run: the reference kernels are used.
    q8_1: scalar::vec_dot_q8_1_q8_1,
    q2_k: avx2_safe::vec_dot_q2_k_q8_k::one,
    q3_k: avx2_safe::vec_dot_q3_k_q8_k::one,
    q4_k: avx2_safe::vec_dot_q4_k_q8_k::one,
    q5_k: avx2_safe::vec_dot_q5_k_q8_k::one,
    q6_k: avx2_safe::vec_dot_q6_k_q8_k::one,
    q8_k: scalar::vec_dot_q8_k_q8_k,
    x4: avx2_x4,
    pf: no_pf,
    r4: avx2_r4,
    quantize_q8_0: quantize_safe::q8_0,
    quantize_q8_1: quantize_safe::q8_1,
    quantize_q8_k: quantize_safe::q8_k,
    attn_dot: crate::attn::simd_safe::dot,
    attn_axpy: crate::attn::simd_safe::axpy,
    swiglu: crate::act::simd_safe::swiglu_avx2,
    gemm_f32: crate::gemm::simd_safe::AVX2,
    tile: None,
};

/// Safe wrappers of the AVX2 activation quantizers, for the tables (the AVX-512 one keeps
/// them: quantizing is a small share of a matmul).
mod quantize_safe {
    // SAFETY (each): only reachable through a table, which exists only after AVX2, FMA and
    // F16C were detected and the table's probe passed.
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

fn avx512_x4(ty: GgmlType) -> Option<VecDotX4Fn> {
    use avx512_safe::*;
    Some(match ty {
        GgmlType::F16 => f16_f16::four,
        GgmlType::Q4_0 => q4_0_q8_0::four,
        GgmlType::Q4_1 => q4_1_q8_1::four,
        GgmlType::Q5_0 => q5_0_q8_0::four,
        GgmlType::Q5_1 => q5_1_q8_1::four,
        GgmlType::Q8_0 => q8_0_q8_0::four,
        GgmlType::Q4_K => q4_k_q8_k::four,
        GgmlType::Q5_K => q5_k_q8_k::four,
        GgmlType::Q6_K => q6_k_q8_k::four,
        // The types that stay on AVX2 keep its four-token kernels.
        _ => return avx2_x4(ty),
    })
}

/// Safe wrappers of the AVX-512 prefetching one-row kernels, for the tables.
mod pf_safe {
    macro_rules! wrap {
        ($($name:ident),*) => {$(
            pub(super) fn $name(n: usize, w: &[u8], x: &[u8], pf: &[u8]) -> f32 {
                // SAFETY: only reachable through the AVX-512 tables, which exist only after
                // their features were detected and their probes passed.
                unsafe { super::avx512::$name(n, w, x, pf) }
            }
        )*};
    }
    wrap!(
        q4_k_q8_k_pf,
        q5_k_q8_k_pf,
        q6_k_q8_k_pf,
        q4_k_q8_k_gfni_pf,
        q5_k_q8_k_gfni_pf,
        q6_k_q8_k_gfni_pf
    );
}

fn avx512_pf(ty: GgmlType) -> Option<VecDotPfFn> {
    Some(match ty {
        GgmlType::Q4_K => pf_safe::q4_k_q8_k_pf,
        GgmlType::Q5_K => pf_safe::q5_k_q8_k_pf,
        GgmlType::Q6_K => pf_safe::q6_k_q8_k_pf,
        _ => return None,
    })
}

fn avx512_gfni_pf(ty: GgmlType) -> Option<VecDotPfFn> {
    Some(match ty {
        GgmlType::Q4_K => pf_safe::q4_k_q8_k_gfni_pf,
        GgmlType::Q5_K => pf_safe::q5_k_q8_k_gfni_pf,
        GgmlType::Q6_K => pf_safe::q6_k_q8_k_gfni_pf,
        _ => return None,
    })
}

/// The AVX-512 kernels for the types real models use; the AVX2 ones (or scalar) for the rest.
const AVX512: Kernels = Kernels {
    isa: "avx512",
    f16: avx512_safe::f16_f16::one,
    q4_0: avx512_safe::q4_0_q8_0::one,
    q4_1: avx512_safe::q4_1_q8_1::one,
    q5_0: avx512_safe::q5_0_q8_0::one,
    q5_1: avx512_safe::q5_1_q8_1::one,
    q8_0: avx512_safe::q8_0_q8_0::one,
    q4_k: avx512_safe::q4_k_q8_k::one,
    q5_k: avx512_safe::q5_k_q8_k::one,
    q6_k: avx512_safe::q6_k_q8_k::one,
    x4: avx512_x4,
    pf: avx512_pf,
    r4: no_r4,
    attn_dot: crate::attn::simd_safe::dot512,
    attn_axpy: crate::attn::simd_safe::axpy512,
    swiglu: crate::act::simd_safe::swiglu_avx512,
    tile: Some(crate::tile::TileKernels {
        pack: tile_safe::pack,
        run: tile_safe::run,
    }),
    ..AVX2
};

/// Safe wrappers of the AVX-512 tile kernels, for the table.
mod tile_safe {
    use crate::tile::{ActTile, Format, WeightTile};
    use std::ops::Range;

    // SAFETY (each): only reachable through the AVX-512 table, which exists only after its
    // features were detected and its probe passed.
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
}

fn avx512_gfni_x4(ty: GgmlType) -> Option<VecDotX4Fn> {
    use avx512_safe::*;
    Some(match ty {
        GgmlType::Q4_K => q4_k_q8_k_gfni::four,
        GgmlType::Q5_K => q5_k_q8_k_gfni::four,
        GgmlType::Q6_K => q6_k_q8_k_gfni::four,
        _ => return avx512_x4(ty),
    })
}

/// [`AVX512`] with the K-quant kernels that split nibbles with GFNI (Ice Lake, Zen 4 and
/// later have it; Cascade Lake has VNNI without it).
const AVX512_GFNI: Kernels = Kernels {
    q4_k: avx512_safe::q4_k_q8_k_gfni::one,
    q5_k: avx512_safe::q5_k_q8_k_gfni::one,
    q6_k: avx512_safe::q6_k_q8_k_gfni::one,
    x4: avx512_gfni_x4,
    pf: avx512_gfni_pf,
    r4: no_r4,
    ..AVX512
};

/// The AVX2 table if the CPU reports AVX2, FMA and F16C and the table passes the probe.
pub(crate) fn avx2_table() -> Option<&'static Kernels> {
    static PASSED: OnceLock<bool> = OnceLock::new();
    (*PASSED.get_or_init(|| has_avx2() && crate::probe::passes(&AVX2))).then_some(&AVX2)
}

/// The AVX-512 table if the CPU reports AVX512F/BW/VL, VNNI and the AVX2 set, and the table
/// passes the probe.
pub(crate) fn avx512_table() -> Option<&'static Kernels> {
    avx512_gfni_table().or_else(avx512_plain_table)
}

/// The AVX-512 table with GFNI, if the CPU also reports GFNI and the table passes the probe.
fn avx512_gfni_table() -> Option<&'static Kernels> {
    static PASSED: OnceLock<bool> = OnceLock::new();
    let ok =
        || has_avx512() && is_x86_feature_detected!("gfni") && crate::probe::passes(&AVX512_GFNI);
    (*PASSED.get_or_init(ok)).then_some(&AVX512_GFNI)
}

/// The AVX-512 table without GFNI.
fn avx512_plain_table() -> Option<&'static Kernels> {
    static PASSED: OnceLock<bool> = OnceLock::new();
    (*PASSED.get_or_init(|| has_avx512() && crate::probe::passes(&AVX512))).then_some(&AVX512)
}

/// Every SIMD table this CPU runs (detected and probed), including those the dispatch passes
/// over for a better one (AVX-512 without GFNI where GFNI is there), for the tests.
pub(crate) fn simd_tables() -> Vec<&'static Kernels> {
    let mut t = Vec::new();
    t.extend(avx2_table());
    t.extend(avx512_plain_table());
    t.extend(avx512_gfni_table());
    t
}
