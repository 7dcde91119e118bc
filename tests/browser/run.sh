#!/usr/bin/env bash
# Browser test of the chat page at `/`: installs what it needs (Debian's chromium, the pinned
# playwright-core from package-lock.json), checks that the release binary has `serve` and the
# model is here, then starts the real `lingqiao serve` and drives the page (chat.test.mjs).
# What it saw goes to tests/browser/output/ (run.txt, chat.png, chat-phone.png, server.log).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-dejavu-core >/dev/null 2>&1; then
  echo "== installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
echo "== $(/usr/bin/chromium --version 2>/dev/null)"

echo "== playwright-core (npm ci)"
npm ci --no-audit --no-fund --loglevel=error

echo "== lingqiao binary and model"
# The same build command as scripts/test.sh: with the same targets and features it is a
# no-op there (building only lingqiao-cli unifies features differently and recompiles).
(cd ../.. && cargo build --release --workspace --all-targets)
../../target/release/lingqiao serve --help >/dev/null
../../target/release/lingqiao pull qwen05

echo "== browser test"
node chat.test.mjs
