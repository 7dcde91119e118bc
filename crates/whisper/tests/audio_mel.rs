//! Audio decoding and the log-mel front end against faster-whisper.
//!
//! Golden data: `testdata/whisper/mel/`, made by `make_golden.py` there (faster-whisper 1.2.1's
//! `FeatureExtractor` on the WAVs as its own `decode_audio` reads them, and `decode_audio`'s
//! output for the 44.1 kHz stereo and compressed files).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lingqiao_whisper::audio::{self, AudioError, SAMPLE_RATE};
use lingqiao_whisper::mel::{self, Mel, MelFrontEnd};

/// Max |ours - faster-whisper| on the normalized log-mel for the same input samples: a few
/// f32 ulps (the features are within [-1.5, 2.5], where an ulp is at most 2.4e-7). Both
/// sides round the windowed frame, the spectrum, the power and the logarithm to f32; they
/// differ in summation order (sgemm vs a sparse sum) and the log10 implementation. Measured:
/// 1.2e-7. (With rustfft's f32 FFT instead of an f64 FFT rounded to f32 this was 8e-6, in
/// bands 60-70 dB below their frame's peak: numpy's f32 FFT is close to correctly rounded.)
const MEL_TOL: f32 = 5e-7;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/whisper/mel")
}

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(data_dir().join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(data_dir().join(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// 16-bit mono WAV samples as faster-whisper reads them: x / 32768.
fn read_i16_wav(name: &str) -> Vec<f32> {
    let mut r = hound::WavReader::open(data_dir().join(name)).unwrap();
    assert_eq!((r.spec().channels, r.spec().bits_per_sample), (1, 16));
    r.samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

fn load(name: &str) -> Vec<f32> {
    audio::load(&data_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (max abs difference, mean abs difference)
fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let mut max = 0.0f32;
    let mut sum = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += f64::from(d);
    }
    (max, (sum / a.len().max(1) as f64) as f32)
}

/// Signal-to-noise ratio of `test` against `reference`, in dB.
fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    assert_eq!(reference.len(), test.len());
    let signal: f64 = reference.iter().map(|&x| f64::from(x).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(test)
        .map(|(&x, &y)| f64::from(x - y).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-300)).log10()
}

#[test]
fn log_mel_matches_faster_whisper() {
    let golden = golden();
    let mut front_ends: Vec<MelFrontEnd> = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let wav = case["wav"].as_str().unwrap();
        let n_mels = case["n_mels"].as_u64().unwrap() as usize;
        let padding = case["padding"].as_u64().unwrap() as usize;
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();

        // Our decoder gives exactly the samples faster-whisper's decode_audio gives.
        let samples = load(wav);
        assert_eq!(samples, read_i16_wav(wav), "{wav}");
        assert_eq!(samples.len() as u64, case["n_samples"].as_u64().unwrap());

        if !front_ends.iter().any(|f| f.n_mels() == n_mels) {
            front_ends.push(MelFrontEnd::new(n_mels));
        }
        let front_end = front_ends.iter().find(|f| f.n_mels() == n_mels).unwrap();
        let ours = front_end.compute(&samples, padding);
        let reference = read_f32(case["features"].as_str().unwrap());
        assert_eq!(
            [ours.n_mels, ours.n_frames],
            [shape[0], shape[1]],
            "{wav} shape"
        );
        let (max, mean) = diff(&ours.data, &reference);
        println!(
            "{wav} n_mels={n_mels} padding={padding} frames={}: max abs err {max:.3e}, mean {mean:.3e}",
            ours.n_frames
        );
        assert!(
            max <= MEL_TOL,
            "{wav} n_mels={n_mels} padding={padding}: max abs err {max:e}"
        );
        // The convenience function is the same computation.
        assert_eq!(mel::log_mel(&samples, n_mels, padding), ours);
    }
}

#[test]
fn filterbank_matches_faster_whisper() {
    // FeatureExtractor(80).mel_filters: computed in f64 on both sides, then rounded to f32.
    let ours = mel::MelFilters::new(SAMPLE_RATE, 400, 80);
    assert_eq!((ours.n_mels(), ours.n_freqs()), (80, 201));
    let reference = read_f32("mel_filters.80.f32");
    let (max, _) = diff(ours.weights(), &reference);
    let mismatches = ours
        .weights()
        .iter()
        .zip(&reference)
        .filter(|(a, b)| a != b)
        .count();
    println!("mel filterbank: max abs err {max:.3e}, {mismatches} of 16080 weights differ");
    // Within an f32 ulp of weights ~0.03 (libm exp/log may differ from numpy's in the last
    // f64 bit, which can flip a rounding).
    assert!(max <= 4e-9, "max abs err {max:e}");
}

#[test]
fn silence_and_edges() {
    let fe = MelFrontEnd::new(80);
    // All-zero input: log10(1e-10) = -10 everywhere, the clamp changes nothing, (-10 + 4) / 4.
    let m = fe.compute(&vec![0.0; 16_000], 160);
    assert_eq!((m.n_mels, m.n_frames), (80, 101));
    assert!(m.data.iter().all(|&x| x == -1.5));
    // Fewer samples than one hop: no frames (the reference raises).
    assert_eq!(fe.compute(&[], 0).n_frames, 0);
    assert_eq!(fe.compute(&[0.1; 100], 0).n_frames, 0);
    assert_eq!(fe.compute(&[], 160).n_frames, 1);
    // A single sample repeated by the reflect padding (numpy's one-element case).
    assert_eq!(fe.compute(&[0.5], 160).n_frames, 1);

    // pad_or_trim pads the normalized features with 0.0, not with silence's -1.5.
    let w = mel::window(&m, 50, 3000);
    assert_eq!(w.len(), 80 * 3000);
    assert!(w[..51].iter().all(|&x| x == -1.5));
    assert!(w[51..3000].iter().all(|&x| x == 0.0));
    assert_eq!(w[3000], -1.5);
    assert_eq!(mel::window(&m, 0, 101), m.data);
}

#[test]
fn clamp_uses_the_whole_clip() {
    // A loud second half raises the floor of the quiet first half: documented behavior.
    let fe = MelFrontEnd::new(80);
    let quiet: Vec<f32> = (0..16_000)
        .map(|i| 1e-3 * (i as f32 * 0.05).sin())
        .collect();
    let mut both = quiet.clone();
    both.extend((0..16_000).map(|i| 0.9 * (i as f32 * 0.3).sin()));
    let alone = fe.compute(&quiet, 0);
    let whole = fe.compute(&both, 0);
    let first_half = mel::window(&whole, 0, 50);
    assert_ne!(mel::window(&alone, 0, 50), first_half);
}

#[test]
fn thirty_seconds_is_fast() {
    let fe = MelFrontEnd::new(80);
    let mut state = 1u32;
    let samples: Vec<f32> = (0..30 * 16_000)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            0.3 * (i as f32 * 0.07).sin() + 0.01 * ((state >> 8) as f32 / (1 << 24) as f32 - 0.5)
        })
        .collect();
    let mel = fe.compute(&samples, 160); // warm up
    assert_eq!(mel.n_frames, 3001);
    // The best of several runs: the machine may be shared.
    let best = |f: &dyn Fn()| {
        (0..15)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let per = best(&|| {
        std::hint::black_box(fe.compute(std::hint::black_box(&samples), 160));
    });
    let cold = best(&|| {
        std::hint::black_box(mel::log_mel(std::hint::black_box(&samples), 80, 160));
    });
    println!(
        "log-mel of 30 s: {:.2} ms (front end reused), {:.2} ms (log_mel, building filters)",
        per * 1e3,
        cold * 1e3
    );
    // A loose guard against a pathological slowdown, not a benchmark (CI machines vary).
    assert!(per < 0.1, "30 s took {:.1} ms", per * 1e3);
}

#[test]
fn wav_float_and_int16_decode_identically() {
    // chirp_f32.wav holds the int16 values / 32768 as IEEE floats.
    let int16 = load("chirp.wav");
    assert_eq!(int16.len(), 40_000);
    assert_eq!(load("chirp_f32.wav"), int16);
    let bytes = std::fs::read(data_dir().join("chirp_f32.wav")).unwrap();
    assert_eq!(audio::decode_bytes(&bytes, Some("wav")).unwrap(), int16);
    assert_eq!(audio::decode_bytes(&bytes, None).unwrap(), int16);
}

/// A WAV in memory written by hound.
fn wav_bytes(spec: hound::WavSpec, frames: &[f32], channels: usize) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for &x in frames {
        for _ in 0..channels {
            match spec.sample_format {
                hound::SampleFormat::Float => w.write_sample(x).unwrap(),
                hound::SampleFormat::Int => {
                    let full = (1i64 << (spec.bits_per_sample - 1)) as f32;
                    let v = (x * full).round().clamp(-full, full - 1.0) as i32;
                    w.write_sample(v).unwrap()
                }
            }
        }
    }
    w.finalize().unwrap();
    out.into_inner()
}

