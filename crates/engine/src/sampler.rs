//! The sampler chain: logits of one position -> the next token id.
//!
//! Stages run in llama.cpp's default order (common/sampling.cpp):
//! penalties -> top_k -> top_p -> min_p -> temperature -> dist (seeded draw).
//! Filtering happens at temperature 1, as in llama.cpp; temperature only reshapes what
//! survives. `temperature <= 0` is greedy: argmax of the penalised logits, lowest id on ties.
//!
//! Reproducibility: the draw uses ChaCha8 seeded from the config's seed and walks the
//! surviving tokens in id order, so a seed gives the same tokens on every platform and
//! with every Rust version (no dependence on unstable sort or select internals).
//!
//! Cost: a vocabulary can have 262k entries. top_k uses a linear-time select and sorts
//! only k entries; top_p without top_k sorts a growing prefix (64, 128, ...) until the
//! kept mass reaches p; min_p is a filter pass.

use std::cmp::Ordering;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Sampling parameters, named as llama.cpp's CLI names them.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// <= 0: greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest prefix (by probability) whose mass reaches top_p; >= 1 = off.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one; <= 0 = off.
    pub min_p: f32,
    /// Divide positive / multiply negative logits of recently seen tokens; 1 = off.
    pub repeat_penalty: f32,
    /// How many of the most recent history tokens the penalties look at; 0 = off.
    pub repeat_last_n: usize,
    /// OpenAI frequency_penalty: subtract count * this from a seen token's logit.
    pub frequency_penalty: f32,
    /// OpenAI presence_penalty: subtract this once from any seen token's logit.
    pub presence_penalty: f32,
    /// Seed of the random draw. The CLI picks one at random and prints it.
    pub seed: u64,
}

impl Default for SamplerConfig {
    /// llama.cpp's CLI defaults, with seed 0 (llama.cpp draws a random seed; callers
    /// that want that should set `seed` themselves).
    fn default() -> SamplerConfig {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// The defaults with the given seed.
    pub fn with_seed(seed: u64) -> SamplerConfig {
        SamplerConfig {
            seed,
            ..SamplerConfig::default()
        }
    }

    /// Greedy decoding (temperature 0, no penalties).
    pub fn greedy() -> SamplerConfig {
        SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        }
    }
}

/// A candidate token: (id, logit).
type Cand = (u32, f32);

/// Higher logit first, then lower id: a total order, so every selection is unique.
fn by_logit_desc(a: &Cand, b: &Cand) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Stateful sampler: owns the RNG stream and scratch buffers reused across tokens.
pub struct Sampler {
    cfg: SamplerConfig,
    rng: ChaCha8Rng,
    logits: Vec<f32>,
    cands: Vec<Cand>,
    window: Vec<u32>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Sampler {
        // The seed bytes are spelled out (rather than seed_from_u64) so the stream
        // depends only on ChaCha8 itself.
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
        Sampler {
            rng: ChaCha8Rng::from_seed(seed),
            cfg,
            logits: Vec::new(),
            cands: Vec::new(),
            window: Vec::new(),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from `logits` (one per vocabulary entry) given the tokens
    /// generated or read so far (`history`, oldest first). Empty logits give token 0.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        self.logits.clear();
        // A NaN logit (a broken forward pass) must not win or poison the softmax.
        self.logits.extend(
            logits
                .iter()
                .map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x }),
        );
        self.apply_penalties(history);

        if !(self.cfg.temperature > 0.0) {
            return argmax(&self.logits);
        }

        let n = self.logits.len();
        self.cands.clear();
        self.cands
            .extend(self.logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        // Until top_k or top_p reorders them, candidates stay in id order.
        let top_k_on = self.cfg.top_k > 0 && self.cfg.top_k < n;
        let top_p_on = self.cfg.top_p < 1.0;
        if top_k_on {
            let k = self.cfg.top_k;
            self.cands.select_nth_unstable_by(k - 1, by_logit_desc);
            self.cands.truncate(k);
            self.cands.sort_unstable_by(by_logit_desc);
        }
        if top_p_on {
            top_p(&mut self.cands, self.cfg.top_p, top_k_on);
        }
        if self.cfg.min_p > 0.0 {
            min_p(&mut self.cands, self.cfg.min_p);
        }

        let inv_temp = 1.0 / self.cfg.temperature;
        for c in self.cands.iter_mut() {
            c.1 *= inv_temp;
        }
        if top_k_on || top_p_on {
            self.cands.sort_unstable_by_key(|c| c.0);
        }
        self.draw()
    }

