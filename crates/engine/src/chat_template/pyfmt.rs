//! Python's `str()`, `repr()` and `json.dumps()` over minijinja values.
//!
//! Chat templates are written against jinja2, where `{{ x }}` prints `str(x)` and
//! transformers' `tojson` is `json.dumps(x, ensure_ascii=False, ...)`. minijinja prints
//! `true`/`none` and escapes HTML in `tojson`, so the prompt would differ from the one the
//! model was trained on. These helpers reproduce CPython's output byte for byte for the
//! JSON-like values templates see.

use std::fmt::Write;

use minijinja::value::{Value, ValueKind};

/// Why a value could not go through `json.dumps`.
#[derive(Debug)]
pub struct NotJson(pub String);

/// `str(value)` as Python prints it; `None` for values Python has no plain form for
/// (functions, loop objects, ...) so the caller can fall back to minijinja's own.
pub fn py_str(value: &Value) -> Option<String> {
    match value.kind() {
        ValueKind::String => Some(value.as_str().unwrap_or_default().to_string()),
        ValueKind::Undefined => Some(String::new()),
        _ => py_repr(value),
    }
}

/// `repr(value)` for None, bools, numbers, strings, lists and dicts.
pub fn py_repr(value: &Value) -> Option<String> {
    let mut out = String::new();
    write_repr(&mut out, value).then_some(out)
}

fn write_repr(out: &mut String, value: &Value) -> bool {
    match value.kind() {
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => write_number(out, value),
        ValueKind::String => write_str_repr(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq => {
            let Ok(items) = value.try_iter() else {
                return false;
            };
            out.push('[');
            for (i, item) in items.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if !write_repr(out, &item) {
                    return false;
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            let Ok(keys) = value.try_iter() else {
                return false;
            };
            out.push('{');
            for (i, key) in keys.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let item = value.get_item(&key).unwrap_or_default();
                if !write_repr(out, &key) {
                    return false;
                }
                out.push_str(": ");
                if !write_repr(out, &item) {
                    return false;
                }
            }
            out.push('}');
        }
        _ => return false,
    }
    true
}

fn write_number(out: &mut String, value: &Value) {
    if value.is_integer() {
        let _ = write!(out, "{value}");
    } else {
        let x = f64::try_from(value.clone()).unwrap_or(f64::NAN);
        out.push_str(&float_repr(x));
    }
}

/// CPython's `repr(float)`: shortest round-trip digits, positional notation for
/// decimal exponents in [-4, 16), otherwise `d.ddde+XX`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as CPython's repr.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let body = if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

/// CPython's `repr(str)`: single quotes unless the text has `'` and no `"`.
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            // Python escapes non-printable characters; the C0/C1 controls are the
            // ones that occur in practice.
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Options of `json.dumps` that transformers' `tojson` filter exposes.
pub struct JsonOptions {
    pub ensure_ascii: bool,
    /// `None`: one line. `Some(s)`: newline plus `s` repeated per nesting level.
    pub indent: Option<String>,
    pub item_separator: String,
    pub key_separator: String,
    pub sort_keys: bool,
}

impl JsonOptions {
    /// json.dumps defaults for a given indent: `(', ', ': ')` on one line, `(',', ': ')` when indenting.
    pub fn new(ensure_ascii: bool, indent: Option<String>, sort_keys: bool) -> JsonOptions {
        let item_separator = if indent.is_some() { "," } else { ", " }.to_string();
        JsonOptions {
            ensure_ascii,
            indent,
            item_separator,
            key_separator: ": ".into(),
            sort_keys,
        }
    }
}

/// `json.dumps(value, ...)`.
pub fn json_dumps(value: &Value, opts: &JsonOptions) -> Result<String, NotJson> {
    let mut out = String::new();
    write_json(&mut out, value, opts, 0)?;
    Ok(out)
}

fn newline_indent(out: &mut String, opts: &JsonOptions, level: usize) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

fn write_json(
    out: &mut String,
    value: &Value,
    opts: &JsonOptions,
    level: usize,
) -> Result<(), NotJson> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number if value.is_integer() => {
            let _ = write!(out, "{value}");
        }
        ValueKind::Number => {
            let x = f64::try_from(value.clone()).unwrap_or(f64::NAN);
            // json.dumps spells the non-finite floats this way (allow_nan=True).
            let text = if x.is_nan() {
                "NaN".to_string()
            } else if x.is_infinite() {
                if x > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                }
            } else {
                float_repr(x)
            };
            out.push_str(&text);
        }
        ValueKind::String => {
            write_json_str(out, value.as_str().unwrap_or_default(), opts.ensure_ascii)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value
                .try_iter()
                .map_err(|e| NotJson(e.to_string()))?
                .collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_separator);
                }
                newline_indent(out, opts, level + 1);
                write_json(out, item, opts, level + 1)?;
            }
            newline_indent(out, opts, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter().map_err(|e| NotJson(e.to_string()))? {
                let item = value.get_item(&key).unwrap_or_default();
                entries.push((json_key(&key)?, item));
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if entries.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_separator);
                }
                newline_indent(out, opts, level + 1);
                write_json_str(out, key, opts.ensure_ascii);
                out.push_str(&opts.key_separator);
                write_json(out, item, opts, level + 1)?;
            }
            newline_indent(out, opts, level);
            out.push('}');
        }
        kind => {
            return Err(NotJson(format!(
                "Object of type {kind} is not JSON serializable"
            )));
        }
    }
    Ok(())
}

/// json.dumps turns str/int/float/bool/None keys into strings and rejects the rest.
fn json_key(key: &Value) -> Result<String, NotJson> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::None => Ok("null".into()),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.into()),
        ValueKind::Number => {
            let mut s = String::new();
            write_number(&mut s, key);
            Ok(s)
        }
        kind => Err(NotJson(format!(
            "keys must be str, int, float, bool or None, not {kind}"
        ))),
    }
}

/// A JSON string literal as CPython's json encoder writes it.
fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_cpython() {
        // Expected strings are CPython 3.11's repr() of the same literals.
        let cases = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-2.0, "-2.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.5e16, "1.5e+16"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123.456, "123.456"),
            (2.5e-7, "2.5e-07"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "repr({x:?})");
        }
    }

    #[test]
    fn repr_of_containers_and_strings() {
        let v =
            Value::from_serialize(serde_json::json!({"a": [1, true, null, "it's"], "b": "q\"x'"}));
        assert_eq!(
            py_repr(&v).unwrap(),
            r#"{'a': [1, True, None, "it's"], 'b': 'q"x\''}"#
        );
    }

    #[test]
    fn json_dumps_indent_and_ascii() {
        let v = Value::from_serialize(serde_json::json!({"k": ["é", 1.0, {}], "z": []}));
        let opts = JsonOptions::new(true, Some("  ".into()), false);
        // json.dumps({"k": ["é", 1.0, {}], "z": []}, ensure_ascii=True, indent=2)
        assert_eq!(
            json_dumps(&v, &opts).unwrap(),
            "{\n  \"k\": [\n    \"\\u00e9\",\n    1.0,\n    {}\n  ],\n  \"z\": []\n}"
        );
        let opts = JsonOptions::new(true, None, false);
        let emoji = Value::from("😊\u{1}");
        assert_eq!(
            json_dumps(&emoji, &opts).unwrap(),
            "\"\\ud83d\\ude0a\\u0001\""
        );
    }
}
