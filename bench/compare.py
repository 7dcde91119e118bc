#!/usr/bin/env python3
"""lingqiao against llama.cpp: same GGUF, same machine, same thread count.

For each model and thread count:

- Speed: `llama-bench -p P -n N -r 1 -o jsonl` and `lingqiao bench -p P -n N -r 1 --json`,
  called alternately for --rounds rounds (the one that goes first swaps every round), so
  drift of a shared machine hits both. Each call does its own warm-up (the whole prompt and
  one generated token: llama-bench's rule, which `lingqiao bench` follows) and one timed
  repetition; mean and sample std are over the rounds.
- Peak RSS and CPU time per token: one pure generation run of each tool (`-p 0 -n N -r 1`),
  read from the child's rusage (os.wait4): ru_maxrss, and (user + sys) / (N + 1 warm-up
  token). Both figures include loading the model, the same way for both tools.
- Time to first token from process start, for a fixed prompt of about 100 tokens:
  `llama-completion -no-cnv --no-display-prompt -n 1` against `lingqiao run -n 1`, timed
  from spawn to the first byte on the child's stdout (both flush each token as it is
  generated, and neither prints anything else to stdout before it). Each tool runs as it
  does by default: llama.cpp maps the file and runs its warm-up decode, lingqiao reads the
  weights into memory.
- Bandwidth: `lingqiao bench --bandwidth` (1 GiB read with 1, with N and with all threads, best of 5
  passes), the bytes each model reads per generated token (from `lingqiao bench`), and the
  generation limit they imply. The read bandwidth of this shared machine drifts by 10-20%
  over minutes, as much as the speeds do, so it is measured again before every round and
  once after the last: a round's limit uses the higher of the two measurements around it
  (the stricter limit), and frac_of_limit is the mean over rounds of tg speed / that
  limit, the same limits for both tools. frac_of_limit_start divides the mean speed by the
  limit from the measurement at the start of the whole run instead (the method before
  2026-11-30).

Writes bench/results/<date>-compare.csv (long format: one row per model, threads, test,
impl) and prints a markdown table. Then draws bench/results/compare.svg with bench/chart.

Run from anywhere after `cargo build --release` and `bash bench/build_llamacpp.sh`:
    python3 bench/compare.py [--models smollm2,gemma3,qwen05,qwen15] [--threads 1,2]
                             [--rounds 5] [-p 512] [-n 128]
qwen15 is included when installed (`lingqiao pull qwen15`).
"""

import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINGQIAO = ROOT / "target/release/lingqiao"
LLAMA_BIN = Path(os.environ.get("LLAMACPP_DIR", Path.home() / ".cache/lingqiao/llamacpp")) / "build/bin"
MODELS = Path(os.environ.get("LINGQIAO_HOME", Path.home() / ".cache/lingqiao")) / "models"
FILES = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
    "qwen05": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen15": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
# About 100 tokens for every model here (the exact count is in the CSV).
TTFT_PROMPT = (
    "The history of the bicycle begins in the early nineteenth century, when inventors in "
    "Germany and France built wooden machines that riders pushed along with their feet. Pedals "
    "attached to the front wheel came later, followed by the chain drive, air-filled tyres and "
    "gears. By the end of the century the safety bicycle had taken the shape we know today, and "
    "millions of people used it to travel to work, to school and into the countryside. Write a "
    "short summary:"
)
OURS, THEIRS = "lingqiao", "llama.cpp"


def run_json_lines(cmd: list[str]) -> list[dict]:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip().startswith("{")]


def bandwidth(threads: str) -> dict[int, float]:
    """GB/s read by 1 and by each of `threads` (comma-separated) threads, best of 5 passes."""
    rows = run_json_lines([str(LINGQIAO), "bench", "--bandwidth", "--json", "-t", threads])
    return {r["threads"]: r["bandwidth_gbs"] for r in rows}


def speed_ours(path: Path, p: int, n: int, t: int) -> dict[str, float]:
    out = {}
    for row in run_json_lines([str(LINGQIAO), "bench", "-m", str(path), "-p", str(p), "-n", str(n),
                               "-t", str(t), "-r", "1", "--json", "--no-bandwidth"]):
        out[row["test"]] = row["avg_ts"]
        out["_bytes_per_token"] = row["bytes_per_token"]
    return out


def speed_llama(path: Path, p: int, n: int, t: int) -> dict[str, float]:
    out = {}
    for row in run_json_lines([str(LLAMA_BIN / "llama-bench"), "-m", str(path), "-p", str(p), "-n", str(n),
                               "-t", str(t), "-r", "1", "-o", "jsonl"]):
        test = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        out[test] = row["avg_ts"]
        out["_build"] = f"{row.get('build_commit', '?')} ({row.get('build_number', '?')})"
    return out


def rusage_run(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, user + sys CPU seconds) of a child process run to completion."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.read().decode()[-3000:]}")
    return ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime


