# The only entry points a newcomer needs: `make run` and `make test`.
# Everything a test needs is installed by `make deps` (called by `make test`).

CARGO       ?= cargo
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),target)
SLUICE_BIN  := $(TARGET_DIR)/debug/sluice
VENV        := .venv
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run build cluster cluster-stop test unit compat compat-java chaos lint bench bench-soak bench-tools bench-storage deps deps-build deps-apt deps-python deps-node deps-examples deps-java clean

## Build and start a one-node broker on 127.0.0.1:9092 with data under ./data.
run: build
	$(SLUICE_BIN) serve

# Everything builds with the `test` profile (the same settings as `dev`):
# `cargo test` always uses it, so the tests and the binary share one build
# of RocksDB's C++ (clippy still needs its own).
PROFILE := --profile test

build: deps-build
	$(CARGO) build $(PROFILE) --bin sluice

## Start a three-node cluster on loopback in the background: Kafka ports
## 9092-9094, raft ports 19092-19094, data and logs under ./data/cluster/node-N.
## `make cluster-stop` stops it (SIGTERM: leadership is handed over first).
CLUSTER_VOTERS := 1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094
cluster: build
	@mkdir -p data/cluster
	@for n in 1 2 3; do \
	  $(SLUICE_BIN) serve --node-id $$n --listen 127.0.0.1:909$$((n + 1)) --data-dir data/cluster/node-$$n \
	    --voters $(CLUSTER_VOTERS) --default-replication-factor 3 --num-partitions 3 > data/cluster/node-$$n.log 2>&1 & \
	  echo $$! > data/cluster/node-$$n.pid; \
	done
	@for n in 1 2 3; do \
	  for i in $$(seq 1 150); do grep -q "sluice broker started" data/cluster/node-$$n.log && break; sleep 0.2; done; \
	  grep -q "sluice broker started" data/cluster/node-$$n.log || { echo "node $$n did not start; see data/cluster/node-$$n.log"; exit 1; }; \
	done
	@echo "cluster up: bootstrap 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 (logs in data/cluster/node-N.log)"

cluster-stop:
	@for n in 1 2 3; do [ -f data/cluster/node-$$n.pid ] && kill $$(cat data/cluster/node-$$n.pid) 2>/dev/null; rm -f data/cluster/node-$$n.pid; done; true

## Install test dependencies, then run every test: Rust unit and integration
## tests, then the client compatibility suites against the real binary.
test: deps unit compat compat-java

unit: deps-build
	$(CARGO) test $(PROFILE) --workspace

# The binary the suites run is the one `cargo test` builds: a plain `cargo
# build` resolves features without dev-dependencies and would compile
# RocksDB again.
compat: deps
	$(CARGO) test $(PROFILE) --workspace --no-run
	SLUICE_BIN=$(abspath $(SLUICE_BIN)) $(VENV)/bin/pytest compat-tests

## The JVM suites (compat-tests/java, JUnit 5): the Java client and Kafka's
## own tools and libraries, each scenario run against Sluice and against a
## reference Apache Kafka 4.4 (compat-tests/reference) in the same run.
## Maven resolves everything once into ~/.m2.
compat-java: deps-java
	$(CARGO) test $(PROFILE) --workspace --no-run
	mvn -B -ntp -f compat-tests/java/pom.xml test -Dsluice.bin=$(abspath $(SLUICE_BIN))

## The fault-injection suite run long (compat-tests/test_chaos.py; `make
## test` runs it for 5 cycles): CHAOS_CYCLES faults (default 50, about 20
## minutes), CHAOS_SEED to replay a run, CHAOS_NODES=5 for five nodes.
## Network partitions need network namespaces (root): required here, used
## by `make test` when the machine allows them.
CHAOS_CYCLES ?= 50
chaos: deps
	$(CARGO) test $(PROFILE) --workspace --no-run
	CHAOS_CYCLES=$(CHAOS_CYCLES) CHAOS_NETWORK=$${CHAOS_NETWORK:-required} SLUICE_BIN=$(abspath $(SLUICE_BIN)) $(VENV)/bin/pytest -s compat-tests/test_chaos.py

