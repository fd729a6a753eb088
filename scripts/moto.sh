#!/usr/bin/env bash
# The AWS API emulator (moto's server, from PyPI) that the AWS adapter tests run against.
#
#   scripts/moto.sh ensure                  install the pinned moto[server] into .venv/ (only if
#                                           missing or a different version)
#   scripts/moto.sh run -- COMMAND [ARG...] start moto on a free 127.0.0.1 port, run COMMAND with
#                                           MOTO_ENDPOINT, AWS_ENDPOINT_URL, AWS_REGION and test
#                                           credentials exported, stop moto, exit with COMMAND's code
#   scripts/moto.sh start                   start moto in the background for manual use; prints the
#                                           exports to paste and writes target/moto/moto.pid
#   scripts/moto.sh stop                    stop the moto that `start` started
#
# Example: scripts/moto.sh run -- cargo test -p score-shared --test aws_adapters
set -euo pipefail

MOTO_VERSION=5.2.5
STARTUP_TIMEOUT_SECONDS=30

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/stop_pid.sh
source "$repo_root/scripts/lib/stop_pid.sh"
venv_dir=$repo_root/.venv
state_dir=$repo_root/target/moto
pid_file=$state_dir/moto.pid
endpoint_file=$state_dir/moto.endpoint

fail() {
    echo "moto.sh: $*" >&2
    exit 1
}

installed_moto_version() {
    # Prints the installed version only if the server extra's web stack is importable too.
    "$venv_dir/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata
import flask, flask_cors  # noqa: F401  (moto_server needs them; they come with the [server] extra)
print(importlib.metadata.version("moto"))
PY
}

ensure() {
    if [[ -x $venv_dir/bin/moto_server ]] && [[ $(installed_moto_version || true) == "$MOTO_VERSION" ]]; then
        return 0
    fi
    command -v python3 >/dev/null ||
        fail "python3 is not installed; install it (Debian: apt-get install python3 python3-venv) and retry"
    if [[ ! -x $venv_dir/bin/python ]]; then
        echo "moto.sh: creating $venv_dir" >&2
        python3 -m venv "$venv_dir" ||
            fail "could not create $venv_dir; install the venv module (Debian: apt-get install python3-venv), remove $venv_dir and retry"
    fi
    echo "moto.sh: installing moto[server]==$MOTO_VERSION into $venv_dir" >&2
    "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" ||
        fail "pip could not install moto[server]==$MOTO_VERSION; check that PyPI is reachable (pip config, proxy), or remove $venv_dir and retry"
    [[ $(installed_moto_version || true) == "$MOTO_VERSION" ]] ||
        fail "moto $MOTO_VERSION is still not importable from $venv_dir after installing; remove $venv_dir and retry"
}

free_port() {
    "$venv_dir/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

answers() {
    "$venv_dir/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=1).read()
PY
}

# Starts moto in the background; sets moto_pid, moto_endpoint and moto_log.
start_server() {
    ensure
    mkdir -p "$state_dir"
    local port
    port=$(free_port) || fail "could not find a free port on 127.0.0.1"
    moto_endpoint=http://127.0.0.1:$port
    moto_log=$state_dir/moto-$port.log
    # The request recorder (off until a test starts it) writes here, never into the cwd.
    MOTO_RECORDER_FILEPATH=$state_dir/recording-$port.jsonl \
        "$venv_dir/bin/moto_server" -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
    moto_pid=$!
    local waited_tenths=0
    until answers "$moto_endpoint"; do
        if ! kill -0 "$moto_pid" 2>/dev/null; then
            tail -n 20 "$moto_log" >&2 || true
            fail "moto_server exited during start-up (log above, full log in $moto_log); remove $venv_dir to reinstall it"
        fi
        if ((waited_tenths >= STARTUP_TIMEOUT_SECONDS * 10)); then
            stop_pid "$moto_pid"
            tail -n 20 "$moto_log" >&2 || true
            fail "moto_server did not answer on $moto_endpoint within ${STARTUP_TIMEOUT_SECONDS}s (log in $moto_log)"
        fi
        sleep 0.1
        waited_tenths=$((waited_tenths + 1))
    done
}

export_aws_environment() {
    export MOTO_ENDPOINT=$moto_endpoint
    export AWS_ENDPOINT_URL=$moto_endpoint
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    unset AWS_SESSION_TOKEN AWS_PROFILE
}

run() {
    [[ ${1:-} == -- ]] && shift
    (($# > 0)) || fail "usage: scripts/moto.sh run -- COMMAND [ARG...]"
    start_server
    trap 'stop_pid "$moto_pid"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "moto.sh: moto $MOTO_VERSION listening on $moto_endpoint" >&2
    export_aws_environment
    local status=0
    "$@" || status=$?
    exit "$status"
}

start() {
    if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "moto.sh: already running (pid $(cat "$pid_file")); endpoint $(cat "$endpoint_file")" >&2
        moto_endpoint=$(cat "$endpoint_file")
    else
        start_server
        echo "$moto_pid" >"$pid_file"
        echo "$moto_endpoint" >"$endpoint_file"
        echo "moto.sh: moto $MOTO_VERSION started (pid $moto_pid, log $moto_log); stop it with scripts/moto.sh stop" >&2
    fi
    cat <<EOF
export MOTO_ENDPOINT=$moto_endpoint AWS_ENDPOINT_URL=$moto_endpoint AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
EOF
}

stop() {
    if [[ ! -f $pid_file ]]; then
        echo "moto.sh: not running (no $pid_file)" >&2
        return 0
    fi
    stop_pid "$(cat "$pid_file")"
    rm -f "$pid_file" "$endpoint_file"
    echo "moto.sh: stopped" >&2
}

case ${1:-} in
ensure) ensure ;;
run)
    shift
    run "$@"
    ;;
start) start ;;
stop) stop ;;
*) fail "usage: scripts/moto.sh ensure | run -- COMMAND [ARG...] | start | stop" ;;
esac
