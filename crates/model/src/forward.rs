//! The decoder forward pass, one implementation for every architecture in
//! [`crate::arch::SPECS`]. Reads top to bottom like the papers; buffers carry shape
//! comments with `n` = tokens in the batch.

use crate::Model;
use crate::arch::{Activation, AttnScale, RopeStyle};
use crate::error::ModelError;
use crate::kv_cache::{KvCache, LayerCache};
use crate::ops;
use crate::weights::Linear;
use half::f16;
use lingqiao_kernels::ops::{get_row, matmul_many};
use lingqiao_pool::SharedMut;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which positions of a batch get logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token of the batch (generation).
    Last,
    /// Every token (perplexity, scoring).
    All,
}

/// Tokens per forward chunk: bounds the activation buffers for long prompts.
pub const N_BATCH: usize = 512;

impl Model {
    /// Run `tokens` at positions `cache.n_past..`, append their keys and values to the
    /// cache, and return the requested logits, row-major `(rows, n_vocab)`.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        mode: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyBatch);
        }
        let needed = cache.n_past + tokens.len();
        if needed > cache.n_ctx {
            return Err(ModelError::ContextFull {
                needed,
                n_ctx: cache.n_ctx,
            });
        }
        let n_vocab = self.hp.n_vocab;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::TokenOutOfRange { id, n_vocab });
        }
        cache.reserve(needed);
        let mut logits = Vec::new();
        let n_chunks = tokens.len().div_ceil(N_BATCH);
        for (ci, chunk) in tokens.chunks(N_BATCH).enumerate() {
            let rows: Vec<usize> = match mode {
                Logits::All => (0..chunk.len()).collect(),
                Logits::Last if ci + 1 == n_chunks => vec![chunk.len() - 1],
                Logits::Last => Vec::new(),
            };
            self.forward_chunk(cache, chunk, &rows, &mut logits)?;
        }
        Ok(logits)
    }

    fn forward_chunk(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        out_rows: &[usize],
        logits: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        let hp = &self.hp;
        let spec = hp.spec;
        let file = &self.file;
        let n = tokens.len();
        let p0 = cache.n_past;
        let n_embd = hp.n_embd;
        let q_dim = hp.n_head * hp.head_dim;
        let k_dim = hp.n_head_kv * hp.head_dim;
        let v_dim = hp.n_head_kv * hp.head_dim_v;
        let o_dim = hp.n_head * hp.head_dim_v;
        let n_ff = hp.n_ff;

        // Token embeddings.
        let mut x = vec![0.0f32; n * n_embd]; // (n, n_embd)
        let embd = self.w.token_embd.view(file);
        for (t, &id) in tokens.iter().enumerate() {
            get_row(&embd, id as usize, &mut x[t * n_embd..(t + 1) * n_embd])?;
        }
        if spec.embd_scale {
            let s = (n_embd as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= s);
        }

        // RoPE tables for this batch's positions, for the global and the sliding layers.
        let rope_tables = |base: f32, scale: f32| -> Vec<Vec<(f32, f32)>> {
            (0..n)
                .map(|t| {
                    let mut c = Vec::new();
                    ops::rope_cache(p0 + t, hp.n_rot, base, scale, &mut c);
                    c
                })
                .collect()
        };
        let rope_global = rope_tables(hp.rope_freq_base, hp.rope_freq_scale);
        let rope_swa = if hp.swa_layers.iter().any(|&s| s) {
            rope_tables(hp.rope_freq_base_swa, 1.0)
        } else {
            Vec::new()
        };
        let neox = spec.rope == RopeStyle::Neox;

        let mut xn = vec![0.0f32; n * n_embd]; // (n, n_embd)
        let mut q = vec![0.0f32; n * q_dim]; // (n, n_head * head_dim)
        let mut k = vec![0.0f32; n * k_dim]; // (n, n_head_kv * head_dim)
        let mut v = vec![0.0f32; n * v_dim]; // (n, n_head_kv * head_dim_v)
        let mut attn = vec![0.0f32; n * o_dim]; // (n, n_head * head_dim_v)
        let mut o = vec![0.0f32; n * n_embd]; // (n, n_embd)
        let mut gate = vec![0.0f32; n * n_ff]; // (n, n_ff)
        let mut up = vec![0.0f32; n * n_ff]; // (n, n_ff)

        for (il, lw) in self.w.layers.iter().enumerate() {
            let swa = hp.swa_layers[il];

            // Attention block.
            norm_rows(&x, &lw.attn_norm, hp.rms_eps, &mut xn, n_embd);
            linear_many(
                file,
                &mut [(&lw.wq, &mut q), (&lw.wk, &mut k), (&lw.wv, &mut v)],
                &xn,
                n,
            );
            if let (Some(qn), Some(kn)) = (&lw.q_norm, &lw.k_norm) {
                q.chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rms_norm_inplace(h, qn, hp.rms_eps));
                k.chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rms_norm_inplace(h, kn, hp.rms_eps));
            }
            let tables = if swa { &rope_swa } else { &rope_global };
            for t in 0..n {
                let tab = &tables[t];
                q[t * q_dim..(t + 1) * q_dim]
                    .chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rope_apply(&mut h[..hp.n_rot], tab, neox));
                k[t * k_dim..(t + 1) * k_dim]
                    .chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rope_apply(&mut h[..hp.n_rot], tab, neox));
            }
            let kq_scale = match spec.attn_scale {
                AttnScale::OnScores => hp.attn_scale,
                AttnScale::OnQuery => {
                    q.iter_mut().for_each(|e| *e *= hp.attn_scale);
                    1.0
                }
            };
            let layer = &mut cache.layers[il];
            for t in 0..n {
                let s = layer.slot(p0 + t);
                store_f16(&mut layer.k[s * k_dim..][..k_dim], &k[t * k_dim..][..k_dim]);
                store_f16(&mut layer.v[s * v_dim..][..v_dim], &v[t * v_dim..][..v_dim]);
            }
            let window = if swa { hp.n_swa } else { 0 };
            self.attention(&q, layer, p0, n, window, kq_scale, &mut attn);
            linear(file, &lw.wo, &attn, n, &mut o);
            if let Some(w) = &lw.post_attn_norm {
                norm_rows_inplace(&mut o, w, hp.rms_eps, n_embd);
            }
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);

            // Feed-forward block.
            norm_rows(&x, &lw.ffn_norm, hp.rms_eps, &mut xn, n_embd);
            linear_many(
                file,
                &mut [(&lw.ffn_gate, &mut gate), (&lw.ffn_up, &mut up)],
                &xn,
                n,
            );
            match spec.activation {
                Activation::SiluGlu => ops::swiglu(&mut gate, &up),
                Activation::GeluGlu => ops::geglu(&mut gate, &up),
            }
            linear(file, &lw.ffn_down, &gate, n, &mut o);
            if let Some(w) = &lw.post_ffn_norm {
                norm_rows_inplace(&mut o, w, hp.rms_eps, n_embd);
            }
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        cache.n_past = p0 + n;

        if out_rows.is_empty() {
            return Ok(());
        }
        // Output head, only for the rows asked for.
        let mut h = vec![0.0f32; out_rows.len() * n_embd]; // (rows, n_embd)
        for (i, &r) in out_rows.iter().enumerate() {
            ops::rms_norm(
                &x[r * n_embd..(r + 1) * n_embd],
                &self.w.output_norm,
                hp.rms_eps,
                &mut h[i * n_embd..(i + 1) * n_embd],
            );
        }
        let start = logits.len();
        logits.resize(start + out_rows.len() * hp.n_vocab, 0.0);
        linear(
            file,
            &self.w.output,
            &h,
            out_rows.len(),
            &mut logits[start..],
        ); // (rows, n_vocab)
        if let Some(cap) = hp.final_logit_softcap {
            logits[start..]
                .iter_mut()
                .for_each(|l| *l = (*l / cap).tanh() * cap);
        }
        Ok(())
    }

    /// Causal (optionally sliding-window) attention of the batch's queries over the cache.
    /// As llama.cpp's non-flash path with an F16 cache: Q is rounded to f16 for the K dot
    /// products and the probabilities to f16 for the V sum (ggml converts src1 of an F16
    /// mul_mat to F16). Work items are (token, KV head, slice of that head's query heads):
    /// every cached row is converted from f16 once per item and used by all its heads.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        q: &[f32],
        layer: &LayerCache,
        p0: usize,
        n: usize,
        window: usize,
        kq_scale: f32,
        out: &mut [f32],
    ) {
        let hp = &self.hp;
        let (hd, hdv) = (hp.head_dim, hp.head_dim_v);
        let group = hp.n_head / hp.n_head_kv;
        let (k_row, v_row) = (hp.n_head_kv * hd, hp.n_head_kv * hdv);
        let q_dim = hp.n_head * hd;
        // Enough items to keep every thread busy when a single token has few KV heads
        // (gemma3-270m has one): split a group's query heads into slices.
        let threads = lingqiao_pool::current_num_threads();
        let splits = (4 * threads).div_ceil(n * hp.n_head_kv).clamp(1, group);
        let per = group.div_ceil(splits);
        let splits = group.div_ceil(per);
        let n_items = n * hp.n_head_kv * splits;
        let out = SharedMut::new(&mut out[..n * hp.n_head * hdv]);
        let next = AtomicUsize::new(0);
        lingqiao_pool::run(|_, _| {
            // Scratch per thread and operation: queries, scores (head-major), probabilities
            // of one position, and the heads' outputs.
            let (mut qg, mut scores, mut pj, mut dots) =
                (Vec::new(), Vec::new(), vec![0f32; per], vec![0f32; per]);
            loop {
                let item = next.fetch_add(1, Ordering::Relaxed);
                if item >= n_items {
                    break;
                }
                let t = item / (hp.n_head_kv * splits);
                let g = item / splits % hp.n_head_kv;
                let h0 = g * group + item % splits * per;
                let nh = per.min(g * group + group - h0);
                let pos = p0 + t;
                let lo = if window > 0 {
                    (pos + 1).saturating_sub(window)
                } else {
                    0
                };
                let npos = pos + 1 - lo;
                qg.clear();
                qg.extend(
                    q[t * q_dim + h0 * hd..][..nh * hd]
                        .iter()
                        .map(|&e| f16::from_f32(e).to_f32()),
                );
                scores.clear();
                scores.resize(nh * npos, 0.0);
                for (jj, j) in (lo..=pos).enumerate() {
                    let kr = &layer.k[layer.slot(j) * k_row + g * hd..][..hd];
                    lingqiao_kernels::attn::dot_f16_group(kr, &qg, hd, &mut dots[..nh]);
                    for (h, d) in dots[..nh].iter().enumerate() {
                        scores[h * npos + jj] = d * kq_scale;
                    }
                }
                for sc in scores.chunks_mut(npos) {
                    ops::softmax_inplace(sc);
                }
                // SAFETY: item `item` is handed to this thread only, and its heads
                // h0..h0 + nh of token t are its own output rows.
                let o = unsafe {
                    out.slice((t * hp.n_head + h0) * hdv..(t * hp.n_head + h0 + nh) * hdv)
                };
                o.fill(0.0);
                for (jj, j) in (lo..=pos).enumerate() {
                    for (h, p) in pj[..nh].iter_mut().enumerate() {
                        *p = f16::from_f32(scores[h * npos + jj]).to_f32();
                    }
                    let vr = &layer.v[layer.slot(j) * v_row + g * hdv..][..hdv];
                    lingqiao_kernels::attn::axpy_f16_group(vr, &pj[..nh], o, hdv);
                }
            }
        });
    }
}

