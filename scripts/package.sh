#!/usr/bin/env bash
# Builds the five Lambda functions as deployable zips with cargo-lambda:
#
#   target/lambda/ingest/bootstrap.zip      (score-ingest)
#   target/lambda/boards/bootstrap.zip      (score-ingest: the leaderboard reads)
#   target/lambda/processor/bootstrap.zip   (score-processor)
#   target/lambda/ranker/bootstrap.zip      (score-processor: the table's stream to the boards)
#   target/lambda/notifier/bootstrap.zip    (score-notifier)
#
# which is where the CDK app (infra/, context lambdaZipDir) takes them from. Then checks that each
# zip holds an executable `bootstrap` ELF binary for the chosen CPU and prints the zip sizes.
#
#   scripts/package.sh                 arm64 (Graviton; the CDK app's default)
#   ARCH=x86_64 scripts/package.sh     x86_64 (deploy with: npx cdk deploy -c architecture=x86_64)
#
# cargo-lambda and ziglang (Zig is the cross-linker) are installed from PyPI into the repo's
# .venv/ if missing or at another version; rustup adds the Rust target on first use.
set -euo pipefail

CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.14.1
BINARIES=(ingest boards processor ranker notifier)

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv_dir=$repo_root/.venv
lambda_dir=$repo_root/target/lambda
arch=${ARCH:-arm64}

fail() {
    echo "package.sh: $*" >&2
    exit 1
}

case $arch in
arm64 | aarch64)
    arch=arm64
    arch_flag=--arm64
    ;;
x86_64 | amd64 | x86-64)
    arch=x86_64
    arch_flag=--x86-64
    ;;
*) fail "ARCH=$arch is not arm64 or x86_64" ;;
esac

installed_version() {
    "$venv_dir/bin/python" -c 'import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))' "$1" 2>/dev/null
}

ensure_tools() {
    command -v cargo >/dev/null ||
        fail "cargo is not installed; install Rust with rustup (https://rustup.rs) and retry"
    if [[ -x $venv_dir/bin/cargo-lambda ]] &&
        [[ $(installed_version cargo-lambda || true) == "$CARGO_LAMBDA_VERSION" ]] &&
        [[ $(installed_version ziglang || true) == "$ZIGLANG_VERSION" ]]; then
        return 0
    fi
    command -v python3 >/dev/null ||
        fail "python3 is not installed; install it (Debian: apt-get install python3 python3-venv) and retry"
    if [[ ! -x $venv_dir/bin/python ]]; then
        echo "package.sh: creating $venv_dir" >&2
        python3 -m venv "$venv_dir" ||
            fail "could not create $venv_dir; install the venv module (Debian: apt-get install python3-venv), remove $venv_dir and retry"
    fi
    echo "package.sh: installing cargo-lambda==$CARGO_LAMBDA_VERSION and ziglang==$ZIGLANG_VERSION into $venv_dir" >&2
    "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION" ||
        fail "pip could not install cargo-lambda/ziglang; check that PyPI is reachable, or remove $venv_dir and retry"
    [[ -x $venv_dir/bin/cargo-lambda ]] ||
        fail "cargo-lambda is still missing from $venv_dir/bin after installing; remove $venv_dir and retry"
}

# The function packages, built alone: features are unified across the packages of one build,
# and the operator tools' credential providers (SSO, credential_process) stay out of Lambda.
PACKAGES=(score-ingest score-processor score-notifier)

build() {
    local bin_args=()
    for package in "${PACKAGES[@]}"; do
        bin_args+=(-p "$package")
    done
    echo "package.sh: cargo lambda build --release $arch_flag --output-format zip ${bin_args[*]}" >&2
    # .venv/bin first: cargo finds the `lambda` subcommand there, and cargo-lambda finds Zig through
    # the venv's python (python3 -m ziglang).
    (cd "$repo_root" &&
        PATH="$venv_dir/bin:$PATH" cargo lambda build --release "$arch_flag" --output-format zip "${bin_args[@]}") ||
        fail "cargo lambda build failed (output above)"
}

# Checks that the zip holds an executable `bootstrap` ELF file for the chosen architecture.
verify() {
    "$venv_dir/bin/python" - "$arch" "$lambda_dir" "${BINARIES[@]}" <<'PY'
import os, stat, struct, sys, zipfile

arch, lambda_dir, *binaries = sys.argv[1:]
MACHINES = {0xB7: "arm64", 0x3E: "x86_64"}
failed = False
for binary in binaries:
    path = os.path.join(lambda_dir, binary, "bootstrap.zip")
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("bootstrap")
            with zf.open(info) as f:
                header = f.read(20)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        print(f"package.sh: {path}: {e}", file=sys.stderr)
        failed = True
        continue
    problems = []
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        problems.append("bootstrap is not a 64-bit little-endian ELF file")
    else:
        (e_type, e_machine) = struct.unpack_from("<HH", header, 16)
        found = MACHINES.get(e_machine, f"e_machine 0x{e_machine:x}")
        if found != arch:
            problems.append(f"bootstrap is built for {found}, not {arch}")
        if e_type not in (2, 3):  # ET_EXEC, or ET_DYN for position-independent executables
            problems.append(f"bootstrap is not an executable (e_type {e_type})")
    mode = info.external_attr >> 16
    if info.create_system == 3 and not mode & stat.S_IXUSR:
        problems.append(f"bootstrap is not marked executable (mode {oct(mode)})")
    for problem in problems:
        print(f"package.sh: {path}: {problem}", file=sys.stderr)
    failed = failed or bool(problems)
sys.exit(1 if failed else 0)
PY
}

print_sizes() {
    echo "package.sh: $arch zips:" >&2
    for bin in "${BINARIES[@]}"; do
        local zip=$lambda_dir/$bin/bootstrap.zip
        printf '  %-40s %8s bytes (%s)\n' "${zip#"$repo_root"/}" "$(stat -c %s "$zip")" "$(du -h "$zip" | cut -f1)"
    done
}

# The functions must not link what only the operator tools need.
check_lean() {
    local tree
    tree=$(cd "$repo_root" && cargo tree -e normal --prefix none "${PACKAGES[@]/#/-p}" 2>/dev/null) ||
        fail "cargo tree failed for ${PACKAGES[*]}"
    if grep -qE '^aws-sdk-sso(oidc)? ' <<<"$tree"; then
        fail "the Lambda functions would link the SSO credential provider (aws-sdk-sso): enable aws-config's sso feature only in the tools' crate (tests/)"
    fi
}

main() {
    ensure_tools
    local started=$SECONDS
    check_lean
    build
    verify || fail "the zips in $lambda_dir are not deployable for $arch (see above)"
    print_sizes
    echo "package.sh: built and verified in $((SECONDS - started))s" >&2
}

main "$@"
