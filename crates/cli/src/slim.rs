//! `lingqiao slim MODEL --to TYPE[,TYPE...] -f TEXT [--fit-memory SIZE]`: what each
//! quantization of a model costs in quality, in one table, and optionally the best one
//! that fits a size budget.
//!
//! The original's log-probs on the text are computed once and saved; each candidate is
//! quantized to a temporary file next to the output, scored against them (perplexity,
//! KL divergence, top-token agreement, as `lingqiao perplexity --kl-divergence`), and
//! deleted unless it is the pick. Temporary files live in `.lingqiao-slim-<pid>/` in the
//! output's directory (same filesystem, so the pick is renamed, not copied).

use crate::cost::human_bytes;
use crate::perplexity::read_text;
use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use lingqiao_eval::{BaseLogits, LogitsWriter, PerplexityOptions, tokenize_text};
use lingqiao_model::Model;
use lingqiao_quantize::{QuantizeOptions, Target};
use lingqiao_tokenizer::Tokenizer;
use std::path::PathBuf;

#[derive(Args)]
pub struct SlimArgs {
    /// The original model: a GGUF path or a key such as qwen05 (fetched if missing).
    model: String,
    /// Candidate types, comma-separated (as `lingqiao quantize`: Q8_0, Q4_K_M, ...).
    #[arg(long = "to", value_delimiter = ',', required = true)]
    to: Vec<String>,
    /// Pick the lowest-KLD candidate whose file is at most SIZE (e.g. 300M, 1.5G, 800MB;
    /// K/M/G and KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000) and write it.
    #[arg(long, value_name = "SIZE")]
    fit_memory: Option<String>,
    /// Where --fit-memory writes its pick [default: <model name>-<TYPE>.gguf here].
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// The text to score (UTF-8).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Score at most this many chunks [default: all].
    #[arg(long)]
    chunks: Option<usize>,
    /// Threads for quantizing and scoring (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
}

/// `300M`, `1.5GiB`, `800MB`, `1000000`: a byte count.
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .with_context(|| format!("size {s:?}: expected a number with an optional unit"))?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KIB" => 1024.0,
        "M" | "MIB" => 1024.0 * 1024.0,
        "G" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => bail!("size {s:?}: unknown unit {u:?} (K, M, G, KiB, MiB, GiB, KB, MB, GB)"),
    };
    ensure!(v.is_finite() && v > 0.0, "size {s:?} must be positive");
    Ok((v * mult) as u64)
}

/// The temporary directory, removed with everything in it however `slim` ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Row {
    target: Target,
    size: u64,
    bpw: f64,
    ppl: f64,
    kld: f64,
    top1: f64,
    /// The quantized file, kept while it may still be the pick.
    path: Option<PathBuf>,
}

