#!/usr/bin/env python3
"""Speech-to-text speed and memory: `lingqiao transcribe` against faster-whisper (float32
and int8) on the same clips, models and thread counts, in one run.

    bash bench/whisper/run.sh            # the pinned faster-whisper venv, then this script

Each (tool, model, precision, threads) runs in its own process, which loads the model once
and transcribes every clip in turn (faster-whisper's defaults: beam 5; `--beam 1` for
greedy). Reported per configuration:
- rtf: transcription wall time over audio duration (lower is faster), the model load
  excluded, audio decoding and features included;
- peak RSS of the process (the model load included), from the kernel's ru_maxrss.
Writes bench/results/DATE-whisper.csv and .md.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "testdata" / "whisper" / "clips"
MODELS = Path(os.environ.get("LINGQIAO_MODELS_DIR", Path.home() / ".cache/lingqiao/models"))
BIN = os.environ.get("LINGQIAO_BIN", str(ROOT / "target" / "release" / "lingqiao"))

# The faster-whisper side runs in a child process (this file with --fw-child) so that its
# peak RSS is its own.
FW_CHILD = r"""
import json, resource, sys, time
from faster_whisper import WhisperModel
model_dir, compute_type, threads, beam, clips = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
m = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads)
out = []
for c in clips:
    t = time.perf_counter()
    segs, info = m.transcribe(c, beam_size=beam)
    text = "".join(s.text for s in segs)
    out.append({"clip": c, "seconds": time.perf_counter() - t, "duration": info.duration, "text": text})
print(json.dumps({"runs": out, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            fam = re.search(r"cpu family\s*:\s*(\d+)", Path("/proc/cpuinfo").read_text())
            mod = re.search(r"^model\s*:\s*(\d+)", Path("/proc/cpuinfo").read_text(), re.M)
            return f"{name} (family {fam.group(1)} model {mod.group(1)})" if fam and mod else name
    return platform.processor()


def run_child(cmd):
    """Runs cmd; returns (stdout, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({p.returncode}):\n{err[-2000:]}")
    return out, err


def ours(key, threads, beam, clips):
    secs, audio, peak, texts = 0.0, 0.0, 0, []
    for c in clips:
        out, err = run_child([BIN, "transcribe", "-m", key, "-t", str(threads), "--beam", str(beam), str(c)])
        m = re.search(r"audio\s*=\s*([\d.]+) s, transcribed in ([\d.]+) s", err)
        r = re.search(r"peak RSS ([\d.]+) (MiB|GiB|KiB)", err)
        audio += float(m.group(1))
        secs += float(m.group(2))
        scale = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[r.group(2)]
        peak = max(peak, float(r.group(1)) * scale)
        texts.append(out.strip())
    return secs, audio, peak, texts


def faster_whisper(key, compute_type, threads, beam, clips):
    out, _ = run_child([sys.executable, "-c", FW_CHILD, str(MODELS / key), compute_type, str(threads), str(beam)]
                       + [str(c) for c in clips])
    got = json.loads(out)
    res, peak = got["runs"], got["peak_kib"] / 1024
    return sum(r["seconds"] for r in res), sum(r["duration"] for r in res), peak, [r["text"] for r in res]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="whisper-tiny-en,whisper-base")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    clips = sorted(p for p in CLIPS.iterdir() if p.suffix in (".wav", ".ogg") and "long" not in p.name)
    rows = []
    for key in a.models.split(","):
        use = [c for c in clips if key != "whisper-tiny-en" or c.name.startswith("en_")]
        for t in [int(x) for x in a.threads.split(",")]:
            configs = [("lingqiao", "float32", lambda: ours(key, t, a.beam, use))]
            for ct in ("float32", "int8"):
                configs.append(("faster-whisper", ct, lambda ct=ct: faster_whisper(key, ct, t, a.beam, use)))
            for tool, prec, fn in configs:
                t0 = time.time()
                secs, audio, peak, _ = fn()
                rows.append({"model": key, "threads": t, "tool": tool, "precision": prec,
                             "clips": len(use), "audio_s": round(audio, 2), "transcribe_s": round(secs, 3),
                             "rtf": round(secs / audio, 4), "peak_rss_mib": round(peak, 1)})
                print(rows[-1], f"({time.time() - t0:.0f} s)", file=sys.stderr)
    date = datetime.date.today().isoformat()
    out = Path(a.out) if a.out else ROOT / "bench" / "results" / f"{date}-whisper.csv"
    cols = list(rows[0])
    out.write_text(",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in rows))
    md = [f"# Whisper: lingqiao vs faster-whisper, {date}", "",
          f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs. Beam {a.beam}. Clips: testdata/whisper/clips "
          "(the >60 s clip excluded); rtf = transcription wall time / audio duration, model load excluded; "
          "peak RSS includes the model.", "",
          "| model | threads | tool | precision | rtf | peak RSS MiB |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['threads']} | {r['tool']} | {r['precision']} | {r['rtf']} | {r['peak_rss_mib']} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(out)


if __name__ == "__main__":
    main()
