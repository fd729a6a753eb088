#!/usr/bin/env bash
# Measures servers side by side, in turn, for figures that must be compared with each other on
# a noisy machine (an A/B of two builds, or ingest against the peer with its log lines sent
# somewhere else). Every server is started at once, pinned to SERVER_CPU, and prints its ready
# line ({"url": ..., "tokens": {"alice": ...}}) on stdout, as `bare`, `peer` and `local` do.
# Then, ROUNDS times, wrk (pinned to LOADGEN_CPU) sends single submissions to each in turn for
# DURATION. Prints each server's runs and the median, and each median's ratio to the first
# server's (Markdown on stdout, progress on stderr).
#
#   scripts/interleave.sh NAME 'COMMAND' [NAME 'COMMAND' ...]
#
#   # the peer against ingest alone with its Lambda JSON lines at info, and with none:
#   cargo build --release --bin bare --bin peer
#   scripts/interleave.sh peer 'target/release/peer' \
#     ingest 'env AWS_LAMBDA_FUNCTION_NAME=x AWS_LAMBDA_LOG_FORMAT=JSON target/release/bare --app ingest' \
#     ingest-warn 'env AWS_LAMBDA_FUNCTION_NAME=x AWS_LAMBDA_LOG_FORMAT=JSON RUST_LOG=warn target/release/bare --app ingest'
#
# Each COMMAND gets `--addr 127.0.0.1:0`; its stderr (its log lines) goes to a file, as in
# `make compare`, unless LOG_TO names another destination (/dev/null, say). Settings: ROUNDS
# (5), DURATION (5s), WARMUP (2s), CONCURRENCY (32), SERVER_CPU (0), LOADGEN_CPU (1), LOG_TO.
# Every server it starts is stopped however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
CONCURRENCY=${CONCURRENCY:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
# The same fixed secret as compare.sh; it protects nothing (loopback only).
JWT_SECRET=${JWT_SECRET:-compare-sh-fixed-secret-for-loopback-runs-only}
export JWT_SECRET

if (($# < 2 || $# % 2)); then
  sed -n '2,23p' "$0" >&2
  exit 2
fi
for tool in wrk taskset jq python3; do
  command -v "$tool" >/dev/null || {
    echo "interleave.sh needs $tool (wrk: apt-get install wrk)" >&2
    exit 1
  }
done
log() { echo "interleave: $*" >&2; }

# shellcheck source=lib/stop_pid.sh
source scripts/lib/stop_pid.sh
workdir=$(mktemp -d "${TMPDIR:-/tmp}/score-interleave.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$workdir"
}
trap cleanup EXIT


names=() urls=() tokens=()
while (($#)); do
  name=$1 command=$2
  shift 2
  ready=$workdir/$name.ready
  # shellcheck disable=SC2086 # the command is a word list on purpose
  taskset -c "$SERVER_CPU" $command --addr 127.0.0.1:0 >"$ready" 2>"${LOG_TO:-$workdir/$name.log}" &
  pids+=($!)
  for _ in $(seq 200); do
    [[ -s $ready ]] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "interleave: $name exited before its ready line" >&2; exit 1; }
    sleep 0.05
  done
  [[ -s $ready ]] || { echo "interleave: no ready line from $name within 10 s" >&2; exit 1; }
  names+=("$name")
  urls+=("$(jq -r .url "$ready")")
  tokens+=("$(jq -r '.tokens.alice // "x.y.z"' "$ready")")
done

requests_per_s() { # URL TOKEN DURATION
  WRK_TOKEN=$2 taskset -c "$LOADGEN_CPU" wrk -t1 -c"$CONCURRENCY" -d"$3" -s scripts/lib/post-score.lua "$1" |
    awk '/^Requests\/sec:/ { rps = $2 } /Non-2xx/ { bad = 1 } END { if (bad || rps == "") exit 1; print rps }'
}

for i in "${!names[@]}"; do
  log "${names[$i]}: warm-up $WARMUP"
  requests_per_s "${urls[$i]}" "${tokens[$i]}" "$WARMUP" >/dev/null
done
for round in $(seq "$ROUNDS"); do
  for i in "${!names[@]}"; do
    log "round $round/$ROUNDS: ${names[$i]} for $DURATION"
    rps=$(requests_per_s "${urls[$i]}" "${tokens[$i]}" "$DURATION") ||
      { echo "interleave: ${names[$i]} answered something other than 202" >&2; exit 1; }
    echo "${names[$i]} $rps" >>"$workdir/runs"
    # The log files would grow by gigabytes over many rounds; their size is not the point.
    [[ -n ${LOG_TO:-} ]] || : >"$workdir/${names[$i]}.log"
  done
done

python3 - "$workdir/runs" "${names[@]}" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, rps = line.split()
    runs.setdefault(name, []).append(float(rps))
names = sys.argv[2:]
first = statistics.median(runs[names[0]])
print(f"| server | runs (req/s) | median | ratio to {names[0]} |")
print("| --- | --- | --- | --- |")
for name in names:
    median = statistics.median(runs[name])
    listed = ", ".join(f"{r:,.0f}" for r in runs[name])
    print(f"| {name} | {listed} | {median:,.0f} | {median / first:.3f} |")
PY
