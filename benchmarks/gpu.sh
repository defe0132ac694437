#!/bin/bash
# The GPU checks, in one go, for a lent machine whose time is short: the machine, the GPU tests, the
# scaling bench on config/bench-gpu.yaml, and a slice of the workflow (the RUN.yaml files under
# results/runs/, written beforehand by `snakemake ... results/runs/<id>/run.yaml`) trained on the GPU.
# Each step has its own time limit and log, so one that fails leaves the others' results; the limits
# and their kill grace add up to under 10 minutes.
#   benchmarks/gpu.sh OUT_DIR [PYTHON]    # PYTHON: one with a CUDA build of torch (default python3)
# Needs Fashion-MNIST's raw files where `mhd prepare` finds them (data/raw/fashion_mnist/*.gz).
set -u
out=$(realpath -m "${1:?usage: benchmarks/gpu.sh OUT_DIR [PYTHON]}")
py=${2:-python3}
cd "$(dirname "$0")/.." || exit 1  # the repository root: src/, tests/, config/, results/runs/
mkdir -p "$out"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
step() {  # step NAME LIMIT_S COMMAND...: run it with its log in OUT_DIR/NAME.log, say how it ended
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  # SIGINT first: pytest then prints its failures and summary; killed 10 s later if still running
  timeout -s INT -k 10 "$limit" "$@" >"$out/$name.log" 2>&1
  echo "$name: rc=$? in $((SECONDS - t0)) s" | tee -a "$out/steps.txt"
}
{ timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  timeout 60 "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  nproc; } >"$out/steps.txt" 2>&1
step prepare 45 "$py" -m mhd prepare --dataset fashion_mnist --out data/prepared/fashion_mnist.pt
step test_gpu 100 "$py" -m pytest -v --tb=short -p no:cacheprovider tests/test_gpu.py
step scale 230 "$py" -m mhd bench --scale --config config/bench-gpu.yaml --out "$out/scale-gpu.json" \
  --figure "$out/bench_scale_gpu.png"
shopt -s nullglob
specs=(results/runs/*/run.yaml)
if [ ${#specs[@]} -gt 0 ]; then
  step slice 90 "$py" benchmarks/run_slice.py --device cuda --out "$out/slice-gpu.json" "${specs[@]}"
else
  echo "slice: skipped, no results/runs/*/run.yaml" | tee -a "$out/steps.txt"
fi
