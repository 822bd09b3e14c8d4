//! Shared harness of the end-to-end tests: both simulators on loopback, the CRD installed, a
//! credentials Secret, and the controller run in-process or as the real binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use taskreset_controller::api::{Phase, TaskReset, TaskResetSpec};
use taskreset_controller::cli::run::{RunArgs, start};
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiHandle, KubeApiServer};
use taskreset_simulators::roma::{CallRecord, RomaConfig, RomaHandle, RomaSimulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Namespace of the tests' objects.
pub const NS: &str = "data";
/// The token the simulator accepts, held by the Secret `roma`.
pub const TOKEN: &str = "e2e-token-0001";
/// Name of the credentials Secret.
pub const SECRET: &str = "roma";
#[allow(unused_imports)]
pub use crate::fixture::{INSTANCE, PROJECT};

/// Both simulators, a client, and a scratch directory.
pub struct Env {
    pub kube: KubeApiHandle,
    pub roma: RomaHandle,
    pub client: kube::Client,
    pub dir: PathBuf,
}

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: RunArgs,
}

impl Env {
    /// Start both simulators, install the CRD and a token Secret the simulator accepts.
    pub async fn new() -> Self {
        taskreset_controller::telemetry::init_logging(
            taskreset_controller::telemetry::LogFormat::Text,
            "info",
        );
        let kube = KubeApiServer::start(KubeApiConfig::default())
            .await
            .expect("kube sim");
        let roma = RomaSimulator::start(RomaConfig::default())
            .await
            .expect("roma sim");
        roma.add_token(TOKEN);
        let client = kube.client().await;
        let dir = std::env::temp_dir().join(format!(
            "taskreset-e2e-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &TaskReset::crd())
            .await
            .expect("CRD");
        let env = Self {
            kube,
            roma,
            client,
            dir,
        };
        env.put_secret(SECRET, &[("token", TOKEN)]).await;
        env
    }

    /// Create or replace a Secret in [`NS`].
    pub async fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        self.put_secret_in(NS, name, data).await;
    }

    /// Create or replace a Secret in `namespace`.
    pub async fn put_secret_in(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            string_data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Secret::default()
        };
        let params = PatchParams::apply("e2e-test").force();
        secrets
            .patch(name, &params, &Patch::Apply(&secret))
            .await
            .expect("secret");
    }

    /// `first` and the controller's flags for these simulators, plus `extra` (a flag named in
    /// `extra` replaces the default one).
    fn flags(&self, first: &str, extra: &[&str]) -> Vec<String> {
        let defaults = [
            ("--allowed-endpoints", self.roma.url()),
            // The simulator is also the IAM of the password Secrets.
            ("--allowed-iam-endpoints", self.roma.url()),
            ("--default-endpoint", self.roma.url()),
            ("--metrics-addr", "127.0.0.1:0".to_owned()),
            ("--retry-base-delay", "100ms".to_owned()),
            ("--max-resets-per-second", "0".to_owned()),
        ];
        let mut flags: Vec<String> = vec![first.into(), "--insecure-allow-http".into()];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                flags.extend([flag.to_owned(), value]);
            }
        }
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        flags
    }

    /// The controller's flags for these simulators, plus `extra`.
    pub fn args(&self, extra: &[&str]) -> RunArgs {
        Wrapper::try_parse_from(self.flags("test", extra))
            .expect("flags")
            .args
    }

    /// Run the controller in this process until the returned handle is stopped.
    pub fn start_controller(&self, extra: &[&str]) -> Running {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(start(
            self.args(extra),
            Some(self.client.clone()),
            shutdown.clone(),
        ));
        Running { shutdown, task }
    }

    /// Write the kubeconfig for the real binary and kubectl.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.join("kubeconfig");
        if !path.exists() {
            self.kube.write_kubeconfig(&path, NS).expect("kubeconfig");
        }
        path
    }

    /// Start the real binary (`run`) against the simulators; its logs go to `log`. The
    /// process is killed when the returned guard drops (a failed test leaves no orphan).
    pub fn spawn_binary(&self, extra: &[&str], log: &str) -> Proc {
        let log = std::fs::File::create(self.dir.join(log)).expect("log file");
        let flags = self.flags("run", extra);
        Command::new(env!("CARGO_BIN_EXE_taskreset-controller"))
            .args(flags)
            .env("KUBECONFIG", self.kubeconfig())
            .env("RUST_LOG", "info,taskreset_controller=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .map(Proc)
            .expect("spawn the controller binary")
    }

    /// The metrics address the process logging to `log` announced at start-up.
    pub async fn metrics_addr(&self, log: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.log(log);
            if let Some(rest) = text.split("metrics=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no start-up line in {log}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Read a captured log.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    pub fn api(&self) -> Api<TaskReset> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// A spec for `task` with the token Secret and an epoch-ms dateFrom.
    pub fn spec(task: &str) -> TaskResetSpec {
        crate::fixture::Fixture::new("x", task)
            .secret(SECRET)
            .build_spec()
    }

    /// Create a TaskReset named `name` for `task`, after `edit`.
    pub async fn create(
        &self,
        name: &str,
        task: &str,
        edit: impl FnOnce(&mut TaskResetSpec),
    ) -> TaskReset {
        let mut spec = Self::spec(task);
        edit(&mut spec);
        let tr = TaskReset::new(name, spec);
        self.api()
            .create(&PostParams::default(), &tr)
            .await
            .expect("create TaskReset")
    }

    /// Merge-patch the spec of `name`.
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> TaskReset {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .expect("patch spec")
    }

    /// Wait until `name` shows `phase` for its current generation.
    pub async fn wait_phase(&self, name: &str, phase: Phase, within: Duration) -> TaskReset {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(tr) = self.api().get_opt(name).await.expect("get") {
                if tr.current_phase() == Some(phase) {
                    return tr;
                }
                last = Some(tr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{name} did not reach {phase} within {within:?}; last seen: {:#?}",
            last.map(|t| (t.metadata.generation, t.status))
        );
    }

    /// The simulator's calls for `task`.
    pub fn calls(&self, task: &str) -> Vec<CallRecord> {
        self.roma
            .calls()
            .into_iter()
            .filter(|c| c.task_id == task)
            .collect()
    }

    /// The Ready condition's (status, reason) of `tr`.
    pub fn ready(tr: &TaskReset) -> (String, String) {
        tr.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| (c.status.clone(), c.reason.clone()))
            .unwrap_or_default()
    }

    /// Events recorded for `name` (events.k8s.io), as (reason, note).
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        api.list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// A fresh unique task id.
    pub fn task() -> String {
        format!("{:032x}", fastrand::u128(..))
    }

    /// Names of all TaskResets, for debugging.
    pub async fn names(&self) -> Vec<String> {
        self.api()
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect()
    }

    /// Ledger ConfigMaps' data in [`NS`].
    pub async fn ledger(&self) -> BTreeMap<String, String> {
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), NS);
        api.list(&Default::default())
            .await
            .expect("configmaps")
            .items
            .into_iter()
            .filter(|cm| cm.name_any().starts_with("taskreset-ledger-"))
            .flat_map(|cm| cm.data.unwrap_or_default())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Keep the logs of a failed test for a look; clean up after a passing one.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A child process, killed on drop.
pub struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A controller running in this process.
pub struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), taskreset_controller::cli::run::StartError>>,
}

impl Running {
    /// Stop it gracefully and wait for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the controller stops within 30 s")
            .expect("join")
            .expect("the controller ran without error");
    }
}

/// Wait a little to let a controller that should do nothing prove it.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}
