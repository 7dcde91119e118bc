//! A fingerprint of every bit of a model's logits: a prompt of 40 fixed tokens in one
//! forward pass (all rows), then 60 tokens decoded greedily one at a time, on 1 and 2
//! threads. Two builds that print the same hashes computed the same logits, bit for bit:
//! the check behind changes to the forward pass that must not change any result.
//!
//! Run: `cargo run --release -p lingqiao-model --example logits_hash -- MODEL.gguf...`

use lingqiao_model::{Logits, Model};

/// FNV-1a over the bits of `v`, continuing from `h`.
fn fnv(mut h: u64, v: &[f32]) -> u64 {
    for x in v {
        for b in x.to_bits().to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn main() {
    for path in std::env::args().skip(1) {
        let model = Model::load(&path).expect("loading the model");
        for threads in [1, 2] {
            let pool = lingqiao_pool::ThreadPool::new(threads);
            let h = pool.install(|| {
                let mut cache = model.new_cache(256);
                let prompt: Vec<u32> = (0..40u32)
                    .map(|i| (i * 7919 + 13) % model.hp.n_vocab as u32)
                    .collect();
                let mut logits = model
                    .forward(&mut cache, &prompt, Logits::All)
                    .expect("prompt");
                let mut h = fnv(0xcbf2_9ce4_8422_2325, &logits);
                let mut tok = argmax(&logits[logits.len() - model.hp.n_vocab..]);
                for _ in 0..60 {
                    model
                        .forward_into(&mut cache, &[tok], Logits::Last, &mut logits)
                        .expect("decode");
                    h = fnv(h, &logits);
                    tok = argmax(&logits);
                }
                h
            });
            println!("{path} threads {threads}: {h:016x}");
        }
    }
}
