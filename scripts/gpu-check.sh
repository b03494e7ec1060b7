#!/usr/bin/env bash
# The CUDA path's device check, run on the GPU machine in ONE device call:
#   run(command="bash scripts/gpu-check.sh", carry=["bin/gpu"], timeout_s=540)
# after `make bench-gpu` here (it builds bin/gpu/cudacheck and copies
# torch_resnet_bench.py beside it). Every step has its own time limit so a
# hang cannot eat the budget; every log lands under $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
BIN=bin/gpu/cudacheck
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
S="$OUT/summary.txt"
: > "$S"
step() { # name limit_s command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s: $(tail -n 1 "$OUT/$name.log")" | tee -a "$S"
  return $rc
}
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  ldd "$BIN" | grep -E "cuda|cublas|not found"; ldd --version | head -1
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log" >> "$S"

# 1. Sanity: driver API, PTX (nvcc 11.8, sm_90) JIT by driver 580, kernels, cuBLAS 13 SGEMM vs the CPU.
step probe 60 "$BIN" probe || { echo "probe failed: stopping (see probe.log)" | tee -a "$S"; exit 1; }
# 2. Every instruction of a ResNet-20 step (batch 16) against the CPU interpreter: names the first wrong kernel.
step trace 120 "$BIN" trace --arch resnet-20 --batch 16
# 3. The acceptance check: one float32 training step of ResNet-20, batch 128, GPU vs CPU, rel. diff < 1e-4.
step check 180 "$BIN" check --arch resnet-20 --batch 128 --tol 1e-4
# 4. Throughput beside PyTorch (same device call): ours with a CUDA graph, then without, then TF32.
for a in 20 56 110; do
  step "bench-resnet-$a" 90 "$BIN" bench --arch "resnet-$a" --batch 128 --steps 50 --warmup 5 --graph=true
done
step bench-resnet-20-nograph 60 "$BIN" bench --arch resnet-20 --batch 128 --steps 50 --warmup 5 --graph=false
step bench-resnet-20-tf32 60 "$BIN" bench --arch resnet-20 --batch 128 --steps 50 --warmup 5 --tf32
step torch 240 python3 bin/gpu/torch_resnet_bench.py 20 56 110 --device cuda
nvidia-smi > "$OUT/nvidia-smi.log" 2>&1
echo "done $(date -u)" | tee -a "$S"
