# The project's set-up and checks. `make demo` and `make test` do all the
# set-up a fresh machine needs (OpenBLAS through apt when missing).
GO ?= go
PKGS := ./...
# Tests run the CPU build with OpenBLAS; `make test-purego` checks the pure-Go BLAS path.
TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: all deps build test test-purego lint bench demo data clean

all: lint test

# deps installs the C BLAS the default build links against.
deps:
	@if ! ls /usr/lib/*/libopenblas.so >/dev/null 2>&1 && ! ls /usr/lib/libopenblas.so >/dev/null 2>&1; then \
		echo "installing libopenblas-dev (the default build calls OpenBLAS through cgo)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null; \
	fi

build: deps
	$(GO) build -o bin/eraserelu ./cmd/eraserelu

test: deps lint
	$(GO) test $(TEST_FLAGS) $(PKGS)

test-purego:
	$(GO) test $(TEST_FLAGS) -tags purego $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# bench prints throughput, peak RSS and op timings beside PyTorch's (bench/bench.sh;
# docs/PERFORMANCE.md explains the figures). Run it on an otherwise idle machine.
bench: deps
	./bench/bench.sh

# data finds MNIST (the shared copy, or data/mnist) or fetches it through
# the Go module proxy.
data: build
	@if [ ! -d ../shared/datasets/mnist ] && [ ! -f data/mnist/train-images-idx3-ubyte.gz ]; then \
		./bin/eraserelu data fetch mnist --dir data/mnist; fi

# demo is the README's main job: a real experiment on real data.
demo: data
	./bin/eraserelu experiment main --out results

clean:
	rm -rf bin

# ---- CUDA path (docs/CUDA.md) -------------------------------------------------
# Nothing here is needed by the default build or CI.
CUDA_SHARED ?= ../shared/cuda
CUDA_STUBS  := bin/cuda-stubs
GPU_DIR     := bin/gpu

# CUDA 11.8 headers and nvcc from Debian bookworm contrib/non-free (about
# 1.6 GB to download); only for regenerating the PTX and building -tags gpu.
cuda-deps:
	printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > /etc/apt/sources.list.d/debian-nonfree.sources
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev

# Link stubs with the sonames the GPU machine has (libcuda.so.1 from driver
# 580, libcublas.so.13 with its symbol version), from the symbol lists.
$(CUDA_STUBS)/libcublas.so: $(CUDA_SHARED)/libcublas13.symbols
	mkdir -p $(CUDA_STUBS)
	awk '{print "void "$$1"(void){}"}' $< > $(CUDA_STUBS)/cublas.c
	echo 'libcublas.so.13 { global: *; };' > $(CUDA_STUBS)/cublas.map
	gcc -shared -fPIC -o $@ $(CUDA_STUBS)/cublas.c -Wl,-soname,libcublas.so.13 -Wl,--version-script=$(CUDA_STUBS)/cublas.map

$(CUDA_STUBS)/libcuda.so: $(CUDA_SHARED)/libcuda580.symbols
	mkdir -p $(CUDA_STUBS)
	awk '{print "void "$$1"(void){}"}' $< > $(CUDA_STUBS)/cuda.c
	gcc -shared -fPIC -o $@ $(CUDA_STUBS)/cuda.c -Wl,-soname,libcuda.so.1

cuda-ptx:
	cd cuda/kernels && go generate

# The GPU binary for this machine: against the CUDA toolkit installed here
# (CUDA_HOME: /usr/local/cuda, /usr/local/cuda-12.4, /usr for Debian's;
# CUDA 11.8 to 13.x), cuBLAS by its real soname; the CPU parts use OpenBLAS
# as the default build does. Fails naming what is missing.
CUDA_HOME ?= /usr/local/cuda
gpu: deps
	GO=$(GO) bash scripts/gpu-build.sh "$(CUDA_HOME)" $(GPU_DIR)/eraserelu

# The device binary: the GPU variant of the command line (`bin/gpu/eraserelu
# train --device cuda`, `bin/gpu/eraserelu gpu check|bench|...`), pure-Go BLAS for its CPU parts
# (the GPU machine has no OpenBLAS), stripped, each checked to ask only for
# symbols the GPU machine exports.
GPU_BUILD = CGO_LDFLAGS="-L$(CURDIR)/$(CUDA_STUBS)" $(GO) build -tags gpu,purego -trimpath -ldflags="-s -w"
cuda-build: $(CUDA_STUBS)/libcublas.so $(CUDA_STUBS)/libcuda.so
	mkdir -p $(GPU_DIR)
	rm -f $(GPU_DIR)/cudacheck
	$(GPU_BUILD) -o $(GPU_DIR)/eraserelu ./cmd/eraserelu
	cp bench/torch_resnet_bench.py bench/gpu_ratios.py $(GPU_DIR)/
	# The executor's cgo calls as C (cgo's own output), so that the GPU
	# machine can compile them against its CUDA headers (gpu-check.sh).
	rm -rf $(GPU_DIR)/cgo $(GPU_DIR)/cgo_cgo_*.o
	mkdir -p $(GPU_DIR)/cgo
	$(GO) tool cgo -objdir $(GPU_DIR)/cgo/ -importpath github.com/eraserelu/eraserelu/cuda cuda/device.go
	find $(GPU_DIR)/cgo -type f ! -name device.cgo2.c ! -name _cgo_export.h -delete
	bash scripts/check-gpu-symbols.sh $(GPU_DIR)/eraserelu $(CUDA_SHARED)
	@du -ch $(GPU_DIR)/* | tail -n 1

bench-gpu: cuda-build
	mkdir -p data
	[ -f data/cifar10-jpeg.tar.gz ] || cp ../shared/datasets/cifar10-jpeg.tar.gz data/
	@echo "Run on the GPU machine in one device call (15 minutes of device time in all; 2-3 minutes of it):"
	@echo "  run(command=\"bash scripts/gpu-check.sh\", carry=[\"$(GPU_DIR)\", \"data/cifar10-jpeg.tar.gz\"], timeout_s=240)"
	@echo "Logs come back under \$$OUT: summary.txt (the same-call ratios at its end) env.log check.log profile.log bench.log torch.log cifar.log cifar-run.tar.gz"

# train-gpu: the GPU eraserelu and the data sets a device call can carry
# (MNIST, the CIFAR-10 JPEG copy) under data/; prints the device command.
train-gpu: cuda-build
	mkdir -p data
	[ -d data/mnist ] || cp -r ../shared/datasets/mnist data/
	[ -f data/cifar10-jpeg.tar.gz ] || cp ../shared/datasets/cifar10-jpeg.tar.gz data/
	@echo "Run on the GPU machine in one device call:"
	@echo "  run(command=\"bash scripts/gpu-train.sh\", carry=[\"$(GPU_DIR)/eraserelu\", \"data/mnist\", \"data/cifar10-jpeg.tar.gz\"], timeout_s=420)"
	@echo "Logs come back under \$$OUT: summary.txt env.log agree.log mnist.log resume.log cifar.log runs.tar.gz"

.PHONY: cuda-deps cuda-ptx gpu cuda-build bench-gpu train-gpu

# The package's device tests (cuda/device_ops_test.go: the random-op and
# layer-norm kernels against the reference, CUDA-graph replay) as a binary for
# the GPU machine: cd cuda && ../bin/gpu/cuda.test -test.run TestDevice -test.v
cuda-test-build: $(CUDA_STUBS)/libcublas.so $(CUDA_STUBS)/libcuda.so
	mkdir -p $(GPU_DIR)
	CGO_LDFLAGS="-L$(CURDIR)/$(CUDA_STUBS)" go test -c -tags gpu,purego -trimpath -o $(GPU_DIR)/cuda.test ./cuda
	bash scripts/check-gpu-symbols.sh $(GPU_DIR)/cuda.test $(CUDA_SHARED)

.PHONY: cuda-test-build
