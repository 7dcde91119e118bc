"""ggml's aarch64 kernels against ours, in instructions per 256 multiply-adds, from the two CSVs
bench/arm_insn/run.sh writes. Prints a Markdown table per path:

- decode (one token): what ggml's mul_mat runs for one token, i.e. the repacked gemv where
  ggml repacks the type at that level (Q4_0, Q4_K, Q5_K, Q6_K, Q8_0 with dotprod), else
  vec_dot; ours: vec_dot.
- prompt (many tokens): ggml's repacked gemm where it repacks, else vec_dot with nrc=2 (SMMLA,
  i8mm: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K), else vec_dot; ours: the tile kernel where the table has
  one (its weight packing, once per 16 rows per matmul, not included; the four-token kernel's
  count and ratio beside it), else the four-token kernel, else vec_dot.

With the per-token CSVs of llama_token.sh and ours_token.sh as well, a third table: dynamic
instructions per generated token, llama.cpp against ours, per model and level.

Usage: python3 compare.py GGML.csv OURS.csv [LLAMA-TOKEN.csv OURS-TOKEN.csv]
"""

import csv
import sys


def load(path):
    rows = {}
    for r in csv.DictReader(open(path)):
        rows[(r["level"], r["type"], r["kernel"])] = float(r["insn_per_256"])
    return rows


def pick(rows, level, ty, prefixes):
    for p in prefixes:
        for (lv, t, k), v in sorted(rows.items()):
            if lv == level and t == ty and (k == p or k.startswith(p + "_")):
                return k, v
    return None, None


def main():
    g, o = load(sys.argv[1]), load(sys.argv[2])
    levels = [lv for lv in ("neon", "dotprod", "i8mm") if any(k[0] == lv for k in g)]
    types = []
    for k in g:
        if k[2] == "vec_dot" and k[1] not in types:
            types.append(k[1])
    paths = [
        ("decode, one token", ["gemv", "vec_dot"], ["vec_dot"]),
        ("prompt, many tokens", ["gemm", "vec_dot2", "vec_dot"], ["tile", "x4", "vec_dot"]),
    ]
    for title, gp, op in paths:
        print(f"## {title}: instructions per 256 multiply-adds (row x token x 256)\n")
        print("| level | type | ggml kernel | ggml | our kernel | ours | ours / ggml |")
        print("|---|---|---|---:|---|---:|---:|")
        for lv in levels:
            for ty in types:
                gk, gv = pick(g, lv, ty, gp)
                ok, ov = pick(o, lv, ty, op)
                if gk is None:
                    continue
                ratio = f"{ov / gv:.2f}" if ov is not None and gv > 0 else ""
                ovs = f"{ov:.1f}" if ov is not None else ""
                if ok == "tile":
                    # the four-token kernel beside it, the path of the levels without tiles
                    xk, xv = pick(o, lv, ty, ["x4"])
                    if xk is not None:
                        ok = f"tile (x4: {xv:.1f}, {xv / gv:.2f})"
                print(f"| {lv} | {ty} | {gk} | {gv:.1f} | {ok or ''} | {ovs} | {ratio} |")
        print()
    if len(sys.argv) == 5:
        tokens(sys.argv[3], sys.argv[4])


def tokens(llama_path, ours_path):
    def load_tok(path):
        return {(r["model"], r["level"]): r for r in csv.DictReader(open(path))}

    la, ou = load_tok(llama_path), load_tok(ours_path)
    print("## per generated token: dynamic instructions, one thread\n")
    print("| model | level | qemu cpu | llama.cpp | ours | ours / llama.cpp |")
    print("|---|---|---|---:|---:|---:|")
    order = {"scalar": 0, "neon": 1, "dotprod": 2, "i8mm": 3}
    keys = sorted(set(la) | set(ou), key=lambda k: (k[0], order.get(k[1], 9)))
    for m, lv in keys:
        lr, orow = la.get((m, lv)), ou.get((m, lv))
        lv_n = int(lr["insn_per_token"]) if lr else None
        ov_n = int(orow["insn_per_token"]) if orow else None
        cpu = (lr or orow)["qemu_cpu"]
        ratio = f"{ov_n / lv_n:.2f}" if lv_n and ov_n else ""
        ls = f"{lv_n / 1e6:.1f} M" if lv_n else ""
        os_ = f"{ov_n / 1e6:.1f} M" if ov_n else ""
        print(f"| {m} | {lv} | {cpu} | {ls} | {os_} | {ratio} |")
    print()


if __name__ == "__main__":
    main()
