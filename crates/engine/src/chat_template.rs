//! Chat templates: turn a conversation into the prompt text a model was trained on.
//!
//! The template is the GGUF's own `tokenizer.chat_template` (Jinja source). The reference
//! renderer is Hugging Face transformers' `apply_chat_template`: a jinja2
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with the
//! loop-controls extension and the globals `raise_exception`, `strftime_now` and a
//! `tojson` filter backed by `json.dumps(ensure_ascii=False)`. minijinja plus the pieces
//! below renders the same bytes (checked against transformers' output in
//! `tests/chat_template_golden.rs`).

mod pyfmt;

use std::fmt::Write;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use serde::{Deserialize, Serialize};

/// One turn of a conversation, in the OpenAI chat shape.
///
/// `None` fields are left out of what the template sees, as transformers does, so
/// templates can test them with `is defined`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

impl ChatMessage {
    fn with_content(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: Some(content.into()),
            ..Default::default()
        }
    }

    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage::with_content("system", content)
    }

    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::with_content("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage::with_content("assistant", content)
    }

    /// The result of a tool call, answering the call with id `tool_call_id`.
    pub fn tool(content: impl Into<String>, tool_call_id: impl Into<String>) -> ChatMessage {
        ChatMessage {
            tool_call_id: Some(tool_call_id.into()),
            ..ChatMessage::with_content("tool", content)
        }
    }

    /// What the template sees: transformers' message dict after `_normalize_chat_messages`
    /// (None keys dropped) and `_alias_reasoning_fields` (`thinking` mirrors
    /// `reasoning_content`, placed first, for templates that read that name).
    fn to_template_value(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        if let Some(reasoning) = &self.reasoning_content {
            map.insert("thinking".into(), reasoning.clone().into());
        }
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(self) {
            map.extend(fields);
        }
        serde_json::Value::Object(map)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template source does not parse.
    #[error("chat template does not parse: {0}")]
    Syntax(String),
    /// The template called `raise_exception(message)`, e.g. for roles out of order.
    #[error("{0}")]
    Raised(String),
    /// Rendering failed (undefined attribute, type error, ...).
    #[error("chat template failed to render: {0}")]
    Render(String),
}

/// The template llama.cpp falls back to for models without one (ChatML). A missing
/// `content` (an assistant turn that only calls tools) renders as empty.
pub fn chatml() -> &'static str {
    CHATML
}

const CHATML: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message.role + '\\n' + (message.content | default('')) + '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const TEMPLATE_NAME: &str = "chat_template";

/// minijinja instruction budget per render.
const TEMPLATE_FUEL: u64 = 10_000_000;

/// A compiled chat template with the special-token strings it may print.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`. `bos_token`/`eos_token` are the token strings (e.g. `<s>`), which
    /// many templates print.
    pub fn new(
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<ChatTemplate, TemplateError> {
        let mut env = Environment::new();
        // jinja2 settings transformers uses; keep_trailing_newline stays False (jinja2's
        // default), so a template's single final newline is dropped.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        // The template comes from a model file: bound the work a hostile one can ask for
        // (a real template uses well under a million instructions for a long chat).
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_filter("tojson", tojson);
        env.add_filter("title", title);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// Renders the conversation; `tools` are OpenAI-style tool definitions (JSON
    /// schemas); `add_generation_prompt` appends the header that opens the assistant's turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TemplateError::Render(describe(&e)))?;
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(ChatMessage::to_template_value)
            .collect();
        let ctx = minijinja::context! {
            messages => Value::from_serialize(&messages),
            tools => Value::from_serialize(tools),
            documents => Value::from(()),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template.render(ctx).map_err(classify)
    }
}

/// Tokenize a rendered chat prompt: special tokens are parsed, and BOS is added as the
/// model's metadata says unless the template already wrote it.
pub fn encode_chat(tok: &lingqiao_tokenizer::Tokenizer, text: &str) -> Vec<u32> {
    let bos_text = tok.bos().and_then(|b| tok.token_text(b));
    let has_bos = bos_text.is_some_and(|b| !b.is_empty() && text.starts_with(b));
    tok.encode(text, !has_bos, true)
}

/// The message `raise_exception` was called with, carried as the source of the
/// minijinja error so `render` can report it verbatim.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(
        Error::new(ErrorKind::InvalidOperation, "raise_exception called")
            .with_source(Raised(message)),
    )
}

