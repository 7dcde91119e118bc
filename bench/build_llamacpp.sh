#!/usr/bin/env bash
# Build llama.cpp's llama-bench, llama-completion, llama-simple, llama-quantize and
# llama-perplexity for side-by-side comparisons (bench/compare.py) and the references of
# the quantize and perplexity tests (tools/reference). Nothing of it is committed: the source and the build live
# in ~/.cache/lingqiao/llamacpp (or $LLAMACPP_DIR).
#
# The source is the llama.cpp vendored in the llama-cpp-python 0.3.36 source package from
# PyPI, the same version tools/reference uses, so the comparison and the reference logits
# come from one llama.cpp.
#
# CPU features are set by hand (GGML_NATIVE=OFF) so the build is the same on every machine
# of this project's kind with the same instruction sets. Two levels, by what /proc/cpuinfo
# lists: with AVX-512 F/BW/VL/VNNI, all of AVX/AVX2/FMA/F16C/BMI2, AVX-VNNI and AVX-512
# F/CD/VL/DQ/BW with VBMI, VNNI and BF16 on; without (e.g. Zen 3), AVX/AVX2/FMA/F16C/BMI2
# only (a build with AVX-512 would stop on an illegal instruction there). AMX is off (the
# CPUs list it but AMX instructions fault). Everything else is llama.cpp's default (OpenMP,
# llamafile sgemm, CPU repack). The flags of the build are kept in
# build/lingqiao-flags.txt; a build for the other level is reconfigured and rebuilt.
#
# Idempotent: exits at once when all the binaries exist for this CPU's level. Usage:
#   bash bench/build_llamacpp.sh          # JOBS=2 by default; JOBS=1 on a busy machine
set -euo pipefail

VERSION=0.3.36
DIR=${LLAMACPP_DIR:-$HOME/.cache/lingqiao/llamacpp}
SRC=$DIR/src
BUILD=$DIR/build
BIN=$BUILD/bin
JOBS=${JOBS:-2}
TARGETS=(llama-bench llama-completion llama-simple llama-quantize llama-perplexity)

# The instruction-set flags for this CPU (see the header).
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ $cpu_flags == *" $f "* ]] || return 1; done; }
ISA_FLAGS=(-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
if has avx512f avx512bw avx512vl avx512_vnni; then
    ISA_FLAGS+=(
        -DGGML_AVX_VNNI=ON
        -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON
    )
else
    ISA_FLAGS+=(
        -DGGML_AVX_VNNI=OFF
        -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF
    )
fi

all_built=1
for t in "${TARGETS[@]}"; do [[ -x $BIN/$t ]] || all_built=0; done
if [[ -f $BUILD/lingqiao-flags.txt ]] && ! grep -qxF -- "${ISA_FLAGS[-1]}" "$BUILD/lingqiao-flags.txt"; then
    # From scratch: make keeps objects of the other level's flags (AVX-512 code that
    # stops on an illegal instruction here) when only the configuration changed.
    echo "llama.cpp in $BUILD was built for another instruction set level: rebuilding from scratch"
    rm -rf "$BUILD"
    all_built=0
fi
if ((all_built)); then
    echo "llama.cpp already built in $BIN"
    exit 0
fi
mkdir -p "$DIR"

# 1. The source package. llama-cpp-python ships no wheels on PyPI, so this is the sdist;
#    only llama-cpp-python itself is forced to source (its build tools may come as wheels:
#    `--no-binary :all:` would compile cmake itself from source just to read the metadata).
SDIST=$DIR/llama_cpp_python-$VERSION.tar.gz
if [[ ! -f $SDIST ]]; then
    python3 -m pip download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$VERSION" -d "$DIR"
fi
if [[ ! -f $SRC/vendor/llama.cpp/CMakeLists.txt ]]; then
    rm -rf "$SRC"
    mkdir -p "$SRC"
    tar xzf "$SDIST" -C "$SRC" --strip-components=1
fi
LLAMA=$SRC/vendor/llama.cpp

# 2. cmake: the system's if there is one, else the `cmake` wheel in a private venv.
CMAKE=$(command -v cmake || true)
if [[ -z $CMAKE ]]; then
    if [[ ! -x $DIR/venv/bin/cmake ]]; then
        python3 -m venv "$DIR/venv"
        "$DIR/venv/bin/pip" install --quiet cmake
    fi
    CMAKE=$DIR/venv/bin/cmake
fi
echo "cmake: $CMAKE ($("$CMAKE" --version | head -1))"

# 3. Configure and build only these targets.
FLAGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DGGML_NATIVE=OFF
    "${ISA_FLAGS[@]}"
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
    -DGGML_CCACHE=OFF
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON
)
"$CMAKE" -S "$LLAMA" -B "$BUILD" "${FLAGS[@]}"
"$CMAKE" --build "$BUILD" --config Release -j "$JOBS" --target "${TARGETS[@]}"
printf '%s\n' "${FLAGS[@]}" >"$BUILD/lingqiao-flags.txt"
ls -la "$BIN"
