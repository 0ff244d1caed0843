#!/usr/bin/env bash
# Install what the tests need, then run them: `bash scripts/test.sh [pytest args]`.
# Used as-is by CI (.ci/run). Needs Python 3.11+; the browser tests need
# Debian's chromium (installed here with apt-get when running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
fi

export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_VERBOSITY=error
exec python -m pytest "$@"
