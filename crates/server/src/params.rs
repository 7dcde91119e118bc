//! Request bodies, read from JSON by hand so that every error names its field.
//!
//! Every body's keys are checked against the set this server implements before anything
//! else: a field we do not implement is a 400 naming it, never silently ignored. A key
//! whose value is `null` is taken as absent (a client sending `"logit_bias": null` asks
//! for the default, so nothing is ignored by accepting it).

use crate::error::ApiError;
use lingqiao_engine::{ChatMessage, SamplerConfig};
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

/// How many stop sequences a request may give (OpenAI allows 4; llama.cpp clients send more).
pub const MAX_STOP: usize = 16;
/// OpenAI's bound on `top_logprobs`.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Refuse any key not in `allowed`. `prefix` places nested objects (`messages[2].`).
pub fn check_keys(obj: &Obj, allowed: &[&str], prefix: &str) -> Result<(), ApiError> {
    match obj
        .iter()
        .find(|(k, v)| !v.is_null() && !allowed.contains(&k.as_str()))
    {
        Some((k, _)) => Err(ApiError::unsupported(format!("{prefix}{k}"))),
        None => Ok(()),
    }
}

/// The body as a JSON object.
pub fn as_object(v: &Value) -> Result<&Obj, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))
}

/// A present, non-null value.
fn get<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn type_error(param: &str, what: &str) -> ApiError {
    ApiError::invalid_param(param, format!("'{param}' must be {what}"))
}

fn opt_bool(obj: &Obj, key: &str) -> Result<Option<bool>, ApiError> {
    get(obj, key)
        .map(|v| v.as_bool().ok_or_else(|| type_error(key, "a boolean")))
        .transpose()
}

fn opt_str<'a>(obj: &'a Obj, key: &str, param: &str) -> Result<Option<&'a str>, ApiError> {
    get(obj, key)
        .map(|v| v.as_str().ok_or_else(|| type_error(param, "a string")))
        .transpose()
}

/// A number within `lo..=hi`.
fn opt_number(obj: &Obj, key: &str, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    let Some(v) = get(obj, key) else {
        return Ok(None);
    };
    match v.as_f64() {
        Some(x) if (lo..=hi).contains(&x) => Ok(Some(x as f32)),
        _ => Err(type_error(key, &format!("a number from {lo} to {hi}"))),
    }
}

/// An integer within `lo..=hi`.
fn opt_int(obj: &Obj, key: &str, lo: u64, hi: u64) -> Result<Option<u64>, ApiError> {
    let Some(v) = get(obj, key) else {
        return Ok(None);
    };
    match v.as_u64() {
        Some(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
        _ => Err(type_error(key, &format!("an integer from {lo} to {hi}"))),
    }
}

/// Fields every generation request shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// The model the client named (`None`: not given).
    pub model: Option<String>,
    /// `max_tokens` / `max_completion_tokens`; `None`: until the context is full.
    pub max_tokens: Option<usize>,
    pub sampler: SamplerConfig,
    pub stop: Vec<String>,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

/// The sampling a request gets when it sets nothing: OpenAI's defaults, temperature 1 and
/// top_p 1, with top_k and min_p off (OpenAI's API has neither), so an unconfigured
/// request samples from the model's whole distribution as OpenAI's does. No repeat
/// penalty; presence/frequency penalties (default 0) look at the last 64 tokens, as
/// llama-server's do. The seed, when not given, is drawn at random per request.
pub fn default_sampler() -> SamplerConfig {
    SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        seed: rand::random(),
    }
}

