//! How good is a model on a text, and how far has a smaller copy of it drifted?
//!
//! [`perplexity`] reproduces llama.cpp's `llama-perplexity` (tools/perplexity/perplexity.cpp,
//! functions `perplexity` and `kl_divergence`): the tokenized text is cut into fixed chunks
//! of `n_ctx` tokens, each evaluated from an empty KV cache (its first token replaced by BOS
//! when the model adds one), and only the second half of each chunk is scored, so every
//! scored token has at least `n_ctx/2` tokens of context. The same pass can save the
//! scored log-probabilities ([`LogitsWriter`]) or compare them with saved ones
//! ([`BaseLogits`]), giving the KL divergence, top-token agreement and perplexity ratio of
//! a quantized model against its original.

mod error;
mod logits_file;
mod perplexity;
mod row;
mod stats;

pub use error::EvalError;
pub use logits_file::{BaseLogits, LogitsHeader, LogitsWriter};
pub use perplexity::{
    ChunkProgress, PerplexityOptions, PerplexityReport, perplexity, tokenize_text,
};
pub use stats::KldReport;
