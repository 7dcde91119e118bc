#!/usr/bin/env python3
"""Generate testdata/logits/<key>/: llama.cpp's logits and greedy continuations for
the real models, the reference the lingqiao model tests compare against.

For each model key (smollm2, gemma3, qwen05) and each prompt:
  - tokenize as `llama-cli -p` does: llama_tokenize(text, add_special=True,
    parse_special=<True only for chat-formatted prompts>); with add_special=True
    llama.cpp itself decides from the GGUF metadata whether to prepend BOS /
    append EOS (recorded per model as vocab_add_bos / vocab_add_eos);
  - evaluate the prompt, keep the float32 logits of the LAST prompt position
    (full vocab) as <name>.f32 (raw little-endian float32);
  - greedy-decode one token at a time: argmax of llama.cpp's logits (lowest id
    on ties), stopping early only on an end-of-generation token (kept in
    greedy_ids, flagged in stopped_on_eog). greedy_margins[i] is the top1-top2
    logit gap at step i, so near-ties (e.g. < 0.1) are visible to test readers.
For qwen05 there are also chat_zh / chat_en: the GGUF chat template rendered the
way llama-cpp-python's create_chat_completion does (Jinja2ChatFormatter, one
user message, add_generation_prompt), tokenized with add_special=False (the
formatter reports added_special=True) and parse_special=True, 48 greedy tokens.

Run (from the repo root; models from `lingqiao`'s cache):
    pip install -r tools/reference/requirements.txt   # llama-cpp-python build flags: see its header
    python3 tools/reference/gen_logits_golden.py [key ...]
Models are looked up in $LINGQIAO_MODELS or ~/.cache/lingqiao/models.
Needs: llama-cpp-python==0.3.36, numpy, jinja2.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "logits"
MODELS_DIR = Path(os.environ.get("LINGQIAO_MODELS", Path.home() / ".cache" / "lingqiao" / "models"))

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
    "qwen05": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
}

SETTINGS = {
    "n_ctx": 2048,
    "n_batch": 512,
    "n_ubatch": 512,
    "n_threads": 2,
    "n_threads_batch": 2,
    "seed": 1234,
    "logits_all": False,
    "flash_attn": False,
    "type_k": "f16 (default)",
    "type_v": "f16 (default)",
    "swa_full": "llama.cpp default (not set; actual value recorded in context_params)",
    "use_mmap": True,
    "use_mlock": False,
    "n_gpu_layers": 0,
    "greedy": "argmax of raw logits, lowest id on ties, no sampler/penalties",
    "greedy_text": "llama_token_to_piece(special=False) concatenated, utf-8 with replacement",
    "prompt_eval": "one llama_decode per n_batch chunk, logits requested for the last token only",
    "decode": "one llama_decode per generated token",
}
N_GREEDY = 32
N_GREEDY_CHAT = 48

EN = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
ZH = "中国的首都是"
CODE = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
CHATML = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat is the largest planet in our solar system?<|im_end|>\n"
    "<|im_start|>assistant\n"
)
# gemma-3-270m ships no chat template; its turn markers are still control tokens,
# so this exercises special-token parsing in a SentencePiece vocab.
GEMMA_TURNS = (
    "<start_of_turn>user\nWhat is the largest planet in our solar system?<end_of_turn>\n"
    "<start_of_turn>model\n"
)
LONG = """The history of printing is a story of ideas spreading faster than anyone had imagined. Before movable type, every book was copied by hand, and a single volume could take a scribe many months to finish. When printing presses appeared in Europe in the fifteenth century, the cost of a book fell sharply, and within a few decades millions of copies were in circulation. Scholars could compare the same text in different cities, errors could be corrected in the next edition, and new ideas about science, religion and government travelled along the trade routes with the merchants who carried the books.

活字印刷术的历史比欧洲更早。北宋时期，毕昇发明了泥活字，把每个字刻在小块胶泥上，用火烧硬以后排成版面。印完一页，再把字拆下来，下一次还可以继续使用。汉字数量很多，排版比字母文字更麻烦，所以雕版印刷在很长时间里仍然十分常见。

Today the same pattern repeats with computers and networks. A text written in the morning can be read on the other side of the world before lunch, translated by a machine, and quoted in a discussion that its author never sees. Small language models that run on an ordinary laptop are part of this change: they let people summarise, translate and draft text without sending their words to a distant server.

