//! A decode step's matrix products and nothing else: every linear layer of a GGUF model, in
//! the order one generated token runs them (per layer Q/K/V together, the attention output,
//! FFN gate and up together, FFN down; then the output projection), each as one
//! `matmul_many` call on one activation row, as the model's forward pass makes them. Prints
//! each kind of product's time per token and weight GB/s, and the tokens per second the
//! products alone allow: the ceiling the rest of the forward pass can only lower.
//!
//! Activations are a fixed pattern (speed does not depend on them); one warm-up token runs
//! first, so the kernel table's probe and first-touch costs are not counted.
//!
//! Run: `cargo run --release -p lingqiao-kernels --example decode_stream -- MODEL.gguf
//! [threads] [tokens]` (2 threads, 10 tokens by default), e.g. with
//! `~/.cache/lingqiao/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`.

use lingqiao_gguf::GgufFile;
use lingqiao_kernels::ops::{WeightView, matmul_many};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: decode_stream MODEL.gguf [threads] [tokens]");
    let threads: usize = args.next().map_or(2, |a| a.parse().expect("threads"));
    let tokens: usize = args.next().map_or(10, |a| a.parse().expect("tokens"));
    let file = GgufFile::open_resident(&path).expect("reading the model");
    let view = |name: &str| {
        let t = file.tensor(name)?;
        Some(WeightView {
            ty: t.ty,
            data: file.tensor_data(t),
            cols: t.dims[0] as usize,
            rows: t.dims.get(1).copied().unwrap_or(1) as usize,
        })
    };
    let n_layers = (0..)
        .take_while(|l| view(&format!("blk.{l}.attn_q.weight")).is_some())
        .count();
    // (kind, the tensors one call multiplies together), in decode order.
    let mut calls: Vec<(String, Vec<WeightView>)> = Vec::new();
    for l in 0..n_layers {
        let w = |s: &str| view(&format!("blk.{l}.{s}.weight")).expect("a layer tensor");
        let qkv = [w("attn_q"), w("attn_k"), w("attn_v")];
        let kind = format!("qkv ({:?} v)", qkv[2].ty);
        calls.push((kind, qkv.to_vec()));
        calls.push(("attn_output".into(), vec![w("attn_output")]));
        calls.push(("ffn gate+up".into(), vec![w("ffn_gate"), w("ffn_up")]));
        let down = w("ffn_down");
        calls.push((format!("ffn_down ({:?})", down.ty), vec![down]));
    }
    let output = view("output.weight")
        .or_else(|| view("token_embd.weight"))
        .expect("an output projection");
    calls.push(("output".into(), vec![output]));
    let widest = calls
        .iter()
        .flat_map(|(_, ws)| ws)
        .map(|w| w.cols)
        .max()
        .unwrap_or(0);
    let x: Vec<f32> = (0..widest)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let mut outs: Vec<Vec<Vec<f32>>> = calls
        .iter()
        .map(|(_, ws)| ws.iter().map(|w| vec![0f32; w.rows]).collect())
        .collect();

    let pool = lingqiao_pool::ThreadPool::new(threads);
    // kind -> (seconds, weight bytes)
    let mut per_kind: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    let mut total = 0f64;
    pool.install(|| {
        for token in 0..=tokens {
            for ((kind, ws), out) in calls.iter().zip(&mut outs) {
                let mut pairs: Vec<(WeightView, &mut [f32])> = ws
                    .iter()
                    .copied()
                    .zip(out.iter_mut().map(|o| &mut o[..]))
                    .collect();
                let t0 = Instant::now();
                matmul_many(&mut pairs, &x[..ws[0].cols], 1);
                let s = t0.elapsed().as_secs_f64();
                if token > 0 {
                    let e = per_kind.entry(kind).or_default();
                    e.0 += s;
                    e.1 += ws.iter().map(|w| w.data.len()).sum::<usize>();
                    total += s;
                }
            }
        }
    });
    let bytes: usize = per_kind.values().map(|v| v.1).sum::<usize>() / tokens;
    println!("{path}: {threads} threads, {tokens} tokens, {n_layers} layers");
    for (kind, (s, b)) in &per_kind {
        println!(
            "  {kind:22} {:7.2} ms/token {:6.1} GB/s",
            s / tokens as f64 * 1e3,
            *b as f64 / s / 1e9
        );
    }
    println!(
        "  all products           {:7.2} ms/token {:6.1} GB/s  -> {:.2} tok/s ({:.3} GB per token)",
        total / tokens as f64 * 1e3,
        (bytes * tokens) as f64 / total / 1e9,
        tokens as f64 / total,
        bytes as f64 / 1e9
    );
}
