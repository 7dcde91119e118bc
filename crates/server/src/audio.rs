//! `POST /v1/audio/transcriptions` and `/v1/audio/translations`: OpenAI's speech-to-text
//! routes over a Whisper model held beside the language model (`serve --whisper KEY`).
//!
//! The request is OpenAI's multipart form: `file` (the audio, any format the audio reader
//! takes), `model`, `language`, `prompt`, `response_format` (`json`, `text`, `srt`,
//! `verbose_json`, `vtt`), `temperature` and `timestamp_granularities[]`. Audio that cannot
//! be decoded is a 400 saying why. Transcriptions run one at a time on their own threads,
//! so the language model's slots keep decoding meanwhile.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lingqiao_whisper::decode::{Language, Options, Segment, Task, Transcriber, format_timestamp};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Uploads up to this size are read (OpenAI's limit is 25 MB).
pub const AUDIO_BODY_LIMIT: usize = 25 << 20;

/// A Whisper model served beside the language model.
pub struct WhisperService {
    /// The name `/v1/models` lists and requests use.
    pub id: String,
    /// Other accepted names (the path given; `whisper-1`, the name OpenAI's examples use).
    pub aliases: Vec<String>,
    pub transcriber: Transcriber,
    pool: lingqiao_pool::ThreadPool,
    busy: Semaphore,
}

impl WhisperService {
    pub fn new(
        id: String,
        mut aliases: Vec<String>,
        transcriber: Transcriber,
        threads: usize,
    ) -> Self {
        aliases.push("whisper-1".into());
        WhisperService {
            id,
            aliases,
            transcriber,
            pool: lingqiao_pool::ThreadPool::new(threads.max(1)),
            busy: Semaphore::new(1),
        }
    }

    fn names(&self, name: &str) -> bool {
        name == self.id || self.aliases.iter().any(|a| a == name)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

struct Form {
    file: Option<(Vec<u8>, Option<String>)>,
    model: Option<String>,
    language: Option<String>,
    format: Format,
}

pub async fn transcriptions(
    state: State<Arc<AppState>>,
    form: Multipart,
) -> Result<Response, ApiError> {
    run(state, form, Task::Transcribe).await
}

pub async fn translations(
    state: State<Arc<AppState>>,
    form: Multipart,
) -> Result<Response, ApiError> {
    run(state, form, Task::Translate).await
}

async fn read_form(mut form: Multipart, task: Task) -> Result<Form, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("malformed multipart form: {}", e.body_text()))
    };
    let mut f = Form {
        file: None,
        model: None,
        language: None,
        format: Format::Json,
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let ext = field
                .file_name()
                .and_then(|n| n.rsplit_once('.'))
                .map(|(_, e)| e.to_ascii_lowercase());
            let bytes = field.bytes().await.map_err(bad)?;
            f.file = Some((bytes.to_vec(), ext));
            continue;
        }
        let text = field.text().await.map_err(bad)?;
        match name.as_str() {
            "model" => f.model = Some(text),
            "language" if task == Task::Transcribe => {
                f.language = Some(text.trim().to_ascii_lowercase()).filter(|l| !l.is_empty())
            }
            "response_format" => {
                f.format = match text.trim() {
                    "json" => Format::Json,
                    "text" => Format::Text,
                    "srt" => Format::Srt,
                    "verbose_json" => Format::VerboseJson,
                    "vtt" => Format::Vtt,
                    other => {
                        return Err(ApiError::invalid_param(
                            "response_format",
                            format!(
                                "response_format must be json, text, srt, verbose_json or vtt, not {other:?}"
                            ),
                        ));
                    }
                }
            }
            "temperature" => {
                let t: f64 = text.trim().parse().map_err(|_| {
                    ApiError::invalid_param(
                        "temperature",
                        format!("temperature must be a number, not {text:?}"),
                    )
                })?;
                if t != 0.0 {
                    return Err(ApiError::invalid_param(
                        "temperature",
                        "only temperature 0 (deterministic decoding) is implemented for audio",
                    ));
                }
            }
            "timestamp_granularities[]" | "timestamp_granularities" => {
                if text.trim() != "segment" {
                    return Err(ApiError::invalid_param(
                        "timestamp_granularities",
                        format!(
                            "only segment timestamps are implemented, not {:?}",
                            text.trim()
                        ),
                    ));
                }
            }
            // OpenAI's fields that change nothing here.
            "stream" if text.trim() == "false" => {}
            other => return Err(ApiError::unsupported(other)),
        }
    }
    Ok(f)
}

