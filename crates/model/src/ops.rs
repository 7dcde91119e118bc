//! Element-wise f32 operations of the decoder. Each follows the ggml CPU op it replaces
//! closely enough that our activations track llama.cpp's (same accumulation widths, same
//! f16 round trips), because the golden tests compare logits with llama.cpp's.

use half::f16;
use half::slice::HalfFloatSliceExt;
use std::sync::OnceLock;

/// Elements per pass of the f16 conversions below, through a buffer on the stack.
const F16_CHUNK: usize = 64;

/// Every element of `x` rounded to f16 and back, in place: what ggml's F16 mul_mat sees of
/// an f32 operand. half's slice conversions run eight lanes per F16C instruction where the
/// CPU has it (one call per element otherwise): the same round-to-nearest-even as
/// `f16::from_f32(v).to_f32()` on each element (`f16_round_trip_is_per_element` checks it).
pub fn round_f16_inplace(x: &mut [f32]) {
    let mut buf = [f16::ZERO; F16_CHUNK];
    for c in x.chunks_mut(F16_CHUNK) {
        let b = &mut buf[..c.len()];
        b.convert_from_f32_slice(c);
        b.convert_to_f32_slice(c);
    }
}

/// `dst[i] = f16::from_f32(src[i])`, eight lanes at a time where the CPU has F16C.
pub fn store_f16(dst: &mut [f16], src: &[f32]) {
    dst.convert_from_f32_slice(src);
}

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
/// Each style is its own loop over whole slices, which the compiler vectorizes: the same
/// multiplications and subtractions per element (Rust does not contract them into fused
/// multiply-adds), so the same bits as one pair at a time.
pub fn rope_apply(x: &mut [f32], cache: &[(f32, f32)], neox: bool) {
    let half = cache.len();
    if neox {
        let (lo, hi) = x[..2 * half].split_at_mut(half);
        for ((a, b), &(c, s)) in lo.iter_mut().zip(hi.iter_mut()).zip(cache) {
            let (x0, x1) = (*a, *b);
            *a = x0 * c - x1 * s;
            *b = x0 * s + x1 * c;
        }
    } else {
        for (p, &(c, s)) in x[..2 * half].chunks_exact_mut(2).zip(cache) {
            let (x0, x1) = (p[0], p[1]);
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// gelu over every f16 bit pattern, rounded to f16: ggml's ggml_table_gelu_f16, stored
/// widened to f32 (exactly: every f16 is an f32), so a lookup needs no conversion.
fn gelu_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())).to_f32())
            .collect()
    })
}

/// `gate = gelu(gate) * up`, as ggml_vec_geglu_f32 with GGML_GELU_FP16: the input is
/// rounded to f16 and looked up in the table, except in the saturated tails. The inputs
/// are rounded a chunk at a time (see [`round_f16_inplace`]; the same bits as one at a
/// time).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    let mut buf = [f16::ZERO; F16_CHUNK];
    for (gc, uc) in gate.chunks_mut(F16_CHUNK).zip(up.chunks(F16_CHUNK)) {
        let b = &mut buf[..gc.len()];
        b.convert_from_f32_slice(gc);
        for ((o, &u), h) in gc.iter_mut().zip(uc).zip(b.iter()) {
            let g = *o;
            let act = if g <= -10.0 {
                0.0
            } else if g >= 10.0 {
                g
            } else {
                table[h.to_bits() as usize]
            };
            *o = act * u;
        }
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

    /// Bit patterns covering every f32 exponent (normals, subnormals, values that round to
    /// f16 subnormals, zero or infinity, both signs), with pseudo-random mantissas.
    fn f32_patterns() -> Vec<f32> {
        let mut state = 0x9e37_79b9u32;
        let mut out: Vec<f32> = (0..200_000)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let exp = (i % 256) as u32;
                f32::from_bits((state & 0x807f_ffff) | exp << 23)
            })
            .filter(|v| !v.is_nan())
            .collect();
        // Halfway cases between f16 neighbours, and the edges of f16's range.
        out.extend((0..4096u32).map(|m| f32::from_bits(0x3f80_0000 | m << 13 | 1 << 12)));
        out.extend([
            65504.0, 65520.0, 65519.99, 6.0e-8, 2.9e-8, 3.0e-8, -0.0, 0.0,
        ]);
        out.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE]);
        out
    }

    #[test]
    fn f16_round_trip_is_per_element() {
        let x = f32_patterns();
        let mut fast = x.clone();
        round_f16_inplace(&mut fast);
        let mut stored = vec![f16::ZERO; x.len()];
        store_f16(&mut stored, &x);
        for ((v, f), s) in x.iter().zip(&fast).zip(&stored) {
            let one = f16::from_f32(*v);
            assert_eq!(f.to_bits(), one.to_f32().to_bits(), "{v:e}");
            assert_eq!(s.to_bits(), one.to_bits(), "{v:e}");
        }
    }

    /// The geglu of the tables before: a f16 table, each input rounded on its own.
    fn geglu_one_at_a_time(gate: &mut [f32], up: &[f32]) {
        for (o, &u) in gate.iter_mut().zip(up) {
            let g = *o;
            let act = if g <= -10.0 {
                0.0
            } else if g >= 10.0 {
                g
            } else {
                f16::from_f32(gelu_tanh(f16::from_f32(g).to_f32())).to_f32()
            };
            *o = act * u;
        }
    }

    #[test]
    fn geglu_chunks_match_one_at_a_time() {
        let gate: Vec<f32> = f32_patterns()
            .into_iter()
            .filter(|v| v.is_finite())
            .map(|v| v.clamp(-12.0, 12.0))
            .collect();
        let up: Vec<f32> = (0..gate.len())
            .map(|i| (i % 17) as f32 * 0.37 - 3.0)
            .collect();
        let (mut a, mut b) = (gate.clone(), gate);
        geglu(&mut a, &up);
        geglu_one_at_a_time(&mut b, &up);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn rope_styles_match_one_pair_at_a_time() {
        let mut cache = Vec::new();
        rope_cache(1234, 64, 10_000.0, 1.0, None, &mut cache);
        let x: Vec<f32> = (0..80).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
        for neox in [false, true] {
            let mut fast = x.clone();
            rope_apply(&mut fast[..64], &cache, neox);
            let mut slow = x.clone();
            for (i, &(c, s)) in cache.iter().enumerate() {
                let (a, b) = if neox {
                    (i, i + 32)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (x0, x1) = (slow[a], slow[b]);
                slow[a] = x0 * c - x1 * s;
                slow[b] = x0 * s + x1 * c;
            }
            assert!(
                fast.iter()
                    .zip(&slow)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
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
