//! Per-architecture data: which Hugging Face class maps to which GGUF architecture, how
//! its tensors are named on both sides, and which transformations llama.cpp's converter
//! (convert_hf_to_gguf.py, conversion/{llama,qwen,gemma}.py) applies.

/// One supported architecture.
#[derive(Debug)]
pub(crate) struct ArchMap {
    /// `architectures[0]` in config.json.
    pub hf_class: &'static str,
    /// `general.architecture`.
    pub gguf: &'static str,
    /// Reorder Q/K rows from HF's rotate-half RoPE to ggml's adjacent-pair RoPE
    /// (`LlamaModel.permute`): llama only, the others use NEOX RoPE on both sides.
    pub permute_qk: bool,
    /// Added to every `*norm.weight`: Gemma3RMSNorm computes x * (1 + w), llama.cpp x * w.
    pub norm_shift: f32,
    /// Write `{arch}.rope.dimension_count` (llama's converter does).
    pub rope_dim_key: bool,
    /// Drop embedding rows past the tokenizer's vocabulary (gemma3's converter does)
    /// instead of padding the vocabulary up to the embedding.
    pub trim_vocab: bool,
    /// Per-layer modules: HF name after `model.layers.N.` (without `.weight`/`.bias`)
    /// and the GGUF name after `blk.N.`. Every `.weight` is required; a `.bias` is
    /// carried over when present.
    pub layer: &'static [(&'static str, &'static str)],
}

const ATTN: [(&str, &str); 5] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
];

const LLAMA_LAYER: &[(&str, &str)] = &[
    ATTN[0],
    ATTN[1],
    ATTN[2],
    ATTN[3],
    ATTN[4],
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

const QWEN3_LAYER: &[(&str, &str)] = &[
    ATTN[0],
    ATTN[1],
    ATTN[2],
    ATTN[3],
    ATTN[4],
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Gemma3 names its norms by position: `post_attention_layernorm` is the norm after
/// attention (not the FFN's input norm as in llama), `pre_feedforward_layernorm` is.
const GEMMA3_LAYER: &[(&str, &str)] = &[
    ATTN[0],
    ATTN[1],
    ATTN[2],
    ATTN[3],
    ATTN[4],
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("post_attention_layernorm", "post_attention_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("post_feedforward_layernorm", "post_ffw_norm"),
];

const LLAMA: ArchMap = ArchMap {
    hf_class: "LlamaForCausalLM",
    gguf: "llama",
    permute_qk: true,
    norm_shift: 0.0,
    rope_dim_key: true,
    trim_vocab: false,
    layer: LLAMA_LAYER,
};

pub(crate) const ARCHES: &[ArchMap] = &[
    LLAMA,
    ArchMap {
        hf_class: "Qwen2ForCausalLM",
        gguf: "qwen2",
        permute_qk: false,
        rope_dim_key: false,
        ..LLAMA
    },
    ArchMap {
        hf_class: "Qwen3ForCausalLM",
        gguf: "qwen3",
        permute_qk: false,
        rope_dim_key: false,
        layer: QWEN3_LAYER,
        ..LLAMA
    },
    ArchMap {
        hf_class: "Gemma3ForCausalLM",
        gguf: "gemma3",
        permute_qk: false,
        norm_shift: 1.0,
        rope_dim_key: false,
        trim_vocab: true,
        layer: GEMMA3_LAYER,
    },
];

/// Tensors outside the layers: (HF name, GGUF name).
pub(crate) const TOKEN_EMBD: (&str, &str) = ("model.embed_tokens.weight", "token_embd.weight");
pub(crate) const OUTPUT_NORM: (&str, &str) = ("model.norm.weight", "output_norm.weight");
pub(crate) const OUTPUT: (&str, &str) = ("lm_head.weight", "output.weight");

/// HF tensors that carry no weights llama.cpp uses (recomputed at run time).
pub(crate) fn ignored(hf_name: &str) -> bool {
    hf_name.ends_with("rotary_emb.inv_freq")
}

pub(crate) fn by_hf_class(class: &str) -> Option<&'static ArchMap> {
    ARCHES.iter().find(|a| a.hf_class == class)
}

pub(crate) fn supported() -> String {
    ARCHES
        .iter()
        .map(|a| a.hf_class)
        .collect::<Vec<_>>()
        .join(", ")
}