/// `model`, sampling, `stop`, `n`, `stream`, `stream_options` and the token limit.
/// `max_keys` lists the names the endpoint accepts for the limit.
fn parse_common(obj: &Obj, max_keys: &[&str]) -> Result<Common, ApiError> {
    let model = opt_str(obj, "model", "model")?.map(str::to_string);
    let mut max_tokens: Option<usize> = None;
    for key in max_keys {
        if let Some(n) = opt_int(obj, key, 1, u32::MAX as u64)? {
            // Both given: the tighter bound holds.
            max_tokens = Some(max_tokens.map_or(n as usize, |m| m.min(n as usize)));
        }
    }
    let mut sampler = default_sampler();
    if let Some(t) = opt_number(obj, "temperature", 0.0, 2.0)? {
        sampler.temperature = t;
    }
    if let Some(p) = opt_number(obj, "top_p", 0.0, 1.0)? {
        sampler.top_p = p;
    }
    if let Some(p) = opt_number(obj, "presence_penalty", -2.0, 2.0)? {
        sampler.presence_penalty = p;
    }
    if let Some(p) = opt_number(obj, "frequency_penalty", -2.0, 2.0)? {
        sampler.frequency_penalty = p;
    }
    if let Some(v) = get(obj, "seed") {
        // OpenAI's seed is any 64-bit integer, negative ones included.
        sampler.seed = match (v.as_u64(), v.as_i64()) {
            (Some(s), _) => s,
            (None, Some(s)) => s as u64,
            _ => return Err(type_error("seed", "an integer")),
        };
    }
    if get(obj, "n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(ApiError::invalid_param(
            "n",
            "only n=1 is supported (one choice per request)",
        ));
    }
    opt_str(obj, "user", "user")?; // accepted, not used
    let stop = parse_stop(obj)?;
    let stream = opt_bool(obj, "stream")?.unwrap_or(false);
    let mut include_usage = false;
    if let Some(so) = get(obj, "stream_options") {
        let so = so
            .as_object()
            .ok_or_else(|| type_error("stream_options", "an object"))?;
        if !stream {
            return Err(ApiError::invalid_param(
                "stream_options",
                "'stream_options' is only allowed when 'stream' is true",
            ));
        }
        check_keys(so, &["include_usage"], "stream_options.")?;
        include_usage = opt_bool(so, "include_usage")
            .map_err(|_| type_error("stream_options.include_usage", "a boolean"))?
            .unwrap_or(false);
    }
    Ok(Common {
        model,
        max_tokens,
        sampler,
        stop,
        stream,
        include_usage,
    })
}

fn parse_stop(obj: &Obj) -> Result<Vec<String>, ApiError> {
    let stops = match get(obj, "stop") {
        None => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| type_error("stop", "a string or an array of strings"))?,
        Some(_) => return Err(type_error("stop", "a string or an array of strings")),
    };
    if stops.len() > MAX_STOP {
        return Err(ApiError::invalid_param(
            "stop",
            format!("at most {MAX_STOP} stop sequences are allowed"),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid_param(
            "stop",
            "stop sequences must not be empty",
        ));
    }
    Ok(stops)
}

/// `response_format`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    /// The `json_schema.schema` object.
    JsonSchema(Value),
}

/// `tool_choice`, after defaults: `Auto` when tools are given, `None` when not.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// A validated `/v1/chat/completions` body.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub common: Common,
    pub messages: Vec<ChatMessage>,
    /// Some(k): report logprobs with k alternatives.
    pub logprobs: Option<usize>,
    pub response_format: ResponseFormat,
    /// The tool definitions as given (`{"type":"function","function":{..}}`).
    pub tools: Vec<Value>,
    pub tool_choice: ToolChoice,
    /// Several tool calls in one answer. Default false, as llama-server (OpenAI's is true):
    /// small models, once they have made one call, tend to go on calling.
    pub parallel_tool_calls: bool,
}

impl ChatRequest {
    /// The tools the model is shown: none with `tool_choice: "none"` (as OpenAI, the model
    /// then cannot call any, and is not told of them).
    pub fn active_tools(&self) -> Option<&[Value]> {
        (self.tool_choice != ToolChoice::None && !self.tools.is_empty()).then_some(&self.tools[..])
    }

    /// Names of the declared tools.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools
            .iter()
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
            .collect()
    }
}

pub const CHAT_KEYS: &[&str] = &[
    "messages",
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stream",
    "stream_options",
    "n",
    "user",
];