#[test]
fn wav_bit_depths_and_channels() {
    let reference = load("chirp.wav");
    for (bits, format, tol) in [
        (8, hound::SampleFormat::Int, 1.0 / 128.0),
        (16, hound::SampleFormat::Int, 0.0),
        (24, hound::SampleFormat::Int, 0.0),
        (32, hound::SampleFormat::Int, 0.0),
        (32, hound::SampleFormat::Float, 0.0),
    ] {
        for channels in [1usize, 3] {
            let spec = hound::WavSpec {
                channels: channels as u16,
                sample_rate: 16_000,
                bits_per_sample: bits,
                sample_format: format,
            };
            let got = audio::decode_bytes(&wav_bytes(spec, &reference, channels), None)
                .unwrap_or_else(|e| panic!("{bits}-bit {format:?} x{channels}: {e}"));
            let (max, _) = diff(&got, &reference);
            // The mean of 3 identical channels: sum * (1/3) rounds to within an ulp.
            let tol = tol + if channels > 1 { 1e-7 } else { 0.0 };
            assert!(
                max <= tol,
                "{bits}-bit {format:?} x{channels}: max err {max:e}"
            );
        }
    }
}

#[test]
fn stereo_44k1_resampled_to_16k() {
    // The same band-limited signal sampled at 44.1 kHz (with a side signal added to the left
    // channel and taken from the right) and at 16 kHz: averaging and resampling must give
    // back the 16 kHz samples, up to 16-bit quantization on both sides and the resampler's
    // passband ripple.
    let ours = load("chirp_44k1_stereo.wav");
    assert_eq!(ours.len(), 40_000, "round(110250 * 16000 / 44100)");
    let direct = load("chirp.wav");
    let fw = read_i16_wav("chirp_44k1_stereo.fw.wav");
    assert_eq!(fw.len(), ours.len());
    let snr_direct = snr_db(&direct, &ours);
    let snr_fw = snr_db(&direct, &fw);
    let snr_vs_fw = snr_db(&fw, &ours);
    // Away from the fades, where both resamplers see steady signal.
    let mid = 1600..38_400;
    let snr_mid = snr_db(&direct[mid.clone()], &ours[mid.clone()]);
    println!(
        "44.1 kHz stereo -> 16 kHz: SNR vs the 16 kHz original {snr_direct:.1} dB \
         (middle {snr_mid:.1} dB); faster-whisper's PyAV/swresample decode vs the original \
         {snr_fw:.1} dB; ours vs faster-whisper's {snr_vs_fw:.1} dB"
    );
    assert!(snr_direct > 60.0, "SNR {snr_direct:.1} dB");
    assert!(snr_vs_fw > 40.0, "SNR vs faster-whisper {snr_vs_fw:.1} dB");

    // Features: the resampled clip against faster-whisper's features of the 16 kHz original.
    // Resampling error is ~-70 dB of the signal, so loud bands agree to ~1e-3; the bands that
    // differ most are near the clamp floor (max - 8 in log10), where the 16-bit quantization
    // noise (different on the two paths) is what is measured.
    let reference = read_f32("chirp.mel80.p160.f32");
    let m = mel::log_mel(&ours, 80, 160);
    let (max, mean) = diff(&m.data, &reference);
    println!(
        "44.1 kHz stereo -> 16 kHz log-mel vs reference: max abs err {max:.3e}, mean {mean:.3e}"
    );
    assert!(max < 0.25 && mean < 0.01, "max {max:e}, mean {mean:e}");
}

