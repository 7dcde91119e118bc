//! The continuous-batching engine on a real model (smollm2): requests that share forward
//! passes give exactly what each gives alone, prefixes are reused, stop strings, limits,
//! cancellation and embeddings behave.

use lingqiao_engine::batch::{Constraint, Engine, EngineConfig, Event, FinishReason, Request};
use lingqiao_engine::{SamplerConfig, SubmitError, Usage};
use lingqiao_model::Model;
use lingqiao_tokenizer::Tokenizer;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::mpsc;

fn engine(n_parallel: usize, n_ctx: usize, queue: usize) -> Engine {
    let path = lingqiao_fetch::model_path("smollm2").expect("smollm2 is a known key");
    assert!(
        path.exists(),
        "{} is missing: run `lingqiao pull smollm2`",
        path.display()
    );
    let model = Model::load(&path).unwrap();
    let tok = Tokenizer::from_gguf(model.file.metadata()).unwrap();
    Engine::start(
        Arc::new(model),
        Arc::new(tok),
        EngineConfig {
            n_parallel,
            n_ctx,
            queue,
            threads: 2,
        },
    )
}

#[derive(Debug, Default)]
struct Outcome {
    ids: Vec<u32>,
    text: String,
    logprobs: Vec<u32>, // bits
    reason: Option<FinishReason>,
    usage: Usage,
    error: Option<String>,
}

fn request(e: &Engine, text: &str, max_tokens: usize) -> Request {
    Request {
        prompt: e.tokenizer().encode(text, true, false),
        max_tokens,
        sampler: SamplerConfig::greedy(),
        stop: Vec::new(),
        logprobs: Some(3),
        constraint: None,
    }
}

fn submit(e: &Engine, req: Request) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel();
    e.submit(
        req,
        Box::new(move |ev| match tx.send(ev) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }),
    )
    .unwrap();
    rx
}

fn collect(rx: mpsc::Receiver<Event>) -> Outcome {
    let mut o = Outcome::default();
    for ev in rx {
        match ev {
            Event::Token { id, text, logprob } => {
                o.ids.push(id);
                o.text.push_str(&text);
                let lp = logprob.expect("logprobs were asked for");
                o.logprobs.push(lp.logprob.to_bits());
                assert_eq!(lp.top.len(), 3);
                o.logprobs.extend(lp.top.iter().map(|t| t.1.to_bits()));
            }
            Event::Done {
                text,
                reason,
                usage,
            } => {
                o.text.push_str(&text);
                o.reason = Some(reason);
                o.usage = usage;
            }
            Event::Error(e) => o.error = Some(e),
        }
    }
    o
}

const PROMPTS: [&str; 6] = [
    // Long enough (> MAX_MIN_TOKENS) for its cached prefix to be reused.
    "Dear committee, I am writing to apply for the position of assistant librarian advertised in last week's newsletter. I have worked with rare books for six years and",
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "def fibonacci(n):",
    "List three colours:",
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox",
];

#[test]
fn concurrent_requests_give_what_each_gives_alone() {
    let e = engine(4, 512, 16);
    let alone: Vec<Outcome> = PROMPTS
        .iter()
        .map(|p| collect(submit(&e, request(&e, p, 24))))
        .collect();
    for o in &alone {
        assert_eq!(o.error, None);
        assert_eq!(o.ids.len(), 24, "{o:?}");
        assert_eq!(o.reason, Some(FinishReason::Length));
        assert!(
            o.usage.cpu_seconds > 0.0 && o.usage.total_ms > 0.0,
            "{:?}",
            o.usage
        );
        assert!(
            o.usage.time_to_first_token_ms <= o.usage.total_ms,
            "{:?}",
            o.usage
        );
    }
    // All at once (more than the 4 slots: one waits), twice over.
    for round in 0..2 {
        let rxs: Vec<_> = PROMPTS
            .iter()
            .map(|p| submit(&e, request(&e, p, 24)))
            .collect();
        for ((rx, want), p) in rxs.into_iter().zip(&alone).zip(PROMPTS) {
            let got = collect(rx);
            assert_eq!(got.ids, want.ids, "round {round} {p:?}");
            assert_eq!(got.text, want.text, "round {round} {p:?}");
            assert!(
                got.logprobs == want.logprobs,
                "round {round} {p:?}: logprobs differ"
            );
        }
    }
    assert_eq!(e.metrics().requests_total, 18);
}

