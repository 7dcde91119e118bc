#!/usr/bin/env python3
"""Generate the reference fixtures for lingqiao-kernels' weight quantizers
(crates/kernels/tests/quantize.rs) from two independent implementations:

  * F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: gguf-py's gguf.quants.quantize (gguf 0.19.0);
  * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: ggml's own ggml_quantize_chunk(type, src, dst, 0, nrows,
    n_per_row, imatrix=NULL), called through ctypes from the libggml-base shared library that
    the installed llama_cpp_python package (0.3.36) ships. Without an importance matrix that
    runs quantize_row_q*_K_ref. gguf-py cannot quantize K-quants.

For those types the script also runs ggml_quantize_chunk and records in index.json how
many blocks differ between gguf-py and ggml (the fixtures follow gguf-py).

Run from the repository root (needs the models in ~/.cache/lingqiao/models/, override with
LINGQIAO_MODELS, for the rows taken from real tensors):

    pip install gguf==0.19.0 numpy llama-cpp-python==0.3.36
    python3 tools/reference/gen_quantize.py

Writes testdata/quantize/:

  index.json              per data class: file, rows, n_per_row, description; per class and
                          type: reference file, who made it, RMSE of its round trip (dequantized
                          with gguf-py), and for legacy types the gguf-py/ggml block differences
  <class>.f32.bin         the input rows, little-endian f32, row-major
  <class>.<TYPE>.bin      the reference quantization of all rows of that class
"""

import ctypes
import glob
import json
import os
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "quantize"
MODELS = Path(os.environ.get("LINGQIAO_MODELS", Path.home() / ".cache" / "lingqiao" / "models"))

N = 2048  # elements per row: 8 super-blocks, 64 legacy blocks
LEGACY = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
KQUANTS = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def ggml_lib() -> ctypes.CDLL:
    import llama_cpp
    libdir = Path(llama_cpp.__file__).parent / "lib"
    path = sorted(glob.glob(str(libdir / "libggml-base.so*")))[0]
    lib = ctypes.CDLL(path)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_void_p]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    return lib


def ggml_quantize(lib, tname: str, rows: np.ndarray) -> np.ndarray:
    qt = T[tname]
    nrows, n_per_row = rows.shape
    src = np.ascontiguousarray(rows, dtype=np.float32)
    size = lib.ggml_row_size(int(qt), n_per_row) * nrows
    dst = np.zeros(size, dtype=np.uint8)
    got = lib.ggml_quantize_chunk(int(qt), src.ctypes.data, dst.ctypes.data, 0, nrows,
                                  n_per_row, None)
    assert got == size, (tname, got, size)
    return dst


def rmse(tname: str, q: np.ndarray, rows: np.ndarray) -> float:
    deq = dequantize(q.reshape(rows.shape[0], -1), T[tname]).astype(np.float64)
    return float(np.sqrt(np.mean((deq - rows.astype(np.float64)) ** 2)))


def gaussian(rng) -> np.ndarray:
    return rng.standard_normal((4, N)).astype(np.float32) * np.float32(0.02)


def heavy_tailed(rng) -> np.ndarray:
    # Student-t with 3 degrees of freedom, plus rare large outliers as real weight matrices
    # have (a few channels carry values 20-50x the typical magnitude).
    x = rng.standard_t(3, (4, N)) * 0.02
    mask = rng.random((4, N)) < 0.003
    x[mask] *= rng.uniform(20, 50, mask.sum())
    return x.astype(np.float32)


