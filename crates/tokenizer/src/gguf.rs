//! Reading a [`TokenizerSpec`] from GGUF `tokenizer.*` metadata.

use lingqiao_gguf::{Array, Metadata, Value, keys};

use crate::error::TokenizerError;
use crate::spec::{SpecialIds, TokenizerSpec};

pub(crate) fn spec_from_metadata(meta: &Metadata) -> Result<TokenizerSpec, TokenizerError> {
    let strs = |key: &str| -> Result<Option<Vec<String>>, TokenizerError> {
        if meta.get(key).is_none() {
            return Ok(None);
        }
        Ok(Some(meta.get_str_array(key)?.to_vec()))
    };
    // llama.cpp accepts f32 or i32 scores
    let scores = match meta.get(keys::TOKENIZER_SCORES) {
        None => None,
        Some(Value::Array(Array::I32(v))) => Some(v.iter().map(|&x| x as f32).collect()),
        Some(_) => Some(meta.get_f32_array(keys::TOKENIZER_SCORES)?.to_vec()),
    };
    let token_types = match meta.get(keys::TOKENIZER_TOKEN_TYPE) {
        None => None,
        Some(_) => Some(meta.get_i32_array(keys::TOKENIZER_TOKEN_TYPE)?.to_vec()),
    };
    let id = |key: &str| meta.opt_u32(key);
    Ok(TokenizerSpec {
        model: meta.get_str(keys::TOKENIZER_MODEL)?.to_string(),
        pre: meta.opt_str(keys::TOKENIZER_PRE)?.map(str::to_string),
        tokens: meta.get_str_array(keys::TOKENIZER_TOKENS)?.to_vec(),
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
        name: meta.opt_str("general.name")?.map(str::to_string),
    })
}
