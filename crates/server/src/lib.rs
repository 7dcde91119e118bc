//! An OpenAI-compatible HTTP server over the lingqiao engine (`lingqiao serve`).
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings`,
//! `POST /v1/audio/transcriptions` and `/v1/audio/translations` (with `--whisper`),
//! `GET /v1/models` (and `/v1/models/{id}`), `GET /health`, `GET /metrics` (Prometheus
//! text) and `GET /`, the chat page. Clients written for OpenAI work by changing only the
//! base URL: request fields are OpenAI's, answers and errors are in OpenAI's shapes, and a
//! field this server does not implement is refused with a 400 naming it.
//!
//! With an API key, every route but `/health` and `/` needs `Authorization: Bearer KEY`.
//! Browsers may call it from any origin (CORS preflights are answered).

pub mod audio;
mod constraint;
pub mod error;
mod handlers;
pub mod metrics;
pub mod params;
pub mod response;
pub mod tools;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use lingqiao_engine::{ChatTemplate, Engine, EngineConfig};
use lingqiao_model::Model;
use lingqiao_tokenizer::Tokenizer;
use std::sync::Arc;

/// Request bodies larger than this are refused (413).
pub const BODY_LIMIT: usize = 8 << 20;

/// How `lingqiao serve` was configured.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// The name `/v1/models` lists and answers carry.
    pub model_id: String,
    /// Other names a request's `model` may use for the same model (the file name, the
    /// path given on the command line).
    pub model_aliases: Vec<String>,
    pub engine: EngineConfig,
    /// When set, requests need `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
pub struct AppState {
    pub engine: Engine,
    pub template: ChatTemplate,
    pub model_id: String,
    pub model_aliases: Vec<String>,
    pub api_key: Option<String>,
    /// When the server started (the `created` of `/v1/models`).
    pub started: u64,
    pub http: metrics::HttpCounters,
    /// The vocabulary JSON schemas and tool calls are compiled against, built once; the
    /// reason when it could not be (requests that need it then fail, the rest work).
    pub vocab: Result<lingqiao_constrain::Vocab, String>,
    /// The speech model of the `/v1/audio` routes, when one was loaded (`--whisper`).
    pub whisper: Option<Arc<audio::WhisperService>>,
}

impl AppState {
    /// Starts the engine over the model.
    pub fn new(
        cfg: &ServerConfig,
        model: Arc<Model>,
        tokenizer: Arc<Tokenizer>,
        template: ChatTemplate,
    ) -> AppState {
        let vocab = lingqiao_constrain::Vocab::new(&tokenizer).map_err(|e| e.to_string());
        if let Err(e) = &vocab {
            eprintln!("warning: no structured output (response_format, tools) for this model: {e}");
        }
        let engine = Engine::start(model, tokenizer, cfg.engine.clone());
        AppState {
            engine,
            template,
            model_id: cfg.model_id.clone(),
            model_aliases: cfg.model_aliases.clone(),
            api_key: cfg.api_key.clone(),
            started: response::unix_now(),
            http: metrics::HttpCounters::default(),
            vocab,
            whisper: None,
        }
    }

    /// Serves `whisper` on the `/v1/audio` routes too.
    pub fn with_whisper(mut self, whisper: Option<audio::WhisperService>) -> AppState {
        self.whisper = whisper.map(Arc::new);
        self
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        self.engine.tokenizer()
    }

    pub fn n_ctx(&self) -> usize {
        self.engine.config().n_ctx
    }

    /// The request's `model`, if given, must name the served model.
    pub fn check_model(&self, name: Option<&str>) -> Result<(), ApiError> {
        match name {
            Some(n) if n != self.model_id && !self.model_aliases.iter().any(|a| a == n) => {
                Err(ApiError::model_not_found(n, &self.model_id))
            }
            _ => Ok(()),
        }
    }
}

/// All routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route(
            "/v1/audio/transcriptions",
            post(audio::transcriptions).layer(DefaultBodyLimit::max(audio::AUDIO_BODY_LIMIT)),
        )
        .route(
            "/v1/audio/translations",
            post(audio::translations).layer(DefaultBodyLimit::max(audio::AUDIO_BODY_LIMIT)),
        )
        .route("/v1/models", get(handlers::models))
        .route("/v1/models/{*id}", get(handlers::model))
        .route("/metrics", get(handlers::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/", get(handlers::index))
        .route("/health", get(handlers::health))
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

/// Any origin may call the API from a browser, as with llama-server and OpenAI: a
/// preflight `OPTIONS` is answered here (before the key check, browsers send no
/// credentials in it), and every answer allows the origin.
async fn cors(req: Request, next: Next) -> Response {
    use axum::http::{HeaderValue, Method, header};
    let mut resp = if req.method() == Method::OPTIONS {
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static("authorization, content-type"));
        let mut r = axum::http::StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        r
    } else {
        next.run(req).await
    };
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// Equal as bytes, in time that depends only on the lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same_secret(g.as_bytes(), key.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

async fn count_status(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    state.http.count(resp.status().as_u16());
    resp
}

/// Serve until Ctrl-C or SIGTERM. Prints the address it listens on to stderr.
pub fn serve(
    cfg: ServerConfig,
    model: Arc<Model>,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    whisper: Option<audio::WhisperService>,
) -> Result<(), ServerError> {
    // The engine thread does the model's work; these threads only move bytes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let whisper_id = whisper.as_ref().map(|w| w.id.clone());
        let state = Arc::new(AppState::new(&cfg, model, tokenizer, template).with_whisper(whisper));
        let local = listener.local_addr()?;
        eprintln!(
            "lingqiao: serving {} on http://{local} ({} slots of {} tokens){}",
            cfg.model_id,
            cfg.engine.n_parallel,
            cfg.engine.n_ctx,
            if cfg.api_key.is_some() {
                ", API key required"
            } else {
                ""
            }
        );
        if let Some(id) = whisper_id {
            eprintln!("lingqiao: speech to text with {id} at /v1/audio/transcriptions and /v1/audio/translations");
        }
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("lingqiao: shutting down");
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
