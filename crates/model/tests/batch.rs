//! Continuous batching runs several sequences in one forward pass. Each sequence's results
//! must be bit for bit those it gets alone: prompts of tile length next to single decode
//! tokens, sequences at different positions, sliding-window rings (gemma3), every output
//! kind. This is what lets the server promise that a request's tokens do not depend on
//! what else is running.

mod common;

use common::{load, tokens};
use lingqiao_model::{Logits, Model, SeqBatch};

/// Steps of three sequences: (tokens per sequence this step, output kind), where 0 tokens
/// means the sequence sits the step out.
fn schedule() -> Vec<([usize; 3], [Logits; 3])> {
    use Logits::*;
    vec![
        ([40, 3, 0], [Last, All, None]),
        ([1, 1, 25], [Last, Last, None]),
        ([1, 9, 1], [All, Last, Hidden]),
        ([1, 1, 1], [Last, Last, Last]),
        ([30, 1, 1], [All, Last, Last]),
    ]
}

fn check(model: &Model) {
    let n_vocab = model.hp.n_vocab;
    let ids: Vec<Vec<u32>> = (0..3).map(|i| tokens(200, n_vocab, 7 + i)).collect();
    // Alone: each sequence on its own cache, with the same chunks.
    let mut alone: Vec<Vec<Vec<f32>>> = vec![Vec::new(); 3];
    for (i, seq_ids) in ids.iter().enumerate() {
        let mut cache = model.new_cache(1024);
        let mut at = 0;
        for (lens, outs) in schedule() {
            if lens[i] == 0 {
                continue;
            }
            let mut one = [SeqBatch {
                cache: &mut cache,
                tokens: &seq_ids[at..at + lens[i]],
                output: outs[i],
            }];
            alone[i].push(model.forward_batch(&mut one).unwrap().remove(0));
            at += lens[i];
        }
    }
    // Together.
    let mut caches: Vec<_> = (0..3).map(|_| model.new_cache(1024)).collect();
    let mut at = [0usize; 3];
    let mut step_of = [0usize; 3];
    for (lens, outs) in schedule() {
        let mut batch = Vec::new();
        let mut who = Vec::new();
        for (i, cache) in caches.iter_mut().enumerate() {
            if lens[i] == 0 {
                continue;
            }
            batch.push(SeqBatch {
                cache,
                tokens: &ids[i][at[i]..at[i] + lens[i]],
                output: outs[i],
            });
            who.push(i);
            at[i] += lens[i];
        }
        let got = model.forward_batch(&mut batch).unwrap();
        for (r, &i) in got.iter().zip(&who) {
            let want = &alone[i][step_of[i]];
            assert_eq!(r.len(), want.len(), "sequence {i} step {}", step_of[i]);
            let same = r.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "sequence {i} step {}: batched differs from alone",
                step_of[i]
            );
            step_of[i] += 1;
        }
    }
}

#[test]
fn smollm2_batched_sequences_equal_each_alone() {
    check(&load("SmolLM2-135M-Instruct.Q4_1.gguf"));
}

#[test]
fn gemma3_batched_sequences_equal_each_alone() {
    check(&load("gemma-3-270m-q4_k_m.gguf"));
}