def model_rows() -> tuple[np.ndarray, str]:
    picks = [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.0.attn_q.weight"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.20.ffn_down.weight"),
        ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "blk.3.ffn_down.weight"),
        ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "token_embd.weight"),
    ]
    rows, names = [], []
    for fname, tname in picks:
        reader = gguf.GGUFReader(MODELS / fname)
        t = next(t for t in reader.tensors if t.name == tname)
        flat = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        # N consecutive elements a third into the tensor, at a block boundary.
        start = (flat.size // 3) // 256 * 256
        rows.append(flat[start:start + N])
        names.append(f"{fname}:{tname}({t.tensor_type.name})[{start}:{start + N}]")
    return np.stack(rows), "dequantized with gguf-py: " + "; ".join(names)


def edge_row(rng) -> np.ndarray:
    """One row of 32-element blocks, each a case the quantizers must get exactly right."""
    g = lambda: rng.standard_normal(32).astype(np.float32)
    blocks = []
    blocks.append(np.zeros(32, np.float32))                      # all zero
    z = np.zeros(32, np.float32); z[0] = -0.0; z[5] = -0.0       # signed zeros, -0.0 first
    blocks.append(z)
    blocks.append(np.full(32, 0.37, np.float32))                 # constant positive
    blocks.append(np.full(32, -1.25, np.float32))                # constant negative
    b = g(); b[7] = -9.0; blocks.append(b)                       # max-abs value negative
    b = g(); b[3] = 4.0; b[9] = -4.0; blocks.append(b)           # max-abs tie, + first
    b = g(); b[3] = -4.0; b[9] = 4.0; blocks.append(b)           # max-abs tie, - first
    # Exact rounding ties: with these extremes each type's scale is exactly 1, so the
    # half-integers sit exactly between two levels.
    half = (np.arange(32) % 15 - 7).astype(np.float32) + np.float32(0.5)
    b = half.copy(); b[0] = -8.0; blocks.append(b)               # Q4_0: d = 1
    b = np.abs(half); b[0] = 0.0; b[1] = 15.0; blocks.append(b)   # Q4_1: d = 1
    b = half * 2; b[0] = -16.0; blocks.append(b)                 # Q5_0: d = 1
    b = np.abs(half * 2); b[0] = 0.0; b[1] = 31.0; blocks.append(b)  # Q5_1: d = 1
    b = half * 8; b[0] = 127.0; blocks.append(b)                 # Q8_0: d = 1
    blocks.append(g() * np.float32(1e-30))                       # tiny: f16 scale is 0
    blocks.append(g() * np.float32(1e-6))                        # small: f16 scale subnormal
    blocks.append(g() * np.float32(1e4))                         # large, f16 scale still finite
    blocks.append(np.linspace(-60000, 60000, 32, dtype=np.float32))  # near f16's max
    b = g(); b[::2] = 0.0; blocks.append(b)                      # half exact zeros
    blocks.append(np.abs(g()) + np.float32(3.0))                 # all positive, min far from 0
    while len(blocks) % 8:
        blocks.append(g() * np.float32(0.01))
    row = np.concatenate(blocks)
    reps = -(-N // row.size)
    # Repeat the cases at other offsets inside the super-blocks (the K-quants see them next
    # to different neighbours), then cut to N.
    return np.concatenate([np.roll(row, 32 * k) for k in range(reps)])[:N]


def extreme_row(rng) -> np.ndarray:
    """Magnitudes outside f16 and f32's normal range: scales overflow or vanish."""
    g = lambda: rng.standard_normal(32).astype(np.float32)
    blocks = [
        g() * np.float32(1e30),                       # d overflows f16 to inf
        g() * np.float32(1e-40),                      # subnormal f32: 1/d overflows
        np.array([3e38, -3e38] * 16, np.float32),     # max - min overflows f32
        g() * np.float32(1e5),                        # min or d beyond f16's max
        g() * np.float32(1e-42),
        g() * np.float32(1e20),
        g(), g(),
    ]
    row = np.concatenate(blocks)
    return np.concatenate([np.roll(row, 32 * k) for k in range(N // row.size)])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261129)
    lib = ggml_lib()
    model, model_src = model_rows()
    classes = {
        "gaussian": (gaussian(rng), "N(0, 0.02^2), seeded"),
        "heavy": (heavy_tailed(rng), "0.02 * Student-t(3), 0.3% of values scaled 20-50x"),
        "model": (model, model_src),
        "edge": (edge_row(rng)[None, :], "zero, signed-zero, constant, negative max-abs, "
                 "max-abs ties, exact rounding ties per type, tiny/small/large magnitudes"),
        "extreme": (extreme_row(rng)[None, :], "magnitudes where f16/f32 scales overflow or "
                    "are subnormal (RMSE is not finite here: bytes only)"),
    }
    index = {"n_per_row": N, "gguf": "0.19.0", "classes": {}}
    for cname, (rows, desc) in classes.items():
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        assert rows.shape[1] == N
        (OUT / f"{cname}.f32.bin").write_bytes(rows.astype("<f4").tobytes())
        entry = {"input": f"{cname}.f32.bin", "rows": rows.shape[0], "description": desc,
                 "types": {}}
        for tname in LEGACY + KQUANTS:
            ggml = ggml_quantize(lib, tname, rows)
            if tname in LEGACY:
                with np.errstate(all="ignore"):
                    ref = np.ascontiguousarray(quantize(rows, T[tname])).view(np.uint8).reshape(-1)
                made_by = "gguf.quants.quantize"
                bs = gguf.GGML_QUANT_SIZES[T[tname]][1]
                diff = int((ref.reshape(-1, bs) != ggml.reshape(-1, bs)).any(axis=1).sum())
            else:
                ref, made_by, diff = ggml, "ggml_quantize_chunk (libggml-base, llama_cpp_python 0.3.36)", None
            (OUT / f"{cname}.{tname}.bin").write_bytes(ref.tobytes())
            with np.errstate(all="ignore"):
                err = rmse(tname, ref, rows)
            t = {"file": f"{cname}.{tname}.bin", "made_by": made_by,
                 "rmse": err if np.isfinite(err) else None}
            if diff is not None:
                t["blocks_differing_from_ggml"] = diff
            entry["types"][tname] = t
            print(f"{cname:8} {tname:5} rmse {err:.6e}" + (f"  gguf-py vs ggml: {diff} blocks differ" if diff is not None else ""))
        index["classes"][cname] = entry
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
