//! `lingqiao`: run small language models on this machine.

mod bench;
mod cost;
mod import;
mod inspect;
mod perplexity;
mod quantize;
mod run;
mod serve;
mod slim;
mod transcribe;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use lingqiao_fetch::PullOptions;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "lingqiao",
    version,
    about = "Run compact open language models on the CPU, fast and in little memory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt (raw text, or through the chat template with --chat).
    Run(run::RunArgs),
    /// Interactive chat with history.
    Chat(run::ChatArgs),
    /// Print the token ids of a text.
    Tokenize(TokenizeArgs),
    /// Print a model's metadata, tensor types and the memory it needs.
    Inspect(inspect::InspectArgs),
    /// Fetch a model by key into the cache (~/.cache/lingqiao/models).
    Pull {
        /// Model keys (see `lingqiao list`).
        #[arg(required = true)]
        keys: Vec<String>,
        /// Fetch again even if installed.
        #[arg(long)]
        force: bool,
    },
    /// List the models that can be fetched, and which are installed.
    List,
    /// Serve the model over an OpenAI-compatible HTTP API (and a chat page at /).
    Serve(serve::ServeArgs),
    /// Measure prompt and generation speed (like llama-bench), cost and memory bandwidth.
    Bench(bench::BenchArgs),
    /// Write a model with its weights quantized (llama-quantize's types and mixes).
    Quantize(quantize::QuantizeArgs),
    /// Perplexity on a text as llama-perplexity measures it, and the KL divergence from a
    /// base model's saved log-probs.
    Perplexity(perplexity::PerplexityArgs),
    /// Convert a Hugging Face model directory (safetensors) to GGUF.
    Import(import::ImportArgs),
    /// Quantize a model to each candidate type and tabulate size, perplexity and KL
    /// divergence from the original; with --fit-memory, keep the best that fits.
    Slim(slim::SlimArgs),
    /// Speech to text with a Whisper model (segments streamed as they are decoded).
    Transcribe(transcribe::TranscribeArgs),
}

/// A GGUF path as is, or a model key fetched (with progress) if missing.
pub fn resolve_model(model: &str) -> Result<PathBuf> {
    let opts = PullOptions {
        progress: true,
        ..Default::default()
    };
    lingqiao_fetch::resolve(model, &opts).with_context(|| format!("cannot use model {model:?}"))
}

/// Options shared by every command that loads a model.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model: a GGUF path or a key such as qwen05 (fetched if missing).
    #[arg(short = 'm', long = "model", default_value = lingqiao_fetch::DEFAULT_MODEL)]
    pub model: String,
    /// Threads for the forward pass (default: all cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Use the model file through a memory map instead of reading it into (huge-page)
    /// memory: faster start, slower tokens on machines with costly 4 KiB pages.
    #[arg(long)]
    pub mmap: bool,
}

impl ModelArgs {
    pub fn resolve(&self) -> Result<PathBuf> {
        resolve_model(&self.model)
    }

    /// Load the resolved model, read into memory or mapped per `--mmap`.
    pub fn load(&self, path: &std::path::Path) -> Result<lingqiao_model::Model> {
        let m = if self.mmap {
            lingqiao_model::Model::load_mapped(path)
        } else {
            lingqiao_model::Model::load(path)
        };
        m.with_context(|| format!("loading {}", path.display()))
    }

    pub fn pool(&self) -> Result<lingqiao_pool::ThreadPool> {
        let n = self.threads.unwrap_or_else(lingqiao_pool::default_threads);
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        Ok(lingqiao_pool::ThreadPool::new(n))
    }
}

#[derive(Args)]
struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print only the ids, as a list.
    #[arg(long)]
    ids: bool,
    /// Do not add BOS/EOS even if the model's metadata asks for them.
    #[arg(long)]
    no_special: bool,
    /// Treat text spelling special tokens as plain text.
    #[arg(long)]
    no_parse_special: bool,
    /// The text to tokenize.
    text: String,
}

fn tokenize(args: TokenizeArgs) -> Result<()> {
    let path = args.model.resolve()?;
    // Only the metadata is needed: a vocabulary-only GGUF works too.
    let file = lingqiao_gguf::GgufFile::open(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let tok = lingqiao_tokenizer::Tokenizer::from_gguf(file.metadata())?;
    let ids = tok.encode(&args.text, !args.no_special, !args.no_parse_special);
    let out = if args.ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        format!("[{}]\n", list.join(", "))
    } else {
        ids.iter()
            .map(|&id| {
                let piece = String::from_utf8_lossy(&tok.token_to_piece(id, true)).into_owned();
                format!("{id:6} -> {piece:?}\n")
            })
            .collect()
    };
    write_stdout(&out)
}

/// Write a command's whole output; a closed pipe (`| head`) is not an error.
pub fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Chat(a) => run::chat(a),
        Command::Tokenize(a) => tokenize(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Bench(a) => bench::bench(a),
        Command::Perplexity(a) => perplexity::perplexity(a),
        Command::Slim(a) => slim::slim(a),
        Command::Serve(a) => serve::serve(a),
        Command::Quantize(a) => quantize::quantize(a),
        Command::Import(a) => import::import(a),
        Command::Transcribe(a) => transcribe::transcribe(a),
        Command::Pull { keys, force } => {
            for key in keys {
                let opts = PullOptions {
                    progress: true,
                    force,
                    ..Default::default()
                };
                println!("{}", lingqiao_fetch::pull(&key, &opts)?.display());
            }
            Ok(())
        }
        Command::List => {
            for spec in lingqiao_fetch::registry() {
                let mark = if lingqiao_fetch::is_installed(spec.key) {
                    "installed"
                } else {
                    ""
                };
                let default = if spec.key == lingqiao_fetch::DEFAULT_MODEL {
                    " (default)"
                } else {
                    ""
                };
                println!(
                    "{:16} {:>9}  {:9} {}{default}",
                    spec.key,
                    cost::human_bytes(spec.total_size()),
                    mark,
                    spec.description
                );
            }
            Ok(())
        }
    }
}
