//! The generation loop: feed a prompt (reusing whatever prefix the cache already holds),
//! then sample, stream and stop.

use crate::sampler::Sampler;
use lingqiao_model::{KvCache, Logits, Model, ModelError};
use lingqiao_tokenizer::Tokenizer;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

#[derive(thiserror::Error, Debug)]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {n_prompt} tokens but the context holds {n_ctx}")]
    PromptTooLong { n_prompt: usize, n_ctx: usize },
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were generated.
    Length,
    /// The context is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Stopped,
}

/// What a generation cost.
#[derive(Clone, Debug)]
pub struct GenerationStats {
    pub n_prompt: usize,
    /// Prompt tokens already in the cache, not recomputed.
    pub n_reused: usize,
    pub prompt_time: Duration,
    pub n_generated: usize,
    pub gen_time: Duration,
    pub stop: StopReason,
}

impl GenerationStats {
    /// Prompt tokens evaluated per second.
    pub fn prompt_tps(&self) -> f64 {
        (self.n_prompt - self.n_reused) as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second (the first comes from the prompt pass).
    pub fn gen_tps(&self) -> f64 {
        self.n_generated.saturating_sub(1) as f64 / self.gen_time.as_secs_f64().max(1e-9)
    }
}

/// A token as it is produced.
pub struct TokenEvent<'a> {
    /// The token; `None` for the decoder's final flush of held-back bytes.
    pub id: Option<u32>,
    /// Newly complete text (may be empty while a UTF-8 character is split across tokens).
    pub text: &'a str,
    /// The logits the token was sampled from (empty for the final flush).
    pub logits: &'a [f32],
}

/// One sequence: a cache and the tokens it holds.
pub struct Session<'m> {
    pub model: &'m Model,
    pub tokenizer: &'m Tokenizer,
    cache: KvCache,
    tokens: Vec<u32>,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, tokenizer: &'m Tokenizer, n_ctx: usize) -> Session<'m> {
        Session {
            model,
            tokenizer,
            cache: model.new_cache(n_ctx),
            tokens: Vec::new(),
        }
    }

    pub fn n_ctx(&self) -> usize {
        self.cache.n_ctx
    }

    /// Tokens currently held by the cache.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Evaluate `prompt`, reusing the longest prefix the cache already holds, and return the
    /// logits of its last token.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<(Vec<f32>, usize), GenerateError> {
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        if prompt.len() > self.cache.n_ctx {
            return Err(GenerateError::PromptTooLong {
                n_prompt: prompt.len(),
                n_ctx: self.cache.n_ctx,
            });
        }
        let common = common_prefix(&self.tokens, prompt);
        // At least one token must run to produce logits.
        let reuse = self.cache.truncate(common.min(prompt.len() - 1));
        self.tokens.truncate(reuse);
        let logits = self
            .model
            .forward(&mut self.cache, &prompt[reuse..], Logits::Last)?;
        self.tokens.extend_from_slice(&prompt[reuse..]);
        Ok((logits, reuse))
    }

    /// Generate up to `max_tokens` after `prompt`. `on_token` sees each token (not the final
    /// end-of-generation one) and may stop the loop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampler: &mut Sampler,
        mut on_token: impl FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<GenerationStats, GenerateError> {
        let t0 = Instant::now();
        let (mut logits, n_reused) = self.prefill(prompt)?;
        let prompt_time = t0.elapsed();
        let t1 = Instant::now();
        let mut decoder = self.tokenizer.stream_decoder();
        let mut n_generated = 0;
        let stop = loop {
            if n_generated >= max_tokens {
                break StopReason::Length;
            }
            let sampling = lingqiao_pool::profile::span(lingqiao_pool::profile::Op::Sample);
            let id = sampler.sample(&logits, &self.tokens);
            drop(sampling);
            if self.tokenizer.is_eog(id) {
                break StopReason::EndOfGeneration;
            }
            n_generated += 1;
            let text = decoder.push(id);
            if on_token(TokenEvent {
                id: Some(id),
                text: &text,
                logits: &logits,
            })
            .is_break()
            {
                break StopReason::Stopped;
            }
            if self.tokens.len() >= self.cache.n_ctx {
                break StopReason::ContextFull;
            }
            if n_generated >= max_tokens {
                // The last token is not fed back: nothing would read its logits. It is
                // therefore not in the cache either, and `tokens` (which mirrors the cache)
                // leaves it out; a following prompt that contains it computes it then.
                break StopReason::Length;
            }
            self.model
                .forward_into(&mut self.cache, &[id], Logits::Last, &mut logits)?;
            self.tokens.push(id);
        };
        let tail = decoder.finish();
        if !tail.is_empty() {
            let _ = on_token(TokenEvent {
                id: None,
                text: &tail,
                logits: &[],
            });
        }
        Ok(GenerationStats {
            n_prompt: prompt.len(),
            n_reused,
            prompt_time,
            n_generated,
            gen_time: t1.elapsed(),
            stop,
        })
    }
}

/// How many leading tokens `a` and `b` share (what a cache holding `a` can reuse of `b`).
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
