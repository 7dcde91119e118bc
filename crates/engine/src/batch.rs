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

use crate::generate::common_prefix;
use crate::sampler::{Sampler, SamplerConfig, log_softmax, top_of_logprobs};
use lingqiao_model::{KvCache, Logits, Model, N_BATCH, SeqBatch};
use lingqiao_pool::ThreadPool;
use lingqiao_tokenizer::{StreamDecoder, Tokenizer};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Instant;

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
    /// CPU time of the forward passes this request took part in, shared among each
    /// step's sequences in proportion to their tokens, plus its sampling (the energy
    /// proxy; the process's getrusage, so the HTTP threads' small share is in it too).
    pub cpu_seconds: f64,
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
    /// Compute threads (0: one per core).
    pub threads: usize,
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

/// A handle to the engine thread; clones share it. The thread stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    model: Arc<Model>,
    tokenizer: Arc<Tokenizer>,
    cfg: EngineConfig,
    queue: Arc<Queue>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.queue.state.lock().expect("queue lock").shutdown = true;
        self.queue.wake.notify_all();
    }
}

/// Work handed to the engine thread, and what wakes it.
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
    metrics: Mutex<Metrics>,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    embeds: VecDeque<EmbedJob>,
    shutdown: bool,
}

struct Job {
    req: Request,
    sink: Sink,
    submitted: Instant,
}

struct EmbedJob {
    prompt: Vec<u32>,
    reply: mpsc::SyncSender<Result<Vec<f32>, String>>,
}

impl Engine {
    /// Start the engine thread with its own compute pool.
    pub fn start(model: Arc<Model>, tokenizer: Arc<Tokenizer>, cfg: EngineConfig) -> Engine {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            metrics: Mutex::new(Metrics::default()),
        });
        let (m, t, q, c) = (model.clone(), tokenizer.clone(), queue.clone(), cfg.clone());
        std::thread::Builder::new()
            .name("lingqiao-engine".into())
            .spawn(move || {
                let threads = if c.threads == 0 {
                    lingqiao_pool::default_threads()
                } else {
                    c.threads
                };
                ThreadPool::new(threads).install(|| Scheduler::new(&m, &t, &c, &q).run())
            })
            .expect("spawn the engine thread");
        Engine {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                cfg,
                queue,
            }),
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.inner.model
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.inner.tokenizer
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// Queue a request; its events go to `sink` (on the engine thread: keep it cheap,
    /// e.g. a channel send). Errors when the queue is full or the prompt cannot fit.
    pub fn submit(&self, req: Request, sink: Sink) -> Result<(), SubmitError> {
        if req.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        let n_ctx = self.inner.cfg.n_ctx;
        if req.prompt.len() > n_ctx {
            return Err(SubmitError::PromptTooLong {
                n_prompt: req.prompt.len(),
                n_ctx,
            });
        }
        let q = &self.inner.queue;
        let mut st = q.state.lock().expect("queue lock");
        if st.shutdown {
            return Err(SubmitError::Stopped);
        }
        if st.jobs.len() >= self.inner.cfg.queue {
            return Err(SubmitError::QueueFull {
                waiting: st.jobs.len(),
            });
        }
        st.jobs.push_back(Job {
            req,
            sink,
            submitted: Instant::now(),
        });
        q.metrics.lock().expect("metrics lock").requests_waiting = st.jobs.len();
        drop(st);
        q.wake.notify_one();
        Ok(())
    }

    /// The embedding of `prompt`: the final hidden states (after the output norm),
    /// mean-pooled over the tokens and L2-normalized. Blocks until the engine ran it.
    pub fn embed(&self, prompt: Vec<u32>) -> Result<Vec<f32>, SubmitError> {
        if prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        let n_ctx = self.inner.cfg.n_ctx;
        if prompt.len() > n_ctx {
            return Err(SubmitError::PromptTooLong {
                n_prompt: prompt.len(),
                n_ctx,
            });
        }
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut st = self.inner.queue.state.lock().expect("queue lock");
            if st.shutdown {
                return Err(SubmitError::Stopped);
            }
            st.embeds.push_back(EmbedJob { prompt, reply: tx });
        }
        self.inner.queue.wake.notify_one();
        match rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) | Err(_) => Err(SubmitError::Stopped),
        }
    }

    pub fn metrics(&self) -> Metrics {
        self.inner
            .queue
            .metrics
            .lock()
            .expect("metrics lock")
            .clone()
    }
}

