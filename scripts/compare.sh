#!/usr/bin/env bash
# make compare: one reproducible measuring run on loopback. Builds the release binaries, then,
# with every server pinned to one core (SERVER_CPU) and loadgen to another (LOADGEN_CPU):
#
#   1. the ceiling: a bare axum server (tests/src/bin/bare.rs) answering 202 without parsing;
#   2. the local stack (target/release/local, in-memory) on the same request: valid single
#      submissions, POST /v1/scores; then the local stack at half the ceiling's rate (open
#      model) for its p99; then the same closed run with RUST_LOG=warn, to show what the
#      per-request info logs cost;
#   3. the in-memory backend's memory per stored submission (RSS delta / submissions stored,
#      on a fresh stack);
#   4. time from process start to the first 202 of the local stack (loadgen startup-time);
#   5. the size of each release Lambda binary.
#
# Figures go to stdout as Markdown, ready for docs/BENCHMARKS.md; progress to stderr.
# Settings (environment): DURATION (10s), WARMUP (2s), CONCURRENCY (32), SERVER_CPU (0),
# LOADGEN_CPU (1), MEMORY_SUBMISSIONS (100000), STARTS (10).
# Every server it starts is stopped (SIGINT, then SIGKILL) however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONCURRENCY=${CONCURRENCY:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
MEMORY_SUBMISSIONS=${MEMORY_SUBMISSIONS:-100000}
STARTS=${STARTS:-10}
# A fixed secret keeps runs identical; it protects nothing (loopback only, in-memory stack).
JWT_SECRET=compare-sh-fixed-secret-for-loopback-runs-only
export JWT_SECRET

for tool in taskset jq curl; do
  command -v "$tool" >/dev/null || { echo "compare.sh needs $tool" >&2; exit 1; }
done
if (( $(nproc) < 2 )); then
  echo "compare.sh needs two CPUs to pin the server and the generator apart" >&2
  exit 1
fi

log() { echo "compare: $*" >&2; }

log "building release binaries (local, bare, loadgen and the three Lambda functions)..."
"$CARGO" build --release --quiet \
  --bin local --bin bare --bin loadgen --bin ingest --bin processor --bin notifier

workdir=$(mktemp -d "${TMPDIR:-/tmp}/score-compare.XXXXXX")
server_pids=()

stop_pid() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${server_pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server NAME COMMAND...: pinned to SERVER_CPU; sets SERVER_PID, SERVER_URL, SERVER_READY.
start_server() {
  local name=$1
  shift
  taskset -c "$SERVER_CPU" "$@" >"$workdir/$name.out" 2>"$workdir/$name.log" &
  SERVER_PID=$!
  server_pids+=("$SERVER_PID")
  SERVER_URL=""
  for _ in $(seq 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$workdir/$name.log" >&2; exit 1; }
    SERVER_READY=$(head -n1 "$workdir/$name.out")
    SERVER_URL=$(jq -r '.url // empty' <<<"$SERVER_READY" 2>/dev/null || true)
    [[ -n $SERVER_URL ]] && return 0
    sleep 0.1
  done
  echo "$name printed no ready line" >&2
  exit 1
}

# loadgen NAME ARGS...: a pinned loadgen run against SERVER_URL; JSON summary in $workdir/NAME.json.
loadgen() {
  local name=$1
  shift
  local status=0
  taskset -c "$LOADGEN_CPU" target/release/loadgen "$SERVER_URL" --quiet --json "$@" \
    >"$workdir/$name.json" || status=$?
  if (( status != 0 )); then
    log "warning: loadgen run '$name' saw unexpected answers or errors (exit $status):"
    jq -c '{status_codes, errors_by_kind, error_samples}' "$workdir/$name.json" >&2 || true
  fi
}
field() { jq -r "$2" "$workdir/$1.json"; }

# CPU ticks (1/100 s) a process has used: utime + stime from /proc/PID/stat.
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  read -r -a f <<<"$rest"
  echo $(( f[11] + f[12] ))
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
seconds_of() { # 10s, 500ms, 2m -> seconds
  case $1 in
    *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
    *s) echo "${1%s}" ;;
    *m) awk -v v="${1%m}" 'BEGIN { print v * 60 }' ;;
    *) echo "$1" ;;
  esac
}
duration_s=$(seconds_of "$DURATION")
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# Waits until the local stack has processed everything queued before this call: a sentinel
# submission goes in last and the queue is first-in first-out with one consumer.
drain_local() {
  local token key location status
  token=$(jq -r '.tokens.alice' <<<"$SERVER_READY")
  key="drain-$RANDOM-$RANDOM"
  location=$(curl -fsS -X POST "$SERVER_URL/v1/scores" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
    -d '{"heroId":"drain","score":0}' | jq -r .statusUrl)
  for _ in $(seq 1200); do
    status=$(curl -fsS "$SERVER_URL$location" -H "Authorization: Bearer $token" | jq -r .status)
    [[ $status == accepted ]] && return 0
    sleep 0.1
  done
  log "warning: the local stack did not drain within 120 s"
}

