//! The per-type kernel table, ggml's `type_traits_cpu` reduced to what we use, picked once.

use crate::scalar;
use lingqiao_gguf::GgmlType;
use std::sync::OnceLock;

/// `n` elements of one weight row `w` against `n` activations `x` already in the row type's
/// vec_dot_type.
pub type VecDotFn = fn(n: usize, w: &[u8], x: &[u8]) -> f32;

/// One weight row `w` against four activation rows stored back to back in `x` (each
/// `row_bytes(vec_dot_type(ty), n)` bytes): `out[j]` must equal, bit for bit, the table's
/// [`VecDotFn`] on row `j`. Prompt processing runs these so each weight block is loaded and
/// decoded once for four tokens.
pub type VecDotX4Fn = fn(n: usize, w: &[u8], x: &[u8], out: &mut [f32; 4]);

/// [`VecDotFn`] for one long weight row that also asks for the cache lines of `pf` (a region
/// as long as `w`, usually the bytes a fixed distance further on) a block at a time as the
/// row is multiplied, so a decode step's stream of prefetches is spread evenly over a long
/// row instead of issued in one burst before it. The result must equal, bit for bit, the
/// table's [`VecDotFn`].
pub type VecDotPfFn = fn(n: usize, w: &[u8], x: &[u8], pf: &[u8]) -> f32;

/// Activations (f32) into one row of an activation type: `src.len()` elements, whole blocks,
/// into exactly that row's bytes of `dst`. Every table's quantizers give the scalar bytes.
pub type QuantizeFn = fn(src: &[f32], dst: &mut [u8]);

/// One dot-product kernel per weight type, all for the same instruction set, and the
/// activation quantizers that feed them.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// "avx512", "avx2" or "scalar".
    pub isa: &'static str,
    pub f32: VecDotFn,
    pub f16: VecDotFn,
    pub bf16: VecDotFn,
    pub q4_0: VecDotFn,
    pub q4_1: VecDotFn,
    pub q5_0: VecDotFn,
    pub q5_1: VecDotFn,
    pub q8_0: VecDotFn,
    pub q8_1: VecDotFn,
    pub q2_k: VecDotFn,
    pub q3_k: VecDotFn,
    pub q4_k: VecDotFn,
    pub q5_k: VecDotFn,
    pub q6_k: VecDotFn,
    pub q8_k: VecDotFn,
    /// The four-token kernel for a weight type, where this table has one; matmul falls back
    /// to four [`VecDotFn`] calls otherwise.
    pub x4: fn(GgmlType) -> Option<VecDotX4Fn>,
    /// The prefetching one-row kernel for a weight type, where this table has one.
    pub pf: fn(GgmlType) -> Option<VecDotPfFn>,
    /// ggml's x86 `quantize_row_q8_0` (see [`crate::quantize_row`]).
    pub quantize_q8_0: QuantizeFn,
    /// ggml's x86 `quantize_row_q8_1`.
    pub quantize_q8_1: QuantizeFn,
    /// ggml's `quantize_row_q8_K`.
    pub quantize_q8_k: QuantizeFn,
    /// Attention's score loop (see [`crate::attn`]).
    pub attn_dot: crate::attn::AttnDotFn,
    /// Attention's value loop.
    pub attn_axpy: crate::attn::AttnAxpyFn,
    /// The gated activation of SwiGLU feed-forward layers (see [`crate::act`]).
    pub swiglu: crate::act::SwigluFn,
    /// The tile kernel for prompt processing (see [`crate::tile`]), where this table has one;
    /// matmul runs several tokens through the four-token kernels otherwise.
    pub tile: Option<crate::tile::TileKernels>,
}

fn no_x4(_: GgmlType) -> Option<VecDotX4Fn> {
    None
}

pub(crate) fn no_pf(_: GgmlType) -> Option<VecDotPfFn> {
    None
}

const SCALAR: Kernels = Kernels {
    isa: "scalar",
    f32: scalar::vec_dot_f32,
    f16: scalar::vec_dot_f16,
    bf16: scalar::vec_dot_bf16,
    q4_0: scalar::vec_dot_q4_0_q8_0,
    q4_1: scalar::vec_dot_q4_1_q8_1,
    q5_0: scalar::vec_dot_q5_0_q8_0,
    q5_1: scalar::vec_dot_q5_1_q8_1,
    q8_0: scalar::vec_dot_q8_0_q8_0,
    q8_1: scalar::vec_dot_q8_1_q8_1,
    q2_k: scalar::vec_dot_q2_k_q8_k,
    q3_k: scalar::vec_dot_q3_k_q8_k,
    q4_k: scalar::vec_dot_q4_k_q8_k,
    q5_k: scalar::vec_dot_q5_k_q8_k,
    q6_k: scalar::vec_dot_q6_k_q8_k,
    q8_k: scalar::vec_dot_q8_k_q8_k,
    x4: no_x4,
    pf: no_pf,
    quantize_q8_0: scalar::quantize_row_q8_0,
    quantize_q8_1: scalar::quantize_row_q8_1,
    quantize_q8_k: scalar::quantize_row_q8_k,
    attn_dot: crate::attn::scores_f16_scalar,
    attn_axpy: crate::attn::values_f16_scalar,
    swiglu: crate::act::swiglu_scalar,
    // The scalar table defines the results; tiles would add a second definition to test.
    tile: None,
};

