//! Whisper's encoder and decoder on lingqiao's kernel tables.
//!
//! The weights come from a CTranslate2 `WhisperSpec` model (see [`crate::ct2`]); every
//! linear layer, both convolutions (as an im2col product) and the attention products run
//! through [`lingqiao_kernels::ops::matmul`], so they use the same SIMD tables, thread pool
//! and determinism rules as the language models. The FP16 weights are widened to F32 when
//! loaded, so the arithmetic is that of the float32 reference (faster-whisper with
//! `compute_type="float32"`).

use crate::ct2::{Ct2Error, Ct2File};
use lingqiao_kernels::gemm::{PackedF32, gemm_f32, gemm_f32_nt};
use std::path::Path;

/// Frames of audio the encoder sees at once (30 s at 100 frames per second).
pub use crate::mel::N_FRAMES;
const LN_EPS: f32 = 1e-5;

/// The shapes of a Whisper model, read from the variables themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n_mels: usize,
    /// Encoder positions (1500: 3000 frames after the stride-2 convolution).
    pub n_audio_ctx: usize,
    pub d_model: usize,
    pub enc_heads: usize,
    pub enc_layers: usize,
    pub dec_heads: usize,
    pub dec_layers: usize,
    pub n_vocab: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
}

/// A linear layer: `rows` outputs of `cols` inputs and a bias, its F32 weights packed once
/// for [`gemm_f32`] (the kernel tables' float product: one fused multiply-add chain per
/// output, the same bits on every table and thread count).
struct Linear {
    w: PackedF32,
    b: Option<Vec<f32>>,
}

impl Linear {
    fn new(w: Vec<f32>, rows: usize, cols: usize, b: Option<Vec<f32>>) -> Self {
        Linear {
            w: PackedF32::pack(&w, rows, cols),
            b,
        }
    }

    fn load(
        f: &Ct2File,
        name: &str,
        rows: usize,
        cols: usize,
        bias: bool,
    ) -> Result<Self, Ct2Error> {
        let w = f.f32s(&format!("{name}/weight"), &[rows, cols])?;
        let b = if bias {
            Some(f.f32s(&format!("{name}/bias"), &[rows])?)
        } else {
            None
        };
        Ok(Linear::new(w, rows, cols, b))
    }

    /// A convolution `[out, in, k]` read as a linear layer over `in * k` inputs.
    fn conv(f: &Ct2File, name: &str, out: usize, inp: usize, k: usize) -> Result<Self, Ct2Error> {
        let w = f.f32s(&format!("{name}/weight"), &[out, inp, k])?;
        let b = Some(f.f32s(&format!("{name}/bias"), &[out])?);
        Ok(Linear::new(w, out, inp * k, b))
    }

    /// `out = x W^T + b` for `n` rows of `x`.
    fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let rows = self.w.rows();
        let mut out = vec![0f32; n * rows];
        gemm_f32(&self.w, x, n, &mut out);
        if let Some(b) = &self.b {
            for row in out.chunks_exact_mut(rows) {
                add(row, b);
            }
        }
        out
    }

    fn bytes(&self) -> usize {
        self.w.bytes() + 4 * self.b.as_ref().map_or(0, Vec::len)
    }
}

/// The token embedding, which is also the output projection (tied): packed once, rows
/// read back for the lookup and the logits one product per decoded position.
struct Embedding {
    w: PackedF32,
}

impl Embedding {
    fn row(&self, t: usize, out: &mut [f32]) {
        self.w.row(t, out);
    }

    fn logits(&self, h: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.w.rows()];
        gemm_f32(&self.w, h, 1, &mut out);
        out
    }
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

impl Norm {
    fn load(f: &Ct2File, name: &str, d: usize) -> Result<Self, Ct2Error> {
        Ok(Norm {
            g: f.f32s(&format!("{name}/gamma"), &[d])?,
            b: f.f32s(&format!("{name}/beta"), &[d])?,
        })
    }

