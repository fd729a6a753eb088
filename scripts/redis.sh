#!/usr/bin/env bash
# The rank index's real server for tests: redis-server (Debian's package, Redis 7.0) as a
# one-node cluster on loopback, the mode ElastiCache Serverless runs in, so the cluster client the
# functions deploy with is what the tests use.
#
#   scripts/redis.sh ensure                  install redis-server with apt-get if it is missing
#   scripts/redis.sh run -- COMMAND [ARG...] start a one-node cluster on a free 127.0.0.1 port,
#                                            run COMMAND with RANK_INDEX_URL exported, stop the
#                                            server, exit with COMMAND's code
#   scripts/redis.sh start                   start one in the background for manual use; prints
#                                            the export to paste (stop it with `stop`)
#   scripts/redis.sh stop
#
# Example: scripts/redis.sh run -- cargo test -p score-shared --test rank_index
set -euo pipefail

STARTUP_TIMEOUT_SECONDS=20
# ZADD GT/LT, ZRANGE BYLEX LIMIT, EXPIREAT flags: Redis 7.0 or later.
MIN_MAJOR_VERSION=7

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/stop_pid.sh
source "$repo_root/scripts/lib/stop_pid.sh"
state_dir=$repo_root/target/redis
pid_file=$state_dir/redis.pid
url_file=$state_dir/redis.url

fail() {
    echo "redis.sh: $*" >&2
    exit 1
}

ensure() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        echo "redis.sh: installing redis-server (Debian package)" >&2
        local sudo=()
        if ((EUID != 0)); then
            command -v sudo >/dev/null ||
                fail "redis-server is not installed and this user cannot install it; run: apt-get install -y redis-server"
            sudo=(sudo)
        fi
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends redis-server >&2 ||
            { "${sudo[@]}" apt-get update >&2 && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends redis-server >&2; } ||
            fail "apt-get could not install redis-server; check that Debian's mirrors are reachable"
    fi
    local version
    version=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
    [[ -n $version ]] && ((version >= MIN_MAJOR_VERSION)) ||
        fail "redis-server $(redis-server --version) is too old; the rank index needs Redis $MIN_MAJOR_VERSION or later"
}

# Two distinct free ports, held open together while they are chosen so they cannot coincide.
free_ports() {
    python3 -c '
import socket
held = [socket.socket() for _ in range(2)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
for s in held:
    s.close()'
}

# Starts the server in the background; sets redis_pid, redis_port, redis_url and redis_log.
start_server() {
    ensure
    # The cluster bus needs a port too (by default the data port + 10000, often out of range).
    local ports bus_port
    ports=$(free_ports) || fail "could not find free ports on 127.0.0.1"
    read -r redis_port bus_port <<<"$ports"
    local dir=$state_dir/$redis_port
    rm -rf "$dir"
    mkdir -p "$dir"
    redis_log=$dir/redis.log
    # No persistence: every run starts empty. Cluster mode as on ElastiCache Serverless.
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --save '' --appendonly no \
        --cluster-enabled yes --cluster-port "$bus_port" --cluster-config-file "$dir/nodes.conf" \
        --logfile "$redis_log" --daemonize no >/dev/null 2>&1 &
    redis_pid=$!
    local waited_tenths=0
    until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
        kill -0 "$redis_pid" 2>/dev/null ||
            { tail -n 20 "$redis_log" >&2 || true; fail "redis-server exited during start-up (log above)"; }
        ((waited_tenths < STARTUP_TIMEOUT_SECONDS * 10)) ||
            { stop_pid "$redis_pid"; fail "redis-server did not answer on port $redis_port within ${STARTUP_TIMEOUT_SECONDS}s (log in $redis_log)"; }
        sleep 0.1
        waited_tenths=$((waited_tenths + 1))
    done
    # One node holding every slot.
    redis-cli -p "$redis_port" cluster addslotsrange 0 16383 >/dev/null ||
        { stop_pid "$redis_pid"; fail "could not assign the hash slots (log in $redis_log)"; }
    until redis-cli -p "$redis_port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; do
        ((waited_tenths < STARTUP_TIMEOUT_SECONDS * 10)) ||
            { stop_pid "$redis_pid"; fail "the one-node cluster did not come up within ${STARTUP_TIMEOUT_SECONDS}s (log in $redis_log)"; }
        sleep 0.1
        waited_tenths=$((waited_tenths + 1))
    done
    redis_url=redis://127.0.0.1:$redis_port
}

run() {
    [[ ${1:-} == -- ]] && shift
    (($# > 0)) || fail "usage: scripts/redis.sh run -- COMMAND [ARG...]"
    start_server
    trap 'stop_pid "$redis_pid"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "redis.sh: $(redis-server --version | cut -d' ' -f1-3) cluster listening on $redis_url" >&2
    export RANK_INDEX_URL=$redis_url
    local status=0
    "$@" || status=$?
    exit "$status"
}

start() {
    if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "redis.sh: already running (pid $(cat "$pid_file"))" >&2
        redis_url=$(cat "$url_file")
    else
        start_server
        echo "$redis_pid" >"$pid_file"
        echo "$redis_url" >"$url_file"
        echo "redis.sh: started (pid $redis_pid, log $redis_log); stop it with scripts/redis.sh stop" >&2
    fi
    echo "export RANK_INDEX_URL=$redis_url"
}

stop() {
    if [[ ! -f $pid_file ]]; then
        echo "redis.sh: not running (no $pid_file)" >&2
        return 0
    fi
    stop_pid "$(cat "$pid_file")"
    rm -f "$pid_file" "$url_file"
    echo "redis.sh: stopped" >&2
}

case ${1:-} in
ensure) ensure ;;
run)
    shift
    run "$@"
    ;;
start) start ;;
stop) stop ;;
*) fail "usage: scripts/redis.sh ensure | run -- COMMAND [ARG...] | start | stop" ;;
esac
