#!/usr/bin/env bash
# Dynamic instructions lingqiao executes per generated token on aarch64 (one thread), counted
# under qemu-user with bench/arm_insn/insn_plugin.c: the counterpart of llama_token.sh. The
# CLI is cross-built as in ../shared/CROSS.md (scripts/cross.sh env) into
# ~/.cache/lingqiao/xarch-insn, and `lingqiao run -m MODEL -p PROMPT -n N --temp 0 -t 1
# -c 256` (256: llama_decode.cpp's n_ctx) is run with N1 and N2 generated tokens;
# (count(N2) - count(N1)) / (N2 - N1) is one token (a one-token forward pass, greedy sampling
# and the streamed text of the token, averaged over the positions after the prompt). Prompt,
# N1 and N2 are llama_decode.cpp's and llama_token.sh's, so the two cover the same positions:
# the prompt "The capital of France is" (with the model's BOS where it has one, as
# llama_tokenize(add_special=true) and our `run` both add it), then generated tokens N1..N2.
# (llama_decode.cpp also feeds its last sampled token back through the model, `run` does not;
# both differences are N2 - N1 forward passes and samplings all the same, at positions one
# apart.) The run must stop for length, not at an end-of-generation token (llama_decode.cpp
# never stops early): the script checks that it generated N tokens.
#
#   level    LINGQIAO_ISA   QEMU_CPU
#   neon     neon           cortex-a53
#   dotprod  dotprod        neoverse-n1
#   i8mm     i8mm           max
#   scalar   scalar         cortex-a53   (not in the default LEVELS)
#
# Usage: bash bench/arm_insn/ours_token.sh [MODEL_KEY_OR_PATH...]   (default: smollm2)
#   -> bench/results/DATE-arm-insn-ours-token.csv
#      (model,level,qemu_cpu,insn_per_token,isa); merged: a row of the same model and level
#      is replaced, others are kept
# Environment: LEVELS (default "neon dotprod i8mm"), N1, N2 (default 2, 6), DATE,
# ARM_INSN_CACHE, LINGQIAO_XARCH_TARGET (default ~/.cache/lingqiao/xarch-insn), LINGQIAO_HOME
# (models in $LINGQIAO_HOME/models, default ~/.cache/lingqiao/models).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${ARM_INSN_CACHE:-$HOME/.cache/lingqiao/arm-insn}
XTARGET=${LINGQIAO_XARCH_TARGET:-$HOME/.cache/lingqiao/xarch-insn}
MODELS=${LINGQIAO_HOME:-$HOME/.cache/lingqiao}/models
N1=${N1:-2}
N2=${N2:-6}
DATE=${DATE:-$(date +%F)}
PROMPT="The capital of France is"
read -r -a LEVELS <<<"${LEVELS:-neon dotprod i8mm}"
declare -A QCPU=([scalar]=cortex-a53 [neon]=cortex-a53 [dotprod]=neoverse-n1 [i8mm]=max)
declare -A KEYS=([smollm2]=SmolLM2-135M-Instruct.Q4_1.gguf
    [gemma3]=gemma-3-270m-q4_k_m.gguf [qwen05]=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf)
models=("$@")
((${#models[@]})) || models=(smollm2)

mkdir -p "$CACHE"
PLUGIN=$CACHE/insn_plugin.so
if [[ ! -f $PLUGIN || $HERE/insn_plugin.c -nt $PLUGIN ]]; then
    gcc -O2 -Wall -shared -fPIC -o "$PLUGIN" "$HERE/insn_plugin.c"
fi

(cd "$ROOT" && eval "$(LINGQIAO_XARCH_TARGET=$XTARGET bash scripts/cross.sh env)" &&
    /usr/bin/cargo build -j1 --release --target aarch64-unknown-linux-gnu -p lingqiao-cli)
BIN=$XTARGET/aarch64-unknown-linux-gnu/release/lingqiao

LOG=$CACHE/ours-plugin.log
ERR=$CACHE/ours-token.stderr
# count LEVEL MODEL N: the instructions of one run; checks the table and the tokens generated.
count() {
    local level=$1 path=$2 n=$3
    # LINGQIAO_THREADS=1 too: a pool other than -t's (none is expected) would have one thread.
    LINGQIAO_ISA=$level LINGQIAO_THREADS=1 qemu-aarch64 -cpu "${QCPU[$level]}" \
        -plugin "$PLUGIN" -d plugin -D "$LOG" \
        "$BIN" run -m "$path" -p "$PROMPT" -n "$n" --temp 0 -t 1 -c 256 >/dev/null 2>"$ERR"
    grep -q "generation .*/ *$n tokens .*stop: Length" "$ERR" || {
        echo "$(basename "$path") $level: not $n tokens stopped for length:" >&2
        cat "$ERR" >&2
        exit 1
    }
    awk '/^insns /{n=$2} END{if (n == "") exit 1; print n}' "$LOG"
}

out=$ROOT/bench/results/$DATE-arm-insn-ours-token.csv
[[ -f $out ]] || echo "model,level,qemu_cpu,insn_per_token,isa" >"$out"
for level in "${LEVELS[@]}"; do
    for m in "${models[@]}"; do
        path=$m
        [[ -n ${KEYS[$m]:-} ]] && path=$MODELS/${KEYS[$m]}
        [[ -f $path ]] || { echo "no model $path (lingqiao pull $m)" >&2; continue; }
        c1=$(count "$level" "$path" "$N1")
        c2=$(count "$level" "$path" "$N2")
        isa=$(sed -n 's/.*(kernels: \([^)]*\)).*/\1/p' "$ERR")
        [[ $isa == "$level" ]] || echo "  warning: LINGQIAO_ISA=$level ran the $isa table" >&2
        per=$(((c2 - c1) / (N2 - N1)))
        name=$(basename "$path")
        echo "$name $level: $per instructions per generated token (table $isa)" >&2
        awk -F, -v m="$name" -v l="$level" '!($1 == m && $2 == l)' "$out" >"$out.tmp"
        echo "$name,$level,${QCPU[$level]},$per,$isa" >>"$out.tmp"
        mv "$out.tmp" "$out"
    done
done
echo "wrote $out" >&2
