# The only entry points a newcomer needs: `make run` and `make test`.
# Everything a test needs is installed by `make deps` (called by `make test`).

CARGO       ?= cargo
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),target)
SLUICE_BIN  := $(TARGET_DIR)/debug/sluice
VENV        := .venv
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run build test unit compat lint bench deps deps-apt deps-python deps-node clean

## Build and start a one-node broker on 127.0.0.1:9092 with data under ./data.
run: build
	$(SLUICE_BIN) serve

build:
	$(CARGO) build --bin sluice

## Install test dependencies, then run every test: Rust unit and integration
## tests, then the client compatibility suites against the real binary.
test: deps unit compat

unit:
	$(CARGO) test --workspace

compat: build deps
	SLUICE_BIN=$(abspath $(SLUICE_BIN)) $(VENV)/bin/pytest compat-tests

## Benchmarks (not tests): the storage engine beside fio on the same disk.
## BENCH_DIR must be on the disk you want measured; BENCH_MIB per run.
BENCH_DIR ?= bench-data
BENCH_MIB ?= 512
bench:
	@command -v fio >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fio; }
	$(CARGO) build --release -p sluice-storage --bin storage-bench
	python3 bench/storage.py $(TARGET_DIR)/release/storage-bench $(BENCH_DIR) $(BENCH_MIB)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

deps: deps-apt deps-python deps-node

# kcat links Debian's librdkafka 2.0.2: the "old client" in the suites.
deps-apt:
	@command -v kcat >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq kcat; }

deps-python: $(VENV)/.installed
$(VENV)/.installed: compat-tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r compat-tests/requirements.txt
	touch $@

deps-node: compat-tests/node_modules/.installed
compat-tests/node_modules/.installed: compat-tests/package.json compat-tests/package-lock.json
	cd compat-tests && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	$(CARGO) clean
	rm -rf $(VENV) compat-tests/node_modules