def tg_cost(impl: str, path: Path, n: int, t: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU-s per generated token) of a pure tg run, warm-up token included."""
    if impl == OURS:
        cmd = [str(LINGQIAO), "bench", "-m", str(path), "-p", "0", "-n", str(n), "-t", str(t), "-r", "1",
               "--json", "--no-bandwidth"]
    else:
        cmd = [str(LLAMA_BIN / "llama-bench"), "-m", str(path), "-p", "0", "-n", str(n), "-t", str(t),
               "-r", "1", "-o", "jsonl"]
    rss, cpu = rusage_run(cmd)
    return rss, cpu / (n + 1)


def ttft(impl: str, path: Path, t: int) -> float:
    """Seconds from spawn to the first byte the child writes to stdout."""
    if impl == OURS:
        cmd = [str(LINGQIAO), "run", "-m", str(path), "-p", TTFT_PROMPT, "-n", "1", "--temp", "0", "-t", str(t)]
    else:
        cmd = [str(LLAMA_BIN / "llama-completion"), "-m", str(path), "-p", TTFT_PROMPT, "-n", "1",
               "--temp", "0", "-t", str(t), "-no-cnv", "--no-display-prompt"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = os.read(proc.stdout.fileno(), 1)
    dt = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0 or not first:
        sys.exit(f"failed ({proc.returncode}): {cmd[0]}\n{err.decode()[-3000:]}")
    return dt


def prompt_len(path: Path) -> int:
    r = subprocess.run([str(LINGQIAO), "tokenize", "-m", str(path), "--ids", TTFT_PROMPT],
                       capture_output=True, text=True, check=True)
    return len(json.loads(r.stdout))


def mean_std(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(FILES))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of one timed rep each")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--ttft-reps", type=int, default=3)
    ap.add_argument("--no-chart", action="store_true")
    a = ap.parse_args()
    for exe in (LINGQIAO, LLAMA_BIN / "llama-bench", LLAMA_BIN / "llama-completion"):
        if not exe.exists():
            sys.exit(f"missing {exe}: run `cargo build --release` and `bash bench/build_llamacpp.sh`")
    threads = [int(x) for x in a.threads.split(",")]
    models = []
    for key in a.models.split(","):
        path = MODELS / FILES.get(key, key)
        if path.exists():
            models.append((key, path))
        else:
            print(f"skipping {key}: {path} not installed", file=sys.stderr)

    date = datetime.date.today().isoformat()
    bw_rows = run_json_lines([str(LINGQIAO), "bench", "--bandwidth", "--json", "-t", a.threads])
    bw = {r["threads"]: r["bandwidth_gbs"] for r in bw_rows}
    # The CPU as `lingqiao bench` describes it: name, microarchitecture, family/model/stepping,
    # SIMD in use, L2/L3 (the bare /proc/cpuinfo name of a cloud VM can be just "AMD EPYC").
    cpu = bw_rows[0]["cpu"]
    isa = bw_rows[0]["isa"]
    print(f"{cpu}, kernels {isa}, read bandwidth " + ", ".join(f"{t}t {g:.1f} GB/s" for t, g in bw.items()),
          flush=True)
    tests = ([f"pp{a.p}"] if a.p else []) + ([f"tg{a.n}"] if a.n else [])

    rows = []
    llama_build = "?"
    for key, path in models:
        n_prompt_ttft = prompt_len(path)
        for t in threads:
            samples = {OURS: {k: [] for k in tests}, THEIRS: {k: [] for k in tests}}
            bytes_per_token = None
            # Read bandwidth with t threads before each round, and after the last.
            round_bw = []
            for rnd in range(a.rounds):
                round_bw.append(bandwidth(str(t))[t])
                order = [(OURS, speed_ours), (THEIRS, speed_llama)]
                if rnd % 2:
                    order.reverse()
                for impl, fn in order:
                    got = fn(path, a.p, a.n, t)
                    bytes_per_token = got.get("_bytes_per_token", bytes_per_token)
                    llama_build = got.get("_build", llama_build)
                    for k in tests:
                        samples[impl][k].append(got[k])
                print(f"{key} t={t} round {rnd + 1}/{a.rounds} ({round_bw[-1]:.1f} GB/s before): " + "; ".join(
                    f"{impl} " + " ".join(f"{k} {samples[impl][k][-1]:.1f}" for k in tests)
                    for impl in (OURS, THEIRS)), flush=True)
            round_bw.append(bandwidth(str(t))[t])
            # Each round's limit from the higher bandwidth measured around it.
            round_limit = [max(round_bw[i], round_bw[i + 1]) * 1e9 / bytes_per_token
                           for i in range(a.rounds)] if bytes_per_token else []
            extra = {OURS: {"peak_rss": [], "cpu_per_token": [], "ttft": []},
                     THEIRS: {"peak_rss": [], "cpu_per_token": [], "ttft": []}}
            for rep in range(a.ttft_reps):
                for impl in ((OURS, THEIRS) if rep % 2 == 0 else (THEIRS, OURS)):
                    extra[impl]["ttft"].append(ttft(impl, path, t))
            if a.n:
                for impl in (OURS, THEIRS):
                    rss, cpt = tg_cost(impl, path, a.n, t)
                    extra[impl]["peak_rss"].append(rss)
                    extra[impl]["cpu_per_token"].append(cpt)
            limit = bw.get(t, 0) * 1e9 / bytes_per_token if bytes_per_token and bw.get(t) else None

            def add(test: str, unit: str, per_impl: dict[str, list[float]]) -> None:
                if not per_impl[OURS] or not per_impl[THEIRS]:
                    return
                m = {impl: mean_std(v) for impl, v in per_impl.items()}
                paired = test.startswith("tg") and bool(round_limit)
                for impl in (OURS, THEIRS):
                    mean, std = m[impl]
                    fracs = [v / lim for v, lim in zip(per_impl[impl], round_limit)] if paired else []
                    rows.append({
                        "date": date, "cpu": cpu, "isa": isa, "llamacpp_build": llama_build,
                        "model": key, "threads": t, "test": test, "unit": unit, "impl": impl,
                        "mean": round(mean, 4), "std": round(std, 4), "n": len(per_impl[impl]),
                        "ratio": round(m[OURS][0] / m[THEIRS][0], 4),
                        "bandwidth_1t_gbs": round(bw.get(1, 0), 2), "bandwidth_gbs": round(bw.get(t, 0), 2),
                        "bandwidth_all_gbs": round(bw.get(max(bw), 0), 2),
                        "bytes_per_token": bytes_per_token,
                        "limit_ts": round(statistics.fmean(round_limit), 2) if paired else "",
                        "frac_of_limit": round(statistics.fmean(fracs), 4) if paired else "",
                        "prompt_tokens": n_prompt_ttft if test == "ttft" else "",
                        "frac_of_limit_std": round(mean_std(fracs)[1], 4) if paired else "",
                        "round_bandwidth_gbs": " ".join(f"{g:.2f}" for g in round_bw) if paired else "",
                        "frac_of_limit_start": round(mean / limit, 4) if limit and test.startswith("tg") else "",
                    })

            for k in tests:
                add(k, "t/s", {impl: samples[impl][k] for impl in (OURS, THEIRS)})
            add("ttft", "s", {impl: extra[impl]["ttft"] for impl in (OURS, THEIRS)})
            add("peak_rss", "MiB", {impl: extra[impl]["peak_rss"] for impl in (OURS, THEIRS)})
            add("cpu_per_token", "CPU-s/token", {impl: extra[impl]["cpu_per_token"] for impl in (OURS, THEIRS)})

    if not rows:
        sys.exit("nothing measured: no model installed?")
    out = ROOT / "bench/results" / f"{date}-compare.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    print()
    print(f"{cpu}; kernels {isa}; llama.cpp {llama_build}; read bandwidth "
          + ", ".join(f"{t} thread(s) {g:.1f} GB/s" for t, g in bw.items()))
    print()
    print("(tg limit: mean of the rounds' limits; of limit: mean ± std over rounds, and in brackets against "
          "the bandwidth measured at the start)")
    print()
    print(f"CPU: {cpu}")
    print()
    print("| model | threads | test | lingqiao | llama.cpp | ratio | tg limit | lingqiao/limit | llama.cpp/limit |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    by = {(r["model"], r["threads"], r["test"], r["impl"]): r for r in rows}
    for (key, t, test, impl), r in by.items():
        if impl != OURS:
            continue
        o, l = r, by[(key, t, test, THEIRS)]
        fmt = "{:.1f}" if r["unit"] in ("t/s", "MiB") else "{:.3f}" if r["unit"] == "s" else "{:.4f}"
        cell = lambda x: (fmt.format(x["mean"]) + (f" ± {fmt.format(x['std'])}" if x["std"] else "")
                          + ("" if r["unit"] == "t/s" else f" {r['unit']}"))
        lim = f"{r['limit_ts']:.1f}" if r["limit_ts"] != "" else ""
        fr = lambda x: (f"{100 * x['frac_of_limit']:.0f}% ± {100 * x['frac_of_limit_std']:.0f}"
                        f" ({100 * x['frac_of_limit_start']:.0f}%)" if x["frac_of_limit"] != "" else "")
        print(f"| {key} | {t} | {test} | {cell(o)} | {cell(l)} | {r['ratio']:.2f} | {lim} | {fr(o)} | {fr(l)} |")
    print(f"\nwrote {out}")

    if not a.no_chart:
        svg = ROOT / "bench/results/compare.svg"
        subprocess.run(["cargo", "run", "--quiet", "--release", "--manifest-path", str(ROOT / "bench/chart/Cargo.toml"),
                        "--", str(out), str(svg)], check=True)
        print(f"wrote {svg}")


if __name__ == "__main__":
    main()
