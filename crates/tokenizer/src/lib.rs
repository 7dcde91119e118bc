//! BPE and SentencePiece tokenizers built from GGUF metadata, reproducing llama.cpp's
//! `llama_tokenize`, `llama_token_to_piece` and `llama_detokenize` id for id.
//!
//! Supported: `tokenizer.ggml.model = "gpt2"` (byte-level BPE) with the gpt2, starcoder
//! (smollm, ...), llama3 (llama-bpe, ...), qwen2 (qwen2, deepseek-r1-qwen, ...) and default
//! pre-tokenizers, and `"llama"` (SentencePiece with byte fallback, e.g. Gemma 3).
//! Other models or pre types are an error naming them, never a silent fallback.

mod attr;
mod bpe;
mod decode;
mod error;
mod gguf;
mod load;
mod pretok;
mod spec;
mod special;
mod spm;
mod unicode;
mod vocab;

use rustc_hash::FxHashSet as HashSet;

pub use decode::StreamDecoder;
pub use error::TokenizerError;
pub use spec::{SpecialIds, TokenizerSpec};

use crate::bpe::Merges;
use crate::pretok::PreSplit;
use crate::special::Fragment;
use crate::vocab::{Pieces, Vocab};

/// A tokenizer for one model's vocabulary. Cheap to share (`&Tokenizer` is all any
/// method needs).
pub struct Tokenizer {
    kind: Kind,
    /// Token texts and the lookup by text.
    vocab: Vocab,
    scores: Vec<f32>,
    attrs: Vec<u16>,
    /// `token_to_piece(id, special = true)` for every id.
    pieces: Pieces,
    special: special::SpecialMatcher,
    bos: Option<u32>,
    eos: Option<u32>,
    eog: HashSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

enum Kind {
    Bpe {
        split: PreSplit,
        merges: Merges,
        ignore_merges: bool,
        /// GPT-2 byte -> char encoding of the raw text.
        byte_chars: Box<[char; 256]>,
    },
    Spm,
}

impl Tokenizer {
    /// Builds the tokenizer of a GGUF file from its `tokenizer.*` metadata.
    pub fn from_gguf(meta: &lingqiao_gguf::Metadata) -> Result<Tokenizer, TokenizerError> {
        load::build(gguf::spec_ref_from_metadata(meta)?)
    }

    /// Builds a tokenizer from plain vocabulary data (what [`Tokenizer::from_gguf`] reads).
    pub fn from_spec(mut spec: TokenizerSpec) -> Result<Tokenizer, TokenizerError> {
        load::build(spec.as_spec_ref())
    }

    /// Text -> token ids, as `llama_tokenize(vocab, text, add_special, parse_special)`.
    ///
    /// `add_special` adds BOS/EOS as the model asks (`add_bos()`, `add_eos()`);
    /// `parse_special` lets text spelling a control token (e.g. `<|im_start|>`) become
    /// that token. User-defined tokens are matched either way, as in llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let fragments = self
            .special
            .partition(text, parse_special, &self.vocab, &self.attrs);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            // llama.cpp asserts a BOS exists when add_bos is set; a file without one
            // simply gets none here.
            out.extend(self.bos);
        }
        match &self.kind {
            Kind::Spm => {
                // A space is prefixed to text at the start and after every special token.
                let mut prev_special = true;
                for frag in fragments {
                    match frag {
                        Fragment::Text(r) => {
                            let mut s = String::with_capacity(r.len() + 3);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(&text[r]);
                            let s = s.replace(' ', "\u{2581}");
                            spm::tokenize(
                                &s,
                                |t| self.vocab.id(t),
                                |id| self.scores.get(id as usize).copied().unwrap_or(0.0),
                                |b| self.spm_byte_token(b),
                                &mut out,
                            );
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Kind::Bpe { .. } => {
                for frag in fragments {
                    match frag {
                        Fragment::Text(r) => self.bpe_tokenize(&text[r], &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    fn bpe_tokenize(&self, text: &str, out: &mut Vec<u32>) {
        let Kind::Bpe {
            split,
            merges,
            ignore_merges,
            byte_chars,
        } = &self.kind
        else {
            return;
        };
        let lookup = |t: &str| self.vocab.id(t);
        let mut word = String::new();
        let mut syms = Vec::new();
        for range in pretok::split(text, *split) {
            word.clear();
            for b in text[range].bytes() {
                word.push(byte_chars[b as usize]);
            }
            if *ignore_merges && let Some(id) = lookup(&word) {
                out.push(id);
                continue;
            }
            syms.clear();
            bpe::merge_word(&word, merges, lookup, &mut syms);
            for &(a, b) in &syms {
                let piece = &word[a..b];
                match lookup(piece) {
                    Some(id) => out.push(id),
                    // llama.cpp then looks each byte of the encoded piece up as a one-byte
                    // string, which finds only ASCII.
                    None => out.extend(
                        piece
                            .bytes()
                            .filter(u8::is_ascii)
                            .filter_map(|c| lookup(char::from(c).encode_utf8(&mut [0; 4]))),
                    ),
                }
            }
        }
    }

    /// `llama_vocab::byte_to_token` for SentencePiece: `<0xNN>`, else the byte itself.
    fn spm_byte_token(&self, b: u8) -> Option<u32> {
        let hex = format!("<0x{b:02X}>");
        self.vocab.id(&hex).or_else(|| {
            std::str::from_utf8(&[b])
                .ok()
                .and_then(|s| self.vocab.id(s))
        })
    }

    /// The bytes of one token, as `llama_token_to_piece(vocab, id, buf, len, 0, special)`:
    /// control and unknown tokens are empty unless `special`. May be part of a UTF-8 char.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Vec<u8> {
        self.piece(id, special).to_vec()
    }

    /// Token ids -> text, as `llama_detokenize(vocab, ids, .., remove_special = false,
    /// unparse_special = special)`, with invalid UTF-8 replaced by U+FFFD.
    ///
    /// Lossless (`decode(encode(x, false, false), false) == x`) whenever llama.cpp's is:
    /// no space prefix and no `clean_spaces` (true for smollm, qwen2 and Gemma 3 vocabs).
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        decode::detokenize(self, ids, special)
    }

    /// An incremental decoder for generated tokens.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// End of generation: EOS, EOT, EOM and the tokens llama.cpp adds to `special_eog_ids`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.eog.iter().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Exact vocabulary lookup of a token's raw text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    /// The raw vocabulary string of a token (GPT-2 byte-encoded for BPE vocabs).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.get(id)
    }

    /// True for control tokens (`llama_vocab_is_control`).
    pub fn is_control(&self, id: u32) -> bool {
        self.attr(id) & attr::CONTROL != 0
    }

    fn attr(&self, id: u32) -> u16 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }

    fn piece(&self, id: u32, special: bool) -> &[u8] {
        // control and unknown tokens render only when asked for
        if !special && self.attr(id) & (attr::CONTROL | attr::UNKNOWN) != 0 {
            return &[];
        }
        self.pieces.get(id)
    }
}
