//! config.json -> `{arch}.*` metadata, as llama.cpp's converter writes it
//! (`TextModel.set_gguf_parameters` plus the llama/qwen/gemma3 overrides).

use lingqiao_gguf::{Array, GgufWriter, Value, keys};
use serde_json::Value as Json;

use crate::ImportError;
use crate::arch::ArchMap;
use crate::error::bad_config;

/// The shape of the model as config.json gives it.
#[derive(Clone, Debug)]
pub(crate) struct HfConfig {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// config.json names `head_dim` (then key/value_length are written).
    pub head_dim_given: bool,
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_theta: Option<f32>,
    pub rope_theta_swa: Option<f32>,
    /// Linear RoPE scaling factor (positions divided by it).
    pub rope_linear_factor: Option<f32>,
    pub rope_llama3: Option<Llama3Rope>,
    pub tied: bool,
    pub sliding_window: Option<usize>,
    /// Per layer: sliding-window attention?
    pub swa_layers: Option<Vec<bool>>,
    pub final_logit_softcap: Option<f32>,
}

fn usize_key(c: &Json, key: &str) -> Result<Option<usize>, ImportError> {
    match c.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0 && n < 1 << 31)
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad_config(key, format!("{v} is not a positive integer"))),
    }
}

fn need_usize(c: &Json, key: &str) -> Result<usize, ImportError> {
    usize_key(c, key)?.ok_or_else(|| bad_config(key, "missing"))
}

fn f32_key(c: &Json, key: &str) -> Result<Option<f32>, ImportError> {
    match c.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|x| Some(x as f32))
            .ok_or_else(|| bad_config(key, format!("{v} is not a number"))),
    }
}

/// RoPE parameters: transformers 5's `rope_parameters` (per layer type for gemma3) or
/// the older `rope_theta` / `rope_scaling` / `rope_local_base_freq`.
/// llama3 RoPE scaling (`rope_type: "llama3"`): per-dimension frequency divisors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Llama3Rope {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_ctx: f64,
}

/// (rope_theta, rope_theta of sliding-window layers, linear scaling factor, llama3)
type Rope = (Option<f32>, Option<f32>, Option<f32>, Option<Llama3Rope>);

fn rope(c: &Json) -> Result<Rope, ImportError> {
    let (full, swa_theta) = match c.get("rope_parameters").filter(|v| v.is_object()) {
        Some(p) => match p.get("full_attention") {
            Some(full) => (
                full.clone(),
                f32_key(
                    p.get("sliding_attention").unwrap_or(&Json::Null),
                    "rope_theta",
                )?,
            ),
            None => (p.clone(), None),
        },
        None => {
            let mut full = c.get("rope_scaling").cloned().unwrap_or(Json::Null);
            if !full.is_object() {
                full = serde_json::json!({});
            }
            if let Some(t) = c.get("rope_theta") {
                full["rope_theta"] = t.clone();
            }
            (full, f32_key(c, "rope_local_base_freq")?)
        }
    };
    let theta = f32_key(&full, "rope_theta")?;
    let kind = full
        .get("rope_type")
        .or_else(|| full.get("type"))
        .and_then(Json::as_str);
    let num = |key: &str, default: f64| -> Result<f64, ImportError> {
        Ok(f32_key(&full, key)?.map_or(default, f64::from))
    };
    let llama3 = match kind {
        Some("llama3") => Some(Llama3Rope {
            factor: num("factor", 8.0)?,
            low_freq_factor: num("low_freq_factor", 1.0)?,
            high_freq_factor: num("high_freq_factor", 4.0)?,
            original_ctx: num("original_max_position_embeddings", 8192.0)?,
        }),
        _ => None,
    };
    let factor = match kind {
        None | Some("default") | Some("llama3") => None,
        Some("linear") => Some(
            f32_key(&full, "factor")?
                .filter(|f| *f > 0.0)
                .ok_or_else(|| bad_config("rope factor", "linear scaling without a factor"))?,
        ),
        Some(other) => {
            return Err(ImportError::UnsupportedConfig {
                what: format!("RoPE scaling {other:?}"),
                why: "the decoder implements plain and linear RoPE only".into(),
            });
        }
    };
    Ok((theta, swa_theta, factor, llama3))
}

