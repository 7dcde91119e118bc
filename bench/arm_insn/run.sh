#!/usr/bin/env bash
# Work, not speed, of the aarch64 dot-product kernels: dynamic instructions executed per 256
# multiply-adds (one weight row x one token x 256 values), ggml's (llama.cpp's CPU backend)
# and ours, at three levels of the Arm architecture, counted under qemu-user. Emulated time
# says nothing about a real core; the count of instructions a kernel executes does.
#
#   level    compiler flags (ggml)               QEMU_CPU      our table (LINGQIAO_ISA)
#   neon     -march=armv8-a                      cortex-a53    neon
#   dotprod  -march=armv8.2-a+dotprod+fp16       neoverse-n1   dotprod
#   i8mm     -march=armv8.6-a+dotprod+fp16+i8mm  max           i8mm
# (ggml's flags are those of its GGML_CPU_ALL_VARIANTS builds android_armv8.0_1,
# android_armv8.2_2 and android_armv8.6_1: no SVE, which qemu's `max` would otherwise enable
# ggml's SVE paths for.)
#
# How: bench/arm_insn/insn_plugin.c is a QEMU TCG plugin counting executed instructions.
# Each harness runs one kernel REPS times; it is run at REPS=R1 and REPS=R2, and
# (count(R2) - count(R1)) / (R2 - R1) is one call, from which the harness's own loop
# (its `noop` kernel, measured the same way) is subtracted; divided by the call's units
# (rows x tokens x 4096 / 256) that is insn_per_256. The kernels have no data-dependent
# branches, so random data gives the same counts as real data.
#
#   ggml: bench/arm_insn/ggml_harness.c linked with ggml's CPU quant kernels, compiled from
#         the llama.cpp in the llama-cpp-python 0.3.36 sdist (as bench/build_llamacpp.sh
#         fetches it; nothing of it is committed). Kernels: vec_dot (nrc=1), vec_dot2
#         (nrc=2, SMMLA, i8mm only), and the repacked gemv/gemm that ggml's CPU backend
#         actually runs for Q4_0, Q4_K, Q5_K, Q6_K and Q8_0 weights when the CPU has dotprod.
#   ours: the kernels crate's example `insn_count` (crates/kernels/examples/insn_count.rs),
#         cross-built as in ../shared/CROSS.md (scripts/cross.sh env) into
#         ~/.cache/lingqiao/xarch-insn (or $LINGQIAO_XARCH_TARGET).
#
# Usage: bash bench/arm_insn/run.sh [ggml] [ours] [mix] [compare]   (default: all four)
#   ggml     -> bench/results/DATE-arm-insn-ggml.csv  (kernel,type,level,qemu_cpu,insn_per_256)
#   ours     -> bench/results/DATE-arm-insn-ours.csv  (the same, plus the table the run got);
#               merged: rows of the levels measured replace the file's, other levels are kept
#   mix      -> bench/results/DATE-arm-insn-ggml-mix.csv: ggml's dynamic instruction mix per
#               mnemonic for q4_0, q8_0, q4_K, q6_K (vec_dot, gemv, gemm) at dotprod and i8mm
#   compare  -> bench/results/DATE-arm-insn-compare.md: ggml against ours, decode and prompt
# Environment: R1, R2 (default 4, 12), DATE (default today), ARM_INSN_CACHE (default
# ~/.cache/lingqiao/arm-insn), LLAMACPP_DIR (default ~/.cache/lingqiao/llamacpp),
# LINGQIAO_XARCH_TARGET (default ~/.cache/lingqiao/xarch-insn), LEVELS (default "neon dotprod
# i8mm"), OURS_LEVELS (default "scalar" and LEVELS; e.g. `OURS_LEVELS=i8mm bash
# bench/arm_insn/run.sh ours compare` refreshes the i8mm rows only).
# Idempotent: builds are cached and redone only when a source or a flag changes. Builds are
# single-threaded (-j1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${ARM_INSN_CACHE:-$HOME/.cache/lingqiao/arm-insn}
LLAMACPP_DIR=${LLAMACPP_DIR:-$HOME/.cache/lingqiao/llamacpp}
R1=${R1:-4}
R2=${R2:-12}
DATE=${DATE:-$(date +%F)}
RESULTS=$ROOT/bench/results
VERSION=0.3.36
read -r -a LEVELS <<<"${LEVELS:-neon dotprod i8mm}"
read -r -a OURS_LEVELS <<<"${OURS_LEVELS:-scalar ${LEVELS[*]}}"

