//! Our tokenizer as llguidance sees it: a token trie over each token's bytes, and a
//! tokenize function for the literals of a grammar.

use std::sync::Arc;

use lingqiao_tokenizer::Tokenizer;
use llguidance::ParserFactory;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::ConstrainError;

/// A model's vocabulary prepared for constrained decoding: llguidance's token trie and
/// its parser factory (which precomputes per-vocabulary tables once). Built once per
/// model; cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct Vocab {
    pub(crate) inner: Arc<VocabInner>,
}

pub(crate) struct VocabInner {
    pub(crate) factory: ParserFactory,
    pub(crate) n_vocab: usize,
    pub(crate) eog: Vec<u32>,
    /// The ids whose bytes are exactly `<tool_call>` / `</tool_call>`, when the
    /// vocabulary has them as single tokens (Qwen2.5's does), and whether they are
    /// control tokens (then a grammar must name them as special tokens, not as text).
    pub(crate) tool_call_tokens: Option<(bool, bool)>,
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocab")
            .field("n_vocab", &self.inner.n_vocab)
            .field("eog", &self.inner.eog)
            .finish()
    }
}

/// llguidance's view of the tokenizer.
struct Env {
    trie: TokTrie,
    /// Canonical tokenization of forced text; without it, none (greedy over the trie,
    /// and llguidance told it is not canonical).
    tokenizer: Option<Arc<Tokenizer>>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match (&self.tokenizer, std::str::from_utf8(s)) {
            // grammar literals are text: a literal spelling a control token stays text
            (Some(tok), Ok(text)) => tok.encode(text, false, false),
            // a partial UTF-8 sequence cannot go through `encode`: bytes through the trie
            _ => self.trie.greedy_tokenize(s),
        }
    }

    fn tokenize_is_canonical(&self) -> bool {
        self.tokenizer.is_some()
    }
}

/// The bytes llguidance matches a token against, as llama.cpp's llguidance integration
/// gives them: the token's text; a control token (empty text unless rendered as special)
/// is its special rendering behind toktrie's 0xFF marker, so no grammar text can produce
/// it by accident.
fn token_bytes(tok: &Tokenizer, id: u32) -> Vec<u8> {
    let text = tok.token_to_piece(id, false);
    if !text.is_empty() {
        return text;
    }
    let special = tok.token_to_piece(id, true);
    if special.is_empty() {
        return special;
    }
    let mut bytes = Vec::with_capacity(special.len() + 1);
    bytes.push(TokTrie::SPECIAL_TOKEN_MARKER);
    bytes.extend_from_slice(&special);
    bytes
}

/// The tokenizer a [`Vocab`] is built from: borrowed (`&Tokenizer`) or shared
/// (`&Arc<Tokenizer>`, `Arc<Tokenizer>`), which [`Vocab::new`] keeps to tokenize grammar
/// literals canonically.
pub enum TokenizerSource<'a> {
    Borrowed(&'a Tokenizer),
    Shared(Arc<Tokenizer>),
}

impl<'a> From<&'a Tokenizer> for TokenizerSource<'a> {
    fn from(tok: &'a Tokenizer) -> Self {
        TokenizerSource::Borrowed(tok)
    }
}

impl<'a> From<&'a Arc<Tokenizer>> for TokenizerSource<'a> {
    fn from(tok: &'a Arc<Tokenizer>) -> Self {
        TokenizerSource::Shared(tok.clone())
    }
}

impl From<Arc<Tokenizer>> for TokenizerSource<'static> {
    fn from(tok: Arc<Tokenizer>) -> Self {
        TokenizerSource::Shared(tok)
    }
}

impl Vocab {
    /// Builds the vocabulary of a tokenizer (`&Tokenizer`, `&Arc<Tokenizer>` or
    /// `Arc<Tokenizer>`).
    ///
    /// Given a shared tokenizer, the vocabulary keeps it, and llguidance tokenizes the
    /// text a grammar forces (`{"name": ` when `name` is the first required property) with
    /// it, as llama.cpp's integration does: where the output is forced, only its canonical
    /// tokens are allowed (`{"` as one token, not `{` then `"`), which keeps the model on
    /// the tokenizations it was trained on. Given `&Tokenizer`, which it cannot keep, it
    /// has no canonical tokenization and allows every tokenization of forced text; the
    /// outputs are valid either way.
    pub fn new<'a>(tok: impl Into<TokenizerSource<'a>>) -> Result<Vocab, ConstrainError> {
        match tok.into() {
            TokenizerSource::Borrowed(tok) => Self::build(tok, None),
            TokenizerSource::Shared(tok) => Self::build(&tok.clone(), Some(tok)),
        }
    }

    fn build(tok: &Tokenizer, shared: Option<Arc<Tokenizer>>) -> Result<Vocab, ConstrainError> {
        let n_vocab = tok.n_vocab();
        let eog = tok.eog_ids();
        let Some(&first_eog) = eog.first() else {
            return Err(ConstrainError::Invalid(
                "the vocabulary has no end-of-generation token".into(),
            ));
        };
        let words: Vec<Vec<u8>> = (0..n_vocab as u32).map(|id| token_bytes(tok, id)).collect();
        let info = TokRxInfo {
            vocab_size: n_vocab as u32,
            tok_eos: first_eog,
            tok_bos: tok.bos(),
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: None,
        };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eog);
        let tool_call_tokens = match (tok.token_id("<tool_call>"), tok.token_id("</tool_call>")) {
            (Some(open), Some(close)) => Some((tok.is_control(open), tok.is_control(close))),
            _ => None,
        };
        let env: TokEnv = Arc::new(Env {
            trie,
            tokenizer: shared,
        });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| ConstrainError::Internal(format!("llguidance: {e}")))?;
        // errors are returned to the caller; nothing goes to stderr
        factory.quiet();
        Ok(Vocab {
            inner: Arc::new(VocabInner {
                factory,
                n_vocab,
                eog,
                tool_call_tokens,
            }),
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.inner.n_vocab
    }

    /// The end-of-generation tokens, allowed exactly where an output may end.
    pub fn eog_ids(&self) -> &[u32] {
        &self.inner.eog
    }
}
