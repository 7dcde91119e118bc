//! The decoder forward pass, one implementation for every architecture in
//! [`crate::arch::SPECS`]. Reads top to bottom like the papers; buffers carry shape
//! comments with `n` = tokens in the batch.

use crate::Model;
use crate::arch::{Activation, AttnScale, RopeStyle};
use crate::error::ModelError;
use crate::kv_cache::{KvCache, LayerCache};
use crate::ops;
use crate::weights::Linear;
use lingqiao_kernels::attn::{self, CacheRows};
use lingqiao_kernels::ops::{get_row, matmul_segments};
use lingqiao_pool::SharedMut;
use lingqiao_pool::profile::{Op, span};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a batch returns for a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Logits of the last token only (generation).
    Last,
    /// Logits of every token (perplexity, scoring).
    All,
    /// Nothing: a chunk of a prompt whose logits nobody reads.
    None,
    /// Every token's final hidden state after the output norm, `(n, n_embd)`, instead of
    /// logits (embeddings).
    Hidden,
}

/// Tokens per forward chunk: bounds the activation buffers for long prompts.
pub const N_BATCH: usize = 512;

/// One sequence's part of a batched forward pass: its cache, the tokens to append (at
/// most [`N_BATCH`]), and what to return.
pub struct SeqBatch<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
    pub output: Logits,
}

