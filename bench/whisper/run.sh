#!/usr/bin/env bash
# Whisper speed and memory against faster-whisper (bench.py), with faster-whisper from the
# pinned venv that testdata/whisper/make_reference.sh builds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${LINGQIAO_WHISPER_VENV:-$HOME/.cache/lingqiao/venv-whisper}"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$repo/testdata/whisper/requirements.txt"
(cd "$repo" && cargo build --release -p lingqiao-cli && ./target/release/lingqiao pull whisper-tiny-en whisper-base >/dev/null)
exec "$venv/bin/python" "$here/bench.py" "$@"
