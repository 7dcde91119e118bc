//! Weight tensors: quantized matrices stay in the memory map (a byte range of the file);
//! small vectors (norms, biases) are dequantized to f32 at load.

use crate::config::HParams;
use crate::error::ModelError;
use lingqiao_gguf::{GgmlType, GgufFile};
use lingqiao_kernels::ops::WeightView;

/// A matrix of `rows` rows of `cols` elements (ggml: ne0 = cols, ne1 = rows), plus an
/// optional bias of `rows`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub ty: GgmlType,
    /// Absolute byte range in the file.
    pub offset: usize,
    pub len: usize,
    pub rows: usize,
    pub cols: usize,
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    pub fn view<'a>(&self, file: &'a GgufFile) -> WeightView<'a> {
        WeightView {
            ty: self.ty,
            data: &file.bytes()[self.offset..self.offset + self.len],
            rows: self.rows,
            cols: self.cols,
        }
    }
}

pub struct LayerWeights {
    pub attn_norm: Vec<f32>,              // (n_embd)
    pub wq: Linear,                       // (n_head * head_dim, n_embd)
    pub wk: Linear,                       // (n_head_kv * head_dim, n_embd)
    pub wv: Linear,                       // (n_head_kv * head_dim_v, n_embd)
    pub wo: Linear,                       // (n_embd, n_head * head_dim_v)
    pub q_norm: Option<Vec<f32>>,         // (head_dim)
    pub k_norm: Option<Vec<f32>>,         // (head_dim)
    pub post_attn_norm: Option<Vec<f32>>, // (n_embd)
    pub ffn_norm: Vec<f32>,               // (n_embd)
    pub ffn_gate: Linear,                 // (n_ff, n_embd)
    pub ffn_up: Linear,                   // (n_ff, n_embd)
    pub ffn_down: Linear,                 // (n_embd, n_ff)
    pub post_ffn_norm: Option<Vec<f32>>,  // (n_embd)
}

pub struct Weights {
    pub token_embd: Linear, // (n_vocab, n_embd)
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>, // (n_embd)
    /// (n_vocab, n_embd); the token embedding when the output is tied.
    pub output: Linear,
    /// (n_rot / 2): per-dimension RoPE frequency divisors (llama3 rope scaling).
    pub rope_freqs: Option<Vec<f32>>,
}

struct Loader<'a> {
    file: &'a GgufFile,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<&lingqiao_gguf::TensorInfo, ModelError> {
        self.file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
            })
    }

    fn check_shape(name: &str, dims: &[u64], expected: &[u64]) -> Result<(), ModelError> {
        // Trailing 1s are not significant (ggml's ne has four entries).
        let trimmed: Vec<u64> = {
            let mut d = dims.to_vec();
            while d.len() > expected.len() && d.last() == Some(&1) {
                d.pop();
            }
            d
        };
        if trimmed != expected {
            return Err(ModelError::BadShape {
                name: name.to_string(),
                found: dims.to_vec(),
                expected: expected.to_vec(),
            });
        }
        Ok(())
    }

    fn linear(&self, name: &str, rows: usize, cols: usize) -> Result<Linear, ModelError> {
        let t = self.info(name)?;
        Self::check_shape(name, &t.dims, &[cols as u64, rows as u64])?;
        if matches!(t.ty, GgmlType::Q8_1 | GgmlType::Q8_K) {
            return Err(ModelError::UnsupportedType {
                name: name.to_string(),
                ty: t.ty,
            });
        }
        let bias_name = name.replace(".weight", ".bias");
        let bias = match self.file.tensor(&bias_name) {
            Some(_) => Some(self.vector(&bias_name, rows)?),
            None => None,
        };
        Ok(Linear {
            ty: t.ty,
            offset: t.offset as usize,
            len: t.n_bytes as usize,
            rows,
            cols,
            bias,
        })
    }

    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        let t = self.info(name)?;
        Self::check_shape(name, &t.dims, &[n as u64])?;
        let mut out = vec![0.0f32; n];
        lingqiao_kernels::dequantize_row(t.ty, self.file.tensor_data(t), &mut out)?;
        Ok(out)
    }

    fn opt_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>, ModelError> {
        match self.file.tensor(name) {
            Some(_) => self.vector(name, n).map(Some),
            None => Ok(None),
        }
    }
}

impl Weights {
    pub fn load(file: &GgufFile, hp: &HParams) -> Result<Weights, ModelError> {
        let l = Loader { file };
        let spec = hp.spec;
        let (n_embd, n_ff) = (hp.n_embd, hp.n_ff);
        let q_dim = hp.n_head * hp.head_dim;
        let k_dim = hp.n_head_kv * hp.head_dim;
        let v_dim = hp.n_head_kv * hp.head_dim_v;

        let token_embd = l.linear("token_embd.weight", hp.n_vocab, n_embd)?;
        let output = match file.tensor("output.weight") {
            Some(_) => l.linear("output.weight", hp.n_vocab, n_embd)?,
            None => token_embd.clone(),
        };
        let output_norm = l.vector("output_norm.weight", n_embd)?;
        let rope_freqs = l.opt_vector("rope_freqs.weight", hp.n_rot / 2)?;

        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            let need = |s: &str, len: usize| -> Result<Option<Vec<f32>>, ModelError> {
                Ok(Some(l.vector(&n(s), len)?))
            };
            layers.push(LayerWeights {
                attn_norm: l.vector(&n("attn_norm"), n_embd)?,
                wq: l.linear(&n("attn_q"), q_dim, n_embd)?,
                wk: l.linear(&n("attn_k"), k_dim, n_embd)?,
                wv: l.linear(&n("attn_v"), v_dim, n_embd)?,
                wo: l.linear(&n("attn_output"), n_embd, hp.n_head * hp.head_dim_v)?,
                q_norm: if spec.qk_norm {
                    need("attn_q_norm", hp.head_dim)?
                } else {
                    None
                },
                k_norm: if spec.qk_norm {
                    need("attn_k_norm", hp.head_dim)?
                } else {
                    None
                },
                post_attn_norm: if spec.post_norms {
                    need("post_attention_norm", n_embd)?
                } else {
                    l.opt_vector(&n("post_attention_norm"), n_embd)?
                },
                ffn_norm: l.vector(&n("ffn_norm"), n_embd)?,
                ffn_gate: l.linear(&n("ffn_gate"), n_ff, n_embd)?,
                ffn_up: l.linear(&n("ffn_up"), n_ff, n_embd)?,
                ffn_down: l.linear(&n("ffn_down"), n_embd, n_ff)?,
                post_ffn_norm: if spec.post_norms {
                    need("post_ffw_norm", n_embd)?
                } else {
                    l.opt_vector(&n("post_ffw_norm"), n_embd)?
                },
            });
        }
        Ok(Weights {
            token_embd,
            layers,
            output_norm,
            output,
            rope_freqs,
        })
    }

    /// Bytes of all matrices read per token (weights that stay memory-mapped).
    pub fn mapped_bytes(&self) -> usize {
        let mut total = self.token_embd.len;
        if self.output.offset != self.token_embd.offset {
            total += self.output.len;
        }
        for l in &self.layers {
            for w in [
                &l.wq,
                &l.wk,
                &l.wv,
                &l.wo,
                &l.ffn_gate,
                &l.ffn_up,
                &l.ffn_down,
            ] {
                total += w.len;
            }
        }
        total
    }
}
