use lingqiao_gguf::{GgmlType, GgufError};

#[derive(thiserror::Error, Debug)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported architecture {arch:?} (supported: {supported})")]
    UnsupportedArch { arch: String, supported: String },
    #[error("tensor {name} is missing")]
    MissingTensor { name: String },
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        found: Vec<u64>,
        expected: Vec<u64>,
    },
    #[error("tensor {name} has type {ty}, which is not supported here")]
    UnsupportedType { name: String, ty: GgmlType },
    #[error("bad hyperparameter {key}: {why}")]
    BadHparam { key: String, why: String },
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    TokenOutOfRange { id: u32, n_vocab: usize },
    #[error("context full: {needed} positions needed, the context holds {n_ctx}")]
    ContextFull { needed: usize, n_ctx: usize },
    #[error("empty batch")]
    EmptyBatch,
    #[error("a sequence brought {n} tokens to one batch; at most {max} fit")]
    BatchTooLarge { n: usize, max: usize },
    #[error(transparent)]
    Kernel(#[from] lingqiao_kernels::KernelError),
}
