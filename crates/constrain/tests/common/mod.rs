//! Helpers shared by the constraint tests: the real qwen05 tokenizer, and a seeded random
//! walk over the tokens a constraint allows, checking at every step that end of generation
//! is allowed exactly when the text so far is a complete output.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lingqiao_constrain::Vocab;
use lingqiao_engine::batch::Constraint;
use lingqiao_tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn model_path(key: &str) -> PathBuf {
    let path = lingqiao_fetch::model_path(key).expect("a known model");
    assert!(
        path.exists(),
        "model {} is missing: fetch it first (lingqiao pull {key})",
        path.display()
    );
    path
}

pub fn qwen05_path() -> PathBuf {
    model_path("qwen05")
}

pub struct Setup {
    pub tok: Arc<Tokenizer>,
    pub vocab: Vocab,
    /// Tokens whose text contains a character that closes something (`"`, `}`, `]`):
    /// the walk favours them so that strings and containers end.
    closers: Vec<bool>,
}

/// The qwen05 tokenizer and its vocabulary, built once per test binary.
pub fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| Setup::load("qwen05"))
}

impl Setup {
    /// The tokenizer of model `key` and its vocabulary.
    pub fn load(key: &str) -> Setup {
        let gguf = lingqiao_gguf::GgufFile::open(model_path(key)).expect("open gguf");
        let tok = Arc::new(Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer"));
        let t0 = Instant::now();
        let vocab = Vocab::new(&tok).expect("vocab");
        eprintln!(
            "Vocab for {} tokens built in {:.0} ms",
            tok.n_vocab(),
            t0.elapsed().as_secs_f64() * 1e3
        );
        let closers = (0..tok.n_vocab() as u32)
            .map(|id| {
                let p = tok.token_to_piece(id, true);
                p.iter().any(|b| matches!(b, b'"' | b'}' | b']'))
            })
            .collect();
        Setup {
            tok,
            vocab,
            closers,
        }
    }
}

/// Where a text stands as an output.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    /// A complete, valid output.
    Complete,
    /// Not (yet) a complete output.
    Incomplete,
}

pub struct Walk {
    pub tokens: Vec<u32>,
    pub text: String,
    /// Whether the walk ended on an end-of-generation token (else: `is_finished`).
    pub ended_by_eog: bool,
    /// How long each `allowed` call took.
    pub mask_times: Vec<Duration>,
}

pub fn allowed_ids(mask: &[u32]) -> Vec<u32> {
    let mut ids = Vec::new();
    for (w, &bits) in mask.iter().enumerate() {
        let mut b = bits;
        while b != 0 {
            let i = b.trailing_zeros();
            ids.push(w as u32 * 32 + i);
            b &= b - 1;
        }
    }
    ids
}

pub fn is_allowed(mask: &[u32], id: u32) -> bool {
    mask[id as usize / 32] >> (id % 32) & 1 != 0
}

/// Samples allowed tokens at random until the constraint finishes or an EOG token is
/// drawn. `status` judges the text so far; at every step EOG must be allowed exactly
/// when it says `Complete`. `prefer`: tokens drawn with probability 1/2 whenever one is
/// allowed (to steer into branches a uniform draw over 150k tokens would rarely take).
pub fn walk(
    c: &mut dyn Constraint,
    seed: u64,
    max_steps: usize,
    prefer: &[u32],
    status: &dyn Fn(&str) -> Status,
) -> Walk {
    walk_with(setup(), c, seed, max_steps, prefer, status)
}

/// [`walk`] over the vocabulary of `s`.
pub fn walk_with(
    s: &Setup,
    c: &mut dyn Constraint,
    seed: u64,
    max_steps: usize,
    prefer: &[u32],
    status: &dyn Fn(&str) -> Status,
) -> Walk {
    let tok = &s.tok;
    let eog = tok.eog_ids();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut mask = vec![0u32; tok.n_vocab().div_ceil(32)];
    let mut bytes = Vec::new();
    let mut tokens = Vec::new();
    let mut mask_times = Vec::new();
    for step in 0..max_steps {
        mask.fill(0);
        let t0 = Instant::now();
        c.allowed(&mut mask).expect("allowed");
        mask_times.push(t0.elapsed());
        let ids = allowed_ids(&mask);
        let text = String::from_utf8(bytes.clone());
        let st = match &text {
            Ok(t) => status(t),
            Err(_) => Status::Incomplete,
        };
        let eog_allowed: Vec<bool> = eog.iter().map(|&e| is_allowed(&mask, e)).collect();
        let show = String::from_utf8_lossy(&bytes);
        assert!(
            eog_allowed.iter().all(|&a| a) || eog_allowed.iter().all(|&a| !a),
            "seed {seed} step {step}: only some EOG tokens allowed after {show:?}"
        );
        assert_eq!(
            eog_allowed[0],
            st == Status::Complete,
            "seed {seed} step {step}: EOG allowed = {} but the text is {st:?}: {show:?}",
            eog_allowed[0]
        );
        if c.is_finished() {
            assert_eq!(st, Status::Complete, "seed {seed}: finished on {show:?}");
            assert!(
                ids.iter().all(|id| tok.is_eog(*id)),
                "seed {seed}: finished, yet non-EOG tokens allowed after {show:?}"
            );
            return Walk {
                tokens,
                text: text.unwrap(),
                ended_by_eog: false,
                mask_times,
            };
        }
        assert!(
            !ids.is_empty(),
            "seed {seed} step {step}: dead end after {show:?}"
        );
        let pick = if eog_allowed[0] && rng.random_bool(0.3) {
            eog[rng.random_range(0..eog.len())]
        } else {
            let preferred: Vec<u32> = prefer
                .iter()
                .copied()
                .filter(|&p| is_allowed(&mask, p))
                .collect();
            let closing: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&i| s.closers[i as usize] && !tok.is_eog(i))
                .collect();
            let others: Vec<u32> = ids.iter().copied().filter(|&i| !tok.is_eog(i)).collect();
            if !preferred.is_empty() && rng.random_bool(0.5) {
                preferred[rng.random_range(0..preferred.len())]
            } else if !closing.is_empty() && rng.random_bool(0.25) {
                closing[rng.random_range(0..closing.len())]
            } else if !others.is_empty() {
                others[rng.random_range(0..others.len())]
            } else {
                ids[rng.random_range(0..ids.len())]
            }
        };
        c.accept(pick).expect("accept an allowed token");
        if tok.is_eog(pick) {
            return Walk {
                tokens,
                text: text.expect("EOG only after complete UTF-8"),
                ended_by_eog: true,
                mask_times,
            };
        }
        tokens.push(pick);
        bytes.extend_from_slice(&tok.token_to_piece(pick, true));
    }
    panic!(
        "seed {seed}: no end after {max_steps} tokens: {:?}",
        String::from_utf8_lossy(&bytes)
    );
}
