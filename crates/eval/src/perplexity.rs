//! The perplexity pass (llama.cpp's `perplexity()` and `kl_divergence()` in
//! tools/perplexity/perplexity.cpp), one chunk at a time.

use crate::error::EvalError;
use crate::logits_file::{BaseLogits, LogitsHeader, LogitsWriter};
use crate::row::{self, RowStats, record_bytes};
use crate::stats::{KldReport, Sums};
use lingqiao_model::{Logits, Model, N_BATCH};
use lingqiao_pool::SharedMut;
use lingqiao_tokenizer::Tokenizer;
use std::time::Instant;

/// How to cut and evaluate the text.
#[derive(Clone, Debug)]
pub struct PerplexityOptions {
    /// Tokens per chunk (llama-perplexity's `-c`, default 512).
    pub n_ctx: usize,
    /// Tokens per forward call (`-b`); capped at [`N_BATCH`] and at `n_ctx`.
    pub n_batch: usize,
    /// Evaluate at most this many chunks (`--chunks`); `None`: all `n_tokens / n_ctx`.
    pub n_chunks: Option<usize>,
    /// The token that replaces the first of every chunk, when the model adds BOS.
    pub bos: Option<u32>,
}

impl PerplexityOptions {
    /// llama-perplexity's defaults for a model with this tokenizer.
    pub fn for_tokenizer(tok: &Tokenizer) -> PerplexityOptions {
        PerplexityOptions {
            n_ctx: 512,
            n_batch: 2048,
            n_chunks: None,
            bos: if tok.add_bos() { tok.bos() } else { None },
        }
    }
}

/// The text as llama-perplexity tokenizes it: one trailing newline dropped (its `-f`
/// reader does that), BOS added when the model asks, special-token text left as text.
pub fn tokenize_text(tok: &Tokenizer, text: &str) -> Vec<u32> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut ids = tok.encode(text, true, false);
    // llama.cpp refuses models that add EOS; a trailing EOS would be scored as text.
    if tok.add_eos() && ids.last().copied() == tok.eos() {
        ids.pop();
    }
    ids
}

/// Reported after each chunk.
#[derive(Clone, Debug)]
pub struct ChunkProgress {
    /// 1-based.
    pub chunk: usize,
    pub n_chunks: usize,
    /// Perplexity over all chunks so far.
    pub ppl: f64,
    /// Mean KLD and top-token agreement so far (KL mode only).
    pub kld: Option<(f64, f64)>,
    /// Seconds since the pass started.
    pub elapsed: f64,
}

#[derive(Clone, Debug)]
pub struct PerplexityReport {
    pub ppl: f64,
    /// Standard error, as llama-perplexity's `Final estimate: PPL = X +/- Y`.
    pub ppl_stderr: f64,
    pub n_ctx: usize,
    pub n_chunks: usize,
    /// Tokens run through the model (`n_chunks * n_ctx`).
    pub n_tokens_evaluated: usize,
    /// Tokens whose probability was scored (`n_chunks * (n_ctx - 1 - n_ctx/2)`).
    pub n_tokens_scored: usize,
    /// Perplexity over chunks `1..=i` after each chunk `i` (what llama-perplexity prints
    /// as `[i]x.xxxx`).
    pub cumulative_ppl: Vec<f64>,
    /// Wall-clock seconds of the pass (forward and scoring).
    pub seconds: f64,
    /// Against the base logits, when given.
    pub kld: Option<KldReport>,
}

impl PerplexityReport {
    pub fn tokens_per_second(&self) -> f64 {
        self.n_tokens_evaluated as f64 / self.seconds
    }
}

/// Checks the options against the model and the text; returns the number of chunks.
fn plan(model: &Model, n_tokens: usize, opts: &PerplexityOptions) -> Result<usize, EvalError> {
    let n_ctx = opts.n_ctx;
    if n_ctx < 4 {
        return Err(EvalError::ContextTooSmall { n_ctx });
    }
    let n_ctx_train = model.hp.n_ctx_train;
    if n_ctx > n_ctx_train {
        return Err(EvalError::ContextTooLarge { n_ctx, n_ctx_train });
    }
    if opts.n_batch == 0 {
        return Err(EvalError::ZeroBatch);
    }
    if n_tokens < 2 * n_ctx {
        return Err(EvalError::TooFewTokens {
            n_tokens,
            n_ctx,
            needed: 2 * n_ctx,
        });
    }
    let all = n_tokens / n_ctx;
    Ok(opts.n_chunks.map_or(all, |n| n.clamp(1, all)))
}

/// Checks that `base` was made from the same tokens, cut the same way, with a model of
/// the same vocabulary.
fn check_base(h: &LogitsHeader, want: &LogitsHeader) -> Result<(), EvalError> {
    let mismatch = |what: &str, base: String, here: String| {
        Err(EvalError::BaseMismatch(format!(
            "{what}: base {base}, this run {here}"
        )))
    };
    if h.n_vocab != want.n_vocab {
        return mismatch(
            "vocabulary size",
            h.n_vocab.to_string(),
            want.n_vocab.to_string(),
        );
    }
    if h.n_ctx != want.n_ctx || h.first != want.first {
        return mismatch("context (-c)", h.n_ctx.to_string(), want.n_ctx.to_string());
    }
    if h.n_chunk != want.n_chunk {
        return mismatch("chunks", h.n_chunk.to_string(), want.n_chunk.to_string());
    }
    if h.bos != want.bos {
        return mismatch(
            "BOS token",
            format!("{:?}", h.bos),
            format!("{:?}", want.bos),
        );
    }
    if let Some(i) = h.tokens.iter().zip(&want.tokens).position(|(a, b)| a != b) {
        return mismatch(
            &format!("token {i} (a different text or tokenizer)"),
            h.tokens[i].to_string(),
            want.tokens[i].to_string(),
        );
    }
    Ok(())
}

