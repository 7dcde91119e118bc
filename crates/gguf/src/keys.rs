//! Metadata key names, as written by llama.cpp's converters (gguf-py `Keys`).
//!
//! Model code reads metadata through these names instead of scattering string literals.
//! Per-architecture keys are a suffix joined to the architecture name with [`arch`]:
//! `arch("qwen2", CONTEXT_LENGTH)` is `"qwen2.context_length"`.

/// Joins an architecture name and a per-architecture suffix: `"qwen2.context_length"`.
pub fn arch(arch: &str, suffix: &str) -> String {
    format!("{arch}.{suffix}")
}

// general.*
pub const GENERAL_ARCHITECTURE: &str = "general.architecture";
pub const GENERAL_TYPE: &str = "general.type";
pub const GENERAL_QUANTIZATION_VERSION: &str = "general.quantization_version";
pub const GENERAL_ALIGNMENT: &str = "general.alignment";
pub const GENERAL_FILE_TYPE: &str = "general.file_type";
pub const GENERAL_NAME: &str = "general.name";
pub const GENERAL_AUTHOR: &str = "general.author";
pub const GENERAL_VERSION: &str = "general.version";
pub const GENERAL_ORGANIZATION: &str = "general.organization";
pub const GENERAL_FINETUNE: &str = "general.finetune";
pub const GENERAL_BASENAME: &str = "general.basename";
pub const GENERAL_DESCRIPTION: &str = "general.description";
pub const GENERAL_QUANTIZED_BY: &str = "general.quantized_by";
pub const GENERAL_SIZE_LABEL: &str = "general.size_label";
pub const GENERAL_LICENSE: &str = "general.license";
pub const GENERAL_LICENSE_NAME: &str = "general.license.name";
pub const GENERAL_LICENSE_LINK: &str = "general.license.link";
pub const GENERAL_URL: &str = "general.url";
pub const GENERAL_REPO_URL: &str = "general.repo_url";
pub const GENERAL_TAGS: &str = "general.tags";
pub const GENERAL_LANGUAGES: &str = "general.languages";

// tokenizer.*
pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
pub const TOKENIZER_PRE: &str = "tokenizer.ggml.pre";
pub const TOKENIZER_TOKENS: &str = "tokenizer.ggml.tokens";
pub const TOKENIZER_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const TOKENIZER_SCORES: &str = "tokenizer.ggml.scores";
pub const TOKENIZER_MERGES: &str = "tokenizer.ggml.merges";
pub const TOKENIZER_BOS_ID: &str = "tokenizer.ggml.bos_token_id";
pub const TOKENIZER_EOS_ID: &str = "tokenizer.ggml.eos_token_id";
pub const TOKENIZER_EOT_ID: &str = "tokenizer.ggml.eot_token_id";
pub const TOKENIZER_EOM_ID: &str = "tokenizer.ggml.eom_token_id";
pub const TOKENIZER_UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
/// Spelled "seperator" in the format, by llama.cpp.
pub const TOKENIZER_SEP_ID: &str = "tokenizer.ggml.seperator_token_id";
pub const TOKENIZER_PAD_ID: &str = "tokenizer.ggml.padding_token_id";
pub const TOKENIZER_MASK_ID: &str = "tokenizer.ggml.mask_token_id";
pub const TOKENIZER_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
pub const TOKENIZER_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
pub const TOKENIZER_ADD_SEP: &str = "tokenizer.ggml.add_sep_token";
pub const TOKENIZER_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
pub const TOKENIZER_REMOVE_EXTRA_WS: &str = "tokenizer.ggml.remove_extra_whitespaces";
pub const TOKENIZER_PRECOMPILED_CHARSMAP: &str = "tokenizer.ggml.precompiled_charsmap";
pub const TOKENIZER_FIM_PRE_ID: &str = "tokenizer.ggml.fim_pre_token_id";
pub const TOKENIZER_FIM_SUF_ID: &str = "tokenizer.ggml.fim_suf_token_id";
pub const TOKENIZER_FIM_MID_ID: &str = "tokenizer.ggml.fim_mid_token_id";
pub const TOKENIZER_FIM_PAD_ID: &str = "tokenizer.ggml.fim_pad_token_id";
pub const TOKENIZER_FIM_REP_ID: &str = "tokenizer.ggml.fim_rep_token_id";
pub const TOKENIZER_FIM_SEP_ID: &str = "tokenizer.ggml.fim_sep_token_id";
pub const TOKENIZER_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

// Per-architecture suffixes: use with `arch(name, SUFFIX)`.
pub const VOCAB_SIZE: &str = "vocab_size";
pub const CONTEXT_LENGTH: &str = "context_length";
pub const EMBEDDING_LENGTH: &str = "embedding_length";
pub const BLOCK_COUNT: &str = "block_count";
pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
pub const USE_PARALLEL_RESIDUAL: &str = "use_parallel_residual";
pub const EXPERT_COUNT: &str = "expert_count";
pub const EXPERT_USED_COUNT: &str = "expert_used_count";
pub const LOGIT_SCALE: &str = "logit_scale";
pub const EMBEDDING_SCALE: &str = "embedding_scale";
pub const RESIDUAL_SCALE: &str = "residual_scale";
pub const ATTN_LOGIT_SOFTCAPPING: &str = "attn_logit_softcapping";
pub const FINAL_LOGIT_SOFTCAPPING: &str = "final_logit_softcapping";
pub const ATTENTION_HEAD_COUNT: &str = "attention.head_count";
pub const ATTENTION_HEAD_COUNT_KV: &str = "attention.head_count_kv";
pub const ATTENTION_KEY_LENGTH: &str = "attention.key_length";
pub const ATTENTION_VALUE_LENGTH: &str = "attention.value_length";
pub const ATTENTION_LAYERNORM_EPS: &str = "attention.layer_norm_epsilon";
pub const ATTENTION_LAYERNORM_RMS_EPS: &str = "attention.layer_norm_rms_epsilon";
pub const ATTENTION_CAUSAL: &str = "attention.causal";
pub const ATTENTION_SLIDING_WINDOW: &str = "attention.sliding_window";
pub const ATTENTION_SLIDING_WINDOW_PATTERN: &str = "attention.sliding_window_pattern";
pub const ATTENTION_SCALE: &str = "attention.scale";
pub const ATTENTION_SHARED_KV_LAYERS: &str = "attention.shared_kv_layers";
pub const ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";
pub const ROPE_DIMENSION_SECTIONS: &str = "rope.dimension_sections";
pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
pub const ROPE_FREQ_BASE_SWA: &str = "rope.freq_base_swa";
pub const ROPE_SCALING_TYPE: &str = "rope.scaling.type";
pub const ROPE_SCALING_FACTOR: &str = "rope.scaling.factor";
pub const ROPE_SCALING_ATTN_FACTOR: &str = "rope.scaling.attn_factor";
pub const ROPE_SCALING_ORIG_CTX_LEN: &str = "rope.scaling.original_context_length";
pub const ROPE_SCALING_FINETUNED: &str = "rope.scaling.finetuned";
pub const ROPE_SCALING_YARN_LOG_MUL: &str = "rope.scaling.yarn_log_multiplier";

#[cfg(test)]
mod tests {
    #[test]
    fn arch_joins_with_a_dot() {
        assert_eq!(
            super::arch("qwen2", super::CONTEXT_LENGTH),
            "qwen2.context_length"
        );
        assert_eq!(
            super::arch("gemma3", super::ATTENTION_SLIDING_WINDOW),
            "gemma3.attention.sliding_window"
        );
    }
}
