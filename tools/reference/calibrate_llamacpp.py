"""How far llama.cpp strays from itself: the bar for our golden logits tests.

The golden fixtures (gen_logits_golden.py) come from llama.cpp with flash attention
off and the prompt evaluated as one batch. llama.cpp computes the same model with a
different order of float operations in two other configurations a user may run:

  - flash_attn: its flash-attention path;
  - token_by_token: the prompt fed one token per batch (n_batch = n_ubatch = 1), so every
    product runs through the one-token dot kernels instead of the batched matrix kernels
    (llamafile sgemm, repacked gemm) the reference's prompt went through.

  - perturbed: the reference's own settings, with the prompt given as embedding rows
    (dequantized by gguf-py, scaled as llama.cpp scales token inputs) multiplied by
    (1 + e) for e in PERTURBATIONS. With e = 0 this reproduces the reference bit for bit
    (checked below); a change of 1e-7..1e-6 relative, far below any rounding that matters,
    shows how far the model's chaos alone moves the logits. Only the prompt's last logits
    are compared for these (no greedy steps).

This script runs each variant over the same prompts, teacher-forced on the reference's
greedy tokens, and records per model and variant, and as the maximum over variants:

  - max |logit difference| at the last prompt position (over all prompts),
  - max |top-2 margin difference| over all greedy steps,
  - the greedy steps whose argmax flips, with the reference margin there.

crates/model/tests/golden_llamacpp.rs reads testdata/logits/<key>/calibration.json: a
step counts as decisive when the reference's margin is above llama.cpp's own margin
spread (at least 0.5), and logits must agree within 1.5x llama.cpp's own spread. A bar
that llama.cpp itself would fail cannot be ours.

Run from the repository root: python3 tools/reference/calibrate_llamacpp.py [key ...]
Needs: llama-cpp-python 0.3.36 (see requirements.txt), numpy, the models in
~/.cache/lingqiao/models.
"""

import ctypes
import json
import os
import sys
from pathlib import Path

import gguf
import llama_cpp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("LINGQIAO_HOME", Path.home() / ".cache" / "lingqiao")) / "models"


VARIANTS = {
    "flash_attn": lambda s: dict(n_batch=s["n_batch"], flash_attn=True),
    "token_by_token": lambda s: dict(n_batch=1, n_ubatch=1, flash_attn=False),
}


def calibrate_variant(key: str, variant: str) -> dict:
    d = ROOT / "testdata" / "logits" / key
    m = json.loads((d / "manifest.json").read_text())
    s = m["settings"]
    llm = llama_cpp.Llama(model_path=str(MODELS / Path(m["model_file"]).name), n_ctx=s["n_ctx"],
                          n_threads=s["n_threads"], verbose=False, **VARIANTS[variant](s))

    def last():
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32).copy()

    max_abs, max_margin, flips = 0.0, 0.0, []
    for p in m["prompts"]:
        ref = np.fromfile(d / p["logits_file"], dtype="<f4")
        llm.reset()
        llm.eval(p["prompt_ids"])
        max_abs = max(max_abs, float(np.abs(last() - ref).max()))
        for i, (tok, margin) in enumerate(zip(p["greedy_ids"], p["greedy_margins"])):
            lg = last()
            ours = float(lg[tok] - np.delete(lg, tok).max())
            max_margin = max(max_margin, abs(ours - margin))
            if ours < 0:
                flips.append({"prompt": p["name"], "step": i, "reference_margin": margin})
            llm.eval([tok])
    return {
        "max_abs_logit_diff": max_abs,
        "max_margin_diff": max_margin,
        "flipped_steps": flips,
    }


PERTURBATIONS = [1e-7, -1e-7, 1e-6, -1e-6]


