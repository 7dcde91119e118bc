//! `lingqiao transcribe`: speech to text with a Whisper model, segments streamed to stdout
//! as they are decoded, cost on stderr like `run`.

use crate::cost::{ProcessCost, human_bytes};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use lingqiao_whisper::decode::{Options, Segment, Task, Transcriber, format_timestamp};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Srt,
    Vtt,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum TaskArg {
    Transcribe,
    Translate,
}

#[derive(Args)]
pub struct TranscribeArgs {
    /// Whisper model: a key (whisper-tiny-en, whisper-base; fetched if missing) or a
    /// CTranslate2 model directory.
    #[arg(short = 'm', long = "model", default_value = "whisper-tiny-en")]
    pub model: String,
    /// Threads (default: all cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Spoken language (a code such as en or zh); detected when not given (multilingual
    /// models).
    #[arg(short = 'l', long)]
    pub language: Option<String>,
    /// transcribe, or translate to English (multilingual models).
    #[arg(long, value_enum, default_value = "transcribe")]
    pub task: TaskArg,
    /// Beam search with this many beams (faster-whisper's default is 5); 1 is greedy.
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value = "text")]
    pub format: Format,
    /// Audio file: WAV, MP3, FLAC, OGG Vorbis or M4A/AAC, any rate, mono or stereo.
    pub audio: PathBuf,
}

fn print_segment(
    out: &mut impl Write,
    format: Format,
    i: usize,
    s: &Segment,
) -> std::io::Result<()> {
    match format {
        Format::Text => writeln!(out, "{}", s.text.trim()),
        Format::Json => Ok(()),
        Format::Srt => writeln!(
            out,
            "{}\n{} --> {}\n{}\n",
            i + 1,
            format_timestamp(s.start, ','),
            format_timestamp(s.end, ','),
            s.text.trim()
        ),
        Format::Vtt => {
            if i == 0 {
                writeln!(out, "WEBVTT\n")?;
            }
            writeln!(
                out,
                "{} --> {}\n{}\n",
                format_timestamp(s.start, '.'),
                format_timestamp(s.end, '.'),
                s.text.trim()
            )
        }
    }
    .and_then(|()| out.flush())
}

pub fn transcribe(args: TranscribeArgs) -> Result<()> {
    let dir = lingqiao_whisper::model_dir(&crate::resolve_model(&args.model)?);
    if args.beam == 0 {
        bail!("--beam must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(lingqiao_pool::default_threads);
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let pool = lingqiao_pool::ThreadPool::new(threads);
    let t0 = Instant::now();
    let tr = Transcriber::load(&dir)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading the Whisper model in {}", dir.display()))?;
    let load_s = t0.elapsed().as_secs_f64();
    if args.task == TaskArg::Translate && !tr.vocab.is_multilingual() {
        bail!("--task translate needs a multilingual model (this one is English-only)");
    }
    if let Some(l) = &args.language
        && !tr.vocab.is_multilingual()
        && l != "en"
    {
        bail!("this model is English-only: --language {l} cannot be used");
    }
    let cost0 = ProcessCost::now();
    let t1 = Instant::now();
    let samples = lingqiao_whisper::audio::load(&args.audio)
        .with_context(|| format!("reading {}", args.audio.display()))?;
    let audio_s = samples.len() as f64 / f64::from(lingqiao_whisper::audio::SAMPLE_RATE);
    let mel = lingqiao_whisper::mel::log_mel(&samples, tr.model.dims.n_mels, 160);
    let opts = Options {
        language: args.language.clone().filter(|_| tr.vocab.is_multilingual()),
        task: match args.task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        },
        beam_size: args.beam,
        ..Options::default()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut n = 0;
    let mut io_err = None;
    let (segments, language) = pool.install(|| {
        tr.transcribe(&mel.data, mel.n_frames, &opts, |s| {
            if io_err.is_none()
                && let Err(e) = print_segment(&mut out, args.format, n, s)
            {
                io_err = Some(e);
            }
            n += 1;
        })
    })?;
    if let Some(e) = io_err
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    let wall = t1.elapsed().as_secs_f64();
    if args.format == Format::Json {
        let text: String = segments.iter().map(|s| s.text.as_str()).collect();
        let segs: Vec<serde_json::Value> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "id": i, "start": s.start, "end": s.end, "text": s.text,
                    "tokens": s.tokens, "avg_logprob": s.avg_logprob,
                    "no_speech_prob": s.no_speech_prob,
                })
            })
            .collect();
        let v = serde_json::json!({
            "text": text,
            "language": language.as_ref().map(|l| l.0.clone()),
            "language_probability": language.as_ref().map(|l| l.1),
            "duration": audio_s,
            "segments": segs,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    }
    let cost = ProcessCost::now();
    let cpu = cost.cpu_seconds - cost0.cpu_seconds;
    if let Some((l, p)) = &language {
        eprintln!("language       = {l} (probability {p:.2})");
    }
    eprintln!(
        "load time      = {:8.2} ms, {} of weights",
        load_s * 1e3,
        human_bytes(tr.model.weight_bytes() as u64)
    );
    eprintln!(
        "audio          = {audio_s:8.2} s, transcribed in {wall:.2} s (real-time factor {:.3}, {:.1}x real time), {} segments",
        wall / audio_s.max(1e-9),
        audio_s / wall.max(1e-9),
        segments.len()
    );
    eprintln!(
        "cost           = {cpu:.2} CPU-s, peak RSS {} (kernels: {}, {threads} threads)",
        human_bytes(cost.peak_rss),
        lingqiao_kernels::isa()
    );
    Ok(())
}