fn classify(err: Error) -> TemplateError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(raised) = e.downcast_ref::<Raised>() {
            return TemplateError::Raised(raised.0.clone());
        }
        source = e.source();
    }
    match err.kind() {
        ErrorKind::SyntaxError => TemplateError::Syntax(describe(&err)),
        _ => TemplateError::Render(describe(&err)),
    }
}

/// The error with its template line, without minijinja's multi-line debug dump.
fn describe(err: &Error) -> String {
    let mut text = err.to_string();
    if let Some(detail) = err.detail()
        && !text.contains(detail)
    {
        let _ = write!(text, ": {detail}");
    }
    text
}

/// `{{ value }}` prints Python's `str(value)`: `True`, `None`, `['a', 1]`.
fn python_formatter(
    out: &mut minijinja::Output,
    state: &State,
    value: &Value,
) -> Result<(), Error> {
    match pyfmt::py_str(value) {
        Some(text) => out.write_str(&text).map_err(Error::from),
        None => minijinja::escape_formatter(out, state, value),
    }
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: &Value, args: Rest<Value>) -> Result<Value, Error> {
    let mut positional: Vec<Value> = args.0;
    let kwargs = match positional.last() {
        Some(last) if last.is_kwargs() => {
            Some(Kwargs::try_from(positional.pop().unwrap_or_default())?)
        }
        _ => None,
    };
    let arg = |index: usize, name: &str| -> Result<Option<Value>, Error> {
        if let Some(kwargs) = &kwargs
            && kwargs.has(name)
        {
            return Ok(Some(kwargs.get::<Value>(name)?));
        }
        Ok(positional.get(index).cloned())
    };
    let flag = |v: Option<Value>| v.is_some_and(|v| v.is_true());
    let ensure_ascii = flag(arg(0, "ensure_ascii")?);
    let indent = match arg(1, "indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        // json.dumps: an int indent means that many spaces (negative: none), a str is used as is.
        Some(v) if v.kind() == ValueKind::Number => {
            Some(" ".repeat(i64::try_from(v)?.max(0) as usize))
        }
        Some(v) => Some(v.as_str().unwrap_or_default().to_string()),
    };
    let separators = arg(2, "separators")?;
    let sort_keys = flag(arg(3, "sort_keys")?);
    if let Some(kwargs) = &kwargs {
        kwargs.assert_all_used()?;
    }
    let mut opts = pyfmt::JsonOptions::new(ensure_ascii, indent, sort_keys);
    if let Some(seps) = separators.filter(|v| !v.is_none()) {
        let item = seps.get_item_by_index(0)?;
        let key = seps.get_item_by_index(1)?;
        opts.item_separator = item.as_str().unwrap_or_default().to_string();
        opts.key_separator = key.as_str().unwrap_or_default().to_string();
    }
    let text = pyfmt::json_dumps(value, &opts)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.0))?;
    // Safe: the text is inserted verbatim, like jinja2's Markup from tojson.
    Ok(Value::from_safe_string(text))
}

