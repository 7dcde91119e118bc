//! The plain-data description of a vocabulary (what GGUF's `tokenizer.*` keys hold), and
//! llama.cpp's per-model defaults for what a file leaves out.

use std::borrow::Cow;

use crate::error::TokenizerError;
use crate::pretok::PreSplit;

/// Everything needed to build a [`crate::Tokenizer`], as read from `tokenizer.ggml.*`.
/// `None` means the key is absent, so llama.cpp's default for the model type applies.
#[derive(Clone, Debug, Default)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub scores: Option<Vec<f32>>,
    /// llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    pub token_types: Option<Vec<i32>>,
    /// "left right" pairs, highest priority first.
    pub merges: Option<Vec<String>>,
    pub ids: SpecialIds,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    /// `general.name`, used only for llama.cpp's per-model token attribute fixes.
    pub name: Option<String>,
}

impl TokenizerSpec {
    /// Reads the `tokenizer.*` keys of a GGUF file (what [`crate::Tokenizer::from_gguf`]
    /// uses), e.g. to adjust them before [`crate::Tokenizer::from_spec`].
    pub fn from_gguf(meta: &lingqiao_gguf::Metadata) -> Result<TokenizerSpec, TokenizerError> {
        Ok(crate::gguf::spec_ref_from_metadata(meta)?.into_spec())
    }
}

/// A [`TokenizerSpec`] that borrows its strings: building from GGUF metadata through it
/// copies no per-token or per-merge string (a 262k vocab's copies alone are ~15 MB).
pub(crate) struct SpecRef<'a> {
    pub(crate) model: &'a str,
    pub(crate) pre: Option<&'a str>,
    pub(crate) tokens: &'a [String],
    pub(crate) scores: Option<Cow<'a, [f32]>>,
    pub(crate) token_types: Option<&'a [i32]>,
    pub(crate) merges: Option<&'a [String]>,
    pub(crate) ids: SpecialIds,
    pub(crate) add_bos: Option<bool>,
    pub(crate) add_eos: Option<bool>,
    pub(crate) add_space_prefix: Option<bool>,
    pub(crate) name: Option<&'a str>,
}

impl SpecRef<'_> {
    /// The owned spec (copies the strings; scores already converted are moved, not copied).
    pub(crate) fn into_spec(self) -> TokenizerSpec {
        TokenizerSpec {
            model: self.model.to_string(),
            pre: self.pre.map(str::to_string),
            tokens: self.tokens.to_vec(),
            scores: self.scores.map(Cow::into_owned),
            token_types: self.token_types.map(<[i32]>::to_vec),
            merges: self.merges.map(<[String]>::to_vec),
            ids: self.ids.clone(),
            add_bos: self.add_bos,
            add_eos: self.add_eos,
            add_space_prefix: self.add_space_prefix,
            name: self.name.map(str::to_string),
        }
    }
}

impl TokenizerSpec {
    /// Borrows the strings; the scores move (they are kept by the tokenizer).
    pub(crate) fn as_spec_ref(&mut self) -> SpecRef<'_> {
        SpecRef {
            model: &self.model,
            pre: self.pre.as_deref(),
            tokens: &self.tokens,
            scores: self.scores.take().map(Cow::Owned),
            token_types: self.token_types.as_deref(),
            merges: self.merges.as_deref(),
            ids: self.ids.clone(),
            add_bos: self.add_bos,
            add_eos: self.add_eos,
            add_space_prefix: self.add_space_prefix,
            name: self.name.as_deref(),
        }
    }
}

/// Special token ids as stored in the file (may be out of range; that is checked later).
#[derive(Clone, Debug, Default)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// What a BPE pre-tokenizer name implies (llama.cpp `llama_vocab::impl::load`).
pub(crate) struct PreInfo {
    pub(crate) split: PreSplit,
    pub(crate) clean_spaces: bool,
    pub(crate) ignore_merges: bool,
    pub(crate) add_bos: bool,
    pub(crate) no_bos: bool,
}

/// Pre types llama.cpp knows but whose regexes are not implemented here.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "deepseek-llm",
    "deepseek-coder",
    "deepseek-v3",
    "spark2_5",
    "youtu",
    "falcon",
    "jais-2",
    "gemma4",
    "granite-embed-multi-311m",
    "sarvam-moe",
    "whitespace",
    "qwen35",
    "poro-chat",
    "viking",
    "tekken",
    "bloom",
    "gpt3-finnish",
    "exaone-moe",
    "chameleon",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "granite-embed-multi-97m",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan-dense",
    "hy_v4",
    "joyai-llm",
    "kimi-k2",
    "ufakzeka",
    "afmoe",
    "laguna",
    "minimax-m2",
    "minicpm5",
];

pub(crate) fn bpe_pre_info(pre: Option<&str>) -> Result<PreInfo, TokenizerError> {
    let info = |split, clean_spaces| PreInfo {
        split,
        clean_spaces,
        ignore_merges: false,
        add_bos: false,
        no_bos: false,
    };
    use PreSplit::*;
    // A missing pre type falls back to "default" in llama.cpp (with a loud warning).
    let Some(pre) = pre.filter(|p| !p.is_empty()) else {
        return Ok(info(Default, true));
    };
    Ok(match pre {
        "default" => info(Default, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreInfo {
            ignore_merges: true,
            add_bos: true,
            ..info(Llama3, true)
        },
        "dbrx" | "smaug-bpe" => info(Llama3, true),
        "chatglm-bpe" => PreInfo {
            no_bos: true,
            ..info(Llama3, true)
        },
        "glm4" | "glm5" => PreInfo {
            no_bos: true,
            ignore_merges: true,
            ..info(Llama3, true)
        },
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4"
        | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => info(Gpt2, true),
        "trillion" | "granite-docling" => info(Gpt2, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            info(Starcoder, true)
        }
        "command-r" | "smollm" => info(Starcoder, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
        | "grok-2" => info(Qwen2, false),
        "megrez" | "stablelm2" => info(Qwen2, true),
        p if KNOWN_UNSUPPORTED.contains(&p) => {
            return Err(TokenizerError::UnsupportedPreTokenizer(p.to_string()));
        }
        p => return Err(TokenizerError::UnknownPreTokenizer(p.to_string())),
    })
}
