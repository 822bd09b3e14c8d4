#!/usr/bin/env bash
# Manifest checks: the kustomize variants and the Helm chart render, lint and validate strictly
# against the Kubernetes 1.33 schemas; TaskResets validate against the CRD's own schema; RBAC is
# exactly the least-privilege set; every Deployment is hardened and passes only known flags; the
# CRD copies are identical; the Argo CD Lua health check passes its tests; the alert rules use
# only documented metrics. Idempotent; installs what it needs (.venv, lua5.4). Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=1.33.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

note() { printf '    %s\n' "$*"; }

# --- tools ---------------------------------------------------------------------------------
bash .ci/venv.sh

if ! command -v lua5.4 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    note "installing lua5.4 with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.4 >/dev/null
  else
    echo "manifests: lua5.4 is missing and cannot be installed (not root or no apt-get)" >&2
    exit 1
  fi
fi

# --- kustomize -----------------------------------------------------------------------------
mkdir -p "$work/rendered"
kustomize_skipped=0
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize deploy >"$work/rendered/kustomize-cluster.yaml"
  kubectl kustomize deploy/namespaced >"$work/rendered/kustomize-namespaced.yaml"
  # An overlay of the namespaced variant into another namespace, as the docs tell teams to do.
  mkdir -p "$work/overlay"
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: data-team\nresources:\n  - %s\n' \
    "$(realpath --relative-to="$work/overlay" deploy/namespaced)" >"$work/overlay/kustomization.yaml"
  kubectl kustomize "$work/overlay" >"$work/rendered/kustomize-namespaced-overlay.yaml"
else
  echo "!!!!! SKIPPED: kubectl is not on PATH, the kustomize variants were NOT rendered !!!!!" >&2
  kustomize_skipped=1
fi

# --- Lua health check tests ----------------------------------------------------------------
lua_out=$(lua5.4 docs/health/argocd-taskreset_test.lua) || {
  printf '%s\n' "$lua_out"
  echo "manifests: the Argo CD health check tests failed" >&2
  exit 1
}
lua_summary=$(printf '%s\n' "$lua_out" | tail -n 1)
if command -v lua5.1 >/dev/null 2>&1; then
  # Argo CD embeds Lua 5.1: run the same tests there when it is installed.
  lua51_out=$(lua5.1 docs/health/argocd-taskreset_test.lua) || {
    printf '%s\n' "$lua51_out"
    echo "manifests: the Argo CD health check tests failed under Lua 5.1" >&2
    exit 1
  }
  lua_summary="$lua_summary (also under Lua 5.1)"
fi

# --- chart, validation, policy (Python) ----------------------------------------------------
.venv/bin/python - "$work/rendered" "$KUBE_VERSION" "$kustomize_skipped" "$lua_summary" <<'PY'
"""Lints and renders the chart, then validates every manifest and checks the policies."""
import copy
import filecmp
import functools
import glob
import json
import os
import re
import sys

import helm_python as helm
import jsonschema
import kubernetes_validate.utils as kv
import yaml

rendered_dir, kube_version, kustomize_skipped, lua_summary = sys.argv[1:5]
CHART = "charts/taskreset-controller"
failures = []
skipped_notes = []
counts = {"validated": 0, "taskresets": 0, "skipped": 0, "deployments": 0, "renders": 0}

# The schema files are read once, not per object.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def docs_of(text, origin):
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as e:
        fail(f"{origin}: not YAML: {e}")
        return []


# --- the chart: lint, render (default and every ci/*.yaml), schema must bite ----------------
sources = {}  # origin -> list of objects
for path in sorted(glob.glob(os.path.join(rendered_dir, "*.yaml"))):
    sources[os.path.basename(path)] = docs_of(open(path).read(), path)

value_sets = [("default values", {})]
for path in sorted(glob.glob(f"{CHART}/ci/*.yaml")):
    value_sets.append((path, yaml.safe_load(open(path)) or {}))

