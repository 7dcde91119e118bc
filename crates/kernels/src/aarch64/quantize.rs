//! The activation quantizers on NEON: the scalar bytes. STUB: forwards to the scalar
//! quantizers until the SIMD versions land.

#[target_feature(enable = "neon")]
pub(super) fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    crate::scalar::quantize_row_q8_0(src, dst)
}

#[target_feature(enable = "neon")]
pub(super) fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) {
    crate::scalar::quantize_row_q8_1(src, dst)
}

#[target_feature(enable = "neon")]
pub(super) fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) {
    crate::scalar::quantize_row_q8_k(src, dst)
}
