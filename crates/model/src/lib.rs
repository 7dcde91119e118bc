//! Model loading and the decoder forward pass.
//!
//! A [`Model`] is immutable once loaded (weights stay in the file's memory map) and can be
//! shared across threads; each sequence owns a [`KvCache`].

pub mod arch;
pub mod config;
mod error;
mod forward;
pub mod kv_cache;
pub mod ops;
pub mod weights;

pub use config::HParams;
pub use error::ModelError;
pub use forward::{Logits, N_BATCH, SeqBatch};
pub use kv_cache::KvCache;

use lingqiao_gguf::GgufFile;
use std::path::Path;
use weights::Weights;

pub struct Model {
    pub file: GgufFile,
    pub hp: HParams,
    pub w: Weights,
}

/// What running a model costs in memory, stated before it runs.
#[derive(Clone, Copy, Debug)]
pub struct MemoryEstimate {
    /// Weight bytes read from the memory map (shared with the page cache).
    pub weights: usize,
    /// F16 KV cache at the full context.
    pub kv_cache: usize,
    /// Activation buffers for a batch of [`N_BATCH`] tokens, plus one row of logits.
    pub compute: usize,
}

impl MemoryEstimate {
    pub fn total(&self) -> usize {
        self.weights + self.kv_cache + self.compute
    }
}

impl Model {
    /// Read a GGUF file into memory (huge pages where the kernel gives them, see
    /// [`GgufFile::open_resident`]) and validate every tensor the architecture needs.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        Self::from_gguf(GgufFile::open_resident(path)?)
    }

    /// As [`Model::load`] but weights stay in a read-only map of the file: less start-up
    /// time and shared page cache between processes, at 4 KiB-page read speed.
    pub fn load_mapped(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        Self::from_gguf(GgufFile::open(path)?)
    }

    pub fn from_gguf(file: GgufFile) -> Result<Model, ModelError> {
        let hp = HParams::from_gguf(&file)?;
        let w = Weights::load(&file, &hp)?;
        Ok(Model { file, hp, w })
    }

    /// A cache for `n_ctx` positions (at most the training context).
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        KvCache::new(&self.hp, n_ctx.clamp(1, self.hp.n_ctx_train.max(1)))
    }

    pub fn memory_estimate(&self, n_ctx: usize) -> MemoryEstimate {
        let hp = &self.hp;
        let batch = N_BATCH.min(n_ctx);
        let per_token = 3 * hp.n_embd
            + hp.n_head * hp.head_dim
            + 2 * hp.n_head_kv * hp.head_dim
            + hp.n_head * hp.head_dim_v
            + 2 * hp.n_ff;
        MemoryEstimate {
            weights: self.w.mapped_bytes(),
            kv_cache: self.new_cache(n_ctx).bytes_for(n_ctx),
            compute: (batch * per_token + hp.n_vocab) * 4,
        }
    }
}
