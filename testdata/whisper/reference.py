#!/usr/bin/env python3
"""Reference Whisper transcriptions and tensors from faster-whisper / CTranslate2.

Independent of lingqiao: it only reads the CTranslate2 model directories that
`lingqiao pull` put in ~/.cache/lingqiao/models and the clips made by
make_clips.sh. Run it through make_reference.sh, which sets up the pinned venv.

Writes, next to this file:
  reference.json         transcripts (greedy and beam 5) per model, clip, mode
  tensors/tensors.json   description of the tensor files below
  tensors/*.f32          raw little-endian float32 arrays (mel, encoder, logits)

Everything runs on CPU with compute_type="float32" and a fixed thread count, and
the output is written deterministically, so a rerun rewrites the same bytes.
"""

import dataclasses
import hashlib
import inspect
import json
import os
import platform
import re
import sys

import av
import ctranslate2
import faster_whisper
import numpy as np
import tokenizers
from faster_whisper import WhisperModel, decode_audio
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

HERE = os.path.dirname(os.path.abspath(__file__))
CLIPS_DIR = os.path.join(HERE, "clips")
TENSOR_DIR = os.path.join(HERE, "tensors")
MODELS_DIR = os.environ.get(
    "LINGQIAO_MODELS_DIR", os.path.expanduser("~/.cache/lingqiao/models")
)
MODELS = ["whisper-tiny-en", "whisper-base"]
CPU_THREADS = 2
COMPUTE_TYPE = "float32"

# Decoding modes. language=None everywhere: tiny-en is English-only, so
# faster-whisper sets "en" itself (probability 1); base auto-detects.
_COMMON = dict(
    language=None,
    task="transcribe",
    temperature=0.0,  # a single temperature: no fallback
    condition_on_previous_text=True,
    without_timestamps=False,
    vad_filter=False,
    word_timestamps=False,
)
MODES = {
    "greedy": dict(beam_size=1, best_of=1, **_COMMON),
    "beam5": dict(beam_size=5, best_of=1, **_COMMON),
}

# Tensor references: one clip on one model.
TENSOR_MODEL = "whisper-tiny-en"
TENSOR_CLIP = "en_weather.wav"  # the first English 16 kHz mono clip of make_clips.sh
MEL_FULL_LIMIT = 1_000_000  # bytes: keep all 80 x 3000 mel values only below this
ENCODER_FRAMES = sorted(set(range(0, 32)) | set(range(0, 1500, 50)))

F32_LOWEST = float(np.finfo(np.float32).min)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if dataclasses.is_dataclass(value):
        return jsonable(dataclasses.asdict(value))
    return value


_NUM_LIST = re.compile(r"\[\s*((?:-?[0-9.eE+-]+,\s*)*-?[0-9.eE+-]+)\s*\]")


def dumps(obj):
    """json.dumps with indent, but lists of numbers kept on one line."""
    text = json.dumps(jsonable(obj), indent=1, ensure_ascii=False, allow_nan=False)
    return _NUM_LIST.sub(lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text) + "\n"


def write_text(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_f32(name, array):
    array = np.ascontiguousarray(array, dtype="<f4")
    path = os.path.join(TENSOR_DIR, name)
    with open(path + ".tmp", "wb") as f:
        f.write(array.tobytes())
    os.replace(path + ".tmp", path)
    return {
        "file": name,
        "dtype": "f32 little-endian",
        "shape": list(array.shape),
        "bytes": array.nbytes,
        "sha256": sha256_file(path),
    }


def stats(array):
    a = np.asarray(array, dtype=np.float64)
    kept = a[a > F32_LOWEST]
    return {
        "min": float(kept.min()),
        "max": float(kept.max()),
        "mean": float(kept.mean()),
        "l2": float(np.sqrt((kept * kept).sum())),
    }


def cpu_isa():
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return [f for f in ("sse4_1", "avx", "avx2", "fma", "avx512f", "avx512_vnni") if f in flags]


def default_options():
    sig = inspect.signature(WhisperModel.transcribe)
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if name not in ("self", "audio") and p.default is not inspect.Parameter.empty
    }