impl Model {
    /// Run `tokens` at positions `cache.n_past..`, append their keys and values to the
    /// cache, and return the requested logits, row-major `(rows, n_vocab)`.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        mode: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let mut out = Vec::new();
        self.forward_into(cache, tokens, mode, &mut out)?;
        Ok(out)
    }

    /// [`Model::forward`] into `out`, whose allocation is reused: a decoding loop that keeps
    /// one buffer does not allocate and zero a vocabulary row per token (0.6 MiB for qwen's
    /// 151 936 logits, whose cache lines the weights have evicted since the last token: the
    /// step from the last layer to the output product, this allocation included, took
    /// 0.15-0.3 ms of a qwen15 token on the 2-core VM). `out` is left empty on error.
    pub fn forward_into(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        mode: Logits,
        out: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        let mut buf = std::mem::take(out);
        if tokens.is_empty() {
            return Err(ModelError::EmptyBatch);
        }
        self.check(cache, tokens)?;
        let n_chunks = tokens.len().div_ceil(N_BATCH);
        for (ci, chunk) in tokens.chunks(N_BATCH).enumerate() {
            let output = match mode {
                Logits::Last if ci + 1 < n_chunks => Logits::None,
                m => m,
            };
            let mut seq = [SeqBatch {
                cache: &mut *cache,
                tokens: chunk,
                output,
            }];
            // Only the first chunk writes into `buf`; later chunks' rows are appended to it.
            let reuse = if ci == 0 {
                std::mem::take(&mut buf)
            } else {
                Vec::new()
            };
            let [rows] = <[Vec<f32>; 1]>::try_from(self.forward_batch_reusing(&mut seq, reuse)?)
                .expect("one sequence in, one out");
            if ci == 0 {
                buf = rows;
            } else {
                buf.extend_from_slice(&rows);
            }
        }
        *out = buf;
        Ok(())
    }

    fn check(&self, cache: &KvCache, tokens: &[u32]) -> Result<(), ModelError> {
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
        Ok(())
    }

    /// One forward pass over several sequences at once (continuous batching): every
    /// matrix product runs over all their tokens, attention runs each token over its own
    /// sequence's cache. Returns, per sequence, what its `output` asks for.
    ///
    /// A sequence's results are bit for bit those of running it alone with the same
    /// chunks: every per-token step depends only on that token and its own cache, and
    /// the matrix products choose their kernels per sequence (`matmul_segments`).
    pub fn forward_batch(&self, seqs: &mut [SeqBatch<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.forward_batch_reusing(seqs, Vec::new())
    }

    /// [`Model::forward_batch`], with the logits of a single sequence written into `reuse`'s
    /// allocation (see [`Model::forward_into`]).
    fn forward_batch_reusing(
        &self,
        seqs: &mut [SeqBatch<'_>],
        reuse: Vec<f32>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        for s in seqs.iter() {
            if s.tokens.is_empty() {
                return Err(ModelError::EmptyBatch);
            }
            if s.tokens.len() > N_BATCH {
                return Err(ModelError::BatchTooLarge {
                    n: s.tokens.len(),
                    max: N_BATCH,
                });
            }
            self.check(s.cache, s.tokens)?;
        }
        for s in seqs.iter_mut() {
            let needed = s.cache.n_past + s.tokens.len();
            s.cache.reserve(needed);
        }
        let hp = &self.hp;
        let spec = hp.spec;
        let file = &self.file;
        let segments: Vec<usize> = seqs.iter().map(|s| s.tokens.len()).collect();
        let n: usize = segments.iter().sum();
        // A decode step is the unit LINGQIAO_PROFILE reports per token.
        let _step = (n == 1).then(|| span(Op::Step));
        // Each token's sequence and position.
        let mut starts = Vec::with_capacity(seqs.len()); // first token of each sequence
        let mut pos = Vec::with_capacity(n);
        for s in seqs.iter() {
            starts.push(pos.len());
            pos.extend(s.cache.n_past..s.cache.n_past + s.tokens.len());
        }
        let n_embd = hp.n_embd;
        let q_dim = hp.n_head * hp.head_dim;
        let k_dim = hp.n_head_kv * hp.head_dim;
        let v_dim = hp.n_head_kv * hp.head_dim_v;
        let o_dim = hp.n_head * hp.head_dim_v;
        let n_ff = hp.n_ff;

        // Token embeddings.
        let sp = span(Op::Embed);
        let mut x = vec![0.0f32; n * n_embd]; // (n, n_embd)
        let embd = self.w.token_embd.view(file);
        for (t, &id) in seqs.iter().flat_map(|s| s.tokens).enumerate() {
            get_row(&embd, id as usize, &mut x[t * n_embd..(t + 1) * n_embd])?;
        }
        if spec.embd_scale {
            let s = (n_embd as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= s);
        }

        drop(sp);
        // RoPE tables for the batch's positions, for the global and the sliding layers.
        let sp = span(Op::RopeTable);
        let rope_tables = |base: f32, scale: f32| -> Vec<Vec<(f32, f32)>> {
            pos.iter()
                .map(|&p| {
                    let mut c = Vec::new();
                    let factors = self.w.rope_freqs.as_deref();
                    ops::rope_cache(p, hp.n_rot, base, scale, factors, &mut c);
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
        drop(sp);

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
                &segments,
                Op::MatQkv,
            );
            if let (Some(qn), Some(kn)) = (&lw.q_norm, &lw.k_norm) {
                let _sp = span(Op::QkNorm);
                q.chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rms_norm_inplace(h, qn, hp.rms_eps));
                k.chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rms_norm_inplace(h, kn, hp.rms_eps));
            }
            let sp = span(Op::Rope);
            let tables = if swa { &rope_swa } else { &rope_global };
            for (t, tab) in tables.iter().enumerate() {
                q[t * q_dim..(t + 1) * q_dim]
                    .chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rope_apply(&mut h[..hp.n_rot], tab, neox));
                k[t * k_dim..(t + 1) * k_dim]
                    .chunks_mut(hp.head_dim)
                    .for_each(|h| ops::rope_apply(&mut h[..hp.n_rot], tab, neox));
            }
            drop(sp);
            let kq_scale = match spec.attn_scale {
                AttnScale::OnScores => hp.attn_scale,
                AttnScale::OnQuery => {
                    let _sp = span(Op::QScale);
                    q.iter_mut().for_each(|e| *e *= hp.attn_scale);
                    1.0
                }
            };
            let sp = span(Op::KvStore);
            for (s, &t0) in seqs.iter_mut().zip(&starts) {
                let layer = &mut s.cache.layers[il];
                for (i, p) in (s.cache.n_past..s.cache.n_past + s.tokens.len()).enumerate() {
                    let (t, sl) = (t0 + i, layer.slot(p));
                    ops::store_f16(
                        &mut layer.k[sl * k_dim..][..k_dim],
                        &k[t * k_dim..][..k_dim],
                    );
                    ops::store_f16(
                        &mut layer.v[sl * v_dim..][..v_dim],
                        &v[t * v_dim..][..v_dim],
                    );
                }
            }
            drop(sp);
            let window = if swa { hp.n_swa } else { 0 };
            let parts: Vec<AttnSeq<'_>> = seqs
                .iter()
                .zip(&starts)
                .map(|(s, &t0)| AttnSeq {
                    t0,
                    n: s.tokens.len(),
                    p0: s.cache.n_past,
                    layer: &s.cache.layers[il],
                })
                .collect();
            let sp = span(Op::Attention);
            self.attention(&q, &parts, window, kq_scale, &mut attn);
            drop(sp);
            linear(file, &lw.wo, &attn, &segments, &mut o, Op::MatAttnOut);
            if let Some(w) = &lw.post_attn_norm {
                norm_rows_inplace(&mut o, w, hp.rms_eps, n_embd);
            }
            add_residual(&mut x, &o);

            // Feed-forward block.
            norm_rows(&x, &lw.ffn_norm, hp.rms_eps, &mut xn, n_embd);
            linear_many(
                file,
                &mut [(&lw.ffn_gate, &mut gate), (&lw.ffn_up, &mut up)],
                &xn,
                &segments,
                Op::MatGateUp,
            );
            let sp = span(Op::Act);
            match spec.activation {
                // ggml_vec_swiglu_f32, from the kernel table.
                Activation::SiluGlu => lingqiao_kernels::act::swiglu(&mut gate, &up),
                Activation::GeluGlu => ops::geglu(&mut gate, &up),
            }
            drop(sp);
            linear(file, &lw.ffn_down, &gate, &segments, &mut o, Op::MatDown);
            if let Some(w) = &lw.post_ffn_norm {
                norm_rows_inplace(&mut o, w, hp.rms_eps, n_embd);
            }
            add_residual(&mut x, &o);
        }
        for s in seqs.iter_mut() {
            s.cache.n_past += s.tokens.len();
        }

        // Output head, only for the rows asked for: normalized hidden states, then (unless
        // hidden states were asked for) one matrix product over every sequence's rows.
        let sp = span(Op::Head);
        let mut rows_of = Vec::with_capacity(seqs.len()); // (first token, rows) per sequence
        for (s, &t0) in seqs.iter().zip(&starts) {
            let len = s.tokens.len();
            rows_of.push(match s.output {
                Logits::Last => (t0 + len - 1, 1),
                Logits::All | Logits::Hidden => (t0, len),
                Logits::None => (t0, 0),
            });
        }
        let n_out: usize = rows_of.iter().map(|r| r.1).sum();
        let mut h = vec![0.0f32; n_out * n_embd]; // (rows, n_embd)
        for (i, r) in rows_of.iter().flat_map(|&(t0, c)| t0..t0 + c).enumerate() {
            ops::rms_norm(
                &x[r * n_embd..(r + 1) * n_embd],
                &self.w.output_norm,
                hp.rms_eps,
                &mut h[i * n_embd..(i + 1) * n_embd],
            );
        }
        let logit_rows: Vec<usize> = seqs
            .iter()
            .zip(&rows_of)
            .filter(|(s, _)| s.output != Logits::Hidden)
            .map(|(_, r)| r.1)
            .collect();
        let n_logit_rows: usize = logit_rows.iter().sum();
        let mut logits = Vec::new();
        if n_logit_rows > 0 {
            // Hidden-state rows are left out of the product.
            let mut hl = Vec::with_capacity(n_logit_rows * n_embd);
            let mut at = 0;
            for (s, r) in seqs.iter().zip(&rows_of) {
                if s.output != Logits::Hidden {
                    hl.extend_from_slice(&h[at * n_embd..(at + r.1) * n_embd]);
                }
                at += r.1;
            }
            let segs: Vec<usize> = logit_rows.into_iter().filter(|&c| c > 0).collect();
            // (rows, n_vocab). Every element is written by the product below, so a reused
            // buffer of the right length is not cleared first; `resize` only fills growth.
            logits = if seqs.len() == 1 { reuse } else { Vec::new() };
            logits.resize(n_logit_rows * hp.n_vocab, 0.0);
            drop(sp);
            linear(file, &self.w.output, &hl, &segs, &mut logits, Op::MatLogits);
            if let Some(cap) = hp.final_logit_softcap {
                let _sp = span(Op::Softcap);
                logits.iter_mut().for_each(|l| *l = (*l / cap).tanh() * cap);
            }
        }
        if let [s] = &seqs[..] {
            // One sequence owns every row: hand the buffer over instead of copying it (a
            // vocabulary row is 0.6-1 MiB, copied per decoded token).
            return Ok(vec![if s.output == Logits::Hidden {
                h
            } else {
                logits
            }]);
        }
        let (mut at_h, mut at_l) = (0, 0);
        let mut out = Vec::with_capacity(seqs.len());
        for (s, r) in seqs.iter().zip(&rows_of) {
            if s.output == Logits::Hidden {
                out.push(h[at_h * n_embd..(at_h + r.1) * n_embd].to_vec());
            } else {
                let nv = hp.n_vocab;
                out.push(logits[at_l * nv..(at_l + r.1) * nv].to_vec());
                at_l += r.1;
            }
            at_h += r.1;
        }
        Ok(out)
    }

    /// Causal (optionally sliding-window) attention of the batch's queries over the cache.
    /// As llama.cpp's non-flash path with an F16 cache: Q is rounded to f16 for the K dot
    /// products and the probabilities to f16 for the V sum (ggml converts src1 of an F16
    /// mul_mat to F16). Work items are (token, KV head, slice of that head's query heads):
    /// every cached row is converted from f16 once per item and used by all its heads.
    fn attention(
        &self,
        q: &[f32],
        seqs: &[AttnSeq<'_>],
        window: usize,
        kq_scale: f32,
        out: &mut [f32],
    ) {
        let hp = &self.hp;
        let (hd, hdv) = (hp.head_dim, hp.head_dim_v);
        let group = hp.n_head / hp.n_head_kv;
        let (k_row, v_row) = (hp.n_head_kv * hd, hp.n_head_kv * hdv);
        let q_dim = hp.n_head * hd;
        let n: usize = seqs.iter().map(|s| s.n).sum();
        // Every item reads its KV head's cached rows, so a group split into more items
        // reads them more often: while decoding, those rows come from memory (the previous
        // token's weights evicted them) and reading them dominates. Split a group's query
        // heads into slices only as far as needed to give every thread an equal share of
        // items (gemma3-270m has one KV head), or at least four items each. (How heads are
        // grouped into items does not change any head's arithmetic.)
        //
        // qwen15 decoding on two threads, with the rows prefetched (in the kernels) and 2
        // items instead of 6: attention went from 4.2-4.7 to 2.8-3.2 ms per token at context
        // 256-320, and from 6.9-8.4 to 4.0-5.4 at 448-512 (with the accumulation fix below).
        // The 16-row AVX-512 kernels then took it to 2.6-3.2 and 3.4-4.2 (four alternated
        // runs each; 1.1-1.3 against 1.5-2.0 at 64-128).
        let threads = lingqiao_pool::current_num_threads();
        let splits = (1..=group)
            .find(|&s| {
                let items = n * hp.n_head_kv * s;
                items.is_multiple_of(threads) || items >= 4 * threads
            })
            .unwrap_or(group);
        let per = group.div_ceil(splits);
        let splits = group.div_ceil(per);
        let n_items = n * hp.n_head_kv * splits;
        // The sequence of each token.
        let seq_of: Vec<&AttnSeq<'_>> =
            seqs.iter().flat_map(|s| (0..s.n).map(move |_| s)).collect();
        let out = SharedMut::new(&mut out[..n * hp.n_head * hdv]);
        let next = AtomicUsize::new(0);
        lingqiao_pool::run(|_, _| {
            // Scratch per thread and operation: queries and scores (head-major).
            let (mut qg, mut scores) = (Vec::new(), Vec::new());
            // The item's output rows, accumulated here and stored once: accumulating in
            // `out` itself, which the items of other threads write next to, made the cache
            // line at each boundary travel between cores at every position (hot attention
            // of qwen15 at context 256-320, two threads: 2.9 -> 1.9 ms per token).
            let mut acc = Vec::new();
            loop {
                let item = next.fetch_add(1, Ordering::Relaxed);
                if item >= n_items {
                    break;
                }
                let t = item / (hp.n_head_kv * splits);
                let g = item / splits % hp.n_head_kv;
                let h0 = g * group + item % splits * per;
                let nh = per.min(g * group + group - h0);
                let sq = seq_of[t];
                let layer = sq.layer;
                let pos = sq.p0 + (t - sq.t0);
                let lo = if window > 0 {
                    (pos + 1).saturating_sub(window)
                } else {
                    0
                };
                let npos = pos + 1 - lo;
                let sp = span(Op::AttnQ16);
                qg.clear();
                qg.extend_from_slice(&q[t * q_dim + h0 * hd..][..nh * hd]);
                ops::round_f16_inplace(&mut qg);
                drop(sp);
                // Scores, head-major: scores[h * npos + (j - lo)].
                let sp = span(Op::AttnScores);
                scores.clear();
                scores.resize(nh * npos, 0.0);
                for (j0, len) in slot_runs(layer, lo, pos) {
                    let at = layer.slot(j0) * k_row + g * hd;
                    let rows = CacheRows::new(&layer.k[at..], k_row, len, hd);
                    attn::scores_f16(rows, &qg, &mut scores[j0 - lo..], npos);
                }
                drop(sp);
                let sp = span(Op::Softmax);
                for sc in scores.chunks_mut(npos) {
                    sc.iter_mut().for_each(|s| *s *= kq_scale);
                    ops::softmax_inplace(sc);
                    // The probabilities as ggml's F16 mul_mat sees them.
                    ops::round_f16_inplace(sc);
                }
                drop(sp);
                let sp = span(Op::AttnValues);
                acc.clear();
                acc.resize(nh * hdv, 0.0);
                for (j0, len) in slot_runs(layer, lo, pos) {
                    let at = layer.slot(j0) * v_row + g * hdv;
                    let rows = CacheRows::new(&layer.v[at..], v_row, len, hdv);
                    attn::values_f16(rows, &scores[j0 - lo..], npos, &mut acc);
                }
                // SAFETY: item `item` is handed to this thread only, and its heads
                // h0..h0 + nh of token t are its own output rows.
                let o = unsafe {
                    out.slice((t * hp.n_head + h0) * hdv..(t * hp.n_head + h0 + nh) * hdv)
                };
                o.copy_from_slice(&acc);
                drop(sp);
            }
        });
    }
}