async fn run(
    State(state): State<Arc<AppState>>,
    form: Multipart,
    task: Task,
) -> Result<Response, ApiError> {
    let Some(svc) = state.whisper.clone() else {
        return Err(ApiError::not_found(
            "no speech model is loaded: start the server with --whisper whisper-tiny-en (or another Whisper model)",
        ));
    };
    let form = read_form(form, task).await?;
    if let Some(m) = &form.model
        && !svc.names(m)
    {
        return Err(ApiError::model_not_found(m, &svc.id));
    }
    let Some((bytes, ext)) = form.file else {
        return Err(ApiError::invalid_param(
            "file",
            "the form has no file field",
        ));
    };
    let tr = &svc.transcriber;
    if task == Task::Translate && !tr.vocab.is_multilingual() {
        return Err(ApiError::bad_request(format!(
            "{} is English-only: it cannot translate",
            svc.id
        )));
    }
    if let Some(l) = &form.language {
        if tr.vocab.is_multilingual() {
            if tr.vocab.language_token(l).is_none() {
                return Err(ApiError::invalid_param(
                    "language",
                    format!("unknown language {l:?}"),
                ));
            }
        } else if l != "en" {
            return Err(ApiError::invalid_param(
                "language",
                format!("{} is English-only: language {l:?} cannot be used", svc.id),
            ));
        }
    }
    let _permit = svc
        .busy
        .acquire()
        .await
        .map_err(|_| ApiError::internal("shutting down"))?;
    let job = {
        let svc = svc.clone();
        let language = form
            .language
            .clone()
            .filter(|_| svc.transcriber.vocab.is_multilingual());
        move || -> Result<(Vec<Segment>, Option<Language>, f64), ApiError> {
            let samples =
                lingqiao_whisper::audio::decode_bytes(&bytes, ext.as_deref()).map_err(|e| {
                    ApiError::invalid_param("file", format!("cannot read the audio: {e}"))
                })?;
            let duration = samples.len() as f64 / f64::from(lingqiao_whisper::audio::SAMPLE_RATE);
            let tr = &svc.transcriber;
            let mel = lingqiao_whisper::mel::log_mel(&samples, tr.model.dims.n_mels, 160);
            let opts = Options {
                language,
                task,
                ..Options::default()
            };
            let (segs, lang) = svc
                .pool
                .install(|| tr.transcribe(&mel.data, mel.n_frames, &opts, |_| {}))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok((segs, lang, duration))
        }
    };
    let (segs, lang, duration) = tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| ApiError::internal(format!("transcription failed: {e}")))??;
    let text: String = segs.iter().map(|s| s.text.as_str()).collect();
    let language = match (&lang, task) {
        (_, Task::Translate) => "english".to_string(),
        (Some((code, _)), _) => code.clone(),
        (None, _) => "en".to_string(),
    };
    let plain =
        |body: String, mime: &'static str| ([(header::CONTENT_TYPE, mime)], body).into_response();
    Ok(match form.format {
        Format::Json => axum::Json(json!({ "text": text })).into_response(),
        Format::Text => plain(format!("{}\n", text.trim()), "text/plain; charset=utf-8"),
        Format::Srt => plain(
            segs.iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "{}\n{} --> {}\n{}\n\n",
                        i + 1,
                        format_timestamp(s.start, ','),
                        format_timestamp(s.end, ','),
                        s.text.trim()
                    )
                })
                .collect(),
            "text/plain; charset=utf-8",
        ),
        Format::Vtt => plain(
            std::iter::once("WEBVTT\n\n".to_string())
                .chain(segs.iter().map(|s| {
                    format!(
                        "{} --> {}\n{}\n\n",
                        format_timestamp(s.start, '.'),
                        format_timestamp(s.end, '.'),
                        s.text.trim()
                    )
                }))
                .collect(),
            "text/vtt; charset=utf-8",
        ),
        Format::VerboseJson => {
            let segments: Vec<Value> = segs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "id": i, "seek": (s.start * 100.0).round() as u64, "start": s.start,
                        "end": s.end, "text": s.text, "tokens": s.tokens, "temperature": 0.0,
                        "avg_logprob": s.avg_logprob, "compression_ratio": Value::Null,
                        "no_speech_prob": s.no_speech_prob,
                    })
                })
                .collect();
            axum::Json(json!({
                "task": if task == Task::Translate { "translate" } else { "transcribe" },
                "language": language,
                "duration": duration,
                "text": text,
                "segments": segments,
            }))
            .into_response()
        }
    })
}
