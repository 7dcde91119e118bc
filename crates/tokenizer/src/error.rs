//! The tokenizer's error type: everything a malformed or unsupported GGUF vocabulary can
//! cause. Encoding and decoding themselves never fail.

use lingqiao_gguf::GgufError;

#[derive(thiserror::Error, Debug)]
pub enum TokenizerError {
    #[error("tokenizer metadata: {0}")]
    Metadata(#[from] GgufError),
    #[error(
        "unsupported tokenizer model {0:?} (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)"
    )]
    UnsupportedModel(String),
    #[error("unknown pre-tokenizer type {0:?}")]
    UnknownPreTokenizer(String),
    #[error("pre-tokenizer {0:?} is known to llama.cpp but not implemented here")]
    UnsupportedPreTokenizer(String),
    #[error("vocabulary is empty")]
    EmptyVocab,
    #[error("{what} has {found} entries for a vocabulary of {n_vocab} tokens")]
    LengthMismatch {
        what: &'static str,
        found: usize,
        n_vocab: usize,
    },
    #[error("duplicate token text {text:?} at ids {first} and {second}")]
    DuplicateToken {
        text: String,
        first: u32,
        second: u32,
    },
    #[error("vocabulary of {0} tokens does not fit in u32 ids")]
    VocabTooLarge(usize),
    #[error("{what} of the vocabulary total {bytes} bytes, more than their u32 offsets reach")]
    VocabBytesTooLarge { what: &'static str, bytes: usize },
    #[error("{what} token id {id} is required but missing or out of range")]
    MissingSpecial { what: &'static str, id: i64 },
}
