#!/usr/bin/env bash
# make load: builds the release binaries, starts the local stack on a free loopback port, runs a
# bounded load against it with loadgen, prints the summary, and stops the stack (SIGINT, so it
# drains its queues). The stack is stopped and its temporary files removed however this ends.
#
#   scripts/load.sh                          # 10 s, 32 connections, the default scenario mix
#   scripts/load.sh --duration 30s --rate 2000 --mix single=100
#   DURATION=5s CONCURRENCY=8 scripts/load.sh --json
#
# Arguments are passed to loadgen (see `target/release/loadgen --help`); DURATION and
# CONCURRENCY set its defaults. The stack's log (stderr) and notification lines (stdout) go to a
# temporary directory, shown only if the stack fails; RUST_LOG sets its log level as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}

echo "building release binaries (local, loadgen)..." >&2
"$CARGO" build --release --quiet --bin local --bin loadgen

# The stack and the generator share one HS256 secret, fresh per run.
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export JWT_SECRET

workdir=$(mktemp -d "${TMPDIR:-/tmp}/score-load.XXXXXX")
stack_pid=""

stop_stack() {
  if [[ -n $stack_pid ]] && kill -0 "$stack_pid" 2>/dev/null; then
    echo "stopping the local stack (pid $stack_pid)..." >&2
    kill -INT "$stack_pid" 2>/dev/null || true
    # It drains its queues (up to 10 s) before exiting; do not wait forever.
    for _ in $(seq 200); do
      kill -0 "$stack_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
  fi
  stack_pid=""
}
cleanup() {
  stop_stack
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

: >"$workdir/stack.out"
target/release/local --addr 127.0.0.1:0 >"$workdir/stack.out" 2>"$workdir/stack.log" &
stack_pid=$!

url=""
for _ in $(seq 300); do
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    echo "the local stack exited before it was ready; its log:" >&2
    cat "$workdir/stack.log" >&2
    exit 1
  fi
  url=$(head -n1 "$workdir/stack.out" 2>/dev/null | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')
  [[ -n $url ]] && break
  sleep 0.1
done
if [[ -z $url ]]; then
  echo "the local stack printed no ready line within 30 s; its log:" >&2
  tail -n 50 "$workdir/stack.log" >&2
  exit 1
fi
echo "local stack ready at $url (pid $stack_pid)" >&2

status=0
target/release/loadgen "$url" --duration "$DURATION" --concurrency "$CONCURRENCY" "$@" || status=$?
stop_stack
exit "$status"
