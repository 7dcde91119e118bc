#!/usr/bin/env bash
# Dynamic instructions llama.cpp executes per generated token on aarch64 (one thread), counted
# under qemu-user with bench/arm_insn/insn_plugin.c: llama.cpp (the llama-cpp-python 0.3.36
# sdist, as bench/build_llamacpp.sh fetches it) cross-built with ggml's own CMake for one
# level, driven by bench/arm_insn/llama_decode.cpp, run with N1 and N2 generated tokens;
# (count(N2) - count(N1)) / (N2 - N1) is one token (a one-token forward pass and greedy
# sampling, averaged over the positions N1..N2 after the prompt). ggml's defaults otherwise:
# CPU repacking on (Q4_0/Q4_K/Q5_K/Q6_K/Q8_0 weights with dotprod), llamafile sgemm on,
# OpenMP off (one thread either way).
#
# Usage: bash bench/arm_insn/llama_token.sh [MODEL_KEY_OR_PATH...]   (default: smollm2)
#   -> bench/results/DATE-arm-insn-llama-token.csv (model,level,qemu_cpu,insn_per_token)
# Environment: LEVELS (default "dotprod"; also neon, i8mm), N1, N2 (default 2, 6), DATE,
# ARM_INSN_CACHE, LLAMACPP_DIR, LINGQIAO_HOME (models in $LINGQIAO_HOME/models, default
# ~/.cache/lingqiao/models). A cold build of one level is about 20 minutes on one core (-j1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${ARM_INSN_CACHE:-$HOME/.cache/lingqiao/arm-insn}
LLAMACPP_DIR=${LLAMACPP_DIR:-$HOME/.cache/lingqiao/llamacpp}
MODELS=${LINGQIAO_HOME:-$HOME/.cache/lingqiao}/models
N1=${N1:-2}
N2=${N2:-6}
DATE=${DATE:-$(date +%F)}
VERSION=0.3.36
read -r -a LEVELS <<<"${LEVELS:-dotprod}"
declare -A MARCH=([neon]=armv8-a [dotprod]=armv8.2-a+dotprod+fp16
    [i8mm]=armv8.6-a+dotprod+fp16+i8mm)
declare -A QCPU=([neon]=cortex-a53 [dotprod]=neoverse-n1 [i8mm]=max)
declare -A KEYS=([smollm2]=SmolLM2-135M-Instruct.Q4_1.gguf
    [gemma3]=gemma-3-270m-q4_k_m.gguf [qwen05]=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf)
models=("$@")
((${#models[@]})) || models=(smollm2)

mkdir -p "$CACHE"
PLUGIN=$CACHE/insn_plugin.so
if [[ ! -f $PLUGIN || $HERE/insn_plugin.c -nt $PLUGIN ]]; then
    gcc -O2 -Wall -shared -fPIC -o "$PLUGIN" "$HERE/insn_plugin.c"
fi

# llama.cpp's source, as bench/build_llamacpp.sh gets it.
SRC=$LLAMACPP_DIR/src
if [[ ! -f $SRC/vendor/llama.cpp/CMakeLists.txt ]]; then
    mkdir -p "$LLAMACPP_DIR"
    SDIST=$LLAMACPP_DIR/llama_cpp_python-$VERSION.tar.gz
    [[ -f $SDIST ]] || python3 -m pip download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$VERSION" -d "$LLAMACPP_DIR"
    rm -rf "$SRC"
    mkdir -p "$SRC"
    tar xzf "$SDIST" -C "$SRC" --strip-components=1
fi
LLAMA=$SRC/vendor/llama.cpp

CMAKE=$(command -v cmake || true)
if [[ -z $CMAKE ]]; then
    [[ -x $CACHE/venv/bin/cmake ]] || {
        python3 -m venv "$CACHE/venv"
        "$CACHE/venv/bin/pip" install --quiet cmake
    }
    CMAKE=$CACHE/venv/bin/cmake
fi

build() {
    local level=$1 b=$CACHE/llama-$1
    local bin=$b/llama_decode
    if [[ -x $bin && $bin -nt $HERE/llama_decode.cpp ]]; then
        return
    fi
    "$CMAKE" -S "$LLAMA" -B "$b" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
        -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
        -DGGML_CPU_ARM_ARCH="${MARCH[$level]}" -DGGML_OPENMP=OFF -DGGML_CCACHE=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_APP=OFF >"$b.cmake.log"
    "$CMAKE" --build "$b" -j1 --target llama >"$b.build.log"
    local libs
    libs=$(find "$b" -name 'libllama.a' -o -name 'libggml-cpu.a' -o -name 'libggml.a' |
        sort -r | tr '\n' ' ')
    # shellcheck disable=SC2086
    aarch64-linux-gnu-g++ -O2 -static -o "$bin" "$HERE/llama_decode.cpp" -I"$LLAMA/include" \
        -I"$LLAMA/ggml/include" $libs "$(find "$b" -name 'libggml-base.a')" -lpthread -lm
}

count() {
    local cpu=$1
    shift
    qemu-aarch64 -cpu "$cpu" -plugin "$PLUGIN" -d plugin -D "$CACHE/llama-plugin.log" "$@" >/dev/null
    awk '/^insns /{n=$2} END{if (n == "") exit 1; print n}' "$CACHE/llama-plugin.log"
}

out=$ROOT/bench/results/$DATE-arm-insn-llama-token.csv
[[ -f $out ]] || echo "model,level,qemu_cpu,insn_per_token" >"$out"
for level in "${LEVELS[@]}"; do
    build "$level"
    for m in "${models[@]}"; do
        path=$m
        [[ -n ${KEYS[$m]:-} ]] && path=$MODELS/${KEYS[$m]}
        [[ -f $path ]] || { echo "no model $path (lingqiao pull $m)" >&2; continue; }
        c1=$(count "${QCPU[$level]}" "$CACHE/llama-$level/llama_decode" "$path" "$(printf '%06d' "$N1")")
        c2=$(count "${QCPU[$level]}" "$CACHE/llama-$level/llama_decode" "$path" "$(printf '%06d' "$N2")")
        per=$(((c2 - c1) / (N2 - N1)))
        echo "$(basename "$path") $level: $per instructions per generated token" >&2
        echo "$(basename "$path"),$level,${QCPU[$level]},$per" >>"$out"
    done
done
echo "wrote $out" >&2