/// Positions `lo..=pos` as runs `(first position, length)` whose slots are consecutive in
/// `layer`: one run, or two where a sliding-window ring wraps.
fn slot_runs(layer: &LayerCache, lo: usize, pos: usize) -> impl Iterator<Item = (usize, usize)> {
    let end = pos + 1;
    // The first position after `lo` in slot 0, where a ring wraps.
    let wrap = layer.ring.map_or(end, |r| ((lo / r + 1) * r).min(end));
    [(lo, wrap - lo), (wrap, end - wrap)]
        .into_iter()
        .filter(|&(_, len)| len > 0)
}

/// One sequence's view for attention: its tokens are `t0..t0 + n` of the batch, at
/// positions `p0..p0 + n` of its cache.
struct AttnSeq<'a> {
    t0: usize,
    n: usize,
    p0: usize,
    layer: &'a LayerCache,
}

/// `out = W x (+ b)` for the batch's rows of activations (`segments`: rows per sequence).
fn linear(
    file: &lingqiao_gguf::GgufFile,
    w: &Linear,
    x: &[f32],
    segments: &[usize],
    out: &mut [f32],
    op: Op,
) {
    linear_many(file, &mut [(w, out)], x, segments, op)
}

/// Several `out = W x (+ b)` of the same activations, in one parallel region.
fn linear_many(
    file: &lingqiao_gguf::GgufFile,
    ws: &mut [(&Linear, &mut [f32])],
    x: &[f32],
    segments: &[usize],
    op: Op,
) {
    let sp = span(op);
    let n: usize = segments.iter().sum();
    let cols = ws[0].0.cols;
    let mut outs: Vec<_> = ws
        .iter_mut()
        .map(|(w, out)| (w.view(file), &mut out[..n * w.rows]))
        .collect();
    matmul_segments(&mut outs, &x[..n * cols], segments);
    drop(sp);
    let _sp = ws
        .iter()
        .any(|(w, _)| w.bias.is_some())
        .then(|| span(Op::Bias));
    for (w, out) in ws.iter_mut() {
        if let Some(b) = &w.bias {
            out[..n * w.rows]
                .chunks_mut(w.rows)
                .for_each(|row| row.iter_mut().zip(b).for_each(|(o, bb)| *o += bb));
        }
    }
}

/// `x += o`, the residual stream.
fn add_residual(x: &mut [f32], o: &[f32]) {
    let _sp = span(Op::Residual);
    x.iter_mut().zip(o).for_each(|(a, b)| *a += b);
}

fn norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], width: usize) {
    let _sp = span(Op::Norm);
    x.chunks(width)
        .zip(out.chunks_mut(width))
        .for_each(|(xr, or)| ops::rms_norm(xr, w, eps, or));
}

fn norm_rows_inplace(x: &mut [f32], w: &[f32], eps: f32, width: usize) {
    let _sp = span(Op::Norm);
    x.chunks_mut(width)
        .for_each(|r| ops::rms_norm_inplace(r, w, eps));
}