/// A sequence slot: a cache and the tokens it holds, and the request using it (if any).
struct Slot<'t> {
    cache: KvCache,
    /// Mirrors the cache: the tokens at positions 0..n_past.
    tokens: Vec<u32>,
    active: Option<Active<'t>>,
    /// When the slot last finished a request (least recently used is reused first).
    last_used: u64,
}

/// A request in progress.
struct Active<'t> {
    job: Job,
    /// Prompt tokens still to evaluate start here.
    next_prompt: usize,
    /// The token sampled last, to be fed in the next step.
    feed: Option<u32>,
    sampler: Sampler,
    decoder: StreamDecoder<'t>,
    /// Output text not yet sent: it could still be the start of a stop string.
    held: String,
    n_generated: usize,
    cached: usize,
    first_token: Option<Instant>,
    started: Instant,
    cpu_seconds: f64,
}

struct Scheduler<'a> {
    model: &'a Model,
    tok: &'a Tokenizer,
    cfg: &'a EngineConfig,
    queue: &'a Queue,
    slots: Vec<Slot<'a>>,
    clock: u64,
    mask: Vec<u32>,
}

/// What one slot brings to a step.
enum Part {
    /// Prompt tokens `range`; `last` if they finish the prompt (logits needed).
    Prompt(std::ops::Range<usize>, bool),
    /// The token sampled last step.
    Token(u32),
}