single=(--mix single=1 --concurrency "$CONCURRENCY")

# ---- 1. the ceiling: bare axum ----
log "bare axum: warm-up $WARMUP, then $DURATION closed at $CONCURRENCY connections"
start_server bare target/release/bare --addr 127.0.0.1:0
bare_pid=$SERVER_PID
loadgen bare-warmup "${single[@]}" --duration "$WARMUP"
t0=$(cpu_ticks "$bare_pid")
loadgen bare "${single[@]}" --duration "$DURATION"
t1=$(cpu_ticks "$bare_pid")
bare_cpu=$(calc "%.2f" "($t1 - $t0) / 100 / $duration_s")
bare_hwm=$(status_kib "$bare_pid" VmHWM)
stop_pid "$bare_pid"

bare_rps=$(field bare .requests_per_s)
half_rate=$(calc "%.0f" "$bare_rps / 2")

# ---- 2. the local stack: closed, then half the ceiling's rate ----
log "local stack: warm-up, $DURATION closed, then $DURATION at $half_rate req/s (open model)"
start_server local target/release/local --addr 127.0.0.1:0 --jwt-secret "$JWT_SECRET"
local_pid=$SERVER_PID
loadgen local-warmup "${single[@]}" --duration "$WARMUP"
drain_local
t0=$(cpu_ticks "$local_pid")
loadgen local "${single[@]}" --duration "$DURATION"
t1=$(cpu_ticks "$local_pid")
local_cpu=$(calc "%.2f" "($t1 - $t0) / 100 / $duration_s")
drain_local
loadgen local-half --mix single=1 --rate "$half_rate" --concurrency 256 --duration "$DURATION"
local_hwm=$(status_kib "$local_pid" VmHWM)
stop_pid "$local_pid"

log "local stack with RUST_LOG=warn: warm-up, $DURATION closed"
RUST_LOG=warn start_server local-warn target/release/local --addr 127.0.0.1:0 --jwt-secret "$JWT_SECRET"
warn_pid=$SERVER_PID
loadgen local-warn-warmup "${single[@]}" --duration "$WARMUP"
drain_local
loadgen local-warn "${single[@]}" --duration "$DURATION"
drain_local
loadgen local-warn-half --mix single=1 --rate "$half_rate" --concurrency 256 --duration "$DURATION"
warn_hwm=$(status_kib "$warn_pid" VmHWM)
stop_pid "$warn_pid"

# ---- 3. memory per stored submission ----
batches=$(( MEMORY_SUBMISSIONS / 100 ))
log "memory: $batches batches of 100 into a fresh local stack"
start_server local-memory target/release/local --addr 127.0.0.1:0 --jwt-secret "$JWT_SECRET"
memory_pid=$SERVER_PID
loadgen memory-warmup --mix single=1 --requests 2000 --concurrency 8
drain_local
rss0=$(status_kib "$memory_pid" VmRSS)
loadgen memory --mix batch=1 --batch-size 100 --requests "$batches" --rate 200 --concurrency 8
drain_local
rss1=$(status_kib "$memory_pid" VmRSS)
stored=$(field memory .submissions_accepted)
per_submission=$(calc "%.0f" "($rss1 - $rss0) * 1024 / $stored")
stop_pid "$memory_pid"

# ---- 4. start to first 202 ----
log "startup: $STARTS starts of the local stack to its first 202"
target/release/loadgen startup-time --repeat "$STARTS" --json -- \
  target/release/local --addr 127.0.0.1:0 --jwt-secret "$JWT_SECRET" >"$workdir/startup.json"

# ---- report ----
mib() { calc "%.1f" "$1 / 1024"; }
ms() { calc "%.3f" "$1"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "**not met**"; fi; }

local_rps=$(field local .requests_per_s)
warn_rps=$(field local-warn .requests_per_s)
ratio=$(calc "%.2f" "$local_rps / $bare_rps")
warn_ratio=$(calc "%.2f" "$warn_rps / $bare_rps")
half_p99=$(field local-half .latency.p99_ms)
warn_half_p99=$(field local-warn-half .latency.p99_ms)
first_202=$(jq -r .first_202_ms_median "$workdir/startup.json")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " plus uncommitted changes" || true)

