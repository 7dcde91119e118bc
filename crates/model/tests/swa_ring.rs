//! Gemma 3's sliding-window layers keep a ring of `window + N_BATCH` positions instead of the
//! whole context. The ring is a storage change only: logits must be bit-identical to a cache
//! that keeps every position, including after the ring has wrapped several times, and a
//! rewind into overwritten history must be refused (recompute) rather than read stale slots.

mod common;

use lingqiao_model::{Logits, Model, N_BATCH};

fn gemma3() -> Model {
    common::load("gemma-3-270m-q4_k_m.gguf")
}

/// The pseudo-random ids these tests were written with.
fn tokens(n: usize, n_vocab: usize) -> Vec<u32> {
    common::tokens(n, n_vocab, 0x2545_f491_4f6c_dd1d)
}

#[test]
fn ring_equals_full_cache_across_wraps() {
    let model = gemma3();
    let window = model.hp.n_swa;
    assert!(window > 0, "gemma3 has a sliding window");
    let ring = window + N_BATCH;
    // Past two full turns of the ring, fed in uneven batches (and single tokens at the end).
    let n_total = 2 * ring + 100;
    let ids = tokens(n_total, model.hp.n_vocab);
    let mut ringed = model.new_cache(4096);
    let mut full = model.new_cache(4096).without_rings();
    let mut pos = 0;
    let mut steps = 0;
    for len in [300, 511, 64, 700, 1, 2, 600, 1].into_iter().cycle() {
        if pos >= n_total {
            break;
        }
        let len = len.min(n_total - pos).min(N_BATCH);
        let batch = &ids[pos..pos + len];
        let a = model.forward(&mut ringed, batch, Logits::Last).unwrap();
        let b = model.forward(&mut full, batch, Logits::Last).unwrap();
        assert_eq!(a, b, "logits differ after position {}", pos + len);
        pos += len;
        steps += 1;
    }
    assert!(pos == n_total && steps > 5);
    // Sliding layers hold exactly their ring, the others every position.
    let mut n_ring_layers = 0;
    for (il, l) in ringed.layers.iter().enumerate() {
        let slots = l.k.len() / ringed.k_row();
        if model.hp.swa_layers[il] {
            assert_eq!(slots, ring, "layer {il}");
            n_ring_layers += 1;
        } else {
            assert_eq!(slots, n_total, "layer {il}");
        }
    }
    assert!(n_ring_layers > 0);
    assert!(ringed.allocated_bytes() < full.allocated_bytes());

    // Rewinding close to the end keeps the prefix; rewinding into overwritten history
    // clears the cache, and recomputing from there gives the full cache's logits again.
    assert_eq!(ringed.truncate(n_total - 10), n_total - 10);
    assert_eq!(ringed.truncate(window), 0);
    assert_eq!(ringed.n_past, 0);
    full.truncate(0);
    for chunk in ids[..N_BATCH + 40].chunks(N_BATCH) {
        let a = model.forward(&mut ringed, chunk, Logits::Last).unwrap();
        let b = model.forward(&mut full, chunk, Logits::Last).unwrap();
        assert_eq!(a, b);
    }
}
