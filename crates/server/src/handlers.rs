//! The route handlers: validate, build the prompt, submit to the engine, answer (whole or
//! as server-sent events).

use crate::error::ApiError;
use crate::params::{self, Common, Input, Prompt};
use crate::response::{self, ChatChunks, CompletionChunks, Shape, StreamChunks};
use crate::{AppState, BODY_LIMIT, constraint, metrics, tools};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use lingqiao_engine::batch::{Constraint, TokenLogprob};
use lingqiao_engine::{ChatMessage, Event, FinishReason, TemplateError, Usage};
use lingqiao_tokenizer::Tokenizer;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A request body parsed as JSON. Too large: 413; not UTF-8 or not JSON: 400.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<JsonBody, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(BODY_LIMIT)
            } else {
                ApiError::bad_request(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ))
        })?;
        let value = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        Ok(JsonBody(value))
    }
}

pub async fn index() -> Html<&'static str> {
    Html(include_str!("../assets/index.html"))
}

pub async fn health() -> axum::Json<Value> {
    axum::Json(json!({"status": "ok"}))
}

fn model_object(state: &AppState) -> Value {
    json!({
        "id": state.model_id,
        "object": "model",
        "created": state.started,
        "owned_by": "lingqiao",
    })
}

pub async fn models(State(state): State<Arc<AppState>>) -> axum::Json<Value> {
    let mut data = vec![model_object(&state)];
    if let Some(w) = &state.whisper {
        data.push(json!({
            "id": w.id,
            "object": "model",
            "created": state.started,
            "owned_by": "lingqiao",
        }));
    }
    axum::Json(json!({"object": "list", "data": data}))
}

pub async fn model(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    state.check_model(Some(&id))?;
    Ok(axum::Json(model_object(&state)))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let cfg = state.engine.config();
    let text = metrics::render(
        &state.engine.metrics(),
        &state.http.snapshot(),
        &metrics::Info {
            n_parallel: cfg.n_parallel,
            n_ctx: cfg.n_ctx,
        },
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Run `f` on the blocking pool (prompt rendering and tokenizing can take milliseconds).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("internal task failed: {e}")))?
}

/// Tokenize a rendered chat prompt: special tokens are parsed, and BOS is added as the
/// model's metadata says unless the template already wrote it (as `lingqiao run --chat`).
fn chat_prompt(
    state: &AppState,
    messages: &[ChatMessage],
    tools: Option<&[Value]>,
) -> Result<Vec<u32>, ApiError> {
    let text = state
        .template
        .render(messages, tools, true)
        .map_err(|e| match e {
            TemplateError::Raised(m) => ApiError::invalid_param(
                "messages",
                format!("the model's chat template refused these messages: {m}"),
            ),
            other => ApiError::invalid_param("messages", other.to_string()),
        })?;
    Ok(lingqiao_engine::chat_template::encode_chat(
        state.tokenizer(),
        &text,
    ))
}

/// Token ids from a client must exist.
fn check_ids(tok: &Tokenizer, ids: &[u32], param: &str) -> Result<(), ApiError> {
    match ids.iter().find(|&&id| id as usize >= tok.n_vocab()) {
        Some(id) => Err(ApiError::invalid_param(
            param,
            format!(
                "token id {id} is outside the vocabulary ({} tokens)",
                tok.n_vocab()
            ),
        )),
        None => Ok(()),
    }
}

/// The engine request: the prompt must leave room for a token; generation stops at the
/// context (finish_reason "length") when `max_tokens` would run past it.
fn engine_request(
    state: &AppState,
    prompt: Vec<u32>,
    common: &Common,
    logprobs: Option<usize>,
    constraint: Option<Box<dyn Constraint>>,
    param: &str,
) -> Result<lingqiao_engine::Request, ApiError> {
    let n_ctx = state.n_ctx();
    if prompt.is_empty() {
        return Err(ApiError::invalid_param(param, "the prompt is empty"));
    }
    if prompt.len() >= n_ctx {
        return Err(ApiError::invalid_param(
            param,
            format!(
                "the prompt is {} tokens long, but the context holds {n_ctx} tokens, leaving no \
                 room for an answer; shorten the prompt (or start the server with a larger --ctx)",
                prompt.len()
            ),
        )
        .with_code("context_length_exceeded"));
    }
    let room = n_ctx - prompt.len();
    Ok(lingqiao_engine::Request {
        prompt,
        max_tokens: common.max_tokens.map_or(room, |m| m.min(room)),
        sampler: common.sampler.clone(),
        stop: common.stop.clone(),
        logprobs,
        constraint,
    })
}

