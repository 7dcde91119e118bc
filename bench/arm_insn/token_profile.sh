#!/usr/bin/env bash
# Where the instructions of one generated token go, ours against llama.cpp: the runs of
# ours_token.sh and llama_token.sh (same prompt, N1 and N2 tokens, one thread, same QEMU_CPU)
# with the counting plugin also counting each instruction address, the per-address difference
# divided by N2 - N1 and summed per function (the binaries' symbols; our lingqiao is a PIE,
# which qemu-user loads at 0x5500000000, llama_decode is static). Functions are those of the
# symbol table, so inlined code counts towards its caller (ours: the matmul's per-row loop
# appears as a closure `Fn::call`).
#
# Usage: bash bench/arm_insn/token_profile.sh [MODEL_KEY...]   (default: smollm2 gemma3 qwen05)
#   -> bench/results/DATE-arm-insn-token-profile.md: per model, the TOP functions of each
# Environment: LEVEL (default dotprod: needs llama.cpp built for it by llama_token.sh), TOP
# (default 12), N1, N2 (2, 6), DATE, ARM_INSN_CACHE, LINGQIAO_XARCH_TARGET, LINGQIAO_HOME.
# Run ours_token.sh and llama_token.sh first (they build the two programs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${ARM_INSN_CACHE:-$HOME/.cache/lingqiao/arm-insn}
XTARGET=${LINGQIAO_XARCH_TARGET:-$HOME/.cache/lingqiao/xarch-insn}
MODELS=${LINGQIAO_HOME:-$HOME/.cache/lingqiao}/models
LEVEL=${LEVEL:-dotprod}
TOP=${TOP:-12}
N1=${N1:-2}
N2=${N2:-6}
DATE=${DATE:-$(date +%F)}
PROMPT="The capital of France is"
declare -A QCPU=([scalar]=cortex-a53 [neon]=cortex-a53 [dotprod]=neoverse-n1 [i8mm]=max)
declare -A KEYS=([smollm2]=SmolLM2-135M-Instruct.Q4_1.gguf
    [gemma3]=gemma-3-270m-q4_k_m.gguf [qwen05]=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf)
