#!/usr/bin/env bash
# The paper-scale campaign on the GPU machine, in ONE device call per slice
# of device time (docs/CUDA.md, "Campaign"). Here first: `make campaign-gpu`
# (the GPU binary, MNIST and the CIFAR-10 JPEG copy under data/, the state
# the last call returned under campaign-state/), then:
#   run(command="BUDGET=420 bash scripts/gpu-campaign.sh",
#       carry=["bin/gpu/eraserelu", "data/mnist", "data/cifar10-jpeg.tar.gz", "campaign-state"], timeout_s=540)
# Steps: (1) env; (2) jobs-per-gpu: K = 1, 2, 4, 8 processes of `gpu bench`
# at once on ResNet-20 (CIFAR shape) and MLP-12 (MNIST shape), aggregate
# img/s, under 60 s in all; (3) `eraserelu campaign run` with BUDGET seconds
# (packing included), K jobs at once, resuming campaign-state/state.tar.gz
# when present. Under $OUT come back (7 files): summary.txt, env.log,
# kbench.log, campaign.log, logs.tar.gz (the worker and train logs of the
# jobs this call ran), results.tar.gz (finished runs, laid out as
# docs/runs/paper/...: unpack it at the repository root and commit) and
# state.tar.gz (copy it to campaign-state/ for the next call).
# Knobs: BUDGET (s), K (jobs at once, default 8), ONLY (e.g. fig3c,table2),
# SCALE (paper), MAX_STATE_MB (6: what the next call can carry besides the
# binary and data sets), MIN_START (s: no job starts with less left before
# the stop; an MLP-12 checkpoint, 86 MB, cannot travel, so a cut job
# restarts), KBENCH=0 skips step 2.
# DEV=cuda-ref BIN=bin/eraserelu SCALE=smoke KBENCH=0 runs the same script
# on a machine without a GPU (the CUDA path on its CPU interpreter).
set -u
OUT=${OUT:-/tmp/gpu-campaign}
BIN=${BIN:-bin/gpu/eraserelu}
DATA=${DATA:-data}
DEV=${DEV:-cuda}
BUDGET=${BUDGET:-420}
K=${K:-8}
ONLY=${ONLY:-}
SCALE=${SCALE:-paper}
MAX_STATE_MB=${MAX_STATE_MB:-6}
KBENCH=${KBENCH:-1}
MIN_START=${MIN_START:-20}
STATE=${STATE:-$(mktemp -d /tmp/campaign-state.XXXX)}
. "$(dirname "$0")/device-lib.sh"
T0=$SECONDS
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  ldd "$BIN" | grep -E "cuda|cublas|not found"; nproc; free -g | head -2
  ls -la campaign-state 2>/dev/null
} > "$OUT/env.log" 2>&1
head -n 2 "$OUT/env.log" >> "$S"

# kbench ARCH TOTAL_STEPS: K processes of `gpu bench` at once for K = 1, 2,
# 4, 8, each TOTAL_STEPS/K timed steps (batch 128). Two aggregates: the sum
# of the processes' img/s, each over its own timed window (an upper bound
# when the windows do not overlap fully), and all images over the wall time
# of the whole launch, start-up included (a lower bound).
kbench() {
  local arch=$1 total=$2 k
  for k in 1 2 4 8; do
    if [ $((SECONDS - T0)) -gt 75 ]; then echo "jobs-per-gpu $arch K=$k: skipped (over 75 s of measuring)" | tee -a "$S"; continue; fi
    local steps=$(( total / k )) t0 pids=() i
    [ $steps -lt 20 ] && steps=20
    t0=$(date +%s.%N)
    for i in $(seq "$k"); do
      timeout -k 5 25 "$BIN" gpu bench --arch "$arch" --batch 128 --steps "$steps" --warmup 5 > "$OUT/kb.$i" 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}"
    local t1; t1=$(date +%s.%N)
    cat "$OUT"/kb.* >> "$OUT/kbench.log"
    python3 - "$arch" "$k" "$steps" "$t0" "$t1" "$OUT"/kb.* <<'EOF' 2>&1 | tee -a "$OUT/kbench.log" "$S"
import json, sys
arch, k, steps, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rs = []
for f in sys.argv[6:]:
    for line in open(f):
        if line.startswith("{"):
            rs.append(json.loads(line))
