//! `inspect`: what a GGUF file holds and what running it costs in memory.

use crate::cost::human_bytes;
use anyhow::{Context, Result};
use clap::Args;
use lingqiao_gguf::GgufFile;
use lingqiao_model::Model;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Args)]
pub struct InspectArgs {
    /// A GGUF path or a model key.
    model: String,
    /// List every tensor.
    #[arg(long)]
    tensors: bool,
    /// Context size for the memory estimate.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    ctx: usize,
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    let path = crate::ModelArgs {
        model: args.model.clone(),
        threads: None,
        mmap: false,
    }
    .resolve()?;
    if path.is_dir() || path.file_name().is_some_and(|f| f == "model.bin") {
        return inspect_whisper(&path, args.tensors);
    }
    let file = GgufFile::open(&path).with_context(|| format!("reading {}", path.display()))?;
    // Built whole, then written once: a closed pipe (`| head`) is not an error.
    let mut out = String::new();
    writeln!(
        out,
        "file: {} (GGUF v{}, {} bytes)",
        path.display(),
        file.version(),
        file.bytes().len()
    )?;
    writeln!(out, "metadata ({} keys):", file.metadata().len())?;
    for (k, v) in file.metadata().iter() {
        let mut s = v.to_string();
        if s.chars().count() > 100 {
            s = format!(
                "{}… ({} chars)",
                s.chars().take(100).collect::<String>(),
                s.chars().count()
            );
        }
        writeln!(out, "  {k} = {}", s.replace('\n', "\\n"))?;
    }
    let mut by_type: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for t in file.tensors() {
        let e = by_type.entry(t.ty.to_string()).or_default();
        e.0 += 1;
        e.1 += t.n_elements();
        e.2 += t.n_bytes;
        if args.tensors {
            writeln!(out, "  {:40} {:6} {:?}", t.name, t.ty.to_string(), t.dims)?;
        }
    }
    writeln!(out, "tensors ({}):", file.tensors().len())?;
    let total_elems: u64 = by_type.values().map(|v| v.1).sum();
    let total_bytes: u64 = by_type.values().map(|v| v.2).sum();
    for (ty, (n, elems, bytes)) in &by_type {
        writeln!(
            out,
            "  {ty:6} {n:4} tensors, {elems:11} weights, {:>10}",
            human_bytes(*bytes)
        )?;
    }
    writeln!(
        out,
        "  total  {total_elems} weights, {}, {:.2} bits per weight",
        human_bytes(total_bytes),
        total_bytes as f64 * 8.0 / total_elems.max(1) as f64
    )?;
    match Model::from_gguf(file) {
        Ok(model) => {
            let hp = &model.hp;
            let n_ctx = args.ctx.min(hp.n_ctx_train);
            let m = model.memory_estimate(n_ctx);
            writeln!(
                out,
                "model: {} — {} layers, n_embd {}, {} heads / {} kv, head_dim {}, n_ff {}, vocab {}, trained context {}",
                hp.spec.name,
                hp.n_layer,
                hp.n_embd,
                hp.n_head,
                hp.n_head_kv,
                hp.head_dim,
                hp.n_ff,
                hp.n_vocab,
                hp.n_ctx_train
            )?;
            writeln!(
                out,
                "memory at context {n_ctx}: weights {} (read into memory; mapped with --mmap) + KV cache {} (F16) + compute {} = {}",
                human_bytes(m.weights as u64),
                human_bytes(m.kv_cache as u64),
                human_bytes(m.compute as u64),
                human_bytes(m.total() as u64)
            )?;
        }
        Err(e) => writeln!(out, "model: not runnable here: {e}")?,
    }
    writeln!(
        out,
        "this machine: {}, kernels: {}, default threads: {}",
        crate::bench::cpu_model(),
        lingqiao_kernels::isa(),
        lingqiao_pool::default_threads()
    )?;
    crate::write_stdout(&out)
}

/// A CTranslate2 Whisper model: its spec, shapes, variable types and the memory a
/// transcription needs (the weights are widened to F32 when loaded).
fn inspect_whisper(path: &std::path::Path, tensors: bool) -> Result<()> {
    let dir = lingqiao_whisper::model_dir(path);
    let bin = dir.join("model.bin");
    let f = lingqiao_whisper::ct2::Ct2File::open(&bin)
        .with_context(|| format!("reading {}", bin.display()))?;
    let mut out = String::new();
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    writeln!(
        out,
        "file: {} (CTranslate2 v{}, {}, revision {}, {size} bytes)",
        bin.display(),
        f.version,
        f.spec,
        f.revision
    )?;
    let mut by_type: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for name in f.names() {
        let v = f.var(name)?;
        let e = by_type.entry(format!("{:?}", v.dtype)).or_default();
        e.0 += 1;
        e.1 += v.shape.iter().product::<usize>() as u64;
        if tensors {
            writeln!(out, "  {name:60} {:?} {:?}", v.dtype, v.shape)?;
        }
    }
    for (ty, (n, elems)) in &by_type {
        writeln!(out, "  {ty:5} {n:4} variables, {elems} elements")?;
    }
    let tr =
        lingqiao_whisper::decode::Transcriber::load(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let d = tr.model.dims;
    writeln!(
        out,
        "whisper: {} mels, width {}, encoder {} layers x {} heads over {} positions, decoder {} layers x {} heads, {} text positions, vocabulary {} ({})",
        d.n_mels,
        d.d_model,
        d.enc_layers,
        d.enc_heads,
        d.n_audio_ctx,
        d.dec_layers,
        d.dec_heads,
        d.n_text_ctx,
        d.n_vocab,
        if tr.vocab.is_multilingual() {
            format!("multilingual, {} languages", tr.vocab.languages.len())
        } else {
            "English-only".into()
        }
    )?;
    writeln!(
        out,
        "memory: weights {} in F32 (the file holds them in {})",
        human_bytes(tr.model.weight_bytes() as u64),
        human_bytes(size)
    )?;
    crate::write_stdout(&out)
}