/// A prompt found in a slot's cache is not recomputed, and the answer is the same bits as
/// when it was computed from scratch (the reuse leaves a tile-length tail to evaluate).
#[test]
fn a_reused_prompt_gives_the_same_answer() {
    let e = engine(2, 512, 4);
    let first = collect(submit(&e, request(&e, PROMPTS[0], 16)));
    let again = collect(submit(&e, request(&e, PROMPTS[0], 16)));
    let n = e.tokenizer().encode(PROMPTS[0], true, false).len();
    assert_eq!(first.usage.cached_tokens, 0);
    assert_eq!(
        again.usage.cached_tokens,
        n - lingqiao_kernels::tile::MAX_MIN_TOKENS
    );
    assert_eq!(again.ids, first.ids);
    assert!(again.logprobs == first.logprobs, "logprobs differ");
}

#[test]
fn a_conversation_prefix_is_reused_not_recomputed() {
    let e = engine(2, 512, 4);
    let first = "The history of the Roman Empire spans many centuries, beginning with the founding of the city and";
    let a = collect(submit(&e, request(&e, first, 16)));
    assert_eq!(a.usage.cached_tokens, 0);
    // The next turn adds more than the tile threshold of new tokens (a shorter addition
    // recomputes up to MAX_MIN_TOKENS of the cached prefix, by design).
    let follow = format!(
        "{first}{} And then the empire split into an eastern and a western half, each with its own emperor, capital, army and court, until",
        a.text
    );
    let b = collect(submit(&e, request(&e, &follow, 4)));
    let n_first = e.tokenizer().encode(first, true, false).len();
    assert!(
        b.usage.cached_tokens >= n_first,
        "cached {} of {} prompt tokens; the first prompt alone has {n_first}",
        b.usage.cached_tokens,
        b.usage.prompt_tokens
    );
}

#[test]
fn stop_strings_end_the_output_before_them() {
    let e = engine(1, 512, 4);
    let full = collect(submit(&e, request(&e, PROMPTS[2], 40)));
    // A stop string made of text the model does produce, in the middle of its output.
    let mid = full
        .text
        .char_indices()
        .nth(full.text.chars().count() / 2)
        .unwrap()
        .0;
    let stop: String = full.text[mid..].chars().take(4).collect();
    let mut req = request(&e, PROMPTS[2], 40);
    req.stop = vec!["never appears \u{1F600}".into(), stop.clone()];
    let got = collect(submit(&e, req));
    let at = full.text.find(&stop).unwrap();
    assert_eq!(got.text, full.text[..at], "stop {stop:?}");
    assert_eq!(got.reason, Some(FinishReason::Stop));
}

#[test]
fn limits_are_errors_not_truncation() {
    let e = engine(1, 64, 1);
    let long = "word ".repeat(100);
    match e.submit(
        request(&e, &long, 4),
        Box::new(|_| ControlFlow::Continue(())),
    ) {
        Err(SubmitError::PromptTooLong { n_prompt, n_ctx }) => {
            assert!(n_prompt > 64);
            assert_eq!(n_ctx, 64);
        }
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    let mut empty = request(&e, "", 4);
    empty.prompt.clear();
    assert_eq!(
        e.submit(empty, Box::new(|_| ControlFlow::Continue(()))),
        Err(SubmitError::EmptyPrompt)
    );
    // Generation that runs into the context ends with Length.
    let o = collect(submit(&e, request(&e, &"word ".repeat(50), 100)));
    assert_eq!(o.reason, Some(FinishReason::Length));
    assert!(
        o.usage.prompt_tokens + o.usage.completion_tokens <= 65,
        "{:?}",
        o.usage
    );
}

#[test]
fn a_full_queue_refuses_and_a_dropped_listener_frees_its_slot() {
    let e = engine(1, 512, 1);
    // Occupy the slot with a long request whose listener goes away when the test says.
    let (tx, rx) = mpsc::channel();
    let leave = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gone = leave.clone();
    e.submit(
        request(&e, PROMPTS[2], 10_000),
        Box::new(move |ev| {
            let _ = tx.send(matches!(ev, Event::Token { .. }));
            if gone.load(std::sync::atomic::Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }),
    )
    .unwrap();
    assert!(
        rx.recv().unwrap(),
        "the first event is a token: the request runs"
    );
    // While it runs: one request may wait, the next is refused.
    let waiting = submit(&e, request(&e, PROMPTS[1], 2));
    let refused = e.submit(
        request(&e, PROMPTS[3], 2),
        Box::new(|_| ControlFlow::Continue(())),
    );
    assert!(
        matches!(refused, Err(SubmitError::QueueFull { waiting: 1 })),
        "{refused:?}"
    );
    leave.store(true, std::sync::atomic::Ordering::SeqCst);
    // The sink breaks on its next event; the engine then drops it (the channel closes)
    // instead of generating the remaining ~490 tokens of context.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(_) => assert!(std::time::Instant::now() < deadline, "still generating"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the sink was never dropped"
                )
            }
        }
    }
    // The waiting request gets the freed slot and completes.
    let o = collect(waiting);
    assert_eq!(o.reason, Some(FinishReason::Length));
    assert_eq!(o.ids.len(), 2);
}

