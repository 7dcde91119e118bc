#!/usr/bin/env python3
"""Generate testdata/tokenizer/golden_<key>.json: llama.cpp's tokenizer output for every
entry of testdata/tokenizer/corpus.jsonl, the reference lingqiao-tokenizer must match.

For each model key (smollm2, gemma3, qwen05), via llama-cpp-python's C API on a
vocab-only load:
  - per corpus entry (one JSON string per line):
      "a": llama_tokenize(text, add_special=True,  parse_special=False)
      "p": llama_tokenize(text, add_special=False, parse_special=True)
      "da": llama_detokenize("a" ids, remove_special=False, unparse_special=False)
      "dp": llama_detokenize("p" ids, remove_special=False, unparse_special=True)
    (detokenized bytes as UTF-8 with U+FFFD for invalid sequences);
  - "pieces": llama_token_to_piece(id, lstrip=0, special=True/False) as hex for ~500 ids:
    the first 300, every control/user-defined/byte-looking token among a spread
    sample, and evenly spaced ids across the vocab, plus the last id;
  - "eog": every id with llama_vocab_is_eog; "control": ids with llama_vocab_is_control;
    bos/eos ids and llama_vocab_get_add_bos/add_eos;
  - "long": the corpus entries joined with "\\n", repeated to >= 100,000 bytes, tokenized
    with add_special=False, parse_special=False: its token count and a 64-bit rolling hash
    h = (h * 1000003 + id + 1) mod 2**64 over the ids.

Variants (golden_<variant>.json, same fields): pre-tokenizer types and flags that no
installed model uses, checked on a real vocabulary by rewriting one model's metadata
into a temporary vocab-only GGUF (no tensors; nothing of it is committed):
  smollm2 vocab+merges with tokenizer.ggml.pre = "llama-bpe", "gpt-2", "default",
  "deepseek-r1-qwen", and gemma3 with tokenizer.ggml.add_space_prefix = true.
The Rust test builds the same variants with Tokenizer::from_spec.

Run (from the repo root):
    pip install -r tools/reference/requirements.txt   # llama-cpp-python build flags: see its header
    python3 tools/reference/gen_tokenizer_golden.py [key-or-variant ...]
Models are looked up in $LINGQIAO_MODELS or ~/.cache/lingqiao/models.
Needs: llama-cpp-python==0.3.36 (its vendored llama.cpp is the reference), gguf==0.19.0.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

import llama_cpp

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "tokenizer"
CORPUS = OUT / "corpus.jsonl"
MODELS_DIR = Path(os.environ.get("LINGQIAO_MODELS", Path.home() / ".cache" / "lingqiao" / "models"))

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
    "qwen05": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
}
LONG_MIN_BYTES = 100_000


def tokenize(vocab, data: bytes, add_special: bool, parse_special: bool) -> list[int]:
    n_max = len(data) + 16
    buf = (llama_cpp.llama_token * n_max)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, parse_special)
    if n < 0:
        n_max = -n
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, parse_special)
    assert n >= 0, n
    return list(buf[:n])


def piece(vocab, tid: int, special: bool) -> bytes:
    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, tid, buf, size, 0, special)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def detokenize(vocab, ids: list[int], unparse_special: bool) -> str:
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 16 + 8 * len(ids)
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, unparse_special)
        if n >= 0:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = -n


def rolling_hash(ids: list[int]) -> int:
    h = 0
    for t in ids:
        h = (h * 1000003 + t + 1) % (1 << 64)
    return h


def sample_ids(vocab, n_vocab: int) -> list[int]:
    ids = set(range(min(300, n_vocab)))
    step = max(1, n_vocab // 150)
    ids.update(range(0, n_vocab, step))
    ids.add(n_vocab - 1)
    # special and byte tokens spread over the vocab (control ids are what decode hides)
    specials = [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_control(vocab, t)]
    ids.update(specials[:: max(1, len(specials) // 60)][:60])
    ids.update(specials[-5:])
    for b in (0x00, 0x0A, 0x20, 0x41, 0x7F, 0x80, 0xC3, 0xE4, 0xF0, 0xFF):
        t = tokenize(vocab, f"<0x{b:02X}>".encode(), False, True)
        if len(t) == 1:
            ids.add(t[0])
    return sorted(ids)


VARIANTS = {
    # name: (base model key, metadata overrides)
    "smollm2_llama-bpe": ("smollm2", {"tokenizer.ggml.pre": "llama-bpe"}),
    "smollm2_gpt-2": ("smollm2", {"tokenizer.ggml.pre": "gpt-2"}),
    "smollm2_default": ("smollm2", {"tokenizer.ggml.pre": "default"}),
    "smollm2_deepseek-r1-qwen": ("smollm2", {"tokenizer.ggml.pre": "deepseek-r1-qwen"}),
    "gemma3_space-prefix": ("gemma3", {"tokenizer.ggml.add_space_prefix": True}),
}


def write_variant(src: Path, overrides: dict, dest: Path) -> None:
    """Copy every metadata key of `src` (no tensors) into `dest`, with overrides."""
    import gguf

    reader = gguf.GGUFReader(str(src))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    writer = gguf.GGUFWriter(str(dest), arch=arch)
    done = {"general.architecture"}
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in done:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        val = overrides.get(name, field.contents())
        writer.add_key_value(name, val, vtype, sub_type=sub)
        done.add(name)
    for name, val in overrides.items():
        if name not in done:
            vt = gguf.GGUFValueType.BOOL if isinstance(val, bool) else gguf.GGUFValueType.STRING
            writer.add_key_value(name, val, vt)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(keys: list[str]) -> None:
    entries = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").split("\n") if line]
    joined = "\n".join(entries)
    reps = -(-LONG_MIN_BYTES // len(joined.encode()))
    long_text = "\n".join(entries * reps)
    llama_cpp.llama_backend_init()
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    for key in keys:
        if key in VARIANTS:
            base, overrides = VARIANTS[key]
            path = tmp / f"{key}.gguf"
            write_variant(MODELS_DIR / MODELS[base], overrides, path)
            model_name = MODELS[base]
        else:
            path = MODELS_DIR / MODELS[key]
            model_name = MODELS[key]
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        out_entries = []
        for text in entries:
            data = text.encode("utf-8")
            a = tokenize(vocab, data, True, False)
            p = tokenize(vocab, data, False, True)
            out_entries.append({
                "a": a,
                "p": p,
                "da": detokenize(vocab, a, False),
                "dp": detokenize(vocab, p, True),
            })
        pieces = {
            str(t): [piece(vocab, t, True).hex(), piece(vocab, t, False).hex()]
            for t in sample_ids(vocab, n_vocab)
        }
        long_ids = tokenize(vocab, long_text.encode("utf-8"), False, False)
        golden = {
            "model": model_name,
            "overrides": VARIANTS.get(key, (None, {}))[1],
            "llama_cpp_python": llama_cpp.__version__,
            "n_vocab": n_vocab,
            "bos": llama_cpp.llama_vocab_bos(vocab),
            "eos": llama_cpp.llama_vocab_eos(vocab),
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
            "eog": [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)],
            "control": [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_control(vocab, t)],
            "long": {"bytes": len(long_text.encode()), "n_ids": len(long_ids), "hash": str(rolling_hash(long_ids))},
            "pieces": pieces,
            "entries": out_entries,
        }
        dest = OUT / f"golden_{key}.json"
        with dest.open("w", encoding="utf-8") as f:
            json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"{key}: {len(entries)} entries, {len(pieces)} pieces, long {len(long_ids)} ids -> {dest}")
        del llm
    llama_cpp.llama_backend_free()


if __name__ == "__main__":
    main(sys.argv[1:] or [*MODELS, *VARIANTS])
