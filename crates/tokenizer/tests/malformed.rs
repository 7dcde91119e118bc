//! Malformed or unsupported vocabularies are errors, never panics; odd but legal ones
//! still tokenize.

use lingqiao_tokenizer::{SpecialIds, Tokenizer, TokenizerError, TokenizerSpec};

/// A tiny byte-level BPE vocab: the 256 GPT-2 byte chars plus "ab" = "a" + "b".
fn bpe_spec() -> TokenizerSpec {
    let mut tokens: Vec<String> = Vec::new();
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let cp = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        tokens.push(char::from_u32(cp).unwrap().to_string());
    }
    tokens.push("ab".into());
    tokens.push("<|endoftext|>".into());
    let mut types = vec![1; tokens.len()];
    *types.last_mut().unwrap() = 3;
    TokenizerSpec {
        model: "gpt2".into(),
        pre: Some("qwen2".into()),
        tokens,
        token_types: Some(types),
        merges: Some(vec!["a b".into(), "no-space".into(), "x".into()]),
        ..Default::default()
    }
}

#[test]
fn tiny_bpe_vocab_works() {
    let tok = Tokenizer::from_spec(bpe_spec()).unwrap();
    let ab = tok.token_id("ab").unwrap();
    let eot = tok.token_id("<|endoftext|>").unwrap();
    assert_eq!(tok.encode("ab", false, false), vec![ab]);
    assert_eq!(tok.encode("ab<|endoftext|>", false, true), vec![ab, eot]);
    assert_eq!(
        tok.decode(&tok.encode("ab<|endoftext|>", false, false), false),
        "ab<|endoftext|>"
    );
    assert!(tok.is_eog(eot), "<|endoftext|> ends generation");
    // gpt2 vocabs default BOS/EOS to id 11 when the file names none
    assert_eq!(tok.bos(), Some(11));
    assert!(!tok.add_bos());
    assert_eq!(tok.encode("", true, true), Vec::<u32>::new());
    assert!(tok.token_to_piece(u32::MAX, true).is_empty());
    assert_eq!(tok.token_text(u32::MAX), None);
    // an unknown id decodes to nothing; id 0 is byte 0x00
    assert_eq!(tok.decode(&[u32::MAX, 0], true), "\0");
}

#[test]
fn stream_decoder_holds_partial_chars() {
    let tok = Tokenizer::from_spec(bpe_spec()).unwrap();
    let ids = tok.encode("é😀x", false, false);
    assert_eq!(ids.len(), 7, "one token per byte in this vocab");
    let mut dec = tok.stream_decoder();
    let chunks: Vec<String> = ids.iter().map(|&id| dec.push(id)).collect();
    assert_eq!(chunks, ["", "é", "", "", "", "😀", "x"]);
    assert_eq!(dec.finish(), "");
    // a dangling lead byte is flushed as U+FFFD at the end
    let mut dec = tok.stream_decoder();
    assert_eq!(dec.push(ids[2]), "");
    assert_eq!(dec.finish(), "\u{FFFD}");
}

#[test]
fn errors_not_panics() {
    let err = |spec: TokenizerSpec| Tokenizer::from_spec(spec).err().expect("must fail");

    assert!(matches!(
        err(TokenizerSpec {
            tokens: vec![],
            ..bpe_spec()
        }),
        TokenizerError::EmptyVocab
    ));
    assert!(matches!(
        err(TokenizerSpec { model: "bert".into(), ..bpe_spec() }),
        TokenizerError::UnsupportedModel(m) if m == "bert"
    ));
    assert!(matches!(
        err(TokenizerSpec {
            pre: Some("no-such-pre".into()),
            ..bpe_spec()
        }),
        TokenizerError::UnknownPreTokenizer(_)
    ));
    assert!(matches!(
        err(TokenizerSpec {
            pre: Some("deepseek-llm".into()),
            ..bpe_spec()
        }),
        TokenizerError::UnsupportedPreTokenizer(_)
    ));
    assert!(matches!(
        err(TokenizerSpec {
            scores: Some(vec![0.0; 3]),
            ..bpe_spec()
        }),
        TokenizerError::LengthMismatch { .. }
    ));
    assert!(matches!(
        err(TokenizerSpec {
            token_types: Some(vec![1; 3]),
            ..bpe_spec()
        }),
        TokenizerError::LengthMismatch { .. }
    ));
    let mut dup = bpe_spec();
    dup.tokens.push("ab".into());
    assert!(matches!(err(dup), TokenizerError::DuplicateToken { .. }));
}

#[test]
fn odd_but_legal_metadata() {
    // out-of-range special ids fall back to defaults (or none), like llama.cpp
    let spec = TokenizerSpec {
        ids: SpecialIds {
            bos: Some(1 << 30),
            eos: Some(5),
            ..Default::default()
        },
        add_bos: Some(true),
        ..bpe_spec()
    };
    let tok = Tokenizer::from_spec(spec).unwrap();
    assert_eq!(tok.bos(), Some(11));
    assert_eq!(tok.eos(), Some(5));
    assert_eq!(tok.encode("a", true, false)[0], 11);

    // SentencePiece without byte tokens: unknown chars are dropped, not a panic
    let spm = TokenizerSpec {
        model: "llama".into(),
        pre: None,
        tokens: vec![
            "<unk>".into(),
            "<s>".into(),
            "</s>".into(),
            "\u{2581}a".into(),
            "<0x".into(),
            "".into(),
        ],
        scores: Some(vec![0.0, 0.0, 0.0, -1.0, 0.0, 0.0]),
        token_types: Some(vec![2, 3, 3, 1, 6, 1]),
        merges: None,
        ..Default::default()
    };
    let tok = Tokenizer::from_spec(spm).unwrap();
    assert_eq!(tok.encode("a", true, false), vec![1, 3]);
    assert_eq!(tok.encode("a\u{1F600}", false, false), vec![3]);
    assert_eq!(tok.token_text(5), Some("[EMPTY_5]"));
    assert_eq!(tok.token_to_piece(4, true), vec![0u8]); // "<0x" parses as byte 0
    // llama_detokenize strips the prefix space from the first token only, so after a
    // BOS (kept: remove_special is false) the space stays, as in llama.cpp
    assert_eq!(tok.decode(&[3], false), "a");
    assert_eq!(tok.decode(&[1, 3], false), " a");
}