for label, values in value_sets:
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{kube_version}")
    for m in report.get("messages", []):
        if m.get("severity", 0) >= 2:
            fail(f"helm lint ({label}): {m.get('path')}: {m.get('error')}")
    for e in report.get("errors", []):
        fail(f"helm lint ({label}): {e}")
    with helm.Chart.load(CHART) as chart:
        try:
            out = chart.render(values, name="taskreset-controller", namespace="taskreset-system")
        except helm.HelmError as e:
            fail(f"helm render ({label}): {e}")
            continue
    counts["renders"] += 1
    objs = []
    for name, text in sorted(out.items()):
        if name.endswith("NOTES.txt"):
            if "taskreset" not in text:
                fail(f"{label}: NOTES.txt rendered empty")
            continue
        objs.extend(docs_of(text, f"{label}: {name}"))
    sources[f"chart ({label})"] = objs

# values.schema.json must reject a typo and a bad enum: proves the schema is enforced.
for bad in ({"replicaCont": 2}, {"rbac": {"create": True, "scope": "everything"}},
            {"logging": {"format": "xml", "level": "info"}},
            # issue 15.9: a 0 timeout makes every reset Unknown without a call.
            {"limits": {"requestTimeout": "0s"}}, {"limits": {"requestTimeout": "000ms"}},
            {"limits": {"maxResetsPerSecond": -1}}):
    with helm.Chart.load(CHART) as chart:
        try:
            chart.render(bad, name="taskreset-controller", namespace="taskreset-system")
            fail(f"values.schema.json accepted invalid values {bad}")
        except helm.HelmError:
            pass
# issue 15.9: 0 calls per second is "unlimited" (run --help), so the schema must allow it.
for good in ({"limits": {"maxResetsPerSecond": 0}}, {"limits": {"requestTimeout": "1500ms"}}):
    with helm.Chart.load(CHART) as chart:
        try:
            chart.render(good, name="taskreset-controller", namespace="taskreset-system")
        except helm.HelmError as e:
            fail(f"values.schema.json refused valid values {good}: {e}")
# replicas without leader election must be refused by the templates.
with helm.Chart.load(CHART) as chart:
    try:
        chart.render({"leaderElection": {"enabled": False}}, name="t", namespace="t")
        fail("chart rendered 2 replicas without leader election")
    except helm.HelmError:
        pass

# --- plain files under deploy/ and docs/ ---------------------------------------------------
for path in sorted(glob.glob("deploy/**/*.yaml", recursive=True)
                   + glob.glob("docs/**/*.yaml", recursive=True)):
    if os.path.basename(path) == "kustomization.yaml":
        continue
    # Under docs/, only Kubernetes objects (a CustomResourceStateMetrics config has no apiVersion).
    needed = ("kind",) if path.startswith("deploy/") else ("kind", "apiVersion")
    objs = [d for d in docs_of(open(path).read(), path)
            if isinstance(d, dict) and all(k in d for k in needed)]
    if objs:
        sources[path] = objs

# --- TaskReset validation against the CRD's openAPIV3Schema --------------------------------
crd = yaml.safe_load(open("deploy/crd.yaml"))


