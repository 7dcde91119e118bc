//! Our perplexity against llama-perplexity's on the same text, context and chunks
//! (testdata/perplexity/llamacpp.json, made by tools/reference/gen_perplexity.py).

mod common;

use lingqiao_eval::{PerplexityOptions, perplexity};
use serde_json::Value;

/// Relative tolerance the task sets. llama.cpp's own two attention paths (flash attention
/// on and off) differ by up to ~1.4% per chunk on smollm2; the JSON records both.
const TOLERANCE: f64 = 0.01;

fn check(key: &str) {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_file("testdata/perplexity/llamacpp.json")).unwrap(),
    )
    .unwrap();
    let want = &reference["models"][key];
    let (model, tok) = common::load(key);
    let tokens = common::text_tokens(&tok);
    let mut opts = PerplexityOptions::for_tokenizer(&tok);
    opts.n_ctx = reference["n_ctx"].as_u64().unwrap() as usize;
    opts.n_chunks = Some(reference["chunks"].as_u64().unwrap() as usize);
    let report = common::pool()
        .install(|| perplexity(&model, &tokens, &opts, None, None, &mut |_| {}))
        .unwrap();
    assert_eq!(report.n_chunks, opts.n_chunks.unwrap());
    assert_eq!(
        report.n_tokens_scored,
        report.n_chunks * (opts.n_ctx / 2 - 1)
    );
    let ppl_ref = want["ppl"].as_f64().unwrap();
    let off_ref = want["flash_attn_off"]["ppl"].as_f64().unwrap();
    let rel = report.ppl / ppl_ref - 1.0;
    eprintln!(
        "{key}: ppl {:.4} +/- {:.4}, llama.cpp {ppl_ref:.4} ({:+.3}%), llama.cpp -fa off \
         {off_ref:.4} ({:+.3}%), per chunk {:?}",
        report.ppl,
        report.ppl_stderr,
        100.0 * rel,
        100.0 * (report.ppl / off_ref - 1.0),
        report.cumulative_ppl
    );
    assert!(
        rel.abs() < TOLERANCE,
        "{key}: ppl {} vs llama.cpp {ppl_ref}",
        report.ppl
    );
    // The error estimate is a formula of the same NLLs: it must agree as closely.
    let err_ref = want["ppl_stderr"].as_f64().unwrap();
    assert!(
        (report.ppl_stderr / err_ref - 1.0).abs() < 3.0 * TOLERANCE,
        "{key}: stderr {} vs llama.cpp {err_ref}",
        report.ppl_stderr
    );
}

#[test]
fn smollm2_matches_llamacpp() {
    check("smollm2");
}

#[test]
fn gemma3_matches_llamacpp() {
    check("gemma3");
}

#[test]
fn qwen05_matches_llamacpp() {
    check("qwen05");
}
