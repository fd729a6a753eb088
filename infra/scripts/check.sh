#!/usr/bin/env bash
# Everything about infra/ that can be checked without an AWS account, offline:
#
#   1. npm ci           only when node_modules/ is missing or older than package-lock.json
#   2. tsc --noEmit     type-check the app and the tests
#   3. tests            node's test runner: assertions on the synthesized template
#   4. cdk synth        the real CLI, offline, with dummy zips, for a dev and a production stage
#   5. cfn-lint         on both synthesized templates (pinned, installed into the repo's .venv/)
#
# The only network use is the package registries, and only while installing (npm ci, pip).
# Usage: infra/scripts/check.sh            (or: cd infra && npm run check)
set -euo pipefail

CFN_LINT_VERSION=1.58.0
MIN_NODE_MAJOR=20
MIN_NODE_MINOR=6 # node --import needs 20.6

infra_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repo_root=$(cd "$infra_dir/.." && pwd)
venv_dir=$repo_root/.venv

fail() {
    echo "check.sh: $*" >&2
    exit 1
}

step() {
    echo "check.sh: --- $*" >&2
}

require_tools() {
    command -v node >/dev/null ||
        fail "node is not installed; install Node.js >= $MIN_NODE_MAJOR.$MIN_NODE_MINOR (Debian: apt-get install nodejs npm, or https://nodejs.org) and retry"
    command -v npm >/dev/null ||
        fail "npm is not installed; install it with Node.js (Debian: apt-get install npm) and retry"
    command -v python3 >/dev/null ||
        fail "python3 is not installed; it runs cfn-lint (Debian: apt-get install python3 python3-venv) and retry"
    local version major minor
    version=$(node -p 'process.versions.node')
    major=${version%%.*}
    minor=${version#*.}
    minor=${minor%%.*}
    if ((major < MIN_NODE_MAJOR || (major == MIN_NODE_MAJOR && minor < MIN_NODE_MINOR))); then
        fail "node $version is too old; the CDK app needs Node.js >= $MIN_NODE_MAJOR.$MIN_NODE_MINOR"
    fi
}

# npm ci when node_modules/ is missing, or package-lock.json changed since the last install
# (npm keeps its own copy of the lock in node_modules/.package-lock.json).
ensure_node_modules() {
    local installed=$infra_dir/node_modules/.package-lock.json
    if [[ -f $installed && ! $infra_dir/package-lock.json -nt $installed ]]; then
        return 0
    fi
    step "npm ci (node_modules/ is missing or older than package-lock.json)"
    (cd "$infra_dir" && npm ci --no-audit --no-fund) ||
        fail "npm ci failed; check that the npm registry is reachable, and that package-lock.json matches package.json (npm install updates it)"
}

installed_cfn_lint_version() {
    "$venv_dir/bin/cfn-lint" --version 2>/dev/null | awk '{print $2}'
}

ensure_cfn_lint() {
    if [[ -x $venv_dir/bin/cfn-lint ]] && [[ $(installed_cfn_lint_version || true) == "$CFN_LINT_VERSION" ]]; then
        return 0
    fi
    if [[ ! -x $venv_dir/bin/python ]]; then
        echo "check.sh: creating $venv_dir" >&2
        python3 -m venv "$venv_dir" ||
            fail "could not create $venv_dir; install the venv module (Debian: apt-get install python3-venv), remove $venv_dir and retry"
    fi
    step "installing cfn-lint==$CFN_LINT_VERSION into $venv_dir"
    "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION" ||
        fail "pip could not install cfn-lint==$CFN_LINT_VERSION; check that PyPI is reachable, or remove $venv_dir and retry"
    [[ $(installed_cfn_lint_version || true) == "$CFN_LINT_VERSION" ]] ||
        fail "cfn-lint $CFN_LINT_VERSION is still not runnable from $venv_dir after installing; remove $venv_dir and retry"
}

# cdk synth with the pinned CLI from node_modules (never npx's download), telemetry and notices
# off, no instance-metadata credential probe.
synth() {
    local out=$1
    shift
    (cd "$infra_dir" &&
        CDK_DISABLE_CLI_TELEMETRY=true AWS_EC2_METADATA_DISABLED=true \
            node_modules/.bin/cdk synth --no-notices --quiet --output "$out" "$@")
}

main() {
    require_tools
    ensure_node_modules
    ensure_cfn_lint
    cd "$infra_dir"

    local started=$SECONDS
    step "tsc --noEmit"
    node_modules/.bin/tsc --noEmit

    step "tests"
    node --import tsx --test test/*.test.ts

    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/score-infra-check.XXXXXX")
    # shellcheck disable=SC2064 # expand $work now
    trap "rm -rf '$work'" EXIT
    node --import tsx scripts/dummy-assets.ts "$work"
    local tokens=(-c jwtAlgorithm=ES256 -c jwtIssuer=https://issuer.example.test/ -c jwtAudience=score-api
        -c "jwtPublicKeyFile=$work/jwt-public.pem")

    step "cdk synth (dev and prod stages, offline, dummy zips)"
    synth "$work/dev" -c "lambdaZipDir=$work/zips" "${tokens[@]}"
    synth "$work/prod" -c stage=prod -c alarmEmail=oncall@example.test -c "lambdaZipDir=$work/zips" "${tokens[@]}"

    step "cfn-lint $CFN_LINT_VERSION"
    "$venv_dir/bin/cfn-lint" --ignore-checks W3005 -- "$work"/dev/*.template.json "$work"/prod/*.template.json

    echo "check.sh: infra checks passed in $((SECONDS - started))s" >&2
}

main "$@"
