//! `lingqiao quantize IN OUT TYPE`: rewrite a model's weights in another type, with
//! llama-quantize's per-tensor mixes.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use lingqiao_quantize::{QuantizeError, QuantizeOptions, Target};

#[derive(Args)]
pub struct QuantizeArgs {
    /// Input model: a GGUF path (F32, F16, BF16, or already quantized) or a key such as
    /// qwen05 (fetched if missing).
    input: String,
    /// Output GGUF path (written as OUTPUT.tmp-<pid>, renamed when complete).
    output: PathBuf,
    /// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S,
    /// Q5_K_M, Q6_K, F16, BF16, F32 (case-insensitive; Q3_K, Q4_K, Q5_K mean the _M mixes).
    #[arg(value_name = "TYPE")]
    target: String,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Every quantizable tensor gets TYPE's base type: no K-quant mix (llama-quantize --pure).
    #[arg(long)]
    pure: bool,
}

/// Ctrl-C (and SIGTERM) stop the run between chunks so the temporary file is removed.
extern "C" fn on_signal(_: libc::c_int) {
    lingqiao_quantize::cancel();
}

pub fn quantize(args: QuantizeArgs) -> Result<()> {
    let target: Target = args.target.parse()?;
    anyhow::ensure!(args.threads != Some(0), "--threads must be at least 1");
    let input = crate::resolve_model(&args.input)?;
    let opts = QuantizeOptions {
        target,
        threads: args.threads.unwrap_or(0),
        pure: args.pure,
        progress: true,
    };
    // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let r = match lingqiao_quantize::quantize_file(&input, &args.output, &opts) {
        Err(QuantizeError::Interrupted) => {
            eprintln!("interrupted: {} was not written", args.output.display());
            std::process::exit(130);
        }
        r => r?,
    };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let types: Vec<String> = r.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    crate::write_stdout(&format!(
        "{} -> {} ({target}{})\n\
         size:    {:.2} MiB -> {:.2} MiB ({:.2} -> {:.2} bits per weight, {} weights)\n\
         tensors: {}\n\
         time:    {:.2} s ({threads} threads)\n",
        input.display(),
        args.output.display(),
        if opts.pure { ", pure" } else { "" },
        mib(r.bytes_in),
        mib(r.bytes_out),
        r.bytes_in as f64 * 8.0 / r.n_params.max(1) as f64,
        r.bpw,
        r.n_params,
        types.join(", "),
        r.seconds,
    ))
}
