# cyclesr: `make test` sets up a fresh Debian 12 machine (apt packages, .venv with PyTorch)
# and runs every check CI runs.
CARGO ?= cargo
# Tests build their own registry; never reuse a cache that may have blacklisted the plugin.
export GST_REGISTRY := $(CURDIR)/target/gst-registry.bin

.PHONY: setup build test lint fmt data demo clean

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace --all-targets

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

test: build lint
	$(CARGO) test --release --workspace

fmt:
	$(CARGO) fmt --all

data: setup
	bash scripts/fetch-data.sh

# The main job: the default model on the held-out tail of a real surveillance clip.
demo:
	bash scripts/demo.sh

clean:
	$(CARGO) clean