pub fn parse_chat(body: &Value) -> Result<ChatRequest, ApiError> {
    let obj = as_object(body)?;
    check_keys(obj, CHAT_KEYS, "")?;
    let common = parse_common(obj, &["max_tokens", "max_completion_tokens"])?;
    let messages =
        parse_messages(get(obj, "messages").ok_or_else(|| {
            ApiError::invalid_param("messages", "'messages' is a required field")
        })?)?;
    let logprobs = opt_bool(obj, "logprobs")?.unwrap_or(false);
    let top = opt_int(obj, "top_logprobs", 0, MAX_TOP_LOGPROBS as u64)?;
    if top.is_some() && !logprobs {
        return Err(ApiError::invalid_param(
            "top_logprobs",
            "'top_logprobs' needs 'logprobs': true",
        ));
    }
    let logprobs = logprobs.then(|| top.unwrap_or(0) as usize);
    let response_format = parse_response_format(obj)?;
    let tools = parse_tools(obj)?;
    let tool_choice = parse_tool_choice(obj, &tools)?;
    if !matches!(response_format, ResponseFormat::Text)
        && tool_choice != ToolChoice::None
        && !tools.is_empty()
    {
        return Err(ApiError::invalid_param(
            "response_format",
            "a JSON 'response_format' together with 'tools' is not supported; \
             send one or the other (or tool_choice 'none')",
        ));
    }
    Ok(ChatRequest {
        common,
        messages,
        logprobs,
        response_format,
        tools,
        tool_choice,
        parallel_tool_calls: opt_bool(obj, "parallel_tool_calls")?.unwrap_or(false),
    })
}

fn parse_messages(v: &Value) -> Result<Vec<ChatMessage>, ApiError> {
    let list = v
        .as_array()
        .ok_or_else(|| type_error("messages", "an array of messages"))?;
    if list.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "'messages' must hold at least one message",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| parse_message(m, &format!("messages[{i}]")))
        .collect()
}

fn parse_message(v: &Value, at: &str) -> Result<ChatMessage, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| type_error(at, "a message object"))?;
    check_keys(
        obj,
        &["role", "content", "name", "tool_calls", "tool_call_id"],
        &format!("{at}."),
    )?;
    let role_at = format!("{at}.role");
    let role = match opt_str(obj, "role", &role_at)? {
        // OpenAI's newer name for the system role.
        Some("system" | "developer") => "system",
        Some(r @ ("user" | "assistant" | "tool")) => r,
        Some(r) => {
            return Err(ApiError::invalid_param(
                role_at,
                format!("unknown role '{r}': use system, developer, user, assistant or tool"),
            ));
        }
        None => return Err(ApiError::invalid_param(role_at, "a message needs a 'role'")),
    };
    let content = parse_content(get(obj, "content"), &format!("{at}.content"))?;
    let name = opt_str(obj, "name", &format!("{at}.name"))?.map(str::to_string);
    let tool_calls = match get(obj, "tool_calls") {
        Some(tc) if role == "assistant" => {
            Some(parse_tool_calls_in(tc, &format!("{at}.tool_calls"))?)
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                format!("{at}.tool_calls"),
                "only assistant messages carry 'tool_calls'",
            ));
        }
        None => None,
    };
    let tool_call_id =
        opt_str(obj, "tool_call_id", &format!("{at}.tool_call_id"))?.map(str::to_string);
    if content.is_none() && tool_calls.is_none() {
        return Err(ApiError::invalid_param(
            format!("{at}.content"),
            "a message needs 'content' (or, from the assistant, 'tool_calls')",
        ));
    }
    Ok(ChatMessage {
        role: role.to_string(),
        content,
        tool_calls,
        tool_call_id,
        name,
        reasoning_content: None,
    })
}

/// A string, or an array of `{"type":"text","text":..}` parts (joined with newlines).
fn parse_content(v: Option<&Value>, at: &str) -> Result<Option<String>, ApiError> {
    let parts = match v {
        None => return Ok(None),
        Some(Value::String(s)) => return Ok(Some(s.clone())),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(type_error(at, "a string or an array of content parts")),
    };
    let mut texts = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let pat = format!("{at}[{j}]");
        let obj = p
            .as_object()
            .ok_or_else(|| type_error(&pat, "a content part object"))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some(other) => {
                return Err(ApiError::invalid_param(
                    format!("{pat}.type"),
                    format!("content parts of type '{other}' are not supported (text only)"),
                )
                .with_code("unsupported_parameter"));
            }
            None => return Err(type_error(&format!("{pat}.type"), "\"text\"")),
        }
        check_keys(obj, &["type", "text"], &format!("{pat}."))?;
        let text = opt_str(obj, "text", &format!("{pat}.text"))?
            .ok_or_else(|| type_error(&format!("{pat}.text"), "a string"))?;
        texts.push(text);
    }
    Ok(Some(texts.join("\n")))
}

