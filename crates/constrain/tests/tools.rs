//! Tool-call constraints over the real qwen05 vocabulary (Hermes format, as Qwen2.5's
//! chat template asks): random walks under `auto`, `required` and a named function parse
//! into calls of known tools whose arguments validate, and free text never contains
//! `<tool_call>`.

mod common;

use common::{Status, allowed_ids, is_allowed, setup, walk};
use lingqiao_constrain::{ConstrainError, ToolChoice, tool_calls};
use serde_json::{Value, json};

/// Walks per schema; `LINGQIAO_CONSTRAIN_SEEDS` raises it for a longer search.
fn seeds() -> u64 {
    std::env::var("LINGQIAO_CONSTRAIN_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

fn tools() -> Vec<Value> {
    vec![
        json!({"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 20},
                    "unit": {"enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city"],
                "additionalProperties": false
            }
        }}),
        json!({"type": "function", "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer", "minimum": -1000, "maximum": 1000}, "b": {"type": "integer", "minimum": -1000, "maximum": 1000}},
                "required": ["a", "b"],
                "additionalProperties": false
            }
        }}),
        json!({"type": "function", "function": {"name": "now"}}),
        json!({"type": "function", "function": {
            "name": "order",
            "parameters": {
                "$defs": {"item": {
                    "type": "object",
                    "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 99}, "qty": {"type": "integer", "minimum": 1, "maximum": 9}},
                    "required": ["id", "qty"],
                    "additionalProperties": false
                }},
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 3}},
                "required": ["items"],
                "additionalProperties": false
            }
        }}),
        // text that must stay inside the grammar's JSON: quotes, braces, newlines
        json!({"type": "function", "function": {
            "name": "we\"ird}\n%json",
            "description": "ends the grammar? }\n\"\nstart: /.*/",
            "parameters": {"type": "object", "properties": {"x\"}": {"const": "}\n</tool_call>"}}, "required": ["x\"}"], "additionalProperties": false}
        }}),
    ]
}

/// The parameters schema of each tool, for the independent validator.
fn validators(tools: &[Value]) -> Vec<(String, jsonschema::Validator)> {
    tools
        .iter()
        .map(|t| {
            let f = &t["function"];
            let params = f.get("parameters").cloned().unwrap_or(
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            );
            (
                f["name"].as_str().unwrap().to_string(),
                jsonschema::validator_for(&params).unwrap(),
            )
        })
        .collect()
}

/// Parses a complete sequence of calls (`None`: not a complete, valid sequence).
fn parse_calls(text: &str, v: &[(String, jsonschema::Validator)]) -> Option<Vec<(String, Value)>> {
    let mut calls = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.strip_prefix("<tool_call>\n")?;
        // a JSON text has no raw newline inside strings: the first "\n</tool_call>" ends it
        let end = rest.find("\n</tool_call>")?;
        let call: Value = serde_json::from_str(&rest[..end]).ok()?;
        let obj = call.as_object()?;
        if obj.len() != 2 {
            return None;
        }
        let name = obj.get("name")?.as_str()?;
        let args = obj.get("arguments")?;
        let (_, validator) = v.iter().find(|(n, _)| n == name)?;
        if !validator.is_valid(args) {
            return None;
        }
        calls.push((name.to_string(), args.clone()));
        rest = &rest[end + "\n</tool_call>".len()..];
        if rest.is_empty() {
            return Some(calls);
        }
        rest = rest.strip_prefix('\n')?;
    }
}

fn tool_call_token() -> u32 {
    setup()
        .tok
        .token_id("<tool_call>")
        .expect("qwen has a <tool_call> token")
}

#[test]
fn qwen_tool_call_tags_are_single_tokens() {
    let tok = &setup().tok;
    for tag in ["<tool_call>", "</tool_call>"] {
        let id = tok.token_id(tag).expect("a token");
        assert_eq!(tok.encode(tag, false, false), vec![id], "{tag}");
        eprintln!("{tag}: id {id}, control {}", tok.is_control(id));
    }
}

#[test]
fn required_gives_one_or_more_valid_calls() {
    let s = setup();
    let tools = tools();
    let v = validators(&tools);
    let status = |t: &str| match parse_calls(t, &v) {
        Some(_) => Status::Complete,
        None => Status::Incomplete,
    };
    let mut names = std::collections::BTreeSet::new();
    let mut most = 0;
    for seed in 0..seeds() {
        let mut c = tool_calls(&s.vocab, &tools, &ToolChoice::Required, true).expect("compile");
        let w = walk(c.as_mut(), seed, 3000, &[], &status);
        let calls = parse_calls(&w.text, &v).unwrap_or_else(|| panic!("seed {seed}: {:?}", w.text));
        assert!(!calls.is_empty());
        most = most.max(calls.len());
        names.extend(calls.into_iter().map(|(n, _)| n));
        if seed < 3 {
            eprintln!("seed {seed}: {:?}", w.text);
        }
    }
    // every tool gets called, and some outputs have several calls
    assert_eq!(names.len(), tools.len(), "{names:?}");
    assert!(most > 1);
}

