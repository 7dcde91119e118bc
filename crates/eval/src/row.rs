//! One scored position: its log-softmax, the compact record of it that a logits file
//! keeps, and its divergence from such a record.
//!
//! A record is `ROW_HEADER` bytes then one little-endian `u16` per vocabulary entry:
//!
//! | bytes | field                                                           |
//! |-------|-----------------------------------------------------------------|
//! | 0..4  | `scale`, f32: log-prob step per `u16` unit                      |
//! | 4..8  | `min_lp`, f32: the log-prob that `u16` 0 stands for             |
//! | 8..16 | `nll`, f64: exact -log p of the token that came next            |
//! | 16..20| `top`, u32: the most likely token (first of equals)             |
//! | 20..24| reserved, 0                                                     |
//!
//! `log p(i) ≈ scale * q[i] + min_lp`. The quantization is llama.cpp's (`log_softmax` with
//! a `uint16_t` output in tools/perplexity/perplexity.cpp): the range runs from the best
//! log-prob down to 16 below it, anything lower is stored as the floor, and such tokens
//! (p < e^-16 of the best) are left out of the divergence. Unlike llama.cpp the record
//! also keeps the exact next-token NLL and the top token, so the base perplexity and the
//! top-token agreement carry no quantization error.

/// Bytes before the quantized log-probs of a record.
pub const ROW_HEADER: usize = 24;

/// Bytes of one record for a vocabulary of `n_vocab`.
pub fn record_bytes(n_vocab: usize) -> usize {
    ROW_HEADER + 2 * n_vocab
}

/// Log-probs span this far below the best one; lower ones are clamped and ignored.
const LP_RANGE: f32 = 16.0;

/// A row's softmax normaliser, found once per row and shared by everything that scores it.
pub struct Norm {
    /// The first index of the largest logit.
    top: usize,
    max: f32,
    /// `ln Σ exp(x - max)`.
    lse: f64,
}

impl Norm {
    /// The exponentials are f32 (as llama.cpp's) but summed in f64: over 150k entries an
    /// f32 sum would lose the small ones.
    pub fn of(logits: &[f32]) -> Norm {
        let mut top = 0;
        let mut max = logits[0];
        for (i, &x) in logits.iter().enumerate().skip(1) {
            if x > max {
                max = x;
                top = i;
            }
        }
        let sum: f64 = logits.iter().map(|&x| f64::from((x - max).exp())).sum();
        Norm {
            top,
            max,
            lse: sum.ln(),
        }
    }

    /// `ln Σ exp(x)`: log p(i) = x_i - log_z.
    fn log_z(&self) -> f64 {
        f64::from(self.max) + self.lse
    }
}

/// What one scored position contributes to the totals.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowStats {
    /// -log p(next token) under this model.
    pub nll: f64,
    /// -log p(next token) under the base (KL mode only).
    pub nll_base: f64,
    /// KL(base || this model) at this position (KL mode only).
    pub kld: f64,
    /// Does this model's top token equal the base's (KL mode only)?
    pub same_top: bool,
}

/// Negative log-likelihood of `next` under `logits`.
pub fn nll(logits: &[f32], norm: &Norm, next: u32) -> RowStats {
    RowStats {
        nll: norm.log_z() - f64::from(logits[next as usize]),
        ..Default::default()
    }
}

/// [`nll`], and the position's record written to `out` (`record_bytes(logits.len())`).
pub fn encode(logits: &[f32], norm: &Norm, next: u32, out: &mut [u8]) -> RowStats {
    let &Norm { top, max, lse } = norm;
    let nll = norm.log_z() - f64::from(logits[next as usize]);
    let min = logits.iter().copied().fold(f32::INFINITY, f32::min);
    let floor = min.max(max - LP_RANGE);
    let scale = (max - floor) / 65535.0;
    let min_lp = (f64::from(floor) - f64::from(max) - lse) as f32;
    let (head, q) = out.split_at_mut(ROW_HEADER);
    head[0..4].copy_from_slice(&scale.to_le_bytes());
    head[4..8].copy_from_slice(&min_lp.to_le_bytes());
    head[8..16].copy_from_slice(&nll.to_le_bytes());
    head[16..20].copy_from_slice(&(top as u32).to_le_bytes());
    head[20..24].fill(0);
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (&x, q) in logits.iter().zip(q.chunks_exact_mut(2)) {
        let v = if x > floor {
            ((x - floor) * inv).round().min(65535.0) as u16
        } else {
            0
        };
        q.copy_from_slice(&v.to_le_bytes());
    }
    RowStats {
        nll,
        ..Default::default()
    }
}

