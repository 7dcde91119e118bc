#!/usr/bin/env python3
"""Generate testdata/qwen3-tiny/: a tiny randomly initialised Qwen3 model as GGUF,
plus HuggingFace transformers logits for it as the independent reference.

No real Qwen3 GGUF is small enough to ship, so the qwen3 forward pass (per-head
q/k RMSNorm, NEOX rope, GQA, SwiGLU, untied output) is pinned against
transformers' own Qwen3ForCausalLM in float32 on the CPU.

Outputs (all under testdata/qwen3-tiny/):
  model.gguf      F32 GGUF, llama.cpp's qwen3 tensor names and metadata, with a
                  small byte-level BPE vocab (tokenizer.ggml.model=gpt2, pre=qwen2)
                  so llama.cpp loads it too.
  <name>.f32      transformers logits at ALL positions, little-endian float32,
                  row-major [n_tokens][n_vocab].
  manifest.json   config, ids, shapes, dtype, settings, and the llama.cpp
                  cross-check (max abs diff of llama.cpp's logits vs transformers).

Run (from the repo root):
    pip install -r tools/reference/requirements.txt   # see its header for llama-cpp-python
    python3 tools/reference/gen_qwen3_tiny.py

Needs: torch (CPU use only), transformers, tokenizers, gguf==0.19.0, numpy;
llama-cpp-python optional (only for the cross-check; skipped with a note if absent).

About torch: PyPI only has the CUDA-linked Linux wheel, and `pip install torch
--no-deps` does not import (libtorch_cuda.so preloads libcublasLt etc.), so the
plain `pip install torch==2.15.0` with its nvidia-* wheels was used; nothing runs
on a GPU. A CPU-only wheel from PyTorch's own index would do equally well.

Why these choices:
- Weights are re-initialised with fan-in scaled normals (std 1/sqrt(fan_in)),
  embeddings std 1, and every RMSNorm weight (incl. q_norm/k_norm) drawn from
  U(0.5, 1.5): HF's default init (std 0.02, norms = 1) gives near-uniform logits
  and all-ones norms, which would hide bugs like a skipped or swapped norm.
- Q/K are written without permutation: llama.cpp's converter (conversion/qwen.py,
  Qwen3Model -> Qwen2Model -> TextModel) only permutes for the llama arch, since
  Qwen uses NEOX (rotate_half) rope on both sides.
- GGUF dims are the reverse of torch shapes; GGUFWriter does this reversal
  itself when given a numpy array of the torch shape.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gguf
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import Qwen3Config, Qwen3ForCausalLM

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "qwen3-tiny"

SEED = 0
N_VOCAB = 512
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 509, 510, 511
CONFIG = dict(
    vocab_size=N_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,  # != hidden_size / heads (=16), as in real Qwen3 (1024 / 16 heads, head_dim 128)
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    tie_word_embeddings=False,
    attention_bias=False,
    hidden_act="silu",
    bos_token_id=509,
    eos_token_id=511,
)

# Two fixed id sequences (lengths 7 and 40), drawn once from a seeded RNG over
# the whole vocab (specials included) and recorded in the manifest.
SEQUENCES = {
    "seq7": np.random.default_rng(7).integers(0, N_VOCAB, size=7).tolist(),
    "seq40": np.random.default_rng(40).integers(0, N_VOCAB, size=40).tolist(),
}

# Training text for the tiny BPE vocab (English, Chinese, code) so the merges
# are real-looking and cover multi-byte UTF-8.
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, "
    "and the fox runs into the forest where the trees are tall and the river is cold.",
    "Once upon a time there was a little town by the sea. People there made "
    "bread, caught fish, and told stories about the stars in the night sky.",
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(add(i, i * 2))\n",
    "fn main() {\n    let x = 42;\n    println!(\"{}\", x);\n}\n",
    "中国的首都是北京。北京是一座历史悠久的城市，有很多名胜古迹。",
    "今天天气很好，我们一起去公园散步吧。春天来了，花儿都开了。",
    "机器学习是人工智能的一个分支，它让计算机从数据中学习规律。",
]


def train_vocab() -> tuple[list[str], list[str]]:
    """Byte-level BPE with 509 learned/base tokens; specials are appended after."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=N_VOCAB - len(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        min_frequency=1,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    vocab = tok.get_vocab()
    n = N_VOCAB - len(SPECIALS)
    if len(vocab) != n:
        sys.exit(f"BPE training produced {len(vocab)} tokens, need {n}: enlarge CORPUS")
    tokens = [""] * n
    for piece, idx in vocab.items():
        tokens[idx] = piece
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens + SPECIALS, merges


def build_model() -> Qwen3ForCausalLM:
    torch.manual_seed(SEED)
    cfg = Qwen3Config(**CONFIG)
    model = Qwen3ForCausalLM._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif name == "model.embed_tokens.weight":
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # Linear [out, in]
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
    model.eval()
    return model


