//! Where a Whisper window's time goes: the encoder, the cross-attention keys and values, and
//! decoding steps, on a constant input: `whisper_speed MODEL_DIR [THREADS]`.

use lingqiao_whisper::model::Whisper;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: whisper_speed MODEL_DIR [THREADS]")?;
    let threads: usize = std::env::args().nth(2).map_or(Ok(1), |t| t.parse())?;
    let w = Whisper::load(std::path::Path::new(&dir))?;
    let pool = lingqiao_pool::ThreadPool::new(threads);
    let mel = vec![0.1f32; w.dims.n_mels * lingqiao_whisper::model::N_FRAMES];
    pool.install(|| {
        for _ in 0..2 {
            let t = Instant::now();
            let enc = w.encode(&mel);
            let t_enc = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let cross = w.cross(&enc);
            let t_cross = t.elapsed().as_secs_f64();
            let mut cache = w.cache();
            let t = Instant::now();
            for i in 0..20u32 {
                w.decode(
                    &cross,
                    &mut cache,
                    &[if i == 0 { 50257 } else { 262 + i }],
                    &[0],
                );
            }
            let t_dec = t.elapsed().as_secs_f64() / 20.0;
            println!(
                "{threads} threads: encoder {:.1} ms, cross K/V {:.1} ms, decoding step {:.2} ms",
                t_enc * 1e3,
                t_cross * 1e3,
                t_dec * 1e3
            );
        }
    });
    Ok(())
}