def embedding_rows(model_path: Path, ids: list[int]) -> np.ndarray:
    """The token_embd rows of `ids`, dequantized by gguf-py, scaled as llama.cpp scales
    token inputs for the architecture (Gemma: sqrt(n_embd), as f32)."""
    r = gguf.GGUFReader(str(model_path))
    t = next(t for t in r.tensors if t.name == "token_embd.weight")
    n_embd = int(t.shape[0])
    rows = np.stack([gguf.quants.dequantize(t.data[i], t.tensor_type).reshape(-1) for i in ids])
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    if arch.startswith("gemma"):
        rows = rows.astype(np.float32) * np.float32(np.sqrt(np.float32(n_embd)))
    return np.ascontiguousarray(rows, dtype=np.float32)


def calibrate_perturbed(key: str) -> dict:
    d = ROOT / "testdata" / "logits" / key
    m = json.loads((d / "manifest.json").read_text())
    s = m["settings"]
    path = MODELS / Path(m["model_file"]).name
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=s["n_ctx"], n_batch=s["n_batch"],
                          n_threads=s["n_threads"], flash_attn=False, verbose=False)
    ctx, n_batch = llm._ctx.ctx, s["n_batch"]

    def last_logits_of(embd: np.ndarray) -> np.ndarray:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        n, width = embd.shape
        for c0 in range(0, n, n_batch):
            chunk = np.ascontiguousarray(embd[c0:c0 + n_batch])
            k = chunk.shape[0]
            batch = llama_cpp.llama_batch_init(k, width, 1)
            try:
                batch.n_tokens = k
                ctypes.memmove(batch.embd, chunk.ctypes.data, chunk.nbytes)
                for i in range(k):
                    batch.pos[i] = c0 + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = c0 + i == n - 1
                assert llama_cpp.llama_decode(ctx, batch) == 0, "llama_decode failed"
            finally:
                llama_cpp.llama_batch_free(batch)
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32).copy()

    per_e = {}
    for p in m["prompts"]:
        ref = np.fromfile(d / p["logits_file"], dtype="<f4")
        embd = embedding_rows(path, p["prompt_ids"])
        same = last_logits_of(embd)
        assert np.array_equal(same, ref), f"{key}/{p['name']}: the embedding path does not reproduce the reference"
        for e in PERTURBATIONS:
            got = last_logits_of((embd * np.float32(1.0 + e)).astype(np.float32))
            per_e[e] = max(per_e.get(e, 0.0), float(np.abs(got - ref).max()))
    return {
        "max_abs_logit_diff": max(per_e.values()),
        "max_abs_logit_diff_per_perturbation": {str(e): v for e, v in per_e.items()},
        "max_margin_diff": None,
        "flipped_steps": None,
    }


def calibrate(key: str) -> dict:
    m = json.loads((ROOT / "testdata" / "logits" / key / "manifest.json").read_text())
    variants = {v: calibrate_variant(key, v) for v in VARIANTS}
    variants["perturbed"] = calibrate_perturbed(key)
    return {
        "compared": "llama.cpp variants (flash_attn: flash attention on; token_by_token: "
                    "n_batch = n_ubatch = 1, flash attention off; perturbed: the reference's "
                    "settings with the prompt's embeddings times 1 + e) vs the reference "
                    "(flash attention off, the prompt as one batch); the top-level figures "
                    "are the maximum over the variants",
        "reference": m["reference"],
        "max_abs_logit_diff": max(v["max_abs_logit_diff"] for v in variants.values()),
        "max_margin_diff": max(v["max_margin_diff"] for v in variants.values()
                               if v["max_margin_diff"] is not None),
        "variants": variants,
        "generator": "tools/reference/calibrate_llamacpp.py",
    }


def main() -> None:
    for key in sys.argv[1:] or ["smollm2", "gemma3", "qwen05"]:
        c = calibrate(key)
        (ROOT / "testdata" / "logits" / key / "calibration.json").write_text(json.dumps(c, indent=1) + "\n")
        print(key, json.dumps(c))


if __name__ == "__main__":
    main()