/// An assistant message's earlier calls. `arguments` (a JSON string in OpenAI's shape) is
/// handed to the template as the object it encodes, as llama.cpp does: templates such as
/// Qwen2.5's print `arguments | tojson` and expect a mapping.
fn parse_tool_calls_in(v: &Value, at: &str) -> Result<Vec<Value>, ApiError> {
    let list = v
        .as_array()
        .ok_or_else(|| type_error(at, "an array of tool calls"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let cat = format!("{at}[{i}]");
        let obj = c
            .as_object()
            .ok_or_else(|| type_error(&cat, "a tool call object"))?;
        check_keys(obj, &["id", "type", "function"], &format!("{cat}."))?;
        if opt_str(obj, "type", &format!("{cat}.type"))?.is_some_and(|t| t != "function") {
            return Err(type_error(&format!("{cat}.type"), "\"function\""));
        }
        let f = get(obj, "function")
            .and_then(Value::as_object)
            .ok_or_else(|| type_error(&format!("{cat}.function"), "an object"))?;
        check_keys(f, &["name", "arguments"], &format!("{cat}.function."))?;
        let name = opt_str(f, "name", &format!("{cat}.function.name"))?
            .ok_or_else(|| type_error(&format!("{cat}.function.name"), "a string"))?;
        let args = match get(f, "arguments") {
            None => Value::Object(Map::new()),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::String(s.clone())),
            Some(o @ Value::Object(_)) => o.clone(),
            Some(_) => {
                return Err(type_error(
                    &format!("{cat}.function.arguments"),
                    "a JSON string",
                ));
            }
        };
        let mut call = Map::new();
        if let Some(id) = opt_str(obj, "id", &format!("{cat}.id"))? {
            call.insert("id".into(), id.into());
        }
        call.insert("type".into(), "function".into());
        call.insert(
            "function".into(),
            serde_json::json!({"name": name, "arguments": args}),
        );
        out.push(Value::Object(call));
    }
    Ok(out)
}

fn parse_response_format(obj: &Obj) -> Result<ResponseFormat, ApiError> {
    let Some(rf) = get(obj, "response_format") else {
        return Ok(ResponseFormat::Text);
    };
    let rf = rf
        .as_object()
        .ok_or_else(|| type_error("response_format", "an object"))?;
    match opt_str(rf, "type", "response_format.type")? {
        Some("text") => {
            check_keys(rf, &["type"], "response_format.")?;
            Ok(ResponseFormat::Text)
        }
        Some("json_object") => {
            check_keys(rf, &["type"], "response_format.")?;
            Ok(ResponseFormat::JsonObject)
        }
        Some("json_schema") => {
            check_keys(rf, &["type", "json_schema"], "response_format.")?;
            let js = get(rf, "json_schema")
                .and_then(Value::as_object)
                .ok_or_else(|| type_error("response_format.json_schema", "an object"))?;
            check_keys(
                js,
                &["name", "schema", "strict", "description"],
                "response_format.json_schema.",
            )?;
            opt_str(js, "name", "response_format.json_schema.name")?;
            opt_str(js, "description", "response_format.json_schema.description")?;
            if get(js, "strict").is_some_and(|s| !s.is_boolean()) {
                return Err(type_error(
                    "response_format.json_schema.strict",
                    "a boolean",
                ));
            }
            // OpenAI requires `schema`; without one any JSON value will do.
            let schema = get(js, "schema")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new()));
            if !schema.is_object() && !schema.is_boolean() {
                return Err(type_error(
                    "response_format.json_schema.schema",
                    "a JSON schema object",
                ));
            }
            Ok(ResponseFormat::JsonSchema(schema))
        }
        Some(other) => Err(ApiError::invalid_param(
            "response_format.type",
            format!("unknown response_format type '{other}': use text, json_object or json_schema"),
        )),
        None => Err(type_error("response_format.type", "a string")),
    }
}

