//! The `lingqiao` binary end to end on the real models (fetched by scripts/test.sh).

mod common;

use common::{assert_ok, lingqiao, stdout};
use std::process::Command;

#[test]
fn chat_answers_in_chinese() {
    let o = lingqiao(&[
        "run",
        "-m",
        "qwen05",
        "--chat",
        "-p",
        "中国的首都是哪里？",
        "--temp",
        "0",
        "-n",
        "32",
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("北京"), "answer: {text}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tokens/s") && err.contains("peak RSS"),
        "stats on stderr: {err}"
    );
}

#[test]
fn chat_answers_in_english() {
    let o = lingqiao(&[
        "run",
        "-m",
        "qwen05",
        "--chat",
        "-p",
        "What is the capital of France?",
        "--temp",
        "0",
        "-n",
        "32",
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("Paris"), "answer: {text}");
}

#[test]
fn raw_prompt_streams_only_generated_text() {
    let o = lingqiao(&[
        "run",
        "-m",
        "smollm2",
        "-p",
        "The capital of France is",
        "--temp",
        "0",
        "-n",
        "8",
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(
        !text.contains("The capital of France is"),
        "prompt echoed: {text}"
    );
    assert!(text.contains("Paris"), "continuation: {text}");
}

#[test]
fn same_seed_same_text() {
    let args = [
        "run",
        "-m",
        "smollm2",
        "-p",
        "Once upon a time",
        "--temp",
        "0.9",
        "--seed",
        "42",
        "-n",
        "24",
    ];
    let (a, b) = (lingqiao(&args), lingqiao(&args));
    assert_ok(&a);
    assert_eq!(stdout(&a), stdout(&b));
    let c = lingqiao(&[
        "run",
        "-m",
        "smollm2",
        "-p",
        "Once upon a time",
        "--temp",
        "0.9",
        "--seed",
        "43",
        "-n",
        "24",
    ]);
    assert_ne!(stdout(&a), stdout(&c));
}

#[test]
fn chat_keeps_history_and_reuses_the_cache() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lingqiao"))
        .args(["chat", "-m", "qwen05", "--temp", "0", "-n", "40"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all("My name is Lin. Remember it.\nWhat is my name?\n".as_bytes())
        .unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    let text = stdout(&o);
    let second = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(
        text.matches("Lin").count() >= 1 && second.contains("Lin"),
        "answers: {text}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reused from cache"),
        "second turn should reuse the first: {err}"
    );
}

#[test]
fn tokenize_prints_ids() {
    // From llama.cpp: Llama(SmolLM2 gguf, vocab_only=True).tokenize(b"Hello world", add_bos=True, special=True).
    let o = lingqiao(&["tokenize", "-m", "smollm2", "--ids", "Hello world"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "[19556, 905]");
}

#[test]
fn inspect_states_memory() {
    let o = lingqiao(&["inspect", "gemma3"]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("general.architecture = \"gemma3\""), "{text}");
    assert!(
        text.contains("memory at context") && text.contains("KV cache"),
        "{text}"
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let dir = std::env::temp_dir().join(format!("lq-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("corrupt.gguf");
    std::fs::write(
        &corrupt,
        b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f",
    )
    .unwrap();
    for args in [
        vec!["run", "-m", corrupt.to_str().unwrap(), "-p", "hi"],
        vec!["run", "-m", "/nonexistent/model.gguf", "-p", "hi"],
        vec!["run", "-m", "no-such-key", "-p", "hi"],
        vec!["inspect", corrupt.to_str().unwrap()],
    ] {
        let o = lingqiao(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("Error:") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    // A prompt longer than the context is refused with the counts.
    let o = lingqiao(&["run", "-m", "smollm2", "-c", "8", "-p", &"word ".repeat(50)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("tokens") && err.contains("context"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
