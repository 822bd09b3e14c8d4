//! The Kubernetes API simulator driven by the real `kubectl`: CRD install, client-side and
//! server-side apply of the examples, printer columns, validation errors, status patches,
//! `kubectl wait`, `kubectl get -w`, `kubectl delete`, Secrets.
//!
//! Skipped, loudly, where kubectl is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiHandle, KubeApiServer};

const TIMEOUT: Duration = Duration::from_secs(25);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kubectl_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KUBECTL") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    })
}

/// A server plus a scratch directory with a kubeconfig and a private kubectl cache.
struct Env {
    server: KubeApiHandle,
    dir: PathBuf,
    kubectl: PathBuf,
}

impl Env {
    async fn start(test: &str) -> Option<Self> {
        let Some(kubectl) = kubectl_path() else {
            eprintln!(
                "\n\n*** SKIPPED {test}: kubectl not found on PATH (set KUBECTL=/path/to/kubectl) ***\n\n"
            );
            return None;
        };
        let server = KubeApiServer::start(KubeApiConfig::default())
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "kube-sim-{test}-{}-{}",
            std::process::id(),
            server.addr().port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        server
            .write_kubeconfig(&dir.join("kubeconfig"), "default")
            .unwrap();
        Some(Self {
            server,
            dir,
            kubectl,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env("HOME", &self.dir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs kubectl to completion (bounded by TIMEOUT) off the async runtime.
    async fn run(&self, args: &[&str]) -> Output {
        let child = self.command(args).spawn().expect("spawn kubectl");
        let what = args.join(" ");
        tokio::task::spawn_blocking(move || wait_bounded(child, TIMEOUT, &what))
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {} failed: {stderr}\n{stdout}",
            args.join(" ")
        );
        stdout
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            !out.status.success(),
            "kubectl {} should have failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_string_lossy().to_string()
    }

    async fn install_crd(&self) {
        let crd = repo_root().join("deploy/crd.yaml");
        let out = self.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
        assert!(
            out.contains(
                "customresourcedefinition.apiextensions.k8s.io/taskresets.fdi.roma.io created"
            ),
            "{out}"
        );
        let out = self
            .ok(&[
                "wait",
                "--for=condition=Established",
                "crd/taskresets.fdi.roma.io",
                "--timeout=10s",
            ])
            .await;
        assert!(out.contains("condition met"), "{out}");
    }

    fn taskresets(&self, client: kube::Client) -> Api<DynamicObject> {
        let ar = ApiResource {
            group: "fdi.roma.io".into(),
            version: "v1alpha1".into(),
            api_version: "fdi.roma.io/v1alpha1".into(),
            kind: "TaskReset".into(),
            plural: "taskresets".into(),
        };
        Api::namespaced_with(client, "default", &ar)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kubectl {what} did not finish in {limit:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn example(name: &str) -> String {
    repo_root()
        .join("deploy/examples")
        .join(name)
        .to_string_lossy()
        .to_string()
}

const MANIFEST: &str = "apiVersion: fdi.roma.io/v1alpha1
kind: TaskReset
metadata:
  name: NAME
spec:
  projectId: c53626012ba84727b938ca8bf03108ef
  instanceId: fae7ff6c-8e07-4cf8-9e67-589cab2f017c
  taskId: TASK
  dateFrom: 1630052714000
  runId: RUN
";

fn manifest(name: &str, task: &str, run: &str) -> String {
    MANIFEST
        .replace("NAME", name)
        .replace("TASK", task)
        .replace("RUN", run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_installs_the_crd_and_applies_examples_client_and_server_side() {
    let Some(env) = Env::start("apply").await else {
        return;
    };
    env.install_crd().await;

    // Client-side apply of the example, twice (idempotent), then a change.
    let out = env.ok(&["apply", "-f", &example("taskreset.yaml")]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/orders-replay created");
    let out = env.ok(&["apply", "-f", &example("taskreset.yaml")]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/orders-replay unchanged");
    let stored = env
        .server
        .get_json(
            "fdi.roma.io/v1alpha1/taskresets",
            "default",
            "orders-replay",
        )
        .unwrap();
    assert_eq!(stored["metadata"]["generation"], 1);
    assert_eq!(
        stored["spec"]["retryPolicy"], "OnTransientError",
        "schema default applied"
    );
    assert!(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    let changed = env.write(
        "changed.yaml",
        &std::fs::read_to_string(example("taskreset.yaml"))
            .unwrap()
            .replace("region: cn-north-4", "region: cn-north-4\n  runId: second"),
    );
    let out = env.ok(&["apply", "-f", &changed]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/orders-replay configured");
    let stored = env
        .server
        .get_json(
            "fdi.roma.io/v1alpha1/taskresets",
            "default",
            "orders-replay",
        )
        .unwrap();
    assert_eq!(stored["spec"]["runId"], "second");
    assert_eq!(stored["metadata"]["generation"], 2);

    // Server-side apply of the other example, twice, then a change.
    let rfc = example("taskreset-rfc3339.yaml");
    let out = env.ok(&["apply", "--server-side", "-f", &rfc]).await;
    assert_eq!(
        out.trim(),
        "taskreset.fdi.roma.io/orders-replay-rfc3339 serverside-applied"
    );
    let out = env.ok(&["apply", "--server-side", "-f", &rfc]).await;
    assert_eq!(
        out.trim(),
        "taskreset.fdi.roma.io/orders-replay-rfc3339 serverside-applied"
    );
    let stored = env
        .server
        .get_json(
            "fdi.roma.io/v1alpha1/taskresets",
            "default",
            "orders-replay-rfc3339",
        )
        .unwrap();
    assert_eq!(
        stored["metadata"]["generation"], 1,
        "a no-op apply is no write"
    );
    assert_eq!(stored["spec"]["dateFrom"], "2021-08-27T08:25:14Z");
    let managers: Vec<&str> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["kubectl"]);
    let dropped = env.write(
        "ssa-dropped.yaml",
        &std::fs::read_to_string(&rfc)
            .unwrap()
            .replace("  notAfter: \"2030-01-01T00:00:00Z\"\n", ""),
    );
    env.ok(&["apply", "--server-side", "-f", &dropped]).await;
    let stored = env
        .server
        .get_json(
            "fdi.roma.io/v1alpha1/taskresets",
            "default",
            "orders-replay-rfc3339",
        )
        .unwrap();
    assert!(
        stored["spec"].get("notAfter").is_none(),
        "a field the manager stopped applying is removed: {stored}"
    );
    assert_eq!(stored["metadata"]["generation"], 2);

    // Server-side apply over a client-side applied field with another value: a conflict.
    let conflicting = env.write(
        "ssa-conflict.yaml",
        &std::fs::read_to_string(example("taskreset.yaml"))
            .unwrap()
            .replace("region: cn-north-4", "region: eu-west-101"),
    );
    let err = env
        .fails(&["apply", "--server-side", "-f", &conflicting])
        .await;
    assert!(err.contains("conflict"), "{err}");
    assert!(err.contains(".spec.region"), "{err}");
    env.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &conflicting,
    ])
    .await;
    let stored = env
        .server
        .get_json(
            "fdi.roma.io/v1alpha1/taskresets",
            "default",
            "orders-replay",
        )
        .unwrap();
    assert_eq!(stored["spec"]["region"], "eu-west-101");

    // Printer columns, by short name.
    let out = env.ok(&["get", "tr"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        vec!["NAME", "TASK", "PHASE", "READY", "REASON", "AGE"]
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("orders-replay "))
        .unwrap_or_else(|| panic!("no row: {out}"));
    // No status yet: Phase, Ready and Reason are blank, as kube-apiserver leaves them.
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.len(), 3, "{out}");
    assert_eq!(cells[1], "15366328208d4d77b76532fe9f4006a6");
    assert!(cells[2].ends_with('s') || cells[2].ends_with('m'), "{row}");
    // Categories resolve too.
    let out = env.ok(&["get", "roma", "-o", "name"]).await;
    assert!(
        out.contains("taskreset.fdi.roma.io/orders-replay-rfc3339"),
        "{out}"
    );
    // kubectl explain reads the OpenAPI v3 schema.
    let out = env.ok(&["explain", "taskreset.spec.retryPolicy"]).await;
    assert!(out.contains("OnTransientError"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_prints_the_usual_errors_for_invalid_objects() {
    let Some(env) = Env::start("invalid").await else {
        return;
    };
    env.install_crd().await;
    let bad = env.write("bad.yaml", &manifest("bad", "no/slashes", "a"));
    let err = env.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains(
            "The TaskReset \"bad\" is invalid: spec.taskId: Invalid value: \"no/slashes\": spec.taskId in body should match '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'"
        ),
        "{err}"
    );

    let good = env.write("good.yaml", &manifest("good", "task-1", "a"));
    env.ok(&["apply", "-f", &good]).await;
    let moved = env.write("moved.yaml", &manifest("good", "task-2", "a"));
    let err = env.fails(&["apply", "-f", &moved]).await;
    assert!(
        err.contains(
            "The TaskReset \"good\" is invalid: spec.taskId: Invalid value: \"task-2\": taskId is immutable: create a new TaskReset for another target"
        ),
        "{err}"
    );
    let err = env
        .fails(&[
            "patch",
            "tr",
            "good",
            "--type=merge",
            "-p",
            r#"{"spec":{"projectId":"other"}}"#,
        ])
        .await;
    assert!(err.contains("projectId is immutable"), "{err}");

    let date = env.write(
        "date.yaml",
        &manifest("date", "task-3", "a").replace("1630052714000", "\"last tuesday\""),
    );
    let err = env.fails(&["apply", "-f", &date]).await;
    assert!(
        err.contains(
            "spec.dateFrom: Invalid value: \"last tuesday\": dateFrom must be epoch milliseconds"
        ),
        "{err}"
    );

    let typo = env.write(
        "typo.yaml",
        &manifest("typo", "task-4", "a").replace("runId: a", "runID: a"),
    );
    let err = env.fails(&["apply", "-f", &typo]).await;
    assert!(
        err.contains("strict decoding error: unknown field \"spec.runID\""),
        "{err}"
    );

    let enum_ = env.write(
        "enum.yaml",
        &manifest("enum", "task-5", "a").replace("runId: a", "retryPolicy: Sometimes"),
    );
    let err = env.fails(&["apply", "-f", &enum_]).await;
    assert!(
        err.contains(
            "spec.retryPolicy: Unsupported value: \"Sometimes\": supported values: \"OnTransientError\", \"Never\", \"Always\""
        ),
        "{err}"
    );
    // Nothing invalid was stored.
    let out = env.ok(&["get", "tr", "-o", "name"]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/good");
    let err = env.fails(&["get", "tr", "missing"]).await;
    assert!(
        err.contains("Error from server (NotFound): taskresets.fdi.roma.io \"missing\" not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_patches_status_waits_for_ready_watches_and_deletes() {
    let Some(env) = Env::start("status").await else {
        return;
    };
    env.install_crd().await;
    env.ok(&["apply", "-f", &example("taskreset.yaml")]).await;

    // kubectl patch --subresource=status writes .status only.
    let out = env
        .ok(&[
            "patch",
            "tr",
            "orders-replay",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Resetting","observedGeneration":1},"spec":{"runId":"ignored"}}"#,
        ])
        .await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/orders-replay patched");
    let stored = env
        .server
        .get_json(
            "fdi.roma.io/v1alpha1/taskresets",
            "default",
            "orders-replay",
        )
        .unwrap();
    assert_eq!(stored["status"]["phase"], "Resetting");
    assert!(
        stored["spec"].get("runId").is_none(),
        "status writes ignore spec"
    );
    assert_eq!(stored["metadata"]["generation"], 1);

    // `kubectl get -w` and `kubectl wait` run while another client sets Ready.
    let watch = env
        .command(&["get", "tr", "orders-replay", "-w", "--request-timeout=0"])
        .spawn()
        .unwrap();
    let waiter = env
        .command(&[
            "wait",
            "--for=condition=Ready",
            "tr/orders-replay",
            "--timeout=20s",
        ])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = env.server.client().await;
    let api = env.taskresets(client);
    let status = json!({"status": {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "ResetSucceeded",
            "message": "Reset Success", "observedGeneration": 1,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    }});
    api.patch_status(
        "orders-replay",
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .unwrap();
    let waited = tokio::task::spawn_blocking(move || wait_bounded(waiter, TIMEOUT, "wait"))
        .await
        .unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout).trim(),
        "taskreset.fdi.roma.io/orders-replay condition met"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut watch = watch;
    let _ = watch.kill();
    let watched = watch.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines[0].starts_with("NAME"), "{lines:?}");
    let rows: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("orders-replay"))
        .collect();
    assert!(rows.len() >= 2, "initial row plus the change: {lines:?}");
    let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
    assert_eq!(
        &last[2..5],
        &["Succeeded", "True", "ResetSucceeded"],
        "{lines:?}"
    );

    let out = env.ok(&["get", "tr", "orders-replay"]).await;
    assert!(out.contains("Succeeded"), "{out}");

    // A finalizer holds deletion until removed.
    env.ok(&[
        "patch",
        "tr",
        "orders-replay",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/finalizers","value":["example.com/hold"]}]"#,
    ])
    .await;
    let out = env
        .ok(&["delete", "tr", "orders-replay", "--wait=false"])
        .await;
    assert_eq!(
        out.trim(),
        "taskreset.fdi.roma.io \"orders-replay\" deleted"
    );
    let held = env
        .server
        .get_json(
            "fdi.roma.io/v1alpha1/taskresets",
            "default",
            "orders-replay",
        )
        .unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    env.ok(&[
        "patch",
        "tr",
        "orders-replay",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await;
    assert!(
        env.server
            .get_json(
                "fdi.roma.io/v1alpha1/taskresets",
                "default",
                "orders-replay"
            )
            .is_none()
    );

    // Plain delete with kubectl's default wait.
    env.ok(&["apply", "-f", &example("taskreset-rfc3339.yaml")])
        .await;
    let out = env
        .ok(&["delete", "-f", &example("taskreset-rfc3339.yaml")])
        .await;
    assert_eq!(
        out.trim(),
        "taskreset.fdi.roma.io \"orders-replay-rfc3339\" deleted"
    );
    let out = env.ok(&["get", "tr"]).await;
    assert!(out.is_empty(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_manages_secrets_configmaps_and_namespaces() {
    let Some(env) = Env::start("builtins").await else {
        return;
    };
    env.ok(&["create", "namespace", "data"]).await;
    let out = env
        .ok(&[
            "-n",
            "data",
            "create",
            "secret",
            "generic",
            "roma-credentials",
            "--from-literal=token=s3cr3t-token",
        ])
        .await;
    assert_eq!(out.trim(), "secret/roma-credentials created");
    let token = env
        .ok(&[
            "-n",
            "data",
            "get",
            "secret",
            "roma-credentials",
            "-o",
            "jsonpath={.data.token}",
        ])
        .await;
    assert_eq!(token, "czNjcjN0LXRva2Vu");
    let out = env.ok(&["-n", "data", "get", "secrets"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "TYPE", "DATA", "AGE"]);
    assert!(out.contains("roma-credentials   Opaque   1"), "{out}");

    let cm = env.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: data\ndata:\n  a: \"1\"\n",
    );
    env.ok(&["apply", "-f", &cm]).await;
    let cm2 = env.write(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: data\ndata:\n  b: \"2\"\n",
    );
    let out = env.ok(&["apply", "-f", &cm2]).await;
    assert_eq!(out.trim(), "configmap/settings configured");
    let stored = env
        .server
        .get_json("v1/configmaps", "data", "settings")
        .unwrap();
    assert_eq!(
        stored["data"],
        json!({"b": "2"}),
        "a strategic merge patch removes a"
    );

    let out = env.ok(&["get", "ns"]).await;
    assert!(out.contains("data ") && out.contains("Active"), "{out}");
    env.ok(&["delete", "namespace", "data"]).await;
    assert!(
        env.server
            .get_json("v1/secrets", "data", "roma-credentials")
            .is_none()
    );
    let counters = env.server.counters();
    assert!(
        counters.get("create").copied().unwrap_or(0) >= 3,
        "{counters:?}"
    );
    let log = env.server.request_log();
    assert!(
        log.iter()
            .any(|r| r.verb == "create" && r.resource == "secrets" && r.status == 201)
    );
    let text = format!("{log:?}");
    assert!(!text.contains("s3cr3t-token") && !text.contains("czNjcjN0LXRva2Vu"));
}