def load_model(name):
    path = os.path.join(MODELS_DIR, name)
    if not os.path.isfile(os.path.join(path, "model.bin")):
        sys.exit(f"missing model {path}; run `lingqiao pull {name}` first")
    return path, WhisperModel(
        path, device="cpu", compute_type=COMPUTE_TYPE, cpu_threads=CPU_THREADS, num_workers=1
    )


def model_info(name, path, model):
    tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    return {
        "dir": "~/.cache/lingqiao/models/" + name,
        "model_bin_sha256": sha256_file(os.path.join(path, "model.bin")),
        "config_json_sha256": sha256_file(os.path.join(path, "config.json")),
        "tokenizer_json_sha256": sha256_file(os.path.join(path, "tokenizer.json")),
        "has_preprocessor_config": os.path.isfile(os.path.join(path, "preprocessor_config.json")),
        "is_multilingual": bool(model.model.is_multilingual),
        "n_mels": int(model.model.n_mels),
        "feature_extractor": {
            "from_preprocessor_config": dict(model.feat_kwargs),
            "n_fft": model.feature_extractor.n_fft,
            "hop_length": model.feature_extractor.hop_length,
            "sampling_rate": model.feature_extractor.sampling_rate,
            "chunk_length": model.feature_extractor.chunk_length,
            "n_mels": int(model.feature_extractor.mel_filters.shape[0]),
        },
        "special_tokens": {
            "eot": tok.eot,
            "sot": tok.sot,
            "translate": tok.translate,
            "transcribe": tok.transcribe,
            "sot_lm": tok.sot_lm,
            "sot_prev": tok.sot_prev,
            "no_speech": tok.no_speech,
            "no_timestamps": tok.no_timestamps,
            "timestamp_begin": tok.timestamp_begin,
            "en": tok.language,
        },
        # suppress_tokens=[-1] as resolved by faster-whisper (non_speech_tokens
        # from its tokenizer + task/sot/no_speech tokens) and passed to
        # ctranslate2 generate(); config.json's own list for comparison.
        "suppress_tokens_resolved": list(get_suppressed_tokens(tok, [-1])),
        "config_suppress_ids": config.get("suppress_ids"),
        "config_suppress_ids_begin": config.get("suppress_ids_begin"),
    }


def transcribe(model, audio_path, mode_kwargs):
    segments, info = model.transcribe(audio_path, **mode_kwargs)
    segs = []
    for s in segments:  # a generator: decoding happens here
        segs.append(
            {
                "id": s.id,
                "seek": s.seek,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
        )
    run = {
        "language": info.language,
        "language_probability": info.language_probability,
    }
    if info.all_language_probs:
        run["top_language_probs"] = [[l, p] for l, p in info.all_language_probs[:5]]
    tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                    language=info.language)
    # The prompt of the first 30 s window (without_timestamps=False); later
    # windows get [<|startofprev|>] + the last <= 223 tokens of the previous
    # segments in front of it (condition_on_previous_text=True).
    run["prompt_first_window"] = model.get_prompt(tok, [], without_timestamps=False)
    run["duration"] = info.duration
    run["text"] = "".join(s["text"] for s in segs)
    run["segments"] = segs
    return run, info


