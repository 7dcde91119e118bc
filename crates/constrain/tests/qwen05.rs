//! The real qwen05 model generating greedily under constraints: logits of disallowed
//! tokens are set to -inf before the argmax, as the engine does. The outputs must
//! validate, whatever the model would have written unconstrained.

mod common;

use std::sync::OnceLock;

use common::{is_allowed, qwen05_path, setup};
use lingqiao_constrain::{ToolChoice, json_schema, tool_calls};
use lingqiao_engine::batch::Constraint;
use lingqiao_engine::{ChatMessage, ChatTemplate};
use lingqiao_model::{Logits, Model};
use serde_json::{Value, json};

struct Loaded {
    model: Model,
    template: ChatTemplate,
}

fn loaded() -> &'static Loaded {
    static L: OnceLock<Loaded> = OnceLock::new();
    L.get_or_init(|| {
        let model = Model::load(qwen05_path()).expect("load qwen05");
        let tok = &setup().tok;
        let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
        let source = model
            .file
            .metadata()
            .opt_str(lingqiao_gguf::keys::TOKENIZER_CHAT_TEMPLATE)
            .unwrap()
            .expect("qwen05 has a chat template")
            .to_string();
        let template = ChatTemplate::new(&source, &text(tok.bos()), &text(tok.eos())).unwrap();
        Loaded { model, template }
    })
}

/// Greedy generation of the assistant's answer under `c`; returns the text.
fn generate(messages: &[ChatMessage], tools: Option<&[Value]>, c: &mut dyn Constraint) -> String {
    let s = setup();
    let l = loaded();
    let tok = &s.tok;
    let prompt_text = l.template.render(messages, tools, true).unwrap();
    let prompt = tok.encode(&prompt_text, tok.add_bos(), true);
    let mut cache = l.model.new_cache(prompt.len() + 300);
    let mut logits = l.model.forward(&mut cache, &prompt, Logits::Last).unwrap();
    let mut mask = vec![0u32; tok.n_vocab().div_ceil(32)];
    let mut out = Vec::new();
    for _ in 0..256 {
        if c.is_finished() {
            return tok.decode(&out, false);
        }
        mask.fill(0);
        c.allowed(&mut mask).unwrap();
        for (i, x) in logits.iter_mut().enumerate() {
            if !is_allowed(&mask, i as u32) {
                *x = f32::NEG_INFINITY;
            }
        }
        let t = lingqiao_engine::sampler::argmax(&logits);
        assert!(
            is_allowed(&mask, t),
            "argmax {t} is masked: no token allowed?"
        );
        c.accept(t).unwrap();
        if tok.is_eog(t) {
            return tok.decode(&out, false);
        }
        out.push(t);
        logits = l.model.forward(&mut cache, &[t], Logits::Last).unwrap();
    }
    panic!("no end after 256 tokens: {:?}", tok.decode(&out, false));
}

#[test]
fn greedy_json_schema_output_validates() {
    let s = setup();
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "languages": {"type": "array", "items": {"type": "string", "enum": ["rust", "python", "go", "c"]}, "minItems": 1, "maxItems": 3},
            "retired": {"type": "boolean"}
        },
        "required": ["name", "age", "languages", "retired"],
        "additionalProperties": false
    });
    let messages = [ChatMessage::user(
        "Describe a fictional software engineer as JSON with her name, age, programming languages and whether she is retired.",
    )];
    let mut c = json_schema(&s.vocab, &schema).unwrap();
    let text = generate(&messages, None, c.as_mut());
    eprintln!("{text}");
    let value: Value = serde_json::from_str(&text).expect("parses");
    assert!(
        jsonschema::validator_for(&schema).unwrap().is_valid(&value),
        "{text}"
    );
}

fn weather_tool() -> Vec<Value> {
    vec![json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["city", "unit"],
            "additionalProperties": false
        }
    }})]
}

#[test]
fn greedy_tool_call_validates() {
    let s = setup();
    let tools = weather_tool();
    let messages = [ChatMessage::user(
        "What is the weather like in Paris, in celsius?",
    )];
    let mut c = tool_calls(&s.vocab, &tools, &ToolChoice::Required, true).unwrap();
    let text = generate(&messages, Some(&tools), c.as_mut());
    eprintln!("{text}");
    let body = text
        .strip_prefix("<tool_call>\n")
        .and_then(|t| t.strip_suffix("\n</tool_call>"))
        .unwrap_or_else(|| panic!("not one tool call: {text:?}"));
    let call: Value = serde_json::from_str(body).expect("parses");
    assert_eq!(call["name"], "get_weather");
    let params = &tools[0]["function"]["parameters"];
    assert!(
        jsonschema::validator_for(params)
            .unwrap()
            .is_valid(&call["arguments"]),
        "{text}"
    );
}

/// `auto`: whatever the model chooses (greedy qwen05 answers the weather question with a
/// ```json block of text, not a call), the output is either text without `<tool_call>`
/// or whole calls.
#[test]
fn greedy_auto_is_text_or_a_call() {
    let s = setup();
    let tools = weather_tool();
    for question in [
        "What is the weather like in Paris, in celsius?",
        "Say hello in French, in one word.",
    ] {
        let mut c = tool_calls(&s.vocab, &tools, &ToolChoice::Auto, true).unwrap();
        let text = generate(&[ChatMessage::user(question)], Some(&tools), c.as_mut());
        eprintln!("{question} -> {text:?}");
        if let Some(rest) = text.strip_prefix("<tool_call>\n") {
            let body = rest.strip_suffix("\n</tool_call>").expect("one whole call");
            let call: Value = serde_json::from_str(body).expect("parses");
            assert_eq!(call["name"], "get_weather");
        } else {
            assert!(!text.contains("<tool_call>"), "{text:?}");
        }
    }
}
