#!/usr/bin/env python3
"""Generate testdata/quantize-files/: what llama-quantize writes, and what llama.cpp
generates from quantized files, the references for `lingqiao quantize` (crates/quantize/tests/).

For each model key (smollm2, qwen05; qwen3tiny is the committed F32 model of
testdata/qwen3-tiny, quantized as it is, without step 1):
  1. An F16 "original": `lingqiao quantize <cached model> F16` (the cache holds only
     quantized files). Its sha256 is recorded so the tests know they start from the same
     bytes. As an independent check of that step, every tensor our F16 file converted is
     compared with gguf-py's own dequantization of the cached file, rounded to float16 by
     numpy (recorded as f16_vs_gguf_py).
  2. llama-quantize (the llama.cpp build at ~/.cache/lingqiao/llamacpp/build/bin) turns
     the F16 file into each of TYPES (ALL_TYPES for qwen3tiny) with 2 threads; gguf-py reads each output and we record
     general.file_type, the tensors in file order (name, ggml dims, type, sha256 of the
     data) and the whole file's sha256 -> <key>/<TYPE>.json. For qwen3tiny also its Q8_0
     file requantized to Q4_K_M (--allow-requantize) -> qwen3tiny/requant-Q8_0-Q4_K_M.json.
For smollm2 also (-> smollm2/generate.json), greedy decoding by llama.cpp (llama-cpp-python,
argmax of the raw logits, lowest id on ties, 16 tokens, PROMPT with llama.cpp's BOS rule):
  3. on OUR files: `lingqiao quantize F16 -> Q4_K_M` and `-> Q8_0`, their sha256 recorded
     so the tests can check they reproduce the very files llama.cpp ran;
  4. on llama-quantize's own Q4_K_M file (sha256 recorded too).
Offline comparison (printed, and stored under "offline"): `lingqiao run` greedy text on
llama-quantize's Q4_K_M files of smollm2 and qwen05 next to llama.cpp's greedy text.

Run from the repo root after `cargo build --release` (the script calls target/release/
lingqiao): `python3 tools/reference/gen_quantize_golden.py [key ...]` (default: all). Needs gguf==0.19.0, numpy, llama-cpp-python==0.3.36 (tools/reference/
requirements.txt). The qwen05 F16 file (~1 GB) lives in a temporary directory removed at
the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import gguf

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "quantize-files"
LINGQIAO = ROOT / "target" / "release" / "lingqiao"
LLAMA_BIN = Path.home() / ".cache" / "lingqiao" / "llamacpp" / "build" / "bin"
MODELS_DIR = Path(os.environ.get("LINGQIAO_MODELS", Path.home() / ".cache" / "lingqiao" / "models"))
MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen05": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen3tiny": str(ROOT / "testdata" / "qwen3-tiny" / "model.gguf"),
}
TYPES = ["Q4_K_M", "Q5_K_M", "Q3_K_M", "Q2_K", "Q4_0", "Q8_0", "Q6_K"]
# The tiny model is quick to quantize: every type we write.
ALL_TYPES = TYPES + ["Q4_1", "Q5_0", "Q5_1", "Q3_K_S", "Q3_K_L", "Q4_K_S", "Q5_K_S", "F16",
                     "BF16", "F32"]
THREADS = 2
PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
N_GREEDY = 16


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_bytes(reader: gguf.GGUFReader, t) -> bytes:
    return bytes(reader.data[t.data_offset : t.data_offset + t.n_bytes])


def field_u32(reader: gguf.GGUFReader, key: str) -> int:
    f = reader.fields[key]
    return int(f.parts[f.data[0]][0])


def run(cmd: list) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{cmd}: exit {p.returncode}\n{p.stderr[-3000:]}")
    return p


def make_f16(src: Path, dst: Path) -> dict:
    run([LINGQIAO, "quantize", src, dst, "F16", "-t", THREADS])
    # Independent check: gguf-py's dequantization of the source, rounded to f16 by numpy.
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    ours = {t.name: t for t in b.tensors}
    n_checked = n_diff = 0
    for t in a.tensors:
        o = ours[t.name]
        if o.tensor_type != gguf.GGMLQuantizationType.F16 or t.tensor_type == o.tensor_type:
            continue
        ref = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        ref = ref.reshape(-1).astype(np.float16).view(np.uint16)
        got = np.frombuffer(tensor_bytes(b, o), dtype=np.uint16)
        n_checked += ref.size
        n_diff += int(np.count_nonzero(ref != got))
    return {
        "made_by": f"lingqiao quantize {src.name} F16 -t {THREADS}",
        "sha256": sha256_file(dst),
        "size": dst.stat().st_size,
        "f16_vs_gguf_py": {"elements_checked": n_checked, "elements_different": n_diff},
    }


def llama_quantize(f16: Path, out: Path, ty: str, *flags: str) -> dict:
    t0 = time.time()
    run([LLAMA_BIN / "llama-quantize", *flags, f16, out, ty, THREADS])
    seconds = time.time() - t0
    r = gguf.GGUFReader(out)
    tensors = []
    for t in r.tensors:
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "type": gguf.GGMLQuantizationType(t.tensor_type).name,
            "sha256": hashlib.sha256(tensor_bytes(r, t)).hexdigest(),
        })
    return {
        "type": ty,
        "made_by": " ".join(["llama-quantize", *flags, "<input>", "<out>", ty, str(THREADS)]),
        "file_type": field_u32(r, "general.file_type"),
        "quantization_version": field_u32(r, "general.quantization_version"),
        "sha256": sha256_file(out),
        "size": out.stat().st_size,
        "seconds": round(seconds, 2),
        "tensors": tensors,
    }


def greedy(path: Path) -> dict:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_batch=256, n_threads=2,
                          n_threads_batch=2, seed=1234, logits_all=False, flash_attn=False,
                          verbose=False)
    ids = llm.tokenize(PROMPT.encode("utf-8"), add_bos=True, special=False)
    llm.eval(ids)
    out, margins = [], []
    for step in range(N_GREEDY):
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32).copy()
        tok = int(np.argmax(logits))
        top = np.partition(logits, -2)[-2:]
        out.append(tok)
        margins.append(round(float(top[1] - top[0]), 6))
        if step + 1 < N_GREEDY:
            llm.eval([tok])
    text = llm.detokenize(out, special=False).decode("utf-8", errors="replace")
    del llm
    return {"prompt_ids": [int(i) for i in ids], "greedy_ids": out, "greedy_margins": margins,
            "greedy_text": text}


def lingqiao_text(path: Path) -> str:
    p = run([LINGQIAO, "run", "-m", path, "-p", PROMPT, "-n", N_GREEDY, "--temp", "0",
             "-t", THREADS])
    return p.stdout


def main() -> None:
    if not LINGQIAO.exists():
        sys.exit(f"build first: {LINGQIAO} is missing (cargo build --release)")
    keys = sys.argv[1:] or list(MODELS)
    offline_path = OUT / "offline.json"
    offline = json.loads(offline_path.read_text()) if offline_path.exists() else {}
    for key in keys:
        file = MODELS[key]
        src = MODELS_DIR / file
        out_dir = OUT / key
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"lingqiao-quant-{key}-") as tmp:
            tmp = Path(tmp)
            if key == "qwen3tiny":
                f16 = src  # already F32: quantized as it is
            else:
                f16 = tmp / f"{key}-f16.gguf"
                info = make_f16(src, f16)
                info["source"] = file
                (out_dir / "f16.json").write_text(json.dumps(info, indent=1) + "\n")
                print(key, "F16", info["sha256"], info["f16_vs_gguf_py"], flush=True)
            for ty in ALL_TYPES if key == "qwen3tiny" else TYPES:
                out = tmp / f"llama-{ty}.gguf"
                rec = llama_quantize(f16, out, ty)
                (out_dir / f"{ty}.json").write_text(json.dumps(rec, indent=1) + "\n")
                print(key, ty, rec["sha256"], f"{rec['seconds']} s", flush=True)
                if ty == "Q4_K_M" and key != "qwen3tiny":
                    ref = greedy(out)
                    offline[key] = {
                        "file": f"llama-quantize {key} F16 -> Q4_K_M",
                        "llama_cpp_text": ref["greedy_text"],
                        "lingqiao_text": lingqiao_text(out),
                    }
                    if key == "smollm2":
                        llama_q4km = {"sha256": rec["sha256"], **ref}
                if key == "qwen3tiny" and ty == "Q8_0":
                    # An already-quantized input: llama-quantize --allow-requantize.
                    rq = tmp / "requant.gguf"
                    rec = llama_quantize(out, rq, "Q4_K_M", "--allow-requantize")
                    (out_dir / "requant-Q8_0-Q4_K_M.json").write_text(json.dumps(rec, indent=1) + "\n")
                    print(key, "Q8_0 -> Q4_K_M", rec["sha256"], flush=True)
                if ty != "Q4_K_M" or key != "smollm2":
                    out.unlink()
            if key == "smollm2":
                ours = {}
                for ty in ["Q4_K_M", "Q8_0"]:
                    out = tmp / f"ours-{ty}.gguf"
                    run([LINGQIAO, "quantize", f16, out, ty, "-t", THREADS])
                    ours[ty] = {"made_by": f"lingqiao quantize <F16> <out> {ty} -t {THREADS}",
                                "sha256": sha256_file(out), **greedy(out)}
                    out.unlink()
                gen = {
                    "prompt": PROMPT,
                    "n_greedy": N_GREEDY,
                    "reference": "llama-cpp-python 0.3.36, argmax of raw logits (lowest id on "
                                 "ties), n_ctx 256, 2 threads, flash attention off",
                    "ours": ours,
                    "llama_quantize_Q4_K_M": llama_q4km,
                }
                (out_dir / "generate.json").write_text(json.dumps(gen, indent=1) + "\n")
    offline_path.write_text(json.dumps(offline, indent=1, ensure_ascii=False) + "\n")
    for key, o in offline.items():
        print(f"{key}: llama.cpp {o['llama_cpp_text']!r}\n{key}: lingqiao  {o['lingqiao_text']!r}")


if __name__ == "__main__":
    main()
