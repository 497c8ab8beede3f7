#!/usr/bin/env bash
# The prepared GPU check: one call of the workplace's device tool (an H200, ~8 of its 15 minutes),
# written on a machine without a GPU and not yet run. Run from the repository root:
#
#   bash benchmarks/gpu_check.sh            # results into $OUT (default /tmp/gpu-check)
#
# What it measures, each step time-boxed so the whole stays under 9 minutes:
#   1. the CUDA tests (tests/test_device.py; the model, lazy-update and bench tests on the GPU);
#   2. `movelab bench` at gpu-d12, eager, 2 interleaved rounds: standard, LaVE x1, MoVE x1/x4/x8
#      with the dense memory update, then MoVE x4/x8 with the lazy one (the bank's optimizer
#      step was half of MoVE x8's extra time on 2026-11-26), then compiled standard and MoVE x4;
#   3. `movelab plan --profile h200` for a short gpu-d12 run, against the same run trained for
#      real (standard and MoVE x1, 2M tokens of the embedded wiki corpus; MoVE x4 would write
#      15.6 GiB checkpoints): the plan's throughput
#      check.
# The wiki corpus needs gensim and mwparserfromhell, which the GPU image lacks: carry them as
# wheels in .whl (see the device tool's README), or carry a prepared cache and point
# MOVELAB_CACHE at it. Without either, step 3 is skipped and says so.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
fi
py=python3
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} > "$OUT/env.txt" 2>&1

timeout 150 $py -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_model.py \
  tests/test_lazy_update.py tests/test_bench.py > "$OUT/cuda-tests.txt" 2>&1
echo "cuda tests: $(tail -n 1 "$OUT/cuda-tests.txt")"

bench() {  # name, then movelab bench arguments
  local name=$1; shift
  timeout 150 $py -m movelab bench --preset gpu-d12 --device cuda --batch-size 8 --steps 10 \
    --warmup 3 --rounds 2 "$@" > "$OUT/bench-$name.txt" 2>&1
  echo "bench $name: exit $?"
}
bench dense --variants "standard,lave x1,move x1,move x4,move x8"
bench lazy --variants "move x4,move x8" --memory-update lazy
bench compiled --variants "move x4" --compile

if $py -c "import gensim, mwparserfromhell" 2>/dev/null || [ -n "${MOVELAB_CACHE:-}" ]; then
  for variant in "standard" "move --density 1"; do
    name=${variant%% *}
    flags="--preset gpu-d12 --value-path $variant --tokens 2000000 --batch-size 8 --evals 1"
    timeout 60 $py -m movelab plan $flags --profile h200 > "$OUT/plan-$name.txt" 2>&1
    timeout 90 $py -m movelab train $flags --device cuda --out "/tmp/gpu-run-$name" \
      > "$OUT/train-$name.txt" 2>&1
    echo "plan and train $name: exit $?"
  done
else
  echo "no wiki corpus here (carry gensim and mwparserfromhell wheels in .whl): plan check skipped"
fi
ls -l "$OUT"