/// Without `parallel`, `required` gives exactly one call (of any tool), then ends.
#[test]
fn required_without_parallel_gives_one_call() {
    let s = setup();
    let tools = tools();
    let v = validators(&tools);
    let status = |t: &str| match parse_calls(t, &v) {
        Some(calls) if calls.len() == 1 => Status::Complete,
        _ => Status::Incomplete,
    };
    let mut names = std::collections::BTreeSet::new();
    for seed in 0..seeds() {
        let mut c = tool_calls(&s.vocab, &tools, &ToolChoice::Required, false).unwrap();
        let w = walk(c.as_mut(), seed, 3000, &[], &status);
        let calls = parse_calls(&w.text, &v).unwrap_or_else(|| panic!("seed {seed}: {:?}", w.text));
        assert_eq!(calls.len(), 1, "seed {seed}: {:?}", w.text);
        names.insert(calls[0].0.clone());
    }
    assert_eq!(names.len(), tools.len(), "{names:?}");
}

#[test]
fn named_gives_exactly_that_call() {
    let s = setup();
    let tools = tools();
    let v = validators(&tools);
    for name in ["add", "order", "now"] {
        let status = |t: &str| match parse_calls(t, &v) {
            Some(calls) if calls.len() == 1 && calls[0].0 == name => Status::Complete,
            _ => Status::Incomplete,
        };
        for seed in 0..seeds() / 2 {
            let mut c =
                tool_calls(&s.vocab, &tools, &ToolChoice::Named(name.into()), true).unwrap();
            let w = walk(c.as_mut(), seed, 3000, &[], &status);
            let calls = parse_calls(&w.text, &v).unwrap();
            assert_eq!(calls.len(), 1, "{:?}", w.text);
            assert_eq!(calls[0].0, name);
            // nothing may follow the one call: the constraint ends by itself
            assert!(!w.ended_by_eog, "{:?}", w.text);
        }
    }
}

#[test]
fn auto_is_free_text_or_calls() {
    let s = setup();
    let tools = tools();
    let v = validators(&tools);
    let status = |t: &str| {
        if !t.contains("<tool_call>") {
            Status::Complete
        } else {
            match parse_calls(t, &v) {
                Some(_) => Status::Complete,
                None => Status::Incomplete,
            }
        }
    };
    let (mut texts, mut with_calls) = (0, 0);
    for seed in 0..2 * seeds() {
        let mut c = tool_calls(&s.vocab, &tools, &ToolChoice::Auto, true).expect("compile");
        // steer half of the walks into a call: uniform draws over the vocabulary rarely
        // start with `<tool_call>`
        let w = walk(c.as_mut(), seed, 3000, &[tool_call_token()], &status);
        if w.text.contains("<tool_call>") {
            assert!(
                parse_calls(&w.text, &v).is_some(),
                "seed {seed}: {:?}",
                w.text
            );
            with_calls += 1;
        } else {
            texts += 1;
        }
    }
    assert!(
        texts > 5 && with_calls > 5,
        "{texts} texts, {with_calls} with calls"
    );
}

#[test]
fn auto_text_cannot_open_a_call_later() {
    let s = setup();
    let tok = &s.tok;
    let mut c = tool_calls(&s.vocab, &tools(), &ToolChoice::Auto, true).unwrap();
    let mut mask = vec![0u32; tok.n_vocab().div_ceil(32)];
    c.allowed(&mut mask).unwrap();
    let open = tool_call_token();
    assert!(is_allowed(&mask, open));
    // end of generation at once: the empty answer
    assert!(tok.eog_ids().iter().all(|&e| is_allowed(&mask, e)));
    for t in tok.encode("The weather is fine. <tool_c", false, false) {
        mask.fill(0);
        c.allowed(&mut mask).unwrap();
        assert!(is_allowed(&mask, t));
        c.accept(t).unwrap();
    }
    mask.fill(0);
    c.allowed(&mut mask).unwrap();
    assert!(!is_allowed(&mask, open));
    for id in allowed_ids(&mask) {
        let text = String::from_utf8_lossy(&tok.token_to_piece(id, true)).into_owned();
        assert!(
            !text.starts_with("all>"),
            "{id} {text:?} would write <tool_call>"
        );
    }
}

#[test]
fn tool_errors() {
    let s = setup();
    let tools = tools();
    let err = |t: &[Value], choice: &ToolChoice| match tool_calls(&s.vocab, t, choice, true) {
        Ok(_) => panic!("compiled"),
        Err(e) => e,
    };
    assert!(matches!(
        err(&tools, &ToolChoice::Named("nope".into())),
        ConstrainError::Invalid(m) if m.contains("nope")
    ));
    assert!(matches!(
        err(&[], &ToolChoice::Required),
        ConstrainError::Invalid(_)
    ));
    let mut dup = tools.clone();
    dup.push(tools[0].clone());
    assert!(matches!(
        err(&dup, &ToolChoice::Auto),
        ConstrainError::Invalid(m) if m.contains("get_weather")
    ));
    assert!(matches!(
        err(
            &[json!({"type": "function", "function": {"parameters": {}}})],
            &ToolChoice::Auto
        ),
        ConstrainError::Invalid(_)
    ));
    let bad = json!({"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"xs": {"type": "array", "uniqueItems": true}}
    }}});
    match err(&[bad], &ToolChoice::Auto) {
        ConstrainError::Unsupported(m) => {
            assert!(m.contains("uniqueItems") && m.contains('f'), "{m}")
        }
        e => panic!("{e}"),
    }
}
