#!/usr/bin/env python3
"""Golden data for crates/whisper/tests/audio_mel.rs: test signals and faster-whisper's log-mel.

Run (from the repository root, with a venv that has faster-whisper and numpy):

    python3 -m venv ~/.cache/lingqiao/venv-mel
    ~/.cache/lingqiao/venv-mel/bin/pip install faster-whisper numpy
    ~/.cache/lingqiao/venv-mel/bin/python testdata/whisper/mel/make_golden.py

Everything is deterministic (fixed seeds, no dither); rerunning rewrites the same files
(the lossy encodes depend on the FFmpeg build inside PyAV, see golden.json "versions").

What it writes next to itself:
- the test signals as WAV files (16-bit PCM unless the name says otherwise);
- for each (signal, n_mels, padding) case, faster-whisper's `FeatureExtractor` output on the
  samples *as faster-whisper's own `decode_audio` reads them back from the 16-bit WAV*, so
  both sides see the same quantized input: raw little-endian f32, n_mels x n_frames,
  mel-major (row m holds mel band m for every frame), exactly the array's C order;
- `*.fw.wav`: what faster-whisper's `decode_audio` (PyAV + libswresample, s16 mono 16 kHz)
  makes of the 44.1 kHz stereo and the compressed files, so the tests can measure how far our
  decoder and resampler are from faster-whisper's input;
- `mel_filters.80.f32`: `FeatureExtractor(80).mel_filters`, (80, 201) f32 row-major;
- `golden.json`: shapes, paddings, value ranges and the versions used.

The signals are defined in continuous time and band-limited below 7 kHz (chirp, tones, a sum
of seeded random sinusoids, raised-cosine fades), so sampling them at 16 kHz and at 44.1 kHz
gives the same signal: the 44.1 kHz file resampled to 16 kHz must match the 16 kHz file up to
quantization and the resampler's own error.
"""

import json
import os
import shutil
import subprocess
import wave

import av
import faster_whisper
import numpy as np
from faster_whisper.audio import decode_audio
from faster_whisper.feature_extractor import FeatureExtractor

HERE = os.path.dirname(os.path.abspath(__file__))
SR = 16000


def fade(t, duration, fade_s=0.02):
    """Raised-cosine fade in and out, so the clip edges are smooth (band-limited)."""
    up = np.clip(t / fade_s, 0.0, 1.0)
    down = np.clip((duration - t) / fade_s, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * up)) * (0.5 - 0.5 * np.cos(np.pi * down))


def chirp_signal(t, duration=2.5):
    """2.5 s: a 100 Hz -> 6 kHz linear chirp, two tones (one amplitude-modulated), seeded
    band-limited noise (200 random sinusoids below 7 kHz) and a quiet dip at 1.2-1.4 s."""
    f0, f1 = 100.0, 6000.0
    x = 0.3 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * duration)))
    x += 0.1 * np.sin(2 * np.pi * 440.0 * t)
    x += 0.05 * (1 + 0.5 * np.sin(2 * np.pi * 3.0 * t)) * np.sin(2 * np.pi * 1000.0 * t + 0.3)
    rng = np.random.default_rng(1234)
    freqs = rng.uniform(50.0, 7000.0, 200)
    phases = rng.uniform(0.0, 2 * np.pi, 200)
    for f, p in zip(freqs, phases):
        x += 0.002 * np.sin(2 * np.pi * f * t + p)
    dip = 1.0 - 0.999 * np.exp(-(((t - 1.3) / 0.05) ** 2))
    return x * dip * fade(t, duration)


def stereo_side(t, duration=2.5):
    """What the 44.1 kHz stereo file adds to the left channel and takes from the right: the
    channel average is `chirp_signal` again, so averaging (not picking a channel) is tested."""
    return 0.2 * np.sin(2 * np.pi * 300.0 * t + 1.0) * fade(t, duration)


