# The two commands a developer needs are `make run` and `make test` (see README.md).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: run test lint fmt check-fmt clippy unit-and-e2e release

## run: the whole pipeline in one process on 127.0.0.1:3000, in-memory (prints a token)
run:
	$(CARGO) run --bin local

## test: everything CI checks: formatting, clippy, unit, emulator (moto) and end-to-end tests
test: check-fmt clippy unit-and-e2e

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# moto (the AWS API emulator) is installed into .venv/ if missing, started on a free loopback
# port for the duration of the tests, and stopped afterwards, also when tests fail.
unit-and-e2e:
	scripts/moto.sh run -- $(CARGO) test --workspace --no-fail-fast

fmt:
	$(CARGO) fmt --all

## release: the three Lambda binaries, optimised
release:
	$(CARGO) build --release --bin ingest --bin processor --bin notifier