/// `out = W x (+ b)` for `n` rows of activations.
fn linear(file: &lingqiao_gguf::GgufFile, w: &Linear, x: &[f32], n: usize, out: &mut [f32]) {
    linear_many(file, &mut [(w, out)], x, n)
}

/// Several `out = W x (+ b)` of the same activations, in one parallel region.
fn linear_many(
    file: &lingqiao_gguf::GgufFile,
    ws: &mut [(&Linear, &mut [f32])],
    x: &[f32],
    n: usize,
) {
    let cols = ws[0].0.cols;
    let mut outs: Vec<_> = ws
        .iter_mut()
        .map(|(w, out)| (w.view(file), &mut out[..n * w.rows]))
        .collect();
    matmul_many(&mut outs, &x[..n * cols], n);
    for (w, out) in ws.iter_mut() {
        if let Some(b) = &w.bias {
            out[..n * w.rows]
                .chunks_mut(w.rows)
                .for_each(|row| row.iter_mut().zip(b).for_each(|(o, bb)| *o += bb));
        }
    }
}

fn norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], width: usize) {
    x.chunks(width)
        .zip(out.chunks_mut(width))
        .for_each(|(xr, or)| ops::rms_norm(xr, w, eps, or));
}

fn norm_rows_inplace(x: &mut [f32], w: &[f32], eps: f32, width: usize) {
    x.chunks_mut(width)
        .for_each(|r| ops::rms_norm_inplace(r, w, eps));
}

fn store_f16(dst: &mut [f16], src: &[f32]) {
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &s)| *d = f16::from_f32(s));
}
