#!/usr/bin/env bash
# make profile: where the ingest function's CPU goes, by perf, on loopback.
#
# Builds the release binaries with symbols (the `profiling` profile: release plus line tables,
# not stripped), serves the ingest router alone (`bare --app ingest`, messages encoded and
# dropped) with the Lambda JSON log format at info, as deployed, pinned to SERVER_CPU, and
# records it with `perf record --call-graph dwarf` while loadgen (pinned to LOADGEN_CPU) sends
# single submissions for DURATION. Prints the hottest symbols, self time and with callees
# (Markdown), and keeps perf.data in OUT_DIR for `perf report -i`. With inferno on the PATH
# (`cargo install inferno`), it also draws the samples as a flame graph, OUT_DIR/flamegraph.svg.
#
# With APP=peer it profiles the comparison's straightforward peer instead, and APP=bare the
# ceiling. Settings: APP (ingest), DURATION (10s), CONCURRENCY (32), SERVER_CPU (0),
# LOADGEN_CPU (1), TOP (25), OUT_DIR (target/profile).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
APP=${APP:-ingest}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
TOP=${TOP:-25}
OUT_DIR=${OUT_DIR:-target/profile}
# A fixed secret keeps runs identical; it protects nothing (loopback only).
JWT_SECRET=profile-sh-fixed-secret-for-loopback-runs-only
export JWT_SECRET

for tool in perf taskset jq; do
  command -v "$tool" >/dev/null || {
    echo "profile.sh needs $tool (perf: apt-get install linux-perf)" >&2
    exit 1
  }
done
log() { echo "profile: $*" >&2; }

log "building bare, peer and loadgen with the profiling profile..."
"$CARGO" build --profile profiling --quiet --bin bare --bin peer --bin loadgen
bin=target/profiling
mkdir -p "$OUT_DIR"
case $APP in
  ingest) server=("$bin/bare" --app ingest) ;;
  bare) server=("$bin/bare") ;;
  peer) server=("$bin/peer") ;;
  *) echo "APP must be ingest, bare or peer" >&2; exit 1 ;;
esac

# The ingest function's log lines as deployed (JSON, at info, one write each), to a file as
# scripts/compare.sh writes them.
AWS_LAMBDA_FUNCTION_NAME=profile-ingest AWS_LAMBDA_LOG_FORMAT=JSON \
  taskset -c "$SERVER_CPU" "${server[@]}" --addr 127.0.0.1:0 \
  >"$OUT_DIR/server.out" 2>"$OUT_DIR/server.log" &
server_pid=$!
trap 'kill -INT $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true' EXIT
url=""
for _ in $(seq 100); do
  url=$(head -n1 "$OUT_DIR/server.out" 2>/dev/null | jq -r '.url // empty' 2>/dev/null || true)
  [[ -n $url ]] && break
  sleep 0.1
done
[[ -n $url ]] || { echo "the server printed no ready line" >&2; exit 1; }

log "warming up, then recording $APP for $DURATION under $CONCURRENCY connections..."
taskset -c "$LOADGEN_CPU" "$bin/loadgen" "$url" --quiet --mix single=1 \
  --concurrency "$CONCURRENCY" --duration 2s >/dev/null
seconds=${DURATION%s}
perf record --call-graph dwarf,16384 -F 999 -p "$server_pid" -o "$OUT_DIR/perf.data" \
  -- sleep "$seconds" 2>"$OUT_DIR/perf-record.log" &
perf_pid=$!
taskset -c "$LOADGEN_CPU" "$bin/loadgen" "$url" --quiet --json --mix single=1 \
  --concurrency "$CONCURRENCY" --duration "$DURATION" >"$OUT_DIR/load.json" || true
wait "$perf_pid" || true
rps=$(jq -r '.requests_per_s | floor' "$OUT_DIR/load.json")

report() { # report MODE: self or children
  local flag=--no-children
  [[ $1 == children ]] && flag=--children
  perf report -i "$OUT_DIR/perf.data" "$flag" --sort symbol --stdio --no-call-graph \
    --percent-limit 0.5 2>/dev/null |
    awk -v top="$TOP" '/^ +[0-9.]+%/ { if (n++ < top) print }' |
    sed -E 's/ +(- +)*$//'
}
cat <<EOF
### Profile of $APP ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git status --porcelain | grep -q . && echo " plus uncommitted changes"))

\`APP=$APP scripts/profile.sh\`: $rps requests/s under perf (sampling at 999 Hz costs some), one
core, Lambda JSON logs at info. Self time, the top $TOP symbols:

\`\`\`
$(report self)
\`\`\`

With callees (inclusive), the top $TOP:

\`\`\`
$(report children)
\`\`\`
EOF
log "perf.data is in $OUT_DIR (perf report -i $OUT_DIR/perf.data)"
if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
  perf script -i "$OUT_DIR/perf.data" 2>/dev/null | inferno-collapse-perf |
    inferno-flamegraph --minwidth 0.2 --title "$APP alone under $CONCURRENCY connections, $rps requests/s under perf" \
      >"$OUT_DIR/flamegraph.svg"
  log "flame graph: $OUT_DIR/flamegraph.svg"
else
  log "no flame graph: inferno is not installed (cargo install inferno)"
fi