#[test]
fn compressed_formats() {
    let original = load("voice.wav");
    // FLAC is lossless: exactly the WAV's samples.
    assert_eq!(load("voice.flac"), original);
    for (file, min_snr) in [
        ("voice.mp3", 25.0),
        ("voice.ogg", 25.0),
        ("voice.m4a", 25.0),
    ] {
        let ours = load(file);
        let fw = read_i16_wav(&format!("{file}.fw.wav"));
        let n = ours.len().min(fw.len()).min(original.len());
        let vs_fw = snr_db(&fw[..n], &ours[..n]);
        let vs_orig = snr_db(&original[..n], &ours[..n]);
        println!(
            "{file}: {} samples (faster-whisper {}); SNR vs faster-whisper's decode {vs_fw:.1} dB, \
             vs the original {vs_orig:.1} dB",
            ours.len(),
            fw.len()
        );
        assert!(
            vs_fw > min_snr,
            "{file}: SNR vs faster-whisper {vs_fw:.1} dB"
        );
        // In memory, with and without the hint: the same samples.
        let bytes = std::fs::read(data_dir().join(file)).unwrap();
        let ext = file.rsplit('.').next();
        assert_eq!(
            audio::decode_bytes(&bytes, ext).unwrap(),
            ours,
            "{file} from bytes"
        );
        assert_eq!(
            audio::decode_bytes(&bytes, None).unwrap(),
            ours,
            "{file} without hint"
        );
    }
}

