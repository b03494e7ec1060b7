#!/usr/bin/env bash
# Checks that a binary built with -tags gpu needs only libraries and symbols
# the GPU machine has (symbol lists in ../shared/cuda).
set -euo pipefail
bin=$1 shared=${2:-../shared/cuda}
needed=$(objdump -p "$bin" | awk '/NEEDED/{print $2}' | sort | tr '\n' ' ')
echo "NEEDED: $needed"
for lib in $needed; do
  case $lib in
    libcuda.so.1|libcublas.so.13|libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|libresolv.so.2) ;;
    *) echo "unexpected library $lib (not on the GPU machine)"; exit 1 ;;
  esac
done
bad=0
while read -r sym ver; do
  case $sym in
    cu[A-Z]*) grep -qx "$sym" "$shared/libcuda580.symbols" || { echo "missing in driver 580: $sym"; bad=1; } ;;
    cublas*) grep -qx "$sym" "$shared/libcublas13.symbols" || { echo "missing in cuBLAS 13: $sym"; bad=1; }
             [ "$ver" = "(libcublas.so.13)" ] || { echo "$sym has version $ver, want libcublas.so.13"; bad=1; } ;;
  esac
done < <(objdump -T "$bin" | awk '$0 ~ /\*UND\*/ && ($NF ~ /^cu/) {print $NF, $(NF-1)}')
[ $bad = 0 ] && echo "symbols: every cu*/cublas* import exists on the GPU machine (driver 580, cuBLAS 13)"
exit $bad