/// Queue `req`; its events arrive on the returned channel. Dropping the receiver (the
/// client went away) makes the sink answer `Break`, which frees the slot.
fn submit(
    state: &AppState,
    req: lingqiao_engine::Request,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    let (tx, rx) = mpsc::unbounded_channel();
    state.engine.submit(
        req,
        Box::new(move |ev| match tx.send(ev) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }),
    )?;
    Ok(rx)
}

/// A token's text as the tool-call parser must see it: control tokens that open or close
/// calls (Mistral's `[TOOL_CALLS]`, Llama's `<|python_tag|>`) are dropped by
/// detokenizing, so their text is put back.
fn visible_text(tok: &Tokenizer, id: u32, text: String, tools: bool) -> String {
    if tools
        && text.is_empty()
        && tok.is_control(id)
        && let Some(t) = tok.token_text(id).filter(|t| tools::is_marker(t))
    {
        return t.to_string();
    }
    text
}

/// The end of a request the client waited for whole.
struct Finished {
    text: String,
    reason: FinishReason,
    usage: Usage,
}

/// Read events to the end; `on_token` sees each token and returns its text.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut on_token: impl FnMut(u32, String, Option<TokenLogprob>) -> String,
) -> Result<Finished, ApiError> {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Token {
                id,
                text: t,
                logprob,
            } => {
                text.push_str(&on_token(id, t, logprob));
            }
            Event::Done {
                text: t,
                reason,
                usage,
            } => {
                text.push_str(&t);
                return Ok(Finished {
                    text,
                    reason,
                    usage,
                });
            }
            Event::Error(e) => return Err(ApiError::internal(format!("generation failed: {e}"))),
        }
    }
    Err(ApiError::internal(
        "the engine stopped before the answer was complete",
    ))
}

/// Stream `first`, then what `on_event` makes of each event, as server-sent events ending
/// in `data: [DONE]`. A failure midway is sent as an `{"error": ..}` event.
/// Stream the engine's events as server-sent events: `first`, then each token through
/// `on_token` (its visible text and logprobs) into `chunks`, then the finishing chunks (or
/// the error), then `[DONE]`.
fn sse_response(
    mut rx: mpsc::UnboundedReceiver<Event>,
    first: Vec<Value>,
    mut chunks: impl StreamChunks,
    mut on_token: impl FnMut(u32, String, Option<TokenLogprob>) -> (String, Option<Value>)
    + Send
    + 'static,
) -> Response {
    let mut on_event = move |ev: Event| match ev {
        Event::Token { id, text, logprob } => {
            let (text, lp) = on_token(id, text, logprob);
            chunks.token(&text, lp).into_iter().collect()
        }
        Event::Done {
            text,
            reason,
            usage,
        } => chunks.done(&text, reason, &usage),
        Event::Error(e) => vec![ApiError::internal(format!("generation failed: {e}")).body()],
    };
    let (tx, frames) = mpsc::channel::<Result<Bytes, Infallible>>(32);
    tokio::spawn(async move {
        for v in &first {
            if tx.send(Ok(response::sse(v))).await.is_err() {
                return;
            }
        }
        loop {
            let (values, end) = match rx.recv().await {
                Some(ev) => {
                    let end = matches!(ev, Event::Done { .. } | Event::Error(_));
                    (on_event(ev), end)
                }
                None => (
                    vec![
                        ApiError::internal("the engine stopped before the answer was complete")
                            .body(),
                    ],
                    true,
                ),
            };
            for v in &values {
                // The client is gone: returning drops `rx`, and the engine frees the slot.
                if tx.send(Ok(response::sse(v))).await.is_err() {
                    return;
                }
            }
            if end {
                break;
            }
        }
        let _ = tx.send(Ok(response::sse_done())).await;
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(frames)),
    )
        .into_response()
}

