//! Our reader on the three real models against gguf-py's reading of them, recorded in
//! testdata/gguf/models.json by tools/reference/gen_gguf_fixture.py. Parsing only: fast.

mod common;

use lingqiao_gguf::{GgufFile, keys};

fn models_dir() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is not set");
    std::path::PathBuf::from(home).join(".cache/lingqiao/models")
}

fn open(file: &str) -> GgufFile {
    let path = models_dir().join(file);
    if !path.exists() {
        panic!(
            "{} is missing: fetch the test models first (`lingqiao pull smollm2 gemma3 qwen05`)",
            path.display()
        );
    }
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn real_models_match_gguf_py() {
    let want = common::load_json("models.json");
    let models = want.as_array().unwrap();
    assert_eq!(models.len(), 3);
    for m in models {
        let file = m["file"].as_str().unwrap();
        let t0 = std::time::Instant::now();
        let f = open(file);
        eprintln!("{file}: parsed in {:?}", t0.elapsed());
        common::assert_matches_reference(&f, m, false);
    }
}

#[test]
fn real_model_hyperparameters() {
    // (file, arch, n_layer, n_embd, n_head, n_head_kv, vocab, tensors)
    let cases = [
        (
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "llama",
            30,
            576,
            9,
            3,
            49152,
            272,
        ),
        (
            "gemma-3-270m-q4_k_m.gguf",
            "gemma3",
            18,
            640,
            4,
            1,
            262144,
            236,
        ),
        (
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "qwen2",
            24,
            896,
            14,
            2,
            151936,
            291,
        ),
    ];
    for (file, arch, n_layer, n_embd, n_head, n_head_kv, n_vocab, n_tensors) in cases {
        let f = open(file);
        let md = f.metadata();
        assert_eq!(md.get_str(keys::GENERAL_ARCHITECTURE).unwrap(), arch);
        let k = |s| keys::arch(arch, s);
        assert_eq!(
            md.get_u32(&k(keys::BLOCK_COUNT)).unwrap(),
            n_layer,
            "{file}"
        );
        assert_eq!(
            md.get_u32(&k(keys::EMBEDDING_LENGTH)).unwrap(),
            n_embd,
            "{file}"
        );
        let heads = md
            .get_per_layer_u32(&k(keys::ATTENTION_HEAD_COUNT), n_layer as usize)
            .unwrap();
        assert_eq!(heads, vec![n_head; n_layer as usize], "{file}");
        assert_eq!(
            md.get_u32(&k(keys::ATTENTION_HEAD_COUNT_KV)).unwrap(),
            n_head_kv,
            "{file}"
        );
        assert_eq!(
            md.get_str_array(keys::TOKENIZER_TOKENS).unwrap().len(),
            n_vocab,
            "{file}"
        );
        assert_eq!(f.tensors().len(), n_tensors, "{file}");
        // token_embd is [n_embd, n_vocab] in ggml order.
        let emb = f.tensor("token_embd.weight").unwrap();
        assert_eq!(emb.dims, vec![n_embd as u64, n_vocab as u64], "{file}");
        assert_eq!(f.tensor_data(emb).len() as u64, emb.n_bytes);
    }
}
