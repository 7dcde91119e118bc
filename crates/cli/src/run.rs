//! `run` and `chat`.

use crate::ModelArgs;
use crate::cost::{ProcessCost, human_bytes};
use anyhow::{Context, Result, bail};
use clap::Args;
use lingqiao_engine::chat_template::encode_chat;
use lingqiao_engine::{
    ChatMessage, ChatTemplate, GenerationStats, Sampler, SamplerConfig, Session,
};
use lingqiao_gguf::keys;
use lingqiao_model::Model;
use lingqiao_tokenizer::Tokenizer;
use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::time::Instant;

/// Sampling options; the defaults are llama.cpp's.
#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temp: f32,
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: usize,
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Seed for sampling (default: random, printed to stderr).
    #[arg(long = "seed")]
    pub seed: Option<u64>,
    /// Context size in tokens (default: 4096, at most the model's training context).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    pub ctx: usize,
}

impl SamplingArgs {
    fn sampler(&self) -> Sampler {
        let seed = self.seed.unwrap_or_else(|| {
            let s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64 ^ std::process::id() as u64);
            if self.temp > 0.0 {
                eprintln!("seed = {s}");
            }
            s
        });
        Sampler::new(SamplerConfig {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed,
        })
    }
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The prompt.
    #[arg(short = 'p', long = "prompt")]
    prompt: String,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    n_predict: usize,
    /// Render the prompt as a user message through the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message (with --chat).
    #[arg(short = 's', long = "system")]
    system: Option<String>,
}

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Tokens to generate at most per answer.
    #[arg(short = 'n', long = "n-predict", default_value_t = 1024)]
    n_predict: usize,
    /// System message.
    #[arg(short = 's', long = "system")]
    system: Option<String>,
}

pub(crate) struct Loaded {
    pub(crate) model: Model,
    pub(crate) tokenizer: Tokenizer,
    /// Reading the weights and building the tokenizer.
    pub(crate) load_secs: f64,
}

fn load(args: &ModelArgs) -> Result<Loaded> {
    load_path(args, &args.resolve()?)
}

/// The model at `path` (already resolved from `args`) and its tokenizer, timed.
pub(crate) fn load_path(args: &ModelArgs, path: &std::path::Path) -> Result<Loaded> {
    let t0 = Instant::now();
    let model = args.load(path)?;
    let tokenizer =
        Tokenizer::from_gguf(model.file.metadata()).context("building the tokenizer")?;
    Ok(Loaded {
        model,
        tokenizer,
        load_secs: t0.elapsed().as_secs_f64(),
    })
}

/// The model's chat template, or ChatML (as llama.cpp falls back) with a warning.
pub(crate) fn chat_template(l: &Loaded) -> Result<ChatTemplate> {
    let md = l.model.file.metadata();
    let piece = |id: Option<u32>| {
        id.and_then(|i| l.tokenizer.token_text(i))
            .unwrap_or("")
            .to_string()
    };
    let (bos, eos) = (piece(l.tokenizer.bos()), piece(l.tokenizer.eos()));
    let source = match md.opt_str(keys::TOKENIZER_CHAT_TEMPLATE)? {
        Some(s) => s.to_string(),
        None => {
            eprintln!("warning: the model has no chat template; using ChatML");
            lingqiao_engine::chatml().to_string()
        }
    };
    Ok(ChatTemplate::new(&source, &bos, &eos)?)
}

