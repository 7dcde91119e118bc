//! `lingqiao perplexity` end to end on smollm2 and the committed text (small contexts:
//! the agreement with llama.cpp is checked in crates/eval/tests).

mod common;

use common::{assert_ok, lingqiao, stdout};

fn text() -> String {
    format!(
        "{}/../../testdata/perplexity/gpl-3.0.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `lingqiao perplexity -m smollm2 -t 2` with `args` after.
fn perplexity_smollm2(args: &[&str]) -> std::process::Output {
    let mut all = vec!["perplexity", "-m", "smollm2", "-t", "2"];
    all.extend_from_slice(args);
    lingqiao(&all)
}

#[test]
fn prints_progress_and_final_estimate_then_compares_with_saved_logits() {
    let dir = tempfile::tempdir().unwrap();
    let logits = dir.path().join("smollm2.logits");
    let logits = logits.to_str().unwrap();
    let o = perplexity_smollm2(&[
        "-f",
        &text(),
        "-c",
        "64",
        "--chunks",
        "3",
        "--save-logits",
        logits,
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("[1]") && out.contains(",[3]"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Final estimate: PPL = "))
        .unwrap_or_else(|| panic!("no final estimate in {out}"));
    let ppl: f64 = line["Final estimate: PPL = ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ppl > 1.0 && ppl.is_finite(), "{line}");
    assert!(out.contains("tokens/s"), "{out}");

    // The base file carries the tokens, context and chunk count: no -f or -c needed.
    let o = perplexity_smollm2(&["--kl-divergence", logits]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("Same top p: 100.000"), "{out}");
    assert!(
        out.contains("Mean PPL(Q)/PPL(base)         :   1.000000"),
        "{out}"
    );
    assert!(
        out.contains(&format!("Final estimate: PPL = {}", &line[22..])),
        "{out}"
    );
}

#[test]
fn bad_texts_and_contexts_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "Too short to score.").unwrap();
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
    let junk = dir.path().join("junk.logits");
    std::fs::write(&junk, b"not logits at all, but long enough for a header").unwrap();
    let text = text();
    for (args, want) in [
        (vec!["-f", short.to_str().unwrap()], "needs at least 1024"),
        (vec!["-f", latin1.to_str().unwrap()], "not UTF-8"),
        (
            vec!["-f", &text, "-c", "100000"],
            "exceeds the model's training context",
        ),
        (
            vec!["--kl-divergence", junk.to_str().unwrap()],
            "not a lingqiao logits file",
        ),
        (vec![], "-f FILE"),
    ] {
        let o = perplexity_smollm2(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("Error: ") && err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
