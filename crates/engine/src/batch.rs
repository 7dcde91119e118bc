//! Continuous batching: many sequences share each forward pass.
//!
//! One engine thread owns the model's compute. Requests wait in a bounded queue and are
//! given one of `n_parallel` slots; every step runs one batched forward pass over all
//! active slots (a chunk of a prompt for a slot that is prefilling, one token for a slot
//! that is generating), then samples each slot's next token. A slot keeps its cache after
//! its request ends, and a new request goes to the free slot that already holds the
//! longest prefix of its prompt (a shared system prompt, the earlier turns of a
//! conversation), which is not recomputed.
//!
//! Determinism: a sequence's tokens and logprobs do not depend on what else shares its
//! batch. Every per-token computation (activation quantization, kernel choice, attention)
//! depends only on that sequence's own tokens; see `Model::forward_batch`.
//!
//! The engine knows nothing of HTTP: results go to a caller-supplied sink, which returns
//! `ControlFlow::Break` when nobody listens any more (a client disconnected): the slot is
//! freed at once.

use crate::sampler::SamplerConfig;
use std::ops::ControlFlow;

/// Tokens a sampling constraint allows, as a bitset over the vocabulary: bit `i % 32` of
/// word `i / 32` set = token `i` allowed (the layout of llguidance's `SimpleVob`).
pub type TokenMask = Vec<u32>;

/// A constraint on what may be generated (a JSON schema, a tool-call grammar): masks the
/// tokens that cannot continue a valid output, and follows the tokens chosen.
pub trait Constraint: Send {
    /// Fill `mask` (`n_vocab.div_ceil(32)` words, zeroed by the caller) with the tokens
    /// allowed next. End-of-generation tokens are allowed when the output is complete.
    fn allowed(&mut self, mask: &mut [u32]) -> Result<(), String>;
    /// Advance past the token that was sampled (always one `allowed` permitted).
    fn accept(&mut self, token: u32) -> Result<(), String>;
    /// The output is complete and nothing may follow: generation ends here.
    fn is_finished(&self) -> bool;
}

/// One completion to run.
pub struct Request {
    /// Prompt tokens (BOS and chat template already applied).
    pub prompt: Vec<u32>,
    /// Generate at most this many tokens.
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Stop when the output contains one of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// Report each token's log-probability (under the model's distribution, before
    /// sampling filters) with this many alternatives (`Some(0)`: the token's own only).
    pub logprobs: Option<usize>,
    pub constraint: Option<Box<dyn Constraint>>,
}

/// A generated token's log-probability and the most likely alternatives.
#[derive(Clone, Debug)]
pub struct TokenLogprob {
    pub logprob: f32,
    /// (token, logprob), most likely first.
    pub top: Vec<(u32, f32)>,
}

/// What a request cost.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens found in the slot's cache, not recomputed.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// From submission to the first generated token.
    pub time_to_first_token_ms: f64,
    /// From submission to the end.
    pub total_ms: f64,
    /// Time spent waiting for a slot.
    pub queue_ms: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token, a stop string, or a finished constraint.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
}

pub enum Event {
    /// A generated token. `text` is the newly complete output text (it may be empty: a
    /// UTF-8 character split across tokens, or text held back while it could still be
    /// the start of a stop string).
    Token {
        id: u32,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// The last event of a request: remaining held-back text, why it ended, its cost.
    Done {
        text: String,
        reason: FinishReason,
        usage: Usage,
    },
    /// The request failed (the last event).
    Error(String),
}

/// Receives a request's events on the engine thread; `Break` cancels the request.
pub type Sink = Box<dyn FnMut(Event) -> ControlFlow<()> + Send>;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Sequences decoded together.
    pub n_parallel: usize,
    /// Context of each slot, in tokens.
    pub n_ctx: usize,
    /// Requests that may wait for a slot; more are refused.
    pub queue: usize,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    #[error("the server is busy: {waiting} requests are already waiting")]
    QueueFull { waiting: usize },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {n_prompt} tokens but the context holds {n_ctx}")]
    PromptTooLong { n_prompt: usize, n_ctx: usize },
    #[error("the engine has stopped")]
    Stopped,
}

/// Counters for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub requests_total: u64,
    pub requests_active: usize,
    pub requests_waiting: usize,
    pub prompt_tokens_total: u64,
    pub cached_prompt_tokens_total: u64,
    pub generated_tokens_total: u64,
    pub forward_passes_total: u64,
    /// Seconds the engine thread spent in forward passes.
    pub busy_seconds_total: f64,
}

/// A handle to the engine thread; clones share it.
#[derive(Clone)]
pub struct Engine {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    model: std::sync::Arc<lingqiao_model::Model>,
    tokenizer: std::sync::Arc<lingqiao_tokenizer::Tokenizer>,
    cfg: EngineConfig,
}

impl Engine {
    /// Start the engine thread. (Interface first; the scheduler lands in the next commit.)
    pub fn start(
        model: std::sync::Arc<lingqiao_model::Model>,
        tokenizer: std::sync::Arc<lingqiao_tokenizer::Tokenizer>,
        cfg: EngineConfig,
    ) -> Engine {
        Engine {
            inner: std::sync::Arc::new(Inner {
                model,
                tokenizer,
                cfg,
            }),
        }
    }

    pub fn model(&self) -> &std::sync::Arc<lingqiao_model::Model> {
        &self.inner.model
    }

    pub fn tokenizer(&self) -> &std::sync::Arc<lingqiao_tokenizer::Tokenizer> {
        &self.inner.tokenizer
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// Queue a request; its events go to `sink` (on the engine thread: keep it cheap,
    /// e.g. a channel send). Errors when the queue is full or the prompt cannot fit.
    pub fn submit(&self, req: Request, sink: Sink) -> Result<(), SubmitError> {
        let _ = (req, sink);
        Err(SubmitError::Stopped)
    }

    /// The embedding of `prompt`: the final hidden states (after the output norm),
    /// mean-pooled over the tokens and L2-normalized. Blocks until the engine ran it.
    pub fn embed(&self, prompt: Vec<u32>) -> Result<Vec<f32>, SubmitError> {
        let _ = prompt;
        Err(SubmitError::Stopped)
    }

    pub fn metrics(&self) -> Metrics {
        Metrics::default()
    }
}
