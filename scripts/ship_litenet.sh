#!/usr/bin/env bash
# Export a litenet training run's best checkpoint as the package's shipped weights for one dataset and write the
# per-image test-split table that tests/train/test_shipped_weights.py checks them against.
#   scripts/ship_litenet.sh sd900 runs/litenet/sd900-a test
#   scripts/ship_litenet.sh mt runs/litenet/mt-a 1to1-test
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 run=$2 split=$3
db=.venv/bin/defectbench
$db export --checkpoint "$run/best.pt" --format pt --out "src/defectbench/weights/litenet_$name.pt"
$db predict --model litenet --weights "$name" --dataset "$name" --split "$split" --out "$run/maps-shipped-$split"
mkdir -p benchmarks/results
$db eval --dataset "$name" --split "$split" --pred "$run/maps-shipped-$split" --by-class \
  --csv "benchmarks/results/litenet_${name}_test.csv" --json "benchmarks/results/litenet_${name}_test.json"
