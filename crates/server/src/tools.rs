//! Tool calls in a model's output, turned into OpenAI's `tool_calls`.
//!
//! Each model family writes calls its own way, as its chat template taught it:
//! - Qwen2.5 / Hermes: `<tool_call>\n{"name": .., "arguments": {..}}\n</tool_call>`, one
//!   block per call, text around the blocks is content;
//! - Llama 3.x: a bare `{"name": .., "parameters": {..}}` as the whole answer, or after
//!   `<|python_tag|>` (several separated by `;`);
//! - Mistral: `[TOOL_CALLS][{"name": .., "arguments": {..}}, ..]`, or the newer
//!   `[TOOL_CALLS]name[ARGS]{..}`.
//!
//! All are tried on every output: the markers do not collide, and a bare JSON answer (also
//! inside a Markdown code block, as small models write it) is taken as a call only when it
//! names a declared tool.

use serde_json::{Map, Value};

/// Markers that open calls anywhere in the output.
const MARKERS: [&str; 3] = ["<tool_call>", "[TOOL_CALLS]", "<|python_tag|>"];

/// Control tokens that must reach the parser even though detokenizing drops them.
pub fn is_marker(text: &str) -> bool {
    MARKERS.contains(&text) || text == "</tool_call>" || text == "[ARGS]"
}

/// One parsed call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as JSON text (OpenAI sends a string).
    pub arguments: String,
}

/// Output split into its content and its calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub content: String,
    pub calls: Vec<ToolCall>,
}

/// A fresh call id in OpenAI's style: `call_` and 24 letters and digits.
pub fn call_id() -> String {
    use rand::Rng;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..24)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect();
    format!("call_{tail}")
}

/// `{"name": .., "arguments"|"parameters": ..}` (or OpenAI's own shape with `function`)
/// as a call.
fn call_from(v: &Value) -> Option<ToolCall> {
    let obj = v.as_object()?;
    let obj = match obj.get("function").and_then(Value::as_object) {
        Some(f) if obj.get("name").is_none() => f,
        _ => obj,
    };
    let name = obj.get("name")?.as_str()?.to_string();
    let args = obj.get("arguments").or_else(|| obj.get("parameters"));
    let arguments = match args {
        None | Some(Value::Null) => "{}".to_string(),
        // Some models write the arguments as a JSON string: pass it on if it is JSON.
        Some(Value::String(s)) if serde_json::from_str::<Value>(s).is_ok() => s.clone(),
        Some(a @ Value::Object(_)) => a.to_string(),
        Some(_) => return None,
    };
    Some(ToolCall { name, arguments })
}

/// The JSON values at the start of `s`, in order, separated by whitespace, `;` or `,`;
/// and the byte offset where parsing stopped.
fn json_values(s: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &s[pos..];
        let skip = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_whitespace() || c == ';' || c == ',')
                .len();
        if pos + skip == s.len() {
            return (out, s.len());
        }
        let mut it = serde_json::Deserializer::from_str(&s[pos + skip..]).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                out.push(v);
                pos += skip + it.byte_offset();
            }
            _ => return (out, pos),
        }
    }
}

/// Calls in one JSON value: a call object, or an array of them.
fn calls_in(v: &Value) -> Option<Vec<ToolCall>> {
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(call_from).collect(),
        Value::Object(_) => call_from(v).map(|c| vec![c]),
        _ => None,
    }
}

/// Split `text` into content and calls. `known`: the declared tools' names (a bare JSON
/// answer is a call only if it names one of them).
pub fn parse(text: &str, known: &[String]) -> Parsed {
    if text.contains("<tool_call>") {
        return parse_hermes(text);
    }
    if let Some(i) = text.find("[TOOL_CALLS]")
        && let Some(calls) = parse_mistral(&text[i..])
    {
        return Parsed {
            content: text[..i].trim().to_string(),
            calls,
        };
    }
    if let Some(i) = text.find("<|python_tag|>") {
        let (values, end) = json_values(&text[i + "<|python_tag|>".len()..]);
        let calls: Option<Vec<ToolCall>> = values.iter().map(call_from).collect();
        if let Some(calls) = calls.filter(|c| !c.is_empty()) {
            let after = &text[i + "<|python_tag|>".len() + end..];
            return Parsed {
                content: format!("{}{}", &text[..i], after).trim().to_string(),
                calls,
            };
        }
    }
    let t = strip_fence(text.trim());
    if t.starts_with('{') || t.starts_with('[') {
        let (values, end) = json_values(t);
        if end == t.len() && !values.is_empty() {
            let calls: Option<Vec<ToolCall>> = values
                .iter()
                .map(calls_in)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat());
            if let Some(calls) =
                calls.filter(|c| !c.is_empty() && c.iter().all(|c| known.contains(&c.name)))
            {
                return Parsed {
                    content: String::new(),
                    calls,
                };
            }
        }
    }
    Parsed {
        content: text.to_string(),
        calls: vec![],
    }
}

