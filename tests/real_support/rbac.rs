//! RBAC as shipped, on the real server: render the chart (Helm's Go SDK) or a kustomize
//! variant, apply its ServiceAccount and RBAC, start the controller with the rendered
//! Deployment's arguments and environment as its ServiceAccount, then read kube-apiserver's
//! audit log to see what that identity asked for and what it was refused.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use super::{Cluster, Proc, RealEnv, admin_kubectl, repo};

/// The ServiceAccount user of the launcher's `controller` identity.
pub fn controller_user() -> String {
    format!(
        "system:serviceaccount:{}:{}",
        super::CONTROLLER_NAMESPACE,
        super::CONTROLLER_ACCOUNT
    )
}

/// `.venv` with the pinned Python tooling (`.ci/venv.sh`), created once per process under a
/// lock shared by all test processes; its python.
fn venv_python() -> &'static Path {
    static READY: OnceLock<std::path::PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let lock_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("venv.lock");
        let lock = std::fs::File::create(lock_path).expect("venv lock file");
        lock.lock().expect("lock .venv");
        let status = Command::new("bash")
            .arg(repo().join(".ci/venv.sh"))
            .stdin(Stdio::null())
            .status()
            .expect("run .ci/venv.sh");
        assert!(
            status.success(),
            ".ci/venv.sh (python3 -m venv, pip install -r .ci/requirements.txt) failed: {status}"
        );
        repo().join(".venv/bin/python")
    })
}

/// `helm template` of charts/taskreset-controller with `values`, released as `release` in
/// `namespace`, through Helm's Go SDK: the rendered objects.
pub fn render_chart(release: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let out = Command::new(venv_python())
        .arg(repo().join("tools/helm-template.py"))
        .arg(repo().join("charts/taskreset-controller"))
        .args([release, namespace, &values.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run tools/helm-template.py");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8_lossy(&out.stdout))
}

/// `kubectl kustomize <dir>` (relative to the repository): the rendered objects.
pub fn kustomize(cluster: &Cluster, dir: &str) -> Vec<Value> {
    let (rendered, _) = admin_kubectl(cluster, &["kustomize", &repo().join(dir).to_string_lossy()]);
    documents(&rendered)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered manifests")
        .into_iter()
        .filter(|o| o.is_object())
        .collect()
}

/// The objects of `rendered` that give the controller its identity and rights.
pub fn rbac_objects(rendered: &[Value]) -> Vec<Value> {
    rendered
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some(
                    "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .cloned()
        .collect()
}

/// The one Deployment of `rendered`.
pub fn deployment(rendered: &[Value]) -> Value {
    let mut found = rendered
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(found.len(), 1, "one Deployment expected");
    found.remove(0)
}

impl RealEnv {
    /// Apply `objects` as admin (server-side), creating the namespaces they name first.
    pub async fn apply_objects(&self, label: &str, objects: Vec<Value>) {
        let cluster = self.cluster.clone();
        let label = label.to_owned();
        tokio::task::spawn_blocking(move || {
            let namespaces: BTreeSet<&str> = objects
                .iter()
                .filter_map(|o| o["metadata"]["namespace"].as_str())
                .collect();
            let mut items: Vec<Value> = namespaces
                .into_iter()
                .map(|ns| {
                    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                })
                .collect();
            items.extend(objects.iter().cloned());
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            let path = cluster.dir.join(format!("{label}.json"));
            std::fs::write(&path, list.to_string()).expect("write objects");
            admin_kubectl(
                &cluster,
                &["apply", "--server-side", "-f", &path.to_string_lossy()],
            );
        })
        .await
        .expect("join");
    }

    /// Start the controller binary as `identity` the way `deployment` runs it: its container's
    /// arguments and environment (downward API fields filled in for a pod named `pod`), with
    /// `overrides` (`--flag=value` or `--flag`) in place of the same flags' rendered values.
    pub fn spawn_as_deployed(
        &self,
        identity: &str,
        deployment: &Value,
        pod: &str,
        overrides: &[&str],
    ) -> Proc {
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let pod_namespace = deployment["metadata"]["namespace"]
            .as_str()
            .expect("the Deployment's namespace");
        let flag = |arg: &str| arg.split('=').next().unwrap_or_default().to_owned();
        let replaced: BTreeSet<String> = overrides.iter().map(|a| flag(a)).collect();
        let mut args: Vec<String> = container["args"]
            .as_array()
            .expect("container args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_owned())
            .filter(|a| !replaced.contains(&flag(a)))
            .collect();
        args.extend(overrides.iter().map(|a| (*a).to_owned()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskreset-controller"));
        cmd.args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", self.kubeconfig(identity));
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name");
            let value = match (
                &var["value"],
                var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            ) {
                (Value::String(v), _) => v.clone(),
                (_, Some("metadata.namespace")) => pod_namespace.to_owned(),
                (_, Some("metadata.name")) => pod.to_owned(),
                _ => panic!("env {name}: a source the test cannot fill in: {var}"),
            };
            cmd.env(name, value);
        }
        let log_path = self.dir.join(format!("controller-{identity}.log"));
        super::spawn_logged(&mut cmd, log_path)
    }
}

/// One completed request of kube-apiserver's audit log, the parts RBAC decides on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user: AuditUser,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditUser {
    pub username: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: u16,
}

impl AuditEvent {
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }
}

/// The completed requests of `user` in the audit log, in order.
pub fn audit_events(cluster: &Cluster, user: &str) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(&cluster.audit).expect("read the audit log");
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| match serde_json::from_str::<AuditEvent>(line) {
            Ok(event) => Some(event),
            // Only the last line may be half written (by a request still completing).
            Err(_) if i + 1 == lines.len() => None,
            Err(e) => panic!("audit log line {}: {e}: {line}", i + 1),
        })
        .filter(|e| e.stage == "ResponseComplete" && e.user.username == user)
        .collect()
}

/// One thing a rule grants: a verb on a (sub)resource, in a namespace (a Role's) or anywhere
/// (a ClusterRole's), on one name when the rule lists resourceNames.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub role: String,
    pub namespace: Option<String>,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub verb: String,
    pub name: Option<String>,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sub = if self.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", self.subresource)
        };
        write!(
            f,
            "{} {}{sub} (group {:?}) name {} in {} [{}]",
            self.verb,
            self.resource,
            self.api_group,
            self.name.as_deref().unwrap_or("*"),
            self.namespace.as_deref().unwrap_or("every namespace"),
            self.role
        )
    }
}

