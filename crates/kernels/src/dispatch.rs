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

/// Four consecutive weight rows (`w` holds them back to back, each `row_bytes` long) against
/// one activation row `x`: `out[i]` must equal, bit for bit, the table's [`VecDotFn`] on
/// row `i`. Decoding runs these, so the activations are loaded and their scales converted
/// once for four rows, and four independent accumulations hide each other's latency. Like
/// [`VecDotPfFn`], the kernel asks for the cache lines of `pf` (usually the next four rows,
/// some way ahead) spread evenly over its blocks: a region four blocks long per block.
pub type VecDotR4Fn =
    fn(n: usize, w: &[u8], row_bytes: usize, x: &[u8], pf: &[u8], out: &mut [f32; 4]);

/// Activations (f32) into one row of an activation type: `src.len()` elements, whole blocks,
/// into exactly that row's bytes of `dst`. Every table's quantizers give the scalar bytes.
pub type QuantizeFn = fn(src: &[f32], dst: &mut [u8]);

/// One dot-product kernel per weight type, all for the same instruction set, and the
/// activation quantizers that feed them.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// "avx512", "avx2", "i8mm", "dotprod", "neon" or "scalar" ([`Isa::name`]).
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
    /// The four-row kernel for a weight type, where this table has one; decoding falls back
    /// to one [`VecDotFn`] call per row otherwise.
    pub r4: fn(GgmlType) -> Option<VecDotR4Fn>,
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
    /// The float32 product's micro-kernel (see [`crate::gemm`]): every table's gives the
    /// scalar bits.
    pub gemm_f32: crate::gemm::GemmKernels,
    /// The tile kernel for prompt processing (see [`crate::tile`]), where this table has one;
    /// matmul runs several tokens through the four-token kernels otherwise.
    pub tile: Option<crate::tile::TileKernels>,
}

pub(crate) fn no_x4(_: GgmlType) -> Option<VecDotX4Fn> {
    None
}

pub(crate) fn no_pf(_: GgmlType) -> Option<VecDotPfFn> {
    None
}

pub(crate) fn no_r4(_: GgmlType) -> Option<VecDotR4Fn> {
    None
}

pub(crate) const SCALAR: Kernels = Kernels {
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
    r4: no_r4,
    quantize_q8_0: scalar::quantize_row_q8_0,
    quantize_q8_1: scalar::quantize_row_q8_1,
    quantize_q8_k: scalar::quantize_row_q8_k,
    attn_dot: crate::attn::scores_f16_scalar,
    attn_axpy: crate::attn::values_f16_scalar,
    swiglu: crate::act::swiglu_scalar,
    gemm_f32: crate::gemm::SCALAR,
    // The scalar table defines the results; tiles would add a second definition to test.
    tile: None,
};

static SELECTED: OnceLock<Kernels> = OnceLock::new();

/// The instruction sets a table can be built for. Each architecture's levels are in
/// increasing order, and only one architecture's levels exist in a build (with `Scalar`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (Haswell, Zen 1 and later).
    Avx2,
    /// x86-64 with AVX-512 F/BW/VL and VNNI (Cascade Lake, Ice Lake, Zen 4 and later).
    Avx512,
    /// aarch64 Advanced SIMD (ARMv8.0: Cortex-A53/A55, every 64-bit Arm core).
    Neon,
    /// aarch64 with SDOT/UDOT (ARMv8.2 dotprod: most phones since 2018), prompt tiles included.
    Dotprod,
    /// aarch64 with SMMLA/UMMLA (ARMv8.6 i8mm: recent phones), for faster prompt tiles.
    I8mm,
}

