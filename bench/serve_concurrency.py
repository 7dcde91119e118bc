#!/usr/bin/env python3
"""N concurrent streamed chat requests through `lingqiao serve`, against each run alone.

Starts the real server (`target/release/lingqiao serve -m MODEL --parallel N -t THREADS`)
and talks to it with the `openai` Python package, as a user's client would:

1. Each of N different chat requests alone, one after the other (temperature 0, streamed,
   `max_tokens` fixed): its text, completion tokens and wall time. Single-stream speed =
   all their completion tokens / the sum of their wall times (prompt evaluation included,
   as a user waits for it).
2. The same N requests at once, one thread each: aggregate speed = all completion tokens /
   wall time from the first request sent to the last one finished.
3. Each concurrent answer must equal its solo answer exactly (the engine's batches do not
   change a sequence's arithmetic); the script exits non-zero if one does not.

Steps 1 and 2 alternate for --rounds rounds (shared, noisy machine: compare ratios from
one run). Appends rows to bench/results/<date>-serve-concurrency.csv.

    python3 bench/serve_concurrency.py [--model qwen05] [-n 8] [--max-tokens 128]
                                       [--threads 2] [--rounds 2]
"""

import argparse
import concurrent.futures
import csv
import datetime
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
LINGQIAO = ROOT / "target/release/lingqiao"

TOPICS = [
    "the sea", "mountains", "a city at night", "rain", "an old library", "spring",
    "the desert", "a train journey", "a lighthouse", "autumn leaves", "a market", "snow",
    "a river", "the moon", "a garden", "a bridge",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def one(client, model, topic, max_tokens):
    t0 = time.perf_counter()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": f"Write a short story about {topic}."}],
        temperature=0,
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    return "".join(text), usage.completion_tokens, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen05")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [str(LINGQIAO), "serve", "-m", args.model, "--port", str(port),
         "--parallel", str(args.n), "-t", str(args.threads)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit("server exited: " + server.stderr.read())
                time.sleep(0.2)
        client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=600)
        model = client.models.list().data[0].id
        topics = TOPICS[: args.n]
        one(client, model, "warming up", 8)
        rows, all_same = [], True
        for rnd in range(args.rounds):
            solo = [one(client, model, t, args.max_tokens) for t in topics]
            solo_tps = sum(s[1] for s in solo) / sum(s[2] for s in solo)
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.n) as ex:
                together = list(ex.map(lambda t: one(client, model, t, args.max_tokens), topics))
            wall = time.perf_counter() - t0
            conc_tps = sum(c[1] for c in together) / wall
            same = sum(a[0] == b[0] for a, b in zip(solo, together))
            all_same &= same == args.n
            print(f"round {rnd}: single stream {solo_tps:.1f} tok/s, {args.n} concurrent "
                  f"{conc_tps:.1f} tok/s total ({conc_tps / solo_tps:.2f}x), "
                  f"identical to alone: {same}/{args.n}")
            rows.append(dict(
                date=datetime.date.today().isoformat(), cpu=cpu_model(), model=args.model,
                threads=args.threads, n=args.n, max_tokens=args.max_tokens, round=rnd,
                single_tps=round(solo_tps, 2), concurrent_tps=round(conc_tps, 2),
                ratio=round(conc_tps / solo_tps, 3), identical=f"{same}/{args.n}",
                completion_tokens=sum(c[1] for c in together),
            ))
        out = ROOT / "bench/results" / f"{datetime.date.today().isoformat()}-serve-concurrency.csv"
        new = not out.exists()
        with out.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                w.writeheader()
            w.writerows(rows)
        print(f"wrote {out}")
        if not all_same:
            sys.exit("a concurrent answer differed from the same request alone")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
