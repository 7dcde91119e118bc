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
//! Cost: a vocabulary can have 262k entries. top_k is one scan keeping the best k
//! (a linear-time select for large k); top_p without top_k is a quickselect on probability mass (no sort);
//! min_p is a filter pass.

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
    weights: Vec<f64>,
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
            weights: Vec::new(),
            window: Vec::new(),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from `logits` (one per vocabulary entry) given the tokens
    /// generated or read so far (`history`, oldest first). Empty logits give token 0.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        match self.run_chain(logits, history) {
            Some(id) => id,
            None => self.draw(),
        }
    }

    /// The tokens the chain leaves and the probability the draw gives each, in id order
    /// (llama.cpp's post-sampling probabilities). Does not advance the random stream.
    /// Greedy gives the argmax with probability 1.
    pub fn probabilities(&mut self, logits: &[f32], history: &[u32]) -> Vec<(u32, f32)> {
        if let Some(id) = self.run_chain(logits, history) {
            return vec![(id, 1.0)];
        }
        match self.weigh() {
            Ok(total) => {
                let probs = self.weights.iter().map(|w| (w / total) as f32);
                self.cands.iter().map(|c| c.0).zip(probs).collect()
            }
            Err(id) => vec![(id, 1.0)],
        }
    }

    /// Runs every stage before the draw. Returns the token when no draw is needed
    /// (greedy, empty or all -inf logits); otherwise leaves the survivors, with their
    /// logits divided by the temperature, in `self.cands` in id order.
    fn run_chain(&mut self, logits: &[f32], history: &[u32]) -> Option<u32> {
        if logits.is_empty() {
            return Some(0);
        }
        self.logits.clear();
        // A NaN logit (a broken forward pass) must not win or poison the softmax.
        self.logits.extend(
            logits
                .iter()
                .map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x }),
        );
        self.apply_penalties(history);

        let best = argmax(&self.logits);
        if self.cfg.temperature.is_nan()
            || self.cfg.temperature <= 0.0
            || !self.logits[best as usize].is_finite()
        {
            return Some(best);
        }

        let n = self.logits.len();
        // Until top_k or top_p reorders them, candidates stay in id order.
        let top_k_on = self.cfg.top_k > 0 && self.cfg.top_k < n;
        let top_p_on = self.cfg.top_p < 1.0;
        if top_k_on {
            top_k(&self.logits, self.cfg.top_k, &mut self.cands);
        } else {
            self.cands.clear();
            self.cands
                .extend(self.logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        }
        if top_p_on {
            top_p(&mut self.cands, self.cfg.top_p, top_k_on);
        }
        if self.cfg.min_p > 0.0 {
            min_p(&mut self.cands, self.cfg.min_p);
        }
        for c in self.cands.iter_mut() {
            c.1 /= self.cfg.temperature;
        }
        if top_k_on || top_p_on {
            self.cands.sort_unstable_by_key(|c| c.0);
        }
        None
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

    /// Softmax weights of the candidates into `self.weights`, returning their sum, or
    /// the token that takes all the mass when a tiny temperature overflowed the logits.
    fn weigh(&mut self) -> Result<f64, u32> {
        let max = self
            .cands
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return Err(self.cands.iter().find(|c| c.1 == max).map_or(0, |c| c.0));
        }
        self.weights.clear();
        self.weights
            .extend(self.cands.iter().map(|c| ((c.1 - max) as f64).exp()));
        Ok(self.weights.iter().sum())
    }

    /// One seeded draw from the weighted candidates (in id order).
    fn draw(&mut self) -> u32 {
        let total = match self.weigh() {
            Ok(total) => total,
            Err(id) => return id,
        };
        // 53 random bits -> uniform in [0, 1), independent of rand's float conversion.
        let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let target = u * total;
        let mut cum = 0.0f64;
        for (c, w) in self.cands.iter().zip(&self.weights) {
            cum += w;
            if target < cum {
                return c.0;
            }
        }
        // Rounding left the target past the last bucket: take the last token with mass.
        let last = self.weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
        self.cands.get(last).map_or(0, |c| c.0)
    }
}

/// The index of the largest value, the lowest on ties; NaNs never win (0 if all are NaN or
/// `values` is empty, or none is above -inf).
///
/// Two passes the compiler vectorizes: lane-wise maxima over blocks of [`LANES`], then the
/// first block holding that maximum, searched element by element. The one-pass loop that
/// keeps (index, value) carries a branch per element: over qwen15's 151 936 logits it took
/// 0.31 ms per decoded token on the 2-core VM, about 0.7% of a two-thread token.
pub fn argmax(values: &[f32]) -> u32 {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let blocks = values.chunks_exact(LANES);
    let tail = blocks.remainder();
    for b in blocks {
        for (m, &x) in lanes.iter_mut().zip(b) {
            // Keeps `m` when `x` is NaN (the comparison is false), like the scalar rule.
            *m = if x > *m { x } else { *m };
        }
    }
    let best = lanes
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    if best == f32::NEG_INFINITY {
        return 0;
    }
    // `best` is a value of `values`, so some element equals it; the first one is the
    // lowest index among the maxima.
    let at = values
        .chunks(LANES * 4)
        .position(|c| c.iter().fold(false, |hit, &x| hit | (x == best)))
        .expect("the maximum is one of the values");
    let within = values[at * LANES * 4..]
        .iter()
        .position(|&x| x == best)
        .expect("the block holds the maximum");
    (at * LANES * 4 + within) as u32
}