pub async fn chat(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req = params::parse_chat(&body)?;
    state.check_model(req.common.model.as_deref())?;
    let (st, r) = (state.clone(), req.clone());
    let (prompt, constraint) = blocking(move || {
        let prompt = chat_prompt(&st, &r.messages, r.active_tools())?;
        Ok((prompt, constraint::for_chat(&st, &r)?))
    })
    .await?;
    let engine_req = engine_request(
        &state,
        prompt,
        &req.common,
        req.logprobs,
        constraint,
        "messages",
    )?;
    let rx = submit(&state, engine_req)?;
    let uses_tools = req.active_tools().is_some();
    let shape = Shape {
        id: response::response_id("chatcmpl-"),
        created: response::unix_now(),
        model: state.model_id.clone(),
        tools: uses_tools.then(|| req.tool_names()),
        logprobs: req.logprobs.is_some(),
        include_usage: req.common.include_usage,
    };
    if req.common.stream {
        let chunks = ChatChunks::new(shape);
        let first = vec![chunks.start()];
        return Ok(sse_response(rx, first, chunks, move |id, text, logprob| {
            let tok = state.tokenizer();
            let text = visible_text(tok, id, text, uses_tools);
            (text, logprob.map(|l| response::chat_logprob(tok, id, &l)))
        }));
    }
    let tok = state.tokenizer();
    let mut logprobs = Vec::new();
    let done = collect(rx, |id, text, lp| {
        if let Some(lp) = lp {
            logprobs.push(response::chat_logprob(tok, id, &lp));
        }
        visible_text(tok, id, text, uses_tools)
    })
    .await?;
    Ok(axum::Json(response::chat_completion(
        &shape,
        &done.text,
        logprobs,
        done.reason,
        &done.usage,
    ))
    .into_response())
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req = params::parse_completion(&body)?;
    state.check_model(req.common.model.as_deref())?;
    let st = state.clone();
    let prompt = req.prompt.clone();
    let prompt = blocking(move || match prompt {
        Prompt::Text(s) => Ok(st.tokenizer().encode(&s, true, true)),
        Prompt::Tokens(t) => {
            check_ids(st.tokenizer(), &t, "prompt")?;
            Ok(t)
        }
    })
    .await?;
    let engine_req = engine_request(&state, prompt, &req.common, req.logprobs, None, "prompt")?;
    let rx = submit(&state, engine_req)?;
    let shape = Shape {
        id: response::response_id("cmpl-"),
        created: response::unix_now(),
        model: state.model_id.clone(),
        tools: None,
        logprobs: req.logprobs.is_some(),
        include_usage: req.common.include_usage,
    };
    if req.common.stream {
        let chunks = CompletionChunks::new(shape);
        let mut offset = 0;
        return Ok(sse_response(
            rx,
            vec![],
            chunks,
            move |id, text, logprob| {
                let lp = logprob
                    .map(|l| response::completion_logprobs(state.tokenizer(), &[(id, l)], offset));
                offset += text.len();
                (text, lp)
            },
        ));
    }
    let mut items = Vec::new();
    let done = collect(rx, |id, text, lp| {
        if let Some(lp) = lp {
            items.push((id, lp));
        }
        text
    })
    .await?;
    let logprobs = req
        .logprobs
        .map(|_| response::completion_logprobs(state.tokenizer(), &items, 0));
    Ok(axum::Json(response::completion(
        &shape,
        &done.text,
        logprobs,
        done.reason,
        &done.usage,
    ))
    .into_response())
}

pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req = params::parse_embedding(&body)?;
    state.check_model(req.model.as_deref())?;
    let st = state.clone();
    let (data, n_tokens) = blocking(move || {
        let tok = st.tokenizer();
        let n_ctx = st.n_ctx();
        let mut data = Vec::with_capacity(req.input.len());
        let mut n_tokens = 0;
        for (i, input) in req.input.iter().enumerate() {
            let ids = match input {
                Input::Text(s) => tok.encode(s, true, false),
                Input::Tokens(t) => {
                    check_ids(tok, t, "input")?;
                    t.clone()
                }
            };
            if ids.is_empty() {
                return Err(ApiError::invalid_param(
                    "input",
                    format!("input {i} is empty"),
                ));
            }
            if ids.len() > n_ctx {
                return Err(ApiError::invalid_param(
                    "input",
                    format!(
                        "input {i} is {} tokens long, but the context holds {n_ctx} tokens",
                        ids.len()
                    ),
                )
                .with_code("context_length_exceeded"));
            }
            n_tokens += ids.len();
            let v = st.engine.embed(ids)?;
            let embedding = if req.base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            data.push(json!({"object": "embedding", "index": i, "embedding": embedding}));
        }
        Ok((data, n_tokens))
    })
    .await?;
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": state.model_id,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }))
    .into_response())
}