    /// Layer normalization of each `d`-wide row.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let d = self.g.len();
        let mut out = vec![0f32; x.len()];
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = xr.iter().sum::<f32>() / d as f32;
            let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + LN_EPS).sqrt();
            for i in 0..d {
                or[i] = (xr[i] - mean) * inv * self.g[i] + self.b[i];
            }
        }
        out
    }
}

use crate::math::{gelu, softmax};

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

struct EncLayer {
    ln1: Norm,
    qkv: Linear,
    out: Linear,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
}

struct DecLayer {
    ln1: Norm,
    qkv: Linear,
    out: Linear,
    lnx: Norm,
    xq: Linear,
    xkv: Linear,
    xout: Linear,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// A loaded Whisper model.
pub struct Whisper {
    pub dims: Dims,
    conv1: Linear,
    conv2: Linear,
    enc_pos: Vec<f32>,
    enc: Vec<EncLayer>,
    enc_ln: Norm,
    embed: Embedding,
    dec_pos: Vec<f32>,
    dec: Vec<DecLayer>,
    dec_ln: Norm,
}

fn count_layers(f: &Ct2File, prefix: &str) -> usize {
    (0..)
        .take_while(|i| f.has(&format!("{prefix}/layer_{i}/ffn/linear_0/weight")))
        .count()
}

fn heads(f: &Ct2File, name: &str, d: usize) -> Result<usize, Ct2Error> {
    let h = f.int(name)?;
    if h <= 0 || !d.is_multiple_of(h as usize) {
        return Err(Ct2Error::Unexpected {
            name: name.into(),
            what: format!("{h}, which does not divide the width {d}"),
        });
    }
    Ok(h as usize)
}

impl Whisper {
    /// Loads `model.bin` from a CTranslate2 Whisper directory.
    pub fn load(dir: &Path) -> Result<Whisper, Ct2Error> {
        Self::from_ct2(&Ct2File::open(&dir.join("model.bin"))?)
    }

