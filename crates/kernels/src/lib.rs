//! Quantized tensor kernels for the CPU: ggml's block layouts, a scalar reference kernel for
//! every type, x86 SIMD versions of the hot ones, a dispatch table chosen once at first use,
//! and the matrix-vector product the model runs on.
//!
//! Layout follows ggml's CPU backend: [`scalar`] holds the `_generic` reference kernels,
//! `x86` and `aarch64` the `#[target_feature]` ones (x86: AVX2 and AVX-512 tables; Arm:
//! NEON, dotprod and i8mm tables; each with four-token kernels for prompt processing),
//! [`dispatch`] the per-type table, [`ops`] the matmul; [`gemm`] the float32 matrix product
//! of the FP32 (Whisper) path, with its micro-kernel in the same table.
//!
//! The table is chosen once per process: the best instruction set the CPU reports (CPUID and
//! the OS's XSAVE state on x86, the kernel's HWCAPs on Arm) whose table also passes a probe
//! run in a forked child, so a flag the machine lists but cannot execute costs a fallback,
//! not a crash. `LINGQIAO_ISA` caps the choice (`avx512|avx2|scalar` on x86,
//! `i8mm|dotprod|neon|scalar` on Arm) and `LINGQIAO_FORCE_SCALAR=1` forces the reference
//! kernels; [`isa`] reports the pick.

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod act;
pub mod attn;
pub mod blocks;
pub mod dispatch;
pub mod gemm;
pub mod ops;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod probe;
pub mod scalar;
pub mod tile;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Helpers shared by the unit tests of the kernel modules.
#[cfg(test)]
mod test_util {
    /// Uniform values in [-1, 1) from a linear congruential generator seeded with `seed`.
    pub(crate) fn uniform(mut s: u32) -> impl FnMut() -> f32 {
        move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// The scalar table and every SIMD table this CPU runs.
    pub(crate) fn all_tables() -> Vec<&'static crate::Kernels> {
        let mut tables = vec![crate::Kernels::scalar()];
        tables.extend(crate::Kernels::simd_tables());
        tables
    }
}

pub use dispatch::{Isa, Kernels, VecDotFn, VecDotPfFn, VecDotR4Fn, VecDotX4Fn};
pub use lingqiao_gguf::{GgmlType, QK_K};

