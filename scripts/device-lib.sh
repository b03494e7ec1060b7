# Shared by the device scripts (gpu-check.sh, gpu-train.sh); sourced, not run.
# Needs OUT set; defines S (the summary file, emptied) and step.
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
mkdir -p "$OUT"
S="$OUT/summary.txt"
: > "$S"

# step LOG NAME LIMIT_S COMMAND...: runs COMMAND under its own time limit
# (SIGINT first, so a training run checkpoints; SIGKILL 10 s later), appends
# its output to $OUT/LOG and one line (exit code, seconds, last output line)
# to the summary. Returns COMMAND's exit code.
step() {
  local log=$1 name=$2 limit=$3; shift 3
  local t0=$SECONDS
  echo "=== $name: $*" >> "$OUT/$log"
  timeout -s INT -k 10 "$limit" "$@" > "$OUT/tmp.log" 2>&1
  local rc=$?
  cat "$OUT/tmp.log" >> "$OUT/$log"
  echo "$name rc=$rc $((SECONDS - t0))s: $(tail -n 1 "$OUT/tmp.log")" | tee -a "$S"
  rm -f "$OUT/tmp.log"
  return $rc
}
