#!/usr/bin/env python3
"""Reference fixtures for the GGUF reader (crates/gguf), produced with gguf-py, not our code.

Writes:
  testdata/gguf/small.gguf   a < 64 KiB GGUF built with gguf.GGUFWriter from real data:
                             SmolLM2's metadata (general.*, llama.* hyperparameters, chat
                             template, a 200-token cut of its BPE vocab with token types and
                             its first 64 merges), extra keys covering every value
                             type (incl. a nested array and real gemma-3 scores), and small
                             tensors holding real bytes (F32, Q8_0, Q4_1 from SmolLM2, Q5_0 and
                             Q6_K from Qwen2.5-Coder, Q4_K from gemma-3).
  testdata/gguf/small.json   what gguf.GGUFReader reads back from small.gguf: header fields,
                             every key with its type and full value, every tensor with shape,
                             type, absolute offset, size and the sha256 of its bytes.
  testdata/gguf/models.json  what gguf.GGUFReader reads from the three real models: header
                             fields, every key with its type (scalars in full, arrays as length
                             plus first/last element) and every tensor (name, type, dims,
                             absolute offset, size).

Floats are recorded as IEEE bit patterns ("bits") so the Rust test compares them exactly.

Needs: python 3.11, `pip install gguf==0.19.0 numpy`, and the models in
~/.cache/lingqiao/models (fetched by `lingqiao pull`, see crates/fetch).
Run from the repository root:  python3 tools/reference/gen_gguf_fixture.py
"""

import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as VT

MODELS = Path(os.path.expanduser("~/.cache/lingqiao/models"))
SMOL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN = MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GEMMA = MODELS / "gemma-3-270m-q4_k_m.gguf"
OUT = Path("testdata/gguf")

N_VOCAB = 200
ALIGNMENT = 64  # not the default 32, so the reader must honour general.alignment

TYPE_NAMES = {
    VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16",
    VT.UINT32: "u32", VT.INT32: "i32", VT.UINT64: "u64", VT.INT64: "i64",
    VT.FLOAT32: "f32", VT.FLOAT64: "f64", VT.BOOL: "bool", VT.STRING: "string",
    VT.ARRAY: "array",
}


def type_name(field):
    """Our reader's spelling of a field's type: "u32", "array[string]", "array[array]"."""
    t = field.types
    if t[0] != VT.ARRAY:
        return TYPE_NAMES[t[0]]
    return f"array[{TYPE_NAMES[t[1]]}]"


def json_scalar(vtype, v):
    """A JSON-safe scalar; floats as bit patterns so they compare exactly."""
    if vtype == VT.FLOAT32:
        return {"bits": struct.unpack("<I", struct.pack("<f", v))[0]}
    if vtype == VT.FLOAT64:
        return {"bits": struct.unpack("<Q", struct.pack("<d", v))[0]}
    if vtype == VT.BOOL:
        return bool(v)
    return v


def field_json(field, full):
    """One key as gguf-py reads it. `full` keeps whole arrays; otherwise length + ends."""
    out = {"key": field.name, "type": type_name(field), "offset": field.offset}
    leaf = field.types[-1]
    if field.types[0] != VT.ARRAY:
        out["value"] = json_scalar(leaf, field.contents())
        return out
    # gguf-py flattens nested arrays; record the flattened leaves and the type chain.
    vals = field.contents()
    out["len"] = int(field.parts[4][0])  # parts: key len, key, value type, elem type, count, ...
    out["types"] = [TYPE_NAMES[t] for t in field.types]
    if full:
        out["flat"] = [json_scalar(leaf, v) for v in vals]
    elif vals:
        out["first"] = json_scalar(leaf, vals[0])
        out["last"] = json_scalar(leaf, vals[-1])
    return out


def describe(path, full, r=None):
    r = r or gguf.GGUFReader(path)
    f = r.fields
    header = {
        "version": int(f["GGUF.version"].contents()),
        "tensor_count": int(f["GGUF.tensor_count"].contents()),
        "kv_count": int(f["GGUF.kv_count"].contents()),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "file_len": os.path.getsize(path),
    }
    keys = [field_json(fld, full) for name, fld in f.items() if not name.startswith("GGUF.")]
    tensors = []
    for t in r.tensors:
        ti = {
            "name": t.name,
            "type": t.tensor_type.name,
            "dims": [int(d) for d in t.shape],
            "offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes),
        }
        if full:
            ti["sha256"] = hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()
        tensors.append(ti)
    return {"file": Path(path).name, **header, "metadata": keys, "tensors": tensors}


def tensor_rows(reader, name, n_rows):
    """The raw bytes of the first `n_rows` rows of a tensor, and its ggml dims for them."""
    t = next(t for t in reader.tensors if t.name == name)
    ne0 = int(t.shape[0])
    row_bytes = gguf.quant_shape_to_byte_shape((1, ne0), t.tensor_type)[1]
    raw = np.asarray(t.data).reshape(-1).view(np.uint8)[: row_bytes * n_rows].copy()
    return raw.reshape(n_rows, row_bytes), t.tensor_type, ne0


def copy_field(w, reader, key, new_key=None):
    fld = reader.fields[key]
    vtype = fld.types[0]
    val = fld.contents()
    if vtype == VT.ARRAY:
        w.add_key_value(new_key or key, val, VT.ARRAY, sub_type=fld.types[-1])
    else:
        w.add_key_value(new_key or key, val, vtype)


