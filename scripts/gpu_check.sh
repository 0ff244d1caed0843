#!/usr/bin/env bash
# The GPU check: one command, no network, a hard time budget (see bench/gpu_check.py).
#
#   bash scripts/gpu_check.sh OUT [--wheels DIR] [--budget SECONDS]   # on a machine with a GPU
#   bash scripts/gpu_check.sh --cpu-smoke OUT                         # on a CPU, in seconds (CI runs it)
#
# Writes OUT/gpu_check.json, OUT/gpu_check.md, OUT/gpu_check.log and OUT/parts/*.json.
# DIR holds the wheels the GPU machine lacks; fill it beforehand where pip reaches the registry:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 DeepCache==0.1.1
# PYTHON picks the interpreter (default: python3, the one that has torch on the GPU machines).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
exec "${PYTHON:-python3}" bench/gpu_check.py "$@"
