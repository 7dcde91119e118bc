//! `perplexity`: llama-perplexity's measure on a text file (see `lingqiao_eval`), with
//! `--save-logits` to keep a base model's log-probs and `--kl-divergence` to compare a
//! quantized model with them.

use crate::ModelArgs;
use anyhow::{Context, Result, bail};
use clap::Args;
use lingqiao_eval::{
    BaseLogits, ChunkProgress, KldReport, LogitsWriter, PerplexityOptions, tokenize_text,
};
use lingqiao_tokenizer::Tokenizer;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to score (UTF-8). Optional with --kl-divergence, whose file holds the tokens.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Tokens per chunk [default: 512, or the base file's with --kl-divergence].
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// Tokens per forward call (at most 512 are used).
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    batch: usize,
    /// Score at most this many chunks [default: all, or the base file's].
    #[arg(long)]
    chunks: Option<usize>,
    /// Save the scored log-probs to FILE, the base for a later --kl-divergence.
    #[arg(long, value_name = "FILE", alias = "kl-divergence-base")]
    save_logits: Option<PathBuf>,
    /// Compare with a base model's log-probs saved by --save-logits: KL divergence, top
    /// token agreement, perplexity ratio.
    #[arg(long, value_name = "FILE", conflicts_with = "save_logits")]
    kl_divergence: Option<PathBuf>,
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

pub fn perplexity(args: PerplexityArgs) -> Result<()> {
    let mut base = args
        .kl_divergence
        .as_ref()
        .map(BaseLogits::open)
        .transpose()?;
    let path = args.model.resolve()?;
    let model = args.model.load(&path)?;
    let tok = Tokenizer::from_gguf(model.file.metadata()).context("reading the tokenizer")?;
    let mut opts = PerplexityOptions::for_tokenizer(&tok);
    opts.n_batch = args.batch;
    opts.n_ctx = args.ctx.unwrap_or(512);
    opts.n_chunks = args.chunks;
    let tokens = match (&args.file, &base) {
        (Some(f), _) => tokenize_text(&tok, &read_text(f)?),
        (None, Some(b)) => b.header().tokens.clone(),
        (None, None) => bail!("give the text to score with -f FILE"),
    };
    if let Some(b) = &base {
        let h = b.header();
        opts.n_ctx = args.ctx.unwrap_or(h.n_ctx);
        opts.n_chunks = Some(args.chunks.unwrap_or(h.n_chunk));
    }
    let pool = args.model.pool()?;
    eprintln!(
        "perplexity: {} tokens, n_ctx={}, batch_size={}, {} threads",
        tokens.len(),
        opts.n_ctx,
        opts.n_batch.min(lingqiao_model::N_BATCH).min(opts.n_ctx),
        pool.n_threads()
    );
    let mut save = args
        .save_logits
        .as_ref()
        .map(LogitsWriter::create)
        .transpose()?;
    let kl_mode = base.is_some();
    if kl_mode {
        println!("chunk        PPL   mean KLD   same top");
    }
    let mut show = |p: &ChunkProgress| {
        let mut out = std::io::stdout().lock();
        // Progress is best effort: a closed pipe must not stop the measurement.
        let _ = match p.kld {
            Some((kld, top)) => writeln!(
                out,
                "{:5} {:10.4} {:10.6} {:9.3}%",
                p.chunk,
                p.ppl,
                kld,
                100.0 * top
            ),
            None => write!(out, "[{}]{:.4},", p.chunk, p.ppl),
        };
        let _ = out.flush();
    };
    let report = pool.install(|| {
        lingqiao_eval::perplexity(
            &model,
            &tokens,
            &opts,
            base.as_mut(),
            save.as_mut(),
            &mut show,
        )
    })?;
    println!();
    if let Some(k) = &report.kld {
        print_kld(k);
    }
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5}",
        report.ppl, report.ppl_stderr
    );
    println!(
        "{} chunks of {} tokens ({} scored) in {:.2} s: {:.1} tokens/s",
        report.n_chunks,
        report.n_ctx,
        report.n_tokens_scored,
        report.seconds,
        report.tokens_per_second()
    );
    if let Some(p) = &args.save_logits {
        println!("log-probs saved to {}", p.display());
    }
    Ok(())
}

fn print_kld(k: &KldReport) {
    println!("====== Perplexity statistics ======");
    println!(
        "Mean PPL(Q)                   : {:10.6} ± {:10.6}",
        k.ppl, k.ppl_stderr
    );
    println!(
        "Mean PPL(base)                : {:10.6} ± {:10.6}",
        k.ppl_base, k.ppl_base_stderr
    );
    println!(
        "Mean ln(PPL(Q)/PPL(base))     : {:10.6} ± {:10.6}",
        k.ln_ppl_ratio, k.ln_ppl_ratio_stderr
    );
    println!(
        "Mean PPL(Q)/PPL(base)         : {:10.6} ± {:10.6}",
        k.ppl_ratio, k.ppl_ratio_stderr
    );
    println!();
    println!("====== KL divergence statistics ======");
    println!("Mean    KLD: {:10.6} ± {:10.6}", k.mean_kld, k.kld_stderr);
    println!("Maximum KLD: {:10.6}", k.max_kld);
    println!("99.0%   KLD: {:10.6}", k.p99_kld);
    println!("Median  KLD: {:10.6}", k.median_kld);
    println!();
    println!("====== Token probability statistics ======");
    println!(
        "RMS Δp    : {:6.3} ± {:5.3} %",
        100.0 * k.rms_dp,
        100.0 * k.rms_dp_stderr
    );
    println!(
        "Same top p: {:6.3} ± {:5.3} %",
        100.0 * k.top1_agreement,
        100.0 * k.top1_stderr
    );
    println!();
}
