#!/usr/bin/env bash
# The slimming table for qwen05 (bench/results/2026-11-29-slim-qwen05.txt): its Q4_K_M file
# dequantized to F16 is the "original"; every candidate is quantized from that F16 and
# scored on the committed GPL-3 text (8 chunks of 512 tokens) against the original's
# log-probs. Then --fit-memory picks the best candidate under 415 MiB and writes it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lingqiao-cli
LQ=./target/release/lingqiao
DIR=${SLIM_DIR:-$HOME/.cache/lingqiao/slim}
mkdir -p "$DIR"
[[ -f $DIR/qwen05-f16.gguf ]] || $LQ quantize qwen05 "$DIR/qwen05-f16.gguf" F16
TEXT=testdata/perplexity/gpl-3.0.txt
$LQ slim "$DIR/qwen05-f16.gguf" -f $TEXT -c 512 --chunks 8 -t 2 \
    --to Q8_0,Q6_K,Q5_K_M,Q5_K_S,Q5_1,Q5_0,Q4_K_M,Q4_K_S,Q4_1,Q4_0,Q3_K_L,Q3_K_M,Q3_K_S,Q2_K
$LQ slim "$DIR/qwen05-f16.gguf" -f $TEXT -c 512 --chunks 8 -t 2 \
    --to Q4_K_S,Q4_0,Q3_K_M,Q3_K_S,Q2_K --fit-memory 415MiB -o "$DIR/qwen05-fit-415MiB.gguf"
