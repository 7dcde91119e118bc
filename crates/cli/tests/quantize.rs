//! `lingqiao quantize` end to end: a model key as input, the summary, the warning for an
//! already-quantized input, bad arguments, and Ctrl-C in the middle of a run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, lingqiao, stdout};

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-quantize-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn temporaries(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn quantizes_a_model_key_and_the_result_runs() {
    let d = dir("key");
    let out = d.join("smollm2-q8_0.gguf");
    let o = lingqiao(&[
        "quantize",
        "smollm2",
        out.to_str().unwrap(),
        "q8_0",
        "-t",
        "2",
    ]);
    assert_ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already quantized"),
        "requantize warning: {err}"
    );
    let text = stdout(&o);
    for part in ["(Q8_0)", "MiB", "bits per weight", "Q8_0 211", "F32 61"] {
        assert!(text.contains(part), "summary lacks {part:?}: {text}");
    }
    let o = lingqiao(&[
        "run",
        "-m",
        out.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "8",
        "--temp",
        "0",
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains("Paris"), "{}", stdout(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_arguments_are_clear_errors() {
    let d = dir("bad");
    let out = d.join("out.gguf");
    let o = lingqiao(&["quantize", "smollm2", out.to_str().unwrap(), "Q4_KM"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown quantization type \"Q4_KM\""), "{err}");
    assert!(
        err.contains("Q4_K_M") && err.contains("Q8_0"),
        "lists valid types: {err}"
    );

    let input = d.join("in.gguf");
    std::fs::write(&input, b"not a model").unwrap();
    let o = lingqiao(&[
        "quantize",
        input.to_str().unwrap(),
        input.to_str().unwrap(),
        "Q8_0",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot read input"), "{err}");
    assert_eq!(std::fs::read(&input).unwrap(), b"not a model");
    assert!(temporaries(&d).is_empty() && !out.exists());
}

/// Ctrl-C while tensors are being written: the run stops, exits 130, and leaves neither the
/// output nor its temporary file.
#[test]
fn interrupt_removes_the_temporary_file() {
    let d = dir("sigint");
    let out = d.join("out.gguf");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lingqiao"))
        .args([
            "quantize",
            "smollm2",
            out.to_str().unwrap(),
            "Q3_K_M",
            "-t",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while temporaries(&d).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no temporary file appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the interrupt"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out.exists());
    assert!(temporaries(&d).is_empty(), "{:?}", temporaries(&d));
    std::fs::remove_dir_all(&d).unwrap();
}
