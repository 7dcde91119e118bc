//! The float rows and the 32-element quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) on NEON, and the
//! quants with SDOT. STUB: forwards to the scalar kernels until the SIMD versions land.

/// ARMv8.0 Advanced SIMD kernels.
pub(crate) mod neon {
    #[target_feature(enable = "neon")]
    pub(crate) fn f32_f32<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_f32(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn f16_f16<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_f16(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn bf16_bf16<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_bf16(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q4_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q4_0_q8_0(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q4_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q4_1_q8_1(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q5_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q5_0_q8_0(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q5_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q5_1_q8_1(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q8_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q8_0_q8_0(n, w, &x[j * row..(j + 1) * row]);
        }
    }

}

/// ARMv8.2 dotprod kernels.
pub(crate) mod dotprod {
    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q4_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q4_0_q8_0(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q4_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q4_1_q8_1(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q5_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q5_0_q8_0(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q5_1_q8_1<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q5_1_q8_1(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q8_0_q8_0<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q8_0_q8_0(n, w, &x[j * row..(j + 1) * row]);
        }
    }

}
