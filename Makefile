# The two commands a developer needs are `make run` and `make test` (see README.md).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: run emulate coldstart test fmt check-fmt clippy unit-and-e2e infra-test package release load bench compare profile fuzz soak

## run: the whole pipeline in one process on 127.0.0.1:3000, in-memory (prints a token)
run:
	@$(CARGO) run --bin local

## emulate: the deployed system on this machine: the CDK stack synthesized and deployed into moto,
## the five real Lambda binaries (host builds), API Gateway and the event source mappings emulated,
## a Redis cluster standing in for the serverless cache
## (prints a URL and tokens, then notifications; Ctrl-C stops everything)
emulate:
	@scripts/emulate.sh run

## test: everything CI checks: formatting, clippy, unit, emulator (moto), rank index (Redis),
## end-to-end and infra tests, and the Lambda packaging (five arm64 zips, checked)
test: check-fmt clippy unit-and-e2e infra-test package

# fuzz/ is its own workspace (cargo-fuzz builds it with coverage flags), so it is checked here
# too: formatted, and linted into the shared target directory so its targets cannot rot.
check-fmt:
	$(CARGO) fmt --all -- --check
	rustfmt --edition 2024 --check fuzz/fuzz_targets/*.rs

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked --manifest-path fuzz/Cargo.toml --target-dir target --bins -- -D warnings

# moto (the AWS API emulator) is installed into .venv/ if missing, and redis-server (the rank
# index, Debian's package) with apt-get if missing; both are started on free loopback ports for
# the duration of the tests and stopped afterwards, also when tests fail. The emulated
# deployment's template is synthesized first; its tests run the binaries this build makes.
unit-and-e2e:
	scripts/emulate.sh prepare
	scripts/redis.sh run -- scripts/moto.sh run -- $(CARGO) test --workspace --no-fail-fast

## infra-test: the CDK app offline: tsc --noEmit, template tests, cdk synth (dev+prod), cfn-lint
infra-test:
	infra/scripts/check.sh

## package: the five Lambda zips in target/lambda/<bin>/bootstrap.zip (ARCH=arm64 default, or x86_64)
package:
	scripts/package.sh

fmt:
	$(CARGO) fmt --all
	rustfmt --edition 2024 fuzz/fuzz_targets/*.rs

## release: the five Lambda binaries, optimised
release:
	$(CARGO) build --release -p score-ingest -p score-processor -p score-notifier

## load: a bounded load (10 s) against the local stack, then its summary
load:
	scripts/load.sh

## bench: criterion benches of the ingest request path, the processor, and the rank index on a
## real Redis cluster with a board of 1,000,000 players
bench:
	$(CARGO) bench -p score-ingest --bench ingest_path
	$(CARGO) bench -p score-processor --bench batch
	scripts/redis.sh run -- $(CARGO) bench -p score-shared --bench rank_index

## coldstart: cold starts of the five functions (release builds) against a hello-world
## lambda_runtime function, under the emulated Runtime API with the deployed environment
coldstart:
	scripts/emulate.sh coldstart

## compare: ingest alone vs a straightforward peer and a bare axum ceiling, and the local
## stack, pinned, on loopback (Markdown on stdout)
compare:
	scripts/compare.sh

## profile: where ingest's CPU goes, by perf under loopback load (APP=ingest|peer|bare)
profile:
	scripts/profile.sh

## soak: the local stack under a fixed load for a bounded time (SOAK_DURATION=5m, SOAK_RATE=2000
## req/s), its memory sampled every 10 s, then a clean stop; see docs/BENCHMARKS.md
SOAK_DURATION ?= 5m
SOAK_RATE ?= 2000
soak:
	$(CARGO) build --release --quiet --bin local --bin loadgen
	JWT_SECRET=$$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n'); export JWT_SECRET; \
	bin=$${CARGO_TARGET_DIR:-target}/release; \
	$$bin/loadgen soak --duration $(SOAK_DURATION) --rate $(SOAK_RATE) -- $$bin/local --addr 127.0.0.1:0

## fuzz: coverage-guided fuzzing (cargo-fuzz) of the request path, 60 s per target; see scripts/fuzz.sh
fuzz:
	scripts/fuzz.sh
