//! Loading a real model and the committed text the way `lingqiao perplexity` does.
#![allow(dead_code)] // each test binary uses its own subset

use lingqiao_model::Model;
use lingqiao_tokenizer::Tokenizer;
use std::path::PathBuf;

pub fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The model `key` (e.g. "smollm2"), which must be installed (`lingqiao pull`).
pub fn load(key: &str) -> (Model, Tokenizer) {
    let path = lingqiao_fetch::model_path(key).expect("a registry key");
    assert!(
        path.exists(),
        "{} is missing: run `lingqiao pull {key}` first",
        path.display()
    );
    let model = Model::load(&path).unwrap();
    let tok = Tokenizer::from_gguf(model.file.metadata()).unwrap();
    (model, tok)
}

/// testdata/perplexity/gpl-3.0.txt, tokenized as llama-perplexity does.
pub fn text_tokens(tok: &Tokenizer) -> Vec<u32> {
    let text = std::fs::read_to_string(repo_file("testdata/perplexity/gpl-3.0.txt")).unwrap();
    lingqiao_eval::tokenize_text(tok, &text)
}

/// Two threads, as the reference ran with.
pub fn pool() -> lingqiao_pool::ThreadPool {
    lingqiao_pool::ThreadPool::new(2)
}
