#!/usr/bin/env bash
# The production controller (the container image's build, --no-default-features) links no
# simulator: not in its dependency tree, not in its binary, and its `sandbox` says why it is
# not there. Lints that build too. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "production build: $*" >&2
  exit 1
}

# The check can fail: the default build does depend on the simulators.
cargo tree --locked -p taskreset-controller -e normal --prefix none \
  | grep -q '^taskreset-simulators ' || fail "the default build no longer lists taskreset-simulators: is this check still looking at the right tree?"
if cargo tree --locked -p taskreset-controller --no-default-features -e normal,build --prefix none \
  | grep '^taskreset-simulators '; then
  fail "taskreset-simulators is a dependency of the build without default features"
fi

cargo clippy --locked -p taskreset-controller --no-default-features --lib --bins -- -D warnings
cargo build --locked -p taskreset-controller --no-default-features --bin taskreset-controller
bin="${CARGO_TARGET_DIR:-target}/debug/taskreset-controller"

if grep -a -q 'taskreset_simulators' "$bin"; then
  fail "$bin contains taskreset_simulators symbols"
fi
if "$bin" --help | grep -q sandbox; then
  fail "--help lists sandbox"
fi
set +e
said=$("$bin" sandbox --until-settled 2>&1)
rc=$?
set -e
[ "$rc" = 64 ] || fail "sandbox exited $rc, not 64 (usage): $said"
grep -q 'built without the `sandbox` cargo feature' <<<"$said" || fail "sandbox said: $said"
"$bin" crd | grep -q '^kind: CustomResourceDefinition' || fail "crd does not print the CRD"
echo "production build: no simulator linked; sandbox answers: $said"
