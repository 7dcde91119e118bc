//! `import` of tiny randomly initialised transformers models (llama, qwen2, qwen3,
//! gemma3) against transformers' own logits and HF tokenizers' ids.
//! Fixtures: tools/reference/gen_import_tiny.py -> testdata/import/<arch>/.

use std::path::{Path, PathBuf};

use lingqiao_gguf::GgufFile;
use lingqiao_import::{ImportOptions, OutType, import_hf};
use lingqiao_model::{Logits, Model};
use lingqiao_tokenizer::Tokenizer;
use serde_json::Value as Json;

/// Fixture directories; the architecture is the part before any "-".
const FIXTURES: [&str; 5] = ["llama", "llama-rope", "qwen2", "qwen3", "gemma3"];

fn arch_of(fixture: &str) -> &str {
    fixture.split('-').next().unwrap()
}

fn fixture(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/import")
        .join(arch)
}

/// A fresh scratch directory per test (tests run in parallel).
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lingqiao-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn manifest(arch: &str) -> Json {
    let bytes = std::fs::read(fixture(arch).join("ref/manifest.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

struct Sequence {
    name: String,
    ids: Vec<u32>,
    logits: Vec<f32>, // (n_tokens, n_vocab)
}

fn sequences(arch: &str) -> Vec<Sequence> {
    let m = manifest(arch);
    m["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let file = fixture(arch)
                .join("ref")
                .join(s["logits_file"].as_str().unwrap());
            let bytes = std::fs::read(file).unwrap();
            Sequence {
                name: s["name"].as_str().unwrap().to_string(),
                ids: ids(&s["ids"]),
                logits: bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            }
        })
        .collect()
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn import(arch: &str, out_type: OutType, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{arch}-{out_type:?}.gguf"));
    let opts = ImportOptions {
        out_type,
        progress: None,
    };
    let report = import_hf(&fixture(arch), &out, &opts).unwrap();
    assert_eq!(report.arch, arch_of(arch));
    assert_eq!(report.file_size, std::fs::metadata(&out).unwrap().len());
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// (max |Δlogit|, max |logit| of the reference) over all positions of all sequences;
/// with `check_argmax`, greedy picks must agree.
fn compare(arch: &str, gguf: &Path, check_argmax: bool) -> (f32, f32) {
    let model = Model::load(gguf).unwrap();
    assert_eq!(model.hp.spec.name, arch_of(arch));
    let (mut worst, mut scale) = (0.0f32, 0.0f32);
    for seq in sequences(arch) {
        scale = seq.logits.iter().fold(scale, |m, x| m.max(x.abs()));
        let mut cache = model.new_cache(64);
        let ours = model.forward(&mut cache, &seq.ids, Logits::All).unwrap();
        let diff = max_abs_diff(&ours, &seq.logits);
        eprintln!("{arch} {}: max |Δlogit| = {diff:.2e}", seq.name);
        worst = worst.max(diff);
        if check_argmax {
            let n_vocab = model.hp.n_vocab;
            for (t, (a, b)) in ours
                .chunks(n_vocab)
                .zip(seq.logits.chunks(n_vocab))
                .enumerate()
            {
                assert_eq!(argmax(a), argmax(b), "{arch} {} position {t}", seq.name);
            }
        }
    }
    (worst, scale)
}

/// F32 weights are exact; what remains is our F16 KV cache (as llama.cpp's default:
/// ~1e-3 relative on K/V) and, for gemma3, ggml's F16 GELU table, on logits of
/// magnitude ~3-5. Measured: <= 2.0e-3 (llama, qwen2, qwen3), 4.9e-3 (gemma3); the
/// bound is qwen3_tiny.rs's. A skipped Q/K permutation or gemma norm shift moves
/// logits by whole units.
const TOL_F32: f32 = 2e-2;
/// Reduced-precision weights, as a fraction of the largest reference logit (gemma3's
/// tied N(0,1) embedding gives logits up to 73, the others up to 5). Our F16/BF16/Q8_0
/// matrix products also round the activations to the weight's vec-dot type, as ggml
/// does. Measured fractions: F16 <= 8.0e-4, BF16 <= 6.9e-3, Q8_0 <= 2.2e-2.
const REL_F16: f32 = 5e-3;
const REL_BF16: f32 = 2e-2;
const REL_Q8_0: f32 = 6e-2;

#[test]
fn f32_import_matches_transformers() {
    let dir = scratch("f32");
    for arch in FIXTURES {
        let gguf = import(arch, OutType::F32, &dir);
        let (diff, _) = compare(arch, &gguf, true);
        assert!(diff < TOL_F32, "{arch}: max abs diff {diff}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reduced_precision_imports_load_and_stay_close() {
    let dir = scratch("reduced");
    for (out_type, rel) in [
        (OutType::F16, REL_F16),
        (OutType::BF16, REL_BF16),
        (OutType::Q8_0, REL_Q8_0),
    ] {
        for arch in FIXTURES {
            let gguf = import(arch, out_type, &dir);
            let (diff, scale) = compare(arch, &gguf, false);
            let frac = diff / scale;
            eprintln!("{arch} {out_type:?}: max |Δlogit| {diff:.2e} = {frac:.1e} of {scale:.1}");
            assert!(
                frac < rel,
                "{arch} {out_type:?}: max abs diff {diff} of {scale}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tokenizer_and_chat_template_are_carried_over() {
    let dir = scratch("tok");
    for arch in FIXTURES {
        let gguf = import(arch, OutType::F32, &dir);
        let file = GgufFile::open(&gguf).unwrap();
        let tok = Tokenizer::from_gguf(file.metadata()).unwrap();
        let m = manifest(arch);
        for t in m["texts"].as_array().unwrap() {
            let text = t["text"].as_str().unwrap();
            assert_eq!(
                tok.encode(text, false, false),
                ids(&t["ids"]),
                "{arch}: {text:?}"
            );
        }
        let md = file.metadata();
        assert_eq!(
            md.get_str("tokenizer.chat_template").unwrap(),
            m["chat_template"].as_str().unwrap(),
            "{arch}"
        );
        let tc: Json = serde_json::from_slice(
            &std::fs::read(fixture(arch).join("tokenizer_config.json")).unwrap(),
        )
        .unwrap();
        if let Some(eos) = tc["eos_token"].as_str() {
            let id = md.get_u32("tokenizer.ggml.eos_token_id").unwrap();
            assert_eq!(tok.token_to_piece(id, true), eos.as_bytes(), "{arch}");
        }
        if let Some(add_bos) = tc["add_bos_token"].as_bool() {
            assert_eq!(
                md.get_bool("tokenizer.ggml.add_bos_token").unwrap(),
                add_bos
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
