//! GGUF reader (placeholder: the full reader is being written).
mod types;
pub use types::{GgmlType, QK_K};
