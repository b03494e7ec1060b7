#!/usr/bin/env bash
# The CUDA path's device check, run on the GPU machine in ONE device call:
#   run(command="bash scripts/gpu-check.sh", carry=["bin/gpu", "data/cifar10-jpeg.tar.gz"], timeout_s=240)
# after `make bench-gpu` here (it builds bin/gpu/eraserelu, copies
# torch_resnet_bench.py beside it and the CIFAR-10 JPEG copy into data/).
# Every step has its own time limit so a hang cannot eat the budget. The
# device tool returns at most 8 files, so the logs are grouped: summary.txt,
# env.log, check.log (probe, trace, check), profile.log, bench.log,
# torch.log, cifar.log and cifar-run.tar.gz (the training run's train.log,
# metrics.csv, results.json). CIFAR=0 skips the training run.
set -u
OUT=${OUT:-/tmp/gpu-out}
BIN=bin/gpu/eraserelu
. "$(dirname "$0")/device-lib.sh"
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
  ldd "$BIN" | grep -E "cuda|cublas|not found"; ldd --version | head -1
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log" >> "$S"

# 1. Sanity: driver API, PTX (nvcc 11.8, sm_90) JIT by driver 580, kernels, cuBLAS 13 SGEMM vs the CPU.
step check.log probe 60 "$BIN" gpu probe || { echo "probe failed: stopping (see check.log)" | tee -a "$S"; exit 1; }
# 2. Every kernel of a ResNet-20 step (batch 16) on identical inputs vs the CPU interpreter, then the drift and ReLU flips.
step check.log trace 120 "$BIN" gpu trace --arch resnet-20 --batch 16 --tol 1e-5
# 3. The acceptance check: one float32 training step of ResNet-20, batch 128, device vs CPU float32 and float64.
step check.log check 180 "$BIN" gpu check --arch resnet-20 --batch 128 --tol 1e-4
# 4. Where the device time goes (CUDA events between launches).
step profile.log profile-resnet-20 60 "$BIN" gpu profile --arch resnet-20 --batch 128 --reps 5
# 5. Throughput beside PyTorch (same device call): ours with a CUDA graph, then without, then TF32.
for a in 20 56 110; do
  step bench.log "bench-resnet-$a" 90 "$BIN" gpu bench --arch "resnet-$a" --batch 128 --steps 50 --warmup 5 --graph=true
done
step bench.log bench-resnet-20-nograph 60 "$BIN" gpu bench --arch resnet-20 --batch 128 --steps 50 --warmup 5 --graph=false
step bench.log bench-resnet-20-tf32 60 "$BIN" gpu bench --arch resnet-20 --batch 128 --steps 50 --warmup 5 --tf32
# The erased network (every block's trailing ReLU removed) and the deepest CIFAR net of the paper.
step bench.log bench-resnet-110-erased 90 "$BIN" gpu bench --arch resnet-110 --batch 128 --steps 50 --warmup 5 --erase 1
step bench.log bench-resnet-1202 120 "$BIN" gpu bench --arch resnet-1202 --batch 128 --steps 10 --warmup 2
step torch.log torch 240 python3 bin/gpu/torch_resnet_bench.py 20 56 110 --device cuda --steps 50 --warmup 5
step torch.log torch-erased 60 python3 bin/gpu/torch_resnet_bench.py 110 --erase --device cuda --steps 50 --warmup 5
step torch.log torch-1202 120 python3 bin/gpu/torch_resnet_bench.py 1202 --device cuda --steps 10 --warmup 2
# 6. A real run through the trainer: ResNet-20 on CIFAR-10 (50,000 training
# images with the paper's augmentation), 10 epochs, the he-resnet recipe with
# its learning-rate drops moved to epochs 5 and 8, evaluated on the 10,000
# test images after every epoch, on the device.
if [ "${CIFAR:-1}" = 1 ] && [ -f data/cifar10-jpeg.tar.gz ]; then
  step cifar.log cifar10-resnet-20 110 "$BIN" train --device cuda --arch resnet-20 --recipe he-resnet --dataset cifar10 --data data \
    --epochs 10 --milestones 5,8 --milestone-unit epoch --seed 1 --out /tmp/cifar-run
  (cd /tmp && tar czf "$OUT/cifar-run.tar.gz" cifar-run/train.log cifar-run/metrics.csv cifar-run/results.json 2>/dev/null)
fi
nvidia-smi >> "$OUT/env.log" 2>&1
echo "done $(date -u)" | tee -a "$S"