/// This position under `logits` against the base's `record` of it.
pub fn compare(logits: &[f32], norm: &Norm, next: u32, record: &[u8]) -> RowStats {
    let f32_at = |o: usize| f32::from_le_bytes(record[o..o + 4].try_into().expect("4 bytes"));
    let scale = f32_at(0);
    let min_lp = f32_at(4);
    let nll_base = f64::from_le_bytes(record[8..16].try_into().expect("8 bytes"));
    let top_base = u32::from_le_bytes(record[16..20].try_into().expect("4 bytes"));
    let log_z = norm.log_z();
    let mut kld = 0.0f64;
    for (&x, q) in logits.iter().zip(record[ROW_HEADER..].chunks_exact(2)) {
        let lp_base = scale * f32::from(u16::from_le_bytes([q[0], q[1]])) + min_lp;
        // Tokens the base gives under e^-16 add nothing measurable (llama.cpp's cut too).
        if lp_base > -LP_RANGE {
            let lp_base = f64::from(lp_base);
            kld += lp_base.exp() * (lp_base - (f64::from(x) - log_z));
        }
    }
    RowStats {
        nll: log_z - f64::from(logits[next as usize]),
        nll_base,
        kld,
        same_top: norm.top as u32 == top_base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact log-softmax in f64, straight from the definition.
    fn log_softmax(x: &[f32]) -> Vec<f64> {
        let z: f64 = x.iter().map(|&v| f64::from(v).exp()).sum();
        x.iter().map(|&v| f64::from(v) - z.ln()).collect()
    }

    fn logits(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 30.0 - 15.0
            })
            .collect()
    }

    #[test]
    fn nll_matches_the_definition() {
        let x = logits(1000, 1);
        let lp = log_softmax(&x);
        for next in [0u32, 17, 999] {
            let got = nll(&x, &Norm::of(&x), next).nll;
            // The exponentials are f32: about 1e-7 relative each.
            assert!(
                (got + lp[next as usize]).abs() < 1e-6,
                "{got} vs {}",
                -lp[next as usize]
            );
        }
    }

    #[test]
    fn record_round_trips_within_half_a_step() {
        let x = logits(5000, 2);
        let lp = log_softmax(&x);
        let mut rec = vec![0u8; record_bytes(x.len())];
        let stats = encode(&x, &Norm::of(&x), 42, &mut rec);
        assert!((stats.nll + lp[42]).abs() < 1e-6);
        let scale = f32::from_le_bytes(rec[0..4].try_into().unwrap());
        let min_lp = f32::from_le_bytes(rec[4..8].try_into().unwrap());
        let best = lp.iter().copied().fold(f64::MIN, f64::max);
        for (i, q) in rec[ROW_HEADER..].chunks_exact(2).enumerate() {
            let v =
                f64::from(scale) * f64::from(u16::from_le_bytes([q[0], q[1]])) + f64::from(min_lp);
            if lp[i] > best - 16.0 {
                assert!(
                    (v - lp[i]).abs() < 0.6 * f64::from(scale) + 1e-5,
                    "{i}: {v} vs {}",
                    lp[i]
                );
            } else {
                assert!((v - (best - 16.0)).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn divergence_from_itself_is_zero_and_from_a_shift_is_exact() {
        let x = logits(3000, 3);
        let mut rec = vec![0u8; record_bytes(x.len())];
        let norm = Norm::of(&x);
        encode(&x, &norm, 7, &mut rec);
        let same = compare(&x, &norm, 7, &rec);
        assert!(same.kld.abs() < 1e-4, "{}", same.kld);
        assert!(same.same_top);
        assert_eq!(same.nll, same.nll_base);

        // A flatter copy: KL(p || q) from the definition, over tokens the base keeps.
        let y: Vec<f32> = x.iter().map(|v| v * 0.8).collect();
        let (p, q) = (log_softmax(&x), log_softmax(&y));
        let want: f64 = p
            .iter()
            .zip(&q)
            .filter(|(a, _)| **a > -16.0)
            .map(|(a, b)| a.exp() * (a - b))
            .sum();
        let got = compare(&y, &Norm::of(&y), 7, &rec);
        assert!(
            (got.kld - want).abs() < 1e-3 * want.max(1e-3),
            "{} vs {want}",
            got.kld
        );
        assert!(got.same_top, "scaling keeps the order");
    }
}
