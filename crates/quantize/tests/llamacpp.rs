//! `quantize` against llama-quantize: the type each tensor gets, the bytes of each tensor,
//! and the files llama.cpp generated from. Fixtures: tools/reference/gen_quantize_golden.py
//! -> testdata/quantize-files/ (llama-quantize's outputs read by gguf-py, llama.cpp's greedy
//! tokens through llama-cpp-python).
//!
//! Every smollm2 file here starts from the F16 file made by `quantize ... F16` from the
//! cached Q4_1 model, whose sha256 is checked against the one llama-quantize was given.

mod common;

use common::*;
use lingqiao_gguf::GgufFile;
use lingqiao_model::{Logits, Model};
use lingqiao_quantize::{Target, plan};

const TYPES: [&str; 7] = ["Q4_K_M", "Q5_K_M", "Q3_K_M", "Q2_K", "Q4_0", "Q8_0", "Q6_K"];

/// (name, type) of each tensor of a llama-quantize output, in file order.
fn llama_types(rec: &serde_json::Value) -> Vec<(String, String)> {
    rec["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().to_string();
            (s("name"), s("type"))
        })
        .collect()
}

fn check_plan(key: &str, file: &GgufFile) {
    for name in TYPES {
        let target: Target = name.parse().unwrap();
        let rec = fixture(&format!("{key}/{name}.json"));
        assert_eq!(rec["file_type"].as_u64(), Some(u64::from(target.ftype())));
        let ours: Vec<(String, String)> = plan(file, &opts(target))
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.name().to_string()))
            .collect();
        let want = llama_types(&rec);
        assert_eq!(ours.len(), want.len(), "{key} {name}: tensor count");
        for (o, w) in ours.iter().zip(&want) {
            assert_eq!(o, w, "{key} {name}: (tensor, type) in file order");
        }
    }
}

#[test]
fn smollm2_plan_matches_llama_quantize() {
    let f16 = GgufFile::open(smollm2_f16()).unwrap();
    check_plan("smollm2", &f16);
}

/// The plan reads only names, shapes and (for the tensors never quantized: norms, biases)
/// the input's types, so qwen05's cached Q4_K_M file plans exactly as the F16 file converted
/// from it (which keeps those tensors' F32), without writing 1 GB in CI.
#[test]
fn qwen05_plan_matches_llama_quantize() {
    let file = GgufFile::open(model_file("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")).unwrap();
    let f16 = fixture("qwen05/Q8_0.json");
    for t in f16["tensors"].as_array().unwrap() {
        let ours = file.tensor(t["name"].as_str().unwrap()).unwrap();
        let dims: Vec<u64> = t["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(ours.dims, dims, "{}", ours.name);
    }
    check_plan("qwen05", &file);
}

/// Our quantizers are ggml's reference ones and our layout is llama-quantize's, so every
/// tensor's bytes, and the whole file, equal llama-quantize's.
#[test]
fn smollm2_files_equal_llama_quantize() {
    let mut failures = Vec::new();
    for name in TYPES {
        let target: Target = name.parse().unwrap();
        let rec = fixture(&format!("smollm2/{name}.json"));
        let path = smollm2_ours(target);
        let file = GgufFile::open(&path).unwrap();
        let tensors = rec["tensors"].as_array().unwrap();
        let same = tensors
            .iter()
            .filter(|t| {
                let ours = file.tensor(t["name"].as_str().unwrap()).unwrap();
                sha256_hex(file.tensor_data(ours)) == t["sha256"].as_str().unwrap()
            })
            .count();
        let whole = sha256_file(&path) == rec["sha256"].as_str().unwrap();
        eprintln!(
            "smollm2 {name}: {same}/{} tensors byte-identical, whole file {}",
            tensors.len(),
            if whole { "identical" } else { "differs" }
        );
        if same != tensors.len() || !whole {
            failures.push(name);
        }
        if !matches!(target, Target::Q4_K_M | Target::Q8_0) {
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "differ from llama-quantize: {failures:?}"
    );
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best }) as u32
}

/// Teacher-forced greedy decoding against llama.cpp's tokens `rec` on the file at `path`
/// (as crates/model/tests/golden_llamacpp.rs: up to the first disagreement this is
/// free-running greedy decoding). Every step whose llama.cpp top-2 margin is above
/// llama.cpp's own spread on smollm2 (testdata/logits/smollm2/calibration.json, at least
/// 0.5) must agree. Returns the exact prefix.
fn greedy_agrees(path: &std::path::Path, rec: &serde_json::Value) -> usize {
    let calib = serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(testdata("logits/smollm2/calibration.json")).unwrap(),
    )
    .unwrap();
    let bar = (calib["max_margin_diff"].as_f64().unwrap() as f32).max(0.5);
    let model = Model::load(path).unwrap();
    let tok = lingqiao_tokenizer::Tokenizer::from_gguf(model.file.metadata()).unwrap();
    let prompt = fixture("smollm2/generate.json")["prompt"]
        .as_str()
        .unwrap()
        .to_string();
    let prompt_ids = ids(&rec["prompt_ids"]);
    assert_eq!(tok.encode(&prompt, true, false), prompt_ids);
    let want = ids(&rec["greedy_ids"]);
    let margins: Vec<f32> = rec["greedy_margins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_f64().unwrap() as f32)
        .collect();
    let mut cache = model.new_cache(prompt_ids.len() + want.len() + 1);
    let mut logits = model
        .forward(&mut cache, &prompt_ids, Logits::Last)
        .unwrap();
    let mut exact = None;
    let mut decisive_disagreements = Vec::new();
    for (i, (&w, &m)) in want.iter().zip(&margins).enumerate() {
        if argmax(&logits) != w {
            exact.get_or_insert(i);
            if m >= bar {
                decisive_disagreements.push((i, m));
            }
        }
        if i + 1 < want.len() {
            logits = model.forward(&mut cache, &[w], Logits::Last).unwrap();
        }
    }
    assert!(
        decisive_disagreements.is_empty(),
        "{}: decisive steps (step, llama.cpp margin) disagree: {decisive_disagreements:?}",
        path.display()
    );
    exact.unwrap_or(want.len())
}

