#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Fetches the models the tests
# need into ~/.cache/lingqiao (kept between runs), then checks formatting, lints and runs
# every test on optimized code.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build (release)"
cargo build --release --workspace --all-targets

echo "== models"
./target/release/lingqiao pull smollm2 gemma3 qwen05

echo "== format and lints"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --release --workspace
