//! The K-quants (Q2_K .. Q6_K) against Q8_K on NEON and with SDOT. STUB: forwards to the
//! scalar kernels until the SIMD versions land.

/// ARMv8.0 Advanced SIMD kernels.
pub(crate) mod neon {
    #[target_feature(enable = "neon")]
    pub(crate) fn q2_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q2_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q3_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q3_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q4_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q4_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q5_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q5_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) fn q6_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q6_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

}

/// ARMv8.2 dotprod kernels.
pub(crate) mod dotprod {
    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q2_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q2_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q3_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q3_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q4_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q4_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q5_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q5_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    pub(crate) fn q6_k_q8_k<const N: usize>(n: usize, w: &[u8], x: &[u8], out: &mut [f32; N]) {
        let row = x.len() / N;
        for (j, o) in out.iter_mut().enumerate() {
            *o = crate::scalar::vec_dot_q6_k_q8_k(n, w, &x[j * row..(j + 1) * row]);
        }
    }

}
