#!/usr/bin/env bash
# make compare: one reproducible measuring run on loopback. It builds the release binaries,
# then, with every server pinned to one core (SERVER_CPU) and loadgen to another (LOADGEN_CPU),
# sends the same request (one valid submission, POST /v1/scores, HS256 token) to:
#
#   bare          a bare axum server answering 202 without parsing: the ceiling of this stack;
#   peer          a straightforward ingest server (tests/src/bin/peer.rs: axum, jsonwebtoken,
#                 serde refusing unknown fields, a bounded channel), the bar to clear;
#   ingest alone  the real ingest router on a queue that encodes messages and drops them
#                 (`bare --app ingest`): what one ingest Lambda does, with its log lines as
#                 deployed (Lambda's JSON format at info, one write each, to a file) and its
#                 allocator (mimalloc; bare runs on it too, the peer on the system allocator,
#                 as a straightforward server would);
#   local         the local stack (target/release/local): ingest, processor and notifier in one
#                 process on one core, in memory, info logs (as shipped);
#   local, warn   the same with RUST_LOG=warn (no per-submission log lines).
#
# Each gets a closed-model run (CONCURRENCY connections) for throughput and p99, and an
# open-model run at half the ceiling's rate for p99 there. Then: the in-memory backend's memory
# per stored submission (RSS delta / submissions stored, fresh stack), time from process start
# to the first 202 (loadgen startup-time), and the size of each release Lambda binary.
#
# The machine may be shared: before each run the script waits (up to QUIET_WAIT seconds) until
# other processes use less than 0.15 of a core, and it reports the CPU other processes used
# during every run, so a disturbed figure can be told apart.
#
# Results go to stdout as Markdown for docs/BENCHMARKS.md; progress to stderr.
# Settings: DURATION (10s), WARMUP (2s), CONCURRENCY (32), SERVER_CPU (0), LOADGEN_CPU (1),
# MEMORY_SUBMISSIONS (100000), STARTS (10), QUIET_WAIT (180).
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
QUIET_WAIT=${QUIET_WAIT:-180}
# A fixed secret keeps runs identical; it protects nothing (loopback only, in-memory stack).
JWT_SECRET=compare-sh-fixed-secret-for-loopback-runs-only
export JWT_SECRET

for tool in taskset jq curl awk; do
  command -v "$tool" >/dev/null || { echo "compare.sh needs $tool" >&2; exit 1; }
done
if (( $(nproc) < 2 )); then
  echo "compare.sh needs two CPUs to pin the server and the generator apart" >&2
  exit 1
fi

log() { echo "compare: $*" >&2; }

log "building release binaries (local, bare, loadgen and the three Lambda functions)..."
"$CARGO" build --release --quiet \
  --bin local --bin bare --bin peer --bin loadgen --bin ingest --bin processor --bin notifier

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

calc() { awk "BEGIN { printf \"$1\", $2 }"; }
seconds_of() { # 10s, 500ms, 2m -> seconds
  case $1 in
    *ms) calc "%g" "${1%ms} / 1000" ;;
    *s) echo "${1%s}" ;;
    *m) calc "%g" "${1%m} * 60" ;;
    *) echo "$1" ;;
  esac
}
duration_s=$(seconds_of "$DURATION")

