"""Ours against llama.cpp in one run: same GGUF, same prompt, same thread count.

For each model: `lingqiao run` (prompt and generation tokens/s from its stderr stats) and
llama.cpp through llama-cpp-python (timed around llama_decode of the prompt, then 64
greedy single-token decodes), alternating so both see the machine in the same state.
Writes bench/results/<date>-compare-llamacpp.csv and prints the ratios.

Run from the repository root after `cargo build --release`:
    python3 bench/compare_llamacpp.py [--threads 2] [--reps 2]
Needs llama-cpp-python (tools/reference/requirements.txt) and the models in the cache.
This is a first look for issue 2's note; issue 3 brings `lingqiao bench`.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import llama_cpp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("LINGQIAO_HOME", Path.home() / ".cache" / "lingqiao")) / "models"
FILES = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
    "qwen05": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
}
N_GEN = 64


def prompt_text() -> str:
    m = json.loads((ROOT / "testdata/logits/qwen05/manifest.json").read_text())
    return next(p["text"] for p in m["prompts"] if p["name"] == "long")


def ours(key: str, prompt: str, threads: int) -> tuple[int, float, float]:
    r = subprocess.run([str(ROOT / "target/release/lingqiao"), "run", "-m", key, "-p", prompt, "-n", str(N_GEN),
                        "--temp", "0", "-t", str(threads)], capture_output=True, text=True, check=True)
    pp = re.search(r"prompt eval\s*=.*?/\s*(\d+) tokens \(\s*([\d.]+) tokens/s", r.stderr)
    tg = re.search(r"generation\s*=.*?\(\s*([\d.]+) tokens/s", r.stderr)
    return int(pp.group(1)), float(pp.group(2)), float(tg.group(1))


def llamacpp(key: str, prompt: str, threads: int) -> tuple[int, float, float]:
    llm = llama_cpp.Llama(model_path=str(MODELS / FILES[key]), n_ctx=2048, n_batch=512, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    for _ in range(N_GEN):
        lg = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
        llm.eval([int(lg.argmax())])
    t2 = time.perf_counter()
    # Same convention as ours: generation rate over the decode steps.
    return len(ids), len(ids) / (t1 - t0), N_GEN / (t2 - t1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    prompt = prompt_text()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    date = datetime.date.today().isoformat()
    rows = []
    for key in FILES:
        for rep in range(a.reps):
            for runtime, fn in (("lingqiao", ours), ("llama.cpp", llamacpp)):
                n, pp, tg = fn(key, prompt, a.threads)
                rows.append({"date": date, "cpu": cpu, "threads": a.threads, "model": key, "runtime": runtime,
                             "rep": rep, "prompt_tokens": n, "pp_tok_s": round(pp, 2), "gen_tokens": N_GEN,
                             "tg_tok_s": round(tg, 2)})
                print(rows[-1], flush=True)
    out = ROOT / "bench/results" / f"{date}-compare-llamacpp.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for key in FILES:
        def mean(rt, col):
            v = [r[col] for r in rows if r["model"] == key and r["runtime"] == rt]
            return sum(v) / len(v)
        print(f"{key}: pp {mean('lingqiao', 'pp_tok_s'):.1f} / {mean('llama.cpp', 'pp_tok_s'):.1f} "
              f"({mean('lingqiao', 'pp_tok_s') / mean('llama.cpp', 'pp_tok_s'):.2f}x), "
              f"tg {mean('lingqiao', 'tg_tok_s'):.1f} / {mean('llama.cpp', 'tg_tok_s'):.1f} "
              f"({mean('lingqiao', 'tg_tok_s') / mean('llama.cpp', 'tg_tok_s'):.2f}x)")
    print("wrote", out)


if __name__ == "__main__":
    main()
