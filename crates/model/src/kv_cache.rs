//! The KV cache: F16 keys and values per layer, position-major
//! (`k[pos][n_head_kv * head_dim]`), as llama.cpp's default cache type.
//!
//! It grows with use rather than being allocated for the whole context up front, so a
//! short chat with a long-context model costs only what it uses.
//!
//! Sliding-window layers (Gemma 3's local layers) keep only a ring of `window + N_BATCH`
//! positions: a batch's first token needs the `window - 1` positions before it, and the
//! batch itself adds up to `N_BATCH`. Position `p` lives in slot `p % ring`.

use crate::config::HParams;
use crate::forward::N_BATCH;
use half::f16;

pub struct LayerCache {
    pub k: Vec<f16>, // (slots, n_head_kv * head_dim)
    pub v: Vec<f16>, // (slots, n_head_kv * head_dim_v)
    /// Slots of a sliding-window layer's ring; `None` for a layer that keeps every position.
    pub ring: Option<usize>,
}

impl LayerCache {
    /// The slot holding position `pos`.
    #[inline]
    pub fn slot(&self, pos: usize) -> usize {
        match self.ring {
            Some(r) => pos % r,
            None => pos,
        }
    }
}

pub struct KvCache {
    pub layers: Vec<LayerCache>,
    /// Positions held so far: the next token goes at position `n_past`.
    pub n_past: usize,
    /// Capacity in positions.
    pub n_ctx: usize,
    k_row: usize,
    v_row: usize,
    /// The sliding window (0 if no layer has one).
    window: usize,
    /// Highest position ever written since the last clear, plus one: ring slots below
    /// `high - ring` have been overwritten.
    high: usize,
}

impl KvCache {
    pub fn new(hp: &HParams, n_ctx: usize) -> KvCache {
        KvCache {
            layers: (0..hp.n_layer)
                .map(|il| LayerCache {
                    k: Vec::new(),
                    v: Vec::new(),
                    ring: (hp.swa_layers[il] && hp.n_swa > 0)
                        .then_some(hp.n_swa + N_BATCH)
                        .filter(|&r| r < n_ctx),
                })
                .collect(),
            n_past: 0,
            n_ctx,
            k_row: hp.n_head_kv * hp.head_dim,
            v_row: hp.n_head_kv * hp.head_dim_v,
            window: hp.n_swa,
            high: 0,
        }
    }

    /// The same cache with every layer keeping every position: for checking the rings, and
    /// for callers that must rewind to any position without recomputing.
    pub fn without_rings(mut self) -> KvCache {
        assert_eq!(self.high, 0, "without_rings on a cache in use");
        self.layers.iter_mut().for_each(|l| l.ring = None);
        self
    }

    /// Make room for positions up to `n_pos` (exclusive) in every layer.
    pub(crate) fn reserve(&mut self, n_pos: usize) {
        self.high = self.high.max(n_pos);
        for l in &mut self.layers {
            let slots = l.ring.map_or(n_pos, |r| n_pos.min(r));
            if l.k.len() < slots * self.k_row {
                l.k.resize(slots * self.k_row, f16::ZERO);
                l.v.resize(slots * self.v_row, f16::ZERO);
            }
        }
    }

    /// Forget everything from position `pos` on (e.g. to reuse a shared prefix), and return
    /// the number of positions kept. That is `pos` unless a sliding-window ring has since
    /// overwritten part of the window position `pos` needs; then the cache is cleared and
    /// the prefix must be recomputed (0 is returned).
    pub fn truncate(&mut self, pos: usize) -> usize {
        let pos = self.n_past.min(pos);
        let ring = self.layers.iter().filter_map(|l| l.ring).min();
        if let Some(ring) = ring {
            // Position `pos` attends to `pos + 1 - window ..= pos`; the ring still holds
            // `high - ring ..`.
            let needed = (pos + 1).saturating_sub(self.window);
            if pos > 0 && needed < self.high.saturating_sub(ring) {
                self.clear();
                return 0;
            }
        }
        self.n_past = pos;
        pos
    }

    pub fn clear(&mut self) {
        self.n_past = 0;
        self.high = 0;
    }

    /// Bytes the cache holds once it has `n_pos` positions.
    pub fn bytes_for(&self, n_pos: usize) -> usize {
        self.layers
            .iter()
            .map(|l| l.ring.map_or(n_pos, |r| n_pos.min(r)) * (self.k_row + self.v_row) * 2)
            .sum()
    }

    /// Bytes currently allocated.
    pub fn allocated_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.k.capacity() + l.v.capacity()) * 2)
            .sum()
    }

    pub fn k_row(&self) -> usize {
        self.k_row
    }

    pub fn v_row(&self) -> usize {
        self.v_row
    }
}