impl<'a> Scheduler<'a> {
    fn new(
        model: &'a Model,
        tok: &'a Tokenizer,
        cfg: &'a EngineConfig,
        queue: &'a Queue,
    ) -> Scheduler<'a> {
        let slots = (0..cfg.n_parallel.max(1))
            .map(|_| Slot {
                cache: model.new_cache(cfg.n_ctx),
                tokens: Vec::new(),
                active: None,
                last_used: 0,
            })
            .collect();
        Scheduler {
            model,
            tok,
            cfg,
            queue,
            slots,
            clock: 0,
            mask: Vec::new(),
        }
    }

    fn run(mut self) {
        loop {
            let (jobs, embeds) = {
                let mut st = self.queue.state.lock().expect("queue lock");
                loop {
                    let busy = self.slots.iter().any(|s| s.active.is_some());
                    let free = self.slots.iter().any(|s| s.active.is_none());
                    if st.shutdown {
                        return;
                    }
                    if busy || !st.embeds.is_empty() || (free && !st.jobs.is_empty()) {
                        break;
                    }
                    // Idle: sleep until work arrives (no spinning).
                    st = self.queue.wake.wait(st).expect("queue lock");
                }
                let n_free = self.slots.iter().filter(|s| s.active.is_none()).count();
                let take = n_free.min(st.jobs.len());
                let jobs: Vec<Job> = st.jobs.drain(..take).collect();
                let embeds: Vec<EmbedJob> = st.embeds.drain(..).collect();
                let mut m = self.queue.metrics.lock().expect("metrics lock");
                m.requests_waiting = st.jobs.len();
                (jobs, embeds)
            };
            for e in embeds {
                let r = self.embed(&e.prompt);
                let _ = e.reply.send(r);
            }
            for job in jobs {
                self.admit(job);
            }
            // A panic in a step (a bug, never bad input) fails the requests in flight and
            // resets their caches; the engine goes on serving the next ones.
            let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()));
            if let Err(payload) = stepped {
                let why = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                for slot in &mut self.slots {
                    slot.cache.clear();
                    slot.tokens.clear();
                    if let Some(mut a) = slot.active.take() {
                        let _ = (a.job.sink)(Event::Error(format!("internal error: {why}")));
                    }
                }
            }
        }
    }

    /// Give `job` the free slot holding the longest prefix of its prompt (the least
    /// recently used on ties).
    fn admit(&mut self, job: Job) {
        let prompt = &job.req.prompt;
        let (best, lcp) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .map(|(i, s)| (i, common_prefix(&s.tokens, prompt), s.last_used))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
            .map(|(i, lcp, _)| (i, lcp))
            .expect("admit is only called with a free slot");
        // Reuse only what leaves at least MAX_MIN_TOKENS prompt tokens to evaluate: they
        // then run as tiles, exactly as they would in a full evaluation of the prompt, so
        // reusing the cache does not change a token's kernels (see `chunks`).
        let keep = lcp.min(
            prompt
                .len()
                .saturating_sub(lingqiao_kernels::tile::MAX_MIN_TOKENS),
        );
        let slot = &mut self.slots[best];
        let reused = slot.cache.truncate(keep);
        slot.tokens.truncate(reused);
        let now = Instant::now();
        let sampler = Sampler::new(job.req.sampler.clone());
        {
            let mut m = self.queue.metrics.lock().expect("metrics lock");
            m.requests_total += 1;
            m.prompt_tokens_total += prompt.len() as u64;
            m.cached_prompt_tokens_total += reused as u64;
        }
        slot.active = Some(Active {
            job,
            next_prompt: reused,
            feed: None,
            sampler,
            decoder: self.tok.stream_decoder(),
            held: String::new(),
            n_generated: 0,
            cached: reused,
            first_token: None,
            started: now,
            cpu_seconds: 0.0,
        });
    }

    /// One forward pass over every active slot, then sampling.
    fn step(&mut self) {
        // What each active slot brings. Prompts go in chunks of at most N_BATCH tokens
        // whose boundaries depend only on the prompt and what was reused (see `chunks`);
        // one prompt chunk per step keeps generating slots moving.
        let mut parts: Vec<(usize, Part)> = Vec::new();
        let mut prompt_budget = N_BATCH;
        for (i, s) in self.slots.iter().enumerate() {
            let Some(a) = &s.active else { continue };
            if let Some(t) = a.feed {
                parts.push((i, Part::Token(t)));
            } else if a.next_prompt < a.job.req.prompt.len() {
                let n = chunk_len(a.job.req.prompt.len() - a.next_prompt);
                if n <= prompt_budget || prompt_budget == N_BATCH {
                    prompt_budget = prompt_budget.saturating_sub(n);
                    let end = a.next_prompt + n;
                    parts.push((
                        i,
                        Part::Prompt(a.next_prompt..end, end == a.job.req.prompt.len()),
                    ));
                }
            }
        }
        if parts.is_empty() {
            return;
        }
        let t0 = Instant::now();
        let cpu0 = process_cpu_seconds();
        let feeds: Vec<[u32; 1]> = parts
            .iter()
            .map(|(_, p)| match p {
                Part::Token(t) => [*t],
                Part::Prompt(..) => [0],
            })
            .collect();
        let result = {
            let mut batch: Vec<SeqBatch<'_>> = Vec::with_capacity(parts.len());
            let mut pi = 0;
            for (i, slot) in self.slots.iter_mut().enumerate() {
                if pi >= parts.len() || parts[pi].0 != i {
                    continue;
                }
                let a = slot.active.as_ref().expect("active");
                let (tokens, output) = match &parts[pi].1 {
                    Part::Token(_) => (&feeds[pi][..], Logits::Last),
                    Part::Prompt(r, last) => (
                        &a.job.req.prompt[r.clone()],
                        if *last { Logits::Last } else { Logits::None },
                    ),
                };
                batch.push(SeqBatch {
                    cache: &mut slot.cache,
                    tokens,
                    output,
                });
                pi += 1;
            }
            self.model.forward_batch(&mut batch)
        };
        let busy = t0.elapsed().as_secs_f64();
        {
            let mut m = self.queue.metrics.lock().expect("metrics lock");
            m.forward_passes_total += 1;
            m.busy_seconds_total += busy;
        }
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                // A model error fails the requests of this step (their caches are suspect).
                for (i, _) in &parts {
                    let slot = &mut self.slots[*i];
                    slot.cache.clear();
                    slot.tokens.clear();
                    if let Some(mut a) = slot.active.take() {
                        let _ = (a.job.sink)(Event::Error(e.to_string()));
                    }
                }
                return;
            }
        };
        let step_tokens: usize = parts
            .iter()
            .map(|(_, p)| match p {
                Part::Token(_) => 1,
                Part::Prompt(r, _) => r.len(),
            })
            .sum();
        let forward_cpu = process_cpu_seconds() - cpu0;
        for ((i, part), logits) in parts.into_iter().zip(logits) {
            let slot = &mut self.slots[i];
            let a = slot.active.as_mut().expect("active");
            let n_part = match &part {
                Part::Token(_) => 1,
                Part::Prompt(r, _) => r.len(),
            };
            a.cpu_seconds += forward_cpu * n_part as f64 / step_tokens as f64;
            match part {
                Part::Token(t) => {
                    slot.tokens.push(t);
                    a.feed = None;
                }
                Part::Prompt(r, last) => {
                    slot.tokens.extend_from_slice(&a.job.req.prompt[r.clone()]);
                    a.next_prompt = r.end;
                    if !last {
                        continue;
                    }
                }
            }
            let before = process_cpu_seconds();
            self.sample(i, &logits);
            if let Some(a) = self.slots[i].active.as_mut() {
                a.cpu_seconds += process_cpu_seconds() - before;
            }
        }
        let active = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.queue
            .metrics
            .lock()
            .expect("metrics lock")
            .requests_active = active;
    }

    /// Sample slot `i`'s next token from `logits`, emit it, and decide whether it ends.
    fn sample(&mut self, i: usize, logits: &[f32]) {
        let n_ctx = self.cfg.n_ctx;
        let tok = self.tok;
        let slot = &mut self.slots[i];
        let a = slot.active.as_mut().expect("active");
        if a.n_generated >= a.job.req.max_tokens {
            return self.finish(i, FinishReason::Length);
        }
        // The constraint masks what may follow.
        let mut masked;
        let mut view = logits;
        if let Some(c) = a.job.req.constraint.as_mut() {
            self.mask.clear();
            self.mask.resize(logits.len().div_ceil(32), 0);
            if let Err(e) = c.allowed(&mut self.mask) {
                return self.fail(i, format!("constraint: {e}"));
            }
            masked = logits.to_vec();
            for (id, l) in masked.iter_mut().enumerate() {
                if self.mask[id / 32] >> (id % 32) & 1 == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
            if masked.iter().all(|l| *l == f32::NEG_INFINITY) {
                return self.fail(i, "constraint: no token can continue the output".into());
            }
            view = &masked;
        }
        let id = a.sampler.sample(view, &slot.tokens);
        let a = self.slots[i].active.as_mut().expect("active");
        if let Some(c) = a.job.req.constraint.as_mut()
            && let Err(e) = c.accept(id)
        {
            return self.fail(i, format!("constraint: {e}"));
        }
        if tok.is_eog(id) {
            return self.finish(i, FinishReason::Stop);
        }
        let logprob = a.job.req.logprobs.map(|k| {
            let lp = log_softmax(logits);
            TokenLogprob {
                logprob: lp.get(id as usize).copied().unwrap_or(f32::NEG_INFINITY),
                top: top_of_logprobs(&lp, k),
            }
        });
        a.n_generated += 1;
        a.first_token.get_or_insert_with(Instant::now);
        a.held.push_str(&a.decoder.push(id));
        // Stop strings: everything before one is sent, the rest dropped.
        let stop_at = find_stop(&a.held, &a.job.req.stop);
        let text = match stop_at {
            Some(at) => a.held[..at].to_string(),
            None => {
                let keep = held_back(&a.held, &a.job.req.stop);
                let cut = a.held.len() - keep;
                a.held.drain(..cut).collect()
            }
        };
        if (a.job.sink)(Event::Token { id, text, logprob }).is_break() {
            return self.cancel(i);
        }
        if stop_at.is_some() {
            a.held.clear();
            return self.finish(i, FinishReason::Stop);
        }
        if a.job
            .req
            .constraint
            .as_ref()
            .is_some_and(|c| c.is_finished())
        {
            return self.finish(i, FinishReason::Stop);
        }
        if a.n_generated >= a.job.req.max_tokens || slot_full(&self.slots[i], n_ctx) {
            // The last token is not fed back: nothing would read its logits.
            return self.finish(i, FinishReason::Length);
        }
        self.slots[i].active.as_mut().expect("active").feed = Some(id);
    }

    fn finish(&mut self, i: usize, reason: FinishReason) {
        self.clock += 1;
        let slot = &mut self.slots[i];
        slot.last_used = self.clock;
        let Some(mut a) = slot.active.take() else {
            return;
        };
        // The decoder's held-back bytes, then any stop string they complete.
        let mut text = std::mem::take(&mut a.held);
        text.push_str(&a.decoder.finish());
        if let Some(at) = find_stop(&text, &a.job.req.stop) {
            text.truncate(at);
        }
        let now = Instant::now();
        let usage = Usage {
            prompt_tokens: a.job.req.prompt.len(),
            cached_tokens: a.cached,
            completion_tokens: a.n_generated,
            time_to_first_token_ms: ms(a.first_token.unwrap_or(now) - a.job.submitted),
            total_ms: ms(now - a.job.submitted),
            queue_ms: ms(a.started - a.job.submitted),
            cpu_seconds: a.cpu_seconds,
        };
        self.queue
            .metrics
            .lock()
            .expect("metrics lock")
            .generated_tokens_total += a.n_generated as u64;
        let _ = (a.job.sink)(Event::Done {
            text,
            reason,
            usage,
        });
    }

    fn fail(&mut self, i: usize, message: String) {
        if let Some(mut a) = self.slots[i].active.take() {
            let _ = (a.job.sink)(Event::Error(message));
        }
    }

    /// The listener went away: free the slot (its cache stays for reuse).
    fn cancel(&mut self, i: usize) {
        self.clock += 1;
        self.slots[i].last_used = self.clock;
        if let Some(a) = self.slots[i].active.take() {
            self.queue
                .metrics
                .lock()
                .expect("metrics lock")
                .generated_tokens_total += a.n_generated as u64;
        }
    }

    /// Mean-pooled, L2-normalized final hidden states of `prompt`, on a cache of its own.
    fn embed(&mut self, prompt: &[u32]) -> Result<Vec<f32>, String> {
        let n_embd = self.model.hp.n_embd;
        let mut cache = self.model.new_cache(prompt.len());
        let mut sum = vec![0f64; n_embd];
        let mut at = 0;
        while at < prompt.len() {
            let n = chunk_len(prompt.len() - at);
            let mut one = [SeqBatch {
                cache: &mut cache,
                tokens: &prompt[at..at + n],
                output: Logits::Hidden,
            }];
            let h = self
                .model
                .forward_batch(&mut one)
                .map_err(|e| e.to_string())?
                .remove(0);
            for row in h.chunks(n_embd) {
                sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
            }
            at += n;
        }
        let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        Ok(sum.iter().map(|v| (v / norm) as f32).collect())
    }
}

