use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong while importing a Hugging Face model directory.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("{path}: missing ({what})")]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: not a valid safetensors file (truncated or corrupt?): {source}")]
    Safetensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("config.json: {key}: {why}")]
    BadConfig { key: String, why: String },
    #[error("architecture {found:?} is not supported (supported: {supported})")]
    UnsupportedArch { found: String, supported: String },
    #[error("config.json: {what} is not supported: {why}")]
    UnsupportedConfig { what: String, why: String },
    #[error("tensor {name:?}: dtype {dtype} is not supported (F32, F16 and BF16 are)")]
    UnsupportedDtype { name: String, dtype: String },
    #[error("tensor {name:?} is missing from the safetensors files")]
    MissingTensor { name: String },
    #[error("tensor {name:?} has no GGUF name for this architecture")]
    UnexpectedTensor { name: String },
    #[error("tensor {name:?}: shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error(
        "tokenizer.json: pre-tokenizer {found} is not one we recognise (known: the llama3 and \
         qwen2 split regexes, SmolLM's digits + byte-level, GPT-2's byte-level)"
    )]
    UnknownPreTokenizer { found: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("writing GGUF: {0}")]
    Write(#[from] lingqiao_gguf::GgufWriteError),
    #[error("converting a tensor: {0}")]
    Kernel(#[from] lingqiao_kernels::KernelError),
}

pub(crate) fn bad_config(key: &str, why: impl Into<String>) -> ImportError {
    ImportError::BadConfig {
        key: key.to_string(),
        why: why.into(),
    }
}