/// "A file we quantize loads and generates in llama.cpp": the script ran llama.cpp on the
/// files our quantize wrote; we write the same bytes again (so these are the files it ran)
/// and our greedy decoding on them gives llama.cpp's tokens.
#[test]
fn smollm2_our_files_are_the_ones_llama_cpp_ran() {
    let generated = fixture("smollm2/generate.json");
    for name in ["Q4_K_M", "Q8_0"] {
        let rec = &generated["ours"][name];
        let path = smollm2_ours(name.parse().unwrap());
        assert_eq!(
            sha256_file(&path),
            rec["sha256"].as_str().unwrap(),
            "{name}"
        );
        let exact = greedy_agrees(&path, rec);
        eprintln!(
            "smollm2 {name} (ours): exact greedy prefix {exact}/{} with llama.cpp: {:?}",
            rec["greedy_ids"].as_array().unwrap().len(),
            rec["greedy_text"].as_str().unwrap()
        );
    }
}

/// "A file llama.cpp quantizes loads in ours": llama-quantize's smollm2 Q4_K_M file has the
/// sha256 of ours (so ours IS that file); we load it and give llama.cpp's tokens on it.
#[test]
fn smollm2_llama_quantize_file_loads_and_generates_in_ours() {
    let rec = &fixture("smollm2/generate.json")["llama_quantize_Q4_K_M"];
    let path = smollm2_ours(Target::Q4_K_M);
    assert_eq!(sha256_file(&path), rec["sha256"].as_str().unwrap());
    let exact = greedy_agrees(&path, rec);
    eprintln!(
        "smollm2 Q4_K_M (llama-quantize's bytes): exact greedy prefix {exact}/{}",
        rec["greedy_ids"].as_array().unwrap().len()
    );
}

/// The committed tiny Qwen3 (F32, rows of 64 and 128: every K-quant falls back) through
/// every type we write, against llama-quantize on the same file: types and whole files.
#[test]
fn qwen3tiny_every_type_equals_llama_quantize() {
    let input_path = testdata("qwen3-tiny/model.gguf");
    let input = GgufFile::open(&input_path).unwrap();
    let dir = scratch().join("qwen3tiny");
    std::fs::create_dir_all(&dir).unwrap();
    for target in Target::ALL {
        let rec = fixture(&format!("qwen3tiny/{target}.json"));
        assert_eq!(rec["file_type"].as_u64(), Some(u64::from(target.ftype())));
        let ours: Vec<(String, String)> = plan(&input, &opts(target))
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.name().to_string()))
            .collect();
        assert_eq!(
            ours,
            llama_types(&rec),
            "{target}: (tensor, type) in file order"
        );
        let out = dir.join(format!("{target}.gguf"));
        lingqiao_quantize::quantize_file(&input_path, &out, &opts(target)).unwrap();
        assert_eq!(
            sha256_file(&out),
            rec["sha256"].as_str().unwrap(),
            "{target}: file differs from llama-quantize's"
        );
        std::fs::remove_file(&out).unwrap();
    }
}

/// An already-quantized input: the tiny model's Q8_0 file (llama-quantize's bytes, checked
/// above) requantized to Q4_K_M equals `llama-quantize --allow-requantize`'s file, and the
/// report says it requantized.
#[test]
fn qwen3tiny_requantized_equals_llama_quantize_allow_requantize() {
    let dir = scratch().join("qwen3tiny-requant");
    std::fs::create_dir_all(&dir).unwrap();
    let q8 = dir.join("q8_0.gguf");
    let out = dir.join("q4_k_m.gguf");
    let tiny = testdata("qwen3-tiny/model.gguf");
    lingqiao_quantize::quantize_file(&tiny, &q8, &opts(Target::Q8_0)).unwrap();
    assert_eq!(
        sha256_file(&q8),
        fixture("qwen3tiny/Q8_0.json")["sha256"].as_str().unwrap()
    );
    let r = lingqiao_quantize::quantize_file(&q8, &out, &opts(Target::Q4_K_M)).unwrap();
    assert!(r.requantized);
    let rec = fixture("qwen3tiny/requant-Q8_0-Q4_K_M.json");
    assert_eq!(sha256_file(&out), rec["sha256"].as_str().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
