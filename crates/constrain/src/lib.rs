//! Structured output that is enforced while sampling: OpenAI's `response_format`
//! (`json_object`, `json_schema`) and tool calls, compiled into a
//! [`lingqiao_engine::batch::Constraint`] that masks, at every step, the tokens that
//! cannot continue a valid output. The output always parses and validates; it cannot
//! stop early (end-of-generation tokens are allowed exactly where the output is
//! complete) and it ends by itself when nothing more may follow.
//!
//! # Why llguidance
//!
//! The grammar engine is [llguidance](https://github.com/guidance-ai/llguidance), the
//! constrained-decoding library behind llama.cpp's, vLLM's and SGLang's structured
//! output: an Earley parser over derivative-based lexers that compiles JSON schemas and
//! Lark grammars itself and has the widest JSON-schema coverage of the engines. It is
//! fast enough to run on the engine thread for every token: over qwen05's 151,936 tokens
//! a mask takes 75 us on average for a typical schema (p99 under 1 ms, the worst few
//! ms), 5 us for tool calls; compiling a schema takes about 1 ms, building the [`Vocab`]
//! 0.5 s once per model (`tests/mask_time.rs`, on a shared 2-core machine). Writing our
//! own would mean re-deriving all of that, less tested.
//! Its `rayon` (parallel masks for many sequences at once) and `referencing` (remote and
//! `$id`-relative `$ref`s) features are off: the engine masks one sequence at a time, and
//! only local references are supported.
//!
//! # JSON schema: what is enforced
//!
//! `type` (all six, and lists of them), `enum`, `const`, `anyOf`, `allOf`, `oneOf` (when
//! llguidance can prove the branches exclusive; otherwise an error), local `$ref`
//! (`#/...`, with `$defs`/`definitions`); objects: `properties`, `required`,
//! `additionalProperties`, `patternProperties`, `minProperties`, `maxProperties`; arrays:
//! `items`, `prefixItems`, `additionalItems`, `minItems`, `maxItems`; strings:
//! `minLength`, `maxLength`, `pattern` (regular expressions without look-around or
//! back-references), `format` (date-time, date, time, duration, email, hostname, ipv4,
//! ipv6, uuid, uri; date, time, date-time, email and hostname through patterns of ours,
//! see `schema.rs`: llguidance's allow February 29 in any year, leap seconds at any
//! time and over-long addresses, which validators reject); numbers: `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`. Annotations (`title`, `description`, `default`,
//! `examples`, `$schema`, `$id`, `$comment`, `deprecated`, `readOnly`, `writeOnly`, ...)
//! are accepted and ignored.
//!
//! Every other key is [`ConstrainError::Unsupported`], naming it, before anything is
//! compiled: keywords llguidance does not implement (`uniqueItems`, `contains`, `not`,
//! `if`/`then`/`else`, `dependentRequired`, `propertyNames`, `unevaluatedProperties`,
//! ...), and also keys that are no keyword at all (a typo like `minLenght`, OpenAPI's
//! `nullable`), which a validator would ignore but which the caller surely meant as a
//! constraint. The server answers these with HTTP 400, never with an unconstrained
//! output.
//!
//! Output layout: objects are written `{"a": 1, "b": [1, 2]}` (`", "` and `": "`
//! separators, no other whitespace), which is also how Qwen writes tool calls; free
//! whitespace would let a model pad without end.
//!
//! # Tool calls
//!
//! In the Hermes format of Qwen2.5's chat template, `<tool_call>\n{"name": "<fn>",
//! "arguments": {...}}\n</tool_call>`, one or more in a row separated by `\n`; `name` is
//! one of the tools and `arguments` is validated against that tool's `parameters`.
//! [`ToolChoice::Auto`]: either free text that never contains `<tool_call>`, or tool calls
//! only (so a malformed call cannot end up in the content); [`ToolChoice::Required`]: one
//! or more calls; [`ToolChoice::Named`]: exactly one call of that function. `tool_choice:
//! "none"` is no constraint at all. Where the vocabulary has `<tool_call>` and
//! `</tool_call>` as tokens (Qwen2.5: ordinary, not control tokens) the model writes them
//! as those tokens or as text, the same bytes; elsewhere they are text.
//!
//! # End of output
//!
//! The model's end-of-generation tokens (all of them: Qwen2.5 has several) are allowed
//! exactly where the output may end; where nothing may follow (a JSON object closed, a
//! named call written) [`Constraint::is_finished`] is true and only they are allowed.

mod schema;
mod vocab;

use lingqiao_engine::batch::Constraint;
use llguidance::Matcher;
use llguidance::api::TopLevelGrammar;
use serde_json::{Value, json};

pub use vocab::{TokenizerSource, Vocab};

// The server shares one `Vocab` between request threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Vocab>();
};

#[derive(thiserror::Error, Debug)]
pub enum ConstrainError {
    /// A schema feature we cannot enforce; the message names it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A malformed schema or tool list, or a tool choice naming no tool.
    #[error("invalid: {0}")]
    Invalid(String),
    /// llguidance failed on its own (not the request's fault).
    #[error("internal: {0}")]
    Internal(String),
}

