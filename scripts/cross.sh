#!/usr/bin/env bash
# The aarch64 build and its tests under qemu-user, on three emulated CPUs: cortex-a53 (NEON
# only), neoverse-n1 (dotprod, no i8mm) and max (everything, i8mm included). Installs what it
# needs from Debian (see ../shared/CROSS.md: rustup cannot fetch other targets here, so the
# build uses Debian's rustc-web 1.96 and its arm64 standard library), registers qemu with
# binfmt_misc so tests that re-execute themselves work, and keeps its build outside the
# clone (~/.cache/lingqiao/xarch-target, or $LINGQIAO_XARCH_TARGET) so CI reuses it.
#
#   bash scripts/cross.sh             # install, build, run the kernels' and the golden tests
#   bash scripts/cross.sh full        # the same with every golden prompt and step (hours)
#   bash scripts/cross.sh build       # install and build only
#   bash scripts/cross.sh env         # print the environment the commands below need
#
# Emulation runs our code at about 1/100 of native speed (smollm2: about a second per token,
# qwen05 four), so the default run, which CI runs, checks the golden tests' short subset
# (LINGQIAO_GOLDEN_SUBSET=short: three prompts per model and their first four greedy steps;
# see crates/model/tests/golden_llamacpp.rs) on every table, and `full` the whole set. The
# kernels' equality tests and the tiny Qwen3's run whole in both. One thread per test
# (LINGQIAO_THREADS=1): spinning pool workers only steal the emulator's cores.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
CPUS=(cortex-a53 neoverse-n1 max)
declare -A TABLE=([cortex-a53]=neon [neoverse-n1]=dotprod [max]=i8mm)

install() {
    local need=()
    [[ -x /usr/bin/rustc && -x /usr/bin/cargo ]] && /usr/bin/rustc --version | grep -q 'rustc 1\.9[6-9]' ||
        need+=(rustc-web cargo-web)
    [[ -x /usr/bin/clippy-driver ]] || need+=(rust-web-clippy)
    [[ -d /usr/lib/rustlib/$TARGET ]] || need+=(libstd-rust-web-dev:arm64)
    command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
    if ((${#need[@]})); then
        echo "== installing ${need[*]}"
        dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
    fi
    # Tests that run themselves again (current_exe + Command) need the kernel to hand aarch64
    # ELF files to qemu; without it the child silently does nothing.
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:' \
            >/proc/sys/fs/binfmt_misc/register
    fi
}

setup_env() {
    # rustup's proxies come first on PATH; the compiler, rustdoc and std must all be 1.96.
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    export CARGO_TARGET_DIR=${LINGQIAO_XARCH_TARGET:-$HOME/.cache/lingqiao/xarch-target}
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    # Plain qemu-aarch64: with -L /usr/aarch64-linux-gnu the first pthread_create spins.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
}

CARGO=/usr/bin/cargo
# The tests that must hold on every aarch64 table: the kernels crate's, and the models'
# agreement with llama.cpp (the same tests CI runs on AVX-512, AVX2 and scalar).
KERNEL_TESTS=(-p lingqiao-kernels)
MODEL_TESTS=(-p lingqiao-model --test golden_llamacpp --test qwen3_tiny)

build() {
    echo "== aarch64 build ($($RUSTC --version))"
    $CARGO build --release --target $TARGET -p lingqiao-cli
    # The aarch64 code is invisible to the native clippy run; Debian's clippy of the same
    # version checks it (/usr/bin first, or rustup's clippy-driver of another version is used).
    PATH=/usr/bin:$PATH $CARGO clippy --release --target $TARGET -p lingqiao-kernels \
        -p lingqiao-pool -p lingqiao-gguf --all-targets -- -D warnings
    $CARGO test --release --target $TARGET --no-run "${KERNEL_TESTS[@]}"
    $CARGO test --release --target $TARGET --no-run "${MODEL_TESTS[@]}"
}

run_tests() {
    local subset=$1
    export LINGQIAO_THREADS=1
    for cpu in "${CPUS[@]}"; do
        # The release binary must pick this CPU's table.
        local got
        got=$(QEMU_CPU=$cpu qemu-aarch64 "$CARGO_TARGET_DIR/$TARGET/release/lingqiao" run \
            -m smollm2 -p hi -n 1 --temp 0 2>&1 >/dev/null | grep -o 'kernels: [a-z0-9]*' || true)
        echo "== aarch64 tests on QEMU_CPU=$cpu ($got)"
        if [[ $got != "kernels: ${TABLE[$cpu]}" ]]; then
            echo "QEMU_CPU=$cpu: lingqiao run chose '$got', expected ${TABLE[$cpu]}" >&2
            exit 1
        fi
        QEMU_CPU=$cpu $CARGO test --release --target $TARGET "${KERNEL_TESTS[@]}"
        if [[ $subset == full ]]; then
            QEMU_CPU=$cpu $CARGO test --release --target $TARGET "${MODEL_TESTS[@]}" -- --nocapture
        else
            QEMU_CPU=$cpu LINGQIAO_GOLDEN_SUBSET=short $CARGO test --release --target $TARGET \
                "${MODEL_TESTS[@]}" -- --nocapture
        fi
    done
}

case "${1:-all}" in
env)
    setup_env
    env | grep -E '^(RUSTC|RUSTDOC|CARGO_TARGET)' | sed 's/^/export /'
    ;;
build)
    install
    setup_env
    build
    ;;
all | full)
    install
    setup_env
    build
    run_tests "${1:-all}"
    ;;
*)
    echo "usage: $0 [all|full|build|env]" >&2
    exit 2
    ;;
esac
