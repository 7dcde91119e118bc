//! The KV cache: F16 keys and values per layer, position-major
//! (`k[pos][n_head_kv * head_dim]`), as llama.cpp's default cache type.
//!
//! It grows with use rather than being allocated for the whole context up front, so a
//! short chat with a long-context model costs only what it uses.

use crate::config::HParams;
use half::f16;

pub struct LayerCache {
    pub k: Vec<f16>, // (n_pos, n_head_kv * head_dim)
    pub v: Vec<f16>, // (n_pos, n_head_kv * head_dim_v)
}

pub struct KvCache {
    pub layers: Vec<LayerCache>,
    /// Positions held so far: the next token goes at position `n_past`.
    pub n_past: usize,
    /// Capacity in positions.
    pub n_ctx: usize,
    k_row: usize,
    v_row: usize,
}

impl KvCache {
    pub fn new(hp: &HParams, n_ctx: usize) -> KvCache {
        KvCache {
            layers: (0..hp.n_layer)
                .map(|_| LayerCache {
                    k: Vec::new(),
                    v: Vec::new(),
                })
                .collect(),
            n_past: 0,
            n_ctx,
            k_row: hp.n_head_kv * hp.head_dim,
            v_row: hp.n_head_kv * hp.head_dim_v,
        }
    }

    /// Make room for positions up to `n_pos` (exclusive) in every layer.
    pub(crate) fn reserve(&mut self, n_pos: usize) {
        for l in &mut self.layers {
            if l.k.len() < n_pos * self.k_row {
                l.k.resize(n_pos * self.k_row, f16::ZERO);
                l.v.resize(n_pos * self.v_row, f16::ZERO);
            }
        }
    }

    /// Forget everything from position `pos` on (e.g. to reuse a shared prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.n_past = self.n_past.min(pos);
    }

    pub fn clear(&mut self) {
        self.n_past = 0;
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