/// How a response with tools may use them. `tool_choice: "none"` is no constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// Free text (never containing `<tool_call>`), or one or more tool calls.
    Auto,
    /// One or more tool calls.
    Required,
    /// Exactly one call of this function.
    Named(String),
}

/// How objects are laid out (llguidance's `x-guidance` options on a schema).
fn layout() -> Value {
    json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
    })
}

/// Any JSON object.
pub fn json_object(v: &Vocab) -> Result<Box<dyn Constraint>, ConstrainError> {
    json_schema(v, &json!({"type": "object"}))
}

/// Output that is one JSON value valid under `schema`.
pub fn json_schema(v: &Vocab, schema: &Value) -> Result<Box<dyn Constraint>, ConstrainError> {
    let mut schema = match schema {
        // `true`: any value; `{}` means the same and can carry the layout options
        Value::Bool(true) => json!({}),
        Value::Bool(false) => {
            return Err(ConstrainError::Invalid(
                "the schema `false` allows no output".into(),
            ));
        }
        s => s.clone(),
    };
    schema::check(&mut schema, None)?;
    schema
        .as_object_mut()
        .expect("checked: an object")
        .insert("x-guidance".into(), layout());
    compile(v, TopLevelGrammar::from_json_schema(schema))
}

/// Tool calls (see the crate documentation for the format) under `choice`: one call, or
/// with `parallel` one or more in a row.
pub fn tool_calls(
    v: &Vocab,
    tools: &[Value],
    choice: &ToolChoice,
    parallel: bool,
) -> Result<Box<dyn Constraint>, ConstrainError> {
    let mut calls = Vec::new(); // (name, lark rule)
    for (i, tool) in tools.iter().enumerate() {
        let (name, parameters) = parse_tool(i, tool)?;
        if calls.iter().any(|(n, _)| n == &name) {
            return Err(ConstrainError::Invalid(format!(
                "tools: two functions are named `{name}`"
            )));
        }
        let mut parameters = parameters;
        schema::check(&mut parameters, Some("#/properties/arguments"))
            .map_err(|e| in_tool(e, &name))?;
        let call = json!({
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": parameters},
            "required": ["name", "arguments"],
            "additionalProperties": false,
            "x-guidance": layout(),
        });
        calls.push((name, call));
    }
    let selected: Vec<&(String, Value)> = match choice {
        ToolChoice::Named(f) => {
            let call = calls.iter().find(|(n, _)| n == f).ok_or_else(|| {
                ConstrainError::Invalid(format!("tool_choice names `{f}`, which is not a tool"))
            })?;
            vec![call]
        }
        ToolChoice::Auto | ToolChoice::Required => calls.iter().collect(),
    };
    if selected.is_empty() {
        return Err(ConstrainError::Invalid(
            "tool_choice requires a tool call but there are no tools".into(),
        ));
    }

    let (open, close) = tag_syntax(v);
    let mut lark = String::new();
    match choice {
        ToolChoice::Auto => lark.push_str("start: TEXT | calls\n"),
        ToolChoice::Required => lark.push_str("start: calls\n"),
        ToolChoice::Named(_) => lark.push_str("start: call\n"),
    }
    // Several calls in a row only when asked for (OpenAI's `parallel_tool_calls`): small
    // models, once they have made one call, tend to go on calling for ever.
    if parallel {
        lark.push_str("calls: call (\"\\n\" call)*\n");
    } else {
        lark.push_str("calls: call\n");
    }
    lark.push_str("call: ");
    for i in 0..selected.len() {
        if i > 0 {
            lark.push_str(" | ");
        }
        lark.push_str(&format!("call_{i}"));
    }
    lark.push('\n');
    for (i, (_, call)) in selected.iter().enumerate() {
        lark.push_str(&format!(
            "call_{i}: {open} \"\\n\" %json {call} \"\\n\" {close}\n"
        ));
    }
    // free text: any text in which `<tool_call>` never occurs (control tokens are never
    // text: their bytes are not UTF-8)
    lark.push_str("TEXT: /(?s:.*)/ & ~/(?s:.*<tool_call>.*)/\n");
    compile(v, TopLevelGrammar::from_lark(lark))
}

/// The calls in an output generated under [`tool_calls`]: `(name, arguments)` in order,
/// or `None` when the output is text (under [`ToolChoice::Auto`]) or not a whole
/// sequence of calls (generation cut short by `max_tokens`).
pub fn parse_tool_calls(text: &str) -> Option<Vec<(String, Value)>> {
    const OPEN: &str = "<tool_call>\n";
    const CLOSE: &str = "\n</tool_call>";
    let mut calls = Vec::new();
    let mut rest = text.strip_prefix(OPEN)?;
    loop {
        // JSON has no raw newline inside strings: the first CLOSE ends the call
        let end = rest.find(CLOSE)?;
        let mut call: serde_json::Map<String, Value> = serde_json::from_str(&rest[..end]).ok()?;
        let name = call.remove("name")?.as_str()?.to_string();
        calls.push((name, call.remove("arguments")?));
        rest = &rest[end + CLOSE.len()..];
        if rest.is_empty() {
            return Some(calls);
        }
        rest = rest.strip_prefix('\n')?.strip_prefix(OPEN)?;
    }
}