def make_tensors(model, path, clip_sha):
    """Mel features, encoder output and first-step decoder logits for one clip."""
    os.makedirs(TENSOR_DIR, exist_ok=True)
    audio_path = os.path.join(CLIPS_DIR, TENSOR_CLIP)
    audio = decode_audio(audio_path, sampling_rate=16000)

    # As WhisperModel.transcribe / generate_segments do for the first window.
    fe = model.feature_extractor
    features = fe(audio)  # (80, n_frames), waveform padded with 160 zeros
    content_frames = features.shape[-1] - 1
    segment_size = min(fe.nb_max_frames, content_frames)
    mel = pad_or_trim(features[:, :segment_size]).astype(np.float32)  # zero-padded to 3000
    files = {}

    if mel.nbytes < MEL_FULL_LIMIT:
        mel_kept, mel_frames = mel, "all 3000 frames"
    else:
        mel_kept, mel_frames = mel[:, :200], "frames 0..199 (of 3000)"
    files["mel"] = write_f32("mel.f32", mel_kept)
    files["mel"].update(
        {
            "layout": "[n_mels=80][frame], row-major",
            "full_shape": list(mel.shape),
            "kept": mel_frames,
            "content_frames": int(segment_size),
            "description": (
                "log-mel input features exactly as faster-whisper feeds the encoder for the first "
                "30 s window: FeatureExtractor()(waveform) on the PyAV-decoded audio (s16 samples / "
                "32768, 160 zero samples appended, hann window n_fft=400 hop=160, center=True with "
                "reflect padding, last STFT frame dropped, mel filters slaney, log10(max(x,1e-10)), "
                "clamp to max-8, (x+4)/4); then features[:, :content_frames] with "
                "content_frames = n_frames - 1, zero-padded (0.0, not log-silence) to 3000 frames"
            ),
        }
    )
    files["mel"]["stats"] = stats(mel_kept)

    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
    encoded = model.model.encode(storage, to_cpu=True)
    enc = np.array(encoded)  # (1, 1500, d_model)
    files["encoder"] = write_f32("encoder.f32", enc[0, ENCODER_FRAMES, :])
    files["encoder"].update(
        {
            "layout": "[kept frame][d_model], row-major",
            "full_shape": list(enc.shape),
            "frames_kept": ENCODER_FRAMES,
            "description": "ctranslate2 Whisper.encode(mel[None], to_cpu=True) output rows at frames_kept",
        }
    )
    files["encoder"]["stats"] = stats(enc[0, ENCODER_FRAMES, :])

    # The prompt faster-whisper builds for the first window of tiny-en with
    # timestamps on: get_prompt() with no previous text = sot_sequence, which
    # for an English-only model is just <|startoftranscript|>.
    tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    prompt = model.get_prompt(tok, [], without_timestamps=False)
    suppress = list(get_suppressed_tokens(tok, [-1]))

    # (a) The first decoding step exactly as faster-whisper runs it (greedy):
    # the logits ctranslate2 returns are the ones left after its logits
    # processors, i.e. suppressed entries hold float32 lowest (-3.4028235e38).
    # ctranslate2's Whisper max_length counts prompt+generation and is halved:
    # max_length=2 gives one generated token.
    ra = model.model.generate(
        encoded, [prompt], beam_size=1, patience=1, length_penalty=1, repetition_penalty=1,
        no_repeat_ngram_size=0, max_length=2, return_scores=True, return_logits_vocab=True,
        return_no_speech_prob=True, suppress_blank=True, suppress_tokens=suppress,
        max_initial_timestamp_index=50,
    )[0]
    first_token = int(ra.sequences_ids[0][0])
    logits_fw = np.array(ra.logits[0][0]).astype(np.float32)

    # (b) Raw logits: nothing suppressed except what ctranslate2 always does
    # when the prompt does not end in <|notimestamps|> (it then suppresses
    # <|notimestamps|> at every step). Forcing the greedy first token as a
    # one-token prefix moves the "timestamp at the beginning" rule past step 0,
    # so step 0 is the raw distribution after <|startoftranscript|> and step 1
    # the raw one after <|startoftranscript|><|0.00|>.
    rb = model.model.generate(
        encoded, [prompt + [first_token]], beam_size=1, patience=1, length_penalty=1,
        repetition_penalty=1, no_repeat_ngram_size=0, max_length=4, return_scores=True,
        return_logits_vocab=True, return_no_speech_prob=True, suppress_blank=False,
        suppress_tokens=[], max_initial_timestamp_index=50,
    )[0]
    raw0 = np.array(rb.logits[0][0]).astype(np.float32)
    raw1 = np.array(rb.logits[0][1]).astype(np.float32)

    kept_a = logits_fw > F32_LOWEST
    check_max_abs = float(np.abs(logits_fw[kept_a] - raw0[kept_a]).max())
    if check_max_abs != 0.0:
        sys.exit(f"logits (a) and (b) disagree on unsuppressed entries: {check_max_abs}")

    # ctranslate2 computes no_speech_prob from the logits before any
    # suppression, so it pins the one entry (b) lacks, <|notimestamps|>:
    # p = e^l_ns / (Z + e^l_nt), Z = sum over all other tokens.
    masked = raw0.astype(np.float64)
    masked[raw0 <= F32_LOWEST] = -np.inf
    m = masked.max()
    z = np.exp(masked - m).sum()
    e_nt = np.exp(masked[tok.no_speech] - m) / ra.no_speech_prob - z
    derived_nt = float(np.log(e_nt) + m) if e_nt > 0 else None

    def describe_logits(arr, position_prompt, what):
        info = {
            "layout": "[vocab]",
            "prompt_ids": position_prompt,
            "description": what,
            "suppressed_ids": [int(i) for i in np.flatnonzero(arr <= F32_LOWEST)]
            if (arr <= F32_LOWEST).sum() < 100
            else f"{int((arr <= F32_LOWEST).sum())} ids hold -3.4028235e38 (all but kept_ids)",
            "argmax": int(arr.argmax()),
            "top5": [int(i) for i in np.argsort(-arr, kind="stable")[:5]],
            "stats_unsuppressed": stats(arr),
        }
        if (arr <= F32_LOWEST).sum() >= 100:
            info["kept_ids"] = [int(i) for i in np.flatnonzero(arr > F32_LOWEST)]
        return info

    files["logits_sot"] = write_f32("logits_sot.f32", raw0)
    files["logits_sot"].update(
        describe_logits(
            raw0, prompt,
            "raw decoder logits (before log-softmax, f32) for the first generated position, after "
            "the faster-whisper prompt; only <|notimestamps|> is suppressed (ctranslate2 always does "
            "so when timestamps are on). From generate(prompt + [first greedy token], "
            "suppress_blank=False, suppress_tokens=[], max_length=4, return_logits_vocab=True).logits[0][0]",
        )
    )
    files["logits_sot"]["notimestamps_logit_derived_from_no_speech_prob"] = derived_nt
    files["logits_sot_fw"] = write_f32("logits_sot_fw.f32", logits_fw)
    files["logits_sot_fw"].update(
        describe_logits(
            logits_fw, prompt,
            "the same position as ctranslate2 returns it inside faster-whisper's greedy decode "
            "(suppress_blank=True, faster-whisper's suppress_tokens, timestamp rules with "
            "max_initial_timestamp_index=50): only <|0.00|>..<|1.00|> survive at the first step; "
            "suppressed entries are float32 lowest. Unsuppressed entries equal logits_sot.f32 exactly.",
        )
    )
    files["logits_sot_fw"].update(
        {
            "generated_token": first_token,
            "score": float(ra.scores[0]),
            "no_speech_prob": float(ra.no_speech_prob),
        }
    )
    files["logits_ts0"] = write_f32("logits_ts0.f32", raw1)
    files["logits_ts0"].update(
        describe_logits(
            raw1, prompt + [first_token],
            "raw decoder logits for the second position (after <|startoftranscript|> and the "
            "greedy first token), same call as logits_sot.f32, .logits[0][1]; "
            "only <|notimestamps|> suppressed",
        )
    )
    files["logits_ts0"]["generated_token"] = int(rb.sequences_ids[0][-1])

    total = sum(f["bytes"] for f in files.values())
    return {
        "generator": "testdata/whisper/reference.py (make_reference.sh)",
        "model": TENSOR_MODEL,
        "clip": TENSOR_CLIP,
        "clip_sha256": clip_sha,
        "audio_samples_16k": int(audio.shape[0]),
        "audio_decode": "faster_whisper.decode_audio (PyAV, s16 mono 16 kHz) / 32768.0",
        "compute_type": COMPUTE_TYPE,
        "device": "cpu",
        "cpu_threads": CPU_THREADS,
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "numpy": np.__version__,
        "prompt_ids": prompt,
        "ctranslate2_logits_note": (
            "Whisper.generate(return_logits_vocab=True) returns per-step logits (not log-probs) "
            "taken after the logits processors; suppressed entries are float32 lowest, not -inf."
        ),
        "total_bytes": total,
        "tensors": files,
    }


