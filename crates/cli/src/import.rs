//! `lingqiao import HF_DIR OUT.gguf`: a Hugging Face model directory to GGUF.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use lingqiao_import::{ImportOptions, OutType};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutTypeArg {
    F32,
    F16,
    Bf16,
    #[value(name = "q8_0")]
    Q8_0,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Directory with config.json, *.safetensors, tokenizer.json, tokenizer_config.json.
    pub hf_dir: PathBuf,
    /// The GGUF file to write (replaced only once complete).
    pub out: PathBuf,
    /// Type of the weight matrices (norms and biases stay f32).
    #[arg(long, value_enum, default_value = "f16")]
    pub outtype: OutTypeArg,
}

pub fn import(args: ImportArgs) -> Result<()> {
    let out_type = match args.outtype {
        OutTypeArg::F32 => OutType::F32,
        OutTypeArg::F16 => OutType::F16,
        OutTypeArg::Bf16 => OutType::BF16,
        OutTypeArg::Q8_0 => OutType::Q8_0,
    };
    let progress = |done: usize, total: usize, name: &str| {
        eprint!("\r[{done}/{total}] {name:40}");
        if done == total {
            eprintln!();
        }
    };
    let opts = ImportOptions {
        out_type,
        progress: Some(&progress),
    };
    let t0 = Instant::now();
    let r = lingqiao_import::import_hf(&args.hf_dir, &args.out, &opts).with_context(|| {
        format!(
            "importing {} to {}",
            args.hf_dir.display(),
            args.out.display()
        )
    })?;
    let pre = r.pre.map(|p| format!(", pre {p}")).unwrap_or_default();
    let tied = if r.tied_output { " (tied output)" } else { "" };
    crate::write_stdout(&format!(
        "{}: {} {:?}, {} tensors{tied}, {} parameters, {} ({} bytes), tokenizer {}{pre} with {} tokens, {:.2} s\n",
        args.out.display(),
        r.arch,
        out_type,
        r.n_tensors,
        r.n_params,
        crate::cost::human_bytes(r.file_size),
        r.file_size,
        r.tokenizer,
        r.n_vocab,
        t0.elapsed().as_secs_f64()
    ))
}
