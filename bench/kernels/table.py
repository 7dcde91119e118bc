#!/usr/bin/env python3
"""The markdown table of bench/kernels/run.sh: decode kernels, ours against ggml's.

    python3 bench/kernels/table.py DATE-decode-kernels.csv --cpu NAME --flags "avx2 ..."
        [--bandwidth GBPS] [--cache-kib 192] [--stream-mib 512] > DATE-decode-kernels.md

The CSV has kernel_speed's and ggml_speed's rows (columns cpu, isa, impl, type, kind,
residence, cols, rows, gbps, weights_per_cycle, ghz). "ggml" in the main table is the path
llama.cpp runs on this CPU: the repacked gemv/gemm where CPU_REPACK takes the type (†),
else for four tokens llamafile's sgemm where it takes the type (‡), else vec_dot.
"""
import argparse
import csv
import sys

TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
         "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
ISAS = ["avx512", "avx2", "i8mm", "dotprod", "neon", "scalar"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--cpu", default="")
    ap.add_argument("--flags", default="")
    ap.add_argument("--bandwidth", default="")
    ap.add_argument("--cache-kib", default="192")
    ap.add_argument("--stream-mib", default="512")
    a = ap.parse_args()

    rows = list(csv.DictReader(open(a.csv)))
    # (isa, impl, type, kind, residence) -> row
    m = {(r["isa"], r["impl"], r["type"], r["kind"], r["residence"]): r for r in rows}
    isas = [i for i in ISAS if any(r["isa"] == i for r in rows)]
    ghz = {}
    for r in rows:
        k = "ours" if r["impl"] == "ours" else "ggml " + r["isa"]
        ghz[k] = max(ghz.get(k, 0.0), float(r["ghz"]))
    bw = float(a.bandwidth) if a.bandwidth else None
    cpu = a.cpu or (rows[0]["cpu"] if rows else "?")

    out = []
    p = out.append
    p("# Decode kernels: ours against ggml's, one thread, weights in cache and streamed\n")
    p(f"CPU: **{cpu}**, flags: {a.flags or '?'}. Core clock (a chain of dependent adds "
      "against the wall clock, the best of 200 that were not switched out, at the start and "
      "the end of each run): "
      + ", ".join(f"{k} {v:.2f} GHz" for k, v in ghz.items()) + ". "
      + (f"One thread's read bandwidth (`lingqiao bench --bandwidth -t 1`): **{bw:.1f} GB/s**."
         if bw else "One thread's read bandwidth: not measured."))
    p("")
    p("Each figure is the best of several timings, each made of ~1 ms chunks of which those "
      "during which the process was switched out are dropped, and the best of the rounds in "
      "which ours and ggml's alternated (the machine runs other jobs). *cache*: a matrix "
      f"of about {a.cache_kib} KiB (L2-resident) multiplied over and over; *stream*: at least "
      f"{a.stream_mib} MiB, one pass per timing. GB/s are weight bytes per second "
      "(the four-token kernels read each weight once for four tokens); w/c is multiply-adds "
      "of a weight with one token per core cycle (four-token kernels: 4 per weight). cols: "
      "896 for the float and 32-element types, 1024 for the K-quants; rows a multiple of 8. "
      "Ratios are ours / ggml (above 1: ours faster). "
      "ggml is the path llama.cpp runs here: † its CPU_REPACK gemv/gemm on interleaved "
      "rows, ‡ llamafile's sgemm (four tokens), else `vec_dot` (four tokens: 4 calls per "
      "row in mul_mat's order)."
      + (f" **Bold**: one-token kernels of ours whose in-cache speed is below 1.5x the read "
         f"bandwidth ({1.5 * bw:.1f} GB/s): there the kernel, not the memory, limits decode."
         if bw else ""))
    p("")
    p("Reproduce: `bash bench/kernels/run.sh` (method in its header, "
      "`crates/kernels/examples/kernel_speed.rs` and `bench/kernels/ggml_speed.c`).")
    p("")

    def g(isa, impl, ty, kind, res):
        r = m.get((isa, impl, ty, kind, res))
        return (float(r["gbps"]), float(r["weights_per_cycle"])) if r else None

    def ggml_path(isa, ty, kind):
        for impl, mark in (("ggml-repack", "†"),
                           ("ggml-sgemm", "‡") if kind == "4tok" else (None, None),
                           ("ggml", "")):
            if impl and g(isa, impl, ty, kind, "cache"):
                return impl, mark
        return None, None

    for isa in isas:
        if not any(r["isa"] == isa and r["impl"] != "ours" for r in rows):
            continue
        p(f"## {isa}\n")
        p("| type | cols | kind | cache GB/s ours / ggml | ratio | cache w/c ours / ggml "
          "| stream GB/s ours / ggml | ratio |")
        p("|---|---:|---|---:|---:|---:|---:|---:|")
        for ty in TYPES:
            for kind in ("1tok", "4tok"):
                oc, os_ = g(isa, "ours", ty, kind, "cache"), g(isa, "ours", ty, kind, "stream")
                impl, mark = ggml_path(isa, ty, kind)
                if not oc or not impl:
                    continue
                gc, gs = g(isa, impl, ty, kind, "cache"), g(isa, impl, ty, kind, "stream")
                cols = m[(isa, "ours", ty, kind, "cache")]["cols"]
                ours_c = f"{oc[0]:.1f}"
                if bw and kind == "1tok" and oc[0] < 1.5 * bw:
                    ours_c = f"**{ours_c}**"
                p(f"| {ty} | {cols} | {kind} | {ours_c} / {gc[0]:.1f}{mark} | "
                  f"{oc[0] / gc[0]:.2f} | {oc[1]:.2f} / {gc[1]:.2f} | "
                  f"{os_[0]:.1f} / {gs[0]:.1f} | {os_[0] / gs[0]:.2f} |")
        p("")

    p("## Every path measured\n")
    p("GB/s in cache / streamed, and w/c in cache, of every kernel the run timed (ours on "
      "each table this CPU has; ggml's `vec_dot` also where llama.cpp would repack or use "
      "sgemm).\n")
    p("| isa | impl | type | 1tok cache / stream GB/s | w/c | 4tok cache / stream GB/s | w/c |")
    p("|---|---|---|---:|---:|---:|---:|")
    impls = ["ours", "ggml", "ggml-sgemm", "ggml-repack"]
    for isa in isas:
        for impl in impls:
            for ty in TYPES:
                cells = []
                for kind in ("1tok", "4tok"):
                    c, s = g(isa, impl, ty, kind, "cache"), g(isa, impl, ty, kind, "stream")
                    if c and s:
                        cells += [f"{c[0]:.1f} / {s[0]:.1f}", f"{c[1]:.2f}"]
                    else:
                        cells += ["", ""]
                if any(cells):
                    p(f"| {isa} | {impl} | {ty} | " + " | ".join(cells) + " |")
    p("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
