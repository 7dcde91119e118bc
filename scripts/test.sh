#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Fetches the models the tests
# need into ~/.cache/lingqiao (kept between runs), then checks formatting, lints and runs
# every test on optimized code.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts (seconds since this script began), so a slow CI run shows
# where its time went.
step() { echo "== $1 (at ${SECONDS} s)"; }

step "build (release)"
cargo build --release --workspace --all-targets

step "models"
./target/release/lingqiao pull smollm2 gemma3 qwen05 whisper-tiny-en whisper-base

step "format and lints"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings

step "tests"
cargo test --release --workspace

# The HTTP server end to end: the real openai client against `lingqiao serve -m qwen05`.
step "server (pytest, tests/server)"
python3 -m pip install -q --disable-pip-version-check -r tests/server/requirements.txt
python3 -m pytest -q tests/server

# The default run above uses the best kernels this CPU has. The agreement with llama.cpp
# must also hold on the other kernel tables: AVX2 (when the default is AVX-512; on an
# AVX2-only CPU the default run already was the AVX2 table) and the scalar reference.
default_isa=$(./target/release/lingqiao run -m smollm2 -p hi -n 1 --temp 0 2>&1 >/dev/null | grep -o 'kernels: [a-z0-9]*' | cut -d' ' -f2 || true)
if [[ $default_isa == avx2 ]]; then
    step "golden tests on the scalar kernels (default run: avx2, so the AVX2 table is covered)"
else
    step "golden tests on the AVX2 and scalar kernels (default run: $default_isa)"
    LINGQIAO_ISA=avx2 cargo test --release -p lingqiao-model --test golden_llamacpp --test qwen3_tiny
fi
# On the scalar table the golden prompts' short subset (as under qemu): the scalar kernels
# are the definition the SIMD tables are checked against bit for bit on random data in the
# kernels' own tests, and the full set on scalar took 7 of CI's 30 minutes.
LINGQIAO_GOLDEN_SUBSET=short LINGQIAO_FORCE_SCALAR=1 cargo test --release -p lingqiao-model --test golden_llamacpp --test qwen3_tiny

# aarch64: the cross build, and the kernels' equality tests and the golden tests (their
# short subset: emulation is ~100x slower) under qemu-user on three CPUs, one per aarch64
# table (NEON, dotprod, i8mm). `bash scripts/cross.sh full` runs every golden prompt.
step "aarch64 under qemu (scripts/cross.sh)"
bash scripts/cross.sh

# The chat page at / in a real browser, against the real server (tests/browser/run.sh
# installs Debian's chromium and the pinned playwright-core when they are missing).
step "browser test of the chat page"
tests/browser/run.sh

echo "== all tests passed in ${SECONDS} s"
