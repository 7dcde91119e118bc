#!/usr/bin/env python3
"""Generate reference fixtures for the lingqiao-kernels tests from gguf-py (an independent
implementation of ggml's block formats).

Run from the repository root:

    pip install gguf==0.19.0 numpy
    python3 tools/reference/gen_kernel_fixtures.py

Needs the installed models in ~/.cache/lingqiao/models/ (override with LINGQIAO_MODELS) for the
types that occur in them; writes testdata/kernels/:

  index.json            per type: n elements, source of the blocks, file names
  <TYPE>.w.bin          raw bytes of n elements of that type (one row)
  <TYPE>.deq.bin        gguf.quants.dequantize of those bytes, little-endian f32
  act.f32.bin           seeded random activations (f32), used against every type's weights
  act.<Q8_x>.bin        the activations quantized to Q8_0 / Q8_1 / Q8_K (expected bytes)

Where the weight blocks come from, in order of preference:
  1. real blocks sliced from a model tensor of that type (read with gguf.GGUFReader);
  2. gguf.quants.quantize of seeded random data, where gguf-py can quantize the type;
  3. seeded random bytes with the f16 scale fields overwritten by sane finite values.

Q8_0 activations are quantized with gguf.quants.quantize (gguf-py states it is bit-exact with
ggml's quantize_row_q8_0_ref). gguf-py 0.19.0 has no Q8_1 or Q8_K at all, so for those two this
script carries a numpy transcription of ggml's reference algorithms (quantize_row_q8_1_ref,
quantize_row_q8_K_ref), written from their documented behaviour, with float32 arithmetic in the
same order as the C code.
"""

import functools
import json
from importlib.metadata import version
import os
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize, np_roundf

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "kernels"
MODELS = Path(os.environ.get("LINGQIAO_MODELS", Path.home() / ".cache" / "lingqiao" / "models"))
MODEL_FILES = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
]

# Elements per fixture row: 8 super-blocks, 64 legacy blocks.
N = 2048
TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
         "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
# Byte offsets (within a block) of the f16 scale fields, for types made of random bytes.
F16_FIELDS = {
    "Q2_K": [80, 82],   # d, dmin after scales[16] and qs[64]
    "Q3_K": [108],      # d after hmask[32], qs[64], scales[12]
    "Q5_K": [0, 2],     # d, dmin
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q4_K": [0, 2], "Q6_K": [208],
}


@functools.cache
def reader(path: Path) -> gguf.GGUFReader:
    # Parsing a model's tensor index is slow in gguf-py: do it once per file.
    return gguf.GGUFReader(path)