## Benchmarks (not tests). `make bench`: a real client (librdkafka, via
## bench/loadgen) against a release broker it starts, or BOOTSTRAP=host:port
## (BROKER_PID=N for its CPU and RSS), beside fio/iperf3 limits measured in
## the same run. BENCH_DIR must be on the disk you want measured; see
## bench/e2e.py for the other knobs. `make bench-soak`: 10 minutes at 50%
## load, watching the broker's RSS. `make bench-storage`: the storage engine
## alone beside fio (BENCH_MIB per run).
BENCH_DIR ?= bench-data
BENCH_MIB ?= 512
LOADGEN   := $(TARGET_DIR)/release/sluice-loadgen
bench: bench-tools
	python3 bench/e2e.py $(LOADGEN) $(TARGET_DIR)/release/sluice $(BENCH_DIR)

bench-soak: bench-tools
	BENCH_SOAK_SECONDS=$${BENCH_SOAK_SECONDS:-600} python3 bench/e2e.py $(LOADGEN) $(TARGET_DIR)/release/sluice $(BENCH_DIR)

# The load generator is its own Cargo project (librdkafka builds from
# source), so `make test` never pays for it.
bench-tools: deps-build
	@command -v fio >/dev/null 2>&1 && command -v iperf3 >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio iperf3; }
	$(CARGO) build --release --bin sluice
	$(CARGO) build --release --manifest-path bench/loadgen/Cargo.toml --target-dir $(TARGET_DIR)

bench-storage:
	@command -v fio >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fio; }
	$(CARGO) build --release -p sluice-storage --bin storage-bench
	python3 bench/storage.py $(TARGET_DIR)/release/storage-bench $(BENCH_DIR) $(BENCH_MIB)

lint: deps-build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(PROFILE) --workspace --all-targets -- -D warnings

deps: deps-build deps-apt deps-python deps-node deps-examples deps-java

# The rocksdb crate (raft/) generates its bindings with bindgen, which needs libclang.
deps-build:
	@ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libclang-dev; }

# kcat links Debian's librdkafka 2.0.2: the "old client" in the suites.
deps-apt:
	@command -v kcat >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq kcat; }

# librdkafka's own transactions example (examples/transactions.c, as
# shipped), taken from the librdkafka sources in the rdkafka-sys crate
# (fetched by cargo from its registry, checksum pinned) and built against
# Debian's librdkafka 2.0.2.
RDKAFKA_SYS        := rdkafka-sys-4.10.0+2.12.1
RDKAFKA_SYS_SHA256 := e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77
EXAMPLES           := compat-tests/.examples
deps-examples: $(EXAMPLES)/transactions
$(EXAMPLES)/transactions:
	@dpkg -s librdkafka-dev >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq librdkafka-dev; }
	mkdir -p $(EXAMPLES)/fetch
	printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "lib.rs"\n[workspace]\n[dependencies]\nrdkafka-sys = { version = "=4.10.0", default-features = false }\n' \
	  > $(EXAMPLES)/fetch/Cargo.toml
	touch $(EXAMPLES)/fetch/lib.rs
	$(CARGO) fetch -q --manifest-path $(EXAMPLES)/fetch/Cargo.toml
	crate=$$(ls $${CARGO_HOME:-$$HOME/.cargo}/registry/cache/*/$(RDKAFKA_SYS).crate | head -1) && \
	  echo "$(RDKAFKA_SYS_SHA256)  $$crate" | sha256sum -c --quiet && \
	  tar xzf $$crate -C $(EXAMPLES) --strip-components=3 $(RDKAFKA_SYS)/librdkafka/examples/transactions.c
	rm -r $(EXAMPLES)/fetch
	cc -O1 -I/usr/include/librdkafka -o $@ $(EXAMPLES)/transactions.c -lrdkafka

# Java 17 and Maven run the JVM suites and the reference Kafka.
deps-java:
	@command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven; }

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