s = sum(r["train_img_s"] for r in rs)
wall = k * steps * 128 / (t1 - t0)
print(f"jobs-per-gpu {arch} K={k}: {len(rs)}/{k} ran; sum of per-process train img/s {s:,.0f}; "
      f"all images over the launch's wall time (start-up included) {wall:,.0f} img/s ({t1 - t0:.1f} s); "
      f"device memory used {max((r['device_used_mib'] for r in rs), default=0):,.0f} MiB")
EOF
    rm -f "$OUT"/kb.*
  done
}
# kbench_train: K trainer processes at once (one epoch of MLP-12 on all of
# MNIST each, what a campaign's jobs do) for K = 1, 2, 4, 8: the trainer
# leaves the GPU idle while it loads batches, evaluates and syncs each step,
# which gpu bench (GPU-bound by construction) cannot show. Aggregate: all
# training images over the launch's wall time (start-up and evaluation
# included), and the sum of the runs' own train img/s.
kbench_train() {
  local k i t0 t1 pids
  for k in 1 2 4 8; do
    if [ $((SECONDS - T0)) -gt 150 ]; then echo "jobs-per-gpu trainer K=$k: skipped (over 150 s of measuring)" | tee -a "$S"; continue; fi
    pids=()
    t0=$(date +%s.%N)
    for i in $(seq "$k"); do
      rm -rf "/tmp/kt-$k-$i"
      timeout -k 5 60 "$BIN" train --device cuda --arch mlp-12 --recipe mlp-mnist --dataset mnist --data "$DATA" \
        --epochs 1 --seed "$i" --out "/tmp/kt-$k-$i" > "$OUT/kt.$i" 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}"
    t1=$(date +%s.%N)
    python3 - "$k" "$t0" "$t1" /tmp/kt-"$k"-* <<'EOF2' 2>&1 | tee -a "$OUT/kbench.log" "$S"
import json, sys
k, t0, t1 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
rs = []
for d in sys.argv[4:]:
    try:
        rs.append(json.load(open(d + "/results.json")))
    except OSError:
        pass
imgs = sum(r["history"][0]["train"]["examples"] for r in rs)
own = sum(r["history"][0]["images_per_sec"] for r in rs)
print(f"jobs-per-gpu trainer mlp-12 K={k}: {len(rs)}/{k} finished; all training images over the launch's wall time "
      f"{imgs / (t1 - t0):,.0f} img/s ({t1 - t0:.1f} s); sum of the runs' own train img/s {own:,.0f}")
EOF2
    rm -f "$OUT"/kt.*
  done
}
if [ "$KBENCH" = 1 ] && [ "$DEV" = cuda ]; then
  kbench resnet-20 600
  kbench mlp-12 8000
  kbench_train
fi

# The campaign: BUDGET seconds from here, packing included.
only=(); [ -n "$ONLY" ] && only=(--only "$ONLY")
restore=(); [ -f campaign-state/state.tar.gz ] && restore=(--restore campaign-state/state.tar.gz)
step campaign.log campaign $((BUDGET + 30)) "$BIN" campaign run --state "$STATE" "${restore[@]}" --scale "$SCALE" "${only[@]}" \
  --device "$DEV" --data "$DATA" --jobs-per-gpu "$K" --budget "${BUDGET}s" --min-start "${MIN_START}s" --pack "$OUT" --max-state-mb "$MAX_STATE_MB"
# The status table and the pack line, from the campaign's output.
grep -E "^\||^campaign |^packed |^restored |^no .*fresh campaign|^skipped|failed:" "$OUT/campaign.log" >> "$S"
# The worker and train logs of the jobs run in this call or resumable (the
# state keeps only the small files of runs finished in earlier calls).
(cd "$STATE" && find . -name worker.log | sed 's|/worker.log$||' |
  while read -r d; do echo "$d/worker.log"; echo "$d/train.log"; done |
  tar czf "$OUT/logs.tar.gz" -T - 2>/dev/null)
ls -la "$OUT" >> "$OUT/env.log"
nvidia-smi >> "$OUT/env.log" 2>&1
echo "done in $((SECONDS - T0)) s $(date -u)" | tee -a "$S"