declare -A MARCH=([neon]=armv8-a [dotprod]=armv8.2-a+dotprod+fp16
    [i8mm]=armv8.6-a+dotprod+fp16+i8mm)
declare -A QCPU=([scalar]=cortex-a53 [neon]=cortex-a53 [dotprod]=neoverse-n1 [i8mm]=max)

steps=("$@")
((${#steps[@]})) || steps=(ggml ours mix compare)
want() { [[ " ${steps[*]} " == *" $1 "* ]]; }

for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ aarch64-linux-gnu-nm qemu-aarch64 gcc; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool: see ../shared/CROSS.md (gcc-aarch64-linux-gnu," \
            "g++-aarch64-linux-gnu, qemu-user)" >&2
        exit 1
    }
done
mkdir -p "$CACHE" "$RESULTS"

# --- the counting plugin ---------------------------------------------------------------
PLUGIN=$CACHE/insn_plugin.so
if [[ ! -f $PLUGIN || $HERE/insn_plugin.c -nt $PLUGIN ]]; then
    gcc -O2 -Wall -shared -fPIC -o "$PLUGIN" "$HERE/insn_plugin.c"
fi

# count CPU PLUGIN_ARGS PROGRAM ARGS...: the instructions PROGRAM executes (the last process
# to exit, which is the parent; see insn_plugin.c). PLUGIN_ARGS: "" or ",lo=..,hi=..,mix=1",
# which then leaves the plugin's whole output in $LAST_LOG.
LAST_LOG=$CACHE/last-plugin.log
count() {
    local cpu=$1 pargs=$2
    shift 2
    qemu-aarch64 -cpu "$cpu" -plugin "$PLUGIN$pargs" -d plugin -D "$LAST_LOG" "$@" >/dev/null
    awk '/^insns /{n=$2} END{if (n == "") exit 1; print n}' "$LAST_LOG"
}

# measure CPU BIN: one CSV row per kernel of `BIN list` ("name insn_per_256"), noop subtracted.
measure() {
    local cpu=$1 bin=$2 name units c1 c2 noop=0
    while read -r name units; do
        c1=$(count "$cpu" "" "$bin" "$name" "$(printf '%08d' "$R1")")
        c2=$(count "$cpu" "" "$bin" "$name" "$(printf '%08d' "$R2")")
        if [[ $name == noop ]]; then
            noop=$(((c2 - c1) / (R2 - R1)))
            echo "  noop: $noop instructions per call (subtracted)" >&2
            continue
        fi
        awk -v a="$c1" -v b="$c2" -v r="$((R2 - R1))" -v z="$noop" -v u="$units" -v n="$name" \
            'BEGIN { printf "%s %.2f\n", n, ((b - a) / r - z) / u }'
    done < <("$bin" list 2>/dev/null || qemu-aarch64 -cpu "$cpu" "$bin" list)
}

# "vec_dot/q4_0" -> "vec_dot,q4_0"; "gemv/q4_K_8x4" -> "gemv_8x4,q4_K"
csv_name() {
    local kernel=${1%%/*} rest=${1#*/}
    if [[ $rest =~ ^(.*)_([0-9]+x[0-9]+)$ ]]; then
        echo "${kernel}_${BASH_REMATCH[2]},${BASH_REMATCH[1]}"
    else
        echo "$kernel,$rest"
    fi
}

# --- ggml: sources and builds ------------------------------------------------------------
ggml_src() {
    local sdist=$LLAMACPP_DIR/llama_cpp_python-$VERSION.tar.gz src=$LLAMACPP_DIR/src
    if [[ ! -f $src/vendor/llama.cpp/ggml/src/ggml-cpu/arch/arm/quants.c ]]; then
        mkdir -p "$LLAMACPP_DIR"
        if [[ ! -f $sdist ]]; then
            python3 -m pip download --no-deps --no-binary llama-cpp-python \
                "llama-cpp-python==$VERSION" -d "$LLAMACPP_DIR"
        fi
        rm -rf "$src"
        mkdir -p "$src"
        tar xzf "$sdist" -C "$src" --strip-components=1
    fi
    GGML=$src/vendor/llama.cpp/ggml
}

# build_ggml LEVEL: $CACHE/ggml-LEVEL/ggml_harness, static, -O3 as ggml's Release build.
build_ggml() {
    local level=$1 dir=$CACHE/ggml-$1 flags stamp
    flags="-O3 -DNDEBUG -D_GNU_SOURCE -march=${MARCH[$level]} -I$GGML/include -I$GGML/src"
    flags+=" -I$GGML/src/ggml-cpu"
    stamp="$VERSION $flags $(sha256sum "$HERE/ggml_harness.c" | cut -c1-16)"
    if [[ -x $dir/ggml_harness && -f $dir/stamp && $(cat "$dir/stamp") == "$stamp" ]]; then
        return
    fi
    echo "building ggml's kernels for $level (-march=${MARCH[$level]})" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    {
        aarch64-linux-gnu-gcc $flags -std=gnu11 -c "$GGML/src/ggml-cpu/arch/arm/quants.c" -o "$dir/arm-quants.o"
        aarch64-linux-gnu-gcc $flags -std=gnu11 -c "$GGML/src/ggml-cpu/quants.c" -o "$dir/cpu-quants.o"
        aarch64-linux-gnu-gcc $flags -std=gnu11 -c "$GGML/src/ggml-quants.c" -o "$dir/ggml-quants.o"
        aarch64-linux-gnu-g++ $flags -std=gnu++17 -c "$GGML/src/ggml-cpu/vec.cpp" -o "$dir/vec.o"
        aarch64-linux-gnu-g++ $flags -std=gnu++17 -c "$GGML/src/ggml-cpu/arch/arm/repack.cpp" -o "$dir/arm-repack.o"
        aarch64-linux-gnu-gcc $flags -std=gnu11 -c "$HERE/ggml_harness.c" -o "$dir/harness.o"
    } 2> >(grep -v -e 'warning:' -e 'note:' -e '^ ' -e 'In function' -e 'At top level' >&2 || true)
    # Link; what the harness does not reach but those files reference (ggml_abort, the
    # generic fallbacks of kernels this level does not have, ...) becomes a stub that aborts.
    local objs=("$dir"/harness.o "$dir"/arm-quants.o "$dir"/cpu-quants.o "$dir"/ggml-quants.o
        "$dir"/vec.o "$dir"/arm-repack.o)
    local missing
    missing=$(aarch64-linux-gnu-g++ -static -o "$dir/ggml_harness" "${objs[@]}" -lm 2>&1 |
        grep -o "undefined reference to \`[^']*'" | sed "s/.*\`//; s/'//" | sort -u || true)
    {
        echo '#include <stdlib.h>'
        for s in $missing; do
            case $s in
            ggml_table_f32_ue4m3) echo "float $s[256];" ;;
            *) echo "void $s(void) { abort(); }" ;;
            esac
        done
    } >"$dir/stubs.c"
    aarch64-linux-gnu-gcc -O2 -c "$dir/stubs.c" -o "$dir/stubs.o"
    aarch64-linux-gnu-g++ -static -o "$dir/ggml_harness" "${objs[@]}" "$dir/stubs.o" -lm
    echo "$stamp" >"$dir/stamp"
}

