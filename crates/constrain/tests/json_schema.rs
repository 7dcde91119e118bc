//! JSON-schema constraints over the real qwen05 vocabulary: seeded random walks over the
//! allowed tokens always end in text that parses and validates (checked by the
//! independent `jsonschema` crate), and end of generation is allowed exactly when the
//! text so far is complete. Unsupported keywords are errors naming them.

mod common;

use common::{Status, setup, walk};
use lingqiao_constrain::{ConstrainError, json_object, json_schema};
use serde_json::{Value, json};

/// Walks per schema; `LINGQIAO_CONSTRAIN_SEEDS` raises it for a longer search.
fn seeds() -> u64 {
    std::env::var("LINGQIAO_CONSTRAIN_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25)
}

/// The independent checker, with `format` validated too (by default it is only an
/// annotation).
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("a valid schema")
}

fn status_under(v: &jsonschema::Validator) -> impl Fn(&str) -> Status + '_ {
    move |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(value) if v.is_valid(&value) => Status::Complete,
        _ => Status::Incomplete,
    }
}

/// Random walks under `schema` for many seeds; returns the outputs.
fn walks(schema: &Value, seeds: u64) -> Vec<Value> {
    let s = setup();
    let v = validator(schema);
    let status = status_under(&v);
    let mut out = Vec::new();
    for seed in 0..seeds {
        let mut c = json_schema(&s.vocab, schema).expect("compile");
        let w = walk(c.as_mut(), seed, 3000, &[], &status);
        let value: Value = serde_json::from_str(&w.text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {:?}", w.text));
        assert!(
            v.is_valid(&value),
            "seed {seed}: {} does not validate",
            w.text
        );
        if seed < 3 {
            eprintln!(
                "{schema}\n  seed {seed}: {} tokens: {}",
                w.tokens.len(),
                w.text
            );
        }
        out.push(value);
    }
    out
}

#[test]
fn object_with_required_and_optional_properties() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "email": {"type": "string", "format": "email"},
            "admin": {"type": "boolean"}
        },
        "required": ["name", "age"],
        "additionalProperties": false
    });
    let outs = walks(&schema, seeds());
    // the optional properties are sometimes there and sometimes not
    assert!(outs.iter().any(|o| o.get("admin").is_some()));
    assert!(outs.iter().any(|o| o.get("admin").is_none()));
}

#[test]
fn enums_consts_and_any_of() {
    let schema = json!({
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "green", "blue", 7, null]},
            "kind": {"const": "fixed"},
            "value": {"anyOf": [{"type": "integer", "minimum": -5, "maximum": 5}, {"type": "string", "pattern": "^[a-z]{2,4}$"}, {"type": "null"}]}
        },
        "required": ["color", "kind", "value"],
        "additionalProperties": false
    });
    let outs = walks(&schema, seeds());
    assert!(outs.iter().all(|o| o["kind"] == "fixed"));
}

#[test]
fn arrays_with_item_bounds_and_tuples() {
    let schema = json!({
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8}, "minItems": 2, "maxItems": 4},
            "point": {"type": "array", "minItems": 2, "prefixItems": [{"type": "number", "minimum": -1, "maximum": 1}, {"type": "number", "minimum": -1, "maximum": 1}], "items": false},
            "flags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}
        },
        "required": ["tags", "point", "flags"],
        "additionalProperties": false
    });
    let outs = walks(&schema, seeds());
    for o in &outs {
        let n = o["tags"].as_array().unwrap().len();
        assert!((2..=4).contains(&n), "{o}");
    }
}

#[test]
fn nested_objects_and_refs() {
    let schema = json!({
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1, "maxLength": 10},
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
                },
                "required": ["city", "zip"],
                "additionalProperties": false
            }
        },
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/address"},
            "work": {"anyOf": [{"$ref": "#/$defs/address"}, {"type": "null"}]},
            "meta": {
                "type": "object",
                "properties": {"score": {"type": "number", "exclusiveMinimum": 0, "maximum": 10}, "count": {"type": "integer", "multipleOf": 3, "minimum": 0, "maximum": 99}},
                "required": ["score", "count"],
                "additionalProperties": false
            }
        },
        "required": ["home", "work", "meta"],
        "additionalProperties": false
    });
    walks(&schema, seeds());
}