models=("$@")
((${#models[@]})) || models=(smollm2 gemma3 qwen05)
CPU=${QCPU[$LEVEL]}
OURS=$XTARGET/aarch64-unknown-linux-gnu/release/lingqiao
LLAMA=$CACHE/llama-$LEVEL/llama_decode
for b in "$OURS" "$LLAMA"; do
    [[ -x $b ]] || { echo "no $b: run ours_token.sh / llama_token.sh first" >&2; exit 1; }
done

PLUGIN=$CACHE/insn_plugin_sites.so
if [[ ! -f $PLUGIN || $HERE/insn_plugin.c -nt $PLUGIN ]]; then
    gcc -O2 -Wall -shared -fPIC -DSITES='(1 << 20)' -o "$PLUGIN" "$HERE/insn_plugin.c"
fi
WORK=$CACHE/profile
mkdir -p "$WORK"

# sites TAG N LO HI PROGRAM ARGS...: "address count" per instruction in [LO, HI) -> TAG-N.txt
sites() {
    local tag=$1 n=$2 lo=$3 hi=$4
    shift 4
    qemu-aarch64 -cpu "$CPU" -plugin "$PLUGIN,lo=$lo,hi=$hi,mix=1" -d plugin \
        -D "$WORK/$tag.log" "$@" >/dev/null 2>"$WORK/$tag.err"
    awk '/^at / { print $2, $3 }' "$WORK/$tag.log" >"$WORK/$tag-$n.txt"
}

# Our code as qemu-user maps a PIE, from 0x5500000000: up to the end of the last executable
# PT_LOAD.
OURS_LO=0x5500000000
OURS_HI=
while read -r _ _ vaddr _ _ memsz flags; do
    if [[ $flags == *E* ]]; then OURS_HI=$(printf '0x%x' $((OURS_LO + vaddr + memsz))); fi
done < <(aarch64-linux-gnu-readelf -lW "$OURS" | grep '^ *LOAD')

out=$ROOT/bench/results/$DATE-arm-insn-token-profile.md
{
    echo "# Instructions per generated token by function, ours against llama.cpp"
    echo
    echo "Level $LEVEL (QEMU_CPU=$CPU), one thread, prompt \"$PROMPT\", tokens $N1..$N2"
    echo "(bench/arm_insn/token_profile.sh). M = millions of instructions per token. Ours counts"
    echo "our binary's code only (not libc's; ours spends almost nothing there), llama.cpp's"
    echo "static binary counts everything. Ours' \`Fn::call (inlined closures)\` is mostly the"
    echo "matmul's per-row loop (\`ops::matmul_segments_with\`: the call through the kernel table"
    echo "and the software prefetch of the row ahead), inlined into the closure the pool runs."
    echo
} >"$out.tmp"
for m in "${models[@]}"; do
    path=$m
    [[ -n ${KEYS[$m]:-} ]] && path=$MODELS/${KEYS[$m]}
    [[ -f $path ]] || { echo "no model $path" >&2; continue; }
    for n in "$N1" "$N2"; do
        LINGQIAO_ISA=$LEVEL LINGQIAO_THREADS=1 sites ours "$n" "$OURS_LO" "$OURS_HI" \
            "$OURS" run -m "$path" -p "$PROMPT" -n "$n" --temp 0 -t 1 -c 256
        sites llama "$n" 0x0 0x10000000000 "$LLAMA" "$path" "$(printf '%06d' "$n")"
    done
    python3 - "$OURS" "$LLAMA" "$WORK" "$N1" "$N2" "$TOP" "$(basename "$path")" >>"$out.tmp" <<'EOF'
import bisect, collections, subprocess, sys

ours, llama, work, n1, n2, top, model = sys.argv[1:]
n, top = int(n2) - int(n1), int(top)


def profile(binary, bias, tag):
    syms = []
    nm = subprocess.run(["aarch64-linux-gnu-nm", "-n", "-C", "--defined-only", binary],
                        capture_output=True, text=True, check=True).stdout
    for line in nm.splitlines():
        p = line.split(" ", 2)
        if len(p) == 3 and p[1] in "tTwW":
            syms.append((int(p[0], 16) + bias, p[2]))
    addrs = [a for a, _ in syms]

    def load(f):
        return {int(a, 16): int(c) for a, c in (line.split() for line in open(f))}

    c1, c2 = load(f"{work}/{tag}-{n1}.txt"), load(f"{work}/{tag}-{n2}.txt")
    agg = collections.Counter()
    for a in set(c1) | set(c2):
        d = c2.get(a, 0) - c1.get(a, 0)
        if d:
            i = bisect.bisect_right(addrs, a) - 1
            agg[syms[i][1] if i >= 0 else "?"] += d
    return sum(agg.values()) / n, [(k, v / n) for k, v in agg.most_common(top)]


def short(name):
    name = name.replace("core::ops::function::impls::<impl core::ops::function::Fn<A> for &F>::call",
                        "Fn::call (inlined closures)")
    return name if len(name) <= 70 else name[:67] + "..."


(ot, orows), (lt, lrows) = profile(ours, 0x5500000000, "ours"), profile(llama, 0, "llama")
print(f"## {model}: ours {ot / 1e6:.1f} M, llama.cpp {lt / 1e6:.1f} M per token\n")
print("| ours | M | % | llama.cpp | M | % |")
print("|---|---:|---:|---|---:|---:|")
for i in range(top):
    o = orows[i] if i < len(orows) else ("", 0)
    l = lrows[i] if i < len(lrows) else ("", 0)
    print(f"| `{short(o[0])}` | {o[1] / 1e6:.2f} | {100 * o[1] / ot:.1f} "
          f"| `{short(l[0])}` | {l[1] / 1e6:.2f} | {100 * l[1] / lt:.1f} |")
print()
EOF
    echo "profiled $(basename "$path")" >&2
done
mv "$out.tmp" "$out"
echo "wrote $out" >&2
