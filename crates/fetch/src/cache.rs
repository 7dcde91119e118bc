//! Where models live on disk and whether one is installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::registry::{FileSpec, ModelKind, ModelSpec, find};

/// `$LINGQIAO_HOME/models` if set, else `~/.cache/lingqiao/models`.
///
/// Without HOME either, falls back to `.lingqiao/models` under the working directory
/// rather than failing: a model path is still printed in every message, so the user sees it.
pub fn cache_dir() -> PathBuf {
    cache_dir_from(std::env::var_os("LINGQIAO_HOME"), std::env::var_os("HOME"))
}

/// [`cache_dir`] on explicit environment values, so it can be tested without mutating the
/// process environment.
pub fn cache_dir_from(lingqiao_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
    match (lingqiao_home, home) {
        (Some(lh), _) if !lh.is_empty() => PathBuf::from(lh).join("models"),
        (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache/lingqiao/models"),
        _ => PathBuf::from(".lingqiao/models"),
    }
}

/// The directory a model's files are written into.
pub fn install_dir(spec: &ModelSpec, cache: &Path) -> PathBuf {
    match spec.kind {
        ModelKind::Gguf => cache.to_path_buf(),
        ModelKind::Whisper => cache.join(spec.key),
    }
}

/// What a user or the runtime opens: the .gguf file, or a Whisper model's directory.
pub fn model_path_in(spec: &ModelSpec, cache: &Path) -> PathBuf {
    let dir = install_dir(spec, cache);
    match (spec.kind, spec.files.first()) {
        (ModelKind::Gguf, Some(file)) => dir.join(file.name),
        _ => dir,
    }
}

/// Where `key`'s main file lives in the default cache, installed or not.
pub fn model_path(key: &str) -> Option<PathBuf> {
    find(key).map(|spec| model_path_in(spec, &cache_dir()))
}

/// True when the file exists under its final name with the expected size.
///
/// The sha256 is not recomputed here (that reads hundreds of MB): the final name only ever
/// appears by renaming a file whose sha256 was verified, so size catches truncation or
/// replacement by something else, which is what can happen afterwards.
pub(crate) fn file_installed(dir: &Path, file: &FileSpec) -> bool {
    match std::fs::metadata(dir.join(file.name)) {
        Ok(meta) => meta.is_file() && file.size.is_none_or(|size| meta.len() == size),
        Err(_) => false,
    }
}

/// True when every file of `spec` is present in `cache` with the right size.
pub fn is_installed_in(spec: &ModelSpec, cache: &Path) -> bool {
    let dir = install_dir(spec, cache);
    spec.files.iter().all(|f| file_installed(&dir, f))
}

/// True when `key` is a known model whose files are all present with the right size.
pub fn is_installed(key: &str) -> bool {
    find(key).is_some_and(|spec| is_installed_in(spec, &cache_dir()))
}
