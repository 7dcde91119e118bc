//! Response bodies and stream chunks in OpenAI's shapes, built from engine events.
//!
//! The builders here are pure (no engine, no I/O) so the shapes are unit-tested; the
//! handlers feed them events and send what they return.

use crate::tools::{self, Splitter};
use axum::body::Bytes;
use lingqiao_engine::batch::TokenLogprob;
use lingqiao_engine::{FinishReason, Usage};
use lingqiao_tokenizer::Tokenizer;
use serde_json::{Value, json};

/// One server-sent event carrying `v`.
pub fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// The event that ends every stream.
pub fn sse_done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A response id: `prefix` and 24 random letters and digits.
pub fn response_id(prefix: &str) -> String {
    let call = tools::call_id();
    format!("{prefix}{}", &call["call_".len()..])
}

pub fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

/// llama-server's `timings`: prompt work excludes the cached prefix and the wait for a
/// slot; generation runs from the first token to the end.
pub fn timings_json(u: &Usage) -> Value {
    let prompt_ms = (u.time_to_first_token_ms - u.queue_ms).max(0.0);
    let predicted_ms = (u.total_ms - u.time_to_first_token_ms).max(0.0);
    let per_second = if predicted_ms > 0.0 {
        u.completion_tokens as f64 * 1e3 / predicted_ms
    } else {
        0.0
    };
    json!({
        "prompt_n": u.prompt_tokens.saturating_sub(u.cached_tokens),
        "prompt_ms": prompt_ms,
        "predicted_n": u.completion_tokens,
        "predicted_ms": predicted_ms,
        "predicted_per_second": per_second,
        "cached_n": u.cached_tokens,
        // Not llama-server's: the CPU time the request cost (its share of each batch).
        "cpu_seconds": u.cpu_seconds,
    })
}

/// A token as OpenAI's logprobs show it: lossy text and raw bytes.
fn piece(tok: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tok.token_to_piece(id, true);
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// A `-inf` (impossible token) would not be valid JSON: OpenAI sends -9999 for it.
fn finite(lp: f32) -> f32 {
    if lp.is_finite() { lp } else { -9999.0 }
}

/// One `choices[].logprobs.content[]` entry of the chat API.
pub fn chat_logprob(tok: &Tokenizer, id: u32, lp: &TokenLogprob) -> Value {
    let (token, bytes) = piece(tok, id);
    let top: Vec<Value> = lp
        .top
        .iter()
        .map(|&(t, l)| {
            let (token, bytes) = piece(tok, t);
            json!({"token": token, "logprob": finite(l), "bytes": bytes})
        })
        .collect();
    json!({"token": token, "logprob": finite(lp.logprob), "bytes": bytes, "top_logprobs": top})
}

/// The legacy completions API's logprobs for some tokens: parallel lists, and each
/// token's alternatives as a `{token: logprob}` map. `offset`: where the first token's
/// text starts in the completion.
pub fn completion_logprobs(tok: &Tokenizer, items: &[(u32, TokenLogprob)], offset: usize) -> Value {
    let mut tokens = Vec::new();
    let mut lps = Vec::new();
    let mut tops = Vec::new();
    let mut offsets = Vec::new();
    let mut at = offset;
    for (id, lp) in items {
        let (text, _) = piece(tok, *id);
        offsets.push(at);
        at += text.len();
        tokens.push(text);
        lps.push(finite(lp.logprob));
        let mut top = serde_json::Map::new();
        for &(t, l) in &lp.top {
            top.insert(piece(tok, t).0, json!(finite(l)));
        }
        tops.push(Value::Object(top));
    }
    json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
}

/// What the client asked for that shapes the answer.
#[derive(Clone, Debug)]
pub struct Shape {
    pub id: String,
    pub created: u64,
    pub model: String,
    /// Tool names when tools are active: output is split into content and calls.
    pub tools: Option<Vec<String>>,
    pub logprobs: bool,
    pub include_usage: bool,
}

/// Tool calls in OpenAI's shape (streamed deltas carry `index`).
fn tool_calls_json(calls: &[tools::ToolCall], with_index: bool) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v = json!({
                "id": tools::call_id(),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            });
            if with_index {
                v["index"] = json!(i);
            }
            v
        })
        .collect()
}

