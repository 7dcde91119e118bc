//! Architectures as data: one decoder ([`crate::forward`]) is driven by a spec per
//! architecture. Adding an architecture means adding a row here (and, if it names its
//! tensors differently, a name map), not copying a model file.

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]): ggml's GGML_ROPE_TYPE_NORM (llama; the converter
    /// permutes the Q/K weights of Hugging Face checkpoints to fit it).
    Norm,
    /// Halves (x[i], x[i + n_rot/2]): ggml's GGML_ROPE_TYPE_NEOX (qwen2, qwen3, gemma3).
    Neox,
}

/// The gated feed-forward's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// silu(gate) * up
    SiluGlu,
    /// gelu_tanh(gate) * up, with ggml's f16 lookup table (GGML_GELU_FP16).
    GeluGlu,
}

/// Where the attention scale 1/sqrt(d) is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnScale {
    /// On the scores, as `kq_scale` (llama, qwen).
    OnScores,
    /// On Q before the dot products, with kq_scale 1 (gemma3, as llama.cpp does it).
    OnQuery,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArchSpec {
    /// `general.architecture`.
    pub name: &'static str,
    pub rope: RopeStyle,
    /// Per-head RMS norm of Q and K before RoPE (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// RMS norms after attention and after the FFN, before the residual adds.
    pub post_norms: bool,
    pub activation: Activation,
    /// Multiply the token embeddings by sqrt(n_embd).
    pub embd_scale: bool,
    pub attn_scale: AttnScale,
    /// Interleaved sliding-window layers: every `n`th layer is global, the rest use the
    /// window (only when the file gives `attention.sliding_window`).
    pub swa_pattern: Option<usize>,
    /// RoPE base of the sliding-window layers when the file does not give one.
    pub rope_freq_base_swa: Option<f32>,
}

const LLAMA: ArchSpec = ArchSpec {
    name: "llama",
    rope: RopeStyle::Norm,
    qk_norm: false,
    post_norms: false,
    activation: Activation::SiluGlu,
    embd_scale: false,
    attn_scale: AttnScale::OnScores,
    swa_pattern: None,
    rope_freq_base_swa: None,
};

pub const SPECS: &[ArchSpec] = &[
    LLAMA,
    ArchSpec {
        name: "qwen2",
        rope: RopeStyle::Neox,
        ..LLAMA
    },
    ArchSpec {
        name: "qwen3",
        rope: RopeStyle::Neox,
        qk_norm: true,
        ..LLAMA
    },
    ArchSpec {
        name: "gemma3",
        rope: RopeStyle::Neox,
        qk_norm: true,
        post_norms: true,
        activation: Activation::GeluGlu,
        embd_scale: true,
        attn_scale: AttnScale::OnQuery,
        swa_pattern: Some(6),
        rope_freq_base_swa: Some(10_000.0),
    },
];

/// The spec for `general.architecture`, if supported.
pub fn spec_for(arch: &str) -> Option<&'static ArchSpec> {
    SPECS.iter().find(|s| s.name == arch)
}

/// Names of the supported architectures, for error messages.
pub fn supported() -> Vec<&'static str> {
    SPECS.iter().map(|s| s.name).collect()
}