if want ggml || want mix; then
    ggml_src
    for level in "${LEVELS[@]}"; do
        [[ -n ${MARCH[$level]:-} ]] && build_ggml "$level"
    done
fi

if want ggml; then
    out=$RESULTS/$DATE-arm-insn-ggml.csv
    tmp=$out.tmp
    echo "kernel,type,level,qemu_cpu,insn_per_256" >"$tmp"
    for level in "${LEVELS[@]}"; do
        [[ -n ${MARCH[$level]:-} ]] || continue
        echo "ggml $level (QEMU_CPU=${QCPU[$level]})" >&2
        while read -r name v; do
            echo "$(csv_name "$name"),$level,${QCPU[$level]},$v" >>"$tmp"
        done < <(measure "${QCPU[$level]}" "$CACHE/ggml-$level/ggml_harness")
    done
    mv "$tmp" "$out"
    echo "wrote $out" >&2
fi

# --- ggml's instruction mix ----------------------------------------------------------------
if want mix; then
    out=$RESULTS/$DATE-arm-insn-ggml-mix.csv
    tmp=$out.tmp
    echo "kernel,type,level,mnemonic,insn_per_256" >"$tmp"
    for level in dotprod i8mm; do
        [[ " ${LEVELS[*]} " == *" $level "* ]] || continue
        bin=$CACHE/ggml-$level/ggml_harness
        mkdir -p "$CACHE/disasm-$level"
        while read -r name units; do
            case $name in
            vec_dot/q4_0 | vec_dot/q8_0) sym=ggml_vec_dot_${name#*/}_q8_0 ;;
            vec_dot/q4_K | vec_dot/q6_K) sym=ggml_vec_dot_${name#*/}_q8_K ;;
            vec_dot2/q4_0 | vec_dot2/q8_0) sym=ggml_vec_dot_${name#*/}_q8_0 ;;
            vec_dot2/q4_K | vec_dot2/q6_K) sym=ggml_vec_dot_${name#*/}_q8_K ;;
            gemv/q4_0_* | gemv/q8_0_* | gemm/q4_0_* | gemm/q8_0_*)
                sym=ggml_${name%%/*}_${name#*/}_q8_0 ;;
            gemv/q4_K_* | gemv/q6_K_* | gemm/q4_K_* | gemm/q6_K_*)
                sym=ggml_${name%%/*}_${name#*/}_q8_K ;;
            *) continue ;;
            esac
            read -r lo size < <(aarch64-linux-gnu-nm -S --defined-only "$bin" |
                awk -v s="$sym" '$4 == s { print $1, $2 }')
            [[ -n ${lo:-} ]] || { echo "no symbol $sym" >&2; continue; }
            aarch64-linux-gnu-objdump -d --no-show-raw-insn "$bin" \
                --start-address="0x$lo" --stop-address="$(printf '0x%x' $((16#$lo + 16#$size)))" \
                >"$CACHE/disasm-$level/$sym.s"
            pargs=",lo=0x$lo,hi=$(printf '0x%x' $((16#$lo + 16#$size))),mix=1"
            count "${QCPU[$level]}" "$pargs" "$bin" "$name" "$(printf '%08d' "$R1")" >/dev/null
            grep '^at ' "$LAST_LOG" >"$CACHE/mix1.txt"
            count "${QCPU[$level]}" "$pargs" "$bin" "$name" "$(printf '%08d' "$R2")" >/dev/null
            grep '^at ' "$LAST_LOG" >"$CACHE/mix2.txt"
            # per instruction site: (count2 - count1) / (R2 - R1) / units, summed per mnemonic
            # (objdump's: qemu 7.2's disassembler prints sdot/smmla as .byte)
            awk -v r="$((R2 - R1))" -v u="$units" -v k="$(csv_name "$name")" -v l="$level" '
                FILENAME ~ /\.s$/ { if ($1 ~ /^[0-9a-f]+:$/) op[sprintf("0x%s", substr($1, 1, length($1) - 1))] = $2; next }
                FILENAME ~ /mix1/ { c1[$2] = $3; next }
                { d = ($3 - c1[$2]) / r / u; mn = ($2 in op) ? op[$2] : $4; if (d > 0) m[mn] += d; t += d }
                END {
                    for (x in m) printf "%s,%s,%s,%.3f\n", k, l, x, m[x]
                    printf "%s,%s,TOTAL,%.3f\n", k, l, t
                }' "$CACHE/disasm-$level/$sym.s" "$CACHE/mix1.txt" "$CACHE/mix2.txt" | sort -t, -k5,5gr >>"$tmp"
        done < <("$bin" list 2>/dev/null || qemu-aarch64 -cpu "${QCPU[$level]}" "$bin" list)
    done
    mv "$tmp" "$out"
    echo "wrote $out (disassembly in $CACHE/disasm-*)" >&2
