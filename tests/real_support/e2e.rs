//! Shared setup of the end-to-end scenarios on the real kube-apiserver: a namespace with the
//! token Secret, a ROMA simulator accepting it, the real controller binary with short delays,
//! and the reads every scenario makes (phases, calls, the Lease holder).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use taskreset_controller::api::{Phase, TaskReset, TaskResetSpec};
use taskreset_simulators::roma::{RomaConfig, RomaHandle, RomaSimulator};

use super::{CONTROLLER_NAMESPACE, Proc, RealEnv, Watch};

/// The token the simulator accepts, held by the Secret [`SECRET`].
pub const TOKEN: &str = "real-e2e-token-0001";
pub const SECRET: &str = "roma";
pub const PROJECT: &str = "c53626012ba84727b938ca8bf03108ef";
pub const INSTANCE: &str = "fae7ff6c-8e07-4cf8-9e67-589cab2f017c";
/// How long a scenario waits for a phase.
pub const WAIT: Duration = Duration::from_secs(40);
/// How long a controller that must do nothing is given to prove it.
pub const SETTLE: Duration = Duration::from_millis(1500);
/// Controller flags of the scenarios: quick retries of a missing Secret.
pub const FAST: [&str; 2] = ["--credentials-wait-max", "1s"];

/// The Lease of `deploy/`'s leader election, in [`CONTROLLER_NAMESPACE`].
pub const LEASE: &str = "taskreset-controller";

/// One scenario: its namespace, the simulator, the TaskResets' API; the controller runs as
/// its ServiceAccount with the RBAC of `deploy/`.
pub struct Scenario {
    pub env: RealEnv,
    pub roma: RomaHandle,
    pub api: Api<TaskReset>,
}

impl Scenario {
    /// A fresh namespace of the shared cluster with the token Secret; None when skipped.
    pub async fn new(test: &str) -> Option<Self> {
        Some(Self::on(RealEnv::new(test).await?).await)
    }

    /// The same on a cluster of its own: for replicas, which share the one Lease `deploy/`
    /// grants.
    pub async fn private(test: &str) -> Option<Self> {
        Some(Self::on(RealEnv::private(test).await?).await)
    }

    /// The scenario on `env` (e.g. a private cluster).
    pub async fn on(env: RealEnv) -> Self {
        env.shipped_rbac().await;
        let roma = RomaSimulator::start(RomaConfig::default())
            .await
            .expect("ROMA simulator");
        roma.add_token(TOKEN);
        env.secret(SECRET, &[("token", TOKEN)]).await;
        let api = Api::namespaced(env.client.clone(), &env.ns);
        Self { env, roma, api }
    }

    /// The controller as its ServiceAccount, watching this namespace, with [`FAST`] and
    /// `extra` flags.
    pub fn controller(&self, name: &str, extra: &[&str]) -> Proc {
        self.controller_with(name, self.env.kubeconfig("controller"), extra)
    }

    /// The same, with another kubeconfig (e.g. through a fault proxy).
    pub fn controller_with(&self, name: &str, kubeconfig: &Path, extra: &[&str]) -> Proc {
        let flags: Vec<&str> = FAST.iter().chain(extra).copied().collect();
        let url = self.roma.url();
        self.env
            .spawn_named(name, kubeconfig, Watch::ThisNamespace, &url, &flags)
    }

    /// A replica under leader election on [`LEASE`], as `deploy/` runs it.
    pub fn replica(&self, id: &str, duration: &str) -> Proc {
        self.controller(
            id,
            &[
                "--leader-election",
                "--lease-name",
                LEASE,
                "--lease-namespace",
                CONTROLLER_NAMESPACE,
                "--lease-holder",
                id,
                "--lease-duration",
                duration,
            ],
        )
    }

    pub async fn create(&self, name: &str, spec: TaskResetSpec) -> TaskReset {
        let tr = TaskReset::new(name, spec);
        self.api.create(&PostParams::default(), &tr).await.unwrap()
    }

    /// A merge patch of the spec (a new generation).
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> TaskReset {
        let patch = Patch::Merge(serde_json::json!({ "spec": spec }));
        self.api
            .patch(name, &PatchParams::default(), &patch)
            .await
            .unwrap()
    }

    /// Wait until `name` shows `phase` for its current generation, and check that nothing was
    /// forbidden to `procs` on the way (their logs are in the failure message).
    pub async fn wait_phase(&self, name: &str, phase: Phase, procs: &[&Proc]) -> TaskReset {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(tr) = self.api.get_opt(name).await.unwrap() {
                let current = tr.status.as_ref().and_then(|s| s.observed_generation)
                    == tr.metadata.generation;
                if current && tr.current_phase() == Some(phase) {
                    for proc in procs {
                        // The shipped RBAC granted everything on the way.
                        let log = proc.log().to_lowercase();
                        assert!(!log.contains("forbidden"), "{}:\n{log}", proc.log.display());
                    }
                    return tr;
                }
                last = tr.status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs: Vec<String> = procs.iter().map(|p| p.log()).collect();
        panic!(
            "{name} did not reach {phase} within {WAIT:?}; last status {last:#?}\nlogs:\n{}",
            logs.join("\n-----\n")
        );
    }

    /// The calls the simulator got for `task`.
    pub fn calls(&self, task: &str) -> usize {
        self.roma
            .calls()
            .iter()
            .filter(|c| c.task_id == task)
            .count()
    }

    /// The holder of [`LEASE`], if any.
    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.env.client.clone(), CONTROLLER_NAMESPACE);
        leases
            .get_opt(LEASE)
            .await
            .unwrap()?
            .spec?
            .holder_identity
            .filter(|h| !h.is_empty())
    }

    /// Wait until [`LEASE`] names a holder other than `not`; that holder, and how long it
    /// took.
    pub async fn new_holder(&self, not: Option<&str>) -> (String, Duration) {
        let started = Instant::now();
        loop {
            if let Some(holder) = self.lease_holder().await
                && Some(holder.as_str()) != not
            {
                return (holder, started.elapsed());
            }
            assert!(
                started.elapsed() < WAIT,
                "no new holder of {LEASE} (not {not:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The reasons of the events in this namespace.
    pub async fn event_reasons(&self) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.env.client.clone(), &self.env.ns);
        let list = events.list(&Default::default()).await.unwrap();
        list.items.into_iter().filter_map(|e| e.reason).collect()
    }
}

/// A random task id.
pub fn task() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// A spec for `task` with the Secret [`SECRET`] and an epoch-ms dateFrom.
pub fn spec(task: &str, run: &str) -> TaskResetSpec {
    crate::fixture::Fixture::new("x", task)
        .secret(SECRET)
        .run_id(run)
        .build_spec()
}

/// A TaskReset manifest for kubectl, with `more` spec lines (indented by two spaces).
pub fn manifest(name: &str, task: &str, more: &str) -> String {
    format!(
        "apiVersion: fdi.roma.io/v1alpha1
kind: TaskReset
metadata:
  name: {name}
spec:
  projectId: {PROJECT}
  instanceId: {INSTANCE}
  taskId: {task}
  dateFrom: 1630052714000
  runId: r1
  credentialsSecretRef:
    name: {SECRET}
{more}"
    )
}

/// The reason of the Ready condition.
pub fn ready_reason(tr: &TaskReset) -> String {
    tr.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}