    pub fn from_ct2(f: &Ct2File) -> Result<Whisper, Ct2Error> {
        if f.spec != "WhisperSpec" {
            return Err(Ct2Error::Format(format!(
                "the model is a {:?}, not a Whisper model",
                f.spec
            )));
        }
        let shape = |name: &str, rank: usize| -> Result<Vec<usize>, Ct2Error> {
            let v = f.var(name)?;
            if v.shape.len() != rank {
                return Err(Ct2Error::Unexpected {
                    name: name.into(),
                    what: format!("of shape {:?}", v.shape),
                });
            }
            Ok(v.shape.clone())
        };
        let c1 = shape("encoder/conv1/weight", 3)?;
        let (d, n_mels) = (c1[0], c1[1]);
        let ep = shape("encoder/position_encodings/encodings", 2)?;
        let emb = shape("decoder/embeddings/weight", 2)?;
        let dp = shape("decoder/position_encodings/encodings", 2)?;
        let dims = Dims {
            n_mels,
            n_audio_ctx: ep[0],
            d_model: d,
            enc_heads: heads(f, "encoder/num_heads", d)?,
            enc_layers: count_layers(f, "encoder"),
            dec_heads: heads(f, "decoder/num_heads", d)?,
            dec_layers: count_layers(f, "decoder"),
            n_vocab: emb[0],
            n_text_ctx: dp[0],
        };
        if c1[2] != 3 || 2 * dims.n_audio_ctx != N_FRAMES || ep[1] != d || emb[1] != d || dp[1] != d
        {
            return Err(Ct2Error::Format(format!(
                "inconsistent Whisper shapes: conv1 {c1:?}, encoder positions {ep:?}, embeddings {emb:?}, decoder positions {dp:?}"
            )));
        }
        let ff = |p: &str| -> Result<usize, Ct2Error> {
            Ok(shape(&format!("{p}/ffn/linear_0/weight"), 2)?[0])
        };
        let enc = (0..dims.enc_layers)
            .map(|i| {
                let p = format!("encoder/layer_{i}");
                let h = ff(&p)?;
                Ok(EncLayer {
                    ln1: Norm::load(f, &format!("{p}/self_attention/layer_norm"), d)?,
                    qkv: Linear::load(f, &format!("{p}/self_attention/linear_0"), 3 * d, d, true)?,
                    out: Linear::load(f, &format!("{p}/self_attention/linear_1"), d, d, true)?,
                    ln2: Norm::load(f, &format!("{p}/ffn/layer_norm"), d)?,
                    fc1: Linear::load(f, &format!("{p}/ffn/linear_0"), h, d, true)?,
                    fc2: Linear::load(f, &format!("{p}/ffn/linear_1"), d, h, true)?,
                })
            })
            .collect::<Result<_, Ct2Error>>()?;
        let dec = (0..dims.dec_layers)
            .map(|i| {
                let p = format!("decoder/layer_{i}");
                let h = ff(&p)?;
                Ok(DecLayer {
                    ln1: Norm::load(f, &format!("{p}/self_attention/layer_norm"), d)?,
                    qkv: Linear::load(f, &format!("{p}/self_attention/linear_0"), 3 * d, d, true)?,
                    out: Linear::load(f, &format!("{p}/self_attention/linear_1"), d, d, true)?,
                    lnx: Norm::load(f, &format!("{p}/attention/layer_norm"), d)?,
                    xq: Linear::load(f, &format!("{p}/attention/linear_0"), d, d, true)?,
                    xkv: Linear::load(f, &format!("{p}/attention/linear_1"), 2 * d, d, true)?,
                    xout: Linear::load(f, &format!("{p}/attention/linear_2"), d, d, true)?,
                    ln2: Norm::load(f, &format!("{p}/ffn/layer_norm"), d)?,
                    fc1: Linear::load(f, &format!("{p}/ffn/linear_0"), h, d, true)?,
                    fc2: Linear::load(f, &format!("{p}/ffn/linear_1"), d, h, true)?,
                })
            })
            .collect::<Result<_, Ct2Error>>()?;
        Ok(Whisper {
            dims,
            conv1: Linear::conv(f, "encoder/conv1", d, n_mels, 3)?,
            conv2: Linear::conv(f, "encoder/conv2", d, d, 3)?,
            enc_pos: f.f32s("encoder/position_encodings/encodings", &ep)?,
            enc,
            enc_ln: Norm::load(f, "encoder/layer_norm", d)?,
            embed: Embedding {
                w: PackedF32::pack(&f.f32s("decoder/embeddings/weight", &emb)?, emb[0], d),
            },
            dec_pos: f.f32s("decoder/position_encodings/encodings", &dp)?,
            dec,
            dec_ln: Norm::load(f, "decoder/layer_norm", d)?,
        })
    }

    /// Bytes of weights held in memory.
    pub fn weight_bytes(&self) -> usize {
        let enc: usize = self
            .enc
            .iter()
            .map(|l| l.qkv.bytes() + l.out.bytes() + l.fc1.bytes() + l.fc2.bytes())
            .sum();
        let dec: usize = self
            .dec
            .iter()
            .map(|l| {
                l.qkv.bytes()
                    + l.out.bytes()
                    + l.xq.bytes()
                    + l.xkv.bytes()
                    + l.xout.bytes()
                    + l.fc1.bytes()
                    + l.fc2.bytes()
            })
            .sum();
        enc + dec
            + self.conv1.bytes()
            + self.conv2.bytes()
            + self.embed.w.bytes()
            + 4 * (self.enc_pos.len() + self.dec_pos.len())
    }

