# Sourced by the scripts that start a test server (moto.sh, redis.sh).
# stop_pid PID: TERM, up to 5 s for the process to exit, then KILL.
stop_pid() {
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}