    /// llama.cpp's penalties sampler over the last `repeat_last_n` history tokens.
    fn apply_penalties(&mut self, history: &[u32]) {
        let c = &self.cfg;
        let repeat =
            c.repeat_penalty.is_finite() && c.repeat_penalty > 0.0 && c.repeat_penalty != 1.0;
        if c.repeat_last_n == 0
            || !(repeat || c.frequency_penalty != 0.0 || c.presence_penalty != 0.0)
        {
            return;
        }
        let start = history.len().saturating_sub(c.repeat_last_n);
        self.window.clear();
        self.window.extend_from_slice(&history[start..]);
        self.window.sort_unstable();
        for run in self.window.chunk_by(|a, b| a == b) {
            let Some(logit) = self.logits.get_mut(run[0] as usize) else {
                continue;
            };
            if repeat {
                // Dividing a negative logit would raise it, so those are multiplied.
                if *logit <= 0.0 {
                    *logit *= c.repeat_penalty;
                } else {
                    *logit /= c.repeat_penalty;
                }
            }
            *logit -= run.len() as f32 * c.frequency_penalty + c.presence_penalty;
        }
    }

    /// Softmax over the candidates (already in id order) and one seeded draw.
    fn draw(&mut self) -> u32 {
        let max = self
            .cands
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return self.cands.first().map_or(0, |c| c.0);
        }
        let total: f64 = self.cands.iter().map(|c| ((c.1 - max) as f64).exp()).sum();
        // 53 random bits -> uniform in [0, 1), independent of rand's float conversion.
        let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let target = u * total;
        let mut cum = 0.0f64;
        for c in &self.cands {
            cum += ((c.1 - max) as f64).exp();
            if target < cum {
                return c.0;
            }
        }
        // Rounding left the target past the last bucket: take the last token with mass.
        self.cands
            .iter()
            .rev()
            .find(|c| c.1 > f32::NEG_INFINITY)
            .map_or(0, |c| c.0)
    }
}

/// Index of the largest value, lowest index on ties.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Keeps the most likely candidates whose probability mass first reaches `p` (the token
/// that crosses p is kept, at least one token always is). Leaves them sorted by logit.
fn top_p(cands: &mut Vec<Cand>, p: f32, already_sorted: bool) {
    let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    if cands.is_empty() || !max.is_finite() {
        return;
    }
    let weight = |c: &Cand| ((c.1 - max) as f64).exp();
    let total: f64 = cands.iter().map(weight).sum();
    let target = p as f64 * total;
    let n = cands.len();
    // Sort a growing prefix until it holds the mass: 262k logits rarely need more than
    // a few hundred sorted.
    let mut sorted_len = if already_sorted { n } else { 0 };
    let mut cum = 0.0f64;
    let mut i = 0;
    loop {
        if i == sorted_len {
            let want = (sorted_len * 2).clamp(64, n);
            let rest = &mut cands[sorted_len..];
            let take = want - sorted_len;
            if take < rest.len() {
                rest.select_nth_unstable_by(take - 1, by_logit_desc);
            }
            rest[..take].sort_unstable_by(by_logit_desc);
            sorted_len = want;
        }
        cum += weight(&cands[i]);
        i += 1;
        if cum >= target || i == n {
            cands.truncate(i);
            return;
        }
    }
}

/// Drops candidates with probability below `p` times the top one's, i.e. logit below
/// max + ln(p) (llama.cpp compares logits the same way).
fn min_p(cands: &mut Vec<Cand>, p: f32) {
    let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let min_logit = max + p.ln();
    cands.retain(|c| c.1 >= min_logit);
}

/// log(softmax(logits)), computed in f64 so tiny probabilities keep their digits.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![f32::NEG_INFINITY; logits.len()];
    }
    let sum: f64 = logits
        .iter()
        .filter(|x| !x.is_nan())
        .map(|&x| ((x - max) as f64).exp())
        .sum();
    let log_z = max as f64 + sum.ln();
    logits
        .iter()
        .map(|&x| {
            if x.is_nan() {
                f32::NEG_INFINITY
            } else {
                (x as f64 - log_z) as f32
            }
        })
        .collect()
}

/// The `k` most likely tokens with their log-probabilities, most likely first (lower id
/// first on ties), as OpenAI's `top_logprobs` reports them.
pub fn top_logprobs(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let logp = log_softmax(logits);
    let mut cands: Vec<Cand> = logp
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l))
        .collect();
    if k < cands.len() {
        cands.select_nth_unstable_by(k - 1, by_logit_desc);
        cands.truncate(k);
    }
    cands.sort_unstable_by(by_logit_desc);
    cands
}
