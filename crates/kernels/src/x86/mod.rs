//! x86-64 SIMD kernels. Each `#[target_feature]` kernel is wrapped in a safe function that is
//! only ever placed in a table after the features were detected at run time.

mod avx2;
pub(crate) mod quantize;

use crate::dispatch::Kernels;
use crate::scalar;
use std::sync::OnceLock;

/// Safe wrappers around the AVX2 kernels, for the table.
macro_rules! avx2_wrappers {
    ($($name:ident),* $(,)?) => {
        mod avx2_safe {$(
            pub(crate) fn $name(n: usize, w: &[u8], x: &[u8]) -> f32 {
                // SAFETY: these wrappers are only reachable through the table built by
                // `avx2_table`, which exists only after avx2, fma and f16c were detected.
                unsafe { super::avx2::$name(n, w, x) }
            }
        )*}
    };
}
avx2_wrappers!(
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
);

pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

pub(crate) fn avx2_table() -> Option<&'static Kernels> {
    static TABLE: OnceLock<Option<Kernels>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            has_avx2().then_some(Kernels {
                isa: "avx2",
                f32: avx2_safe::vec_dot_f32,
                f16: avx2_safe::vec_dot_f16,
                bf16: avx2_safe::vec_dot_bf16,
                q4_0: avx2_safe::vec_dot_q4_0_q8_0,
                q4_1: avx2_safe::vec_dot_q4_1_q8_1,
                q5_0: avx2_safe::vec_dot_q5_0_q8_0,
                q5_1: avx2_safe::vec_dot_q5_1_q8_1,
                q8_0: avx2_safe::vec_dot_q8_0_q8_0,
                // Not hot in any model we run: the reference kernels are used.
                q8_1: scalar::vec_dot_q8_1_q8_1,
                q2_k: avx2_safe::vec_dot_q2_k_q8_k,
                q3_k: avx2_safe::vec_dot_q3_k_q8_k,
                q4_k: avx2_safe::vec_dot_q4_k_q8_k,
                q5_k: avx2_safe::vec_dot_q5_k_q8_k,
                q6_k: avx2_safe::vec_dot_q6_k_q8_k,
                q8_k: scalar::vec_dot_q8_k_q8_k,
                x4: |_| None,
            })
        })
        .as_ref()
}

pub(crate) fn avx512_table() -> Option<&'static Kernels> {
    None
}

/// An activation quantizer (Q8_0, Q8_1, Q8_K).
pub(crate) type QuantizeFn = fn(&[f32], &mut [u8]);

/// The AVX2 activation quantizer for `ty`, if this CPU has AVX2.
pub(crate) fn activation_quantizer(ty: lingqiao_gguf::GgmlType) -> Option<QuantizeFn> {
    use lingqiao_gguf::GgmlType;
    static HAS: OnceLock<bool> = OnceLock::new();
    if !*HAS.get_or_init(has_avx2) {
        return None;
    }
    // SAFETY (each wrapper): reachable only after AVX2, FMA and F16C were detected above.
    match ty {
        GgmlType::Q8_0 => Some(|s, d| unsafe { quantize::quantize_row_q8_0(s, d) }),
        GgmlType::Q8_1 => Some(|s, d| unsafe { quantize::quantize_row_q8_1(s, d) }),
        GgmlType::Q8_K => Some(|s, d| unsafe { quantize::quantize_row_q8_k(s, d) }),
        _ => None,
    }
}