/// A whole `chat.completion` from the collected output.
pub fn chat_completion(
    shape: &Shape,
    text: &str,
    logprobs: Vec<Value>,
    reason: FinishReason,
    usage: &Usage,
) -> Value {
    let parsed = match &shape.tools {
        Some(names) => tools::parse(text, names),
        None => tools::Parsed {
            content: text.to_string(),
            calls: vec![],
        },
    };
    let mut message = json!({"role": "assistant", "content": parsed.content, "refusal": null});
    let mut finish = finish_reason(reason);
    if !parsed.calls.is_empty() {
        if parsed.content.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = json!(tool_calls_json(&parsed.calls, false));
        finish = "tool_calls";
    }
    json!({
        "id": shape.id,
        "object": "chat.completion",
        "created": shape.created,
        "model": shape.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": if shape.logprobs { json!({"content": logprobs, "refusal": null}) } else { Value::Null },
            "finish_reason": finish,
        }],
        "usage": usage_json(usage),
        "timings": timings_json(usage),
    })
}

/// Chunks of a streamed `chat.completion.chunk` answer.
pub struct ChatChunks {
    shape: Shape,
    splitter: Option<Splitter>,
}

impl ChatChunks {
    pub fn new(shape: Shape) -> ChatChunks {
        let splitter = shape.tools.as_ref().map(|_| Splitter::default());
        ChatChunks { shape, splitter }
    }

    fn chunk(&self, delta: Value, logprobs: Option<Vec<Value>>, finish: Option<&str>) -> Value {
        let mut v = json!({
            "id": self.shape.id,
            "object": "chat.completion.chunk",
            "created": self.shape.created,
            "model": self.shape.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": logprobs.map(|c| json!({"content": c, "refusal": null})),
                "finish_reason": finish,
            }],
        });
        if self.shape.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// The first chunk: the role.
    pub fn start(&self) -> Value {
        self.chunk(json!({"role": "assistant", "content": ""}), None, None)
    }

    /// A generated token: a chunk when there is text to send or logprobs to report.
    pub fn token(&mut self, text: &str, logprob: Option<Value>) -> Option<Value> {
        let content = match &mut self.splitter {
            Some(s) => s.push(text),
            None => text.to_string(),
        };
        if content.is_empty() && logprob.is_none() {
            return None;
        }
        Some(self.chunk(json!({"content": content}), logprob.map(|l| vec![l]), None))
    }

    /// The end: held-back text, tool calls, the finishing chunk, and the usage chunk.
    pub fn done(&mut self, text: &str, reason: FinishReason, usage: &Usage) -> Vec<Value> {
        let mut out = Vec::new();
        let mut finish = finish_reason(reason);
        let (content, calls) = match self.splitter.take() {
            Some(mut s) => {
                let mut content = s.push(text);
                let parsed = s.finish(self.shape.tools.as_deref().unwrap_or(&[]));
                content.push_str(&parsed.content);
                (content, parsed.calls)
            }
            None => (text.to_string(), vec![]),
        };
        if !content.is_empty() {
            out.push(self.chunk(json!({"content": content}), None, None));
        }
        if !calls.is_empty() {
            finish = "tool_calls";
            out.push(self.chunk(
                json!({"tool_calls": tool_calls_json(&calls, true)}),
                None,
                None,
            ));
        }
        let last = self.chunk(json!({}), None, Some(finish));
        finish_stream(&self.shape, "chat.completion.chunk", last, usage, &mut out);
        out
    }
}

/// A whole `text_completion`.
pub fn completion(
    shape: &Shape,
    text: &str,
    logprobs: Option<Value>,
    reason: FinishReason,
    usage: &Usage,
) -> Value {
    json!({
        "id": shape.id,
        "object": "text_completion",
        "created": shape.created,
        "model": shape.model,
        "choices": [{
            "index": 0,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish_reason(reason),
        }],
        "usage": usage_json(usage),
        "timings": timings_json(usage),
    })
}