/// A canonical 44-byte PCM WAV header.
fn wav_header(channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let block_align = channels.wrapping_mul(bits / 8);
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&36u32.wrapping_add(data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.wrapping_mul(u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

fn xorshift_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

#[test]
fn hostile_inputs_are_errors_not_panics() {
    let chirp = std::fs::read(data_dir().join("chirp.wav")).unwrap();

    assert!(matches!(
        audio::decode_bytes(&[], None),
        Err(AudioError::Empty)
    ));
    let dir = std::env::temp_dir().join(format!("lingqiao-audio-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let e = audio::load(&empty).unwrap_err();
    println!("empty file: {e}");
    assert!(matches!(e, AudioError::Empty), "{e}");
    let missing = audio::load(&dir.join("missing.wav")).unwrap_err();
    assert!(matches!(missing, AudioError::Io { .. }), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();

    // Truncated headers.
    for n in [4, 12, 20, 30, 43] {
        let e = audio::decode_bytes(&chirp[..n], Some("wav")).unwrap_err();
        println!("WAV cut at {n} bytes: {e}");
    }
    // A data chunk cut short keeps the complete frames, as FFmpeg does.
    let cut = audio::decode_bytes(&chirp[..chirp.len() - 1001], None).unwrap();
    assert_eq!(cut.len(), (chirp.len() - 1001 - 44) / 2);
    assert_eq!(cut[..], load("chirp.wav")[..cut.len()]);

    // Zero channels, zero and absurd rates, an odd bit depth.
    let body = &chirp[44..];
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "0 channels",
            [wav_header(0, 16_000, 16, body.len() as u32), body.to_vec()].concat(),
        ),
        (
            "0 Hz",
            [wav_header(1, 0, 16, body.len() as u32), body.to_vec()].concat(),
        ),
        (
            "4 GHz",
            [
                wav_header(1, 4_000_000_000, 16, body.len() as u32),
                body.to_vec(),
            ]
            .concat(),
        ),
        (
            "12-bit",
            [wav_header(1, 16_000, 12, body.len() as u32), body.to_vec()].concat(),
        ),
        (
            "1 Hz rate",
            [wav_header(1, 1, 16, body.len() as u32), body.to_vec()].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let e = audio::decode_bytes(&bytes, Some("wav")).unwrap_err();
        println!("{what}: {e}");
    }
    let e = audio::decode_bytes(&[wav_header(0, 16_000, 16, 0)].concat(), None).unwrap_err();
    assert!(matches!(e, AudioError::NoChannels), "{e}");
    let e = audio::decode_bytes(&[wav_header(1, 0, 16, 2), vec![0, 0]].concat(), None).unwrap_err();
    assert!(matches!(e, AudioError::SampleRate(0)), "{e}");
    // A header claiming far more than is there (a streamed WAV's placeholder length)
    // decodes what is there.
    let huge = [wav_header(1, 16_000, 16, 0xFFFF_FFFE), body.to_vec()].concat();
    assert_eq!(
        audio::decode_bytes(&huge, None).unwrap().len(),
        body.len() / 2
    );
    // Too long: the 2.5 s chirp against a 2 s limit, refused from the header before decoding;
    // streamed WAVs (placeholder lengths) decode to what is there and hit the same limit;
    // compressed files hit it while decoding.
    let e = audio::decode_bytes_limited(&chirp, None, 2).unwrap_err();
    assert!(matches!(e, AudioError::TooLong { max_secs: 2 }), "{e}");
    assert_eq!(e.to_string(), "audio too long: more than the 2 s limit");
    for placeholder in [0, 0x7FFF_FFFE, 0xFFFF_FFFF] {
        let streamed = [wav_header(1, 16_000, 16, placeholder), body.to_vec()].concat();
        let e = audio::decode_bytes_limited(&streamed, None, 2).unwrap_err();
        assert!(matches!(e, AudioError::TooLong { .. }), "{e}");
        assert_eq!(
            audio::decode_bytes_limited(&streamed, None, 3)
                .unwrap()
                .len(),
            40_000
        );
    }
    let stereo = std::fs::read(data_dir().join("chirp_44k1_stereo.wav")).unwrap();
    assert!(audio::decode_bytes_limited(&stereo, None, 2).is_err());
    assert_eq!(
        audio::decode_bytes_limited(&stereo, None, 3).unwrap().len(),
        40_000
    );
    for file in ["voice.flac", "voice.mp3", "voice.ogg", "voice.m4a"] {
        let e = audio::load_limited(&data_dir().join(file), 0).unwrap_err();
        assert!(
            matches!(e, AudioError::TooLong { max_secs: 0 }),
            "{file}: {e}"
        );
    }
    // The same from a file on disk (the header is fixed while reading).
    let dir = std::env::temp_dir().join(format!("lingqiao-audio-streamed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("streamed.wav");
    std::fs::write(
        &path,
        [wav_header(1, 16_000, 16, 0xFFFF_FFFF), body.to_vec()].concat(),
    )
    .unwrap();
    assert_eq!(audio::load(&path).unwrap(), load("chirp.wav"));
    std::fs::remove_dir_all(&dir).unwrap();
    // A valid header with no samples.
    let e = audio::decode_bytes(&wav_header(1, 16_000, 16, 0), None).unwrap_err();
    assert!(matches!(e, AudioError::Empty), "{e}");

    // Random bytes, with and without a misleading hint.
    for seed in 1..=20u64 {
        let bytes = xorshift_bytes(seed, 64 + 997 * seed as usize);
        for hint in [
            None,
            Some("mp3"),
            Some("wav"),
            Some("ogg"),
            Some("flac"),
            Some("m4a"),
        ] {
            if let Ok(s) = audio::decode_bytes(&bytes, hint) {
                // MPEG audio has no container: a false frame sync in noise can decode.
                println!(
                    "random bytes seed {seed} hint {hint:?}: decoded {} samples",
                    s.len()
                );
            }
        }
    }
    let e = audio::decode_bytes(&xorshift_bytes(99, 4096), None).unwrap_err();
    println!("random bytes: {e}");

    // Every fixture cut at many lengths and with corrupted bytes: any result, no panic.
    for file in [
        "chirp.wav",
        "chirp_44k1_stereo.wav",
        "voice.flac",
        "voice.mp3",
        "voice.ogg",
        "voice.m4a",
    ] {
        let bytes = std::fs::read(data_dir().join(file)).unwrap();
        let ext = file.rsplit('.').next();
        for k in 1..24 {
            let n = bytes.len() * k / 24;
            let _ = audio::decode_bytes(&bytes[..n], ext);
        }
        for seed in 0..24u64 {
            let mut b = bytes.clone();
            let noise = xorshift_bytes(seed + 1000, 16);
            let span = b.len().min(512);
            for (i, &x) in noise.iter().enumerate() {
                let at = (usize::from(x) * 131 + i * 37 + seed as usize * 7) % span;
                b[at] ^= x | 1;
            }
            let _ = audio::decode_bytes(&b, ext);
        }
    }
}

#[test]
fn resampled_length_is_exact() {
    // Pure tones at awkward rates: exact round(n * 16000 / rate) samples, no delay offset.
    for rate in [8_000u32, 11_025, 22_050, 44_100, 48_000, 96_000, 44_101] {
        let n = rate as usize + 123;
        let f = 440.0f64;
        let tone = |t: f64| (2.0 * std::f64::consts::PI * f * t).sin() as f32 * 0.5;
        let samples: Vec<f32> = (0..n).map(|i| tone(i as f64 / f64::from(rate))).collect();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let out = audio::decode_bytes(&wav_bytes(spec, &samples, 1), None).unwrap();
        let expected = ((n as u64 * 16_000 + u64::from(rate) / 2) / u64::from(rate)) as usize;
        assert_eq!(out.len(), expected, "{rate} Hz");
        // Away from the clip edges (where the tone starts abruptly), the 16 kHz samples are
        // the tone at 16 kHz sample times: a delay offset would show as a large error.
        let want: Vec<f32> = (0..out.len()).map(|i| tone(i as f64 / 16_000.0)).collect();
        let edge = 800;
        let snr = snr_db(&want[edge..out.len() - edge], &out[edge..out.len() - edge]);
        println!(
            "{rate} Hz -> 16 kHz: {} samples, SNR {snr:.1} dB",
            out.len()
        );
        assert!(snr > 60.0, "{rate} Hz: SNR {snr:.1} dB");
    }
}

#[test]
fn mel_struct_rows() {
    let m = Mel {
        n_mels: 2,
        n_frames: 2,
        data: vec![1.0, 2.0, 3.0, 4.0],
    };
    assert_eq!(m.row(1), [3.0, 4.0]);
}