/// The next prompt chunk's length when `left` tokens remain: at most N_BATCH, and never
/// leaving a last chunk shorter than the tile threshold (a 520-token prompt goes as
/// 496 + 24, not 512 + 8), so every chunk of a prompt longer than the threshold runs as
/// tiles. A prompt's chunks then depend only on the tokens left to evaluate.
fn chunk_len(left: usize) -> usize {
    let min = lingqiao_kernels::tile::MAX_MIN_TOKENS;
    if left <= N_BATCH {
        left
    } else if left - N_BATCH < min {
        left - min
    } else {
        N_BATCH
    }
}

fn slot_full(slot: &Slot<'_>, n_ctx: usize) -> bool {
    // The next fed token would need position tokens.len().
    slot.tokens.len() >= n_ctx
}

/// Where the earliest stop string in `text` begins, if one does.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Bytes at the end of `held` that could still begin a stop string (to hold back).
fn held_back(held: &str, stops: &[String]) -> usize {
    let mut keep = 0;
    for s in stops.iter().filter(|s| !s.is_empty()) {
        // The longest proper prefix of `s` that `held` ends with.
        for (end, _) in s.char_indices().skip(1) {
            if end > keep && held.ends_with(&s[..end]) {
                keep = end;
            }
        }
    }
    keep
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time of the whole process so far (user + system), 0 if the OS does not say.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass; an all-zero rusage is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