fn print_stats(l: &Loaded, st: &GenerationStats, start: &ProcessCost) {
    let now = ProcessCost::now();
    let isa = lingqiao_kernels::isa();
    eprintln!();
    eprintln!(
        "load time      = {:8.2} ms, weights {}",
        l.load_secs * 1e3,
        l.model.file.residency()
    );
    eprintln!(
        "prompt eval    = {:8.2} ms / {:4} tokens ({:8.2} tokens/s){}",
        st.prompt_time.as_secs_f64() * 1e3,
        st.n_prompt - st.n_reused,
        st.prompt_tps(),
        if st.n_reused > 0 {
            format!(", {} reused from cache", st.n_reused)
        } else {
            String::new()
        }
    );
    eprintln!(
        "generation     = {:8.2} ms / {:4} tokens ({:8.2} tokens/s), stop: {:?}",
        st.gen_time.as_secs_f64() * 1e3,
        st.n_generated,
        st.gen_tps(),
        st.stop
    );
    eprintln!(
        "cost           = {:.2} CPU-s, peak RSS {} (kernels: {isa})",
        now.cpu_seconds - start.cpu_seconds,
        human_bytes(now.peak_rss)
    );
}

fn stream(
    session: &mut Session,
    prompt: &[u32],
    n_predict: usize,
    sampler: &mut Sampler,
) -> Result<(GenerationStats, String)> {
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    let stats = session.generate(prompt, n_predict, sampler, |ev| {
        text.push_str(ev.text);
        // A closed stdout (e.g. `| head`) ends generation rather than failing it.
        if out
            .write_all(ev.text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    Ok((stats, text))
}

pub fn run(args: RunArgs) -> Result<()> {
    let start = ProcessCost::now();
    let l = load(&args.model)?;
    let pool = args.model.pool()?;
    let tok = &l.tokenizer;
    let prompt = if args.chat {
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(ChatMessage::system(s));
        }
        messages.push(ChatMessage::user(&args.prompt));
        let text = chat_template(&l)?.render(&messages, None, true)?;
        encode_chat(tok, &text)
    } else {
        if args.system.is_some() {
            bail!("--system needs --chat");
        }
        tok.encode(&args.prompt, true, true)
    };
    let mut sampler = args.sampling.sampler();
    let mut session = Session::new(&l.model, tok, args.sampling.ctx);
    let (stats, _) =
        pool.install(|| stream(&mut session, &prompt, args.n_predict, &mut sampler))?;
    println!();
    print_stats(&l, &stats, &start);
    if let Some(table) = lingqiao_pool::profile::report() {
        eprintln!("LINGQIAO_PROFILE generation, {table}");
    }
    Ok(())
}

pub fn chat(args: ChatArgs) -> Result<()> {
    let start = ProcessCost::now();
    let l = load(&args.model)?;
    let pool = args.model.pool()?;
    let template = chat_template(&l)?;
    let mut sampler = args.sampling.sampler();
    let mut session = Session::new(&l.model, &l.tokenizer, args.sampling.ctx);
    let mut messages = Vec::new();
    if let Some(s) = &args.system {
        messages.push(ChatMessage::system(s));
    }
    eprintln!(
        "lingqiao chat: type a message; /reset forgets the conversation, /exit or Ctrl-D quits."
    );
    let mut stdin = std::io::stdin().lock();
    let mut raw = Vec::new();
    loop {
        eprint!("> ");
        raw.clear();
        if stdin.read_until(b'\n', &mut raw).context("reading stdin")? == 0 {
            break;
        }
        // A line that is not UTF-8 is refused; the conversation goes on.
        let Ok(line) = std::str::from_utf8(&raw) else {
            eprintln!("error: that line is not valid UTF-8; please type it again");
            continue;
        };
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.truncate(usize::from(args.system.is_some()));
                continue;
            }
            _ => {}
        }
        messages.push(ChatMessage::user(line));
        let text = template.render(&messages, None, true)?;
        let prompt = encode_chat(&l.tokenizer, &text);
        match pool.install(|| stream(&mut session, &prompt, args.n_predict, &mut sampler)) {
            Ok((stats, answer)) => {
                println!();
                messages.push(ChatMessage::assistant(&answer));
                print_stats(&l, &stats, &start);
            }
            Err(e) => {
                // Over the context, say so and let the user /reset; the history is kept.
                messages.pop();
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(())
}