#[test]
fn formats() {
    let schema = json!({
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
            "ip": {"type": "string", "format": "ipv4"},
            "host": {"type": "string", "format": "hostname"},
            "clock": {"type": "string", "format": "time"},
            "ip6": {"type": "string", "format": "ipv6"},
            "link": {"type": "string", "format": "uri"},
            "span": {"type": "string", "format": "duration"}
        },
        "required": ["email", "day", "at", "id", "ip", "host", "clock", "ip6", "link", "span"],
        "additionalProperties": false
    });
    walks(&schema, 4 * seeds());
}

#[test]
fn format_with_pattern() {
    let schema = json!({"type": "string", "format": "email", "pattern": "@example[.]com$"});
    for v in walks(&schema, 10) {
        assert!(v.as_str().unwrap().ends_with("@example.com"), "{v}");
    }
}

#[test]
fn one_of_with_exclusive_branches() {
    let schema = json!({
        "type": "object",
        "properties": {
            "v": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "string", "maxLength": 3}, {"type": "boolean"}]}
        },
        "required": ["v"],
        "additionalProperties": false
    });
    walks(&schema, seeds());
}

#[test]
fn top_level_scalars() {
    for schema in [
        json!({"type": "integer", "minimum": 10, "maximum": 20}),
        json!({"type": "boolean"}),
        json!({"type": "string", "enum": ["yes", "no"]}),
        json!({"type": "string", "pattern": "^a+b$", "maxLength": 6}),
    ] {
        walks(&schema, 10);
    }
}

#[test]
fn json_object_is_any_object() {
    let s = setup();
    let v = validator(&json!({"type": "object"}));
    let status = status_under(&v);
    for seed in 0..seeds() {
        let mut c = json_object(&s.vocab).expect("compile");
        let w = walk(c.as_mut(), seed, 3000, &[], &status);
        let value: Value = serde_json::from_str(&w.text).expect("parses");
        assert!(value.is_object(), "seed {seed}: {}", w.text);
    }
}

fn expect_unsupported(schema: Value, keyword: &str) {
    let s = setup();
    match json_schema(&s.vocab, &schema) {
        Err(ConstrainError::Unsupported(msg)) => {
            assert!(
                msg.contains(keyword),
                "{schema}: {msg} does not name {keyword}"
            )
        }
        Err(e) => panic!("{schema}: expected Unsupported, got {e}"),
        Ok(_) => panic!("{schema}: compiled, but `{keyword}` cannot be enforced"),
    }
}

#[test]
fn unsupported_features_are_named() {
    let prop = |p: Value| json!({"type": "object", "properties": {"x": p}});
    expect_unsupported(json!({"type": "array", "uniqueItems": true}), "uniqueItems");
    expect_unsupported(
        json!({"type": "array", "contains": {"type": "integer"}}),
        "contains",
    );
    expect_unsupported(prop(json!({"not": {"type": "string"}})), "not");
    expect_unsupported(
        json!({"if": {"type": "string"}, "then": {"maxLength": 3}}),
        "if",
    );
    expect_unsupported(
        json!({"type": "object", "propertyNames": {"pattern": "^a"}}),
        "propertyNames",
    );
    expect_unsupported(
        json!({"type": "object", "dependentRequired": {"a": ["b"]}}),
        "dependentRequired",
    );
    expect_unsupported(
        json!({"type": "object", "unevaluatedProperties": false}),
        "unevaluatedProperties",
    );
    // not keywords at all: a validator would ignore them, we refuse to
    expect_unsupported(
        prop(json!({"type": "string", "nullable": true})),
        "nullable",
    );
    expect_unsupported(prop(json!({"type": "string", "maxLenght": 3})), "maxLenght");
    expect_unsupported(
        json!({"$ref": "https://example.com/schema.json"}),
        "https://example.com/schema.json",
    );
    expect_unsupported(prop(json!({"type": "string", "format": "color"})), "color");
    expect_unsupported(
        prop(json!({"type": "string", "pattern": "^(?=a)[a-z]+$"})),
        "look",
    );
    // overlapping branches: an output valid under two of them would not be valid
    expect_unsupported(
        prop(json!({"oneOf": [{"type": "integer"}, {"type": "number"}]})),
        "oneOf",
    );
}