/// The inside of a Markdown code block (small models often fence a bare JSON call).
fn strip_fence(t: &str) -> &str {
    match t.strip_prefix("```") {
        Some(rest) => {
            let body = rest.split_once('\n').map_or("", |(_, b)| b);
            body.strip_suffix("```").unwrap_or(body).trim()
        }
        None => t,
    }
}

/// `<tool_call>{..}</tool_call>` blocks; the closing tag may be missing at the very end.
/// A block that does not hold a call stays in the content as written.
fn parse_hermes(text: &str) -> Parsed {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("<tool_call>") {
        content.push_str(&rest[..open]);
        let body_start = open + "<tool_call>".len();
        let (body, next) = match rest[body_start..].find("</tool_call>") {
            Some(close) => (
                &rest[body_start..body_start + close],
                body_start + close + "</tool_call>".len(),
            ),
            None => (&rest[body_start..], rest.len()),
        };
        let (values, end) = json_values(body);
        let parsed: Option<Vec<ToolCall>> = (end == body.len() && !values.is_empty())
            .then(|| values.iter().map(call_from).collect())
            .flatten();
        match parsed {
            Some(c) => calls.extend(c),
            None => content.push_str(&rest[open..next]),
        }
        rest = &rest[next..];
    }
    content.push_str(rest);
    Parsed {
        content: content.trim().to_string(),
        calls,
    }
}

/// `[TOOL_CALLS][{..}, ..]` or `[TOOL_CALLS]name[ARGS]{..}` (repeated).
fn parse_mistral(s: &str) -> Option<Vec<ToolCall>> {
    let body = s.strip_prefix("[TOOL_CALLS]")?;
    if body.trim_start().starts_with('[') {
        let (values, _) = json_values(body);
        return values.first().and_then(calls_in);
    }
    let mut calls = Vec::new();
    for part in s.split("[TOOL_CALLS]").filter(|p| !p.trim().is_empty()) {
        let (name, args) = part.split_once("[ARGS]")?;
        let (values, _) = json_values(args);
        let mut obj = Map::new();
        obj.insert("name".into(), name.trim().into());
        obj.insert("arguments".into(), values.into_iter().next()?);
        calls.push(call_from(&Value::Object(obj))?);
    }
    (!calls.is_empty()).then_some(calls)
}

/// Streams content while holding back what may be a tool call: output that starts with
/// `{`, `[`, a code fence or a marker, and everything from a marker on, is kept until the
/// end and parsed then.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: String,
    capturing: bool,
    /// Content has been let through: a leading `{` no longer means a call.
    started: bool,
}

impl Splitter {
    /// Add generated text; returns the content that can be sent now.
    pub fn push(&mut self, text: &str) -> String {
        self.buf.push_str(text);
        if self.capturing {
            return String::new();
        }
        if !self.started {
            let t = self.buf.trim_start();
            if t.is_empty() {
                return String::new();
            }
            let marker_like = MARKERS.iter().any(|m| t.starts_with(m) || m.starts_with(t));
            if !marker_like
                && (t.starts_with('{')
                    || t.starts_with('[')
                    || "```".starts_with(t)
                    || t.starts_with("```"))
            {
                self.capturing = true;
                return String::new();
            }
            self.started = true;
        }
        if let Some(i) = MARKERS.iter().filter_map(|m| self.buf.find(m)).min() {
            self.capturing = true;
            let out = self.buf[..i].to_string();
            self.buf.drain(..i);
            return out;
        }
        // Keep back a tail that may be the start of a marker.
        let keep = MARKERS
            .iter()
            .flat_map(|m| (1..m.len()).rev().map(move |n| &m[..n]))
            .filter(|p| self.buf.ends_with(p))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.buf.len() - keep;
        let out = self.buf[..cut].to_string();
        self.buf.drain(..cut);
        out
    }

    /// The end of the output: the held-back content and the calls.
    pub fn finish(self, known: &[String]) -> Parsed {
        if self.capturing {
            parse(&self.buf, known)
        } else {
            Parsed {
                content: self.buf,
                calls: vec![],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        vec!["get_weather".to_string(), "get_time".to_string()]
    }

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            name: name.into(),
            arguments: args.into(),
        }
    }

