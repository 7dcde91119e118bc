//! tokenizer.json + tokenizer_config.json -> `tokenizer.*` metadata.
//!
//! Two kinds of Hugging Face BPE tokenizers are carried over:
//! - byte-level BPE (a `ByteLevel` pre-tokenizer: llama3, qwen2, SmolLM, GPT-2) becomes
//!   `tokenizer.ggml.model = "gpt2"` with its merges. llama.cpp picks
//!   `tokenizer.ggml.pre` by hashing the tokens of a fixed text; we match the
//!   pre-tokenizer's own description instead (the split regex text, or the Digits +
//!   ByteLevel pair) against the ones our tokenizer implements, and refuse the rest.
//! - byte-fallback BPE without a byte-level pre-tokenizer (Gemma's SentencePiece-style
//!   tokenizer.json) becomes `"llama"` (SentencePiece): `<0xXX>` tokens typed BYTE and
//!   scores that reproduce the merge order (see [`spm_scores`]).

use std::collections::HashMap;
use std::path::Path;

use lingqiao_gguf::{Array, GgufWriter, Value, keys};
use serde_json::Value as Json;

use crate::ImportError;

// llama.cpp token types
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The tokenizer as it will be written.
#[derive(Debug)]
pub(crate) struct Vocab {
    pub model: &'static str,
    pub pre: Option<&'static str>,
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    pub scores: Option<Vec<f32>>,
    pub merges: Option<Vec<String>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    /// (name, template); the unnamed one is `tokenizer.chat_template`.
    pub chat_templates: Vec<(Option<String>, String)>,
}

fn tok_err(why: impl Into<String>) -> ImportError {
    ImportError::Tokenizer(why.into())
}

/// Every pre-tokenizer in order (a `Sequence` flattened).
fn flatten<'a>(pt: &'a Json, out: &mut Vec<&'a Json>) {
    match pt.get("type").and_then(Json::as_str) {
        Some("Sequence") => {
            for p in pt
                .get("pretokenizers")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                flatten(p, out);
            }
        }
        Some(_) => out.push(pt),
        None => {}
    }
}

fn pre_type(pt: &Json) -> Result<&'static str, ImportError> {
    let mut parts = Vec::new();
    flatten(pt, &mut parts);
    fn ty(p: &Json) -> &str {
        p.get("type").and_then(Json::as_str).unwrap_or("")
    }
    let flag =
        |p: &Json, k: &str, default: bool| p.get(k).and_then(Json::as_bool).unwrap_or(default);
    let found = match parts.as_slice() {
        [split, bl]
            if ty(split) == "Split" && ty(bl) == "ByteLevel" && !flag(bl, "use_regex", true) =>
        {
            match split.pointer("/pattern/Regex").and_then(Json::as_str) {
                Some(LLAMA3_SPLIT) => Some("llama-bpe"),
                Some(QWEN2_SPLIT) => Some("qwen2"),
                _ => None,
            }
        }
        [digits, bl]
            if ty(digits) == "Digits"
                && flag(digits, "individual_digits", false)
                && ty(bl) == "ByteLevel"
                && flag(bl, "use_regex", true) =>
        {
            Some("smollm")
        }
        [bl] if ty(bl) == "ByteLevel" && flag(bl, "use_regex", true) => Some("gpt-2"),
        _ => None,
    };
    found.ok_or_else(|| {
        let mut s = pt.to_string();
        if s.len() > 400 {
            let mut cut = 400;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        ImportError::UnknownPreTokenizer { found: s }
    })
}

fn is_byte_token(t: &str) -> bool {
    t.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && t[3..5].bytes().all(|b| b.is_ascii_hexdigit())
}

/// llama.cpp's SentencePiece tokenizer merges the adjacent pair whose concatenation has
/// the highest score; HF's BPE merges by rank. A merge result scored `-rank` (first
/// merge highest) makes the two agree. (llama.cpp's own converter writes -1000 for every
/// token of such a tokenizer.json, which leaves the merge order to chance.)
fn spm_scores(tokens: &[String], merges: &[(String, String)]) -> Vec<f32> {
    let id: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut scores = vec![0.0f32; tokens.len()];
    let mut set = vec![false; tokens.len()];
    for (rank, (a, b)) in merges.iter().enumerate() {
        if let Some(&i) = id.get(format!("{a}{b}").as_str())
            && !set[i]
        {
            scores[i] = -(rank as f32) - 1.0;
            set[i] = true;
        }
    }
    scores
}

