//! GGUF reader (header, typed metadata, tensor index, memory-mapped weights) and writer.
//!
//! The format (llama.cpp `docs/gguf.md`, versions 2 and 3): magic "GGUF", version, tensor
//! count, metadata count, metadata key/values, tensor infos, padding to `general.alignment`,
//! then tensor data. Every count and length in the header is checked against the bytes that
//! remain before anything is allocated, and every tensor's extent is checked at open, so
//! a hostile file yields a `GgufError` naming the offset rather than a panic or a huge
//! allocation.

mod cursor;
mod error;
mod file;
pub mod keys;
mod metadata;
mod tensor;
mod types;
mod value;
mod writer;

pub use error::GgufError;
pub use file::{DEFAULT_ALIGNMENT, GgufFile, Residency};
pub use metadata::Metadata;
pub use tensor::{MAX_DIMS, TensorInfo};
pub use types::{GgmlType, QK_K};
pub use value::{Array, MAX_ARRAY_DEPTH, Value};
pub use writer::{GgufWriteError, GgufWriter, TensorDataWriter};