cat <<EOF
### Results ($(date -u +%Y-%m-%dT%H:%MZ), commit $commit$dirty)

Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs,
$(free -g | awk '/^Mem:/ { print $2 " GiB" }') RAM, Linux $(uname -r), $(rustc -V | cut -d' ' -f1-2).
Server on CPU $SERVER_CPU, loadgen on CPU $LOADGEN_CPU (taskset); loopback; $DURATION per run after
a $WARMUP warm-up; request: one valid submission, \`POST /v1/scores\` with an HS256 token.

| figure | bare axum (ceiling) | local stack | local stack, RUST_LOG=warn |
| --- | --- | --- | --- |
| throughput, closed model, $CONCURRENCY connections | $(calc "%.0f" "$bare_rps") req/s | $(calc "%.0f" "$local_rps") req/s | $(calc "%.0f" "$warn_rps") req/s |
| ratio to the ceiling (goal >= 0.6) | 1 | $ratio ($(verdict "$ratio >= 0.6")) | $warn_ratio ($(verdict "$warn_ratio >= 0.6")) |
| p50 / p99 / p99.9 at that load | $(ms "$(field bare .latency.p50_ms)") / $(ms "$(field bare .latency.p99_ms)") / $(ms "$(field bare .latency.p99_9_ms)") ms | $(ms "$(field local .latency.p50_ms)") / $(ms "$(field local .latency.p99_ms)") / $(ms "$(field local .latency.p99_9_ms)") ms | $(ms "$(field local-warn .latency.p50_ms)") / $(ms "$(field local-warn .latency.p99_ms)") / $(ms "$(field local-warn .latency.p99_9_ms)") ms |
| server CPU during the run (cores) | $bare_cpu | $local_cpu | |
| loadgen CPU during the run (cores) | $(calc "%.2f" "$(field bare .generator_cpu_cores)") | $(calc "%.2f" "$(field local .generator_cpu_cores)") | $(calc "%.2f" "$(field local-warn .generator_cpu_cores)") |
| p50 / p99 / max at half the ceiling's rate, $half_rate req/s open model (goal p99 <= 2 ms) | | $(ms "$(field local-half .latency.p50_ms)") / $(ms "$half_p99") / $(ms "$(field local-half .latency.max_ms)") ms ($(verdict "$half_p99 <= 2")); $(field local-half .late_sends) late sends | $(ms "$(field local-warn-half .latency.p50_ms)") / $(ms "$warn_half_p99") / $(ms "$(field local-warn-half .latency.max_ms)") ms ($(verdict "$warn_half_p99 <= 2")) |
| achieved rate in that run | | $(calc "%.0f" "$(field local-half .requests_per_s)") req/s | $(calc "%.0f" "$(field local-warn-half .requests_per_s)") req/s |
| peak RSS (VmHWM) over the runs | $(mib "$bare_hwm") MiB | $(mib "$local_hwm") MiB | $(mib "$warn_hwm") MiB |

Unexpected answers or errors: bare $(field bare '.unexpected + .errors'), local $(field local '.unexpected + .errors'), local at half rate $(field local-half '.unexpected + .errors').

| local stack | figure |
| --- | --- |
| process start to first 202 (median of $STARTS starts; goal <= 10 ms) | $(ms "$first_202") ms ($(verdict "$first_202 <= 10")); min $(ms "$(jq -r .first_202_ms_min "$workdir/startup.json")"), max $(ms "$(jq -r .first_202_ms_max "$workdir/startup.json")") ms; ready line after $(ms "$(jq -r '[.runs[].ready_line_ms] | sort | .[length/2|floor]' "$workdir/startup.json")") ms (median) |
| RSS right after the first 202 (median) | $(mib "$(jq -r '[.runs[].rss_kib] | sort | .[length/2|floor]' "$workdir/startup.json")") MiB |
| memory per stored submission (in-memory backend) | $per_submission bytes: RSS $(mib "$rss0") -> $(mib "$rss1") MiB for $stored submissions stored |

| release binary (x86_64, stripped, LTO) | size |
| --- | --- |
EOF
for bin in ingest processor notifier; do
  echo "| target/release/$bin | $(calc "%.2f" "$(stat -c %s "target/release/$bin") / 1048576") MiB |"
done
for bin in ingest processor notifier; do
  zip=target/lambda/$bin/bootstrap.zip
  if [[ -f $zip ]]; then
    echo "| $zip (arm64 Lambda package, if built) | $(calc "%.2f" "$(stat -c %s "$zip") / 1048576") MiB |"
  fi
done
log "done"