/// A special token named in tokenizer_config.json: a string or `{"content": ...}`.
fn config_token<'a>(tc: &'a Json, key: &str) -> Option<&'a str> {
    let v = tc.get(key)?;
    v.as_str()
        .or_else(|| v.get("content").and_then(Json::as_str))
}

/// add_bos/add_eos implied by a `TemplateProcessing` post-processor, alone or inside a
/// `Sequence` (llama3's tokenizer_config.json has no add_bos_token; its tokenizer.json
/// adds BOS this way).
fn post_processor_adds(tj: &Json) -> (Option<bool>, Option<bool>) {
    let pp = tj.get("post_processor").unwrap_or(&Json::Null);
    let template = std::iter::once(pp)
        .chain(
            pp.get("processors")
                .and_then(Json::as_array)
                .into_iter()
                .flatten(),
        )
        .find(|p| p.get("type").and_then(Json::as_str) == Some("TemplateProcessing"));
    let Some(single) = template
        .and_then(|t| t.get("single"))
        .and_then(Json::as_array)
    else {
        return (None, None);
    };
    let special = |v: Option<&Json>| v.is_some_and(|v| v.get("SpecialToken").is_some());
    (Some(special(single.first())), Some(special(single.last())))
}

fn chat_templates(dir: &Path, tc: &Json) -> Result<Vec<(Option<String>, String)>, ImportError> {
    match tc.get("chat_template") {
        Some(Json::String(s)) => return Ok(vec![(None, s.clone())]),
        Some(Json::Array(list)) => {
            let mut out = Vec::new();
            for t in list {
                let (Some(name), Some(tmpl)) = (
                    t.get("name").and_then(Json::as_str),
                    t.get("template").and_then(Json::as_str),
                ) else {
                    return Err(tok_err("chat_template list entries need name and template"));
                };
                let name = (name != "default").then(|| name.to_string());
                out.push((name, tmpl.to_string()));
            }
            return Ok(out);
        }
        _ => {}
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        let s = std::fs::read_to_string(&jinja).map_err(|source| ImportError::Io {
            path: jinja,
            source,
        })?;
        return Ok(vec![(None, s)]);
    }
    Ok(Vec::new())
}

