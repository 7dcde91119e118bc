//! Element-wise f32 operations of the decoder. Each follows the ggml CPU op it replaces
//! closely enough that our activations track llama.cpp's (same accumulation widths, same
//! f16 round trips), because the golden tests compare logits with llama.cpp's.

use half::f16;
use std::sync::OnceLock;

/// `out = x / rms(x) * w`, as ggml_compute_forward_rms_norm_f32 followed by ggml_mul:
/// the sum of squares accumulates in f64, the scale is computed in f32.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert!(x.len() == w.len() && x.len() == out.len());
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// In-place variant for per-head Q/K norms.
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// Softmax in place: f32 exponentials, f64 sum, as ggml_vec_soft_max_f32.
pub fn softmax_inplace(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The cos/sin table of one position, as ggml_rope_cache_init with ext_factor 0:
/// theta_i = pos * freq_scale * base^(-2i/n_rot), the powers formed by repeated f32
/// multiplication as ggml does (so the angles round the same way).
pub fn rope_cache(
    pos: usize,
    n_rot: usize,
    freq_base: f32,
    freq_scale: f32,
    freq_factors: Option<&[f32]>,
    out: &mut Vec<(f32, f32)>,
) {
    out.clear();
    let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for i in 0..n_rot / 2 {
        // ggml_rope_cache_init: each dimension's angle divided by its factor (llama3's
        // `rope_freqs`)
        let ff = freq_factors.map_or(1.0, |f| f[i]);
        let t = freq_scale * (theta / ff);
        out.push((t.cos(), t.sin()));
        theta *= theta_scale;
    }
}

/// Rotate one head in place with a cache from [`rope_cache`].
pub fn rope_apply(x: &mut [f32], cache: &[(f32, f32)], neox: bool) {
    let n_rot = cache.len() * 2;
    for (i, &(c, s)) in cache.iter().enumerate() {
        let (a, b) = if neox {
            (i, i + n_rot / 2)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// gelu over every f16 bit pattern, rounded to f16: ggml's ggml_table_gelu_f16.
fn gelu_table() -> &'static [f16] {
    static TABLE: OnceLock<Vec<f16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())))
            .collect()
    })
}

/// `gate = gelu(gate) * up`, as ggml_vec_geglu_f32 with GGML_GELU_FP16: the input is
/// rounded to f16 and looked up in the table, except in the saturated tails.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (o, &u) in gate.iter_mut().zip(up) {
        let g = *o;
        let act = if g <= -10.0 {
            0.0
        } else if g >= 10.0 {
            g
        } else {
            table[f16::from_f32(g).to_bits() as usize].to_f32()
        };
        *o = act * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let mut x = vec![1.0, 2.0, 3.0, -1e9];
        softmax_inplace(&mut x);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0] && x[3] == 0.0);
        // exp(1)/(exp(1)+exp(2)+exp(3)), computed by hand.
        assert!((x[0] - 0.090_030_57).abs() < 1e-6);
    }

    #[test]
    fn rope_position_zero_is_identity_and_preserves_norm() {
        let mut cache = Vec::new();
        rope_cache(0, 8, 10_000.0, 1.0, None, &mut cache);
        let orig: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        let mut x = orig.clone();
        rope_apply(&mut x, &cache, true);
        assert_eq!(x, orig);
        rope_cache(17, 8, 10_000.0, 1.0, None, &mut cache);
        rope_apply(&mut x, &cache, false);
        let n0: f32 = orig.iter().map(|v| v * v).sum();
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-4);
        // First pair rotates by exactly `pos` radians.
        let (c, s) = (17f32.cos(), 17f32.sin());
        assert!((x[0] - (orig[0] * c - orig[1] * s)).abs() < 1e-5);
    }

    #[test]
    fn rms_norm_unit_weights() {
        let x = [3.0f32, 4.0];
        let mut out = [0.0; 2];
        rms_norm(&x, &[1.0, 1.0], 0.0, &mut out);
        // rms = sqrt((9+16)/2)
        let rms = 12.5f32.sqrt();
        assert!((out[0] - 3.0 / rms).abs() < 1e-6 && (out[1] - 4.0 / rms).abs() < 1e-6);
    }

    #[test]
    fn gelu_matches_tanh_formula_within_f16() {
        let gate = [-12.0, -1.0, 0.0, 0.5, 2.0, 11.0];
        let up = [1.0; 6];
        let mut out = gate;
        geglu(&mut out, &up);
        for (g, o) in gate.iter().zip(out) {
            let exact = if *g <= -10.0 {
                0.0
            } else if *g >= 10.0 {
                *g
            } else {
                gelu_tanh(*g)
            };
            assert!(
                (exact - o).abs() <= 2e-3 * exact.abs().max(1.0),
                "{g}: {o} vs {exact}"
            );
        }
    }
}
