//! The qwen3 architecture against transformers, on a tiny randomly initialised model
//! (no real qwen3 file can be installed here). Fixture: tools/reference/gen_qwen3_tiny.py.

use lingqiao_model::{Logits, Model};
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/qwen3-tiny")
}

struct Sequence {
    name: String,
    ids: Vec<u32>,
    logits: Vec<f32>, // (n_tokens, n_vocab)
}

fn sequences() -> Vec<Sequence> {
    let dir = fixture_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let bytes = std::fs::read(dir.join(s["logits_file"].as_str().unwrap())).unwrap();
            Sequence {
                name: s["name"].as_str().unwrap().to_string(),
                ids: s["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect(),
                logits: bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            }
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// The KV cache holds F16 (as llama.cpp's), so logits agree with an f32 reference to
/// about 1e-2 on logits of magnitude ~3; greedy picks must agree exactly.
const TOLERANCE: f32 = 2e-2;

#[test]
fn batched_prompt_matches_transformers() {
    let model = Model::load(fixture_dir().join("model.gguf")).unwrap();
    assert_eq!(model.hp.spec.name, "qwen3");
    for seq in sequences() {
        let mut cache = model.new_cache(256);
        let ours = model.forward(&mut cache, &seq.ids, Logits::All).unwrap();
        let diff = max_abs_diff(&ours, &seq.logits);
        eprintln!("{}: max |Δlogit| = {diff:.2e}", seq.name);
        assert!(diff < TOLERANCE, "{}: max abs diff {diff}", seq.name);
        let n_vocab = model.hp.n_vocab;
        for (t, (a, b)) in ours
            .chunks(n_vocab)
            .zip(seq.logits.chunks(n_vocab))
            .enumerate()
        {
            assert_eq!(argmax(a), argmax(b), "{} position {t}", seq.name);
        }
    }
}

#[test]
fn token_by_token_decoding_matches_batched() {
    let model = Model::load(fixture_dir().join("model.gguf")).unwrap();
    let seq = sequences().into_iter().max_by_key(|s| s.ids.len()).unwrap();
    let mut cache = model.new_cache(256);
    let n_vocab = model.hp.n_vocab;
    for (t, &id) in seq.ids.iter().enumerate() {
        let row = model.forward(&mut cache, &[id], Logits::Last).unwrap();
        let diff = max_abs_diff(&row, &seq.logits[t * n_vocab..(t + 1) * n_vocab]);
        assert!(diff < TOLERANCE, "position {t}: {diff}");
    }
}

#[test]
fn thread_count_does_not_change_logits() {
    let model = Model::load(fixture_dir().join("model.gguf")).unwrap();
    let seq = &sequences()[1];
    let run = |threads: usize| {
        lingqiao_pool::ThreadPool::new(threads).install(|| {
            let mut cache = model.new_cache(256);
            model.forward(&mut cache, &seq.ids, Logits::All).unwrap()
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

#[test]
fn errors_instead_of_panics() {
    let model = Model::load(fixture_dir().join("model.gguf")).unwrap();
    let mut cache = model.new_cache(4);
    assert!(model.forward(&mut cache, &[], Logits::Last).is_err());
    assert!(model.forward(&mut cache, &[100_000], Logits::Last).is_err());
    assert!(
        model
            .forward(&mut cache, &[1, 2, 3, 4, 5], Logits::Last)
            .is_err()
    );
    assert_eq!(cache.n_past, 0);
}

#[test]
fn forward_into_a_reused_buffer_equals_forward() {
    // A buffer left longer (a prompt's every-token logits), of equal length (the previous
    // decoded token's) or empty must all end up holding exactly `forward`'s logits: the
    // reused allocation is not cleared, so every element has to be written.
    let model = Model::load(fixture_dir().join("model.gguf")).unwrap();
    let seq = sequences().into_iter().max_by_key(|s| s.ids.len()).unwrap();
    let (prompt, rest) = seq.ids.split_at(seq.ids.len() / 2);
    let mut a = model.new_cache(256);
    let mut b = model.new_cache(256);
    let mut buf = Vec::new();
    model
        .forward_into(&mut a, prompt, Logits::All, &mut buf)
        .unwrap();
    assert_eq!(buf, model.forward(&mut b, prompt, Logits::All).unwrap());
    // Poison what stays allocated, so a row the product skipped would show.
    buf.iter_mut().for_each(|v| *v = f32::NAN);
    for &id in rest {
        model
            .forward_into(&mut a, &[id], Logits::Last, &mut buf)
            .unwrap();
        let want = model.forward(&mut b, &[id], Logits::Last).unwrap();
        assert_eq!(buf, want, "token {id}");
        buf.iter_mut().for_each(|v| *v = f32::NAN);
    }
    // An error leaves the buffer empty rather than holding stale logits.
    assert!(
        model
            .forward_into(&mut a, &[], Logits::Last, &mut buf)
            .is_err()
    );
    assert!(buf.is_empty());
}