    /// The encoder: a `n_mels x 3000` log-mel window (mel-major) to `n_audio_ctx x d_model`.
    pub fn encode(&self, mel: &[f32]) -> Vec<f32> {
        let Dims {
            n_mels,
            n_audio_ctx: n,
            d_model: d,
            ..
        } = self.dims;
        assert_eq!(
            mel.len(),
            n_mels * N_FRAMES,
            "encode: the window is not n_mels x 3000"
        );
        // conv1 (kernel 3, padding 1) as a product: row t holds mel[c][t + k - 1] at c*3 + k.
        let mut cols = vec![0f32; N_FRAMES * n_mels * 3];
        for t in 0..N_FRAMES {
            let row = &mut cols[t * n_mels * 3..(t + 1) * n_mels * 3];
            for c in 0..n_mels {
                for k in 0..3 {
                    let s = t + k;
                    if (1..=N_FRAMES).contains(&s) {
                        row[c * 3 + k] = mel[c * N_FRAMES + s - 1];
                    }
                }
            }
        }
        let mut h1 = self.conv1.forward(&cols, N_FRAMES);
        gelu(&mut h1);
        // conv2 (kernel 3, stride 2, padding 1): row t holds h1[2t + k - 1][c] at c*3 + k.
        let mut cols = vec![0f32; n * d * 3];
        for t in 0..n {
            let row = &mut cols[t * d * 3..(t + 1) * d * 3];
            for k in 0..3 {
                let s = 2 * t + k;
                if (1..=N_FRAMES).contains(&s) {
                    let src = &h1[(s - 1) * d..s * d];
                    for c in 0..d {
                        row[c * 3 + k] = src[c];
                    }
                }
            }
        }
        let mut x = self.conv2.forward(&cols, n);
        gelu(&mut x);
        add(&mut x, &self.enc_pos);
        for l in &self.enc {
            let h = l.ln1.forward(&x);
            let qkv = l.qkv.forward(&h, n);
            let (q, k, v) = split3(&qkv, n, d);
            let a = attention(&q, &k, &v, n, n, d, self.dims.enc_heads, None);
            add(&mut x, &l.out.forward(&a, n));
            let h = l.ln2.forward(&x);
            let mut f = l.fc1.forward(&h, n);
            gelu(&mut f);
            add(&mut x, &l.fc2.forward(&f, n));
        }
        self.enc_ln.forward(&x)
    }

    /// The cross-attention keys and values of one window's encoder output, computed once
    /// and shared by every hypothesis decoded against it.
    pub fn cross(&self, enc: &[f32]) -> Cross {
        let Dims {
            n_audio_ctx: n,
            d_model: d,
            ..
        } = self.dims;
        assert_eq!(
            enc.len(),
            n * d,
            "cross: encoder output is not n_audio_ctx x d_model"
        );
        let layers = self
            .dec
            .iter()
            .map(|l| {
                let kv = l.xkv.forward(enc, n);
                let mut k = vec![0f32; n * d];
                let mut v = vec![0f32; n * d];
                for t in 0..n {
                    k[t * d..(t + 1) * d].copy_from_slice(&kv[t * 2 * d..t * 2 * d + d]);
                    v[t * d..(t + 1) * d].copy_from_slice(&kv[t * 2 * d + d..(t + 1) * 2 * d]);
                }
                (k, v)
            })
            .collect();
        Cross { layers }
    }

    /// An empty self-attention cache for one sequence.
    pub fn cache(&self) -> SelfCache {
        SelfCache {
            k: vec![Vec::new(); self.dec.len()],
            v: vec![Vec::new(); self.dec.len()],
            len: 0,
        }
    }

    /// Runs `tokens` through the decoder after the cache's current length and returns the
    /// logits of the positions in `want` (indices into `tokens`), each `n_vocab` long.
    pub fn decode(
        &self,
        cross: &Cross,
        cache: &mut SelfCache,
        tokens: &[u32],
        want: &[usize],
    ) -> Vec<Vec<f32>> {
        let d = self.dims.d_model;
        let x = self.forward(cross, std::slice::from_mut(cache), &[tokens]);
        want.iter()
            .map(|&i| self.logits(&x[i * d..(i + 1) * d]))
            .collect()
    }