def to_json_schema(node):
    """Structural OpenAPI v3 -> JSON Schema, strict: unknown fields are errors, not pruned."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k not in ("nullable", "format")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


taskreset_schemas = {}
for version in crd["spec"]["versions"]:
    schema = to_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string",
                                "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}},
    }
    schema.setdefault("required", []).extend(["apiVersion", "kind", "metadata"])
    taskreset_schemas[f"{crd['spec']['group']}/{version['name']}"] = schema


def validate_taskreset(obj):
    schema = taskreset_schemas.get(obj.get("apiVersion"))
    if schema is None:
        raise jsonschema.ValidationError(f"unknown apiVersion {obj.get('apiVersion')}")
    jsonschema.Draft202012Validator(schema).validate(obj)


# The TaskReset validator must bite: an unknown field and a bad ID are rejected.
good = {"apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset", "metadata": {"name": "x"},
        "spec": {"projectId": "p", "instanceId": "i", "taskId": "t", "dateFrom": 1630052714000}}
validate_taskreset(good)
for mutate in (lambda o: o["spec"].update(taskid="t"), lambda o: o["spec"].update(taskId="../x"),
               lambda o: o["spec"].update(dateFrom=1.5)):
    bad = copy.deepcopy(good)
    mutate(bad)
    try:
        validate_taskreset(bad)
        fail(f"the TaskReset schema accepted {bad['spec']}")
    except jsonschema.ValidationError:
        pass

# --- validate everything --------------------------------------------------------------------
for origin, objs in sources.items():
    for obj in objs:
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            fail(f"{origin}: a document without apiVersion/kind")
            continue
        ident = f"{origin}: {obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
        if obj["kind"] == "TaskReset":
            try:
                validate_taskreset(obj)
                counts["taskresets"] += 1
            except jsonschema.ValidationError as e:
                fail(f"{ident}: {'.'.join(map(str, e.path))}: {e.message}")
            continue
        try:
            kv.validate(obj, kube_version, strict=True)
            counts["validated"] += 1
        except kv.ValidationError as e:
            fail(f"{ident}: {'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError:
            counts["skipped"] += 1
            skipped_notes.append(f"{ident} ({obj['apiVersion']}: no built-in schema)")

# --- policy: RBAC is exactly the least-privilege set ----------------------------------------
# (apiGroup, resource, resourceNames or None) -> verbs. The real-server tests prove these are
# what the controller uses (tests/real_rbac.rs); this check keeps every rendering in step.
LEDGER = tuple(f"taskreset-ledger-{i:x}" for i in range(16))
EXPECTED_RBAC = {
    ("fdi.roma.io", "taskresets", None): {"list", "watch"},
    ("fdi.roma.io", "taskresets/status", None): {"get", "update"},
    ("", "secrets", None): {"get"},
    ("", "configmaps", None): {"create"},
    ("", "configmaps", LEDGER): {"get", "update"},
    ("events.k8s.io", "events", None): {"create", "patch"},
    ("coordination.k8s.io", "leases", None): {"create"},
    ("coordination.k8s.io", "leases", ("<lease>",)): {"get", "patch"},
}
# Granted only where the default Secret lives outside the watched namespace.
OPTIONAL_RBAC = {("", "secrets", ("<default Secret>",)): {"get"}}


def rule_names(res, names):
    """resourceNames as the policy sees them: the Lease and the default Secret by role."""
    if names and res == "leases":
        return ("<lease>",) if len(names) == 1 else names
    if names and res == "secrets":
        return ("<default Secret>",) if len(names) == 1 else names
    return names
RBAC_SOURCES = [o for o in sources if o.startswith(("kustomize-", "chart ("))]
for origin in RBAC_SOURCES:
    granted = {}
    for obj in sources[origin]:
        if obj.get("kind") not in ("Role", "ClusterRole"):
            continue
        for rule in obj.get("rules", []):
            if "nonResourceURLs" in rule:
                fail(f"{origin}: {obj['kind']} {obj['metadata']['name']} grants nonResourceURLs")
            for group in rule.get("apiGroups", []):
                for res in rule.get("resources", []):
                    if "*" in (group, res) or "*" in rule.get("verbs", []):
                        fail(f"{origin}: wildcard in {obj['kind']} {obj['metadata']['name']}")
                    names = tuple(rule["resourceNames"]) if rule.get("resourceNames") else None
                    names = rule_names(res, names)
                    granted.setdefault((group, res, names), set()).update(rule.get("verbs", []))
    for key, verbs in OPTIONAL_RBAC.items():
        if granted.get(key) == verbs:
            del granted[key]
    if granted != EXPECTED_RBAC:
        extra = {k: sorted(v - EXPECTED_RBAC.get(k, set())) for k, v in granted.items()
                 if v - EXPECTED_RBAC.get(k, set())}
        missing = {k: sorted(v - granted.get(k, set())) for k, v in EXPECTED_RBAC.items()
                   if v - granted.get(k, set())}
        fail(f"{origin}: RBAC differs from the least-privilege set: extra {extra}, missing {missing}")
    kinds = {o.get("kind") for o in sources[origin]}
    if "namespaced" in origin and kinds & {"ClusterRole", "ClusterRoleBinding",
                                            "CustomResourceDefinition", "Namespace"}:
        fail(f"{origin}: the namespaced variant contains cluster-scoped objects")

# --- policy: every controller Deployment is hardened and passes only known flags -----------
VALUE_FLAGS = {
    "namespace": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "default-credentials-secret": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    "default-credentials-namespaces": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(,[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    "default-region": r"^[a-z]{2}(-[a-z]+)+-[0-9]+$",
    "default-endpoint": r"^https?://[^\s/?#,]+(/[^\s?#,]*)?$",
    "allowed-endpoints": r"^https?://[^\s,]+(,https?://[^\s,]+)*$",
    "max-concurrent-resets": r"^[1-9][0-9]*$",
    "max-resets-per-second": r"^[0-9]+(\.[0-9]+)?$",
    "max-attempts": r"^[1-9][0-9]*$",
    "request-timeout": r"^[0-9]+(ms|s|m|h|d)$",
    "lease-name": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    "lease-namespace": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "lease-holder": r"^\S+$",
    "metrics-addr": r"^[^\s]+:[0-9]+$",
    "log-format": r"^(json|text)$",
    "ca-file": r"^/\S+$",
    "ledger-retention": r"^[0-9]+(ms|s|m|h|d)$",
    # Tuning flags of `run` beyond the documented set (chart: extraArgs).
    "retry-base-delay": r"^[0-9]+(ms|s|m|h|d)$",
    "retry-max-delay": r"^[0-9]+(ms|s|m|h|d)$",
    "credentials-retry-delay": r"^[0-9]+(ms|s|m|h|d)$",
    "credentials-wait-max": r"^[0-9]+(ms|s|m|h|d)$",
    "lease-duration": r"^[0-9]+(ms|s|m|h|d)$",
}
BOOL_FLAGS = {"leader-election", "insecure-allow-http"}
KNOWN_ENV = {"TASKRESET_" + f.upper().replace("-", "_") for f in set(VALUE_FLAGS) | BOOL_FLAGS}

for origin, objs in sources.items():
    for obj in objs:
        if obj.get("kind") != "Deployment":
            continue
        counts["deployments"] += 1
        ident = f"{origin}: Deployment/{obj['metadata']['name']}"
        pod = obj["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{ident}: pod securityContext must set runAsNonRoot and seccomp RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not True:
            fail(f"{ident}: automountServiceAccountToken must be true (the controller uses the API)")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            hardened = (sc.get("allowPrivilegeEscalation") is False
                        and sc.get("readOnlyRootFilesystem") is True
                        and sc.get("runAsNonRoot") is True
                        and "ALL" in sc.get("capabilities", {}).get("drop", [])
                        and sc.get("runAsUser", psc.get("runAsUser")) not in (None, 0))
            if not hardened:
                fail(f"{ident}: container {c['name']} is not hardened: {sc}")
            probes = (c.get("livenessProbe", {}).get("httpGet", {}).get("path"),
                      c.get("readinessProbe", {}).get("httpGet", {}).get("path"))
            if probes != ("/healthz", "/readyz"):
                fail(f"{ident}: probes must be /healthz and /readyz, got {probes}")
            if "metrics" not in [p.get("name") for p in c.get("ports", [])]:
                fail(f"{ident}: no container port named metrics")
            if "memory" not in c.get("resources", {}).get("limits", {}):
                fail(f"{ident}: no memory limit")
            args = c.get("args", [])
            if not args or args[0] != "run":
                fail(f"{ident}: args must start with the run subcommand, got {args[:1]}")
            seen = set()
            for a in args[1:]:
                m = re.fullmatch(r"--([a-z-]+)(?:=(.*))?", a)
                if not m:
                    fail(f"{ident}: argument {a!r} is not --flag[=value]")
                    continue
                flag, value = m.group(1), m.group(2)
                if flag in seen:
                    fail(f"{ident}: flag --{flag} given twice")
                seen.add(flag)
                if flag in BOOL_FLAGS:
                    if value is not None:
                        fail(f"{ident}: --{flag} takes no value")
                elif flag in VALUE_FLAGS:
                    if value is None or not re.fullmatch(VALUE_FLAGS[flag], value):
                        fail(f"{ident}: --{flag}={value} does not look valid")
                else:
                    fail(f"{ident}: unknown flag --{flag}")
            env = {e["name"]: e for e in c.get("env", [])}
            for name in env:
                if name.startswith("TASKRESET_") and name not in KNOWN_ENV:
                    fail(f"{ident}: unknown environment variable {name}")
            if "POD_NAME" not in env or "POD_NAMESPACE" not in env:
                fail(f"{ident}: POD_NAME and POD_NAMESPACE must come from the downward API")
            replicas = obj["spec"].get("replicas", 1)
            leader = "leader-election" in seen or env.get("TASKRESET_LEADER_ELECTION", {}).get("value") == "true"
            if replicas > 1 and not leader:
                fail(f"{ident}: {replicas} replicas without --leader-election")
            if "namespaced" in origin and "namespace" not in seen and "TASKRESET_NAMESPACE" not in env:
                fail(f"{ident}: the namespaced variant must set --namespace")
            # The Lease the Role names must be the Lease the controller uses.
            lease_names = {n for o in objs if o.get("kind") == "Role"
                           for r in o.get("rules", []) if "leases" in r.get("resources", [])
                           for n in r.get("resourceNames", [])}
            lease = next((a.split("=", 1)[1] for a in args if a.startswith("--lease-name=")),
                         "taskreset-controller")
            if leader and origin in RBAC_SOURCES and lease not in lease_names:
                fail(f"{ident}: --lease-name {lease} is not among the Role's leases {sorted(lease_names)}")

# --- the CRD copies are identical ------------------------------------------------------------
crd_copies = sorted(glob.glob(f"{CHART}/crds/*.yaml"))
if not crd_copies:
    fail(f"{CHART}/crds holds no CRD")
for path in crd_copies:
    if not filecmp.cmp("deploy/crd.yaml", path, shallow=False):
        fail(f"{path} differs from deploy/crd.yaml: cp deploy/crd.yaml {path}")

# --- alert rules use only documented metrics -------------------------------------------------
# The metrics are the rows of the table in docs/operating.md.
METRICS = set(re.findall(r"^\| `(taskreset_[a-z_]+)` \|", open("docs/operating.md").read(), re.M))
if len(METRICS) < 6:
    fail(f"docs/operating.md documents only {sorted(METRICS)}")
alert_rules = 0
for path in sorted(glob.glob("docs/**/*rules*.yaml", recursive=True)):
    doc = yaml.safe_load(open(path))
    groups = doc.get("spec", doc).get("groups", []) if isinstance(doc, dict) else []
    for group in groups:
        for rule in group.get("rules", []):
            alert_rules += 1
            name = rule.get("alert") or rule.get("record")
            if not name or not rule.get("expr"):
                fail(f"{path}: a rule without alert/record name or expr")
                continue
            for metric in re.findall(r"\btaskreset_[a-z_]+", rule["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                if base not in METRICS and metric not in METRICS:
                    fail(f"{path}: {name} uses undocumented metric {metric}")
            if rule.get("alert") and not (rule.get("labels", {}).get("severity")
                                          and rule.get("annotations", {}).get("summary")):
                fail(f"{path}: alert {name} needs labels.severity and annotations.summary")
if alert_rules == 0:
    fail("no Prometheus alert rules found under docs/")

# --- relative links in the docs resolve ------------------------------------------------------
links = 0
for md in sorted(glob.glob("docs/**/*.md", recursive=True)):
    text = open(md).read()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        links += 1
        path = os.path.normpath(os.path.join(os.path.dirname(md), target.split("#")[0]))
        if not os.path.exists(path):
            fail(f"{md}: broken link {target}")

# --- summary -------------------------------------------------------------------------------------
for n in skipped_notes:
    print(f"note: not schema-validated: {n}")
print("note: TaskReset CEL rules (x-kubernetes-validations) are not evaluated here; "
      "the Rust tests and the API server check them")
if kustomize_skipped == "1":
    print("note: kubectl missing, kustomize variants NOT checked")
print(f"manifests: {len(sources)} sources, {counts['renders']} chart renders, "
      f"{counts['validated']} objects valid against Kubernetes {kube_version} (strict), "
      f"{counts['taskresets']} TaskResets valid against the CRD schema, "
      f"{counts['skipped']} without schema, {counts['deployments']} Deployments checked, "
      f"{len(crd_copies)} CRD copies compared, {alert_rules} alert rules checked, "
      f"{links} doc links resolved")
print(f"lua health check: {lua_summary}")
if failures:
    print(f"manifests: {len(failures)} failure(s)")
    sys.exit(1)
print("manifests: all checks passed")
PY
