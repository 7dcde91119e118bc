use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum EvalError {
    #[error(
        "the text has {n_tokens} tokens; perplexity with a context of {n_ctx} needs at least \
         {needed} (2 x context, as llama-perplexity): use a longer text or a smaller -c"
    )]
    TooFewTokens {
        n_tokens: usize,
        n_ctx: usize,
        needed: usize,
    },
    #[error("context {n_ctx} is too small: at least 4 tokens are needed to score half a chunk")]
    ContextTooSmall { n_ctx: usize },
    #[error("context {n_ctx} exceeds the model's training context of {n_ctx_train}")]
    ContextTooLarge { n_ctx: usize, n_ctx_train: usize },
    #[error("batch size must be at least 1")]
    ZeroBatch,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a lingqiao logits file ({why})")]
    NotLogitsFile { path: PathBuf, why: String },
    #[error("{path}: truncated: {found} bytes, the header promises {expected}")]
    Truncated {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("the base logits do not match this run: {0}")]
    BaseMismatch(String),
    #[error(transparent)]
    Model(#[from] lingqiao_model::ModelError),
}

impl EvalError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> EvalError {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