/// Every (group, resource, subresource, verb, resourceName) the Roles and ClusterRoles of
/// `rbac` grant, one [`Grant`] each.
pub fn grants(rbac: &[Value]) -> Vec<Grant> {
    let mut out = Vec::new();
    for role in rbac
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Role" | "ClusterRole")))
    {
        let namespace = (role["kind"] == "Role").then(|| {
            role["metadata"]["namespace"]
                .as_str()
                .expect("a Role's namespace")
                .to_owned()
        });
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().expect("a string").to_owned())
                .collect()
        };
        for rule in role["rules"].as_array().expect("rules") {
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "nonResourceURLs: {rule}"
            );
            let names = strings(&rule["resourceNames"]);
            let names: Vec<Option<String>> = if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            };
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    let (resource, subresource) = resource
                        .split_once('/')
                        .map_or((resource.clone(), String::new()), |(r, s)| {
                            (r.to_owned(), s.to_owned())
                        });
                    for verb in strings(&rule["verbs"]) {
                        for name in &names {
                            out.push(Grant {
                                role: format!(
                                    "{} {}",
                                    role["kind"].as_str().unwrap_or_default(),
                                    role["metadata"]["name"].as_str().unwrap_or_default()
                                ),
                                namespace: namespace.clone(),
                                api_group: group.clone(),
                                resource: resource.clone(),
                                subresource: subresource.clone(),
                                verb: verb.clone(),
                                name: name.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the request `event` (authorised) used `grant`.
pub fn uses(event: &AuditEvent, grant: &Grant) -> bool {
    let Some(obj) = &event.object_ref else {
        return false;
    };
    event.code() != 403
        && event.verb == grant.verb
        && obj.api_group == grant.api_group
        && obj.resource == grant.resource
        && obj.subresource == grant.subresource
        && grant
            .namespace
            .as_ref()
            .is_none_or(|ns| &obj.namespace == ns)
        && grant.name.as_ref().is_none_or(|name| &obj.name == name)
}

/// The grants no request in `events` used.
pub fn unused<'a>(grants: &'a [Grant], events: &[AuditEvent]) -> Vec<&'a Grant> {
    grants
        .iter()
        .filter(|g| !events.iter().any(|e| uses(e, g)))
        .collect()
}