To check that such a program computes the right answer, engineers compare its output with a trusted reference implementation, number by number. If even a single value differs, they look for the cause: a rounding step done in the wrong order, a missing scale factor, or a table read with the wrong stride. Only when every step agrees do they trust the faster version."""


# Longer than gemma3's 512-token sliding window (about 710 tokens): positions past 512 make
# the local layers drop the start of the prompt while the global layers still see it, and
# the prompt crosses n_batch, so it is evaluated in two chunks.
WINDOW = LONG + "\n\nTo repeat the point once more, in other words:\n\n" + LONG


def prompts_for(key: str) -> list[tuple[str, str, bool]]:
    """(name, text, parse_special) for a model key."""
    chat = GEMMA_TURNS if key == "gemma3" else CHATML
    return [
        ("en", EN, False),
        ("zh", ZH, False),
        ("code", CODE, False),
        ("chat", chat, True),
        ("long", LONG, False),
    ] + ([("window", WINDOW, False)] if key == "gemma3" else [])


CHAT_QUESTIONS = [("chat_zh", "中国的首都是哪里？"), ("chat_en", "What is the capital of France?")]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32).copy()


def top2_margin(logits: np.ndarray) -> float:
    top = np.partition(logits, -2)[-2:]
    return float(top[1] - top[0])


def run_prompt(llm: llama_cpp.Llama, name: str, text: str, add_special: bool,
               parse_special: bool, n_greedy: int, out_dir: Path) -> dict:
    ids = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)
    if len(ids) + n_greedy > SETTINGS["n_ctx"]:
        sys.exit(f"{name}: prompt too long for n_ctx")
    llm.reset()
    llm._ctx.kv_cache_clear()
    llm.eval(ids)
    logits = last_logits(llm)
    logits.astype("<f4").tofile(out_dir / f"{name}.f32")
    order = np.argsort(-logits, kind="stable")[:10]  # stable: lowest id first on ties
    top10 = [[int(i), float(logits[i])] for i in order]

    vocab = llm._model.vocab
    greedy, margins, eog = [], [], False
    cur = logits
    for step in range(n_greedy):
        tok = int(np.argmax(cur))  # first maximum = lowest id on ties
        greedy.append(tok)
        margins.append(round(top2_margin(cur), 6))
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            eog = True
            break
        if step + 1 < n_greedy:
            llm.eval([tok])
            cur = last_logits(llm)
    greedy_text = llm.detokenize(greedy, special=False).decode("utf-8", errors="replace")
    return {
        "name": name,
        "text": text,
        "add_special": add_special,
        "parse_special": parse_special,
        "prompt_ids": [int(t) for t in ids],
        "n_prompt_tokens": len(ids),
        "greedy_ids": greedy,
        "greedy_text": greedy_text,
        "stopped_on_eog": eog,
        "logits_file": f"{name}.f32",
        "logits_top10": top10,
        "greedy_margins": margins,
        "min_greedy_margin": min(margins),
    }


def chat_prompt(llm: llama_cpp.Llama, question: str) -> str:
    """Render the GGUF chat template the way create_chat_completion does."""
    meta = llm.metadata
    bos_id, eos_id = llm.token_bos(), llm.token_eos()
    fmt = Jinja2ChatFormatter(
        template=meta["tokenizer.chat_template"],
        eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )
    return fmt(messages=[{"role": "user", "content": question}]).prompt


def generate(key: str) -> dict:
    t0 = time.time()
    path = MODELS_DIR / MODELS[key]
    if not path.exists():
        sys.exit(f"model file missing: {path}")
    out_dir = OUT / key
    out_dir.mkdir(parents=True, exist_ok=True)
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=SETTINGS["n_ctx"], n_batch=SETTINGS["n_batch"], n_ubatch=SETTINGS["n_ubatch"],
        n_threads=SETTINGS["n_threads"], n_threads_batch=SETTINGS["n_threads_batch"],
        seed=SETTINGS["seed"], logits_all=False, flash_attn=False,
        use_mmap=True, use_mlock=False, n_gpu_layers=0, verbose=False,
    )
    model = llm._model
    entries = [run_prompt(llm, n, t, True, ps, N_GREEDY, out_dir) for n, t, ps in prompts_for(key)]
    if key == "qwen05":
        for name, q in CHAT_QUESTIONS:
            entries.append(run_prompt(llm, name, chat_prompt(llm, q), False, True, N_GREEDY_CHAT, out_dir))
            entries[-1]["chat_messages"] = [{"role": "user", "content": q}]
            entries[-1]["note"] = ("create_chat_completion style: Jinja2ChatFormatter(GGUF tokenizer.chat_template, "
                                   "add_generation_prompt=True); tokenized add_special=False, parse_special=True")
    manifest = {
        "model_key": key,
        "model_file": MODELS[key],
        "model_sha256": sha256(path),
        "reference": f"llama-cpp-python {llama_cpp.__version__} / llama.cpp vendored in that sdist "
                     f"(build info not embedded in the sdist); system: "
                     + llama_cpp.llama_print_system_info().decode().strip(),
        "settings": SETTINGS,
        # What llama.cpp actually ran with, read back from the context params
        # (ggml type 1 = F16; flash_attn_type 0 = disabled).
        "context_params": {
            "n_ctx": int(llm.context_params.n_ctx),
            "n_batch": int(llm.context_params.n_batch),
            "n_ubatch": int(llm.context_params.n_ubatch),
            "type_k": int(llm.context_params.type_k),
            "type_v": int(llm.context_params.type_v),
            "flash_attn_type": int(llm.context_params.flash_attn_type),
            "swa_full": bool(llm.context_params.swa_full),
            "n_seq_max": int(llm.context_params.n_seq_max),
        },
        "n_swa": int(llama_cpp.llama_model_n_swa(model.model)) if hasattr(llama_cpp, "llama_model_n_swa") else None,
        "n_vocab": llm.n_vocab(),
        "vocab_add_bos": bool(model.add_bos_token()),
        "vocab_add_eos": bool(model.add_eos_token()),
        "bos_id": llm.token_bos(),
        "eos_id": llm.token_eos(),
        "n_greedy": N_GREEDY,
        "prompts": entries,
        "generation_seconds": round(time.time() - t0, 1),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    llm.close()
    return manifest


def main() -> None:
    keys = sys.argv[1:] or list(MODELS)
    for key in keys:
        m = generate(key)
        print(f"{key}: {m['generation_seconds']}s")
        for p in m["prompts"]:
            near = [(i, g) for i, g in enumerate(p["greedy_margins"]) if g < 0.1]
            print(f"  {p['name']:8} prompt {p['n_prompt_tokens']:4} tok, greedy {len(p['greedy_ids']):2}"
                  f"{' (eog)' if p['stopped_on_eog'] else ''}, near-ties {near} | {p['greedy_text']!r}")


if __name__ == "__main__":
    main()
