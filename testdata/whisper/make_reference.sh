#!/usr/bin/env bash
# Builds reference.json and tensors/ with faster-whisper (an implementation
# independent of lingqiao), in a pinned venv at ~/.cache/lingqiao/venv-whisper.
# Needs the clips (./make_clips.sh) and the CTranslate2 models in
# ~/.cache/lingqiao/models (fetched with `lingqiao pull` when missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${LINGQIAO_WHISPER_VENV:-$HOME/.cache/lingqiao/venv-whisper}"
models="${LINGQIAO_MODELS_DIR:-$HOME/.cache/lingqiao/models}"
python="${PYTHON:-python3}"

# Pinned: faster-whisper 1.2.1, ctranslate2 4.8.5, numpy 2.4.6 and the rest
# of the resolved dependency set (requirements.txt).
if [[ ! -x "$venv/bin/python" ]]; then
  echo "creating $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"

for m in whisper-tiny-en whisper-base; do
  if [[ ! -f "$models/$m/model.bin" ]]; then
    bin="$repo/target/release/lingqiao"
    [[ -x "$bin" ]] || { echo "missing $models/$m and $bin; build lingqiao or pull the model" >&2; exit 1; }
    (cd "$repo" && "$bin" pull "$m")
  fi
done

[[ -f "$here/clips.json" ]] || "$here/make_clips.sh"

export LINGQIAO_MODELS_DIR="$models"
exec "$venv/bin/python" "$here/reference.py"