    #[test]
    fn hermes_one_call() {
        let p = parse(
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            &known(),
        );
        assert_eq!(p.content, "");
        assert_eq!(p.calls, vec![call("get_weather", r#"{"city":"Paris"}"#)]);
    }

    #[test]
    fn hermes_several_calls_and_content() {
        let p = parse(
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
            &known(),
        );
        assert_eq!(p.content, "Let me check.");
        assert_eq!(
            p.calls,
            vec![
                call("get_weather", r#"{"city":"Paris"}"#),
                call("get_time", "{}")
            ]
        );
    }

    #[test]
    fn hermes_missing_close_tag_at_end() {
        let p = parse(
            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}",
            &known(),
        );
        assert_eq!(p.calls, vec![call("get_time", r#"{"tz":"UTC"}"#)]);
    }

    #[test]
    fn hermes_broken_block_stays_content() {
        let text = "<tool_call>\n{\"name\": \"get_time\", \"argu\n</tool_call>";
        let p = parse(text, &known());
        assert!(p.calls.is_empty());
        assert_eq!(p.content, text);
    }

    #[test]
    fn arguments_given_as_a_string() {
        let p = parse(
            "<tool_call>{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"UTC\\\"}\"}</tool_call>",
            &known(),
        );
        assert_eq!(p.calls, vec![call("get_time", r#"{"tz": "UTC"}"#)]);
    }

    #[test]
    fn llama3_bare_json() {
        let p = parse(
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
            &known(),
        );
        assert_eq!(p.calls, vec![call("get_weather", r#"{"city":"Oslo"}"#)]);
        // The same shape naming no declared tool is an answer, not a call.
        let text = "{\"name\": \"Ada\", \"parameters\": {}}";
        assert_eq!(parse(text, &known()).calls, vec![]);
        assert_eq!(parse(text, &known()).content, text);
    }

    #[test]
    fn fenced_bare_json() {
        let p = parse(
            "```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n```",
            &known(),
        );
        assert_eq!(p.calls, vec![call("get_weather", r#"{"city":"Paris"}"#)]);
        let (streamed, end) = split(&[
            "``",
            "`json\n{\"name\": \"get_time\", \"arguments\": {}}\n```",
        ]);
        assert_eq!(streamed, "");
        assert_eq!(end.calls, vec![call("get_time", "{}")]);
        // A fenced block that is no call is content.
        let (streamed, end) = split(&["```rust\nfn main() {}\n```"]);
        assert_eq!(
            format!("{streamed}{}", end.content),
            "```rust\nfn main() {}\n```"
        );
    }

    #[test]
    fn llama3_python_tag() {
        let p = parse(
            "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; {\"name\": \"get_time\", \"parameters\": {}}",
            &known(),
        );
        assert_eq!(
            p.calls,
            vec![
                call("get_weather", r#"{"city":"Oslo"}"#),
                call("get_time", "{}")
            ]
        );
    }

    #[test]
    fn mistral_array() {
        let p = parse(
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}, {\"name\": \"get_time\", \"arguments\": {}}]",
            &known(),
        );
        assert_eq!(p.content, "");
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[0], call("get_weather", r#"{"city":"Rome"}"#));
    }

    #[test]
    fn mistral_args_form() {
        let p = parse(
            "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Rome\"}",
            &known(),
        );
        assert_eq!(p.calls, vec![call("get_weather", r#"{"city":"Rome"}"#)]);
    }

    #[test]
    fn plain_text_is_content() {
        let p = parse("The weather is fine.", &known());
        assert_eq!(p.content, "The weather is fine.");
        assert!(p.calls.is_empty());
    }

    #[test]
    fn call_ids_look_like_openais() {
        let id = call_id();
        assert!(id.starts_with("call_") && id.len() == 29);
        assert_ne!(id, call_id());
    }

    /// Feed `pieces` through a splitter: (content streamed, final parse).
    fn split(pieces: &[&str]) -> (String, Parsed) {
        let mut s = Splitter::default();
        let streamed: String = pieces.iter().map(|p| s.push(p)).collect();
        (streamed, s.finish(&known()))
    }

    #[test]
    fn splitter_streams_plain_text() {
        let (streamed, end) = split(&["Hello", " there", "!"]);
        assert_eq!(format!("{streamed}{}", end.content), "Hello there!");
        assert!(end.calls.is_empty());
        // Most of it went out before the end.
        assert!(streamed.starts_with("Hello there"));
    }

    #[test]
    fn splitter_holds_a_call_back() {
        let (streamed, end) = split(&[
            "<tool",
            "_call>\n{\"name\": \"get_time\", ",
            "\"arguments\": {}}\n</tool_call>",
        ]);
        assert_eq!(streamed, "");
        assert_eq!(end.calls, vec![call("get_time", "{}")]);
    }

    #[test]
    fn splitter_content_then_call() {
        let (streamed, end) = split(&[
            "Checking",
            " now <tool_",
            "call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
        ]);
        assert_eq!(streamed, "Checking now ");
        assert_eq!(end.calls, vec![call("get_time", "{}")]);
    }

    #[test]
    fn splitter_json_answer_that_is_no_call() {
        let (streamed, end) = split(&["{\"a\": ", "1}"]);
        assert_eq!(streamed, "");
        assert!(end.calls.is_empty());
        assert_eq!(end.content, "{\"a\": 1}");
    }

    #[test]
    fn splitter_text_with_lt_is_released() {
        let (streamed, end) = split(&["a < b", " and c"]);
        assert_eq!(format!("{streamed}{}", end.content), "a < b and c");
    }
}
