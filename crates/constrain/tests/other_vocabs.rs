//! The other installed models' vocabularies: SmolLM2 (byte-level BPE, 49k tokens) and
//! Gemma 3 (SentencePiece with byte fallback, 262k tokens). A schema and a tool call are
//! enforced there too; neither has `<tool_call>` as a token, so the tags are text.

mod common;

use common::{Setup, Status, walk_with};
use lingqiao_constrain::{ToolChoice, json_schema, tool_calls};
use serde_json::{Value, json};

fn check(key: &str) {
    let s = Setup::load(key);
    eprintln!(
        "{key}: {} tokens, EOG {:?}, <tool_call> token: {:?}",
        s.tok.n_vocab(),
        s.tok.eog_ids(),
        s.tok.token_id("<tool_call>")
    );
    let schema = json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 16},
            "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
            "genres": {"type": "array", "items": {"enum": ["drama", "comedy", "sci-fi"]}, "minItems": 1, "maxItems": 2},
            "rating": {"type": "number", "minimum": 0, "maximum": 10}
        },
        "required": ["title", "year", "genres"],
        "additionalProperties": false
    });
    let v = jsonschema::validator_for(&schema).unwrap();
    let status = |t: &str| match serde_json::from_str::<Value>(t) {
        Ok(x) if v.is_valid(&x) => Status::Complete,
        _ => Status::Incomplete,
    };
    let mut mask_times = Vec::new();
    for seed in 0..15 {
        let mut c = json_schema(&s.vocab, &schema).unwrap();
        let w = walk_with(&s, c.as_mut(), seed, 3000, &[], &status);
        let value: Value = serde_json::from_str(&w.text).unwrap();
        assert!(v.is_valid(&value), "{key} seed {seed}: {}", w.text);
        mask_times.extend(w.mask_times);
    }
    let mean = mask_times.iter().sum::<std::time::Duration>() / mask_times.len() as u32;
    eprintln!("{key}: mean mask time {:.1} us", mean.as_secs_f64() * 1e6);

    let params = json!({"type": "object", "properties": {"q": {"type": "string", "maxLength": 10}}, "required": ["q"], "additionalProperties": false});
    let tools = [json!({"type": "function", "function": {"name": "search", "parameters": params}})];
    let pv = jsonschema::validator_for(&params).unwrap();
    let call_ok = |t: &str| -> bool {
        let Some(body) = t
            .strip_prefix("<tool_call>\n")
            .and_then(|b| b.strip_suffix("\n</tool_call>"))
        else {
            return false;
        };
        match serde_json::from_str::<Value>(body) {
            Ok(call) => {
                call["name"] == "search"
                    && call.as_object().unwrap().len() == 2
                    && pv.is_valid(&call["arguments"])
            }
            Err(_) => false,
        }
    };
    let status = |t: &str| {
        if call_ok(t) {
            Status::Complete
        } else {
            Status::Incomplete
        }
    };
    for seed in 0..15 {
        let mut c =
            tool_calls(&s.vocab, &tools, &ToolChoice::Named("search".into()), true).unwrap();
        let w = walk_with(&s, c.as_mut(), seed, 3000, &[], &status);
        assert!(call_ok(&w.text), "{key} seed {seed}: {:?}", w.text);
    }
}

#[test]
fn smollm2() {
    check("smollm2");
}

#[test]
fn gemma3() {
    check("gemma3");
}
