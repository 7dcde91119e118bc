//! The router in-process over a real (tiny, randomly initialised) model: statuses, error
//! shapes, SSE framing and answer shapes. Answers are meaningless text; what they say is
//! checked with qwen05 and the real OpenAI client in `tests/server/`.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use lingqiao_engine::{ChatTemplate, EngineConfig};
use lingqiao_model::Model;
use lingqiao_server::{AppState, ServerConfig, router};
use lingqiao_tokenizer::Tokenizer;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const KEY: &str = "sk-test";
const N_CTX: usize = 64;

fn state() -> Arc<AppState> {
    static STATE: OnceLock<Arc<AppState>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/qwen3-tiny/model.gguf");
            let model = Model::load(&path).expect("tiny model");
            let tok = Tokenizer::from_gguf(model.file.metadata()).expect("tokenizer");
            let template =
                ChatTemplate::new(lingqiao_engine::chatml(), "<|endoftext|>", "<|im_end|>")
                    .unwrap();
            let cfg = ServerConfig {
                host: "127.0.0.1".into(),
                port: 0,
                model_id: "tiny".into(),
                model_aliases: vec!["model.gguf".into()],
                engine: EngineConfig {
                    n_parallel: 2,
                    n_ctx: N_CTX,
                    queue: 8,
                    threads: 1,
                },
                api_key: Some(KEY.into()),
            };
            Arc::new(AppState::new(
                &cfg,
                Arc::new(model),
                Arc::new(tok),
                template,
            ))
        })
        .clone()
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The OpenAI error object, checked for its four fields.
    fn error(&self) -> Value {
        let v = self.json();
        let err = v["error"].clone();
        let keys: Vec<&str> = err
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["message", "type", "param", "code"]);
        err
    }
}

async fn send(method: &str, path: &str, body: impl Into<Body>, key: bool) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {KEY}"));
    }
    let resp = router(state())
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

async fn post(path: &str, body: Value) -> Reply {
    send("POST", path, body.to_string(), true).await
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({"model": "tiny", "messages": [{"role": "user", "content": "hello"}],
                          "max_tokens": 4, "temperature": 0});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn health_and_page_are_open_the_rest_needs_the_key() {
    let r = send("GET", "/health", Body::empty(), false).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ok"}));
    let r = send("GET", "/", Body::empty(), false).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/html"));
    for (method, path) in [
        ("GET", "/v1/models"),
        ("GET", "/metrics"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
    ] {
        let r = send(method, path, "{}", false).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.error()["code"], "invalid_api_key");
    }
    let r = send("GET", "/v1/models", Body::empty(), true).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["data"][0]["id"], "tiny");
}