fn parse_tools(obj: &Obj) -> Result<Vec<Value>, ApiError> {
    let Some(v) = get(obj, "tools") else {
        return Ok(vec![]);
    };
    let list = v
        .as_array()
        .ok_or_else(|| type_error("tools", "an array of tools"))?;
    let mut names = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let obj = t
            .as_object()
            .ok_or_else(|| type_error(&at, "a tool object"))?;
        check_keys(obj, &["type", "function"], &format!("{at}."))?;
        if opt_str(obj, "type", &format!("{at}.type"))? != Some("function") {
            return Err(ApiError::invalid_param(
                format!("{at}.type"),
                "only tools of type 'function' are supported",
            ));
        }
        let f = get(obj, "function")
            .and_then(Value::as_object)
            .ok_or_else(|| type_error(&format!("{at}.function"), "an object"))?;
        check_keys(
            f,
            &["name", "description", "parameters", "strict"],
            &format!("{at}.function."),
        )?;
        let name = opt_str(f, "name", &format!("{at}.function.name"))?.unwrap_or("");
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ApiError::invalid_param(
                format!("{at}.function.name"),
                "a tool name must be 1-64 characters of a-z, A-Z, 0-9, _ and -",
            ));
        }
        if names.contains(&name) {
            return Err(ApiError::invalid_param(
                format!("{at}.function.name"),
                format!("two tools are named '{name}'"),
            ));
        }
        names.push(name);
        opt_str(f, "description", &format!("{at}.function.description"))?;
        if get(f, "parameters").is_some_and(|p| !p.is_object()) {
            return Err(type_error(
                &format!("{at}.function.parameters"),
                "a JSON schema object",
            ));
        }
        if get(f, "strict").is_some_and(|s| !s.is_boolean()) {
            return Err(type_error(&format!("{at}.function.strict"), "a boolean"));
        }
    }
    Ok(list.clone())
}

fn parse_tool_choice(obj: &Obj, tools: &[Value]) -> Result<ToolChoice, ApiError> {
    let choice = match get(obj, "tool_choice") {
        None => {
            return Ok(if tools.is_empty() {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            });
        }
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!(
                        "unknown tool_choice '{other}': use none, auto, required or an object naming a function"
                    ),
                ));
            }
        },
        Some(Value::Object(o)) => {
            check_keys(o, &["type", "function"], "tool_choice.")?;
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| o.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| {
                    type_error(
                        "tool_choice",
                        "\"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    )
                })?;
            if let Some(f) = o.get("function").and_then(Value::as_object) {
                check_keys(f, &["name"], "tool_choice.function.")?;
            }
            ToolChoice::Named(name.to_string())
        }
        Some(_) => return Err(type_error("tool_choice", "a string or an object")),
    };
    if tools.is_empty() && choice != ToolChoice::None {
        return Err(ApiError::invalid_param(
            "tool_choice",
            "'tool_choice' needs 'tools'",
        ));
    }
    if let ToolChoice::Named(name) = &choice
        && !tools.iter().any(|t| t["function"]["name"] == name.as_str())
    {
        return Err(ApiError::invalid_param(
            "tool_choice",
            format!("tool_choice names '{name}', which is not among the tools"),
        ));
    }
    Ok(choice)
}

/// What `/v1/completions` is asked to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

/// A validated `/v1/completions` body.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    pub common: Common,
    pub prompt: Prompt,
    /// Some(k): report logprobs with k alternatives (the legacy API's integer `logprobs`).
    pub logprobs: Option<usize>,
}

pub const COMPLETION_KEYS: &[&str] = &[
    "prompt",
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "stream",
    "stream_options",
    "n",
    "user",
];

/// OpenAI's default `max_tokens` for the legacy completions endpoint.
pub const COMPLETION_DEFAULT_MAX_TOKENS: usize = 16;

