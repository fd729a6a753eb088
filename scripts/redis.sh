#!/usr/bin/env bash
# The rank index's real server for tests: redis-server (Debian's package, Redis 7.0) as a
# one-node cluster on loopback, the mode ElastiCache Serverless runs in, so the cluster client the
# functions deploy with is what the tests use. It listens twice: plain TCP (RANK_INDEX_URL) and
# TLS (RANK_INDEX_TLS_URL, with a certificate for 127.0.0.1 from a CA made for the run,
# RANK_INDEX_CA_FILE), as the serverless cache only speaks TLS; the emulated deployment uses
# the TLS one.
#
#   scripts/redis.sh ensure                  install redis-server (and openssl) with apt-get if
#                                            missing
#   scripts/redis.sh run -- COMMAND [ARG...] start a one-node cluster on free 127.0.0.1 ports,
#                                            run COMMAND with RANK_INDEX_URL, RANK_INDEX_TLS_URL
#                                            and RANK_INDEX_CA_FILE exported, stop the server,
#                                            exit with COMMAND's code
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
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v openssl >/dev/null; then
        echo "redis.sh: installing redis-server and openssl (Debian packages)" >&2
        local sudo=()
        if ((EUID != 0)); then
            command -v sudo >/dev/null ||
                fail "redis-server is not installed and this user cannot install it; run: apt-get install -y redis-server"
            sudo=(sudo)
        fi
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends redis-server openssl >&2 ||
            { "${sudo[@]}" apt-get update >&2 && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends redis-server openssl >&2; } ||
            fail "apt-get could not install redis-server and openssl; check that Debian's mirrors are reachable"
    fi
    local version
    version=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
    [[ -n $version ]] && ((version >= MIN_MAJOR_VERSION)) ||
        fail "redis-server $(redis-server --version) is too old; the rank index needs Redis $MIN_MAJOR_VERSION or later"
}

# Three distinct free ports, held open together while they are chosen so they cannot coincide.
free_ports() {
    python3 -c '
import socket
held = [socket.socket() for _ in range(3)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
for s in held:
    s.close()'
}

# A CA for this run and a server certificate it signs for 127.0.0.1, in $1.
make_certificates() {
    local dir=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=score-pipeline test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1 &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1 &&
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext" &&
        openssl x509 -req -days 2 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
            -CAcreateserial -extfile "$dir/server.ext" -out "$dir/server.pem" >/dev/null 2>&1 ||
        fail "openssl could not make the test certificates in $dir"
}

# Starts the server in the background; sets redis_pid, redis_port, redis_url, redis_tls_url,
# redis_ca_file and redis_log.
start_server() {
    ensure
    # The cluster bus needs a port too (by default the data port + 10000, often out of range).
    local ports bus_port tls_port
    ports=$(free_ports) || fail "could not find free ports on 127.0.0.1"
    read -r redis_port tls_port bus_port <<<"$ports"
    local dir=$state_dir/$redis_port
    rm -rf "$dir"
    mkdir -p "$dir"
    redis_log=$dir/redis.log
    make_certificates "$dir"
    # No persistence: every run starts empty. Cluster mode as on ElastiCache Serverless. The
    # cluster answers each client with the port of its kind (plain or TLS).
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --save '' --appendonly no \
        --cluster-enabled yes --cluster-port "$bus_port" --cluster-config-file "$dir/nodes.conf" \
        --tls-port "$tls_port" --tls-cluster yes --tls-auth-clients no \
        --tls-cert-file "$dir/server.pem" --tls-key-file "$dir/server.key" --tls-ca-cert-file "$dir/ca.pem" \
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
    redis_tls_url=rediss://127.0.0.1:$tls_port
    redis_ca_file=$dir/ca.pem
}

run() {
    [[ ${1:-} == -- ]] && shift
    (($# > 0)) || fail "usage: scripts/redis.sh run -- COMMAND [ARG...]"
    start_server
    trap 'stop_pid "$redis_pid"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "redis.sh: $(redis-server --version | cut -d' ' -f1-3) cluster listening on $redis_url and $redis_tls_url" >&2
    export RANK_INDEX_URL=$redis_url RANK_INDEX_TLS_URL=$redis_tls_url RANK_INDEX_CA_FILE=$redis_ca_file
    local status=0
    "$@" || status=$?
    exit "$status"
}

start() {
    if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "redis.sh: already running (pid $(cat "$pid_file"))" >&2
        read -r redis_url redis_tls_url redis_ca_file <"$url_file"
    else
        start_server
        echo "$redis_pid" >"$pid_file"
        printf '%s %s %s\n' "$redis_url" "$redis_tls_url" "$redis_ca_file" >"$url_file"
        echo "redis.sh: started (pid $redis_pid, log $redis_log); stop it with scripts/redis.sh stop" >&2
    fi
    echo "export RANK_INDEX_URL=$redis_url RANK_INDEX_TLS_URL=$redis_tls_url RANK_INDEX_CA_FILE=$redis_ca_file"
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
