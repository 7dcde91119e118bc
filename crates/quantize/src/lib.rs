//! `quantize`: rewrite a GGUF model with its weights in another type, choosing each
//! tensor's type as llama-quantize does (the K-quant mixes give the sensitive tensors more
//! bits), without an importance matrix.
//!
//! The input is memory-mapped and converted one tensor at a time (rows split across
//! threads), written through [`lingqiao_gguf::TensorDataWriter`] to `OUT.tmp-<pid>` next to
//! the output, synced, and renamed only when complete: memory stays about one tensor, and
//! an interrupted or failed run leaves no partial `OUT`.

mod plan;
mod run;
mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;

use lingqiao_gguf::{GgmlType, GgufFile};

pub use plan::{TensorPlan, plan_detailed};
pub use run::{cancel, quantize_file, quantize_file_cancellable};
pub use target::{Target, UnknownTarget};

/// How to quantize.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub target: Target,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Every quantizable tensor gets the base type (llama-quantize's `--pure`): no mix.
    pub pure: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// What a run did. Sizes are tensor data (as llama-quantize reports them), not file sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizeReport {
    /// Elements over all tensors.
    pub n_params: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bits per weight over all tensors: `bytes_out * 8 / n_params`.
    pub bpw: f64,
    /// Some input tensors were already quantized and were dequantized first.
    pub requantized: bool,
    /// Output tensor count per type name.
    pub types: BTreeMap<String, usize>,
    pub seconds: f64,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    UnknownTarget(#[from] UnknownTarget),
    #[error("cannot read input {path}: {source}")]
    Input {
        path: PathBuf,
        source: lingqiao_gguf::GgufError,
    },
    #[error("input model: {0}")]
    Metadata(#[from] lingqiao_gguf::GgufError),
    #[error("input and output are the same file: {0}")]
    SameFile(PathBuf),
    #[error("output directory {0} does not exist")]
    OutputDir(PathBuf),
    #[error("{0}")]
    Plan(String),
    #[error("tensor {name:?}: {source}")]
    Kernel {
        name: String,
        source: lingqiao_kernels::KernelError,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: lingqiao_gguf::GgufWriteError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("interrupted; the partial output was removed")]
    Interrupted,
}

/// The type each tensor gets, in output order (llama.cpp's order: see [`plan_detailed`]).
pub fn plan(
    file: &GgufFile,
    opts: &QuantizeOptions,
) -> Result<Vec<(String, GgmlType)>, QuantizeError> {
    Ok(plan_detailed(file, opts)?
        .into_iter()
        .map(|p| (p.name, p.to))
        .collect())
}