static SELECTED: OnceLock<Kernels> = OnceLock::new();

/// The instruction sets a table can be built for, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

impl Isa {
    /// "scalar", "avx2" or "avx512" (the names tables report in [`Kernels::isa`]).
    pub fn parse(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }
}

impl Kernels {
    /// The portable reference table.
    pub fn scalar() -> &'static Kernels {
        &SCALAR
    }

    /// The AVX2 table, if this CPU has AVX2, FMA and F16C and the table passed its probe (one
    /// run in a child process, see `x86::probe`; done once per process).
    pub fn avx2() -> Option<&'static Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            crate::x86::avx2_table()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The AVX-512 table, if this CPU has what it needs (AVX512F/BW/VL + VNNI + AVX2/FMA/F16C)
    /// and the table passed its probe.
    pub fn avx512() -> Option<&'static Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            crate::x86::avx512_table()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The table used by [`crate::vec_dot`] and [`crate::ops::matmul`], decided on first use,
    /// then fixed: the best one this CPU supports and that passed its probe, capped by
    /// `LINGQIAO_ISA=avx512|avx2|scalar`; `LINGQIAO_FORCE_SCALAR=1` forces scalar. An
    /// unknown `LINGQIAO_ISA` value is reported on stderr and ignored.
    pub fn get() -> &'static Kernels {
        SELECTED.get_or_init(|| {
            if std::env::var("LINGQIAO_FORCE_SCALAR").is_ok_and(|v| v == "1") {
                return SCALAR;
            }
            let cap = match std::env::var("LINGQIAO_ISA") {
                Ok(v) => Isa::parse(&v).unwrap_or_else(|| {
                    eprintln!(
                        "lingqiao: ignoring LINGQIAO_ISA={v:?} (expected avx512, avx2 or scalar)"
                    );
                    Isa::Avx512
                }),
                Err(_) => Isa::Avx512,
            };
            *Self::best_up_to(cap)
        })
    }

    /// Every SIMD table this CPU runs (detected and probed): [`Kernels::avx2`],
    /// [`Kernels::avx512`], and variants the dispatch passes over for a better one (the
    /// AVX-512 table without GFNI where GFNI is there), so tests can check them all.
    pub fn simd_tables() -> Vec<&'static Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            crate::x86::simd_tables()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Vec::new()
        }
    }

    /// The best table this CPU supports (detected and probed) among those up to `cap`.
    pub fn best_up_to(cap: Isa) -> &'static Kernels {
        let avx512 = || (cap >= Isa::Avx512).then(Self::avx512).flatten();
        let avx2 = || (cap >= Isa::Avx2).then(Self::avx2).flatten();
        avx512().or_else(avx2).unwrap_or(&SCALAR)
    }

    /// The dot-product kernel for weights of type `ty`.
    #[inline]
    pub fn vec_dot_fn(&self, ty: GgmlType) -> VecDotFn {
        match ty {
            GgmlType::F32 => self.f32,
            GgmlType::F16 => self.f16,
            GgmlType::BF16 => self.bf16,
            GgmlType::Q4_0 => self.q4_0,
            GgmlType::Q4_1 => self.q4_1,
            GgmlType::Q5_0 => self.q5_0,
            GgmlType::Q5_1 => self.q5_1,
            GgmlType::Q8_0 => self.q8_0,
            GgmlType::Q8_1 => self.q8_1,
            GgmlType::Q2_K => self.q2_k,
            GgmlType::Q3_K => self.q3_k,
            GgmlType::Q4_K => self.q4_k,
            GgmlType::Q5_K => self.q5_k,
            GgmlType::Q6_K => self.q6_k,
            GgmlType::Q8_K => self.q8_k,
        }
    }

    /// The four-token kernel for weights of type `ty`, if this table has one.
    #[inline]
    pub fn vec_dot_x4_fn(&self, ty: GgmlType) -> Option<VecDotX4Fn> {
        (self.x4)(ty)
    }

    /// The prefetching one-row kernel for weights of type `ty`, if this table has one.
    #[inline]
    pub fn vec_dot_pf_fn(&self, ty: GgmlType) -> Option<VecDotPfFn> {
        (self.pf)(ty)
    }

    /// See [`crate::vec_dot`].
    #[inline]
    pub fn vec_dot(&self, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        debug_assert_eq!(
            ty.row_bytes(n as u64),
            Some(w.len() as u64),
            "weight row length"
        );
        debug_assert_eq!(
            crate::vec_dot_type(ty).row_bytes(n as u64),
            Some(x.len() as u64),
            "activation row length"
        );
        (self.vec_dot_fn(ty))(n, w, x)
    }
}
