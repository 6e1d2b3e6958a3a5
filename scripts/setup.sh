#!/usr/bin/env bash
# Set up defectbench in ./.venv (created once, reused afterwards): PyTorch, the package and its extras.
#   scripts/setup.sh          runtime install (SAM 2, ONNX Runtime and OpenVINO included)
#   scripts/setup.sh --test   also the test tools (PySODMetrics oracle, pytest, import-linter), NNCF (INT8), Ray for the cluster
#                             tests, and Chromium for the report test
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ ! -x .venv/bin/python ]; then
  PY=$(command -v python3.11 || command -v python3)
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

# PyTorch first, pinned (the registry's CUDA build runs on the CPU too).
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
fi

extras="sam2,deploy"
[ $want_test = 1 ] && extras="sam2,deploy,int8,cluster,anomaly,test"
# Reinstall the package only when pyproject.toml changed since the last install.
stamp=".venv/.defectbench-$(sha256sum pyproject.toml | cut -c1-16)-$extras"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -e ".[$extras]"
  rm -f .venv/.defectbench-* && touch "$stamp"
fi

# Headless Chromium for the HTML report test (Debian package; skipped where apt is unavailable).
if [ $want_test = 1 ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: could not install chromium; the HTML report test will be skipped" >&2
fi
echo "setup: ready (.venv)"
