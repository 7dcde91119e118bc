//! Hyperparameters, read from GGUF metadata through typed keys.

use crate::arch::{ArchSpec, spec_for, supported};
use crate::error::ModelError;
use lingqiao_gguf::{Array, GgufFile, Value, keys};

/// Everything the decoder needs to know about a model's shape.
#[derive(Clone, Debug)]
pub struct HParams {
    pub spec: &'static ArchSpec,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head width of Q and K.
    pub head_dim: usize,
    /// Per-head width of V.
    pub head_dim_v: usize,
    pub n_ff: usize,
    /// Dimensions of a head that RoPE rotates (the rest pass through).
    pub n_rot: usize,
    pub rms_eps: f32,
    pub rope_freq_base: f32,
    pub rope_freq_scale: f32,
    pub rope_freq_base_swa: f32,
    /// Sliding-window size, 0 for none.
    pub n_swa: usize,
    /// Per layer: does it use the sliding window?
    pub swa_layers: Vec<bool>,
    /// 1/sqrt(head_dim) (or the file's own), applied as the spec says.
    pub attn_scale: f32,
    pub final_logit_softcap: Option<f32>,
}

fn bad(key: &str, why: impl Into<String>) -> ModelError {
    ModelError::BadHparam {
        key: key.to_string(),
        why: why.into(),
    }
}

/// A count that must be positive and small enough to index memory safely.
fn count(v: u32, key: &str, max: u32) -> Result<usize, ModelError> {
    if v == 0 || v > max {
        return Err(bad(key, format!("{v} is outside 1..={max}")));
    }
    Ok(v as usize)
}

impl HParams {
    pub fn from_gguf(file: &GgufFile) -> Result<HParams, ModelError> {
        let md = file.metadata();
        let arch = md.get_str(keys::GENERAL_ARCHITECTURE)?.to_string();
        let spec = spec_for(&arch).ok_or_else(|| ModelError::UnsupportedArch {
            arch: arch.clone(),
            supported: supported().join(", "),
        })?;
        let k = |suffix: &str| keys::arch(&arch, suffix);

        let n_embd = count(
            md.get_u32(&k(keys::EMBEDDING_LENGTH))?,
            "embedding_length",
            1 << 16,
        )?;
        let n_layer = count(md.get_u32(&k(keys::BLOCK_COUNT))?, "block_count", 1024)?;
        let n_ff = count(
            md.get_u32(&k(keys::FEED_FORWARD_LENGTH))?,
            "feed_forward_length",
            1 << 20,
        )?;
        let n_head = count(
            md.get_u32(&k(keys::ATTENTION_HEAD_COUNT))?,
            "head_count",
            1024,
        )?;
        let n_head_kv = match md.opt_u32(&k(keys::ATTENTION_HEAD_COUNT_KV))? {
            Some(v) => count(v, "head_count_kv", 1024)?,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(bad(
                "head_count_kv",
                format!("{n_head} heads do not divide into {n_head_kv} kv heads"),
            ));
        }
        let head_dim = match md.opt_u32(&k(keys::ATTENTION_KEY_LENGTH))? {
            Some(v) => count(v, "key_length", 4096)?,
            None => {
                if n_embd % n_head != 0 {
                    return Err(bad("head_count", "does not divide embedding_length"));
                }
                n_embd / n_head
            }
        };
        let head_dim_v = match md.opt_u32(&k(keys::ATTENTION_VALUE_LENGTH))? {
            Some(v) => count(v, "value_length", 4096)?,
            None => head_dim,
        };
        let n_rot = match md.opt_u32(&k(keys::ROPE_DIMENSION_COUNT))? {
            Some(v) => count(v, "rope.dimension_count", head_dim as u32)?,
            None => head_dim,
        };
        if n_rot % 2 != 0 {
            return Err(bad("rope.dimension_count", "must be even"));
        }
        let n_ctx_train = md.opt_u32(&k(keys::CONTEXT_LENGTH))?.unwrap_or(2048).max(1) as usize;
        let rms_eps = md.get_f32(&k(keys::ATTENTION_LAYERNORM_RMS_EPS))?;
        let rope_freq_base = md.opt_f32(&k(keys::ROPE_FREQ_BASE))?.unwrap_or(10_000.0);
        let rope_freq_scale = match md.opt_f32(&k(keys::ROPE_SCALING_FACTOR))? {
            Some(f) if f > 0.0 => 1.0 / f,
            _ => 1.0,
        };
        let rope_freq_base_swa = md
            .opt_f32(&k(keys::ROPE_FREQ_BASE_SWA))?
            .or(spec.rope_freq_base_swa)
            .unwrap_or(rope_freq_base);

        let n_swa = md.opt_u32(&k(keys::ATTENTION_SLIDING_WINDOW))?.unwrap_or(0) as usize;
        // llama.cpp's load_swa_pattern: a per-layer bool array, or a period n
        // (set_swa_pattern(n): the last layer of each group of n is global; 0: all), or the
        // architecture's default period.
        let pattern_key = k(keys::ATTENTION_SLIDING_WINDOW_PATTERN);
        let swa_layers = match md.get(&pattern_key) {
            Some(Value::Array(Array::Bool(v))) if n_swa > 0 => {
                if v.len() != n_layer {
                    return Err(bad(
                        "attention.sliding_window_pattern",
                        format!("{} entries for {n_layer} layers", v.len()),
                    ));
                }
                v.clone()
            }
            stored => {
                let period = match stored {
                    Some(_) => md.opt_u32(&pattern_key)?.map(|p| p as usize),
                    None => spec.swa_pattern,
                };
                (0..n_layer)
                    .map(|il| match period {
                        Some(0) => n_swa > 0,
                        Some(p) if n_swa > 0 => il % p < p - 1,
                        _ => false,
                    })
                    .collect()
            }
        };
        let final_logit_softcap = md
            .opt_f32(&k(keys::FINAL_LOGIT_SOFTCAPPING))?
            .filter(|v| *v > 0.0);

        let embd = file
            .tensor("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor {
                name: "token_embd.weight".into(),
            })?;
        let n_vocab = embd.ne(1) as usize;
        if n_vocab == 0 || n_vocab > 1 << 24 {
            return Err(bad("token_embd.weight", format!("vocabulary of {n_vocab}")));
        }

        Ok(HParams {
            spec,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_ff,
            n_rot,
            rms_eps,
            rope_freq_base,
            rope_freq_scale,
            rope_freq_base_swa,
            n_swa,
            swa_layers,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            final_logit_softcap,
        })
    }
}
