#!/usr/bin/env bash
# make bench: train and eval img/s and peak RSS of ResNet-20/56/110 and
# MLP-12 at batch 128 (each architecture in its own process, so the RSS is
# its own), beside the PyTorch reference script where PyTorch is installed,
# with the ratios; then ns/op of the main ops (go test -bench in graph/ops).
# Measure on an otherwise idle machine: ours and PyTorch run back to back.
#
# Environment: STEPS (timed training steps, default 5), ARCHS, TORCH_PY
# (default /usr/bin/python3), TORCH_SCRIPT (default bench/torch_resnet_bench.py, the
# project's copy of ../shared/bench/torch_resnet_bench.py, the same without its mode flags).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-5}
ARCHS=${ARCHS:-"resnet-20 resnet-56 resnet-110 mlp-12"}
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
TORCH_SCRIPT=${TORCH_SCRIPT:-bench/torch_resnet_bench.py}
BIN=bin/eraserelu
go build -o "$BIN" ./cmd/eraserelu

have_torch=0
if [ -f "$TORCH_SCRIPT" ] && "$TORCH_PY" -c 'import torch' 2>/dev/null; then have_torch=1; fi

echo "# $(date -u +%FT%TZ) $(nproc) cores, GOMAXPROCS=${GOMAXPROCS:-$(nproc)}, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-11s %10s %10s %9s | %10s %10s %9s | %7s %7s %7s\n' arch train_img/s eval_img/s rss_MiB torch_train torch_eval torch_rss train_x eval_x rss_x
for a in $ARCHS; do
	ours=$("$BIN" bench --arch "$a" --batch 128 --steps "$STEPS" --warmup 1 --json)
	tr=$(echo "$ours" | sed -E 's/.*"train_img_s":([0-9.e+-]+).*/\1/')
	ev=$(echo "$ours" | sed -E 's/.*"eval_img_s":([0-9.e+-]+).*/\1/')
	rss=$(echo "$ours" | sed -E 's/.*"peak_rss_mib":([0-9.e+-]+).*/\1/')
	ttr=- tev=- trss=- rx=- ex=- mx=-
	depth=${a#resnet-}
	if [ $have_torch = 1 ] && [ "$depth" != "$a" ]; then
		line=$("$TORCH_PY" "$TORCH_SCRIPT" "$depth" --steps "$STEPS" --warmup 1 | tail -1)
		ttr=$(echo "$line" | sed -E 's/.*train_img_s=([0-9.]+).*/\1/')
		tev=$(echo "$line" | sed -E 's/.*eval_img_s=([0-9.]+).*/\1/')
		trss=$(echo "$line" | sed -E 's/.*peak_rss_MiB=([0-9.]+).*/\1/')
		rx=$(awk "BEGIN{printf \"%.2f\", $tr/$ttr}")
		ex=$(awk "BEGIN{printf \"%.2f\", $ev/$tev}")
		mx=$(awk "BEGIN{printf \"%.2f\", $rss/$trss}")
	fi
	printf '%-11s %10.1f %10.1f %9.0f | %10s %10s %9s | %7s %7s %7s\n' "$a" "$tr" "$ev" "$rss" "$ttr" "$tev" "$trss" "$rx" "$ex" "$mx"
	if [ "$a" = mlp-12 ]; then
		awk "BEGIN{printf \"  mlp-12: one MNIST epoch (60000 images) of training steps ~ %.1f s\n\", 60000/$tr}"
	fi
done
[ $have_torch = 1 ] || echo "(PyTorch not importable with $TORCH_PY: no reference figures)"

echo
echo "# whole steps, erase pass, build+compile (go test -bench ./bench)"
go test -run '^$' -bench 'ResNet20|EraseResNet1202|BuildCompileResNet1202' -benchtime 3x ./bench | grep -E '^Benchmark'
echo
echo "# main ops, float32, batch 128 (go test -bench ./graph/ops)"
go test -run '^$' -bench 'Conv2DForward|Conv2DBackward$|BatchNorm|Elementwise|Pool|Linear|CrossEntropy' -benchtime 10x ./graph/ops | grep -E '^Benchmark'