/// How the grammar writes `<tool_call>` and `</tool_call>`: as text, or, where the
/// vocabulary has them as control tokens, as those special tokens.
fn tag_syntax(v: &Vocab) -> (&'static str, &'static str) {
    match v.inner.tool_call_tokens {
        Some((true, true)) => ("<tool_call>", "</tool_call>"),
        _ => ("\"<tool_call>\"", "\"</tool_call>\""),
    }
}

fn in_tool(e: ConstrainError, name: &str) -> ConstrainError {
    match e {
        ConstrainError::Unsupported(m) => {
            ConstrainError::Unsupported(format!("tool `{name}` parameters: {m}"))
        }
        ConstrainError::Invalid(m) => {
            ConstrainError::Invalid(format!("tool `{name}` parameters: {m}"))
        }
        e => e,
    }
}

/// (name, parameters schema) of an OpenAI tool object.
fn parse_tool(i: usize, tool: &Value) -> Result<(String, Value), ConstrainError> {
    let bad = |what: &str| ConstrainError::Invalid(format!("tools[{i}]: {what}"));
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err(bad("`type` must be \"function\""));
    }
    let function = tool
        .get("function")
        .filter(|f| f.is_object())
        .ok_or_else(|| bad("`function` must be an object"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("`function.name` must be a non-empty string"))?;
    let parameters = match function.get("parameters") {
        // no parameters: a function that takes none
        None | Some(Value::Null) => {
            json!({"type": "object", "properties": {}, "additionalProperties": false})
        }
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Err(bad("`function.parameters` must be a JSON schema object")),
    };
    Ok((name.to_string(), parameters))
}

/// Classifies llguidance's compile errors: the features it does not support are
/// `Unsupported` (the message names them), the rest `Invalid`.
fn compile_error(msg: String) -> ConstrainError {
    const UNSUPPORTED: &[&str] = &[
        "Unimplemented keys",
        "Unknown format",
        "not supported",
        "unsupported",
        "Only absolute $ref",
        // a regex intersection (pattern with format, allOf) too large to prove non-empty
        "Unable to determine if regex is empty",
    ];
    if UNSUPPORTED.iter().any(|s| msg.contains(s)) {
        ConstrainError::Unsupported(msg)
    } else {
        ConstrainError::Invalid(msg)
    }
}

fn compile(v: &Vocab, grammar: TopLevelGrammar) -> Result<Box<dyn Constraint>, ConstrainError> {
    let parser = v
        .inner
        .factory
        .create_parser(grammar)
        .map_err(|e| compile_error(format!("{e:#}")))?;
    let matcher = Matcher::new(Ok(parser));
    if let Some(e) = matcher.get_error() {
        return Err(compile_error(e));
    }
    Ok(Box::new(Guided {
        matcher,
        eog: v.inner.eog.clone(),
        n_vocab: v.inner.n_vocab,
        words: v.inner.n_vocab.div_ceil(32),
    }))
}

/// A compiled grammar following one sequence.
struct Guided {
    matcher: Matcher,
    eog: Vec<u32>,
    n_vocab: usize,
    words: usize,
}

impl Constraint for Guided {
    fn allowed(&mut self, mask: &mut [u32]) -> Result<(), String> {
        // once stopped, only end-of-generation tokens
        let allowed = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| format!("constraint: {e}"))?;
        let n = self.words.min(mask.len());
        mask[..n].copy_from_slice(&allowed.as_slice()[..n]);
        // llguidance's set has room for one id past the vocabulary: never allow it
        let tail = self.n_vocab % 32;
        if tail != 0 && n == self.words {
            mask[n - 1] &= (1u32 << tail) - 1;
        }
        Ok(())
    }

    fn accept(&mut self, token: u32) -> Result<(), String> {
        if self.matcher.is_stopped() {
            // after the end only end-of-generation was allowed: sampling it is a no-op
            return if self.eog.contains(&token) {
                Ok(())
            } else {
                Err(format!(
                    "constraint: token {token} after the end of the output"
                ))
            };
        }
        self.matcher
            .consume_token(token)
            .map_err(|e| format!("constraint: {e}"))
    }

    fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tool_call_sequences() {
        let one = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x\\n</tool_call>\"}}\n</tool_call>";
        assert_eq!(
            parse_tool_calls(one),
            Some(vec![("f".into(), json!({"a": "x\n</tool_call>"}))])
        );
        let two =
            format!("{one}\n<tool_call>\n{{\"name\": \"g\", \"arguments\": {{}}}}\n</tool_call>");
        let calls = parse_tool_calls(&two).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1], ("g".into(), json!({})));
        for not_calls in [
            "",
            "Hello",
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}",
            "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
            &format!("{one}\n"),
            &format!("{one} and text"),
        ] {
            assert_eq!(parse_tool_calls(not_calls), None, "{not_calls:?}");
        }
    }
}
