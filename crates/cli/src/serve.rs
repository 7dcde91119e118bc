//! `serve`: the OpenAI-compatible HTTP server (the `lingqiao-server` library).

use crate::ModelArgs;
use crate::run::{chat_template, load_path};
use anyhow::{Result, ensure};
use clap::Args;
use lingqiao_engine::EngineConfig;
use lingqiao_server::ServerConfig;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests decoded together; each has its own context of --ctx tokens.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Context of each parallel slot, in tokens (at most the model's training context).
    #[arg(short = 'c', long = "ctx", default_value_t = 4096)]
    ctx: usize,
    /// Requests that may wait for a free slot; more are refused with 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Require `Authorization: Bearer KEY` on every route but / and /health.
    #[arg(long = "api-key")]
    api_key: Option<String>,
    /// A Whisper model (key such as whisper-tiny-en, or a CTranslate2 model directory) to
    /// serve beside the language model at /v1/audio/transcriptions and /translations.
    #[arg(long)]
    whisper: Option<String>,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    ensure!(args.parallel >= 1, "--parallel must be at least 1");
    ensure!(args.ctx >= 1, "--ctx must be at least 1");
    if let Some(n) = args.model.threads {
        ensure!(n >= 1, "--threads must be at least 1");
    }
    let path = args.model.resolve()?;
    let l = load_path(&args.model, &path)?;
    let template = chat_template(&l)?;
    let n_ctx_train = l.model.hp.n_ctx_train;
    if args.ctx > n_ctx_train {
        eprintln!(
            "warning: --ctx {} is more than the model was trained for; using {n_ctx_train}",
            args.ctx
        );
    }
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned());
    let stem = path.file_stem().map(|f| f.to_string_lossy().into_owned());
    let is_key = lingqiao_fetch::registry()
        .iter()
        .any(|s| s.key == args.model.model);
    let model_id = if is_key {
        args.model.model.clone()
    } else {
        stem.clone().unwrap_or_else(|| args.model.model.clone())
    };
    let mut aliases: Vec<String> = [Some(args.model.model.clone()), file_name, stem]
        .into_iter()
        .flatten()
        .filter(|a| *a != model_id)
        .collect();
    aliases.dedup();
    let cfg = ServerConfig {
        host: args.host,
        port: args.port,
        model_id,
        model_aliases: aliases,
        engine: EngineConfig {
            n_parallel: args.parallel,
            n_ctx: args.ctx.min(n_ctx_train),
            queue: args.queue,
            // 0: one per core.
            threads: args.model.threads.unwrap_or(0),
        },
        api_key: args.api_key.filter(|k| !k.is_empty()),
    };
    let whisper = match &args.whisper {
        Some(w) => Some(load_whisper(w, args.model.threads)?),
        None => None,
    };
    lingqiao_server::serve(
        cfg,
        Arc::new(l.model),
        Arc::new(l.tokenizer),
        template,
        whisper,
    )?;
    Ok(())
}

/// The `--whisper` model: fetched by key if missing, or a CTranslate2 directory.
fn load_whisper(
    name: &str,
    threads: Option<usize>,
) -> Result<lingqiao_server::audio::WhisperService> {
    let dir = lingqiao_whisper::model_dir(&crate::resolve_model(name)?);
    let tr = lingqiao_whisper::decode::Transcriber::load(&dir)
        .map_err(|e| anyhow::anyhow!("loading the Whisper model in {}: {e}", dir.display()))?;
    let is_key = lingqiao_fetch::registry().iter().any(|s| s.key == name);
    let id = if is_key {
        name.to_string()
    } else {
        dir.file_name()
            .map_or_else(|| name.to_string(), |f| f.to_string_lossy().into_owned())
    };
    let aliases = if id == name {
        Vec::new()
    } else {
        vec![name.to_string()]
    };
    let threads = threads.unwrap_or_else(lingqiao_pool::default_threads);
    Ok(lingqiao_server::audio::WhisperService::new(
        id, aliases, tr, threads,
    ))
}