fi

# --- ours -------------------------------------------------------------------------------------
if want ours; then
    XTARGET=${LINGQIAO_XARCH_TARGET:-$HOME/.cache/lingqiao/xarch-insn}
    (cd "$ROOT" && eval "$(LINGQIAO_XARCH_TARGET=$XTARGET bash scripts/cross.sh env)" &&
        /usr/bin/cargo build -j1 --release --target aarch64-unknown-linux-gnu \
            -p lingqiao-kernels --example insn_count)
    bin=$XTARGET/aarch64-unknown-linux-gnu/release/examples/insn_count
    out=$RESULTS/$DATE-arm-insn-ours.csv
    tmp=$out.tmp
    echo "kernel,type,level,qemu_cpu,insn_per_256,isa" >"$tmp"
    # the existing file's rows of the levels this run does not measure
    if [[ -f $out ]]; then
        tail -n +2 "$out" | awk -F, -v skip=" ${OURS_LEVELS[*]} " \
            'index(skip, " " $3 " ") == 0' >>"$tmp"
    fi
    for level in "${OURS_LEVELS[@]}"; do
        cpu=${QCPU[$level]}
        isa=$(LINGQIAO_ISA=$level qemu-aarch64 -cpu "$cpu" "$bin" noop 1 |
            sed -n 's/.* isa=\([^ ]*\).*/\1/p')
        echo "ours $level (QEMU_CPU=$cpu, LINGQIAO_ISA=$level: table $isa)" >&2
        [[ $isa == "$level" ]] || echo "  warning: LINGQIAO_ISA=$level ran the $isa table" >&2
        while read -r name v; do
            echo "$(csv_name "$name"),$level,$cpu,$v,$isa" >>"$tmp"
        done < <(LINGQIAO_ISA=$level measure "$cpu" "$bin")
    done
    # header first, then the rows by level (scalar neon dotprod i8mm), each level's in the
    # harness's order
    { head -n 1 "$tmp"; tail -n +2 "$tmp" | awk -F, '
        BEGIN { o["scalar"] = 0; o["neon"] = 1; o["dotprod"] = 2; o["i8mm"] = 3 }
        { printf "%d,%06d,%s\n", ($3 in o) ? o[$3] : 9, NR, $0 }' |
        sort -t, -k1,1n -k2,2n | cut -d, -f3-; } >"$tmp.sorted"
    rm "$tmp"
    mv "$tmp.sorted" "$out"
    echo "wrote $out" >&2