impl Isa {
    /// The levels this build's architecture has, best first (scalar last).
    pub const LEVELS: &'static [Isa] = if cfg!(target_arch = "x86_64") {
        &[Isa::Avx512, Isa::Avx2, Isa::Scalar]
    } else if cfg!(target_arch = "aarch64") {
        &[Isa::I8mm, Isa::Dotprod, Isa::Neon, Isa::Scalar]
    } else {
        &[Isa::Scalar]
    };

    /// The name tables report in [`Kernels::isa`] and `LINGQIAO_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
            Isa::I8mm => "i8mm",
        }
    }

    /// One of [`Isa::LEVELS`] by name ("scalar", "avx2", "avx512" on x86; "scalar", "neon",
    /// "dotprod", "i8mm" on aarch64). Another architecture's level is `None`: it cannot cap
    /// this one's.
    pub fn parse(name: &str) -> Option<Isa> {
        let name = name.trim().to_ascii_lowercase();
        Self::LEVELS.iter().copied().find(|l| l.name() == name)
    }

    /// The table of this level, if the CPU has it and it passed its probe (scalar always).
    fn table(self) -> Option<&'static Kernels> {
        match self {
            Isa::Scalar => Some(&SCALAR),
            Isa::Avx2 => Kernels::avx2(),
            Isa::Avx512 => Kernels::avx512(),
            Isa::Neon => Kernels::neon(),
            Isa::Dotprod => Kernels::dotprod(),
            Isa::I8mm => Kernels::i8mm(),
        }
    }
}

impl Kernels {
    /// The portable reference table.
    pub fn scalar() -> &'static Kernels {
        &SCALAR
    }

    /// The AVX2 table, if this CPU has AVX2, FMA and F16C and the table passed its probe (one
    /// run in a child process, see `probe`; done once per process).
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

    /// The aarch64 NEON table (every ARMv8 core), if it passed its probe.
    pub fn neon() -> Option<&'static Kernels> {
        #[cfg(target_arch = "aarch64")]
        {
            crate::aarch64::neon_table()
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            None
        }
    }

    /// The aarch64 dotprod table, if the CPU has SDOT/UDOT and the table passed its probe.
    pub fn dotprod() -> Option<&'static Kernels> {
        #[cfg(target_arch = "aarch64")]
        {
            crate::aarch64::dotprod_table()
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            None
        }
    }

    /// The aarch64 i8mm table (dotprod with its prompt tiles on USMMLA), if the CPU has both and the
    /// table passed its probe.
    pub fn i8mm() -> Option<&'static Kernels> {
        #[cfg(target_arch = "aarch64")]
        {
            crate::aarch64::i8mm_table()
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            None
        }
    }

    /// The table used by [`crate::vec_dot`] and [`crate::ops::matmul`], decided on first use,
    /// then fixed: the best one this CPU supports and that passed its probe, capped by
    /// `LINGQIAO_ISA` (one of [`Isa::LEVELS`] by name); `LINGQIAO_FORCE_SCALAR=1` forces
    /// scalar. A value that names no level of this architecture is reported on stderr and
    /// ignored.
    pub fn get() -> &'static Kernels {
        SELECTED.get_or_init(|| {
            if std::env::var("LINGQIAO_FORCE_SCALAR").is_ok_and(|v| v == "1") {
                return SCALAR;
            }
            let best = Isa::LEVELS[0];
            let cap = match std::env::var("LINGQIAO_ISA") {
                Ok(v) => Isa::parse(&v).unwrap_or_else(|| {
                    let names: Vec<&str> = Isa::LEVELS.iter().map(|l| l.name()).collect();
                    eprintln!(
                        "lingqiao: ignoring LINGQIAO_ISA={v:?} (expected {})",
                        names.join(", ")
                    );
                    best
                }),
                Err(_) => best,
            };
            *Self::best_up_to(cap)
        })
    }

    /// Every SIMD table this CPU runs (detected and probed), and variants the dispatch passes
    /// over for a better one (the AVX-512 table without GFNI where GFNI is there), so tests
    /// can check them all.
    pub fn simd_tables() -> Vec<&'static Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            crate::x86::simd_tables()
        }
        #[cfg(target_arch = "aarch64")]
        {
            crate::aarch64::simd_tables()
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Vec::new()
        }
    }

    /// The best table this CPU supports (detected and probed) among those up to `cap`.
    pub fn best_up_to(cap: Isa) -> &'static Kernels {
        Isa::LEVELS
            .iter()
            .filter(|&&l| l <= cap)
            .find_map(|l| l.table())
            .unwrap_or(&SCALAR)
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

    /// The four-row kernel for `ty`, if this table has one (see [`VecDotR4Fn`]).
    pub fn vec_dot_r4_fn(&self, ty: GgmlType) -> Option<VecDotR4Fn> {
        (self.r4)(ty)
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
