#!/usr/bin/env bash
# Training through the trainer on the GPU (`eraserelu train --device cuda`),
# checked against the CPU, in ONE device call after `make cuda-build` and
# copying MNIST and the CIFAR-10 JPEG copy into data/ (docs/CUDA.md):
#   run(command="bash scripts/gpu-train.sh", carry=["bin/gpu/eraserelu", "data/mnist", "data/cifar10-jpeg.tar.gz"], timeout_s=480)
# (57 MB of the 64 MiB a call carries). Every step has its own time limit.
# Under $OUT come back: summary.txt (one line per step, the comparisons),
# env.log, agree.log, resume.log, mnist.log, cifar.log and runs.tar.gz
# (each run's train.log, metrics.csv and results.json).
# DEV=cuda-ref BIN=bin/eraserelu SCALE=small STOP_AFTER=1 runs the same
# script on a machine without a GPU (the CUDA path on its CPU interpreter).
set -u
OUT=${OUT:-/tmp/gpu-train}
BIN=${BIN:-bin/gpu/eraserelu}
DATA=${DATA:-data}
DEV=${DEV:-cuda}
SCALE=${SCALE:-full}
RUNS=$(mktemp -d /tmp/gpu-runs.XXXX)
. "$(dirname "$0")/device-lib.sh"
# compare A B TOL: every step's training loss and the final metrics of two runs.
compare() {
  python3 - "$@" <<'EOF' 2>&1 | tee -a "$S"
import json, sys
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def losses(d):
    out = {}
    for line in open(d + "/train.log"):
        r = json.loads(line)
        if r.get("msg") == "progress":
            out[r["step"]] = r["loss"]
    return out
la, lb = losses(a), losses(b)
steps = sorted(set(la) & set(lb))
rel = lambda x, y: abs(x - y) / max(abs(y), 1e-12)
worst = max((rel(la[s], lb[s]) for s in steps), default=float("nan"))
ra, rb = (json.load(open(d + "/results.json")) for d in (a, b))
fa, fb = ra["history"][-1], rb["history"][-1]
worst = max(worst, rel(fa["train"]["loss"], fb["train"]["loss"]), rel(fa["test"]["loss"], fb["test"]["loss"]))
print(f"compare {a.split('/')[-1]} vs {b.split('/')[-1]}: {len(steps)} steps, worst loss relative difference {worst:.3g} (steps and final) (tolerance {tol:g});",
      f"per step {['%.1e' % rel(la[s], lb[s]) for s in steps[:12]]};",
      f"final train loss {fa['train']['loss']:.6g} vs {fb['train']['loss']:.6g}, test loss {fa['test']['loss']:.6g} vs {fb['test']['loss']:.6g},",
      f"test top-1 error {fa['test']['top1_err']} vs {fb['test']['top1_err']}")
sys.exit(0 if worst <= tol else 1)
EOF
}
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  ldd "$BIN" | grep -E "cuda|cublas|not found"; nproc
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log" >> "$S"

R20="--arch resnet-20 --recipe he-resnet --batch-size 128 --seed 1"
small=0; [ "$SCALE" = small ] && small=1
SUB="--train-per-class 200 --test-per-class 100"
# 1. The device against the CPU from the same weights and batches: one step,
# then the evaluation of 1,000 test images (measured on the H200: test loss
# 3e-7 apart, the same top-1 and top-5 counts).
step agree.log agree1-$DEV 60 "$BIN" train $R20 --dataset mnist --data "$DATA" $SUB --iterations 1 --device "$DEV" --out "$RUNS/agree1-$DEV"
step agree.log agree1-cpu 60 "$BIN" train $R20 --dataset mnist --data "$DATA" $SUB --iterations 1 --device cpu --out "$RUNS/agree1-cpu"
compare "$RUNS/agree1-$DEV" "$RUNS/agree1-cpu" 1e-5
# 2. Ten steps: the runs drift apart as training amplifies rounding
# differences (the CPU against the CPU interpreter, which differ only in
# rounding, are 1e-5 apart at step 2, 1e-3 at step 4, 4e-3 at step 10; the
# H200 likewise), hence the loose tolerance.
it=10; [ $small = 1 ] && it=3
step agree.log agree-$DEV 60 "$BIN" train $R20 --dataset mnist --data "$DATA" $SUB --iterations $it --device "$DEV" --out "$RUNS/agree-$DEV"
step agree.log agree-cpu 90 "$BIN" train $R20 --dataset mnist --data "$DATA" $SUB --iterations $it --device cpu --out "$RUNS/agree-cpu"
compare "$RUNS/agree-$DEV" "$RUNS/agree-cpu" 5e-2
# 3. Without the CUDA graph: the same launches one by one, so the same numbers.
if [ "$DEV" = cuda ]; then
  step agree.log agree-nograph 45 "$BIN" train $R20 --dataset mnist --data "$DATA" $SUB --iterations $it --device cuda --cuda-graph=false --out "$RUNS/agree-nograph"
  compare "$RUNS/agree-nograph" "$RUNS/agree-$DEV" 0
fi
# 4. A real run: all of MNIST, two epochs (about 10 s on the H200).
M="--dataset mnist --data $DATA"; [ $small = 1 ] && M="$M --train-per-class 20 --test-per-class 5"
step mnist.log mnist-resnet-20 90 "$BIN" train $R20 $M --epochs 2 --device "$DEV" --out "$RUNS/mnist"
# 5. The same run interrupted (SIGINT: a checkpoint) once its log shows
# STOP_AFTER progress lines (about a tenth of an epoch each), and resumed on
# the device: the uninterrupted run's results bit for bit.
step resume.log interrupted 60 bash -c "$BIN train $R20 $M --epochs 2 --device $DEV --out $RUNS/resumed & pid=\$!
  for i in \$(seq 1200); do [ \$(grep -c progress $RUNS/resumed/train.log 2>/dev/null) -ge ${STOP_AFTER:-3} ] 2>/dev/null && break; sleep 0.05; done
  kill -INT \$pid; wait \$pid; echo exit \$?"
grep -ho "training interrupted at step [0-9]* (epoch [0-9]*, batch [0-9]*)" "$OUT/resume.log" | tail -n 1 | tee -a "$S"
step resume.log resumed 90 "$BIN" train $R20 $M --epochs 2 --device "$DEV" --out "$RUNS/resumed"
compare "$RUNS/resumed" "$RUNS/mnist" 0
# 6. CIFAR-10 (the JPEG copy), three epochs (about 20 s on the H200).
if [ $small = 0 ] && [ -f "$DATA/cifar10-jpeg.tar.gz" ]; then
  step cifar.log cifar10-resnet-20 150 "$BIN" train $R20 --dataset cifar10 --data "$DATA" --epochs 3 --device "$DEV" --out "$RUNS/cifar10"
fi
(cd "$RUNS" && tar czf "$OUT/runs.tar.gz" */train.log */metrics.csv */results.json 2>/dev/null)
echo "done $(date -u)" | tee -a "$S"