#[test]
fn invalid_schemas_are_errors() {
    let s = setup();
    for schema in [
        json!(false),
        json!(3),
        json!({"type": "object", "properties": []}),
        json!({"$ref": "#/$defs/missing"}),
        json!({"type": "integer", "minimum": 5, "maximum": 3}),
    ] {
        match json_schema(&s.vocab, &schema) {
            Err(ConstrainError::Invalid(_)) => {}
            Err(e) => panic!("{schema}: expected Invalid, got {e}"),
            Ok(_) => panic!("{schema}: compiled"),
        }
    }
}

/// Whether the constraint lets exactly `text` be generated (token by token, as the
/// tokenizer splits it) and then end.
fn accepts(schema: &Value, text: &str) -> bool {
    let s = setup();
    let mut c = json_schema(&s.vocab, schema).expect("compile");
    let mut mask = vec![0u32; s.tok.n_vocab().div_ceil(32)];
    for t in s.tok.encode(text, false, false) {
        mask.fill(0);
        c.allowed(&mut mask).unwrap();
        if !common::is_allowed(&mask, t) {
            return false;
        }
        c.accept(t).unwrap();
    }
    mask.fill(0);
    c.allowed(&mut mask).unwrap();
    common::is_allowed(&mask, s.tok.eog_ids()[0])
}

#[test]
fn formats_reject_what_validators_reject() {
    let date = json!({"type": "string", "format": "date"});
    for (text, ok) in [
        ("\"2024-02-29\"", true),
        ("\"2000-02-29\"", true),
        ("\"2023-02-29\"", false),
        ("\"1900-02-29\"", false),
        ("\"2023-02-28\"", true),
        ("\"2023-04-31\"", false),
        ("\"2023-12-31\"", true),
    ] {
        assert_eq!(accepts(&date, text), ok, "date {text}");
    }
    let dt = json!({"type": "string", "format": "date-time"});
    for (text, ok) in [
        ("\"2024-05-01T12:30:00Z\"", true),
        ("\"2024-05-01T12:30:00.25+02:00\"", true),
        ("\"2024-05-01T12:30:60Z\"", false),
        ("\"2024-05-01T24:00:00Z\"", false),
        ("\"2024-05-01T12:30:00\"", false),
    ] {
        assert_eq!(accepts(&dt, text), ok, "date-time {text}");
    }
    let email = json!({"type": "string", "format": "email"});
    let long_local = format!("\"{}@example.com\"", "a".repeat(65));
    for (text, ok) in [
        ("\"jane.doe@example.com\"", true),
        ("\"jane@localhost\"", true),
        ("\"jane@@example.com\"", false),
        ("\"@example.com\"", false),
        (long_local.as_str(), false),
    ] {
        assert_eq!(accepts(&email, text), ok, "email {text}");
    }
    // the same texts through the independent validator, as a check of the expectations
    let v = validator(&date);
    assert!(!v.is_valid(&json!("2023-02-29")) && v.is_valid(&json!("2024-02-29")));
}

#[test]
fn after_the_end_only_eog_and_accepting_it_is_harmless() {
    let s = setup();
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false});
    let mut c = json_schema(&s.vocab, &schema).unwrap();
    let mut mask = vec![0u32; s.tok.n_vocab().div_ceil(32)];
    for t in s.tok.encode("{\"ok\": true}", false, false) {
        mask.fill(0);
        c.allowed(&mut mask).unwrap();
        assert!(common::is_allowed(&mask, t));
        c.accept(t).unwrap();
    }
    assert!(c.is_finished());
    mask.fill(0);
    c.allowed(&mut mask).unwrap();
    assert_eq!(common::allowed_ids(&mask), s.tok.eog_ids());
    c.accept(s.tok.eog_ids()[0]).unwrap();
    assert!(c.is_finished());
    let brace = s.tok.encode("}", false, false)[0];
    assert!(c.accept(brace).is_err());
}

