#!/usr/bin/env bash
# Set up defectbench in ./.venv (created once, reused afterwards): PyTorch, the package and its extras.
#   scripts/setup.sh                 runtime install (SAM 2, ONNX Runtime and OpenVINO included)
#   scripts/setup.sh --test          also the test tools (PySODMetrics oracle, pytest, import-linter), NNCF (INT8), Ray for
#                                    the cluster tests, and Chromium for the report test
#   scripts/setup.sh --cuda FLAVOUR  PyTorch's own wheel of that CUDA flavour (cu118, cu126, cu128, cu130 or cpu) from
#                                    https://download.pytorch.org/whl/FLAVOUR, replacing another build of the same
#                                    version; without it: the registry's build (PyPI's default CUDA build, which runs on
#                                    the CPU too). Pick the flavour your NVIDIA driver runs (README: "Which CUDA wheel").
#   scripts/setup.sh --print-plan    print the commands it would run, run nothing
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=2.14.1
VISION=0.29.1
FLAVOURS="cu118 cu126 cu128 cu130 cpu"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "setup.sh: $*" >&2; exit 2; }

want_test=0 flavour="" plan=0
while [ $# -gt 0 ]; do
  case "$1" in
    --test) want_test=1 ;;
    --cuda) [ $# -ge 2 ] || die "--cuda needs a flavour: one of ${FLAVOURS// /, }"
            flavour=$2; shift ;;
    --cuda=*) flavour=${1#--cuda=} ;;
    --print-plan) plan=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1; usage: scripts/setup.sh [--test] [--cuda ${FLAVOURS// /|}] [--print-plan]" ;;
  esac
  shift
done
if [ -n "$flavour" ] && [[ " $FLAVOURS " != *" $flavour "* ]]; then
  die "--cuda $flavour: unknown CUDA flavour; use one of ${FLAVOURS// /, } (see the README's driver table)"
fi

# run (or, with --print-plan, print) one command
step() { if [ $plan = 1 ]; then echo "+ $*"; else "$@"; fi; }

if [ $plan = 1 ] || [ ! -x .venv/bin/python ]; then
  PY=$(command -v python3.11 || command -v python3)
  [ -x .venv/bin/python ] || { step "$PY" -m venv .venv; step .venv/bin/python -m pip install -q --upgrade pip; }
fi

# PyTorch first, pinned. The registry's build unless --cuda names PyTorch's wheel of one CUDA flavour.
if [ -n "$flavour" ]; then
  want="$TORCH+$flavour"
  have=""  # a plan prints the install without importing torch (seconds) to see what is there
  [ $plan = 1 ] || have=$(.venv/bin/python -c "import torch, torchvision; print(torch.__version__)" 2>/dev/null || true)
  if [ "$have" != "$want" ]; then
    step .venv/bin/python -m pip install -q "torch==$TORCH+$flavour" "torchvision==$VISION+$flavour" \
      --index-url "https://download.pytorch.org/whl/$flavour"
  fi
elif [ $plan = 1 ] || ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
  step .venv/bin/python -m pip install -q "torch==$TORCH" "torchvision==$VISION"
fi

extras="sam2,deploy"
[ $want_test = 1 ] && extras="sam2,deploy,int8,cluster,anomaly,test"
# Reinstall the package only when pyproject.toml changed since the last install.
stamp=".venv/.defectbench-$(sha256sum pyproject.toml | cut -c1-16)-$extras"
if [ $plan = 1 ] || [ ! -f "$stamp" ]; then
  step .venv/bin/python -m pip install -q -e ".[$extras]"
  [ $plan = 1 ] || { rm -f .venv/.defectbench-* && touch "$stamp"; }
fi

# Headless Chromium for the HTML report test (Debian package; skipped where apt is unavailable).
if [ $plan = 0 ] && [ $want_test = 1 ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: could not install chromium; the HTML report test will be skipped" >&2
fi
[ $plan = 1 ] && exit 0
echo "setup: ready (.venv${flavour:+, torch $TORCH+$flavour})"
