//! Every chat template in testdata/templates renders every golden conversation to the
//! exact bytes Hugging Face transformers' apply_chat_template produced
//! (tools/reference/gen_template_golden.py), and fails where it failed.

use std::path::PathBuf;

use lingqiao_engine::{ChatMessage, ChatTemplate, TemplateError, chatml};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    templates: std::collections::BTreeMap<String, TemplateInfo>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct TemplateInfo {
    file: String,
    bos_token: String,
    eos_token: String,
}

#[derive(Deserialize)]
struct Case {
    template: String,
    id: String,
    messages: Vec<ChatMessage>,
    tools: Option<Vec<serde_json::Value>>,
    add_generation_prompt: bool,
    expected: Option<String>,
    error: Option<GoldenError>,
}

#[derive(Deserialize)]
struct GoldenError {
    /// "raised" for raise_exception(), else the jinja2 exception class.
    kind: String,
    message: String,
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/templates")
}

fn load() -> Golden {
    let path = testdata().join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden.json parses")
}

#[test]
fn renders_match_transformers_byte_for_byte() {
    let golden = load();
    let mut failures = Vec::new();
    let mut checked = 0;
    let start = std::time::Instant::now();
    for (name, info) in &golden.templates {
        let source = std::fs::read_to_string(testdata().join(&info.file)).expect("template file");
        let template = ChatTemplate::new(&source, &info.bos_token, &info.eos_token)
            .unwrap_or_else(|e| panic!("{name}: template does not compile: {e}"));
        for case in golden.cases.iter().filter(|c| &c.template == name) {
            checked += 1;
            let got = template.render(
                &case.messages,
                case.tools.as_deref(),
                case.add_generation_prompt,
            );
            let label = format!("{name}/{}", case.id);
            match (&case.expected, &case.error, got) {
                (Some(want), None, Ok(got)) if *want == got => {}
                (Some(want), None, Ok(got)) => {
                    failures.push(format!("{label}:\n--- want\n{want:?}\n--- got\n{got:?}"))
                }
                (_, Some(err), Err(TemplateError::Raised(msg))) if err.kind == "raised" => {
                    if msg != err.message {
                        failures.push(format!(
                            "{label}: raised {msg:?}, transformers raised {:?}",
                            err.message
                        ));
                    }
                }
                (_, Some(err), Err(TemplateError::Render(_))) if err.kind != "raised" => {}
                (_, err, got) => failures.push(format!(
                    "{label}: transformers gave error {:?}, we gave {got:?}",
                    err.as_ref().map(|e| (&e.kind, &e.message))
                )),
            }
        }
    }
    eprintln!(
        "compiled 5 templates and rendered {checked} cases in {:?}",
        start.elapsed()
    );
    assert!(checked >= 40, "only {checked} golden cases");
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_template_has_ten_or_more_cases() {
    let golden = load();
    for name in golden.templates.keys() {
        let n = golden.cases.iter().filter(|c| &c.template == name).count();
        assert!(n >= 10, "{name}: {n} cases");
    }
}

#[test]
fn chatml_fallback_is_the_template_the_golden_was_made_with() {
    let on_disk = std::fs::read_to_string(testdata().join("chatml.jinja")).expect("chatml.jinja");
    assert_eq!(chatml(), on_disk);
}

#[test]
fn message_helpers_serialise_without_nulls() {
    let m = ChatMessage::tool("42", "call_1");
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"role":"tool","content":"42","tool_call_id":"call_1"}"#
    );
    assert_eq!(ChatMessage::system("s").role, "system");
    assert_eq!(ChatMessage::assistant("a").content.as_deref(), Some("a"));
}
