#!/usr/bin/env bash
# Decode kernel speed, ours against ggml's, on this machine: for every weight type and
# decode product kind (one token, four tokens), GB/s of weights and weights per cycle with
# the weights in cache (~192 KiB, L2) and streamed from memory (>= 512 MiB), one thread.
#
#   ours: crates/kernels/examples/kernel_speed.rs, every kernel table this CPU has (scalar,
#         avx2, avx512); its doc comment has the method (shapes, data, clock, repeats).
#   ggml: bench/kernels/ggml_speed.c compiled here with ggml's CPU kernels from the
#         llama.cpp that bench/build_llamacpp.sh fetches (the llama-cpp-python 0.3.36 sdist,
#         in ~/.cache/lingqiao/llamacpp/src; fetched here if missing, nothing of it is
#         committed): ggml-cpu/arch/x86/quants.c, quants.c, vec.cpp, arch/x86/repack.cpp,
#         llamafile/sgemm.cpp and ggml-quants.c, with the -m flags and defines of ggml's
#         release build for each x86 level the CPU has (avx2: SSE4.2 AVX AVX2 FMA F16C
#         BMI2; avx512: also AVX-512 F/CD/VL/DQ/BW/VBMI/VNNI, BF16 and AVX-VNNI where the
#         CPU lists them). Symbols those files reference but the harness never reaches
#         (ggml_abort, other types' generic kernels, ...) become stubs that abort.
#         ggml_speed.c's comment says which of ggml's paths are timed (vec_dot, llamafile
#         sgemm, CPU_REPACK gemv/gemm).
#   Both measure the core clock the same way (a chain of dependent adds against the wall
#   clock), drop timings during which the process was switched out, and take the best of
#   REPEATS timings, and the run alternates ours and ggml's ROUNDS times and keeps each
#   row's best round: the machines we run on are shared.
#
# Writes bench/results/DATE-decode-kernels.csv (both tools' rows; cpu, isa, impl, type,
# kind, residence, cols, rows, gbps, weights_per_cycle, ghz) and DATE-decode-kernels.md
# (bench/kernels/table.py: ours against ggml per type and kind, with the CPU, its clock and
# one thread's read bandwidth from `lingqiao bench --bandwidth -t 1`).
#
# Usage: bash bench/kernels/run.sh          (build, measure, write both files)
#        bash bench/kernels/run.sh table    (only the bandwidth and the .md, from the CSV)
# Environment: DATE (default today), ROUNDS (3: ours and ggml's alternate, each row is
# its best round), REPEATS (5 timings a round), TYPES (e.g. Q4_0,Q4_K; default all),
# OURS_ISA (e.g. avx2; default every table), CACHE_KIB (192), STREAM_MIB (512),
# LLAMACPP_DIR (~/.cache/lingqiao/llamacpp), KBENCH_CACHE (~/.cache/lingqiao/kbench: the
# ggml builds), LINGQIAO_BIN (target/release/lingqiao: for the bandwidth; skipped if absent).
# Builds are single-threaded (CARGO_BUILD_JOBS=1) and cached.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${KBENCH_CACHE:-$HOME/.cache/lingqiao/kbench}
LLAMACPP_DIR=${LLAMACPP_DIR:-$HOME/.cache/lingqiao/llamacpp}
DATE=${DATE:-$(date +%F)}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-3}
CACHE_KIB=${CACHE_KIB:-192}
STREAM_MIB=${STREAM_MIB:-512}
RESULTS=$ROOT/bench/results
VERSION=0.3.36
mkdir -p "$CACHE" "$RESULTS"

[[ $(uname -m) == x86_64 ]] || { echo "ggml_speed.c is for x86-64" >&2; exit 1; }
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
CPU="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') (family $(grep -m1 '^cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))"
echo "cpu: $CPU" >&2

