#!/usr/bin/env bash
# make gpu: builds the GPU eraserelu (-tags gpu) against the CUDA toolkit
# installed on this machine, for a machine with an NVIDIA GPU of compute
# capability 7.0 or newer and its driver.
#   usage: gpu-build.sh CUDA_HOME OUT
# CUDA_HOME is the toolkit's root: /usr/local/cuda (NVIDIA's installers),
# /usr/local/cuda-12.4, or /usr for Debian/Ubuntu's nvidia-cuda-toolkit.
# Headers from CUDA_HOME/include (CUDA 11.8 to 13.x); cuBLAS from the
# toolkit's library directory, linked through its libcublas.so, so the binary
# asks for the real soname (libcublas.so.11, .12 or .13) and the directory is
# its run path; libcuda.so.1 is the driver's (the toolkit's link stub when
# the driver's libcuda.so is not installed). Stops with a message naming what
# is missing. (Without CUDA here, `make cuda-build` cross-builds the binary
# for the lent H200 against stub libraries instead.)
set -euo pipefail
home=${1:?usage: gpu-build.sh CUDA_HOME OUT}
out=${2:?usage: gpu-build.sh CUDA_HOME OUT}
GO=${GO:-go}

fail() {
	echo "make gpu: $*" >&2
	exit 1
}

if [ ! -f "$home/include/cuda.h" ]; then
	fail "no CUDA toolkit at CUDA_HOME=$home (no $home/include/cuda.h). Install the CUDA toolkit (11.8 to 13.x) and give its root: make gpu CUDA_HOME=/usr/local/cuda-12.4 (Debian/Ubuntu's nvidia-cuda-toolkit: CUDA_HOME=/usr). Without CUDA on this machine, make cuda-build cross-builds for the lent GPU machine."
fi
[ -f "$home/include/cublas_v2.h" ] ||
	fail "CUDA_HOME=$home has include/cuda.h but no include/cublas_v2.h: install the cuBLAS development files of the same CUDA version"
version=$(awk '$1 == "#define" && $2 == "CUDA_VERSION" {print $3}' "$home/include/cuda.h")
[[ "$version" =~ ^[0-9]+$ ]] || fail "$home/include/cuda.h defines no CUDA_VERSION"
if [ "$version" -lt 11080 ] || [ "$version" -ge 14000 ]; then
	fail "CUDA_HOME=$home is CUDA $((version / 1000)).$((version % 1000 / 10)); make gpu builds against CUDA 11.8 to 13.x"
fi

blasdir=
for d in "$home/lib64" "$home/targets/x86_64-linux/lib" "$home/lib/x86_64-linux-gnu" "$home/lib"; do
	if [ -e "$d/libcublas.so" ]; then
		blasdir=$d
		break
	fi
done
[ -n "$blasdir" ] ||
	fail "no libcublas.so under CUDA_HOME=$home (looked in lib64, targets/x86_64-linux/lib, lib/x86_64-linux-gnu, lib): install cuBLAS's development files"

cudadir=
for d in "$blasdir" /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib "$home/lib64/stubs" "$home/targets/x86_64-linux/lib/stubs"; do
	if [ -e "$d/libcuda.so" ]; then
		cudadir=$d
		break
	fi
done
[ -n "$cudadir" ] ||
	fail "no libcuda.so (the NVIDIA driver's, or the toolkit's lib64/stubs/libcuda.so): install the driver, or the toolkit's stubs"

echo "make gpu: CUDA $((version / 1000)).$((version % 1000 / 10)) at $home; cuBLAS $blasdir/libcublas.so -> $(readlink -f "$blasdir/libcublas.so"); libcuda from $cudadir"
mkdir -p "$(dirname "$out")"
CGO_CFLAGS="-I$home/include" CGO_LDFLAGS="-L$blasdir -L$cudadir -Wl,-rpath,$blasdir" \
	"$GO" build -buildvcs=auto -tags gpu -trimpath -o "$out" ./cmd/eraserelu
needed=$(readelf -d "$out" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -E '^lib(cuda|cublas)' | tr '\n' ' ')
echo "make gpu: wrote $out (needs $needed)"