pub fn parse_completion(body: &Value) -> Result<CompletionRequest, ApiError> {
    let obj = as_object(body)?;
    check_keys(obj, COMPLETION_KEYS, "")?;
    let mut common = parse_common(obj, &["max_tokens"])?;
    common.max_tokens = Some(common.max_tokens.unwrap_or(COMPLETION_DEFAULT_MAX_TOKENS));
    let prompt = match get(obj, "prompt") {
        None => {
            return Err(ApiError::invalid_param(
                "prompt",
                "'prompt' is a required field",
            ));
        }
        Some(v) => match one_input(v) {
            Some(Input::Text(s)) => Prompt::Text(s),
            Some(Input::Tokens(t)) => Prompt::Tokens(t),
            None => {
                return Err(type_error(
                    "prompt",
                    "a string, an array of token ids, or an array holding one of those \
                     (one prompt per request)",
                ));
            }
        },
    };
    let logprobs = opt_int(obj, "logprobs", 0, MAX_TOP_LOGPROBS as u64)?.map(|k| k as usize);
    Ok(CompletionRequest {
        common,
        prompt,
        logprobs,
    })
}

/// One text or token input.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Tokens(Vec<u32>),
}

fn tokens(v: &[Value]) -> Option<Vec<u32>> {
    v.iter()
        .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
        .collect()
}

/// A single input: `"text"`, `[1, 2]`, `["text"]` or `[[1, 2]]`.
fn one_input(v: &Value) -> Option<Input> {
    let mut all = inputs(v)?;
    (all.len() == 1).then(|| all.remove(0))
}

/// Inputs as the embeddings endpoint takes them: a string, an array of strings, an array
/// of token ids, or an array of arrays of token ids.
pub fn inputs(v: &Value) -> Option<Vec<Input>> {
    match v {
        Value::String(s) => Some(vec![Input::Text(s.clone())]),
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_number) => {
            tokens(a).map(|t| vec![Input::Tokens(t)])
        }
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Some(Input::Text(s.clone())),
                Value::Array(t) => tokens(t).map(Input::Tokens),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// A validated `/v1/embeddings` body.
#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    pub model: Option<String>,
    pub input: Vec<Input>,
    pub base64: bool,
}