pub fn slim(args: SlimArgs) -> Result<()> {
    let targets: Vec<Target> = args
        .to
        .iter()
        .map(|t| t.parse())
        .collect::<Result<_, _>>()?;
    let budget = args.fit_memory.as_deref().map(parse_size).transpose()?;
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let input = crate::resolve_model(&args.model)?;
    let text = read_text(&args.file)?;
    let stem = input
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let out_dir = match args.output.as_ref().and_then(|o| o.parent()) {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = TempDir(out_dir.join(format!(".lingqiao-slim-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).with_context(|| format!("creating {}", tmp.0.display()))?;
    let pool = lingqiao_pool::ThreadPool::new(threads);

    let original = Model::load(&input).with_context(|| format!("loading {}", input.display()))?;
    let tok = Tokenizer::from_gguf(original.file.metadata()).context("reading the tokenizer")?;
    let tokens = tokenize_text(&tok, &text);
    let mut opts = PerplexityOptions::for_tokenizer(&tok);
    opts.n_ctx = args.ctx;
    opts.n_chunks = args.chunks;
    let base_path = tmp.0.join("original.logits");
    let mut writer = LogitsWriter::create(&base_path)?;
    eprintln!("slim: scoring the original {}", input.display());
    let base_report = pool.install(|| {
        lingqiao_eval::perplexity(
            &original,
            &tokens,
            &opts,
            None,
            Some(&mut writer),
            &mut |_| {},
        )
    })?;
    drop(writer);
    let original_size = std::fs::metadata(&input)?.len();
    drop(original);
    let mut base = BaseLogits::open(&base_path)?;

    let mut rows: Vec<Row> = Vec::new();
    for &target in &targets {
        let path = tmp.0.join(format!("{target}.gguf"));
        eprintln!("slim: quantizing to {target}");
        let q = lingqiao_quantize::quantize_file(
            &input,
            &path,
            &QuantizeOptions {
                target,
                threads,
                pure: false,
                progress: false,
            },
        )
        .with_context(|| format!("quantizing to {target}"))?;
        let model = Model::load(&path).with_context(|| format!("loading the {target} copy"))?;
        eprintln!("slim: scoring {target}");
        let r = pool.install(|| {
            lingqiao_eval::perplexity(&model, &tokens, &opts, Some(&mut base), None, &mut |_| {})
        })?;
        let k = r.kld.expect("a base was given");
        let size = std::fs::metadata(&path)?.len();
        rows.push(Row {
            target,
            size,
            bpw: q.bpw,
            ppl: r.ppl,
            kld: k.mean_kld,
            top1: k.top1_agreement,
            path: Some(path),
        });
        // Keep only the file that is the pick so far.
        let best = pick(&rows, budget);
        for (i, row) in rows.iter_mut().enumerate() {
            if Some(i) != best
                && let Some(p) = row.path.take()
            {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }

    let mut table = format!(
        "{} tokens, {} chunks of {}\n{:<10} {:>10} {:>6} {:>10} {:>10} {:>8}\n",
        base_report.n_tokens_scored,
        base_report.n_chunks,
        base_report.n_ctx,
        "type",
        "size",
        "bpw",
        "PPL",
        "KLD",
        "top-1"
    );
    table += &format!(
        "{:<10} {:>10} {:>6} {:>10.4} {:>10} {:>8}\n",
        "original",
        human_bytes(original_size),
        "-",
        base_report.ppl,
        "0",
        "100%"
    );
    for r in &rows {
        table += &format!(
            "{:<10} {:>10} {:>6.2} {:>10.4} {:>10.6} {:>7.2}%\n",
            r.target.to_string(),
            human_bytes(r.size),
            r.bpw,
            r.ppl,
            r.kld,
            100.0 * r.top1
        );
    }
    crate::write_stdout(&table)?;

    let Some(budget) = budget else {
        return Ok(());
    };
    let Some(best) = pick(&rows, Some(budget)) else {
        bail!(
            "no candidate fits {}: the smallest is {}",
            human_bytes(budget),
            rows.iter()
                .map(|r| r.size)
                .min()
                .map(human_bytes)
                .unwrap_or_default()
        );
    };
    let r = &rows[best];
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{stem}-{}.gguf", r.target)));
    let from = r.path.as_ref().expect("the pick's file is kept");
    std::fs::rename(from, &out)
        .with_context(|| format!("moving {} to {}", from.display(), out.display()))?;
    crate::write_stdout(&format!(
        "chose {} (lowest KLD of those within {}): {} written to {}\n",
        r.target,
        human_bytes(budget),
        human_bytes(r.size),
        out.display()
    ))
}

/// The lowest-KLD row whose file fits `budget` (any row without a budget).
fn pick(rows: &[Row], budget: Option<u64>) -> Option<usize> {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| budget.is_none_or(|b| r.size <= b))
        .min_by(|a, b| a.1.kld.total_cmp(&b.1.kld))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("300M").unwrap(), 300 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("800MB").unwrap(), 800_000_000);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("0").is_err());
    }
}
