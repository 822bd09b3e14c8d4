//! kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus/status`, the rules of Flux's health checks)
//! judges real TaskResets on a real kube-apiserver, run by the real controller binary against
//! the ROMA simulator (issue 12, issue 15.5).
//!
//! `testenv/judges/cmd/kstatus` watches the test's namespace and prints kstatus's verdict for
//! every version of every object, with the status it judged. The rule, for every version:
//! InProgress until the generation is final (an object the controller has not written to yet
//! included, and a finished object whose spec changed), Current for Succeeded (also
//! AlreadyExecuted), Failed for Failed and Unknown. Suspended is InProgress: kstatus reads
//! Ready=False without Stalled as in progress, and a suspended reset has not run
//! (docs/gitops.md).
//!
//! Skipped, loudly, without Go (failing instead when `CI` is set); see tests/real_support.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod real_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixture::Fixture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use real_support::{RealEnv, Watch, testenv_bin};
use serde::Deserialize;
use serde_json::Value;
use taskreset_controller::api::{TaskReset, TaskResetSpec};
use taskreset_simulators::roma::{RomaConfig, RomaSimulator, Step};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "kstatus-token-0001";

/// One line of the kstatus command: its verdict on one version of one object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Verdict {
    event: String,
    name: String,
    generation: i64,
    object_status: Value,
    status: String,
    message: String,
    error: String,
}

impl Verdict {
    fn observed(&self) -> Option<i64> {
        self.object_status["observedGeneration"].as_i64()
    }

    /// The phase, if the status describes the object's current generation.
    fn phase(&self) -> Option<&str> {
        self.object_status["phase"]
            .as_str()
            .filter(|_| self.observed() == Some(self.generation))
    }

    fn reason(&self) -> Option<&str> {
        self.object_status["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?["reason"]
            .as_str()
    }

    /// What kstatus must say about this version (the module's rule, docs/gitops.md).
    fn expected(&self) -> &'static str {
        match self.phase() {
            Some("Succeeded") => "Current",
            Some("Failed" | "Unknown") => "Failed",
            _ => "InProgress",
        }
    }

    /// A label of what this version is, for the coverage check.
    fn kind(&self) -> String {
        match (self.observed(), self.phase()) {
            (Some(-1), _) => "not observed".to_owned(),
            (Some(_), None) => "older generation".to_owned(),
            (_, Some(phase)) => format!("{phase}/{}", self.reason().unwrap_or("-")),
            (None, None) => "no observedGeneration".to_owned(),
        }
    }
}

fn parse(line: &str) -> Verdict {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("kstatus printed {line:?}: {e}"))
}