csv=$RESULTS/$DATE-decode-kernels.csv
if [[ ${1:-} != table ]]; then
# --- ggml: source and one build per x86 level --------------------------------------------
src=$LLAMACPP_DIR/src
if [[ ! -f $src/vendor/llama.cpp/ggml/src/ggml-cpu/arch/x86/quants.c ]]; then
    sdist=$LLAMACPP_DIR/llama_cpp_python-$VERSION.tar.gz
    mkdir -p "$LLAMACPP_DIR"
    [[ -f $sdist ]] || python3 -m pip download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$VERSION" -d "$LLAMACPP_DIR"
    rm -rf "$src" && mkdir -p "$src"
    tar xzf "$sdist" -C "$src" --strip-components=1
fi
GGML=$src/vendor/llama.cpp/ggml

declare -A MFLAGS DEFS
LEVELS=()
if has avx2 fma f16c bmi2; then
    LEVELS+=(avx2)
    MFLAGS[avx2]="-msse4.2 -mf16c -mfma -mbmi2 -mavx -mavx2"
    DEFS[avx2]="-DGGML_SSE42 -DGGML_AVX -DGGML_AVX2 -DGGML_FMA -DGGML_F16C -DGGML_BMI2"
fi
if has avx2 fma f16c bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512_vnni; then
    LEVELS+=(avx512)
    MFLAGS[avx512]="${MFLAGS[avx2]} -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw -mavx512vnni"
    DEFS[avx512]="${DEFS[avx2]} -DGGML_AVX512 -DGGML_AVX512_VNNI"
    has avx512vbmi && MFLAGS[avx512]+=" -mavx512vbmi" && DEFS[avx512]+=" -DGGML_AVX512_VBMI"
    has avx512_bf16 && MFLAGS[avx512]+=" -mavx512bf16" && DEFS[avx512]+=" -DGGML_AVX512_BF16"
    has avx_vnni && MFLAGS[avx512]+=" -mavxvnni" && DEFS[avx512]+=" -DGGML_AVX_VNNI"
fi

build_ggml() {
    local level=$1 dir=$CACHE/ggml-$1 cflags stamp
    cflags="-O3 -DNDEBUG -D_GNU_SOURCE -D_XOPEN_SOURCE=600 ${DEFS[$level]}"
    cflags+=" -DGGML_USE_CPU_REPACK -DGGML_USE_LLAMAFILE ${MFLAGS[$level]}"
    cflags+=" -I$GGML/include -I$GGML/src -I$GGML/src/ggml-cpu"
    local c=$GGML/src/ggml-cpu
    # ggml's objects: rebuilt when the version or the flags change
    stamp="$VERSION $cflags"
    if [[ ! -f $dir/stamp || $(cat "$dir/stamp") != "$stamp" ]]; then
        echo "building ggml's kernels for $level (${MFLAGS[$level]})" >&2
        rm -rf "$dir"
        mkdir -p "$dir"
        # shellcheck disable=SC2086
        {
            gcc $cflags -std=gnu11 -c "$c/arch/x86/quants.c" -o "$dir/x86-quants.o"
            gcc $cflags -std=gnu11 -c "$c/quants.c" -o "$dir/cpu-quants.o"
            gcc $cflags -std=gnu11 -c "$GGML/src/ggml-quants.c" -o "$dir/ggml-quants.o"
            g++ $cflags -std=gnu++17 -c "$c/vec.cpp" -o "$dir/vec.o"
            g++ $cflags -std=gnu++17 -c "$c/arch/x86/repack.cpp" -o "$dir/x86-repack.o"
            g++ $cflags -std=gnu++17 -c "$c/llamafile/sgemm.cpp" -o "$dir/sgemm.o"
        } 2> >(grep -v -e 'warning:' -e 'note:' -e '^ ' -e 'In function' -e 'At top level' \
            -e 'In file included' -e '^\s*from ' >&2 || true)
        echo "$stamp" >"$dir/stamp"
    fi
    # the harness, every time (a second); link it
    # shellcheck disable=SC2086
    gcc $cflags -std=gnu11 -c "$HERE/ggml_speed.c" -o "$dir/harness.o"
    local objs=("$dir"/harness.o "$dir"/x86-quants.o "$dir"/cpu-quants.o "$dir"/ggml-quants.o
        "$dir"/vec.o "$dir"/x86-repack.o "$dir"/sgemm.o)
    local missing
    missing=$(g++ -o "$dir/ggml_speed" "${objs[@]}" -lm 2>&1 |
        grep -o "undefined reference to \`[^']*'" | sed "s/.*\`//; s/'//" | sort -u || true)
    {
        echo '#include <stdlib.h>'
        for s in $missing; do
            case $s in
            ggml_table_f32_*) echo "float $s[1 << 16];" ;;
            *) echo "void $s(void) { abort(); }" ;;
            esac
        done
    } >"$dir/stubs.c"
    gcc -O2 -c "$dir/stubs.c" -o "$dir/stubs.o"
    g++ -o "$dir/ggml_speed" "${objs[@]}" "$dir/stubs.o" -lm
}
for level in "${LEVELS[@]}"; do build_ggml "$level"; done

