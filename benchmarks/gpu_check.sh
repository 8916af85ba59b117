#!/usr/bin/env bash
# tlf's checks on a CUDA GPU, in order, well inside 10 minutes on one card:
#   1. the CUDA-marked tests (tests parametrised over the available devices);
#   2. `tlf bench --device cuda` for efficientnet_lite0 and resnet50 (random weights);
#   3. `tlf train` on a class-per-folder dataset for transfer, partial:conv5 and init, with defaults;
#   4. `tlf export` of the transfer run (ONNX parity against PyTorch is part of the export).
#
#   benchmarks/gpu_check.sh path/to/flower_photos OUT_DIR
#   TINY=1 DEVICE=cpu benchmarks/gpu_check.sh path/to/small_folder OUT_DIR   # a dry run of the steps on a CPU
#
# Every step's output goes to OUT_DIR/<step>.log; the script stops at the first failure.
set -euo pipefail
DATA=${1:?usage: benchmarks/gpu_check.sh DATA_DIR OUT_DIR}
OUT=${2:?usage: benchmarks/gpu_check.sh DATA_DIR OUT_DIR}
PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
export NO_ALBUMENTATIONS_UPDATE=1
mkdir -p "$OUT"

if [[ -n "${TINY:-}" ]]; then  # tiny settings: each step runs, nothing is measured
  TESTS=(tests/test_bench.py -k "measures_every_stage")
  BENCH=(--backbone resnet18 --image-size 32 --batch-size 4 --seconds 4 --workers 0)
  TRAIN=(--backbone resnet18 --image-size 32 --batch-size 4 --epochs 1 --workers 0 --no-pretrained)
else
  TESTS=(-m cuda tests/)
  BENCH=(--backbone efficientnet_lite0 --backbone resnet50 --image-size 224 --batch-size 64 --seconds 120)
  TRAIN=()
fi

step() {  # step NAME COMMAND...: run COMMAND, its output in OUT/NAME.log, its time on the screen
  local name=$1; shift
  local start=$SECONDS
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1 || { tail -20 "$OUT/$name.log"; echo "== $name FAILED"; exit 1; }
  echo "   ok in $((SECONDS - start)) s"
}

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
step tests "$PYTHON" -m pytest -x -q "${TESTS[@]}"
step bench "$PYTHON" -m tlf bench --device "$DEVICE" "${BENCH[@]}" --out "$OUT/bench"
for policy in transfer partial:conv5 init; do
  step "train-${policy//:/-}" "$PYTHON" -m tlf train --dataset "folder:$DATA" --policy "$policy" --device "$DEVICE" \
    "${TRAIN[@]}" --out "$OUT/runs" --name "${policy//:/-}" --quiet
done
step export "$PYTHON" -m tlf export "$OUT/runs/transfer"
cat "$OUT/bench/bench.md"
