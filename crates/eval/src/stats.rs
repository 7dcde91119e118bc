//! Running sums over scored positions and the estimates llama-perplexity prints from them.

use crate::row::RowStats;

/// Mean of a sample and the standard error of that mean, from its sum and sum of squares
/// (`mean_and_uncertainty` in llama.cpp's kl_divergence; no error below 11 samples).
fn mean_and_stderr(sum: f64, sum2: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = sum / n as f64;
    let var = sum2 / n as f64 - mean * mean;
    let err = if var > 0.0 && n > 10 {
        (var / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    (mean, err)
}

/// Sums over scored positions, added in position order so results do not depend on
/// which thread computed which row.
#[derive(Clone, Debug, Default)]
pub struct Sums {
    pub count: usize,
    nll: f64,
    nll2: f64,
    nll_base: f64,
    nll_base2: f64,
    nll_nll_base: f64,
    kld: f64,
    kld2: f64,
    dp2: f64,
    dp4: f64,
    same_top: usize,
    /// Every position's KLD, for the median and tail (KL mode only).
    klds: Vec<f64>,
}

impl Sums {
    pub fn add(&mut self, r: &RowStats, kl_mode: bool) {
        self.count += 1;
        self.nll += r.nll;
        self.nll2 += r.nll * r.nll;
        if kl_mode {
            self.nll_base += r.nll_base;
            self.nll_base2 += r.nll_base * r.nll_base;
            self.nll_nll_base += r.nll * r.nll_base;
            self.kld += r.kld;
            self.kld2 += r.kld * r.kld;
            let dp = (-r.nll).exp() - (-r.nll_base).exp();
            self.dp2 += dp * dp;
            self.dp4 += dp * dp * dp * dp;
            self.same_top += usize::from(r.same_top);
            self.klds.push(r.kld);
        }
    }

    /// Perplexity and its standard error, as llama-perplexity's final estimate: the
    /// standard error of the mean NLL, scaled by the derivative of `exp`.
    pub fn ppl(&self) -> (f64, f64) {
        let n = self.count as f64;
        let mean = self.nll / n;
        let ppl = mean.exp();
        let var = self.nll2 / n - mean * mean;
        let err = if var > 0.0 && self.count > 1 {
            (var / (n - 1.0)).sqrt() * ppl
        } else {
            0.0
        };
        (ppl, err)
    }

    pub fn mean_kld(&self) -> f64 {
        self.kld / self.count.max(1) as f64
    }

    pub fn top1_agreement(&self) -> f64 {
        self.same_top as f64 / self.count.max(1) as f64
    }

    pub fn kld_report(&self) -> KldReport {
        let n = self.count;
        let (ln_ppl, ln_ppl_err) = mean_and_stderr(self.nll, self.nll2, n);
        let (ln_base, ln_base_err) = mean_and_stderr(self.nll_base, self.nll_base2, n);
        // Covariance of the two mean NLLs: the same positions are scored by both models,
        // so the ratio is known far better than either perplexity alone.
        let cov = if n < 10 {
            0.0
        } else {
            (self.nll_nll_base / n as f64 - ln_ppl * ln_base) / (n - 1) as f64
        };
        let ln_ratio = ln_ppl - ln_base;
        let ln_ratio_err = (ln_ppl_err * ln_ppl_err + ln_base_err * ln_base_err - 2.0 * cov)
            .max(0.0)
            .sqrt();
        let (kld, kld_err) = mean_and_stderr(self.kld, self.kld2, n);
        let (dp_mse, dp_mse_err) = mean_and_stderr(self.dp2, self.dp4, n);
        let rms_dp = dp_mse.sqrt();
        let top = self.top1_agreement();
        let mut sorted = self.klds.clone();
        sorted.sort_by(f64::total_cmp);
        KldReport {
            count: n,
            ppl: ln_ppl.exp(),
            ppl_stderr: ln_ppl.exp() * ln_ppl_err,
            ppl_base: ln_base.exp(),
            ppl_base_stderr: ln_base.exp() * ln_base_err,
            ln_ppl_ratio: ln_ratio,
            ln_ppl_ratio_stderr: ln_ratio_err,
            ppl_ratio: ln_ratio.exp(),
            ppl_ratio_stderr: ln_ratio.exp() * ln_ratio_err,
            mean_kld: kld,
            kld_stderr: kld_err,
            median_kld: percentile(&sorted, 0.5),
            p99_kld: percentile(&sorted, 0.99),
            max_kld: sorted.last().copied().unwrap_or(0.0),
            rms_dp,
            rms_dp_stderr: if rms_dp > 0.0 {
                0.5 / rms_dp * dp_mse_err
            } else {
                0.0
            },
            top1_agreement: top,
            top1_stderr: if n > 1 {
                (top * (1.0 - top) / (n - 1) as f64).sqrt()
            } else {
                0.0
            },
        }
    }
}

/// Linear interpolation between the nearest ranks, as llama.cpp's `percentile`.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    match sorted {
        [] => 0.0,
        [only] => *only,
        _ => {
            let p = fraction.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
            let i = p as usize;
            let t = p - i as f64;
            let j = (i + 1).min(sorted.len() - 1);
            (1.0 - t) * sorted[i] + t * sorted[j]
        }
    }
}

/// How far a model's predictions have moved from a base's on the same tokens (the
/// "Perplexity", "KL divergence" and "Token probability" statistics of llama-perplexity
/// --kl-divergence). Error fields are standard errors of the mean (0 below 11 positions).
#[derive(Clone, Debug)]
pub struct KldReport {
    /// Scored positions.
    pub count: usize,
    pub ppl: f64,
    pub ppl_stderr: f64,
    pub ppl_base: f64,
    pub ppl_base_stderr: f64,
    /// ln(PPL / PPL base).
    pub ln_ppl_ratio: f64,
    pub ln_ppl_ratio_stderr: f64,
    pub ppl_ratio: f64,
    pub ppl_ratio_stderr: f64,
    /// Mean KL(base || model) per position, in nats.
    pub mean_kld: f64,
    pub kld_stderr: f64,
    pub median_kld: f64,
    pub p99_kld: f64,
    pub max_kld: f64,
    /// Root mean square of p(next token) - p_base(next token).
    pub rms_dp: f64,
    pub rms_dp_stderr: f64,
    /// Fraction of positions where both models rank the same token first.
    pub top1_agreement: f64,
    pub top1_stderr: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 4.0);
        assert!((percentile(&v, 0.99) - 3.97).abs() < 1e-12);
    }

    #[test]
    fn ppl_error_is_the_standard_error_of_the_mean_nll() {
        let mut s = Sums::default();
        for nll in [1.0, 2.0, 3.0] {
            s.add(
                &RowStats {
                    nll,
                    ..Default::default()
                },
                false,
            );
        }
        let (ppl, err) = s.ppl();
        assert!((ppl - 2f64.exp()).abs() < 1e-12);
        // Population variance 2/3, divided by n - 1 = 2: stderr 1/sqrt(3).
        assert!((err - 2f64.exp() / 3f64.sqrt()).abs() < 1e-12);
    }
}