def gguf_tensor_name(hf: str, n_layer: int) -> str:
    """Explicit map HF -> llama.cpp names, checked against gguf-py's own TensorNameMap."""
    fixed = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    if hf in fixed:
        name = fixed[hf]
    else:
        parts = hf.split(".")  # model.layers.N.<sub...>.weight
        bid = int(parts[2])
        name = f"blk.{bid}.{per_layer['.'.join(parts[3:-1])]}.weight"
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, n_layer)
    expect = tmap.get_name(hf, try_suffixes=(".weight",))
    if expect != name:
        sys.exit(f"tensor name mismatch for {hf}: ours {name}, gguf-py {expect}")
    return name


def write_gguf(model: Qwen3ForCausalLM, tokens: list[str], merges: list[str], path: Path) -> None:
    c = CONFIG
    arch = "qwen3"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("qwen3-tiny-random")
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_rope_freq_base(c["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(SPECIALS)) + [gguf.TokenType.CONTROL] * len(SPECIALS)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )

    n_layer = c["num_hidden_layers"]
    for hf_name, p in model.state_dict().items():
        arr = p.detach().to(torch.float32).contiguous().numpy()
        w.add_tensor(gguf_tensor_name(hf_name, n_layer), arr)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_cpp_crosscheck(path: Path, ref: dict[str, np.ndarray]) -> dict:
    """Load the GGUF with llama.cpp and diff its logits against transformers.

    Run twice: with the default f16 KV cache (what the golden runs use) and with
    an f32 KV cache, which isolates the part of the gap due to K/V rounding.
    """
    try:
        import llama_cpp
    except ImportError:
        return {"status": "skipped: llama_cpp not importable"}
    out = {"status": "ok", "reference": f"llama-cpp-python {llama_cpp.__version__}",
           "settings": "n_ctx 64, n_batch 64, n_threads 2, logits_all, flash_attn off"}
    for kv_name, kv_type in (("kv_f16", None), ("kv_f32", llama_cpp.GGML_TYPE_F32)):
        llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=64, n_batch=64, n_threads=2, logits_all=True,
            seed=SEED, flash_attn=False, use_mmap=True, use_mlock=False, verbose=False,
            type_k=kv_type, type_v=kv_type,
        )
        res = {}
        for name, logits in ref.items():
            llm.reset()
            llm.eval(SEQUENCES[name])
            got = np.array(llm.scores[: len(SEQUENCES[name])], dtype=np.float32)
            res[name] = {
                "max_abs_diff_last_position": float(np.abs(got[-1] - logits[-1]).max()),
                "max_abs_diff_all_positions": float(np.abs(got - logits).max()),
                "argmax_agree_all_positions": bool((got.argmax(1) == logits.argmax(1)).all()),
            }
        out[kv_name] = res
        if kv_type is None:
            out["llama_cpp_tokenize('Hello 世界')"] = llm.tokenize("Hello 世界".encode(), add_bos=False, special=False)
        llm.close()
    return out


def main() -> None:
    t0 = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    tokens, merges = train_vocab()
    model = build_model()
    gguf_path = OUT / "model.gguf"
    write_gguf(model, tokens, merges, gguf_path)

    ref: dict[str, np.ndarray] = {}
    entries = []
    with torch.no_grad():
        for name, ids in SEQUENCES.items():
            logits = model(torch.tensor([ids])).logits[0].to(torch.float32).numpy()
            ref[name] = logits
            logits.astype("<f4").tofile(OUT / f"{name}.f32")
            top = np.argsort(-logits[-1], kind="stable")[:5]
            entries.append({
                "name": name,
                "ids": ids,
                "logits_file": f"{name}.f32",
                "shape": list(logits.shape),
                "dtype": "float32 little-endian, row-major [n_tokens][n_vocab]",
                "argmax_per_position": logits.argmax(1).tolist(),
                "last_top5": [[int(i), float(logits[-1, i])] for i in top],
            })

    import transformers
    cross = llama_cpp_crosscheck(gguf_path, ref)
    manifest = {
        "model_file": "model.gguf",
        "model_sha256": hashlib.sha256(gguf_path.read_bytes()).hexdigest(),
        "reference": f"transformers {transformers.__version__} Qwen3ForCausalLM, torch {torch.__version__}, "
                     "float32, CPU, attn_implementation=eager, full sequence in one forward pass, no KV cache",
        "seed": SEED,
        "config": CONFIG,
        "init": "embeddings N(0,1); linear weights N(0,1)/sqrt(fan_in); all RMSNorm weights U(0.5,1.5) "
                "(torch.Generator seeded with 'seed', in named_parameters order)",
        "tokenizer": {"model": "gpt2", "pre": "qwen2", "n_tokens": len(tokens), "n_merges": len(merges),
                      "specials": {t: tokens.index(t) for t in SPECIALS}, "bos": 509, "eos": 511,
                      "add_bos_token": False},
        "gguf_tensor_type": "F32 for every tensor; q/k not permuted (NEOX rope, as llama.cpp's qwen3 converter)",
        "sequences": entries,
        "llama_cpp_crosscheck": cross,
        "generation_seconds": round(time.time() - t0, 2),
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(cross, indent=1, ensure_ascii=False))
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