#[tokio::test]
async fn bad_bodies_are_400_never_a_panic() {
    for body in [
        &b"{not json"[..],
        b"\xff\xfe{}",
        b"",
        b"[1]",
        b"\"text\"",
        b"{\"messages\": 3}",
    ] {
        let r = send("POST", "/v1/chat/completions", body.to_vec(), true).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(r.error()["type"], "invalid_request_error");
    }
    // Deep nesting is refused by the parser's depth limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = send("POST", "/v1/chat/completions", deep, true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unsupported_field_is_named() {
    let r = post(
        "/v1/chat/completions",
        chat_body(json!({"logit_bias": {"1": 1}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.error();
    assert_eq!(e["param"], "logit_bias");
    assert!(e["message"].as_str().unwrap().contains("logit_bias"));
}

#[tokio::test]
async fn unknown_model_and_route_are_404() {
    let r = post(
        "/v1/chat/completions",
        chat_body(json!({"model": "gpt-4o"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error()["code"], "model_not_found");
    // An alias of the served model is accepted.
    let r = post(
        "/v1/chat/completions",
        chat_body(json!({"model": "model.gguf"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send("GET", "/v1/nothing", Body::empty(), true).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    r.error();
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let body = format!(
        "{{\"messages\": \"{}\"}}",
        "a".repeat(lingqiao_server::BODY_LIMIT)
    );
    let r = send("POST", "/v1/chat/completions", body, true).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    r.error();
}

#[tokio::test]
async fn prompt_over_the_context_is_400_with_the_counts() {
    let long = "hello ".repeat(200);
    let r = post(
        "/v1/chat/completions",
        chat_body(json!({"messages": [{"role": "user", "content": long}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.error();
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains(&format!("holds {N_CTX} tokens")), "{msg}");
    assert_eq!(e["code"], "context_length_exceeded");
    // max_tokens past the context is not an error: generation stops at the context.
    let r = post(
        "/v1/completions",
        json!({"prompt": "hello", "max_tokens": 10_000, "temperature": 0}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let u = &v["usage"];
    assert!(u["total_tokens"].as_u64().unwrap() <= N_CTX as u64);
}

#[tokio::test]
async fn chat_answer_shape() {
    let r = post(
        "/v1/chat/completions",
        chat_body(json!({"logprobs": true, "top_logprobs": 2})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "tiny");
    let c = &v["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    assert!(c["message"]["content"].is_string());
    let n = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(n <= 4);
    if n == 4 {
        assert_eq!(c["finish_reason"], "length");
    }
    let lps = c["logprobs"]["content"].as_array().unwrap();
    assert_eq!(lps.len() as u64, n);
    for lp in lps {
        assert_eq!(lp["top_logprobs"].as_array().unwrap().len(), 2);
        assert!(lp["bytes"].is_array());
    }
    for k in [
        "prompt_n",
        "prompt_ms",
        "predicted_n",
        "predicted_ms",
        "predicted_per_second",
        "cached_n",
    ] {
        assert!(v["timings"][k].is_number(), "timings.{k}");
    }
}

/// The `data:` payloads of an SSE body, checking the framing.
fn events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let mut out = Vec::new();
    for event in text.split_terminator("\n\n") {
        let payload = event.strip_prefix("data: ").expect("an SSE data line");
        if payload == "[DONE]" {
            break;
        }
        out.push(serde_json::from_str(payload).unwrap());
    }
    out
}

#[tokio::test]
async fn chat_stream_framing() {
    let plain = post("/v1/chat/completions", chat_body(json!({})))
        .await
        .json();
    let r = post(
        "/v1/chat/completions",
        chat_body(json!({"stream": true, "stream_options": {"include_usage": true}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/event-stream"));
    let ev = events(&r.body);
    assert_eq!(ev[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = ev
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    // Greedy: the stream says what the whole answer said.
    assert_eq!(text, plain["choices"][0]["message"]["content"]);
    let last = ev.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], plain["usage"]);
    assert!(last["timings"].is_object());
    let finish = &ev[ev.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, &plain["choices"][0]["finish_reason"]);
}

#[tokio::test]
async fn completion_stream_framing() {
    let r = post(
        "/v1/completions",
        json!({"prompt": "hello", "max_tokens": 3, "temperature": 0, "stream": true, "logprobs": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let ev = events(&r.body);
    assert!(ev.iter().all(|e| e["object"] == "text_completion"));
    let last = ev.last().unwrap();
    assert!(last["choices"][0]["finish_reason"].is_string());
    assert!(last["timings"].is_object());
}

#[tokio::test]
async fn embeddings_are_normalized() {
    let r = post(
        "/v1/embeddings",
        json!({"input": ["hello", "world"], "model": "tiny"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    for (i, d) in v["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(d["index"], i);
        let e: Vec<f64> = d["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(e.len(), 64);
        let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let r = post(
        "/v1/embeddings",
        json!({"input": "hello", "encoding_format": "base64"}),
    )
    .await;
    assert!(r.json()["data"][0]["embedding"].is_string());
    let r = post("/v1/embeddings", json!({"input": [100_000]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    post("/v1/chat/completions", chat_body(json!({}))).await;
    let r = send("GET", "/metrics", Body::empty(), true).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/plain"));
    let text = String::from_utf8(r.body).unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("lingqiao_"), "{line}");
        value.parse::<f64>().unwrap();
    }
    assert!(text.contains("lingqiao_requests_total"));
}

#[tokio::test]
async fn cors_preflight_needs_no_key() {
    let req = Request::builder()
        .method("OPTIONS")
        .uri("/v1/chat/completions")
        .header(header::ORIGIN, "http://example.test")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    let resp = router(state()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(
        h[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let r = send("GET", "/health", Body::empty(), false).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn structured_output() {
    // A schema keyword that cannot be enforced is a 400 naming it, never unconstrained text.
    let schema = json!({"type": "array", "uniqueItems": true});
    let r = post(
        "/v1/chat/completions",
        chat_body(json!({"response_format": {"type": "json_schema",
                                             "json_schema": {"name": "x", "schema": schema}}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.error();
    assert_eq!(e["param"], "response_format.json_schema.schema");
    assert!(e["message"].as_str().unwrap().contains("uniqueItems"));
    // Even a random model writes a JSON object under the constraint.
    let schema = json!({"type": "object", "properties": {"a": {"type": "boolean"}},
                        "required": ["a"], "additionalProperties": false});
    let r = post(
        "/v1/chat/completions",
        chat_body(
            json!({"max_tokens": 40, "response_format": {"type": "json_schema",
                         "json_schema": {"name": "x", "schema": schema}}}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    if v["choices"][0]["finish_reason"] == "stop" {
        let out: Value = serde_json::from_str(text).unwrap();
        assert!(out["a"].is_boolean(), "{text}");
    }
}
