//! Transcribes a log-mel spectrogram saved as raw little-endian f32 (`n_mels x n_frames`,
//! mel-major), to check the model and decoder apart from the audio front end:
//! `mel_transcribe MODEL_DIR FILE.f32 [N_MELS [BEAM]]`.

use lingqiao_whisper::decode::{Options, Transcriber};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, file, rest @ ..] = args.as_slice() else {
        return Err("usage: mel_transcribe MODEL_DIR FILE.f32 [N_MELS]".into());
    };
    let n_mels: usize = rest.first().map_or(Ok(80), |s| s.parse())?;
    let beam_size: usize = rest.get(1).map_or(Ok(1), |s| s.parse())?;
    let bytes = std::fs::read(file)?;
    let mel: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n_frames = mel.len() / n_mels;
    let t = Instant::now();
    let tr = Transcriber::load(std::path::Path::new(dir))?;
    eprintln!("loaded in {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let (segs, lang) = tr.transcribe(
        &mel,
        n_frames,
        &Options {
            beam_size,
            ..Options::default()
        },
        |s| {
            println!(
                "[{:7.2} -> {:7.2}] {} {:?}",
                s.start, s.end, s.text, s.tokens
            )
        },
    )?;
    eprintln!(
        "{} segments, language {lang:?}, {:.2} s",
        segs.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
