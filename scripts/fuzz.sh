#!/usr/bin/env bash
# make fuzz: coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the ingest request path, bounded
# in time. Works on the stable toolchain: it builds without a sanitizer (`-s none`), so it finds
# panics, failed assertions and 5xx answers, not memory errors (the code has no `unsafe`).
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   scripts/fuzz.sh request 600          # one target, ten minutes
#   FUZZ_JOBS=2 scripts/fuzz.sh submission_body 300
#
# Targets (fuzz/fuzz_targets/): `request` sends the input through the whole ingest router
# (route, Authorization header and body picked from it); `submission_body` validates it as a
# single and as a batch body and checks that what validates survives a round trip.
#
# cargo-fuzz is installed into .venv/cargo-tools/ on first use. The working corpus lives in
# target/fuzz/corpus/<target>/ and grows across runs, starting from the seeds in
# fuzz/corpus/<target>/. A failing input is saved in fuzz/artifacts/<target>/; replay it with
#   .venv/cargo-tools/bin/cargo-fuzz run -s none --target-dir target/fuzz <target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
TOOLS="$PWD/.venv/cargo-tools"
ALL_TARGETS=(request submission_body)

targets=("${ALL_TARGETS[@]}")
if [[ $# -ge 1 ]]; then
  case " ${ALL_TARGETS[*]} " in
    *" $1 "*) targets=("$1") ;;
    *) echo "fuzz.sh: unknown target '$1'; targets: ${ALL_TARGETS[*]}" >&2; exit 2 ;;
  esac
fi
seconds=${2:-60}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: seconds must be a positive integer, not '$seconds'" >&2; exit 2; }
jobs=${FUZZ_JOBS:-1}

if [[ "$("$TOOLS/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS (about a minute)..." >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS" --quiet
fi
export PATH="$TOOLS/bin:$PATH"

for target in "${targets[@]}"; do
  corpus="target/fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz.sh: $target for ${seconds}s ($jobs job(s)); corpus $corpus" >&2
  # The first build of a target takes about 5 minutes on 2 cores (release, instrumented).
  parallel=()
  if [[ $jobs -gt 1 ]]; then
    # libFuzzer writes each job's log to fuzz-<n>.log in the working directory.
    parallel=(-jobs="$jobs" -workers="$jobs")
  fi
  set +e
  cargo fuzz run -s none --target-dir target/fuzz "$target" "$corpus" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 ${parallel[@]+"${parallel[@]}"} 2>&1 |
    grep -E --line-buffered '^(#[0-9]+[[:space:]]+(INITED|DONE|pulse))|^Done |^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|panicked|ERROR|SUMMARY|Test unit written|^error|^warning: build failed'
  status=${PIPESTATUS[0]}
  set -e
  if [[ $status -eq 101 ]]; then
    echo "fuzz.sh: building $target failed (see the errors above)" >&2
    exit "$status"
  fi
  if [[ $status -ne 0 ]]; then
    echo "fuzz.sh: $target FAILED (exit $status); the failing input is in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
  echo "fuzz.sh: $target: no failure in ${seconds}s; corpus now $(find "$corpus" -type f | wc -l) inputs" >&2
done
