#!/usr/bin/env bash
# Prometheus checks with promtool: the alert rules (the PrometheusRule and the plain rule file
# hold the same rules, and promtool reads both), their unit tests (a case for every alert, on
# the series the controller exposes), and `promtool check metrics` on a real scrape of the
# controller binary run against the simulators (tests/metrics_scrape.rs). Installs promtool
# (Debian's prometheus package) when it is missing. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

RULES=docs/monitoring/taskreset-rules.yaml
RULE_FILE=docs/monitoring/taskreset-rules.prometheus.yaml
RULE_TESTS=docs/monitoring/taskreset-rules.test.yaml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n--> %s\n' "$*"; }

# --- tools ---------------------------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "    installing promtool (Debian package prometheus) with apt-get"
    apt-get update -qq >/dev/null
    # The package's service is not started in containers (policy-rc.d); only promtool is used.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "promtool: promtool is missing and cannot be installed (not root or no apt-get)" >&2
    exit 1
  fi
fi
promtool --version 2>&1 | head -n 1

python=python3
if [ -x .venv/bin/python ]; then
  python=.venv/bin/python
fi

# --- the two rule files hold the same rules --------------------------------------------------
step "the PrometheusRule's spec.groups and $RULE_FILE are the same rules"
"$python" - "$RULES" "$RULE_FILE" "$work/prometheusrule-spec.yaml" <<'PY'
import sys

import yaml

rule, plain, out = sys.argv[1:4]
crd = yaml.safe_load(open(rule))
groups = yaml.safe_load(open(plain))
if crd.get("kind") != "PrometheusRule" or "groups" not in crd.get("spec", {}):
    sys.exit(f"{rule}: not a PrometheusRule with spec.groups")
if crd["spec"] != groups:
    sys.exit(f"{plain} differs from the spec of {rule}: keep them the same rules")
yaml.safe_dump(crd["spec"], open(out, "w"), sort_keys=False)
n = sum(len(g["rules"]) for g in groups["groups"])
print(f"    same {n} rules in both")
PY

step "promtool check rules"
promtool check rules "$RULE_FILE" "$work/prometheusrule-spec.yaml"

step "promtool test rules"
promtool test rules "$RULE_TESTS"
for alert in $(grep -E '^\s*- alert: ' "$RULE_FILE" | awk '{print $3}'); do
  if ! grep -qE "alertname: $alert\$" "$RULE_TESTS"; then
    echo "promtool: $RULE_TESTS has no case for $alert" >&2
    exit 1
  fi
done
echo "    every alert of $RULE_FILE has a case"

# --- a real scrape ---------------------------------------------------------------------------
step "promtool check metrics on a real scrape (tests/metrics_scrape.rs)"
scrape="$work/metrics-scrape.prom"
# CI set: the test fails rather than skip its own promtool check.
if ! CI=${CI:-1} TASKRESET_METRICS_SCRAPE="$scrape" \
  cargo test -j1 --locked --test metrics_scrape -- --nocapture >"$work/scrape.log" 2>&1; then
  cat "$work/scrape.log"
  echo "promtool: the scrape test failed" >&2
  exit 1
fi
grep -E '^(scrape:|promtool check metrics:|test result)' "$work/scrape.log" | sed 's/^/    /'
promtool check metrics <"$scrape"
echo "    promtool check metrics: $(grep -c '^# HELP ' "$scrape") families, $(grep -vc '^#' "$scrape") samples, no problems"