/// The `k` best (logit desc, id asc) entries of `logits` into `out`, sorted.
fn top_k(logits: &[f32], k: usize, out: &mut Vec<Cand>) {
    out.clear();
    if k > 256 {
        // Large k: one linear-time select over all entries beats sorted insertion.
        out.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        out.select_nth_unstable_by(k - 1, by_logit_desc);
        out.truncate(k);
        out.sort_unstable_by(by_logit_desc);
        return;
    }
    // Small k (llama.cpp's default is 40): one scan keeping a sorted list of the best k.
    // Most logits lose the single comparison against the current k-th, so 262k entries
    // cost about one pass.
    for (i, &l) in logits.iter().enumerate() {
        if out.len() == k {
            // Ids only grow, so an equal logit ranks after the current k-th: strict >.
            if l <= out[k - 1].1 {
                continue;
            }
            out.pop();
        }
        let cand = (i as u32, l);
        let pos = out.partition_point(|c| by_logit_desc(c, &cand) == Ordering::Less);
        out.insert(pos, cand);
    }
}

/// Keeps the most likely candidates whose probability mass first reaches `p` (the token
/// that crosses p is kept, at least one token always is), in no particular order.
///
/// Unsorted input (no top_k before it) can hold 262k tokens and, when logits are flat,
/// tens of thousands must be kept, so instead of sorting this runs a quickselect on
/// probability mass: partition around a pivot, keep or drop the whole upper part by
/// its mass, recurse into one side. Expected O(n), and the kept set is exactly the
/// prefix a full sort by (logit desc, id asc) would give.
fn top_p(cands: &mut Vec<Cand>, p: f32, sorted: bool) {
    let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    if cands.is_empty() || !max.is_finite() {
        return;
    }
    let weight = |c: &Cand| (c.1 - max).exp() as f64;
    let total: f64 = cands.iter().map(weight).sum();
    let target = p as f64 * total;
    let (mut lo, mut hi) = (0, cands.len());
    // Mass of cands[..lo], all of which are kept.
    let mut kept = 0.0f64;
    let cut = loop {
        if sorted || hi - lo <= 32 {
            if !sorted {
                cands[lo..hi].sort_unstable_by(by_logit_desc);
            }
            let mut i = lo;
            while i < hi {
                kept += weight(&cands[i]);
                i += 1;
                if kept >= target {
                    break;
                }
            }
            break i.max(1);
        }
        let m = lo + partition(&mut cands[lo..hi]);
        let upper: f64 = cands[lo..m].iter().map(weight).sum();
        if kept + upper >= target {
            hi = m;
            continue;
        }
        kept += upper + weight(&cands[m]);
        if kept >= target {
            break m + 1;
        }
        lo = m + 1;
    };
    cands.truncate(cut);
}

/// Partitions `v` around a median-of-three pivot in (logit desc, id asc) order and
/// returns the pivot's final index: everything before it ranks higher.
fn partition(v: &mut [Cand]) -> usize {
    let last = v.len() - 1;
    let mid = v.len() / 2;
    // Order v[0], v[mid], v[last] so the median lands at mid.
    if by_logit_desc(&v[mid], &v[0]) == Ordering::Less {
        v.swap(mid, 0);
    }
    if by_logit_desc(&v[last], &v[mid]) == Ordering::Less {
        v.swap(last, mid);
        if by_logit_desc(&v[mid], &v[0]) == Ordering::Less {
            v.swap(mid, 0);
        }
    }
    v.swap(mid, last);
    let pivot = v[last];
    let mut store = 0;
    for i in 0..last {
        if by_logit_desc(&v[i], &pivot) == Ordering::Less {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}

/// Drops candidates with probability below `p` times the top one's, i.e. logit below
/// max + ln(p) (llama.cpp compares logits the same way).
fn min_p(cands: &mut Vec<Cand>, p: f32) {
    let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    // min_p > 1 would drop even the top token; at least that one always stays.
    let min_logit = (max + p.ln()).min(max);
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
    if k.min(logits.len()) == 0 {
        return Vec::new();
    }
    top_of_logprobs(&log_softmax(logits), k)
}

/// [`top_logprobs`] from log-probabilities already computed by [`log_softmax`] (a caller
/// that also needs the chosen token's logprob computes the softmax once).
pub fn top_of_logprobs(logp: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.min(logp.len());
    if k == 0 {
        return Vec::new();
    }
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
