#!/usr/bin/env bash
# The CUDA path's device check, run on the GPU machine in ONE device call:
#   run(command="BUDGET=200 bash scripts/gpu-check.sh", carry=["bin/gpu", "data/cifar10-jpeg.tar.gz"], timeout_s=330)
# after `make bench-gpu` here (it builds bin/gpu/eraserelu and the device
# tests bin/gpu/cuda.test.xz with the stubs,
# copies bench/torch_resnet_bench.py and bench/gpu_ratios.py beside it and
# the CIFAR-10 JPEG copy into data/). About 2-3 minutes of wall time (the
# 2026-11-28 version, a subset, took 90 s; the bf16 check and benches add
# about a minute); the optional steps (ResNet-1202, WRN-28-10, the CIFAR-10
# runs) start only while the call is under BUDGET seconds (default 150), so
# that it ends within the time it is given (BUDGET=200 with timeout_s=330).
#
# It measures, in the same call: whether the executor's cgo calls compile
# against the machine's CUDA headers (12.x/13.x: `make gpu` there), the probe
# (compute capability, the driver's
# JIT of the compute_70 PTX, kernels and SGEMM against the CPU), the
# numerics (trace, check in fp32 and in bf16 mixed precision), then training
# img/s of ours in fp32, tf32 and bf16 beside PyTorch eager in exact fp32
# (--tf32 off), eager with PyTorch's defaults (TF32 cuDNN convolutions) and
# AMP bf16 + channels-last (cuDNN autotuning on), for ResNet-20/56/110 at
# batch 128, then ResNet-1202 and WRN-28-10; the ratios end summary.txt
# (bench/gpu_ratios.py). The CIFAR-10 run trains in fp32, then (budget
# allowing) the same run in bf16, for the "bf16 ends within noise of fp32"
# comparison (both runs' files in cifar-run.tar.gz).
#
# Every step has its own time limit so a hang cannot eat the budget. The
# device tool returns at most 8 files, so the logs are grouped: summary.txt,
# env.log, check.log (probe, trace, check), profile.log, bench.log,
# torch.log, cifar.log and cifar-run.tar.gz (the training run's train.log,
# metrics.csv, results.json). CIFAR=0 skips the training run.
set -u
OUT=${OUT:-/tmp/gpu-out}
BIN=${BIN:-bin/gpu/eraserelu}
TORCH=${TORCH:-"python3 bin/gpu/torch_resnet_bench.py --device cuda"}
BUDGET=${BUDGET:-150}
# QUICK=1: only the probe, the bf16 trace and check, and the ResNet-20/56/110
# ratios (ours fp32/tf32/bf16, PyTorch exact fp32 and AMP bf16 +
# channels-last): for a call that shares its minutes with a campaign.
QUICK=${QUICK:-0}
full() { [ "$QUICK" != 1 ]; }
. "$(dirname "$0")/device-lib.sh"
{
  date -u; nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
  ldd "$BIN" | grep -E "cuda|cublas|not found"; ldd --version | head -1
  # Whether `make gpu` could build here: the toolkit's headers and a C compiler.
  ls -d /usr/local/cuda*/include/cuda.h /usr/local/cuda*/include/cublas_v2.h 2>&1; command -v gcc nvcc go
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log" >> "$S"
# The executor's cgo calls (bin/gpu/cgo, from make cuda-build) against every
# CUDA toolkit's headers here: does `make gpu` compile with CUDA 12/13?
if command -v gcc >/dev/null && [ -f bin/gpu/cgo/device.cgo2.c ]; then
  for inc in /usr/local/cuda*/include; do
    [ -f "$inc/cuda.h" ] || continue
    v=$(awk '$1 == "#define" && $2 == "CUDA_VERSION" {print $3}' "$inc/cuda.h")
    if gcc -fsyntax-only -Werror -I bin/gpu/cgo -I "$inc" bin/gpu/cgo/device.cgo2.c >> "$OUT/env.log" 2>&1; then r=OK; else r=FAILED; fi
    echo "cgo calls against $inc (CUDA_VERSION $v): $r" | tee -a "$OUT/env.log" >> "$S"
  done
fi

# ratios TITLE: the same-call ratios so far, into the summary.
ratios() {
  echo "$1" >> "$S"
  python3 bin/gpu/gpu_ratios.py "$OUT/bench.log" "$OUT/torch.log" >> "$S" 2>&1
}

# optional NAME: true while the call's budget lasts, else says what it skips.
optional() {
  if [ "$SECONDS" -lt "$BUDGET" ]; then return 0; fi
  echo "$1 skipped: ${SECONDS}s of the ${BUDGET}s budget spent" | tee -a "$S"
  return 1
}

# 1. Sanity: driver API, compute capability, the compute_70 PTX (nvcc 11.8)
# JIT-compiled by the driver for this GPU (load time printed), kernels,
# cuBLAS SGEMM against the CPU.
step check.log probe 60 "$BIN" gpu probe || { echo "probe failed: stopping (see check.log)" | tee -a "$S"; exit 1; }
grep -m1 "^device:" "$OUT/check.log" >> "$S"
# 2. Every kernel of a ResNet-20 step (batch 16) on identical inputs vs the CPU interpreter, then the drift and ReLU flips.
full && step check.log trace 120 "$BIN" gpu trace --arch resnet-20 --batch 16 --tol 1e-5
# 3. The acceptance check: one float32 training step of ResNet-20, batch 128, device vs CPU float32 and float64.
full && step check.log check 180 "$BIN" gpu check --arch resnet-20 --batch 128 --tol 1e-4
# 3b. The same in bf16 mixed precision: every kernel of the bf16 step on
# identical inputs (the roundings bit for bit, the GEMMs to fp32 summation
# order), then the step judged against float64 with the bf16 reference
# interpreter (same rounding points) as the peer.
step check.log trace-bf16 120 "$BIN" gpu trace --arch resnet-20 --batch 16 --tol 1e-4 --precision bf16
step check.log check-bf16 180 "$BIN" gpu check --arch resnet-20 --batch 128 --precision bf16
# 3c. The package's device tests (make cuda-test-build): the trainer on the
# device against the reference interpreter, new batches every step, every
# kernel, CUDA-graph replay.
if [ -f bin/gpu/cuda.test.xz ]; then
  xz -dkf bin/gpu/cuda.test.xz && chmod +x bin/gpu/cuda.test
  (cd cuda && step check.log device-tests 90 ../bin/gpu/cuda.test -test.run TestDevice -test.v -test.count=1)
fi
# 3d. conv_direct (--direct-conv, not yet run on a GPU before this call):
# every kernel of the direct fp32 step on identical inputs, then the step
# judged against the CPU and float64 as the GEMM step is.
step check.log trace-direct 120 "$BIN" gpu trace --arch resnet-20 --batch 16 --tol 1e-4 --direct-conv
step check.log check-direct 180 "$BIN" gpu check --arch resnet-20 --batch 128 --tol 1e-4 --direct-conv
# 4. Where the device time goes (CUDA events between launches), with the
# GEMM convolutions and with the direct ones.
full && step profile.log profile-resnet-20 60 "$BIN" gpu profile --arch resnet-20 --batch 128 --reps 5
step profile.log profile-resnet-20-direct 60 "$BIN" gpu profile --arch resnet-20 --batch 128 --reps 5 --direct-conv
# 5. Throughput beside PyTorch, same call: ours fp32 and tf32 (CUDA graph),
# then PyTorch in its three modes.
for a in 20 56 110; do
  for p in fp32 tf32 bf16; do
    step bench.log "bench-resnet-$a-$p" 90 "$BIN" gpu bench --arch "resnet-$a" --batch 128 --steps 50 --warmup 5 --precision "$p"
  done
  step bench.log "bench-resnet-$a-fp32-direct" 90 "$BIN" gpu bench --arch "resnet-$a" --batch 128 --steps 50 --warmup 5 --direct-conv
done
full && step bench.log bench-resnet-20-nograph 60 "$BIN" gpu bench --arch resnet-20 --batch 128 --steps 50 --warmup 5 --graph=false
full && step bench.log bench-resnet-110-erased 90 "$BIN" gpu bench --arch resnet-110 --batch 128 --steps 50 --warmup 5 --erase 1
step torch.log torch-fp32 120 $TORCH 20 56 110 --steps 50 --warmup 5 --tf32 off
full && step torch.log torch-default 120 $TORCH 20 56 110 --steps 50 --warmup 5
step torch.log torch-amp-bf16-cl 120 $TORCH 20 56 110 --steps 50 --warmup 5 --amp bf16 --channels-last --cudnn-benchmark
full && step torch.log torch-erased 60 $TORCH 110 --erase --steps 50 --warmup 5
ratios "ResNet-20/56/110 (${SECONDS}s):"
# The deepest CIFAR ResNet of the paper and the widest net, as the budget allows.
if optional "resnet-1202"; then
  for p in fp32 tf32 bf16; do
    step bench.log "bench-resnet-1202-$p" 120 "$BIN" gpu bench --arch resnet-1202 --batch 128 --steps 10 --warmup 2 --precision "$p"
  done
  # Batch-norm outputs recomputed in the backward pass: the arena it saves
  # and the time it costs (not in the ratio table: recompute_bn is true).
  for p in fp32 bf16; do
    step bench.log "bench-resnet-1202-$p-recompute-bn" 120 "$BIN" gpu bench --arch resnet-1202 --batch 128 --steps 10 --warmup 2 --precision "$p" --recompute-bn
  done
  step torch.log torch-1202-default 90 $TORCH 1202 --steps 10 --warmup 2
  step torch.log torch-1202-amp-bf16-cl 90 $TORCH 1202 --steps 10 --warmup 2 --amp bf16 --channels-last --cudnn-benchmark
fi
if optional "wrn-28-10"; then
  for p in fp32 tf32 bf16; do
    step bench.log "bench-wrn-28-10-$p" 90 "$BIN" gpu bench --arch wrn-28-10 --batch 128 --steps 20 --warmup 3 --precision "$p"
  done
  step torch.log torch-wrn-28-10-fp32 90 $TORCH wrn-28-10 --steps 20 --warmup 3 --tf32 off
  step torch.log torch-wrn-28-10-default 90 $TORCH wrn-28-10 --steps 20 --warmup 3
  step torch.log torch-wrn-28-10-amp-bf16-cl 90 $TORCH wrn-28-10 --steps 20 --warmup 3 --amp bf16 --channels-last --cudnn-benchmark
fi
grep -q "^=== bench-resnet-1202\|^=== bench-wrn" "$OUT/bench.log" && ratios "with ResNet-1202 and WRN-28-10 (${SECONDS}s):"
# 6. A real run through the trainer: ResNet-20 on CIFAR-10 (50,000 training
# images with the paper's augmentation), 10 epochs, the he-resnet recipe with
# its learning-rate drops moved to epochs 5 and 8, evaluated on the 10,000
# test images after every epoch, on the device.
if [ "${CIFAR:-1}" = 1 ] && [ -f data/cifar10-jpeg.tar.gz ] && optional "cifar10-resnet-20"; then
  step cifar.log cifar10-resnet-20 110 "$BIN" train --device cuda --arch resnet-20 --recipe he-resnet --dataset cifar10 --data data \
    --epochs 10 --milestones 5,8 --milestone-unit epoch --seed 1 --out /tmp/cifar-run
  runs="cifar-run/train.log cifar-run/metrics.csv cifar-run/results.json"
  if optional "cifar10-resnet-20-bf16"; then
    step cifar.log cifar10-resnet-20-bf16 110 "$BIN" train --device cuda --precision bf16 --arch resnet-20 --recipe he-resnet --dataset cifar10 --data data \
      --epochs 10 --milestones 5,8 --milestone-unit epoch --seed 1 --out /tmp/cifar-run-bf16
    runs="$runs cifar-run-bf16/train.log cifar-run-bf16/metrics.csv cifar-run-bf16/results.json"
  fi
  (cd /tmp && tar czf "$OUT/cifar-run.tar.gz" $runs 2>/dev/null)
fi
nvidia-smi >> "$OUT/env.log" 2>&1
echo "done $(date -u) (${SECONDS}s)" | tee -a "$S"