def model_blocks(tname: str):
    """The first N elements' worth of bytes of a tensor of type tname, from a middle row."""
    qt = T[tname]
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    for f in MODEL_FILES:
        path = MODELS / f
        if not path.exists():
            continue
        for t in reader(path).tensors:
            if t.tensor_type != qt or t.n_elements < 4 * N:
                continue
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            nbytes = N // bs * ts
            # Start at a block boundary about a third into the tensor: past any special rows.
            start = (raw.size // 3) // ts * ts
            return raw[start:start + nbytes].copy(), f"{f}:{t.name}"
    return None, None


def random_blocks(tname: str, rng: np.random.Generator):
    qt = T[tname]
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    data = rng.standard_normal(N).astype(np.float32)
    try:
        return np.asarray(quantize(data, qt)).view(np.uint8).reshape(-1), "gguf.quants.quantize(seeded normal)"
    except NotImplementedError:
        pass
    nb = N // bs
    raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    for off in F16_FIELDS[tname]:
        # Scales in [0.002, 0.05): finite, positive, like real ones.
        vals = rng.uniform(0.002, 0.05, size=nb).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(nb, 2)
    return raw.reshape(-1), "seeded random bytes, f16 scales forced finite"


def q8_1_ref(x: np.ndarray) -> np.ndarray:
    """ggml quantize_row_q8_1_ref: d = amax/127, q = roundf(x * (1/d)), s = f16(sum(q) * d)."""
    out = bytearray()
    for blk in x.reshape(-1, 32):
        amax = np.float32(np.max(np.abs(blk)))
        d = np.float32(amax / np.float32(127))
        idv = np.float32(1) / d if d != 0 else np.float32(0)
        v = (blk * idv).astype(np.float32)
        q = np_roundf(v).astype(np.int8)  # C roundf: half away from zero, exactly
        s = np.float32(np.int32(q.astype(np.int32).sum())) * d
        out += np.float16(d).tobytes() + np.float16(s).tobytes() + q.tobytes()
    return np.frombuffer(bytes(out), dtype=np.uint8)


def q8_k_ref(x: np.ndarray) -> np.ndarray:
    """ggml quantize_row_q8_K_ref: scale from the signed value of largest magnitude (first on
    ties), iscale = -127/max, q = min(127, nearest_int(iscale*x)) with round-half-even, bsums of
    16, d = 1/iscale stored as f32. An all-zero block is all zeros."""
    out = bytearray()
    for blk in x.reshape(-1, 256):
        ab = np.abs(blk)
        if ab.max() == 0:
            out += bytes(4 + 256 + 32)
            continue
        mx = blk[int(np.argmax(ab))]
        iscale = np.float32(-127) / np.float32(mx)
        q = np.minimum(np.rint((iscale * blk).astype(np.float32)), 127).astype(np.int8)
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        d = np.float32(1) / iscale
        out += np.float32(d).tobytes() + q.tobytes() + bsums.astype("<i2").tobytes()
    return np.frombuffer(bytes(out), dtype=np.uint8)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    index = {"n": N, "types": {}}

    for tname in TYPES:
        qt = T[tname]
        if tname in ("F32", "F16", "BF16"):
            raw, src = model_blocks(tname) if tname != "F32" else (None, None)
            if raw is None:
                data = rng.standard_normal(N).astype(np.float32)
                raw = np.asarray(quantize(data, qt)).view(np.uint8).reshape(-1)
                src = "gguf.quants.quantize(seeded normal)"
        else:
            raw, src = model_blocks(tname)
            if raw is None:
                raw, src = random_blocks(tname, rng)
        deq = np.asarray(dequantize(raw.copy(), qt), dtype=np.float32).reshape(-1)
        assert deq.size == N and np.all(np.isfinite(deq)), tname
        (OUT / f"{tname}.w.bin").write_bytes(raw.tobytes())
        (OUT / f"{tname}.deq.bin").write_bytes(deq.astype("<f4").tobytes())
        index["types"][tname] = {"source": src, "weights": f"{tname}.w.bin", "dequant": f"{tname}.deq.bin"}
        print(f"{tname:5} {raw.size:6} bytes  {src}")

    # Activations: normal data, plus edge blocks: one all-zero super-block (d = 0 paths) and
    # one whose largest magnitude is negative.
    act = rng.standard_normal(N).astype(np.float32)
    act[256:512] = 0.0
    act[512 + 7] = -6.5
    (OUT / "act.f32.bin").write_bytes(act.astype("<f4").tobytes())
    q8_0 = np.asarray(quantize(act, T.Q8_0)).view(np.uint8).reshape(-1)
    (OUT / "act.Q8_0.bin").write_bytes(q8_0.tobytes())
    (OUT / "act.Q8_1.bin").write_bytes(q8_1_ref(act).tobytes())
    (OUT / "act.Q8_K.bin").write_bytes(q8_k_ref(act).tobytes())
    index["activations"] = {
        "f32": "act.f32.bin",
        "Q8_0": {"file": "act.Q8_0.bin", "source": "gguf.quants.quantize"},
        "Q8_1": {"file": "act.Q8_1.bin", "source": "numpy transcription of quantize_row_q8_1_ref (gguf-py lacks Q8_1)"},
        "Q8_K": {"file": "act.Q8_K.bin", "source": "numpy transcription of quantize_row_q8_K_ref (gguf-py lacks Q8_K)"},
    }
    index["generator"] = f"tools/reference/gen_kernel_fixtures.py, gguf {version('gguf')}, numpy {np.__version__}"
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
