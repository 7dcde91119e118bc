//! Saved log-probs: a model compared with itself has no divergence, and a base file from
//! another run is refused with a clear error.

mod common;

use lingqiao_eval::{BaseLogits, EvalError, LogitsWriter, PerplexityOptions, perplexity};

fn opts(tok: &lingqiao_tokenizer::Tokenizer, n_ctx: usize, chunks: usize) -> PerplexityOptions {
    let mut o = PerplexityOptions::for_tokenizer(tok);
    o.n_ctx = n_ctx;
    o.n_chunks = Some(chunks);
    o
}

#[test]
fn a_model_against_its_own_logits_has_zero_divergence() {
    let (model, tok) = common::load("smollm2");
    let tokens = common::text_tokens(&tok);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("base.logits");
    let o = opts(&tok, 128, 3);
    let pool = common::pool();
    let plain = pool
        .install(|| perplexity(&model, &tokens, &o, None, None, &mut |_| {}))
        .unwrap();
    let mut w = LogitsWriter::create(&file).unwrap();
    let saved = pool
        .install(|| perplexity(&model, &tokens, &o, None, Some(&mut w), &mut |_| {}))
        .unwrap();
    assert_eq!(saved.ppl, plain.ppl, "saving must not change the measure");

    let mut base = BaseLogits::open(&file).unwrap();
    assert_eq!(base.header().tokens, tokens[..3 * 128]);
    // Twice through the same base: each comparison reads it from the start.
    for _ in 0..2 {
        let r = pool
            .install(|| perplexity(&model, &tokens, &o, Some(&mut base), None, &mut |_| {}))
            .unwrap();
        let k = r.kld.expect("a KL report");
        assert_eq!(k.count, 3 * (128 / 2 - 1));
        assert_eq!(k.ppl_base, k.ppl);
        assert!((k.ppl - plain.ppl).abs() < 1e-9 * plain.ppl);
        assert_eq!(k.ppl_ratio, 1.0);
        assert_eq!(k.top1_agreement, 1.0);
        // Only the u16 rounding of the saved log-probs (at most 16/65535/2 nats each)
        // remains; a 4-bit copy of a model is typically at 0.05 and more.
        assert!(k.mean_kld.abs() < 1e-4, "mean KLD {}", k.mean_kld);
        assert!(k.max_kld.abs() < 1e-3, "max KLD {}", k.max_kld);
    }
}

#[test]
fn a_base_from_another_run_is_refused() {
    let (model, tok) = common::load("smollm2");
    let tokens = common::text_tokens(&tok);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("base.logits");
    let pool = common::pool();
    let o = opts(&tok, 64, 2);
    let mut w = LogitsWriter::create(&file).unwrap();
    pool.install(|| perplexity(&model, &tokens, &o, None, Some(&mut w), &mut |_| {}))
        .unwrap();
    drop(w);

    let compare = |o: &PerplexityOptions, tokens: &[u32]| {
        let mut base = BaseLogits::open(&file).unwrap();
        pool.install(|| perplexity(&model, tokens, o, Some(&mut base), None, &mut |_| {}))
    };
    let mismatch = |r: Result<_, EvalError>, what: &str| match r {
        Err(EvalError::BaseMismatch(m)) => assert!(m.contains(what), "{m}"),
        Err(e) => panic!("expected a mismatch on {what}, got {e}"),
        Ok(_) => panic!("expected a mismatch on {what}, got a report"),
    };
    mismatch(compare(&opts(&tok, 128, 2), &tokens), "context");
    mismatch(compare(&opts(&tok, 64, 3), &tokens), "chunks");
    let mut other = tokens.clone();
    other[70] ^= 1;
    mismatch(compare(&o, &other), "token 70");
    let mut no_bos = o.clone();
    no_bos.bos = Some(1234);
    mismatch(compare(&no_bos, &tokens), "BOS");

    // A cut-off file and a file of something else are refused when opened.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.logits");
    std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        BaseLogits::open(&cut),
        Err(EvalError::Truncated { .. })
    ));
    let junk = dir.path().join("junk.logits");
    std::fs::write(
        &junk,
        b"GGUF and then some more bytes, long enough for a header",
    )
    .unwrap();
    assert!(matches!(
        BaseLogits::open(&junk),
        Err(EvalError::NotLogitsFile { .. })
    ));
}

#[test]
fn bad_options_are_clear_errors() {
    let (model, tok) = common::load("smollm2");
    let tokens = common::text_tokens(&tok);
    let run = |o: &PerplexityOptions, t: &[u32]| perplexity(&model, t, o, None, None, &mut |_| {});
    assert!(matches!(
        run(&opts(&tok, 512, 1), &tokens[..1023]),
        Err(EvalError::TooFewTokens {
            n_tokens: 1023,
            needed: 1024,
            ..
        })
    ));
    let too_long = model.hp.n_ctx_train + 1;
    assert!(matches!(
        run(&opts(&tok, too_long, 1), &tokens),
        Err(EvalError::ContextTooLarge { .. })
    ));
    assert!(matches!(
        run(&opts(&tok, 3, 1), &tokens),
        Err(EvalError::ContextTooSmall { n_ctx: 3 })
    ));
    let mut zero = opts(&tok, 64, 1);
    zero.n_batch = 0;
    assert!(matches!(run(&zero, &tokens), Err(EvalError::ZeroBatch)));
}