/// The chunks of a streamed answer, chat or completion: one per token (if it shows
/// anything), and the finishing ones.
pub trait StreamChunks: Send + 'static {
    fn token(&mut self, text: &str, logprobs: Option<Value>) -> Option<Value>;
    fn done(&mut self, text: &str, reason: FinishReason, usage: &Usage) -> Vec<Value>;
}

impl StreamChunks for ChatChunks {
    fn token(&mut self, text: &str, logprobs: Option<Value>) -> Option<Value> {
        ChatChunks::token(self, text, logprobs)
    }
    fn done(&mut self, text: &str, reason: FinishReason, usage: &Usage) -> Vec<Value> {
        ChatChunks::done(self, text, reason, usage)
    }
}

impl StreamChunks for CompletionChunks {
    fn token(&mut self, text: &str, logprobs: Option<Value>) -> Option<Value> {
        CompletionChunks::token(self, text, logprobs)
    }
    fn done(&mut self, text: &str, reason: FinishReason, usage: &Usage) -> Vec<Value> {
        CompletionChunks::done(self, text, reason, usage)
    }
}

/// Chunks of a streamed `text_completion`.
pub struct CompletionChunks {
    shape: Shape,
}

impl CompletionChunks {
    pub fn new(shape: Shape) -> CompletionChunks {
        CompletionChunks { shape }
    }

    fn chunk(&self, text: &str, logprobs: Option<Value>, finish: Option<&str>) -> Value {
        let mut v = json!({
            "id": self.shape.id,
            "object": "text_completion",
            "created": self.shape.created,
            "model": self.shape.model,
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}],
        });
        if self.shape.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    pub fn token(&mut self, text: &str, logprobs: Option<Value>) -> Option<Value> {
        (!text.is_empty() || logprobs.is_some()).then(|| self.chunk(text, logprobs, None))
    }

    pub fn done(&mut self, text: &str, reason: FinishReason, usage: &Usage) -> Vec<Value> {
        let last = self.chunk(text, None, Some(finish_reason(reason)));
        let mut out = Vec::new();
        finish_stream(&self.shape, "text_completion", last, usage, &mut out);
        out
    }
}

