"""How far llama.cpp strays from itself: the bar for our golden logits tests.

The golden fixtures (gen_logits_golden.py) come from llama.cpp with flash attention
off. llama.cpp's flash-attention path computes the same model with a different order of
float operations. This script runs that path over the same prompts, teacher-forced on the
reference's greedy tokens, and records per model:

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

import json
import os
import sys
from pathlib import Path

import llama_cpp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("LINGQIAO_HOME", Path.home() / ".cache" / "lingqiao")) / "models"


def calibrate(key: str) -> dict:
    d = ROOT / "testdata" / "logits" / key
    m = json.loads((d / "manifest.json").read_text())
    s = m["settings"]
    llm = llama_cpp.Llama(model_path=str(MODELS / Path(m["model_file"]).name), n_ctx=s["n_ctx"],
                          n_batch=s["n_batch"], n_threads=s["n_threads"], flash_attn=True, verbose=False)

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
        "compared": "llama.cpp flash_attn=True vs the flash_attn=False reference, same settings otherwise",
        "reference": m["reference"],
        "max_abs_logit_diff": max_abs,
        "max_margin_diff": max_margin,
        "flipped_steps": flips,
        "generator": "tools/reference/calibrate_llamacpp.py",
    }


def main() -> None:
    for key in sys.argv[1:] or ["smollm2", "gemma3", "qwen05"]:
        c = calibrate(key)
        (ROOT / "testdata" / "logits" / key / "calibration.json").write_text(json.dumps(c, indent=1) + "\n")
        print(key, json.dumps(c))


if __name__ == "__main__":
    main()