def voice_signal(n):
    """1.0 s at 16 kHz: 0.2 s of near-silence, then a vowel-like harmonic series (f0 150 Hz
    with vibrato, harmonics to 5 kHz) and seeded white-noise bursts."""
    t = np.arange(n) / SR
    rng = np.random.default_rng(42)
    phase = 2 * np.pi * np.cumsum(150.0 + 8.0 * np.sin(2 * np.pi * 5.0 * t)) / SR
    x = np.zeros(n)
    for k in range(1, 34):
        x += (0.25 / k) * np.sin(k * phase + 0.1 * k)
    x *= np.clip((t - 0.2) / 0.05, 0.0, 1.0)
    burst = ((t > 0.55) & (t < 0.65)) | ((t > 0.85) & (t < 0.9))
    x += np.where(burst, 0.1, 0.0) * rng.standard_normal(n)
    x += 1e-4 * rng.standard_normal(n)
    return x


def short_signal(n=190):
    """190 samples of seeded noise: shorter than the STFT's 200-sample reflect padding, so
    with padding=0 numpy's repeated reflection is exercised."""
    return 0.5 * np.random.default_rng(7).standard_normal(n)


def to_i16(x):
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


def write_wav_i16(path, samples_i16, rate, channels=1):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples_i16.tobytes())


def write_wav_f32(path, samples, rate):
    """WAVE_FORMAT_IEEE_FLOAT (format tag 3), mono, with the `fact` chunk the spec asks for."""
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = (
        (3).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * 4).to_bytes(4, "little")
        + (4).to_bytes(2, "little")
        + (32).to_bytes(2, "little")
        + (0).to_bytes(2, "little")
    )
    fact = (len(samples)).to_bytes(4, "little")
    body = b"WAVE"
    body += b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"fact" + len(fact).to_bytes(4, "little") + fact
    body += b"data" + len(data).to_bytes(4, "little") + data
    with open(path, "wb") as f:
        f.write(b"RIFF" + len(body).to_bytes(4, "little") + body)