    /// One token for each of several sequences (beam search's hypotheses) in one pass: the
    /// linear layers run over all of them at once, attention over each one's own cache.
    /// Returns each sequence's logits.
    pub fn decode_step(
        &self,
        cross: &Cross,
        caches: &mut [SelfCache],
        tokens: &[u32],
    ) -> Vec<Vec<f32>> {
        let seqs: Vec<&[u32]> = tokens.chunks(1).collect();
        let x = self.forward(cross, caches, &seqs);
        // One product over every hypothesis: the vocabulary matrix is read once per step.
        let h = self.dec_ln.forward(&x);
        let v = self.embed.w.rows();
        let mut out = vec![0f32; tokens.len() * v];
        gemm_f32(&self.embed.w, &h, tokens.len(), &mut out);
        out.chunks_exact(v).map(<[f32]>::to_vec).collect()
    }

    fn logits(&self, h: &[f32]) -> Vec<f32> {
        self.embed.logits(&self.dec_ln.forward(h))
    }

    /// The decoder stack over the tokens of several sequences, sequence `i`'s tokens
    /// appended to `caches[i]`; returns the last layer's output rows (before the final norm).
    /// Panics past `n_text_ctx` or on a token out of range (the callers bound both).
    fn forward(&self, cross: &Cross, caches: &mut [SelfCache], seqs: &[&[u32]]) -> Vec<f32> {
        let Dims {
            d_model: d,
            n_audio_ctx,
            n_text_ctx,
            n_vocab,
            ..
        } = self.dims;
        assert_eq!(caches.len(), seqs.len());
        let m: usize = seqs.iter().map(|s| s.len()).sum();
        let mut x = vec![0f32; m * d];
        let mut row = 0;
        for (seq, cache) in seqs.iter().zip(caches.iter()) {
            assert!(
                cache.len + seq.len() <= n_text_ctx,
                "decoder: past the text context"
            );
            for (i, &t) in seq.iter().enumerate() {
                let t = t as usize;
                assert!(t < n_vocab, "decoder: token {t} out of range");
                let p = cache.len + i;
                let r = &mut x[row * d..(row + 1) * d];
                self.embed.row(t, r);
                add(r, &self.dec_pos[p * d..(p + 1) * d]);
                row += 1;
            }
        }
        for (li, l) in self.dec.iter().enumerate() {
            let h = l.ln1.forward(&x);
            let qkv = l.qkv.forward(&h, m);
            let (q, k, v) = split3(&qkv, m, d);
            let mut a = vec![0f32; m * d];
            let mut at = 0;
            for (seq, cache) in seqs.iter().zip(caches.iter_mut()) {
                let n = seq.len();
                let r = at * d..(at + n) * d;
                cache.k[li].extend_from_slice(&k[r.clone()]);
                cache.v[li].extend_from_slice(&v[r.clone()]);
                let p0 = cache.len;
                let o = attention(
                    &q[r.clone()],
                    &cache.k[li],
                    &cache.v[li],
                    n,
                    p0 + n,
                    d,
                    self.dims.dec_heads,
                    Some(p0),
                );
                a[r].copy_from_slice(&o);
                at += n;
            }
            add(&mut x, &l.out.forward(&a, m));
            let h = l.lnx.forward(&x);
            let q = l.xq.forward(&h, m);
            let (ck, cv) = &cross.layers[li];
            let a = attention(&q, ck, cv, m, n_audio_ctx, d, self.dims.dec_heads, None);
            add(&mut x, &l.xout.forward(&a, m));
            let h = l.ln2.forward(&x);
            let mut f = l.fc1.forward(&h, m);
            gelu(&mut f);
            add(&mut x, &l.fc2.forward(&f, m));
        }
        for (seq, cache) in seqs.iter().zip(caches.iter_mut()) {
            cache.len += seq.len();
        }
        x
    }
}

/// One window's cross-attention keys and values, per decoder layer.
pub struct Cross {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// One sequence's self-attention cache.
#[derive(Clone)]
pub struct SelfCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

impl SelfCache {
    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn split3(qkv: &[f32], n: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut q = Vec::with_capacity(n * d);
    let mut k = Vec::with_capacity(n * d);
    let mut v = Vec::with_capacity(n * d);
    for row in qkv.chunks_exact(3 * d) {
        q.extend_from_slice(&row[..d]);
        k.extend_from_slice(&row[d..2 * d]);
        v.extend_from_slice(&row[2 * d..]);
    }
    (q, k, v)
}

/// Multi-head attention of `nq` queries over `nk` keys (rows of width `d`, `heads` heads):
/// softmax(q k^T / sqrt(hd)) v per head. With `causal = Some(p0)`, query i sits at position
/// p0 + i and sees keys 0..=p0 + i. The two products of each head run on the kernel tables'
/// float product ([`gemm_f32_nt`]: the scores against the keys, then the probabilities
/// against the transposed values).
#[allow(clippy::too_many_arguments)]
fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    nq: usize,
    nk: usize,
    d: usize,
    heads: usize,
    causal: Option<usize>,
) -> Vec<f32> {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    if nq <= 4 {
        return attention_direct(q, k, v, nq, nk, d, heads, causal);
    }
    let mut out = vec![0f32; nq * d];
    let mut kh = vec![0f32; nk * hd];
    let mut vt = vec![0f32; hd * nk];
    let mut qh = vec![0f32; nq * hd];
    let mut s = vec![0f32; nq * nk];
    let mut o = vec![0f32; nq * hd];
    for h in 0..heads {
        for t in 0..nk {
            kh[t * hd..(t + 1) * hd].copy_from_slice(&k[t * d + h * hd..t * d + (h + 1) * hd]);
            for j in 0..hd {
                vt[j * nk + t] = v[t * d + h * hd + j];
            }
        }
        for t in 0..nq {
            for j in 0..hd {
                qh[t * hd + j] = q[t * d + h * hd + j] * scale;
            }
        }
        gemm_f32_nt(&qh, nq, &kh, nk, hd, &mut s);
        for (i, row) in s.chunks_exact_mut(nk).enumerate() {
            let visible = causal.map_or(nk, |p0| (p0 + i + 1).min(nk));
            softmax(&mut row[..visible]);
            row[visible..].fill(0.0);
        }
        gemm_f32_nt(&s, nq, &vt, hd, nk, &mut o);
        for t in 0..nq {
            out[t * d + h * hd..t * d + (h + 1) * hd].copy_from_slice(&o[t * hd..(t + 1) * hd]);
        }
    }
    out
}

/// [`attention`] for a few queries (a decoding step): dot products straight off the
/// row-major keys and a weighted sum of the value rows, with no per-head copies.
#[allow(clippy::too_many_arguments)]
fn attention_direct(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    nq: usize,
    nk: usize,
    d: usize,
    heads: usize,
    causal: Option<usize>,
) -> Vec<f32> {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; nq * d];
    let mut s = vec![0f32; nk];
    for i in 0..nq {
        let visible = causal.map_or(nk, |p0| (p0 + i + 1).min(nk));
        for h in 0..heads {
            let qh: Vec<f32> = q[i * d + h * hd..i * d + (h + 1) * hd]
                .iter()
                .map(|x| x * scale)
                .collect();
            for (t, st) in s[..visible].iter_mut().enumerate() {
                let kr = &k[t * d + h * hd..t * d + (h + 1) * hd];
                *st = qh.iter().zip(kr).map(|(a, b)| a * b).sum();
            }
            softmax(&mut s[..visible]);
            let o = &mut out[i * d + h * hd..i * d + (h + 1) * hd];
            for (t, &p) in s[..visible].iter().enumerate() {
                let vr = &v[t * d + h * hd..t * d + (h + 1) * hd];
                for (o, x) in o.iter_mut().zip(vr) {
                    *o += p * x;
                }
            }
        }
    }
    out
}
