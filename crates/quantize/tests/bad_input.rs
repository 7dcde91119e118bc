//! Bad input gets a clear error and loses nothing: no partial output, no temporary file
//! left behind, an existing output untouched, the input never overwritten.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use common::*;
use lingqiao_quantize::{QuantizeError, Target, quantize_file, quantize_file_cancellable};

/// A small F32 model (tools/reference/gen_qwen3_tiny.py).
fn tiny() -> std::path::PathBuf {
    testdata("qwen3-tiny/model.gguf")
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn corrupt_input_is_an_error_and_keeps_an_existing_output() {
    let dir = fresh_dir("corrupt");
    let out = dir.join("out.gguf");
    std::fs::write(&out, b"previous contents").unwrap();
    // Garbage, and a real file cut in half.
    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\0\0\0 this is not a model").unwrap();
    let bytes = std::fs::read(tiny()).unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for input in [&garbage, &truncated] {
        let err = quantize_file(input, &out, &opts(Target::Q8_0)).unwrap_err();
        assert!(
            matches!(err, QuantizeError::Input { .. }),
            "{}: {err}",
            input.display()
        );
        assert!(err.to_string().contains(&*input.to_string_lossy()), "{err}");
    }
    let missing = dir.join("missing.gguf");
    let err = quantize_file(&missing, &out, &opts(Target::Q8_0)).unwrap_err();
    assert!(matches!(err, QuantizeError::Input { .. }), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    assert!(leftovers(&dir).is_empty());
}

#[test]
fn unknown_type_lists_the_valid_ones() {
    let err = "Q4_KM".parse::<Target>().unwrap_err().to_string();
    for valid in ["Q4_K_M", "Q8_0", "Q2_K", "F16", "Q4_K"] {
        assert!(err.contains(valid), "{err}");
    }
}

#[test]
fn input_equal_to_output_is_refused() {
    let dir = fresh_dir("same");
    let input = dir.join("model.gguf");
    std::fs::copy(tiny(), &input).unwrap();
    let before = sha256_file(&input);
    let via_dot = dir.join(".").join("model.gguf");
    let link = dir.join("link.gguf");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    for out in [&input, &via_dot, &link] {
        let err = quantize_file(&input, out, &opts(Target::Q8_0)).unwrap_err();
        assert!(matches!(err, QuantizeError::SameFile(_)), "{err}");
    }
    assert_eq!(sha256_file(&input), before);
    assert!(leftovers(&dir).is_empty());
}

#[test]
fn missing_output_directory_is_an_error() {
    let dir = fresh_dir("nodir");
    let out = dir.join("no/such/dir/out.gguf");
    let err = quantize_file(&tiny(), &out, &opts(Target::Q8_0)).unwrap_err();
    assert!(matches!(err, QuantizeError::OutputDir(_)), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[test]
fn cancelled_run_leaves_neither_output_nor_temporary_file() {
    let dir = fresh_dir("cancel");
    let out = dir.join("out.gguf");
    let cancel = AtomicBool::new(true);
    let err = quantize_file_cancellable(&tiny(), &out, &opts(Target::Q4_K_M), &cancel).unwrap_err();
    assert!(matches!(err, QuantizeError::Interrupted), "{err}");
    assert!(!out.exists());
    assert!(leftovers(&dir).is_empty());
}

/// The F32 model through every target: the output opens, has the planned types, and the
/// report adds up.
#[test]
fn f32_input_to_every_target() {
    let dir = fresh_dir("targets");
    let input = lingqiao_gguf::GgufFile::open(tiny()).unwrap();
    for target in Target::ALL {
        let out = dir.join(format!("{target}.gguf"));
        let r = quantize_file(&tiny(), &out, &opts(target)).unwrap();
        let file = lingqiao_gguf::GgufFile::open(&out).unwrap();
        let plan = lingqiao_quantize::plan(&input, &opts(target)).unwrap();
        let got: Vec<_> = file
            .tensors()
            .iter()
            .map(|t| (t.name.clone(), t.ty))
            .collect();
        assert_eq!(got, plan, "{target}");
        let md = file.metadata();
        assert_eq!(md.get_u32("general.file_type").unwrap(), target.ftype());
        assert_eq!(md.get_u32("general.quantization_version").unwrap(), 2);
        assert!(!r.requantized);
        assert_eq!(r.types.values().sum::<usize>(), plan.len());
        let data: u64 = file.tensors().iter().map(|t| t.n_bytes).sum();
        assert_eq!(r.bytes_out, data, "{target}");
        assert_eq!(
            r.n_params,
            input.tensors().iter().map(|t| t.n_elements()).sum::<u64>()
        );
        std::fs::remove_file(&out).unwrap();
    }
    assert!(leftovers(&dir).is_empty());
}