/// A vocabulary built from a borrowed tokenizer has no canonical tokenization: where the
/// shared one allows only the canonical tokens of forced text, it allows every token
/// that spells it; elsewhere the masks are the same.
#[test]
fn borrowed_tokenizer_allows_every_tokenization_of_forced_text() {
    let s = setup();
    let borrowed = lingqiao_constrain::Vocab::new(&*s.tok).unwrap();
    let schema = json!({"type": "object", "properties": {"a": {"enum": ["x", "yy"]}, "n": {"type": "integer"}}, "required": ["a", "n"]});
    let mut a = json_schema(&borrowed, &schema).unwrap();
    let mut b = json_schema(&s.vocab, &schema).unwrap();
    let words = s.tok.n_vocab().div_ceil(32);
    let (mut ma, mut mb) = (vec![0u32; words], vec![0u32; words]);
    let brace = s.tok.token_id("{").unwrap();
    let mut differed = false;
    for (i, t) in s
        .tok
        .encode("{\"a\": \"yy\", \"n\": 42}", false, false)
        .into_iter()
        .enumerate()
    {
        ma.fill(0);
        mb.fill(0);
        a.allowed(&mut ma).unwrap();
        b.allowed(&mut mb).unwrap();
        assert!(
            ma.iter().zip(&mb).all(|(x, y)| x & y == *y),
            "step {i}: shared allows more"
        );
        if i == 0 {
            // the output starts with the forced `{"a": `, canonically `{"` first
            assert!(common::is_allowed(&ma, brace) && !common::is_allowed(&mb, brace));
        }
        differed |= ma != mb;
        a.accept(t).unwrap();
        b.accept(t).unwrap();
    }
    assert!(differed);
    assert!(a.is_finished() && b.is_finished());
}

/// Schemas a client could send to make compiling or masking expensive: each compiles or
/// fails, and then masks or fails, within a bounded time (llguidance's fuel limits):
/// never hangs the engine.
#[test]
fn large_bounds_compile_or_fail_quickly() {
    let s = setup();
    for schema in [
        json!({"type": "array", "items": {"type": "integer"}, "minItems": 5000, "maxItems": 10000}),
        json!({"type": "string", "minLength": 50000, "maxLength": 100000}),
        json!({"type": "integer", "minimum": -123456789012i64, "maximum": 98765432109876i64}),
        json!({"type": "string", "pattern": "^(a|b|c){100,2000}[0-9]{50}$"}),
        json!({"type": "object", "minProperties": 50, "maxProperties": 60}),
    ] {
        let t0 = std::time::Instant::now();
        let r = json_schema(&s.vocab, &schema);
        let dt = t0.elapsed();
        eprintln!(
            "{schema}: {} in {:.1} ms",
            match &r {
                Ok(_) => "compiled".to_string(),
                Err(e) => e.to_string().chars().take(120).collect(),
            },
            dt.as_secs_f64() * 1e3
        );
        assert!(dt < std::time::Duration::from_secs(10), "{schema}: {dt:?}");
        let Ok(mut c) = r else { continue };
        let mut mask = vec![0u32; s.tok.n_vocab().div_ceil(32)];
        let mut worst = std::time::Duration::ZERO;
        for step in 0..30 {
            mask.fill(0);
            let t0 = std::time::Instant::now();
            let ok = c.allowed(&mut mask);
            worst = worst.max(t0.elapsed());
            let Ok(()) = ok else {
                eprintln!("  mask {step} failed: {}", ok.unwrap_err());
                break;
            };
            // the first allowed token that is not EOG (deterministic, no rng needed)
            let Some(t) = common::allowed_ids(&mask)
                .into_iter()
                .find(|&t| !s.tok.is_eog(t))
            else {
                break;
            };
            c.accept(t).unwrap();
        }
        eprintln!("  worst mask {:.2} ms", worst.as_secs_f64() * 1e3);
        assert!(
            worst < std::time::Duration::from_secs(2),
            "{schema}: mask {worst:?}"
        );
    }
}
