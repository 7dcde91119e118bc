//! Whisper speech recognition on lingqiao's kernels.
//!
//! - [`ct2`]: the CTranslate2 `model.bin` reader (hostile-file safe, like the GGUF reader);
//! - [`audio`]: audio files to 16 kHz mono samples;
//! - [`mel`]: the log-mel front end, as Whisper computes it;
//! - [`model`]: the encoder and decoder;
//! - [`decode`]: Whisper's decoding rules and the transcription loop.

pub mod audio;
pub mod ct2;
pub mod decode;
mod math;
pub mod mel;
pub mod model;

/// The directory of a CTranslate2 Whisper model, given the directory or its `model.bin`.
pub fn model_dir(path: &std::path::Path) -> std::path::PathBuf {
    if path.is_file() {
        path.parent().unwrap_or(path).to_path_buf()
    } else {
        path.to_path_buf()
    }
}