# CPU ticks (1/100 s) a process has used: utime + stime from /proc/PID/stat.
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  read -r -a f <<<"$rest"
  echo $(( f[11] + f[12] ))
}
# Busy CPU ticks of the whole machine, from /proc/stat.
machine_ticks() {
  local _cpu user nice system idle iowait irq softirq steal _rest
  read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
  echo $(( user + nice + system + irq + softirq + steal ))
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Waits until the rest of the machine is quiet (< 0.15 cores over 2 s), at most QUIET_WAIT s.
wait_for_quiet() {
  local waited=0 t0 t1 busy
  while :; do
    t0=$(machine_ticks)
    sleep 2
    t1=$(machine_ticks)
    busy=$(calc "%.2f" "($t1 - $t0) / 200")
    if awk "BEGIN { exit !($busy < 0.15) }"; then return 0; fi
    waited=$(( waited + 2 ))
    if (( waited >= QUIET_WAIT )); then
      log "the machine is still busy ($busy cores used by others); measuring anyway"
      return 0
    fi
    (( waited % 20 == 0 )) && log "waiting for a quiet machine ($busy cores busy)..."
  done
}

# start_server NAME COMMAND...: pinned to SERVER_CPU; sets SERVER_PID, SERVER_URL, SERVER_READY.
start_server() {
  local name=$1
  shift
  : >"$workdir/$name.out"
  taskset -c "$SERVER_CPU" "$@" >"$workdir/$name.out" 2>"$workdir/$name.log" &
  SERVER_PID=$!
  server_pids+=("$SERVER_PID")
  SERVER_URL=""
  for _ in $(seq 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$workdir/$name.log" >&2; exit 1; }
    SERVER_READY=$(head -n1 "$workdir/$name.out" 2>/dev/null || true)
    SERVER_URL=$(jq -r '.url // empty' <<<"$SERVER_READY" 2>/dev/null || true)
    [[ -n $SERVER_URL ]] && return 0
    sleep 0.1
  done
  echo "$name printed no ready line" >&2
  exit 1
}

# run_load NAME ARGS...: a pinned loadgen run against SERVER_URL. Writes $workdir/NAME.json
# with the loadgen summary plus server_cores, other_cores and server_hwm_kib.
run_load() {
  local name=$1
  shift
  local status=0 s0 s1 m0 m1
  s0=$(cpu_ticks "$SERVER_PID")
  m0=$(machine_ticks)
  taskset -c "$LOADGEN_CPU" target/release/loadgen "$SERVER_URL" --quiet --json "$@" \
    >"$workdir/$name.raw.json" || status=$?
  m1=$(machine_ticks)
  s1=$(cpu_ticks "$SERVER_PID")
  if (( status != 0 )); then
    log "warning: run '$name' saw unexpected answers or errors (exit $status):"
    jq -c '{status_codes, errors_by_kind, error_samples}' "$workdir/$name.raw.json" >&2 || true
  fi
  jq --argjson s "$(( s1 - s0 ))" --argjson m "$(( m1 - m0 ))" \
    --argjson hwm "$(status_kib "$SERVER_PID" VmHWM)" '
      . + { server_cores: ($s / 100 / .elapsed_s),
            other_cores: ([((($m - $s) / 100 / .elapsed_s) - (.generator_cpu_cores // 0)), 0] | max),
            server_hwm_kib: $hwm }' \
    "$workdir/$name.raw.json" >"$workdir/$name.json"
}
field() { jq -r "$2" "$workdir/$1.json"; }

# wrk_run NAME TOKEN: the same closed-model request with wrk (one thread, pinned like loadgen), a
# leaner C generator, as a cross-check of loadgen's figures. Writes $workdir/NAME.wrk.json.
HAVE_WRK=$(command -v wrk >/dev/null && echo yes || true)
wrk_run() {
  local name=$1 token=$2 s0 s1
  s0=$(cpu_ticks "$SERVER_PID")
  WRK_TOKEN=$token taskset -c "$LOADGEN_CPU" wrk -t1 -c"$CONCURRENCY" -d"$DURATION" --latency \
    -s scripts/lib/post-score.lua "$SERVER_URL" >"$workdir/$name.wrk.txt"
  s1=$(cpu_ticks "$SERVER_PID")
  awk -v ticks="$(( s1 - s0 ))" -v secs="$duration_s" '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000
      return v
    }
    /^Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    END { printf "{\"requests_per_s\":%s,\"p50_ms\":%s,\"p99_ms\":%s,\"non_2xx\":%d,\"server_cores\":%.2f}\n",
          rps, p50, p99, bad, ticks / 100 / secs }' "$workdir/$name.wrk.txt" >"$workdir/$name.wrk.json"
}
wfield() { jq -r "$2" "$workdir/$1.wrk.json"; }

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

single=(--mix single=1)
closed=("${single[@]}" --concurrency "$CONCURRENCY" --duration "$DURATION")

# measure NAME DRAIN? COMMAND...: warm-up, closed run; and, when HALF_RATE is set, an open run.
measure() {
  local name=$1 drain=$2
  shift 2
  start_server "$name" "$@"
  local pid=$SERVER_PID
  run_load "$name-warmup" "${single[@]}" --concurrency "$CONCURRENCY" --duration "$WARMUP"
  [[ $drain == drain ]] && drain_local
  wait_for_quiet
  log "$name: $DURATION closed, $CONCURRENCY connections"
  run_load "$name" "${closed[@]}"
  if [[ -n $HAVE_WRK ]]; then
    [[ $drain == drain ]] && drain_local
    wait_for_quiet
    log "$name: $DURATION closed with wrk, $CONCURRENCY connections"
    wrk_run "$name" "$(jq -r '.tokens.alice // "x.y.z"' <<<"$SERVER_READY")"
  fi
  if [[ -n ${HALF_RATE:-} ]]; then
    [[ $drain == drain ]] && drain_local
    wait_for_quiet
    log "$name: $DURATION open model at $HALF_RATE req/s (half the ceiling)"
    run_load "$name-half" "${single[@]}" --rate "$HALF_RATE" --concurrency 256 --duration "$DURATION"
    # The same server at half its own closed-model throughput: its latency when not overloaded.
    local own_half
    own_half=$(calc "%.0f" "$(field "$name" .requests_per_s) / 2")
    [[ $drain == drain ]] && drain_local
    wait_for_quiet
    log "$name: $DURATION open model at $own_half req/s (half its own throughput)"
    run_load "$name-own-half" "${single[@]}" --rate "$own_half" --concurrency 256 --duration "$DURATION"
  fi
  stop_pid "$pid"
}

wait_for_quiet
HALF_RATE="" measure bare no-drain target/release/bare --addr 127.0.0.1:0
HALF_RATE="" measure peer no-drain target/release/peer --addr 127.0.0.1:0
HALF_RATE=$(calc "%.0f" "$(field bare .requests_per_s) / 2")
AWS_LAMBDA_FUNCTION_NAME=compare-ingest AWS_LAMBDA_LOG_FORMAT=JSON \
  measure ingest no-drain target/release/bare --app ingest --addr 127.0.0.1:0
measure local drain target/release/local --addr 127.0.0.1:0
RUST_LOG=warn measure local-warn drain target/release/local --addr 127.0.0.1:0

# ---- memory per stored submission ----
batches=$(( MEMORY_SUBMISSIONS / 100 ))
log "memory: $batches batches of 100 into a fresh local stack"
start_server local-memory target/release/local --addr 127.0.0.1:0
memory_pid=$SERVER_PID
run_load memory-warmup "${single[@]}" --requests 2000 --concurrency 8
drain_local
rss0=$(status_kib "$memory_pid" VmRSS)
run_load memory --mix batch=1 --batch-size 100 --requests "$batches" --rate 200 --concurrency 8
drain_local
rss1=$(status_kib "$memory_pid" VmRSS)
stored=$(field memory .submissions_accepted)
per_submission=$(calc "%.0f" "($rss1 - $rss0) * 1024 / $stored")
stop_pid "$memory_pid"

# ---- process start to first 202 ----
wait_for_quiet
log "startup: $STARTS starts of the local stack to its first 202"
target/release/loadgen startup-time --repeat "$STARTS" --json -- \
  target/release/local --addr 127.0.0.1:0 >"$workdir/startup.json"

# ---- report ----
mib() { calc "%.1f" "$1 / 1024"; }
ms() { calc "%.3f" "$1"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "**not met**"; fi; }
bare_rps=$(field bare .requests_per_s)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " plus uncommitted changes" || true)

cat <<EOF
### Results ($(date -u +%Y-%m-%dT%H:%MZ), commit $commit$dirty)

Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs,
$(free -g | awk '/^Mem:/ { print $2 " GiB" }') RAM, Linux $(uname -r), $(rustc -V | cut -d' ' -f1-2).
Server on CPU $SERVER_CPU, loadgen on CPU $LOADGEN_CPU (taskset); loopback; $DURATION per run after
a $WARMUP warm-up; request: one valid submission, \`POST /v1/scores\` with an HS256 token.
"others" is the CPU that processes other than the server and loadgen used during the run.

Closed model, $CONCURRENCY connections:

| server | req/s | ratio to bare | p50 / p99 / p99.9 ms | server cores | loadgen cores | others cores | peak RSS |
| --- | --- | --- | --- | --- | --- | --- | --- |
EOF
for run in bare peer ingest local local-warn; do
  label=$run
  [[ $run == ingest ]] && label="ingest alone"
  [[ $run == local-warn ]] && label="local, RUST_LOG=warn"
  rps=$(field "$run" .requests_per_s)
  echo "| $label | $(calc "%.0f" "$rps") | $(calc "%.2f" "$rps / $bare_rps") | $(ms "$(field "$run" .latency.p50_ms)") / $(ms "$(field "$run" .latency.p99_ms)") / $(ms "$(field "$run" .latency.p99_9_ms)") | $(calc "%.2f" "$(field "$run" .server_cores)") | $(calc "%.2f" "$(field "$run" .generator_cpu_cores)") | $(calc "%.2f" "$(field "$run" .other_cores)") | $(mib "$(field "$run" .server_hwm_kib)") MiB |"
done
if [[ -n $HAVE_WRK ]]; then
  wrk_bare=$(wfield bare .requests_per_s)
  cat <<EOF

The same closed runs with wrk ($(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2), one thread, $CONCURRENCY connections, pinned like loadgen):

| server | req/s | ratio to bare | p50 / p99 ms | server cores | non-2xx |
| --- | --- | --- | --- | --- | --- |
EOF
  for run in bare peer ingest local local-warn; do
    label=$run
    [[ $run == ingest ]] && label="ingest alone"
    [[ $run == local-warn ]] && label="local, RUST_LOG=warn"
    rps=$(wfield "$run" .requests_per_s)
    echo "| $label | $(calc "%.0f" "$rps") | $(calc "%.2f" "$rps / $wrk_bare") | $(ms "$(wfield "$run" .p50_ms)") / $(ms "$(wfield "$run" .p99_ms)") | $(wfield "$run" .server_cores) | $(wfield "$run" .non_2xx) |"
  done
fi
cat <<EOF

Open model (fixed arrival rate, up to 256 requests in flight, latency from each request's
intended send time): at half the ceiling's rate, and at half the server's own closed-model
throughput:

| server and rate | achieved req/s | p50 / p99 / p99.9 / max ms | late sends | server cores | others cores | peak RSS |
| --- | --- | --- | --- | --- | --- | --- |
EOF
for h in ingest-half local-half local-warn-half ingest-own-half local-own-half local-warn-own-half; do
  run=${h%-own-half}
  run=${run%-half}
  label=$run
  [[ $run == ingest ]] && label="ingest alone"
  [[ $run == local-warn ]] && label="local, RUST_LOG=warn"
  if [[ $h == *own-half ]]; then
    label="$label at $(calc "%.0f" "$(field "$h" .target_rate_per_s)") req/s (half its own throughput)"
  else
    label="$label at $HALF_RATE req/s (half the ceiling)"
  fi
  echo "| $label | $(calc "%.0f" "$(field "$h" .requests_per_s)") | $(ms "$(field "$h" .latency.p50_ms)") / $(ms "$(field "$h" .latency.p99_ms)") / $(ms "$(field "$h" .latency.p99_9_ms)") / $(ms "$(field "$h" .latency.max_ms)") | $(field "$h" .late_sends) | $(calc "%.2f" "$(field "$h" .server_cores)") | $(calc "%.2f" "$(field "$h" .other_cores)") | $(mib "$(field "$h" .server_hwm_kib)") MiB |"
done

local_ratio=$(calc "%.2f" "$(field local .requests_per_s) / $bare_rps")
ingest_to_bare=$(calc "%.2f" "$(field ingest .requests_per_s) / $bare_rps")
ingest_to_peer=$(calc "%.2f" "$(field ingest .requests_per_s) / $(field peer .requests_per_s)")
local_half_p99=$(field local-half .latency.p99_ms)
first_202=$(jq -r .first_202_ms_median "$workdir/startup.json")
median() { jq -r "[.runs[].$1] | sort | .[length/2|floor]" "$workdir/startup.json"; }
cat <<EOF

Unexpected answers or errors in the measured runs: $(for r in bare peer ingest local local-warn ingest-half local-half local-warn-half ingest-own-half local-own-half local-warn-own-half; do printf '%s %s; ' "$r" "$(field "$r" '.unexpected + .errors')"; done)

| figure | value |
| --- | --- |
| ingest alone, throughput ratio to the peer (goal >= 1) | $ingest_to_peer ($(verdict "$ingest_to_peer >= 1")) |
| ingest alone, throughput ratio to bare (goal >= 0.6) | $ingest_to_bare ($(verdict "$ingest_to_bare >= 0.6")) |
| ingest alone, log bytes per accepted request (its one info line) | $(awk '{ bytes += length($0) + 1 } END { printf "%.0f", bytes / (NR ? NR : 1) }' "$workdir/ingest.log") |
| local stack, throughput ratio to bare (goal >= 0.6) | $local_ratio ($(verdict "$local_ratio >= 0.6")) |
| p99 at half the ceiling's rate (goal <= 2 ms) | $(ms "$local_half_p99") ms ($(verdict "$local_half_p99 <= 2")) |
| p99 at half its own throughput | $(ms "$(field local-own-half .latency.p99_ms)") ms |
| process start to first 202, median of $STARTS starts (goal <= 10 ms) | $(ms "$first_202") ms ($(verdict "$first_202 <= 10")); min $(ms "$(jq -r .first_202_ms_min "$workdir/startup.json")"), max $(ms "$(jq -r .first_202_ms_max "$workdir/startup.json")"); ready line after $(ms "$(median ready_line_ms)") ms |
| RSS right after the first 202 (median) | $(mib "$(median rss_kib)") MiB |
| memory per stored submission (in-memory backend) | $per_submission bytes (RSS $(mib "$rss0") -> $(mib "$rss1") MiB for $stored submissions) |

| release binary (x86_64, stripped, LTO) | size |
| --- | --- |
EOF
for bin in ingest processor notifier; do
  echo "| target/release/$bin | $(calc "%.2f" "$(stat -c %s "target/release/$bin") / 1048576") MiB |"
done
for bin in ingest processor notifier; do
  zip=target/lambda/$bin/bootstrap.zip
  if [[ -f $zip ]]; then
    echo "| $zip (arm64 Lambda package) | $(calc "%.2f" "$(stat -c %s "$zip") / 1048576") MiB |"
  fi
done
log "done"