/// kstatus on every TaskReset of the namespace, now.
async fn kstatus_now(env: &RealEnv) -> Vec<Verdict> {
    let mut cmd = Command::new(testenv_bin("kstatus"));
    cmd.arg("-kubeconfig")
        .arg(env.kubeconfig("admin"))
        .args(["-namespace", &env.ns]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run kstatus");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kstatus failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(parse).collect()
}

/// `kstatus -watch` on the namespace: every version, judged, collected in the background.
struct KstatusWatch {
    child: Child,
    lines: Arc<Mutex<Vec<Verdict>>>,
}

impl KstatusWatch {
    fn start(env: &RealEnv) -> Self {
        let mut child = Command::new(testenv_bin("kstatus"))
            .arg("-kubeconfig")
            .arg(env.kubeconfig("admin"))
            .args(["-namespace", &env.ns, "-watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kstatus -watch");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), r#"{"event":"WATCHING"}"#);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(parse(&line));
            }
        });
        Self { child, lines }
    }

    fn all(&self) -> Vec<Verdict> {
        self.lines.lock().unwrap().clone()
    }

    /// The latest version of `name` seen.
    fn latest(&self, name: &str) -> Option<Verdict> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .rev()
            .find(|v| v.name == name && v.event != "DELETED")
            .cloned()
    }

    /// Wait until the latest version of `name` at `generation` has `phase` and `reason`.
    async fn wait_for(&self, name: &str, generation: i64, phase: &str, reason: &str) -> Verdict {
        let deadline = Instant::now() + WAIT;
        loop {
            let latest = self.latest(name);
            if let Some(v) = &latest
                && v.generation == generation
                && v.phase() == Some(phase)
                && v.reason() == Some(reason)
            {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not reach {phase}/{reason} at generation {generation} within {WAIT:?}; last seen: {latest:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for KstatusWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn task() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn spec(task: &str, secret: &str) -> TaskResetSpec {
    Fixture::new("x", task)
        .spec(|s| s.date_from = None)
        .secret(secret)
        .run_id("r1")
        .build_spec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kstatus_reads_every_version_in_progress_until_the_generation_is_final() {
    let Some(env) = RealEnv::new("kstatus").await else {
        return;
    };
    let roma = RomaSimulator::start(RomaConfig::default()).await.unwrap();
    roma.add_token(TOKEN);
    env.secret("roma", &[("token", TOKEN)]).await;
    let watch = KstatusWatch::start(&env);
    let api: Api<TaskReset> = Api::namespaced(env.client.clone(), &env.ns);

    // name, spec, ROMA script, the final phase and reason of generation 1.
    let past = Time("2020-01-01T00:00:00Z".parse().unwrap());
    let cases: Vec<(&str, TaskResetSpec, Vec<Step>, &str, &str)> = vec![
        (
            "succeeds",
            spec(&task(), "roma"),
            vec![],
            "Succeeded",
            "ResetSucceeded",
        ),
        (
            "slow",
            spec(&task(), "roma"),
            vec![Step::delay(Duration::from_millis(1500), Step::Succeed)],
            "Succeeded",
            "ResetSucceeded",
        ),
        (
            "retried",
            spec(&task(), "roma"),
            vec![Step::server_error()],
            "Succeeded",
            "ResetSucceeded",
        ),
        (
            "rejected",
            spec(&task(), "roma"),
            vec![Step::task_list_empty()],
            "Failed",
            "ResetFailed",
        ),
        (
            "ambiguous",
            spec(&task(), "roma"),
            vec![Step::ServerErrorNoBody],
            "Unknown",
            "OutcomeUnknown",
        ),
        (
            "expired",
            TaskResetSpec {
                not_after: Some(past),
                ..spec(&task(), "roma")
            },
            vec![],
            "Failed",
            "Expired",
        ),
        (
            "invalid",
            TaskResetSpec {
                endpoint: Some("https://roma.elsewhere.example.com".into()),
                ..spec(&task(), "roma")
            },
            vec![],
            "Failed",
            "InvalidSpec",
        ),
        (
            "suspended",
            TaskResetSpec {
                suspend: true,
                ..spec(&task(), "roma")
            },
            vec![],
            "Suspended",
            "Suspended",
        ),
        // Its Secret is created once the controller waits for it.
        (
            "late-secret",
            spec(&task(), "late"),
            vec![],
            "Succeeded",
            "ResetSucceeded",
        ),
    ];
    for (name, spec, script, _, _) in &cases {
        if !script.is_empty() {
            roma.script(&spec.task_id, script.clone());
        }
        api.create(&PostParams::default(), &TaskReset::new(name, spec.clone()))
            .await
            .unwrap();
    }

    // No controller yet: nothing has written a status. kube-apiserver serves the CRD's
    // default (observedGeneration -1), and kstatus says InProgress, not Current.
    let before = kstatus_now(&env).await;
    assert_eq!(before.len(), cases.len(), "{before:#?}");
    for v in &before {
        assert_eq!(
            (v.status.as_str(), v.observed()),
            ("InProgress", Some(-1)),
            "{v:#?}"
        );
        assert_eq!(
            v.message,
            "TaskReset generation is 1, but latest observed generation is -1"
        );
    }

    let extra = ["--credentials-wait-max", "1s"];
    let ctl = env.spawn_controller("admin", Watch::ThisNamespace, &roma.url(), &extra);
    watch
        .wait_for("late-secret", 1, "Pending", "CredentialsNotFound")
        .await;
    env.secret("late", &[("token", TOKEN)]).await;
    for (name, _, _, phase, reason) in &cases {
        watch.wait_for(name, 1, phase, reason).await;
    }
    for v in kstatus_now(&env).await {
        assert_eq!(v.status, v.expected(), "{v:#?}");
    }

    // A spec change of a finished object, and of a suspended one, while no controller runs:
    // the new generation is not observed, so both are InProgress again.
    drop(ctl);
    for (name, patch) in [
        ("succeeds", serde_json::json!({"spec": {"runId": "r2"}})),
        ("suspended", serde_json::json!({"spec": {"suspend": false}})),
    ] {
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    for v in kstatus_now(&env).await {
        if v.name == "succeeds" || v.name == "suspended" {
            assert_eq!(v.status, "InProgress", "{v:#?}");
            assert_eq!(
                v.message,
                "TaskReset generation is 2, but latest observed generation is 1"
            );
        }
    }
    let ctl = env.spawn_controller("admin", Watch::ThisNamespace, &roma.url(), &extra);
    watch
        .wait_for("succeeds", 2, "Succeeded", "ResetSucceeded")
        .await;
    watch
        .wait_for("suspended", 2, "Succeeded", "ResetSucceeded")
        .await;

    // Re-created with the same spec: the ledger answers, no call; Current.
    let succeeds = api.get("succeeds").await.unwrap();
    api.delete("succeeds", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while api.get_opt("succeeds").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "succeeds was not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.create(
        &PostParams::default(),
        &TaskReset::new("succeeds", succeeds.spec.clone()),
    )
    .await
    .unwrap();
    watch
        .wait_for("succeeds", 1, "Succeeded", "AlreadyExecuted")
        .await;
    let calls = roma
        .calls()
        .into_iter()
        .filter(|c| c.task_id == succeeds.spec.task_id)
        .count();
    assert_eq!(
        calls, 2,
        "generations 1 and 2 called, the re-created one not"
    );
    drop(ctl);

    // Every version the watch delivered, judged by kstatus, against the rule.
    let all: Vec<Verdict> = watch
        .all()
        .into_iter()
        .filter(|v| v.event != "DELETED")
        .collect();
    let wrong: Vec<&Verdict> = all
        .iter()
        .filter(|v| !v.error.is_empty() || v.status != v.expected())
        .collect();
    assert!(wrong.is_empty(), "kstatus disagrees: {wrong:#?}");
    let seen: BTreeSet<(String, String)> =
        all.iter().map(|v| (v.kind(), v.status.clone())).collect();
    let pair = |kind: &str, status: &str| (kind.to_owned(), status.to_owned());
    for wanted in [
        pair("not observed", "InProgress"),
        pair("older generation", "InProgress"),
        pair("Pending/CredentialsNotFound", "InProgress"),
        pair("Resetting/Resetting", "InProgress"),
        pair("Retrying/RetryScheduled", "InProgress"),
        pair("Succeeded/ResetSucceeded", "Current"),
        pair("Succeeded/AlreadyExecuted", "Current"),
        pair("Suspended/Suspended", "InProgress"),
        pair("Failed/ResetFailed", "Failed"),
        pair("Failed/Expired", "Failed"),
        pair("Failed/InvalidSpec", "Failed"),
        pair("Unknown/OutcomeUnknown", "Failed"),
    ] {
        assert!(seen.contains(&wanted), "never saw {wanted:?}: {seen:#?}");
    }
}