fi

# --- comparison ---------------------------------------------------------------------------
# compare.md: whatever stands above the marker line in the existing file (a hand-written
# summary) is kept; below it, compare.py's tables (with the per-token table when both
# DATE-arm-insn-llama-token.csv and DATE-arm-insn-ours-token.csv exist).
MARKER='<!-- below: generated by bench/arm_insn/compare.py (run.sh compare); text above is kept -->'
if want compare; then
    g=$RESULTS/$DATE-arm-insn-ggml.csv
    o=$RESULTS/$DATE-arm-insn-ours.csv
    md=$RESULTS/$DATE-arm-insn-compare.md
    tok=()
    if [[ -f $RESULTS/$DATE-arm-insn-llama-token.csv && -f $RESULTS/$DATE-arm-insn-ours-token.csv ]]; then
        tok=("$RESULTS/$DATE-arm-insn-llama-token.csv" "$RESULTS/$DATE-arm-insn-ours-token.csv")
    fi
    if [[ -f $g && -f $o ]]; then
        {
            if [[ -f $md ]] && grep -qxF -- "$MARKER" "$md"; then
                awk -v m="$MARKER" '$0 == m { exit } { print }' "$md"
            fi
            echo "$MARKER"
            echo
            python3 "$HERE/compare.py" "$g" "$o" "${tok[@]}"
        } >"$md.tmp"
        mv "$md.tmp" "$md"
        cat "$md"
    else
        echo "compare: needs $g and $o" >&2
    fi
fi
