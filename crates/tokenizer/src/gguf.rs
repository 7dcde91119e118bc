//! Reading a [`TokenizerSpec`] from GGUF `tokenizer.*` metadata.

use std::borrow::Cow;

use lingqiao_gguf::{Array, Metadata, Value, keys};

use crate::error::TokenizerError;
use crate::spec::{SpecRef, SpecialIds};

/// The `tokenizer.*` keys, borrowed from `meta` (only integer scores are converted).
pub(crate) fn spec_ref_from_metadata(meta: &Metadata) -> Result<SpecRef<'_>, TokenizerError> {
    let strs = |key: &str| -> Result<Option<&[String]>, TokenizerError> {
        if meta.get(key).is_none() {
            return Ok(None);
        }
        Ok(Some(meta.get_str_array(key)?))
    };
    // llama.cpp accepts f32 or i32 scores
    let scores = match meta.get(keys::TOKENIZER_SCORES) {
        None => None,
        Some(Value::Array(Array::I32(v))) => {
            Some(Cow::Owned(v.iter().map(|&x| x as f32).collect()))
        }
        Some(_) => Some(Cow::Borrowed(meta.get_f32_array(keys::TOKENIZER_SCORES)?)),
    };
    let token_types = match meta.get(keys::TOKENIZER_TOKEN_TYPE) {
        None => None,
        Some(_) => Some(meta.get_i32_array(keys::TOKENIZER_TOKEN_TYPE)?),
    };
    let id = |key: &str| meta.opt_u32(key);
    Ok(SpecRef {
        model: meta.get_str(keys::TOKENIZER_MODEL)?,
        pre: meta.opt_str(keys::TOKENIZER_PRE)?,
        tokens: meta.get_str_array(keys::TOKENIZER_TOKENS)?,
        scores,
        token_types,
        merges: strs(keys::TOKENIZER_MERGES)?,
        ids: SpecialIds {
            bos: id(keys::TOKENIZER_BOS_ID)?,
            eos: id(keys::TOKENIZER_EOS_ID)?,
            eot: id(keys::TOKENIZER_EOT_ID)?,
            eom: id(keys::TOKENIZER_EOM_ID)?,
            unk: id(keys::TOKENIZER_UNK_ID)?,
            sep: id(keys::TOKENIZER_SEP_ID)?,
            pad: id(keys::TOKENIZER_PAD_ID)?,
            mask: id(keys::TOKENIZER_MASK_ID)?,
            fim_pre: id(keys::TOKENIZER_FIM_PRE_ID)?,
            fim_suf: id(keys::TOKENIZER_FIM_SUF_ID)?,
            fim_mid: id(keys::TOKENIZER_FIM_MID_ID)?,
            fim_pad: id(keys::TOKENIZER_FIM_PAD_ID)?,
            fim_rep: id(keys::TOKENIZER_FIM_REP_ID)?,
            fim_sep: id(keys::TOKENIZER_FIM_SEP_ID)?,
        },
        add_bos: meta.opt_bool(keys::TOKENIZER_ADD_BOS)?,
        add_eos: meta.opt_bool(keys::TOKENIZER_ADD_EOS)?,
        add_space_prefix: meta.opt_bool(keys::TOKENIZER_ADD_SPACE_PREFIX)?,
        name: meta.opt_str("general.name")?,
    })
}
