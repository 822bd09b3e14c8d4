#!/usr/bin/env bash
# Creates (or refreshes) .venv with the pinned Python tooling of .ci/requirements.txt (Helm's
# Go SDK through helm-python-sdk, kubernetes-validate, the Huawei Cloud SDK). Idempotent: a
# stamp of the requirements file skips pip when nothing changed. Used by .ci/manifests.sh and by
# the real-server tests that render the Helm chart (tests/real_support/rbac.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.ci-requirements.sha256
if ! sha256sum --status -c "$stamp" >/dev/null 2>&1 \
  || ! .venv/bin/python -c 'import helm_python, kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
  sha256sum .ci/requirements.txt >"$stamp"
fi