/// jinja2's `title`: a word starts only after `-`, whitespace, `(`, `{`, `[` or `<`
/// (minijinja's also starts one after quotes and digits: `"temp` would become `"Temp`).
fn title(value: &str) -> String {
    // Python's str.isspace() also counts the ASCII separators 0x1c-0x1f.
    let is_boundary = |c: char| {
        matches!(c, '-' | '(' | '{' | '[' | '<' | '\u{1c}'..='\u{1f}') || c.is_whitespace()
    };
    let mut out = String::with_capacity(value.len());
    let mut at_word_start = true;
    let mut prev_boundary: Option<bool> = None;
    for c in value.chars() {
        let boundary = is_boundary(c);
        // A new item starts wherever the text switches between boundary and word characters.
        if prev_boundary != Some(boundary) {
            at_word_start = true;
        }
        prev_boundary = Some(boundary);
        if at_word_start {
            out.extend(c.to_uppercase());
            at_word_start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `strftime_now(format)`: the local time as Python's `datetime.now().strftime(format)`.
fn strftime_now(format: String) -> Result<Value, Error> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item> = StrftimeItems::new(&format).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("bad strftime format {format:?}"),
        ));
    }
    let mut text = String::new();
    // Writing into a String only fails on a format chrono cannot apply; report it rather
    // than panicking as `to_string()` would.
    write!(
        text,
        "{}",
        chrono::Local::now().format_with_items(items.into_iter())
    )
    .map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot format time with {format:?}"),
        )
    })?;
    Ok(Value::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, messages: &[ChatMessage]) -> Result<String, TemplateError> {
        ChatTemplate::new(source, "<s>", "</s>")?.render(messages, None, false)
    }

    #[test]
    fn syntax_error_is_an_error() {
        let err = ChatTemplate::new("{% for m in messages %}", "", "").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{err:?}");
    }

    #[test]
    fn raise_exception_message_is_kept() {
        let err = render("{{ raise_exception('roles must alternate') }}", &[]).unwrap_err();
        assert!(
            matches!(&err, TemplateError::Raised(m) if m == "roles must alternate"),
            "{err:?}"
        );
    }

    #[test]
    fn undefined_attribute_is_a_render_error() {
        let err = render("{{ messages[0].nope.deeper }}", &[ChatMessage::user("hi")]).unwrap_err();
        assert!(matches!(err, TemplateError::Render(_)), "{err:?}");
    }

    #[test]
    fn runaway_template_is_stopped() {
        let t = "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}";
        let err = render(t, &[]).unwrap_err();
        assert!(matches!(err, TemplateError::Render(_)), "{err:?}");
    }

    #[test]
    fn prints_like_python() {
        let out = render(
            "{{ true }} {{ none }} {{ [1, 'a'] }} {{ 2.0 }} {{ {'k': false} }}",
            &[],
        )
        .unwrap();
        assert_eq!(out, "True None [1, 'a'] 2.0 {'k': False}");
    }

    #[test]
    fn tojson_options() {
        let t = "{{ {'b': 1, 'a': [1, 2], 'c': '<é>'} | tojson(indent=2, sort_keys=true) }}|\
                 {{ [1, 2] | tojson(separators=(',', ':')) }}|{{ 'é' | tojson(ensure_ascii=true) }}";
        let out = render(t, &[]).unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": 1,\n  \"c\": \"<é>\"\n}|[1,2]|\"\\u00e9\""
        );
    }

    #[test]
    fn python_string_methods() {
        let out = render(
            "{{ '  x y '.strip().split(' ') }} {{ 'abc'.startswith('a') }}",
            &[],
        )
        .unwrap();
        assert_eq!(out, "['x', 'y'] True");
    }

    #[test]
    fn title_splits_words_like_jinja2() {
        // jinja2: '{"temp": x-ray (new) o\'neil'|title == '{"temp": X-Ray (New) O\'neil'
        assert_eq!(
            title("{\"temp\": x-ray (new) o'neil"),
            "{\"temp\": X-Ray (New) O'neil"
        );
    }

    #[test]
    fn strftime_now_formats_today() {
        let out = render("{{ strftime_now('%Y-%m-%d') }}", &[]).unwrap();
        assert_eq!(out, chrono::Local::now().format("%Y-%m-%d").to_string());
        assert!(render("{{ strftime_now('%Q%') }}", &[]).is_err());
    }

    #[test]
    fn bos_and_missing_fields() {
        let t = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content is defined }}{% endfor %}";
        let mut call = ChatMessage::assistant("");
        call.content = None;
        let out = render(t, &[ChatMessage::user("a"), call]).unwrap();
        assert_eq!(out, "<s>user:Trueassistant:False");
    }
}