# --- ours -----------------------------------------------------------------------------------
export CARGO_BUILD_JOBS=1
(cd "$ROOT" && cargo build --release -p lingqiao-kernels --example kernel_speed)
OURS=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/kernel_speed

# --- run --------------------------------------------------------------------------------------
# ROUNDS rounds, ours and ggml's alternating, so that both meet the machine's load at its
# best and at its worst; each row of the CSV is its best round (the highest GB/s).
raw=$CACHE/$DATE-rounds.csv
args=(--repeats "$REPEATS" --cache-kib "$CACHE_KIB" --stream-mib "$STREAM_MIB")
[[ -n ${TYPES:-} ]] && args+=(--types "$TYPES")
ours_args=("${args[@]}")
[[ -n ${OURS_ISA:-} ]] && ours_args+=(--isa "$OURS_ISA")
: >"$raw"
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    "$OURS" --cpu "$CPU" "${ours_args[@]}" --out "$raw.part"
    tail -n +2 "$raw.part" >>"$raw"
    for level in "${LEVELS[@]}"; do
        "$CACHE/ggml-$level/ggml_speed" --cpu "$CPU" --isa "$level" "${args[@]}" | tail -n +2 >>"$raw"
    done
done
python3 - "$raw" "$csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
best, order = {}, []
for r in rows:
    k = tuple(r[1:6])  # isa, impl, type, kind, residence
    if k not in best:
        order.append(k)
    if k not in best or float(r[8]) > float(best[k][8]):
        best[k] = r
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow("cpu,isa,impl,type,kind,residence,cols,rows,gbps,weights_per_cycle,ghz".split(","))
    for k in order:
        w.writerow(best[k])
PY
echo "wrote $csv (best of $ROUNDS rounds; every round in $raw)" >&2

fi

# --- one thread's read bandwidth and the table ------------------------------------------------
LINGQIAO_BIN=${LINGQIAO_BIN:-$ROOT/target/release/lingqiao}
bw=""
if [[ -x $LINGQIAO_BIN ]]; then
    # best of 3 runs (each is itself a best of 5 passes over 1 GiB)
    bw=$(for _ in 1 2 3; do "$LINGQIAO_BIN" bench --bandwidth -t 1 2>&1 || true; done |
        sed -n 's/.*1 thread: \([0-9.]*\) GB\/s.*/\1/p' | sort -g | tail -1)
fi
cpuflags=$(for f in avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 gfni; do
    if has "$f"; then printf '%s ' "$f"; fi
done)
md=$RESULTS/$DATE-decode-kernels.md
python3 "$HERE/table.py" "$csv" --cpu "$CPU" --flags "${cpuflags% }" --bandwidth "${bw:-}" \
    --cache-kib "$CACHE_KIB" --stream-mib "$STREAM_MIB" >"$md"
echo "wrote $md" >&2
cat "$md"
