#!/usr/bin/env bash
# The deployed system on this machine (see tests/src/emulate/mod.rs):
#
#   scripts/emulate.sh prepare      synthesize the dev stack offline into target/emulate/cdk.out,
#                                   with a fresh ES256 key pair for tokens (target/emulate/
#                                   jwt-private.pem signs them) and dummy zips (the emulation runs
#                                   host builds of the same source instead)
#   scripts/emulate.sh run [ARGS]   prepare, build the five functions and the emulator for this
#                                   machine, start moto and a Redis cluster (the cache's stand-in),
#                                   deploy and run (`make emulate`); ARGS go to the emulator (see:
#                                   cargo run --bin emulate -- --help)
#   scripts/emulate.sh coldstart [RUNS]
#                                   the cold-start benchmark (`make coldstart`): release builds of
#                                   the five functions and of a hello-world lambda_runtime
#                                   function, RUNS (20) cold starts of each against the deployed
#                                   environment; a Markdown table on stdout
#
# The emulation's settings differ from the dev defaults in two places, so that the end-to-end
# scenarios hold as they do on the other backends: suspensions take effect at once
# (userCacheTtlSeconds=0) and the quota is 25 submissions per hour.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
infra_dir=$repo_root/infra
out_dir=${EMULATE_DIR:-$repo_root/target/emulate}
EMULATION_CONTEXT=(-c userCacheTtlSeconds=0 -c userQuotaLimit=25 -c userQuotaWindowSeconds=3600)

fail() {
    echo "emulate.sh: $*" >&2
    exit 1
}

prepare() {
    command -v node >/dev/null ||
        fail "node is not installed; install Node.js >= 20.6 (Debian: apt-get install nodejs npm) and retry"
    local installed=$infra_dir/node_modules/.package-lock.json
    if [[ ! -f $installed || $infra_dir/package-lock.json -nt $installed ]]; then
        echo "emulate.sh: npm ci in infra/" >&2
        (cd "$infra_dir" && npm ci --no-audit --no-fund) ||
            fail "npm ci failed; check that the npm registry is reachable"
    fi
    local started=$SECONDS
    rm -rf "$out_dir"
    mkdir -p "$out_dir"
    (cd "$infra_dir" && node --import tsx scripts/emulation-assets.ts "$out_dir") ||
        fail "could not write the emulation's assets into $out_dir"
    local context=()
    while IFS= read -r pair; do
        context+=(-c "$pair")
    done < <(node -e 'const c = require(process.argv[1]); for (const [k, v] of Object.entries(c)) console.log(`${k}=${v}`)' "$out_dir/context.json")
    (cd "$infra_dir" &&
        CDK_DISABLE_CLI_TELEMETRY=true AWS_EC2_METADATA_DISABLED=true \
            node_modules/.bin/cdk synth --no-notices --quiet --output "$out_dir/cdk.out" \
            "${context[@]}" "${EMULATION_CONTEXT[@]}") ||
        fail "cdk synth failed (output above)"
    echo "emulate.sh: synthesized the dev stack into $out_dir/cdk.out in $((SECONDS - started))s" >&2
}

run() {
    prepare
    echo "emulate.sh: building the five functions and the emulator for this machine" >&2
    (cd "$repo_root" && cargo build -p score-ingest -p score-processor -p score-notifier --bins && cargo build --bin emulate) ||
        fail "cargo build failed (output above)"
    local bin_dir=${CARGO_TARGET_DIR:-$repo_root/target}/debug
    EMULATE_DIR=$out_dir exec "$repo_root/scripts/redis.sh" run -- "$repo_root/scripts/moto.sh" run -- \
        "$bin_dir/emulate" --bin-dir "$bin_dir" "$@"
}

coldstart() {
    local runs=${1:-20}
    prepare
    echo "emulate.sh: release builds of the functions and the hello-world baseline" >&2
    (cd "$repo_root" &&
        cargo build --release -p score-ingest -p score-processor -p score-notifier --bins --example hello_lambda &&
        cargo build --bin emulate) ||
        fail "cargo build failed (output above)"
    local target=${CARGO_TARGET_DIR:-$repo_root/target}
    EMULATE_DIR=$out_dir "$repo_root/scripts/redis.sh" run -- "$repo_root/scripts/moto.sh" run -- "$target/debug/emulate" \
        --bin-dir "$target/release" --addr 127.0.0.1:0 --stack-name ScorePipeline-coldstart \
        --cold-starts "$runs" --hello "$target/release/examples/hello_lambda"
}

case ${1:-} in
prepare) prepare ;;
coldstart)
    shift
    coldstart "$@"
    ;;
run)
    shift
    run "$@"
    ;;
*)
    echo "usage: scripts/emulate.sh prepare | run [EMULATOR ARGS] | coldstart [RUNS]" >&2
    exit 2
    ;;
esac
