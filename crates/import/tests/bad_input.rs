//! Bad model directories give a clear `ImportError` and leave no output file behind.

use std::path::{Path, PathBuf};

use lingqiao_import::{ImportError, ImportOptions, import_hf};

fn fixture(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/import")
        .join(arch)
}

/// A copy of a fixture directory (top-level files only) in a fresh scratch directory.
fn copy_of(arch: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lingqiao-import-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(fixture(arch)).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
    }
    d
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Import `dir` and return the error; the output (and any temporary) must not exist.
fn import_err(dir: &Path) -> ImportError {
    let out = dir.join("out.gguf");
    let err = import_hf(dir, &out, &ImportOptions::default()).unwrap_err();
    eprintln!("{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(dir);
    err
}

#[test]
fn missing_config_json() {
    let d = copy_of("qwen3", "noconfig");
    std::fs::remove_file(d.join("config.json")).unwrap();
    let e = import_err(&d);
    assert!(
        matches!(e, ImportError::MissingFile { ref path, .. } if path.ends_with("config.json"))
    );
}

#[test]
fn unknown_architecture() {
    let d = copy_of("qwen3", "arch");
    edit_json(&d.join("config.json"), |c| {
        c["architectures"] = serde_json::json!(["MambaForCausalLM"]);
    });
    let e = import_err(&d);
    assert!(
        matches!(e, ImportError::UnsupportedArch { ref found, .. } if found == "MambaForCausalLM")
    );
}

#[test]
fn truncated_safetensors() {
    let d = copy_of("qwen3", "trunc");
    let f = d.join("model.safetensors");
    let len = std::fs::metadata(&f).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len - 100).unwrap();
    drop(file);
    assert!(matches!(import_err(&d), ImportError::Safetensors { .. }));

    let d = copy_of("qwen3", "empty");
    std::fs::write(d.join("model.safetensors"), b"").unwrap();
    assert!(matches!(import_err(&d), ImportError::Safetensors { .. }));
}

#[test]
fn missing_shard_and_missing_tensor() {
    // the index names a shard that is not there
    let d = copy_of("llama", "shard");
    std::fs::remove_file(d.join("model-00003-of-00007.safetensors")).unwrap();
    assert!(matches!(import_err(&d), ImportError::MissingFile { .. }));

    // one layer more than the weights hold
    let d = copy_of("qwen3", "layers");
    edit_json(&d.join("config.json"), |c| {
        c["num_hidden_layers"] = 3.into()
    });
    let e = import_err(&d);
    assert!(
        matches!(e, ImportError::MissingTensor { ref name } if name.starts_with("model.layers.2."))
    );
}

#[test]
fn unsupported_dtype() {
    let d = copy_of("qwen3", "dtype");
    // a file holding only the embedding, as F64
    let data = vec![0u8; 384 * 64 * 8];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![384, 64], &data)
        .unwrap();
    let bytes = safetensors::serialize([("model.embed_tokens.weight", view)], None).unwrap();
    std::fs::write(d.join("model.safetensors"), bytes).unwrap();
    let e = import_err(&d);
    assert!(matches!(e, ImportError::UnsupportedDtype { ref dtype, .. } if dtype == "F64"));
}

#[test]
fn unknown_pre_tokenizer() {
    let d = copy_of("qwen2", "pre");
    edit_json(&d.join("tokenizer.json"), |t| {
        t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+|\\s+".into();
    });
    assert!(matches!(
        import_err(&d),
        ImportError::UnknownPreTokenizer { .. }
    ));
}

#[test]
fn missing_tokenizer_json() {
    let d = copy_of("gemma3", "notok");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    assert!(matches!(import_err(&d), ImportError::MissingFile { .. }));
}

#[test]
fn existing_output_survives_a_failed_import() {
    let d = copy_of("qwen3", "keep");
    edit_json(&d.join("config.json"), |c| {
        c["num_hidden_layers"] = 3.into()
    });
    let out = d.join("keep.gguf");
    std::fs::write(&out, b"previous").unwrap();
    assert!(import_hf(&d, &out, &ImportOptions::default()).is_err());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    let _ = std::fs::remove_dir_all(&d);
}