/// Logits of positions `first..n_ctx` of one chunk, from an empty cache, `(n_ctx - first,
/// n_vocab)`.
///
/// Forward calls take `n_batch` tokens at a time as llama.cpp's batches do, and also
/// break at `first`: the first half needs no logits, so its output projection is skipped.
fn chunk_logits(
    model: &Model,
    tokens: &[u32],
    first: usize,
    n_batch: usize,
) -> Result<Vec<f32>, EvalError> {
    let n_ctx = tokens.len();
    let mut cache = model.new_cache(n_ctx);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < n_ctx {
        let mut end = (pos + n_batch).min(n_ctx);
        if pos < first && end > first {
            end = first;
        }
        let mode = if end <= first {
            Logits::None
        } else {
            Logits::All
        };
        let rows = model.forward(&mut cache, &tokens[pos..end], mode)?;
        // Usually one call returns all the logits: keep its buffer rather than copy it.
        if out.is_empty() {
            out = rows;
        } else {
            out.extend_from_slice(&rows);
        }
        pos = end;
    }
    Ok(out)
}

/// Perplexity of `model` on `tokens` (a whole text, as [`tokenize_text`] makes it), as
/// llama-perplexity computes it.
///
/// With `base`, also compares every scored position with the base's saved log-probs
/// (`--kl-divergence`); the base must come from the same tokens and options. With `save`,
/// writes this model's log-probs for later comparisons (`--kl-divergence-base`).
/// Runs on the current thread pool (`ThreadPool::install`).
pub fn perplexity(
    model: &Model,
    tokens: &[u32],
    opts: &PerplexityOptions,
    mut base: Option<&mut BaseLogits>,
    mut save: Option<&mut LogitsWriter>,
    progress: &mut dyn FnMut(&ChunkProgress),
) -> Result<PerplexityReport, EvalError> {
    let n_chunks = plan(model, tokens.len(), opts)?;
    let n_ctx = opts.n_ctx;
    let n_vocab = model.hp.n_vocab;
    let first = n_ctx / 2;
    let rows = n_ctx - 1 - first;
    let n_batch = opts.n_batch.min(N_BATCH).min(n_ctx);
    let header = LogitsHeader {
        n_vocab,
        n_ctx,
        n_chunk: n_chunks,
        first,
        bos: opts.bos,
        tokens: tokens[..n_chunks * n_ctx].to_vec(),
    };
    if let Some(b) = base.as_deref_mut() {
        check_base(b.header(), &header)?;
        b.rewind()?;
    }
    if let Some(w) = save.as_deref_mut() {
        w.header(&header)?;
    }
    let rec = record_bytes(n_vocab);
    let (mut saved, mut based) = (Vec::new(), Vec::new());
    if save.is_some() {
        saved.resize(rows * rec, 0);
    }
    let kl_mode = base.is_some();
    let mut sums = Sums::default();
    let mut cumulative_ppl = Vec::with_capacity(n_chunks);
    let t0 = Instant::now();
    for c in 0..n_chunks {
        let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
        if let Some(bos) = opts.bos {
            chunk[0] = bos;
        }
        let logits = chunk_logits(model, &chunk, first, n_batch)?;
        if let Some(b) = base.as_deref_mut() {
            b.next_chunk(&mut based)?;
        }
        // Row i holds the logits at position first + i, which predict token first + i + 1.
        let next = &tokens[c * n_ctx + first + 1..(c + 1) * n_ctx];
        let mut stats = vec![RowStats::default(); rows];
        let out = SharedMut::new(&mut stats);
        let saved_rows = SharedMut::new(&mut saved);
        let writing = save.is_some();
        let based = &based;
        lingqiao_pool::for_each_chunk(rows, 4, |_, r| {
            for i in r {
                let lg = &logits[i * n_vocab..(i + 1) * n_vocab];
                let span = i * rec..(i + 1) * rec;
                let norm = row::Norm::of(lg);
                let mut s = if writing {
                    // SAFETY: row i's record is written by this iteration only, and
                    // `saved` outlives the job.
                    row::encode(lg, &norm, next[i], unsafe {
                        saved_rows.slice(span.clone())
                    })
                } else {
                    row::nll(lg, &norm, next[i])
                };
                if kl_mode {
                    s = row::compare(lg, &norm, next[i], &based[span]);
                }
                // SAFETY: element i is written by this iteration only.
                unsafe { out.write(i, s) };
            }
        });
        for s in &stats {
            sums.add(s, kl_mode);
        }
        if let Some(w) = save.as_deref_mut() {
            w.chunk(&saved)?;
        }
        let ppl = sums.ppl().0;
        cumulative_ppl.push(ppl);
        progress(&ChunkProgress {
            chunk: c + 1,
            n_chunks,
            ppl,
            kld: kl_mode.then(|| (sums.mean_kld(), sums.top1_agreement())),
            elapsed: t0.elapsed().as_secs_f64(),
        });
    }
    if let Some(w) = save {
        w.finish()?;
    }
    let (ppl, ppl_stderr) = sums.ppl();
    Ok(PerplexityReport {
        ppl,
        ppl_stderr,
        n_ctx,
        n_chunks,
        n_tokens_evaluated: n_chunks * n_ctx,
        n_tokens_scored: sums.count,
        cumulative_ppl,
        seconds: t0.elapsed().as_secs_f64(),
        kld: kl_mode.then(|| sums.kld_report()),
    })
}