def build_small(path, smol, qwen, gemma):
    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(ALIGNMENT)
    for key in smol.fields:
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key.startswith("tokenizer.ggml.") and key.split(".")[-1] in ("tokens", "token_type", "merges"):
            continue
        copy_field(w, smol, key)
    tokens = smol.fields["tokenizer.ggml.tokens"].contents()[:N_VOCAB]
    types = smol.fields["tokenizer.ggml.token_type"].contents()[:N_VOCAB]
    merges = smol.fields["tokenizer.ggml.merges"].contents(slice(0, 64))
    w.add_key_value("tokenizer.ggml.tokens", tokens, VT.ARRAY, sub_type=VT.STRING)
    w.add_key_value("tokenizer.ggml.token_type", types, VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("tokenizer.ggml.merges", merges, VT.ARRAY, sub_type=VT.STRING)
    # SmolLM2 (BPE) has no scores: real SentencePiece scores come from gemma-3.
    scores = gemma.fields["tokenizer.ggml.scores"].contents()[:N_VOCAB]
    w.add_key_value("tokenizer.ggml.scores", scores, VT.ARRAY, sub_type=VT.FLOAT32)
    # Value types no real model uses, so the reader is checked on each of them.
    w.add_key_value("test.u8", 200, VT.UINT8)
    w.add_key_value("test.i8", -100, VT.INT8)
    w.add_key_value("test.u16", 60000, VT.UINT16)
    w.add_key_value("test.i16", -30000, VT.INT16)
    w.add_key_value("test.i32", -7, VT.INT32)
    w.add_key_value("test.u64", 2**63 + 12345, VT.UINT64)
    w.add_key_value("test.i64", -(2**62), VT.INT64)
    w.add_key_value("test.f64", 2.718281828459045, VT.FLOAT64)
    w.add_key_value("test.empty_string", "", VT.STRING)
    w.add_key_value("test.unicode", "lingqiao 灵巧 ✓ é", VT.STRING)
    w.add_key_value("test.bools", [True, False, True], VT.ARRAY, sub_type=VT.BOOL)
    w.add_key_value("test.u16s", [1, 65535], VT.ARRAY, sub_type=VT.UINT16)
    w.add_key_value("test.i64s", [-1, 2**40], VT.ARRAY, sub_type=VT.INT64)
    w.add_key_value("test.f64s", [0.5, -1e300], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_key_value("test.u32s", [12, 12, 16], VT.ARRAY, sub_type=VT.UINT32)
    w.add_key_value("test.nested", [[1, 2], [3, 4, 5]], VT.ARRAY)

    # Tensors: real bytes, several types. The last one's size is a multiple of the
    # alignment, so the file ends exactly where its data ends (no trailing padding):
    # then every truncation of the file cuts tensor data and must be rejected.
    def add_rows(name, reader, src, n_rows):
        raw, ty, ne0 = tensor_rows(reader, src, n_rows)
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=ty)
        return ne0

    add_rows("token_embd.weight", smol, "token_embd.weight", 4)           # Q8_0 [576, 4]
    add_rows("blk.0.attn_q.weight", smol, "blk.0.attn_q.weight", 3)       # Q4_1 [576, 3]
    add_rows("blk.0.attn_output.weight", gemma, "blk.0.attn_output.weight", 2)  # Q4_K [1024, 2]
    add_rows("blk.0.ffn_down.weight", qwen, "blk.0.ffn_down.weight", 1)   # Q6_K [4864, 1]
    add_rows("blk.0.ffn_up.weight", qwen, "blk.0.ffn_up.weight", 2)       # Q5_0 [896, 2]
    norm = next(t for t in smol.tensors if t.name == "blk.0.attn_norm.weight")
    norm_f = np.asarray(norm.data, dtype=np.float32).reshape(-1)
    w.add_tensor("test.f32_3d", norm_f[:48].reshape(2, 3, 8))             # F32 [8, 3, 2]
    out_norm = next(t for t in smol.tensors if t.name == "output_norm.weight")
    w.add_tensor("output_norm.weight", np.asarray(out_norm.data, dtype=np.float32).reshape(-1))
    assert (576 * 4) % ALIGNMENT == 0

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    for m in (SMOL, QWEN, GEMMA):
        if not m.exists():
            sys.exit(f"missing {m}: fetch the models first (lingqiao pull smollm2 qwen05 gemma3)")
    OUT.mkdir(parents=True, exist_ok=True)
    small = OUT / "small.gguf"
    readers = {m: gguf.GGUFReader(m) for m in (SMOL, QWEN, GEMMA)}
    build_small(small, readers[SMOL], readers[QWEN], readers[GEMMA])
    size = small.stat().st_size
    assert size < 64 * 1024, size
    desc = describe(small, full=True)
    last = desc["tensors"][-1]
    assert last["offset"] + last["n_bytes"] == size, "small.gguf must end at its last tensor"
    (OUT / "small.json").write_text(json.dumps(desc, indent=1, ensure_ascii=False) + "\n")
    models = [describe(m, full=False, r=readers[m]) for m in (SMOL, GEMMA, QWEN)]
    (OUT / "models.json").write_text(json.dumps(models, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"small.gguf: {size} bytes, {len(desc['metadata'])} keys, {len(desc['tensors'])} tensors")


if __name__ == "__main__":
    main()
