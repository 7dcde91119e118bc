"""Expected Q8_0 / Q8_1 activation blocks as ggml's x86 CPU backend quantizes them.

On x86 with AVX/AVX2, ggml's `quantize_row_q8_0` and `quantize_row_q8_1`
(ggml/src/ggml-cpu/arch/x86/quants.c) do not call the `_ref` quantizers: they compute
d = amax / 127 and multiply by id = 127 / amax (not 1 / d), then round half to even
(`_mm256_round_ps(_MM_ROUND_NEAREST)`), where the reference rounds half away from zero
after multiplying by 1 / d. The two differ by one unit in some elements. llama.cpp runs
this variant on the activations of every matrix product on this machine, so a runtime
that wants llama.cpp's numbers must quantize the same way.

This script transcribes that x86 path in numpy (float32 throughout) and applies it to the
activations written to testdata/kernels/act.x86.f32.bin: blocks built to hit the cases
where the two roundings disagree (exact .5 ties at amax = 127, and amax values whose
127 / amax and 1 / (amax / 127) round differently), plus seeded random blocks. It
writes act.Q8_0.x86.bin and act.Q8_1.x86.bin beside them.

Run from the repository root: python3 tools/reference/gen_q8_x86_fixture.py
Needs: numpy.
"""

from pathlib import Path

import numpy as np

DIR = Path(__file__).resolve().parents[2] / "testdata" / "kernels"


def blocks_x86(x: np.ndarray):
    x = x.astype(np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1, keepdims=True).astype(np.float32)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.rint((x * idv).astype(np.float32)).astype(np.int8)  # rint: half to even
    return d[:, 0], q


def main() -> None:
    rng = np.random.default_rng(7)
    blocks = []
    ties = np.array([127.0] + [k + 0.5 for k in range(-15, 16)], dtype=np.float32)
    blocks.append(ties)
    blocks.append(-ties)
    for amax in (0.37, 1.1, 3.3, 0.013, 7.77, 100.3):
        b = rng.standard_normal(32).astype(np.float32)
        b = (b / np.abs(b).max() * np.float32(amax)).astype(np.float32)
        blocks.append(b)
    blocks.append(np.zeros(32, dtype=np.float32))
    blocks.extend(rng.standard_normal((55, 32)).astype(np.float32))
    act = np.concatenate(blocks).astype("<f4")
    act.tofile(DIR / "act.x86.f32.bin")
    d, q = blocks_x86(act)
    q8_0 = bytearray()
    q8_1 = bytearray()
    for db, qb in zip(d, q):
        dh = np.float16(db).tobytes()
        q8_0 += dh + qb.tobytes()
        # s = d * sum(q), computed in float32 then rounded once to f16 (as hsum then FP32_TO_FP16).
        s = np.float16(np.float32(db) * np.float32(int(qb.astype(np.int32).sum()))).tobytes()
        q8_1 += dh + s + qb.tobytes()
    (DIR / "act.Q8_0.x86.bin").write_bytes(bytes(q8_0))
    (DIR / "act.Q8_1.x86.bin").write_bytes(bytes(q8_1))
    print(f"wrote {len(q8_0)} + {len(q8_1)} bytes for {len(d)} blocks")


if __name__ == "__main__":
    main()
