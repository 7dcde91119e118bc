//! TEMPORARY: stands in for `lingqiao_kernels::quantize_weights` until the kernels branch
//! that adds it (ggml's reference quantizers for every weight type) is merged. Only the
//! types `quantize_row_ref` already writes are supported; the others are an error.

use lingqiao_gguf::GgmlType;
use lingqiao_kernels::KernelError;

pub fn quantize_weights(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0 => {
            lingqiao_kernels::quantize_row_ref(ty, src, dst)
        }
        _ => Err(KernelError::Unsupported {
            op: "quantize_weights",
            ty,
        }),
    }
}