def encode(path, samples_i16, container, codec, rate=SR, **options):
    """Encode mono 16-bit samples with PyAV's FFmpeg (the same library faster-whisper decodes
    with)."""
    with av.open(path, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        for k, v in options.items():
            setattr(stream, k, v)
        frame_size = 1024
        for start in range(0, len(samples_i16), frame_size):
            chunk = samples_i16[start : start + frame_size].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def fw_decode_to_wav(src, dst):
    """faster-whisper's decode_audio (s16 mono 16 kHz, as float / 32768) saved back as s16."""
    audio = decode_audio(os.path.join(HERE, src))
    write_wav_i16(os.path.join(HERE, dst), to_i16_exact(audio), SR)
    return len(audio)


def to_i16_exact(audio):
    q = np.round(audio * 32768.0)
    assert np.array_equal(q / 32768.0, audio.astype(np.float64)), "decode_audio is not s16"
    return q.astype("<i2")


def main():
    cases = []
    fx = {n: FeatureExtractor(feature_size=n) for n in (80, 128)}
    # The filterbank itself (f32, as the extractor stores it): (80, 201) row-major.
    np.ascontiguousarray(fx[80].mel_filters).astype("<f4").tofile(
        os.path.join(HERE, "mel_filters.80.f32")
    )

    def golden(wav, n_mels, padding):
        # The samples exactly as faster-whisper reads the WAV (s16 / 32768, f32).
        audio = decode_audio(os.path.join(HERE, wav))
        feats = fx[n_mels](audio, padding=padding)
        assert feats.dtype == np.float32 and feats.shape[0] == n_mels
        name = f"{os.path.splitext(wav)[0]}.mel{n_mels}.p{padding}.f32"
        np.ascontiguousarray(feats).astype("<f4").tofile(os.path.join(HERE, name))
        cases.append(
            {
                "wav": wav,
                "n_samples": int(len(audio)),
                "n_mels": n_mels,
                "padding": padding,
                "shape": list(feats.shape),
                "features": name,
                "min": float(feats.min()),
                "max": float(feats.max()),
                "max_abs": float(np.abs(feats).max()),
            }
        )

    # --- the chirp: 16 kHz 16-bit, the same values as float32, 44.1 kHz stereo ------------
    dur = 2.5
    n16 = int(dur * SR)
    t16 = np.arange(n16) / SR
    chirp_i16 = to_i16(chirp_signal(t16, dur))
    write_wav_i16(os.path.join(HERE, "chirp.wav"), chirp_i16, SR)
    # The exact quantized values as IEEE float: decoding must give bit-identical samples.
    write_wav_f32(os.path.join(HERE, "chirp_f32.wav"), chirp_i16.astype(np.float32) / 32768.0, SR)
    golden("chirp.wav", 80, 160)
    golden("chirp.wav", 128, 160)

    n44 = int(round(dur * 44100))
    t44 = np.arange(n44) / 44100.0
    s44, d44 = chirp_signal(t44, dur), stereo_side(t44, dur)
    stereo = np.stack([to_i16(s44 + d44), to_i16(s44 - d44)], axis=1).reshape(-1)
    write_wav_i16(os.path.join(HERE, "chirp_44k1_stereo.wav"), stereo, 44100, channels=2)
    n_fw44 = fw_decode_to_wav("chirp_44k1_stereo.wav", "chirp_44k1_stereo.fw.wav")

    # --- the 1 s voice-like signal, plus compressed encodes -------------------------------
    voice_i16 = to_i16(voice_signal(SR))
    write_wav_i16(os.path.join(HERE, "voice.wav"), voice_i16, SR)
    golden("voice.wav", 80, 160)
    golden("voice.wav", 80, 0)
    encode(os.path.join(HERE, "voice.flac"), voice_i16, "flac", "flac")
    encode(os.path.join(HERE, "voice.mp3"), voice_i16, "mp3", "libmp3lame", bit_rate=64000)
    encode(os.path.join(HERE, "voice.m4a"), voice_i16, "ipod", "aac", bit_rate=64000)
    # FFmpeg's own Vorbis encoder only does stereo: the Ogg Vorbis file comes from sox
    # (libvorbis; Debian: apt-get install sox libsox-fmt-all), in repeatable mode.
    if shutil.which("sox") is None:
        raise SystemExit("sox is needed for voice.ogg: apt-get install sox libsox-fmt-all")
    subprocess.run(
        ["sox", "-R", "-D", "-V1", os.path.join(HERE, "voice.wav"), "-C", "3",
         os.path.join(HERE, "voice.ogg")],
        check=True,
    )
    compressed = {}
    for src in ("voice.flac", "voice.mp3", "voice.m4a", "voice.ogg"):
        compressed[src] = fw_decode_to_wav(src, src + ".fw.wav")

    # --- the short signal (shorter than the reflect padding) ------------------------------
    write_wav_i16(os.path.join(HERE, "short.wav"), to_i16(short_signal()), SR)
    golden("short.wav", 80, 0)
    golden("short.wav", 80, 160)

    meta = {
        "about": "faster-whisper FeatureExtractor output on the WAVs as decode_audio reads them; "
        "features are raw little-endian f32, n_mels x n_frames, mel-major. Made by make_golden.py.",
        "versions": {
            "faster_whisper": faster_whisper.__version__,
            "numpy": np.__version__,
            "av": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
            "libswresample": ".".join(map(str, av.library_versions["libswresample"])),
            "sox": subprocess.run(
                ["sox", "--version"], capture_output=True, text=True
            ).stdout.strip(),
        },
        "cases": cases,
        "fw_decoded": {
            "chirp_44k1_stereo.wav": {"file": "chirp_44k1_stereo.fw.wav", "n_samples": n_fw44},
            **{
                src: {"file": src + ".fw.wav", "n_samples": n}
                for src, n in compressed.items()
            },
        },
    }
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(HERE, p)) for p in os.listdir(HERE))
    print(f"wrote {len(cases)} cases; folder is {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
