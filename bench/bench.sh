#!/usr/bin/env bash
# make bench: train and eval img/s and peak RSS of ResNet-20/56/110 and
# MLP-12 at batch 128 (each architecture in its own process, so the RSS is
# its own), beside the PyTorch reference script where PyTorch is installed,
# with the ratios; then ns/op of the main ops (go test -bench in graph/ops).
#
# Ours and PyTorch run back to back, ROUNDS times alternating, and each
# round's ratio comes from its own pair: on a machine shared with other
# load, a single pair moves by 30% either way, while the load changes
# slowly enough that the two halves of one pair see about the same. The
# table gives the medians of the img/s over the rounds and the median of
# the per-round ratios, with the lowest and highest ratio beside it.
#
# Environment: STEPS (timed training steps, default 5), ROUNDS (default 3),
# ARCHS, TORCH_PY (default /usr/bin/python3), TORCH_SCRIPT (default
# bench/torch_resnet_bench.py, the project's copy of
# ../shared/bench/torch_resnet_bench.py, the same without its mode flags).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-5}
ROUNDS=${ROUNDS:-3}
ARCHS=${ARCHS:-"resnet-20 resnet-56 resnet-110 mlp-12"}
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
TORCH_SCRIPT=${TORCH_SCRIPT:-bench/torch_resnet_bench.py}
BIN=bin/eraserelu
go build -o "$BIN" ./cmd/eraserelu

have_torch=0
if [ -f "$TORCH_SCRIPT" ] && "$TORCH_PY" -c 'import torch' 2>/dev/null; then have_torch=1; fi

echo "# $(date -u +%FT%TZ) $(nproc) cores, GOMAXPROCS=${GOMAXPROCS:-$(nproc)}, load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds"
printf '%-11s %10s %10s %9s | %10s %10s %9s | %7s %13s %7s %7s\n' arch train_img/s eval_img/s rss_MiB torch_train torch_eval torch_rss train_x train_x_range eval_x rss_x

field() { echo "$1" | sed -E "s/.*$2([0-9.e+-]+).*/\1/"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }

for a in $ARCHS; do
	depth=${a#resnet-}
	with_torch=0
	if [ $have_torch = 1 ] && [ "$depth" != "$a" ]; then with_torch=1; fi
	tr_all= ev_all= rss_all= ttr_all= tev_all= trss_all= rx_all= ex_all=
	for _ in $(seq "$ROUNDS"); do
		ours=$("$BIN" bench --arch "$a" --batch 128 --steps "$STEPS" --warmup 1 --json)
		tr=$(printf '%.1f' "$(field "$ours" '"train_img_s":')")
		ev=$(printf '%.1f' "$(field "$ours" '"eval_img_s":')")
		tr_all="$tr_all $tr" ev_all="$ev_all $ev" rss_all="$rss_all $(field "$ours" '"peak_rss_mib":')"
		if [ $with_torch = 1 ]; then
			line=$("$TORCH_PY" "$TORCH_SCRIPT" "$depth" --steps "$STEPS" --warmup 1 | tail -1)
			ttr=$(field "$line" 'train_img_s=')
			tev=$(field "$line" 'eval_img_s=')
			ttr_all="$ttr_all $ttr" tev_all="$tev_all $tev" trss_all="$trss_all $(field "$line" 'peak_rss_MiB=')"
			rx_all="$rx_all $(ratio "$tr" "$ttr")" ex_all="$ex_all $(ratio "$ev" "$tev")"
		fi
	done
	tr=$(echo "$tr_all" | median) ev=$(echo "$ev_all" | median) rss=$(echo "$rss_all" | median)
	ttr=- tev=- trss=- rx=- rrange=- ex=- mx=-
	if [ $with_torch = 1 ]; then
		ttr=$(echo "$ttr_all" | median) tev=$(echo "$tev_all" | median) trss=$(echo "$trss_all" | median)
		rx=$(printf '%.2f' "$(echo "$rx_all" | median)")
		ex=$(printf '%.2f' "$(echo "$ex_all" | median)")
		rrange="$(echo "$rx_all" | tr ' ' '\n' | grep . | sort -g | head -1)-$(echo "$rx_all" | tr ' ' '\n' | grep . | sort -g | tail -1)"
		mx=$(ratio "$rss" "$trss")
	fi
	printf '%-11s %10.1f %10.1f %9.0f | %10s %10s %9s | %7s %13s %7s %7s\n' "$a" "$tr" "$ev" "$rss" "$ttr" "$tev" "$trss" "$rx" "$rrange" "$ex" "$mx"
	[ "$ROUNDS" = 1 ] || echo "  $a rounds: train img/s ours$tr_all${ttr_all:+ / torch$ttr_all}${rx_all:+ / ratio$rx_all}"
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