impl Vocab {
    pub(crate) fn load(dir: &Path, config: &Json) -> Result<Vocab, ImportError> {
        let tj_path = dir.join("tokenizer.json");
        if !tj_path.is_file() {
            return Err(ImportError::MissingFile {
                path: tj_path,
                what: if dir.join("tokenizer.model").is_file() {
                    "tokenizer.json (a tokenizer.model alone, SentencePiece's protobuf, is not read)"
                } else {
                    "tokenizer.json"
                },
            });
        }
        let tj = crate::read_json(&tj_path)?;
        let tc_path = dir.join("tokenizer_config.json");
        let tc = if tc_path.is_file() {
            crate::read_json(&tc_path)?
        } else {
            Json::Null
        };
        let model = tj
            .get("model")
            .ok_or_else(|| tok_err("tokenizer.json has no model"))?;
        if model.get("type").and_then(Json::as_str) != Some("BPE") {
            return Err(tok_err(format!(
                "model type {} (only BPE tokenizers are imported)",
                model.get("type").unwrap_or(&Json::Null)
            )));
        }

        // id -> (text, type); the model's vocab first, then added tokens over it
        let mut by_id: HashMap<u32, (String, i32)> = HashMap::new();
        let vocab = model
            .get("vocab")
            .and_then(Json::as_object)
            .ok_or_else(|| tok_err("model.vocab is not an object"))?;
        let as_id = |v: &Json| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n < 1 << 24)
        };
        for (t, id) in vocab {
            let id = as_id(id).ok_or_else(|| tok_err(format!("bad id for {t:?}")))?;
            by_id.insert(id, (t.clone(), NORMAL));
        }
        for a in tj
            .get("added_tokens")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(t)) = (
                a.get("id").and_then(as_id),
                a.get("content").and_then(Json::as_str),
            ) else {
                return Err(tok_err("added_tokens entry without id or content"));
            };
            let special = a.get("special").and_then(Json::as_bool).unwrap_or(false);
            by_id.insert(
                id,
                (t.to_string(), if special { CONTROL } else { USER_DEFINED }),
            );
        }
        let n = by_id.keys().max().map_or(0, |&m| m as usize + 1);
        let mut tokens = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        for i in 0..n as u32 {
            let (t, ty) = by_id
                .remove(&i)
                .unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED));
            tokens.push(t);
            types.push(ty);
        }

        let merges: Vec<(String, String)> = model
            .get("merges")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .map(|m| match m {
                Json::String(s) => s
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                Json::Array(p) => match p.as_slice() {
                    [Json::String(a), Json::String(b)] => Some((a.clone(), b.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| tok_err("a merge is neither \"a b\" nor [a, b]"))?;

        let mut parts = Vec::new();
        flatten(tj.get("pre_tokenizer").unwrap_or(&Json::Null), &mut parts);
        let byte_level = parts
            .iter()
            .any(|p| p.get("type").and_then(Json::as_str) == Some("ByteLevel"));
        let byte_fallback = model
            .get("byte_fallback")
            .and_then(Json::as_bool)
            .unwrap_or(false);

        let mut v = if byte_level {
            let pre = pre_type(tj.get("pre_tokenizer").unwrap_or(&Json::Null))?;
            Vocab {
                model: "gpt2",
                pre: Some(pre),
                merges: Some(merges.iter().map(|(a, b)| format!("{a} {b}")).collect()),
                scores: None,
                add_space_prefix: None,
                ..Vocab::empty(tokens, types)
            }
        } else if byte_fallback {
            let unk = model.get("unk_token").and_then(Json::as_str);
            for (t, ty) in tokens.iter().zip(types.iter_mut()) {
                if *ty == NORMAL && is_byte_token(t) {
                    *ty = BYTE;
                } else if Some(t.as_str()) == unk {
                    *ty = UNKNOWN;
                }
            }
            // SentencePiece adds a leading "▁" only through a Prepend normalizer.
            let prepend = tj
                .get("normalizer")
                .is_some_and(|n| n.to_string().contains(r#""type":"Prepend""#));
            Vocab {
                model: "llama",
                pre: None,
                scores: Some(spm_scores(&tokens, &merges)),
                merges: None,
                add_space_prefix: Some(prepend),
                ..Vocab::empty(tokens, types)
            }
        } else {
            return Err(tok_err(
                "BPE without a ByteLevel pre-tokenizer or byte_fallback is not supported",
            ));
        };
        if v.model == "llama" {
            v.unk = model
                .get("unk_token")
                .and_then(Json::as_str)
                .and_then(|t| v.id(t));
        }

        let find = |key: &str, fallback: &str| -> Option<u32> {
            match config_token(&tc, key) {
                Some(t) => v.id(t),
                None => config
                    .get(fallback)
                    .and_then(|x| x.as_array().and_then(|a| a.first()).or(Some(x)))
                    .and_then(Json::as_u64)
                    .and_then(|n| u32::try_from(n).ok()),
            }
        };
        let (bos, eos, pad) = (
            find("bos_token", "bos_token_id"),
            find("eos_token", "eos_token_id"),
            find("pad_token", "pad_token_id"),
        );
        (v.bos, v.eos, v.pad) = (bos, eos, pad);
        if let Some(t) = config_token(&tc, "unk_token") {
            v.unk = v.id(t).or(v.unk);
        }
        let (pp_bos, pp_eos) = post_processor_adds(&tj);
        v.add_bos = tc.get("add_bos_token").and_then(Json::as_bool).or(pp_bos);
        v.add_eos = tc.get("add_eos_token").and_then(Json::as_bool).or(pp_eos);
        v.chat_templates = chat_templates(dir, &tc)?;
        Ok(v)
    }

    fn empty(tokens: Vec<String>, types: Vec<i32>) -> Vocab {
        Vocab {
            model: "",
            pre: None,
            tokens,
            types,
            scores: None,
            merges: None,
            bos: None,
            eos: None,
            unk: None,
            pad: None,
            add_bos: None,
            add_eos: None,
            add_space_prefix: None,
            chat_templates: Vec::new(),
        }
    }

    fn id(&self, text: &str) -> Option<u32> {
        self.tokens.iter().position(|t| t == text).map(|i| i as u32)
    }

    /// Grow to `n` tokens with unused `[PADi]` entries (the embedding has more rows than
    /// the tokenizer has tokens, as llama.cpp's converter does for gpt2 vocabularies).
    pub(crate) fn pad_to(&mut self, n: usize) {
        for i in self.tokens.len()..n {
            self.tokens.push(format!("[PAD{i}]"));
            self.types.push(UNUSED);
            if let Some(s) = &mut self.scores {
                s.push(0.0);
            }
        }
    }

    pub(crate) fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        self.types.truncate(n);
        if let Some(s) = &mut self.scores {
            s.truncate(n);
        }
    }

    pub(crate) fn write(&self, w: &mut GgufWriter) -> Result<(), ImportError> {
        w.set(keys::TOKENIZER_MODEL, Value::String(self.model.into()))?;
        if let Some(p) = self.pre {
            w.set(keys::TOKENIZER_PRE, Value::String(p.into()))?;
        }
        w.set(
            keys::TOKENIZER_TOKENS,
            Value::Array(Array::String(self.tokens.clone())),
        )?;
        if let Some(s) = &self.scores {
            w.set(keys::TOKENIZER_SCORES, Value::Array(Array::F32(s.clone())))?;
        }
        w.set(
            keys::TOKENIZER_TOKEN_TYPE,
            Value::Array(Array::I32(self.types.clone())),
        )?;
        if let Some(m) = &self.merges {
            w.set(
                keys::TOKENIZER_MERGES,
                Value::Array(Array::String(m.clone())),
            )?;
        }
        let n = self.tokens.len() as u32;
        for (key, id) in [
            (keys::TOKENIZER_BOS_ID, self.bos),
            (keys::TOKENIZER_EOS_ID, self.eos),
            (keys::TOKENIZER_UNK_ID, self.unk),
            (keys::TOKENIZER_PAD_ID, self.pad),
        ] {
            if let Some(id) = id.filter(|&i| i < n) {
                w.set(key, Value::U32(id))?;
            }
        }
        for (key, flag) in [
            (keys::TOKENIZER_ADD_BOS, self.add_bos),
            (keys::TOKENIZER_ADD_EOS, self.add_eos),
            (keys::TOKENIZER_ADD_SPACE_PREFIX, self.add_space_prefix),
        ] {
            if let Some(f) = flag {
                w.set(key, Value::Bool(f))?;
            }
        }
        for (name, t) in &self.chat_templates {
            let key = match name {
                None => keys::TOKENIZER_CHAT_TEMPLATE.to_string(),
                Some(n) => format!("{}.{n}", keys::TOKENIZER_CHAT_TEMPLATE),
            };
            w.set(key, Value::String(t.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_are_recognised() {
        assert!(is_byte_token("<0x0A>"));
        assert!(is_byte_token("<0xff>"));
        assert!(!is_byte_token("<0xZZ>"));
        assert!(!is_byte_token("<0x0A"));
    }

    #[test]
    fn bos_from_a_template_post_processor_in_a_sequence() {
        let tj = serde_json::json!({"post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel"},
            {"type": "TemplateProcessing", "single": [
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}]}]}});
        assert_eq!(post_processor_adds(&tj), (Some(true), Some(false)));
        assert_eq!(post_processor_adds(&serde_json::json!({})), (None, None));
    }

    #[test]
    fn an_unknown_split_regex_is_refused() {
        let pt = serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"},
            {"type": "ByteLevel", "use_regex": false}]});
        assert!(matches!(
            pre_type(&pt),
            Err(ImportError::UnknownPreTokenizer { .. })
        ));
    }
}