/// Errors from the checked entry points. The hot path ([`vec_dot`]) does not return these: its
/// callers validate shapes once when the model is loaded.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    #[error("{n} elements is not a whole number of {ty} blocks ({block} each)")]
    NotWholeBlocks {
        ty: GgmlType,
        n: usize,
        block: usize,
    },
    #[error("{what}: expected {expected} bytes, got {got}")]
    ByteLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what}: expected {expected} elements, got {got}")]
    ElementCount {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{op} is not supported for {ty}")]
    Unsupported { op: &'static str, ty: GgmlType },
    #[error("row {row} out of range: the tensor has {rows} rows")]
    RowOutOfRange { row: usize, rows: usize },
    /// Weights to quantize hold a NaN or an infinity (ggml asserts on these; a file with
    /// them is broken, so quantizing refuses rather than writing garbage scales).
    #[error("element {index} is {value}, not a finite number: cannot quantize it")]
    NonFinite { index: usize, value: &'static str },
}

/// Every weight type with a dot-product kernel, in ggml's type order.
pub const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Byte offsets of the f16 scale fields inside one block of `ty` (empty for float types).
/// Random test blocks overwrite these with finite values: random bits there can be inf/NaN.
pub fn f16_scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Byte ranges of one block of `ty` that hold its quantized values (not d, dmin, the
/// sub-block scales or mins): clearing them leaves each weight at its group's offset.
fn value_bytes(ty: GgmlType) -> Vec<std::ops::Range<usize>> {
    use blocks::*;
    use core::mem::offset_of;
    macro_rules! fields {
        ($t:ty: $($f:ident),*) => {
            vec![$({
                let at = offset_of!($t, $f);
                let probe: $t = bytemuck::Zeroable::zeroed();
                at..at + size_of_val(&probe.$f)
            }),*]
        };
    }
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => vec![std::ops::Range {
            start: 0,
            end: ty.type_size(),
        }],
        GgmlType::Q4_0 => fields!(BlockQ4_0: qs),
        GgmlType::Q4_1 => fields!(BlockQ4_1: qs),
        GgmlType::Q5_0 => fields!(BlockQ5_0: qh, qs),
        GgmlType::Q5_1 => fields!(BlockQ5_1: qh, qs),
        GgmlType::Q8_0 => fields!(BlockQ8_0: qs),
        GgmlType::Q8_1 => fields!(BlockQ8_1: qs),
        GgmlType::Q2_K => fields!(BlockQ2K: qs),
        GgmlType::Q3_K => fields!(BlockQ3K: hmask, qs),
        GgmlType::Q4_K => fields!(BlockQ4K: qs),
        GgmlType::Q5_K => fields!(BlockQ5K: qh, qs),
        GgmlType::Q6_K => fields!(BlockQ6K: ql, qh),
        GgmlType::Q8_K => fields!(BlockQ8K: qs),
    }
}

/// The scale of the rounding errors of a dot product of weight row `w` (`n` elements of
/// `ty`) with activations `x` (`n` elements of `vec_dot_type(ty)`): the sum of the magnitudes
/// of the products it adds up, in f64.
///
/// Every weight dequantizes to `s_i * u_i + o_i`: its stored value u_i (unsigned: 0..16 for
/// Q4_K, 0..64 for Q6_K) times its scale, plus its group's offset (the min, or -8 * d for
/// Q4_0, -32 * d * scale for Q6_K, ...). Kernels sum the two parts separately, the offsets
/// through the activations' block sums, so the terms are `s_i * u_i * x_i` and `o_i * x_i`;
/// this returns `sum_i (|s_i * u_i| + |o_i|) * |x_i|`, which is at least
/// `sum_i |w_i * x_i|`.
pub fn abs_term_sum(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> Result<f64, KernelError> {
    let mut full = vec![0f32; n];
    dequantize_row(ty, w, &mut full)?;
    let mut cleared = w.to_vec();
    let ranges = value_bytes(ty);
    for block in cleared.chunks_exact_mut(ty.type_size()) {
        for r in &ranges {
            block[r.clone()].fill(0);
        }
    }
    let mut offset = vec![0f32; n];
    dequantize_row(ty, &cleared, &mut offset)?;
    let mut xd = vec![0f32; n];
    dequantize_row(vec_dot_type(ty), x, &mut xd)?;
    Ok(full
        .iter()
        .zip(&offset)
        .zip(&xd)
        .map(|((&w, &o), &x)| {
            let (w, o, x) = (f64::from(w), f64::from(o), f64::from(x));
            ((w - o).abs() + o.abs()) * x.abs()
        })
        .sum())
}

/// How far two K-quant dot products of the same row may differ when both sum the same exact
/// integer block sums but in different f32 orders: the scalar kernels (and the AVX2 ones)
/// add one f32 per block to a running sum, the AVX-512 ones keep the integer sums in 16 + 8
/// lanes, scale each by the block's d (and dmin) and accumulate lane by lane, summing the
/// lanes once per row.
///
/// With u = 2^-24 (f32's unit roundoff) and S = [`abs_term_sum`]: the scalar kernel rounds
/// each term at most `blocks + 4` times (d_x * d_w, the block's integer sum to f32, the
/// product, taking the mins' part off, the running sum); the lane kernels at most
/// `blocks + 7` times (d_x * d_w, a lane to f32, one fused multiply-add per block, and 5
/// additions folding the 24 lanes into one). By the usual bound for recursive summation each
/// result is within (rounds) * u * S of the exact value, to first order, so the two differ
/// by at most (2 * blocks + 11) * u * S; this returns (2 * blocks + 14) * u * S, the margin
/// covering the second-order terms. (Measured differences are 1-4% of it.)
pub fn kquant_reorder_bound(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    x: &[u8],
) -> Result<f64, KernelError> {
    let blocks = (n / ty.block_size()) as f64;
    Ok((2.0 * blocks + 14.0) * f64::from(f32::EPSILON) / 2.0 * abs_term_sum(ty, n, w, x)?)
}

/// Bytes of `n` elements of `ty`, or an error if `n` is not whole blocks.
pub fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, KernelError> {
    ty.row_bytes(n as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or(KernelError::NotWholeBlocks {
            ty,
            n,
            block: ty.block_size(),
        })
}

fn check_row(ty: GgmlType, what: &'static str, n: usize, bytes: usize) -> Result<(), KernelError> {
    let expected = row_bytes(ty, n)?;
    if bytes != expected {
        return Err(KernelError::ByteLength {
            what,
            expected,
            got: bytes,
        });
    }
    Ok(())
}

/// The type activations are quantized to before a dot product with weights of type `ty`, as in
/// ggml's `type_traits_cpu[ty].vec_dot_type`.
pub const fn vec_dot_type(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::F32 => GgmlType::F32,
        GgmlType::F16 => GgmlType::F16,
        GgmlType::BF16 => GgmlType::BF16,
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => GgmlType::Q8_1,
        GgmlType::Q2_K
        | GgmlType::Q3_K
        | GgmlType::Q4_K
        | GgmlType::Q5_K
        | GgmlType::Q6_K
        | GgmlType::Q8_K => GgmlType::Q8_K,
    }
}

/// Decode one row of `dst.len()` elements of type `ty` from `src` (exactly that row's bytes).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    check_row(ty, "dequantize_row source", dst.len(), src.len())?;
    let f = match ty {
        GgmlType::F32 => scalar::dequantize_row_f32,
        GgmlType::F16 => scalar::dequantize_row_f16,
        GgmlType::BF16 => scalar::dequantize_row_bf16,
        GgmlType::Q4_0 => scalar::dequantize_row_q4_0,
        GgmlType::Q4_1 => scalar::dequantize_row_q4_1,
        GgmlType::Q5_0 => scalar::dequantize_row_q5_0,
        GgmlType::Q5_1 => scalar::dequantize_row_q5_1,
        GgmlType::Q8_0 => scalar::dequantize_row_q8_0,
        GgmlType::Q8_1 => scalar::dequantize_row_q8_1,
        GgmlType::Q2_K => scalar::dequantize_row_q2_k,
        GgmlType::Q3_K => scalar::dequantize_row_q3_k,
        GgmlType::Q4_K => scalar::dequantize_row_q4_k,
        GgmlType::Q5_K => scalar::dequantize_row_q5_k,
        GgmlType::Q6_K => scalar::dequantize_row_q6_k,
        GgmlType::Q8_K => scalar::dequantize_row_q8_k,
    };
    f(src, dst);
    Ok(())
}

/// Encode activations `src` as one row of `ty` into `dst` (exactly that row's bytes), as
/// ggml's CPU backend does before a matrix product. Only the activation types are
/// supported: F32, F16, BF16, Q8_0, Q8_1, Q8_K. Q8_0 and Q8_1 follow ggml's x86 quantizers
/// (see [`quantize_row_ref`] for the reference ones, which files are written with).
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    quantize_with(Kernels::get(), ty, src, dst, false)
}

/// [`quantize_row`] through the quantizers of table `k` (every table gives the same bytes).
pub fn quantize_row_with(
    k: &Kernels,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), KernelError> {
    quantize_with(k, ty, src, dst, false)
}

/// As [`quantize_row`], but Q8_0 and Q8_1 bit-for-bit as ggml's `_ref` quantizers (and
/// gguf-py), which is what a quantized file must contain.
pub fn quantize_row_ref(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    quantize_with(Kernels::scalar(), ty, src, dst, true)
}

fn quantize_with(
    k: &Kernels,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
    reference: bool,
) -> Result<(), KernelError> {
    check_row(ty, "quantize_row destination", src.len(), dst.len())?;
    let f = match ty {
        GgmlType::F32 => scalar::quantize_row_f32,
        GgmlType::F16 => scalar::quantize_row_f16,
        GgmlType::BF16 => scalar::quantize_row_bf16,
        GgmlType::Q8_0 if reference => scalar::quantize_row_q8_0_ref,
        GgmlType::Q8_1 if reference => scalar::quantize_row_q8_1_ref,
        GgmlType::Q8_0 => k.quantize_q8_0,
        GgmlType::Q8_1 => k.quantize_q8_1,
        GgmlType::Q8_K => k.quantize_q8_k,
        _ => {
            return Err(KernelError::Unsupported {
                op: "quantize_row",
                ty,
            });
        }
    };
    f(src, dst);
    Ok(())
}

/// Whether weights can be quantized to `ty` by [`quantize_weights`]: the 13 types of
/// [`WEIGHT_TYPES`] (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K), not the
/// activation-only Q8_1 and Q8_K.
pub fn is_weight_quant_type(ty: GgmlType) -> bool {
    WEIGHT_TYPES.contains(&ty)
}

/// Quantize whole rows of weights: `src.len()` elements (whole blocks of `ty`) into exactly
/// `row_bytes(ty, src.len())` bytes of `dst`, bit-for-bit as ggml's reference quantizers
/// without an importance matrix (`ggml_quantize_chunk` with `imatrix == NULL`:
/// `quantize_row_q4_0_ref` ... `quantize_row_q6_K_ref`, `ggml_fp32_to_fp16_row`,
/// `ggml_fp32_to_bf16_row_ref`). Blocks are independent, so any split of a tensor into
/// whole-block pieces gives the same bytes.
///
/// Single-threaded scalar code: callers quantizing a model parallelize over rows.
///
/// Errors: a type that is not a weight type ([`is_weight_quant_type`]), a length that is not
/// whole blocks or does not match `dst`, and NaN or infinite input (checked before anything
/// is written, so `dst` is untouched on error).
pub fn quantize_weights(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    let f = match ty {
        GgmlType::F32 => scalar::quantize_row_f32,
        GgmlType::F16 => scalar::quantize_row_f16,
        GgmlType::BF16 => scalar::quantize_row_bf16,
        GgmlType::Q4_0 => scalar::quantize_row_q4_0_ref,
        GgmlType::Q4_1 => scalar::quantize_row_q4_1_ref,
        GgmlType::Q5_0 => scalar::quantize_row_q5_0_ref,
        GgmlType::Q5_1 => scalar::quantize_row_q5_1_ref,
        GgmlType::Q8_0 => scalar::quantize_row_q8_0_ref,
        GgmlType::Q2_K => scalar::quantize_row_q2_k_ref,
        GgmlType::Q3_K => scalar::quantize_row_q3_k_ref,
        GgmlType::Q4_K => scalar::quantize_row_q4_k_ref,
        GgmlType::Q5_K => scalar::quantize_row_q5_k_ref,
        GgmlType::Q6_K => scalar::quantize_row_q6_k_ref,
        GgmlType::Q8_1 | GgmlType::Q8_K => {
            return Err(KernelError::Unsupported {
                op: "quantize_weights",
                ty,
            });
        }
    };
    check_row(ty, "quantize_weights destination", src.len(), dst.len())?;
    if let Some(index) = src.iter().position(|v| !v.is_finite()) {
        let value = match src[index] {
            v if v.is_nan() => "NaN",
            v if v > 0.0 => "+inf",
            _ => "-inf",
        };
        return Err(KernelError::NonFinite { index, value });
    }
    f(src, dst);
    Ok(())
}

/// Dot product of one weight row `w` (n elements of `ty`) with activations `x` (n elements of
/// `vec_dot_type(ty)`), through the dispatch table. Lengths are only debug-asserted.
#[inline]
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    Kernels::get().vec_dot(ty, n, w, x)
}

/// As [`vec_dot`] but always through the scalar reference kernels.
pub fn scalar_vec_dot(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    Kernels::scalar().vec_dot(ty, n, w, x)
}

/// The instruction set the dispatch picked: "avx512", "avx2", "i8mm", "dotprod", "neon" or
/// "scalar".
pub fn isa() -> &'static str {
    Kernels::get().isa
}