/// Push a stream's finishing chunk `last` with the usage, which is in every answer: on
/// `last` itself, or (include_usage, as OpenAI) on a chunk of its own after it; the
/// final chunk carries the `timings`.
fn finish_stream(
    shape: &Shape,
    object: &str,
    mut last: Value,
    usage: &Usage,
    out: &mut Vec<Value>,
) {
    if !shape.include_usage {
        last["usage"] = usage_json(usage);
    } else {
        out.push(last);
        last = json!({
            "id": shape.id,
            "object": object,
            "created": shape.created,
            "model": shape.model,
            "choices": [],
            "usage": usage_json(usage),
        });
    }
    last["timings"] = timings_json(usage);
    out.push(last);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(tools: Option<Vec<String>>, include_usage: bool) -> Shape {
        Shape {
            id: "chatcmpl-x".into(),
            created: 1,
            model: "m".into(),
            tools,
            logprobs: false,
            include_usage,
        }
    }

    fn usage() -> Usage {
        Usage {
            prompt_tokens: 10,
            cached_tokens: 4,
            completion_tokens: 5,
            time_to_first_token_ms: 30.0,
            total_ms: 80.0,
            queue_ms: 10.0,
            cpu_seconds: 0.25,
        }
    }

    #[test]
    fn sse_framing() {
        assert_eq!(&sse(&json!({"a": 1}))[..], b"data: {\"a\":1}\n\n");
        assert_eq!(&sse_done()[..], b"data: [DONE]\n\n");
    }

    #[test]
    fn usage_and_timings() {
        let u = usage_json(&usage());
        assert_eq!(u["total_tokens"], 15);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 4);
        let t = timings_json(&usage());
        assert_eq!(t["prompt_n"], 6);
        assert_eq!(t["cached_n"], 4);
        assert_eq!(t["prompt_ms"], 20.0);
        assert_eq!(t["predicted_ms"], 50.0);
        assert_eq!(t["predicted_per_second"], 100.0);
        assert_eq!(t["cpu_seconds"], 0.25);
    }

    #[test]
    fn plain_chat_completion() {
        let v = chat_completion(
            &shape(None, false),
            "Hi!",
            vec![],
            FinishReason::Stop,
            &usage(),
        );
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], "Hi!");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["choices"][0]["logprobs"].is_null());
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(v["usage"]["completion_tokens"], 5);
        assert_eq!(v["timings"]["predicted_n"], 5);
    }

    #[test]
    fn chat_completion_with_a_call() {
        let v = chat_completion(
            &shape(Some(vec!["f".into()]), false),
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>",
            vec![],
            FinishReason::Stop,
            &usage(),
        );
        let c = &v["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls");
        assert!(c["message"]["content"].is_null());
        let call = &c["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "f");
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
    }

    #[test]
    fn chat_stream_without_usage() {
        let mut c = ChatChunks::new(shape(None, false));
        let first = c.start();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert!(first.get("usage").is_none());
        let t = c.token("Hel", None).unwrap();
        assert_eq!(t["object"], "chat.completion.chunk");
        assert_eq!(t["choices"][0]["delta"]["content"], "Hel");
        assert!(t["choices"][0]["finish_reason"].is_null());
        assert!(c.token("", None).is_none());
        let end = c.done("lo", FinishReason::Length, &usage());
        assert_eq!(end.len(), 2);
        assert_eq!(end[0]["choices"][0]["delta"]["content"], "lo");
        assert_eq!(end[1]["choices"][0]["finish_reason"], "length");
        assert_eq!(end[1]["choices"][0]["delta"], json!({}));
        assert_eq!(end[1]["timings"]["predicted_n"], 5);
        assert_eq!(end[1]["usage"]["total_tokens"], 15);
    }

    #[test]
    fn chat_stream_with_usage() {
        let mut c = ChatChunks::new(shape(None, true));
        assert!(c.start()["usage"].is_null());
        let end = c.done("", FinishReason::Stop, &usage());
        assert_eq!(end.len(), 2);
        assert_eq!(end[0]["choices"][0]["finish_reason"], "stop");
        assert!(end[0].get("timings").is_none());
        assert_eq!(end[1]["choices"], json!([]));
        assert_eq!(end[1]["usage"]["total_tokens"], 15);
        assert_eq!(end[1]["timings"]["cached_n"], 4);
    }

    #[test]
    fn chat_stream_tool_call_deltas() {
        let mut c = ChatChunks::new(shape(Some(vec!["f".into()]), false));
        assert!(c.token("<tool_call>", None).is_none());
        assert!(
            c.token("\n{\"name\": \"f\", \"arguments\": {}}", None)
                .is_none()
        );
        let end = c.done("\n</tool_call>", FinishReason::Stop, &usage());
        assert_eq!(end.len(), 2);
        let call = &end[0]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["function"]["name"], "f");
        assert_eq!(call["function"]["arguments"], "{}");
        assert_eq!(end[1]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn completion_shapes() {
        let v = completion(
            &shape(None, false),
            "abc",
            None,
            FinishReason::Stop,
            &usage(),
        );
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["text"], "abc");
        let mut c = CompletionChunks::new(shape(None, true));
        let t = c.token("a", None).unwrap();
        assert_eq!(t["choices"][0]["text"], "a");
        assert!(t["usage"].is_null());
        let end = c.done("", FinishReason::Length, &usage());
        assert_eq!(end[0]["choices"][0]["finish_reason"], "length");
        assert_eq!(end[1]["usage"]["prompt_tokens"], 10);
        assert!(end[1]["timings"].is_object());
    }

    #[test]
    fn ids_have_prefixes() {
        let id = response_id("chatcmpl-");
        assert!(id.starts_with("chatcmpl-") && id.len() == "chatcmpl-".len() + 24);
    }
}