/// Allows only the tokens whose text is made of digits, then EOG after 5 tokens.
struct Digits {
    ok: Vec<bool>,
    eog: Vec<u32>,
    n: usize,
}

impl Constraint for Digits {
    fn allowed(&mut self, mask: &mut [u32]) -> Result<(), String> {
        for (id, &ok) in self.ok.iter().enumerate() {
            if ok && self.n < 5 {
                mask[id / 32] |= 1 << (id % 32);
            }
        }
        if self.n >= 5 {
            for &id in &self.eog {
                mask[id as usize / 32] |= 1 << (id % 32);
            }
        }
        Ok(())
    }
    fn accept(&mut self, token: u32) -> Result<(), String> {
        if !self.ok[token as usize] && !self.eog.contains(&token) {
            return Err(format!("token {token} was not allowed"));
        }
        self.n += 1;
        Ok(())
    }
    fn is_finished(&self) -> bool {
        false
    }
}

#[test]
fn a_constraint_masks_every_sampled_token() {
    let e = engine(2, 512, 4);
    let tok = e.tokenizer();
    let ok = (0..tok.n_vocab() as u32)
        .map(|id| {
            let p = tok.token_to_piece(id, false);
            !p.is_empty() && p.iter().all(|b| b.is_ascii_digit())
        })
        .collect();
    let mut req = request(&e, "Write a poem about the sea:", 20);
    req.sampler = SamplerConfig::with_seed(7);
    req.constraint = Some(Box::new(Digits {
        ok,
        eog: tok.eog_ids(),
        n: 0,
    }));
    let o = collect(submit(&e, req));
    assert_eq!(o.error, None);
    assert_eq!(o.ids.len(), 5, "{o:?}");
    assert!(o.text.chars().all(|c| c.is_ascii_digit()), "{:?}", o.text);
    assert_eq!(o.reason, Some(FinishReason::Stop));
}

#[test]
fn embeddings_are_normalized_deterministic_and_distinguish_texts() {
    let e = engine(1, 512, 4);
    let tok = e.tokenizer().clone();
    let a = e
        .embed(tok.encode("The cat sat on the mat.", true, false))
        .unwrap();
    let a2 = e
        .embed(tok.encode("The cat sat on the mat.", true, false))
        .unwrap();
    let b = e
        .embed(tok.encode("Quarterly revenue rose by four percent.", true, false))
        .unwrap();
    assert_eq!(a.len(), e.model().hp.n_embd);
    let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert_eq!(a, a2);
    let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    assert!(cos < 0.999, "different texts, cosine {cos}");
}

/// Panics when asked for a mask (a stand-in for a bug somewhere in a step).
struct Panics;

impl Constraint for Panics {
    fn allowed(&mut self, _: &mut [u32]) -> Result<(), String> {
        panic!("constraint bug")
    }
    fn accept(&mut self, _: u32) -> Result<(), String> {
        Ok(())
    }
    fn is_finished(&self) -> bool {
        false
    }
}

#[test]
fn a_panic_in_one_request_fails_it_and_the_engine_goes_on() {
    let e = engine(2, 512, 4);
    let mut bad = request(&e, PROMPTS[1], 8);
    bad.constraint = Some(Box::new(Panics));
    let o = collect(submit(&e, bad));
    let err = o.error.expect("the request failed");
    assert!(err.contains("constraint bug"), "{err}");
    let ok = collect(submit(&e, request(&e, PROMPTS[1], 8)));
    assert_eq!(ok.error, None);
    assert_eq!(ok.ids.len(), 8);
}