pub fn parse_embedding(body: &Value) -> Result<EmbeddingRequest, ApiError> {
    let obj = as_object(body)?;
    check_keys(obj, &["input", "model", "encoding_format", "user"], "")?;
    let model = opt_str(obj, "model", "model")?.map(str::to_string);
    opt_str(obj, "user", "user")?;
    let input = get(obj, "input")
        .ok_or_else(|| ApiError::invalid_param("input", "'input' is a required field"))
        .and_then(|v| {
            inputs(v).ok_or_else(|| {
                type_error(
                    "input",
                    "a string, an array of strings, an array of token ids or an array of those",
                )
            })
        })?;
    if input.is_empty() {
        return Err(ApiError::invalid_param("input", "'input' is empty"));
    }
    let base64 = match opt_str(obj, "encoding_format", "encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "encoding_format",
                format!("unknown encoding_format '{other}': use float or base64"),
            ));
        }
    };
    Ok(EmbeddingRequest {
        model,
        input,
        base64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    fn chat(v: Value) -> Result<ChatRequest, ApiError> {
        parse_chat(&v)
    }

    fn err(v: Value) -> ApiError {
        chat(v).expect_err("should be refused")
    }

    #[test]
    fn minimal_chat_gets_openai_defaults() {
        let r =
            chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(r.common.sampler.temperature, 1.0);
        assert_eq!(r.common.sampler.top_p, 1.0);
        assert_eq!(r.common.sampler.top_k, 0);
        assert_eq!(r.common.sampler.min_p, 0.0);
        assert_eq!(r.common.max_tokens, None);
        assert!(!r.common.stream);
        assert_eq!(r.logprobs, None);
        assert_eq!(r.tool_choice, ToolChoice::None);
        assert_eq!(r.messages[0], ChatMessage::user("hi"));
    }

    #[test]
    fn unsupported_field_is_named() {
        let e =
            err(json!({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 2}}));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("logit_bias"), "{}", e.message);
        assert_eq!(e.param.as_deref(), Some("logit_bias"));
        // Nested: an unknown key inside a message.
        let e = err(json!({"messages": [{"role": "user", "content": "hi", "audio": {}}]}));
        assert_eq!(e.param.as_deref(), Some("messages[0].audio"));
        // A null value asks for the default: accepted.
        chat(json!({"messages": [{"role": "user", "content": "hi"}], "logit_bias": null})).unwrap();
    }

    #[test]
    fn field_values_are_checked() {
        let m = json!([{"role": "user", "content": "hi"}]);
        for (k, v) in [
            ("temperature", json!(2.5)),
            ("temperature", json!("hot")),
            ("top_p", json!(1.5)),
            ("max_tokens", json!(0)),
            ("max_tokens", json!(-3)),
            ("n", json!(2)),
            ("top_logprobs", json!(21)),
            ("stop", json!([1, 2])),
            ("stop", json!("")),
            ("presence_penalty", json!(3)),
            ("seed", json!(1.5)),
            ("stream", json!("yes")),
        ] {
            let mut body = json!({"messages": m, "logprobs": true});
            body[k] = v.clone();
            let e = err(body);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{k}={v}");
            assert_eq!(e.param.as_deref(), Some(k), "{k}={v}: {}", e.message);
        }
    }

    #[test]
    fn max_completion_tokens_and_max_tokens() {
        let m = json!([{"role": "user", "content": "hi"}]);
        let r = chat(json!({"messages": m, "max_completion_tokens": 7})).unwrap();
        assert_eq!(r.common.max_tokens, Some(7));
        let r = chat(json!({"messages": m, "max_completion_tokens": 7, "max_tokens": 5})).unwrap();
        assert_eq!(r.common.max_tokens, Some(5));
    }

    #[test]
    fn sampling_fields_reach_the_sampler() {
        let r = chat(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0, "top_p": 0.5, "seed": -1,
            "presence_penalty": 0.5, "frequency_penalty": -0.5, "stop": "\n",
            "logprobs": true, "top_logprobs": 3, "n": 1, "user": "me",
        }))
        .unwrap();
        let s = &r.common.sampler;
        assert_eq!(s.temperature, 0.0);
        assert_eq!(s.top_p, 0.5);
        assert_eq!(s.seed, u64::MAX);
        assert_eq!(s.presence_penalty, 0.5);
        assert_eq!(s.frequency_penalty, -0.5);
        assert_eq!(r.common.stop, vec!["\n".to_string()]);
        assert_eq!(r.logprobs, Some(3));
    }

    #[test]
    fn top_logprobs_needs_logprobs() {
        let e = err(json!({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}));
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
    }

    #[test]
    fn stream_options_need_stream() {
        let m = json!([{"role": "user", "content": "hi"}]);
        let e = err(json!({"messages": m, "stream_options": {"include_usage": true}}));
        assert_eq!(e.param.as_deref(), Some("stream_options"));
        let r =
            chat(json!({"messages": m, "stream": true, "stream_options": {"include_usage": true}}))
                .unwrap();
        assert!(r.common.stream && r.common.include_usage);
        let e = err(json!({"messages": m, "stream": true, "stream_options": {"other": 1}}));
        assert_eq!(e.param.as_deref(), Some("stream_options.other"));
    }

    #[test]
    fn content_parts_and_roles() {
        let r = chat(json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ]}))
        .unwrap();
        assert_eq!(r.messages[0].role, "system");
        assert_eq!(r.messages[1].content.as_deref(), Some("a\nb"));
        let call = &r.messages[2].tool_calls.as_ref().unwrap()[0];
        // The arguments reach the template as an object.
        assert_eq!(call["function"]["arguments"], json!({"x": 1}));
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("call_1"));

        let e = err(
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
        );
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
        assert!(e.message.contains("image_url"));
        let e = err(json!({"messages": [{"role": "wizard", "content": "x"}]}));
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = err(json!({"messages": [{"role": "user"}]}));
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e = err(json!({"messages": []}));
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = err(json!({"model": "m"}));
        assert_eq!(e.param.as_deref(), Some("messages"));
    }

    fn weather_tool() -> Value {
        json!({"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }})
    }

    #[test]
    fn tools_and_tool_choice() {
        let m = json!([{"role": "user", "content": "weather in Paris?"}]);
        let r = chat(json!({"messages": m, "tools": [weather_tool()]})).unwrap();
        assert_eq!(r.tool_choice, ToolChoice::Auto);
        assert!(r.active_tools().is_some());
        assert_eq!(r.tool_names(), vec!["get_weather".to_string()]);
        let r =
            chat(json!({"messages": m, "tools": [weather_tool()], "tool_choice": "none"})).unwrap();
        assert!(r.active_tools().is_none());
        let r = chat(json!({"messages": m, "tools": [weather_tool()], "tool_choice": "required"}))
            .unwrap();
        assert_eq!(r.tool_choice, ToolChoice::Required);
        let r = chat(json!({"messages": m, "tools": [weather_tool()],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}))
        .unwrap();
        assert_eq!(r.tool_choice, ToolChoice::Named("get_weather".into()));

        let e = err(json!({"messages": m, "tools": [weather_tool()],
            "tool_choice": {"type": "function", "function": {"name": "nope"}}}));
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let e = err(json!({"messages": m, "tool_choice": "required"}));
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let e = err(json!({"messages": m, "tools": [{"type": "retrieval"}]}));
        assert_eq!(e.param.as_deref(), Some("tools[0].type"));
        let e = err(
            json!({"messages": m, "tools": [{"type": "function", "function": {"name": "a b"}}]}),
        );
        assert_eq!(e.param.as_deref(), Some("tools[0].function.name"));
    }

    #[test]
    fn response_formats() {
        let m = json!([{"role": "user", "content": "hi"}]);
        let rf = |f: Value| chat(json!({"messages": m, "response_format": f}));
        assert_eq!(
            rf(json!({"type": "text"})).unwrap().response_format,
            ResponseFormat::Text
        );
        assert_eq!(
            rf(json!({"type": "json_object"})).unwrap().response_format,
            ResponseFormat::JsonObject
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        assert_eq!(
            rf(json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": true}}))
                .unwrap()
                .response_format,
            ResponseFormat::JsonSchema(schema)
        );
        let e = rf(json!({"type": "yaml"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("response_format.type"));
        let e = rf(json!({"type": "json_schema"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("response_format.json_schema"));
    }

    #[test]
    fn completion_prompts() {
        let r = parse_completion(&json!({"prompt": "Once", "logprobs": 2})).unwrap();
        assert_eq!(r.prompt, Prompt::Text("Once".into()));
        assert_eq!(r.common.max_tokens, Some(COMPLETION_DEFAULT_MAX_TOKENS));
        assert_eq!(r.logprobs, Some(2));
        let r = parse_completion(&json!({"prompt": [1, 2, 3], "max_tokens": 4})).unwrap();
        assert_eq!(r.prompt, Prompt::Tokens(vec![1, 2, 3]));
        assert_eq!(r.common.max_tokens, Some(4));
        let r = parse_completion(&json!({"prompt": ["one"]})).unwrap();
        assert_eq!(r.prompt, Prompt::Text("one".into()));
        let e = parse_completion(&json!({"prompt": ["one", "two"]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let e = parse_completion(&json!({"prompt": "x", "echo": true})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("echo"));
        let e = parse_completion(&json!({"prompt": "x", "suffix": "y"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("suffix"));
    }

    #[test]
    fn embedding_inputs() {
        let r = parse_embedding(&json!({"input": "a"})).unwrap();
        assert_eq!(r.input, vec![Input::Text("a".into())]);
        assert!(!r.base64);
        let r =
            parse_embedding(&json!({"input": ["a", "b"], "encoding_format": "base64"})).unwrap();
        assert_eq!(r.input.len(), 2);
        assert!(r.base64);
        let r = parse_embedding(&json!({"input": [[1, 2], [3]]})).unwrap();
        assert_eq!(
            r.input,
            vec![Input::Tokens(vec![1, 2]), Input::Tokens(vec![3])]
        );
        assert_eq!(
            parse_embedding(&json!({"input": [5, 6]})).unwrap().input,
            vec![Input::Tokens(vec![5, 6])]
        );
        let e = parse_embedding(&json!({"input": "a", "dimensions": 8})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("dimensions"));
        assert!(parse_embedding(&json!({"input": 3})).is_err());
        assert!(parse_embedding(&json!({"input": []})).is_err());
    }

    #[test]
    fn body_must_be_an_object() {
        assert_eq!(
            parse_chat(&json!([1])).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