def main():
    with open(os.path.join(HERE, "clips.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    clips = manifest["clips"]

    defaults = default_options()
    print("faster-whisper", faster_whisper.__version__, "ctranslate2", ctranslate2.__version__)
    print("default WhisperModel.transcribe options:")
    for k, v in defaults.items():
        print(f"  {k} = {v!r}")

    clip_meta = {}
    for c in clips:
        p = os.path.join(CLIPS_DIR, c["file"])
        if not os.path.isfile(p):
            sys.exit(f"missing {p}; run make_clips.sh first")
        with av.open(p) as container:
            s = container.streams.audio[0]
            rate, channels, codec = s.rate, s.channels, s.codec_context.name
        clip_meta[c["file"]] = {
            "sha256": sha256_file(p),
            "bytes": os.path.getsize(p),
            "language": c["language"],
            "spoken_text": c["text"],
            "format": c["format"],
            "codec": codec,
            "sample_rate": rate,
            "channels": channels,
            "samples_16k": int(decode_audio(p, sampling_rate=16000).shape[0]),
        }

    ref = {
        "generator": "testdata/whisper/reference.py (make_reference.sh)",
        "independent_of_lingqiao": True,
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "numpy": np.__version__,
        "av": av.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
        "device": "cpu",
        "compute_type": COMPUTE_TYPE,
        "cpu_threads": CPU_THREADS,
        "cpu_isa": cpu_isa(),
        "ctranslate2_cpu_compute_types": sorted(ctranslate2.get_supported_compute_types("cpu")),
        "default_transcribe_options": defaults,
        "modes": MODES,
        "notes": [
            "text = ''.join(segment.text); segment texts keep their leading space",
            "tokens are the ids of one segment, timestamps included (ids >= timestamp_begin)",
            "tiny-en: English clips only; base: all clips, language auto-detected on the first 30 s",
            "with a single temperature, compression_ratio_threshold/log_prob_threshold cannot "
            "trigger a fallback; no_speech_threshold (0.6, with log_prob_threshold -1.0) can still "
            "skip a window",
            "faster-whisper passes max_length=448 to ctranslate2 Whisper.generate, which caps the "
            "decoding length at min(max_length / 2, max_length - prompt tokens): at most 224 tokens "
            "per 30 s window",
            "suppress_tokens passed to ctranslate2 = models[m].suppress_tokens_resolved (equal to "
            "config.json suppress_ids); suppress_blank suppresses config suppress_ids_begin "
            "(' ' and <|endoftext|>) at the first generated position; with timestamps on, "
            "ctranslate2 also suppresses <|notimestamps|> at every step, allows only "
            "<|0.00|>..<|1.00|> first (max_initial_timestamp_index 50) and applies the usual "
            "timestamp pairing / monotonicity / timestamp-probability rules",
        ],
        "clips": clip_meta,
        "models": {},
        "results": {},
    }

    tensors = None
    for name in MODELS:
        path, model = load_model(name)
        info = model_info(name, path, model)
        results = {}
        for c in clips:
            if not model.model.is_multilingual and c["language"] != "en":
                continue
            audio_path = os.path.join(CLIPS_DIR, c["file"])
            results[c["file"]] = {}
            for mode, kwargs in MODES.items():
                run, tinfo = transcribe(model, audio_path, kwargs)
                results[c["file"]][mode] = run
                opts = dataclasses.asdict(tinfo.transcription_options)
                info.setdefault("effective_transcription_options", {}).setdefault(mode, opts)
                print(f"{name:16} {c['file']:17} {mode:6} [{run['language']} "
                      f"{run['language_probability']:.3f}] {run['text'].strip()}")
        ref["models"][name] = info
        ref["results"][name] = results
        if name == TENSOR_MODEL:
            tensors = make_tensors(model, path, clip_meta[TENSOR_CLIP]["sha256"])
        del model

    write_text(os.path.join(HERE, "reference.json"), dumps(ref))
    write_text(os.path.join(TENSOR_DIR, "tensors.json"), dumps(tensors))
    print("wrote reference.json and tensors/ (%d bytes of tensors)" % tensors["total_bytes"])


if __name__ == "__main__":
    main()
