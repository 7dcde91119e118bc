#!/usr/bin/env python3
"""Generate testdata/import/<arch>/: tiny randomly initialised Hugging Face model
directories (llama, llama-rope, qwen2, qwen3, gemma3) as `transformers` saves them, with a tiny
trained tokenizer each, plus transformers' logits and HF tokenizers' ids as the
independent reference for `lingqiao import` (crates/import/tests).

Per arch directory:
  config.json, model.safetensors (or shards + model.safetensors.index.json),
  tokenizer.json, tokenizer_config.json (with a chat template), generation_config.json
  ref/<seq>.f32       transformers logits at ALL positions, little-endian float32,
                      row-major [n_tokens][n_vocab]
  ref/manifest.json   sequences, texts with HF tokenizers' ids, settings, and the
                      optional llama.cpp cross-check

Run (from the repo root, after `cargo build --release -p lingqiao-cli`):
    python3 tools/reference/gen_import_tiny.py
Needs: torch (CPU), transformers, tokenizers, numpy; llama-cpp-python optional.

The llama.cpp cross-check (OFFLINE ONLY, never used by CI): the script runs OUR
`lingqiao import` binary on each directory, loads the resulting GGUF with
llama-cpp-python and records llama.cpp's max abs logit diff against transformers.
It tells whether llama.cpp reads what we write; it is not a reference for our code.

Choices:
- Weights re-initialised as in gen_qwen3_tiny.py: embeddings N(0,1), linear weights
  N(0,1)/sqrt(fan_in), biases N(0, 0.1), every RMSNorm weight U(0.5, 1.5) (gemma3:
  U(-0.5, 0.5), since HF computes x*(1+w) there) so a skipped, swapped or unshifted
  norm shows in the logits.
- dtypes: llama F32 saved in several shards (exercises the index); llama-rope one
  layer with llama3 RoPE scaling (rope_freqs); qwen2 BF16
  (exercises dtype conversion; its reference logits come from the BF16 weights
  upcast to F32, so the reference sees exactly the stored values), qwen3 F32 with
  head_dim != hidden/heads, gemma3 F32 with tied embeddings, sliding window 4 and
  layer pattern sliding/full (sliding_window_pattern 2).
- Tokenizers: byte-level BPE with the llama3 split regex (llama) or the qwen2 one
  (qwen2, qwen3), as in the real tokenizer.json files; gemma3: SentencePiece-like BPE
  with byte_fallback, "▁" for spaces, no pre-tokenizer, <0xXX> byte tokens.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

import transformers
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "import"
SEED = 0
N_VOCAB = 384

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, "
    "and the fox runs into the forest where the trees are tall and the river is cold.",
    "Once upon a time there was a little town by the sea. People there made "
    "bread, caught fish, and told stories about the stars in the night sky.",
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(add(i, i * 2))\n",
    "It's 2024 and we'll see 12345 items; they're   here.\n\n",
    "中国的首都是北京。今天天气很好，我们一起去公园散步吧。",
]

TEXTS = [
    "Hello world! The fox runs.",
    "It's 31415 items, they'll see\n\n  indented   spaces",
    "中国 北京 unknown-ish wörds 🙂",
    "def f(x):\n    return x * 2",
]

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TMPL = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' "
               "+ m['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
GEMMA_TMPL = ("{{ bos_token }}{% for m in messages %}{{ '<start_of_turn>' + m['role'] + '\n' + m['content'] + "
              "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")


def byte_level_bpe(split_re: str, specials: list[str], nfc: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_re), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=N_VOCAB - len(specials), show_progress=False, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    if tok.get_vocab_size() != N_VOCAB - len(specials):
        sys.exit(f"BPE training gave {tok.get_vocab_size()} tokens: enlarge CORPUS")
    tok.add_special_tokens(specials)
    return tok


def spm_like_bpe() -> Tokenizer:
    """Gemma-style: byte-fallback BPE over the whole text with spaces as '▁'."""
    head = ["<pad>", "<eos>", "<bos>", "<unk>"]
    byte_toks = [f"<0x{b:02X}>" for b in range(256)]
    turn = ["<start_of_turn>", "<end_of_turn>"]
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    trainer = trainers.BpeTrainer(vocab_size=N_VOCAB, show_progress=False, min_frequency=1,
                                  special_tokens=head + byte_toks + turn)
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    if tok.get_vocab_size() != N_VOCAB:
        sys.exit(f"SPM-like training gave {tok.get_vocab_size()} tokens: enlarge CORPUS")
    # byte tokens belong to the model vocab (byte fallback), not to the added tokens
    j = json.loads(tok.to_str())
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] not in byte_toks]
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    tok = Tokenizer.from_str(json.dumps(j))
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", bos)])
    return tok


def arches() -> dict[str, dict]:
    base = dict(vocab_size=N_VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                rms_norm_eps=1e-6)
    return {
        "llama": dict(
            cls=LlamaForCausalLM,
            config=LlamaConfig(**base, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                               tie_word_embeddings=False, bos_token_id=N_VOCAB - 3, eos_token_id=N_VOCAB - 1),
            dtype=torch.float32, shard="60KB",
            tokenizer=lambda: byte_level_bpe(LLAMA3_RE, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                                             nfc=False),
            tok_config=dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", chat_template=LLAMA3_TMPL),
        ),
        # llama3 RoPE scaling (Llama 3.1/3.2): original context 16 so that, at these
        # positions, every dimension but the fastest is slowed 8x by rope_freqs
        "llama-rope": dict(
            cls=LlamaForCausalLM,
            config=LlamaConfig(**{**base, "num_hidden_layers": 1}, tie_word_embeddings=False,
                               rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                "original_max_position_embeddings": 16},
                               bos_token_id=N_VOCAB - 3, eos_token_id=N_VOCAB - 1),
            dtype=torch.float32, shard=None,
            tokenizer=lambda: byte_level_bpe(LLAMA3_RE, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                                             nfc=False),
            tok_config=dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", chat_template=LLAMA3_TMPL),
        ),
        "qwen2": dict(
            cls=Qwen2ForCausalLM,
            config=Qwen2Config(**base, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                               tie_word_embeddings=False, bos_token_id=N_VOCAB - 3, eos_token_id=N_VOCAB - 1),
            dtype=torch.bfloat16, shard=None,
            tokenizer=lambda: byte_level_bpe(QWEN2_RE, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], nfc=True),
            tok_config=dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                            chat_template=CHATML, add_bos_token=False),
        ),
        "qwen3": dict(
            cls=Qwen3ForCausalLM,
            config=Qwen3Config(**{**base, "head_dim": 32},
                               rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                               tie_word_embeddings=False, attention_bias=False,
                               bos_token_id=N_VOCAB - 3, eos_token_id=N_VOCAB - 1),
            dtype=torch.float32, shard=None,
            tokenizer=lambda: byte_level_bpe(QWEN2_RE, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], nfc=True),
            tok_config=dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                            chat_template=CHATML),
        ),
        "gemma3": dict(
            cls=Gemma3ForCausalLM,
            config=Gemma3TextConfig(vocab_size=N_VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                                    num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                    query_pre_attn_scalar=32, sliding_window=4, sliding_window_pattern=2,
                                    max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
                                    bos_token_id=2, eos_token_id=1, pad_token_id=0),
            dtype=torch.float32, shard=None,
            tokenizer=spm_like_bpe,
            tok_config=dict(bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
                            add_bos_token=True, add_eos_token=False, chat_template=GEMMA_TMPL),
        ),
    }


def init_weights(model: torch.nn.Module, gemma: bool) -> None:
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + (-0.5 if gemma else 0.5))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)


def sequences(n_vocab: int) -> dict[str, list[int]]:
    return {
        "seq6": np.random.default_rng(6).integers(0, n_vocab, size=6).tolist(),
        "seq20": np.random.default_rng(20).integers(0, n_vocab, size=20).tolist(),
    }


def llama_cpp_crosscheck(d: Path, seqs: dict[str, list[int]], ref: dict[str, np.ndarray]) -> dict:
    try:
        import llama_cpp
    except ImportError:
        return {"status": "skipped: llama_cpp not importable"}
    exe = ROOT / "target" / "release" / "lingqiao"
    if not exe.exists():
        return {"status": f"skipped: {exe} not built"}
    with tempfile.TemporaryDirectory() as tmp:
        gguf_path = Path(tmp) / "model.gguf"
        subprocess.run([str(exe), "import", str(d), str(gguf_path), "--outtype", "f32"], check=True,
                       capture_output=True)
        try:
            llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=64, n_batch=64, n_threads=2, logits_all=True,
                                  seed=SEED, flash_attn=False, verbose=False,
                                  type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
        except Exception as e:  # noqa: BLE001 - recorded, not hidden
            return {"status": f"llama.cpp failed to load our import: {e}"}
        res = {"status": "ok: llama.cpp loads the GGUF made by `lingqiao import --outtype f32`",
               "reference": f"llama-cpp-python {llama_cpp.__version__}, f32 KV cache, flash_attn off"}
        for name, ids in seqs.items():
            llm.reset()
            llm.eval(ids)
            got = np.array(llm.scores[: len(ids)], dtype=np.float32)
            res[name] = {"max_abs_diff_all_positions": float(np.abs(got - ref[name]).max()),
                         "argmax_agree_all_positions": bool((got.argmax(1) == ref[name].argmax(1)).all())}
        res["tokenize"] = [llm.tokenize(t.encode(), add_bos=False, special=False) for t in TEXTS]
        llm.close()
        return res


def build(arch: str, a: dict) -> dict:
    d = OUT / arch
    if d.exists():
        shutil.rmtree(d)
    (d / "ref").mkdir(parents=True)
    torch.manual_seed(SEED)
    model = a["cls"]._from_config(a["config"], attn_implementation="eager", dtype=torch.float32)
    init_weights(model, gemma=arch == "gemma3")
    model.eval()
    # round to the stored dtype first, so the reference runs on exactly the stored weights
    model = model.to(a["dtype"])
    kw = {"max_shard_size": a["shard"]} if a["shard"] else {}
    model.save_pretrained(d, safe_serialization=True, **kw)
    model = model.to(torch.float32)

    tok = a["tokenizer"]()
    tok.save(str(d / "tokenizer.json"))
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 256, **a["tok_config"]}
    (d / "tokenizer_config.json").write_text(json.dumps(tc, indent=1, ensure_ascii=False) + "\n")

    seqs = sequences(model.config.vocab_size)
    entries, ref = [], {}
    with torch.no_grad():
        for name, ids in seqs.items():
            logits = model(torch.tensor([ids])).logits[0].to(torch.float32).numpy()
            ref[name] = logits
            logits.astype("<f4").tofile(d / "ref" / f"{name}.f32")
            entries.append({"name": name, "ids": ids, "logits_file": f"{name}.f32", "shape": list(logits.shape),
                            "argmax_per_position": logits.argmax(1).tolist()})
    texts = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TEXTS]
    cross = llama_cpp_crosscheck(d, seqs, ref)
    if "tokenize" in cross:
        cross["tokenize_agrees_with_hf"] = [c == t["ids"] for c, t in zip(cross.pop("tokenize"), texts)]
    manifest = {
        "arch": arch.split("-")[0],
        "hf_class": a["cls"].__name__,
        "stored_dtype": str(a["dtype"]).removeprefix("torch."),
        "sharded": bool(a["shard"]),
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32 (weights "
                     "upcast from the stored dtype), CPU, attn_implementation=eager, one forward pass",
        "init": "embeddings N(0,1); linear N(0,1)/sqrt(fan_in); biases N(0,0.1); RMSNorm U(0.5,1.5) "
                "(gemma3: U(-0.5,0.5), HF adds 1); torch.Generator(seed) in named_parameters order",
        "seed": SEED,
        "sequences": entries,
        "texts": texts,
        "tokenizer_ids": "tokenizers Tokenizer.encode(text, add_special_tokens=False)",
        "chat_template": tc["chat_template"],
        "llama_cpp_crosscheck": cross,
    }
    (d / "ref" / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return cross


def main() -> None:
    t0 = time.time()
    only = sys.argv[1:]
    for arch, a in arches().items():
        if only and arch not in only:
            continue
        cross = build(arch, a)
        print(arch, json.dumps(cross, ensure_ascii=False))
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