impl HfConfig {
    pub(crate) fn parse(c: &Json, arch: &ArchMap) -> Result<HfConfig, ImportError> {
        let gemma = arch.gguf == "gemma3";
        let n_embd = need_usize(c, "hidden_size")?;
        let n_layer = need_usize(c, "num_hidden_layers")?;
        let n_head = need_usize(c, "num_attention_heads")?;
        let n_head_kv = usize_key(c, "num_key_value_heads")?.unwrap_or(n_head);
        if n_head % n_head_kv != 0 {
            return Err(bad_config(
                "num_key_value_heads",
                format!("{n_head_kv} does not divide {n_head} heads"),
            ));
        }
        let head_dim_given = usize_key(c, "head_dim")?;
        let head_dim = match head_dim_given {
            Some(d) => d,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(bad_config(
                    "num_attention_heads",
                    "does not divide hidden_size",
                ));
            }
        };
        let act = c
            .get("hidden_act")
            .or_else(|| c.get("hidden_activation"))
            .and_then(Json::as_str);
        let want = if gemma { "gelu_pytorch_tanh" } else { "silu" };
        if act.is_some_and(|a| a != want) {
            return Err(ImportError::UnsupportedConfig {
                what: format!("activation {act:?}"),
                why: format!("{} uses {want}", arch.gguf),
            });
        }
        if c.get("use_sliding_window").and_then(Json::as_bool) == Some(true) {
            return Err(ImportError::UnsupportedConfig {
                what: "use_sliding_window".into(),
                why: format!("{} has no sliding-window layers here", arch.gguf),
            });
        }
        if gemma {
            // llama.cpp (and our decoder) scale queries by 1/sqrt(head_dim) for gemma3
            // below 27B; a different query_pre_attn_scalar would silently change the model.
            if let Some(q) = usize_key(c, "query_pre_attn_scalar")?
                && q != head_dim
            {
                return Err(ImportError::UnsupportedConfig {
                    what: format!("query_pre_attn_scalar {q}"),
                    why: format!("queries are scaled by 1/sqrt(head_dim = {head_dim})"),
                });
            }
        }
        let (rope_theta, rope_theta_swa, rope_linear_factor, rope_llama3) = rope(c)?;
        if rope_llama3.is_some() && arch.gguf != "llama" {
            return Err(ImportError::UnsupportedConfig {
                what: "RoPE scaling \"llama3\"".into(),
                why: format!(
                    "only llama's converter writes rope_freqs, not {}'s",
                    arch.gguf
                ),
            });
        }
        let sliding_window = if gemma {
            usize_key(c, "sliding_window")?
        } else {
            None
        };
        let swa_layers = match (sliding_window, c.get("layer_types")) {
            (Some(_), Some(Json::Array(types))) => {
                if types.len() != n_layer {
                    return Err(bad_config("layer_types", "length is not num_hidden_layers"));
                }
                let swa = types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some("sliding_attention") => Ok(true),
                        Some("full_attention") => Ok(false),
                        _ => Err(bad_config("layer_types", format!("unknown entry {t}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(swa)
            }
            (Some(_), _) => {
                // HF's default: every `sliding_window_pattern`th layer is global
                let p = usize_key(c, "sliding_window_pattern")?.unwrap_or(6);
                Some((0..n_layer).map(|i| (i + 1) % p != 0).collect())
            }
            _ => None,
        };
        Ok(HfConfig {
            n_vocab: need_usize(c, "vocab_size")?,
            n_embd,
            n_layer,
            n_ff: need_usize(c, "intermediate_size")?,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_given: head_dim_given.is_some(),
            n_ctx_train: usize_key(c, "max_position_embeddings")?.unwrap_or(if gemma {
                131_072
            } else {
                2048
            }),
            rms_eps: f32_key(c, "rms_norm_eps")?
                .or(gemma.then_some(1e-6))
                .ok_or_else(|| bad_config("rms_norm_eps", "missing"))?,
            rope_theta,
            rope_theta_swa,
            rope_linear_factor,
            rope_llama3,
            tied: c
                .get("tie_word_embeddings")
                .and_then(Json::as_bool)
                .unwrap_or(gemma),
            sliding_window,
            swa_layers,
            final_logit_softcap: f32_key(c, "final_logit_softcapping")?.filter(|v| *v > 0.0),
        })
    }

    /// `rope_freqs.weight` for llama3 RoPE scaling, as llama.cpp's converter computes it
    /// (`LlamaModel.generate_extra_tensors`): 1 for short wavelengths, `factor` for long
    /// ones, a smooth blend between.
    pub(crate) fn llama3_rope_freqs(&self) -> Option<Vec<f32>> {
        let r = self.rope_llama3?;
        let base = f64::from(self.rope_theta.unwrap_or(10_000.0));
        let dim = self.head_dim as f64;
        let low_wavelen = r.original_ctx / r.low_freq_factor;
        let high_wavelen = r.original_ctx / r.high_freq_factor;
        let factors = (0..self.head_dim / 2)
            .map(|i| {
                let freq = 1.0 / base.powf((2 * i) as f64 / dim);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                let f = if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    r.factor
                } else {
                    let smooth = (r.original_ctx / wavelen - r.low_freq_factor)
                        / (r.high_freq_factor - r.low_freq_factor);
                    1.0 / ((1.0 - smooth) / r.factor + smooth)
                };
                f as f32
            })
            .collect();
        Some(factors)
    }

    /// The `{arch}.*` keys.
    pub(crate) fn write(&self, arch: &ArchMap, w: &mut GgufWriter) -> Result<(), ImportError> {
        let a = arch.gguf;
        let k = |s: &str| keys::arch(a, s);
        let u = |n: usize| Value::U32(n as u32);
        w.set(k(keys::VOCAB_SIZE), u(self.n_vocab))?;
        w.set(k(keys::CONTEXT_LENGTH), u(self.n_ctx_train))?;
        w.set(k(keys::EMBEDDING_LENGTH), u(self.n_embd))?;
        w.set(k(keys::BLOCK_COUNT), u(self.n_layer))?;
        w.set(k(keys::FEED_FORWARD_LENGTH), u(self.n_ff))?;
        w.set(k(keys::ATTENTION_HEAD_COUNT), u(self.n_head))?;
        w.set(k(keys::ATTENTION_HEAD_COUNT_KV), u(self.n_head_kv))?;
        if self.head_dim_given {
            w.set(k(keys::ATTENTION_KEY_LENGTH), u(self.head_dim))?;
            w.set(k(keys::ATTENTION_VALUE_LENGTH), u(self.head_dim))?;
        }
        if arch.rope_dim_key {
            w.set(k(keys::ROPE_DIMENSION_COUNT), u(self.head_dim))?;
        }
        if let Some(t) = self.rope_theta {
            w.set(k(keys::ROPE_FREQ_BASE), Value::F32(t))?;
        }
        if let Some(t) = self.rope_theta_swa {
            w.set(k(keys::ROPE_FREQ_BASE_SWA), Value::F32(t))?;
        }
        if let Some(f) = self.rope_linear_factor {
            w.set(k(keys::ROPE_SCALING_TYPE), Value::String("linear".into()))?;
            w.set(k(keys::ROPE_SCALING_FACTOR), Value::F32(f))?;
        }
        w.set(
            k(keys::ATTENTION_LAYERNORM_RMS_EPS),
            Value::F32(self.rms_eps),
        )?;
        if let Some(n) = self.sliding_window {
            w.set(k(keys::ATTENTION_SLIDING_WINDOW), u(n))?;
        }
        // llama.cpp's load_swa_pattern reads a per-layer bool array here; writing it
        // (the converter assumes gemma3's fixed 5:1 pattern) keeps other patterns right.
        if let Some(swa) = &self.swa_layers {
            w.set(
                k(keys::ATTENTION_SLIDING_WINDOW_PATTERN),
                Value::Array(Array::Bool(swa.clone())),
            )?;
        }
        if let Some(s) = self.final_logit_softcap {
            w.set(k(keys::FINAL_LOGIT_SOFTCAPPING), Value::F32(s))?;
        }
        Ok(())
    }
}
