//! On a real kube-apiserver and etcd (testenv/, built from Kubernetes' Go modules on first use):
//! the CRD installs and is served as kubectl expects, kube-apiserver itself rejects invalid
//! TaskResets, and the real controller binary does one reset per generation, as admin and as
//! its ServiceAccount with exactly the RBAC of `deploy/`.
//!
//! Skipped, loudly, without Go (failing instead when `CI` is set); see tests/real_support.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod real_support;

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use real_support::e2e::{ready_reason, spec};
use real_support::{CONTROLLER_ACCOUNT, CONTROLLER_NAMESPACE, Proc, RealEnv, Watch};
use taskreset_controller::api::{Phase, TaskReset};
use taskreset_simulators::roma::{RomaConfig, RomaHandle, RomaSimulator};

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "real-server-token-0001";
const PROJECT: &str = "c53626012ba84727b938ca8bf03108ef";
const INSTANCE: &str = "fae7ff6c-8e07-4cf8-9e67-589cab2f017c";

/// A TaskReset manifest, as the simulator's kubectl tests write it.
fn manifest(name: &str, task: &str, run: &str) -> String {
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
  runId: {run}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_is_established_explained_and_printed_by_kubectl() {
    let Some(env) = RealEnv::new("crd").await else {
        return;
    };
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let crd = crds.get("taskresets.fdi.roma.io").await.unwrap();
    let conditions: Vec<(String, String)> = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    for wanted in ["NamesAccepted", "Established"] {
        assert!(
            conditions.contains(&(wanted.to_owned(), "True".to_owned())),
            "{wanted}: {conditions:?}"
        );
    }
    // A structural schema with CEL rules within the cost budget has no NonStructuralSchema
    // condition, and the server kept every rule.
    assert!(
        !conditions.iter().any(|(t, _)| t == "NonStructuralSchema"),
        "{conditions:?}"
    );

    let out = env.ok(&["explain", "taskreset.spec"]).await;
    for field in ["projectId", "instanceId", "taskId", "dateFrom", "runId"] {
        assert!(out.contains(field), "explain lacks {field}: {out}");
    }
    // Issue 15: kubectl wraps descriptions itself; a hard line break of a doc comment showed
    // as a ragged half line.
    assert_wrapped_by_kubectl_alone(&out);
    let out = env.ok(&["explain", "taskreset.status"]).await;
    assert_wrapped_by_kubectl_alone(&out);
    let out = env.ok(&["explain", "taskreset.spec.retryPolicy"]).await;
    assert!(out.contains("OnTransientError"), "{out}");
    // kubectl types every int-or-string field of a CRD `<Object>` (its type guess reads
    // `type`, which kube-apiserver forbids beside x-kubernetes-int-or-string): the
    // description says what the field is.
    let out = env.ok(&["explain", "taskreset.spec.dateFrom"]).await;
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("DESCRIPTION: An integer or a string: where the reset starts from")
            && text.contains("An integer is UTC epoch milliseconds")
            && text.contains("A string is an RFC 3339 timestamp"),
        "{out}"
    );

    let example = env.repo_file("deploy/examples/taskreset.yaml");
    let out = env.ok(&["apply", "-f", &example]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/orders-replay created");
    let out = env.ok(&["apply", "-f", &example]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/orders-replay unchanged");
    let out = env.ok(&["get", "tr"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "TASK", "PHASE", "READY", "REASON", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    // No status yet: Phase, Ready and Reason are blank.
    assert_eq!(
        row[..2],
        ["orders-replay", "15366328208d4d77b76532fe9f4006a6"]
    );
    assert_eq!(row.len(), 3, "{out}");
    let out = env.ok(&["get", "roma", "-o", "name"]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/orders-replay");

    // -o wide: attempts, completion and the Ready message besides the default columns.
    let status = r#"{"status":{"phase":"Succeeded","attempts":1,"completionTime":"2026-01-02T03:04:05Z","conditions":[{"type":"Ready","status":"True","reason":"ResetSucceeded","message":"Reset Success","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}"#;
    env.ok(&[
        "patch",
        "tr",
        "orders-replay",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ])
    .await;
    let out = env.ok(&["get", "tr", "-o", "wide"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TASK",
            "PHASE",
            "READY",
            "REASON",
            "AGE",
            "ATTEMPTS",
            "COMPLETED",
            "MESSAGE"
        ],
        "{out}"
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row.len(), 10, "{out}");
    assert_eq!(row[2..5], ["Succeeded", "True", "ResetSucceeded"], "{out}");
    assert_eq!(row[6], "1", "{out}");
    assert_eq!(row[8..], ["Reset", "Success"], "{out}");
    // COMPLETED is a date column: kubectl prints its age, like AGE.
    assert!(
        row[7].ends_with('d') || row[7].ends_with('y'),
        "completed long ago: {out}"
    );
    let out = env.ok(&["get", "tr"]).await;
    assert!(
        !out.contains("MESSAGE") && !out.contains("Reset Success"),
        "{out}"
    );
}

/// `kubectl explain` output whose description lines were wrapped by kubectl alone (at 76
/// columns): no line ends early while the next line's first word would have fitted on it.
fn assert_wrapped_by_kubectl_alone(out: &str) {
    const WIDTH: usize = 76;
    let lines: Vec<&str> = out.lines().collect();
    let mut checked = 0;
    for pair in lines.windows(2) {
        let (line, next) = (pair[0], pair[1]);
        let description = |l: &str| l.starts_with("    ") && !l.trim().is_empty();
        if !description(line) || !description(next) {
            continue;
        }
        checked += 1;
        let word = next.split_whitespace().next().unwrap_or_default();
        assert!(
            line.trim().chars().count() + 1 + word.chars().count() > WIDTH,
            "a hard line break before {word:?}:\n{line}\n{next}\n\n{out}"
        );
    }
    assert!(checked > 0, "no wrapped description lines in\n{out}");
}

/// kube-apiserver warns about every `format` it does not know when the CRD is created; the
/// simulator does not. The Rust types would give `format: uint32`/`uint16`: the API types
/// declare int64/int32 instead, so `kubectl apply` of deploy/crd.yaml prints no warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_installs_without_warnings() {
    let Some(_env) = RealEnv::new("crd-warnings").await else {
        return;
    };
    let warnings = real_support::crd_warnings();
    assert!(warnings.trim().is_empty(), "{warnings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_rejects_invalid_taskresets() {
    let Some(env) = RealEnv::new("admission").await else {
        return;
    };
    let bad = env.write("bad.yaml", &manifest("bad", "no/slashes", "a"));
    let err = env.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains(
            "The TaskReset \"bad\" is invalid: spec.taskId: Invalid value: \"no/slashes\": spec.taskId in body should match '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'"
        ),
        "{err}"
    );

    // CEL rules (x-kubernetes-validations): kube-apiserver quotes the rejected value.
    let negative = env.write(
        "negative.yaml",
        &manifest("negative", "task-0", "a").replace("1630052714000", "-1"),
    );
    let err = env.fails(&["apply", "-f", &negative]).await;
    assert!(
        err.contains(
            "The TaskReset \"negative\" is invalid: spec.dateFrom: Invalid value: -1: dateFrom must be epoch milliseconds from 0 to 253402300799999 or an RFC 3339 timestamp such as 2021-08-27T08:25:14Z from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z"
        ),
        "{err}"
    );
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
    assert!(
        err.contains("spec.projectId: Invalid value: \"other\": projectId is immutable"),
        "{err}"
    );

    let typo = env.write(
        "typo.yaml",
        &manifest("typo", "task-4", "a").replace("runId: a", "runID: a"),
    );
    let err = env
        .fails(&["apply", "--validate=strict", "-f", &typo])
        .await;
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
            "* spec.retryPolicy: Unsupported value: \"Sometimes\": supported values: \"OnTransientError\", \"Never\", \"Always\""
        ),
        "{err}"
    );
    // A schema error skips the CEL rules, and kube-apiserver says so.
    assert!(
        err.contains("* <nil>: Invalid value: null: some validation rules were not checked because the object was invalid"),
        "{err}"
    );
    // Nothing invalid was stored.
    let out = env.ok(&["get", "tr", "-o", "name"]).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/good");
}

/// GitOps tools move from client-side to server-side apply: kube-apiserver hands the fields of
/// the last-applied annotation to the applier (manager `kubectl-last-applied`), so a changed
/// field does not conflict with `kubectl-client-side-apply`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_after_client_side_apply_takes_over_without_conflict() {
    let Some(env) = RealEnv::new("csa-ssa").await else {
        return;
    };
    let first = env.write("first.yaml", &manifest("moving", "task-1", "a"));
    env.ok(&["apply", "-f", &first]).await;
    let second = env.write("second.yaml", &manifest("moving", "task-1", "b"));
    let out = env.ok(&["apply", "--server-side", "-f", &second]).await;
    assert_eq!(
        out.trim(),
        "taskreset.fdi.roma.io/moving serverside-applied"
    );
    let managers = env
        .ok(&[
            "get",
            "tr",
            "moving",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert_eq!(managers, "kubectl-last-applied kubectl");
    let run = env
        .ok(&["get", "tr", "moving", "-o", "jsonpath={.spec.runId}"])
        .await;
    assert_eq!(run, "b");
}

/// What the claim protocol relies on: a status write preconditioned on a stale resourceVersion
/// is refused with 409; status writes and label edits leave the generation alone, a spec change
/// bumps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_status_writes_conflict_and_only_spec_changes_bump_the_generation() {
    let Some(env) = RealEnv::new("conflicts").await else {
        return;
    };
    let api: Api<TaskReset> = Api::namespaced(env.client.clone(), &env.ns);
    let tr = TaskReset::new("claim", spec("t1", "r1"));
    let created = api.create(&PostParams::default(), &tr).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let mut claim = created.clone();
    claim.status = Some(
        serde_json::from_value(serde_json::json!({"phase": "Resetting", "observedGeneration": 1}))
            .unwrap(),
    );
    let claimed = api
        .replace_status("claim", &PostParams::default(), &claim)
        .await
        .unwrap();
    assert_eq!(claimed.metadata.generation, Some(1), "status is not spec");
    assert_ne!(
        claimed.metadata.resource_version,
        created.metadata.resource_version
    );
    // A second writer with the same (now stale) resourceVersion loses.
    let err = api
        .replace_status("claim", &PostParams::default(), &claim)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains(
            "the object has been modified; please apply your changes to the latest version and try again"
        ),
        "{}",
        status.message
    );
    let labelled = api
        .patch(
            "claim",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"team": "data"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1), "labels are not spec");
    let changed = api
        .patch(
            "claim",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"runId": "r2"}})),
        )
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    // The status survives a spec change; it now describes an older generation.
    assert_eq!(changed.status.and_then(|s| s.observed_generation), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_as_admin_resets_once_and_not_again_after_recreation() {
    let Some(env) = RealEnv::new("e2e-admin").await else {
        return;
    };
    let roma = roma().await;
    let ctl = env.spawn_controller("admin", Watch::ThisNamespace, &roma.url(), &[]);
    once_then_already_executed(&env, &roma, &ctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_as_its_service_account_with_the_deploy_rbac() {
    // A cluster of its own: the controller watches every namespace, as deployed.
    let Some(env) = RealEnv::private("e2e-rbac").await else {
        return;
    };
    as_service_account(&env, "deploy", Watch::AllNamespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespaced_variant_as_its_service_account_with_its_rbac() {
    // deploy/namespaced: TaskResets, Secrets and the ledger in the controller's own namespace.
    let Some(env) = RealEnv::private_in(CONTROLLER_NAMESPACE).await else {
        return;
    };
    as_service_account(&env, "deploy/namespaced", Watch::ThisNamespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_carries_on_across_apiserver_and_etcd_restarts() {
    let Some(env) = RealEnv::private("restarts").await else {
        return;
    };
    let roma = roma().await;
    env.secret("roma", &[("token", TOKEN)]).await;
    let ctl = env.spawn_controller("admin", Watch::ThisNamespace, &roma.url(), &[]);
    let api: Api<TaskReset> = Api::namespaced(env.client.clone(), &env.ns);
    let mut tasks = Vec::new();
    for (name, restart) in [
        ("before", None),
        ("after-apiserver", Some("restart-apiserver")),
        ("after-etcd", Some("restart-etcd")),
    ] {
        if let Some(cmd) = restart {
            env.restart(cmd).await;
        }
        let task = format!("{:032x}", fastrand::u128(..));
        let tr = TaskReset::new(name, spec(&task, "r1"));
        api.create(&PostParams::default(), &tr).await.unwrap();
        let done = wait_phase(&api, name, Phase::Succeeded, &ctl).await;
        assert_eq!(ready_reason(&done), "ResetSucceeded", "{name}");
        tasks.push(task);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for task in &tasks {
        let calls = roma
            .calls()
            .into_iter()
            .filter(|c| &c.task_id == task)
            .count();
        assert_eq!(calls, 1, "task {task}");
    }
}

/// The controller as its ServiceAccount (kubeconfig `controller`) with the RBAC rendered from
/// `dir`, and the Deployment's leader election: the scenario of the admin test.
async fn as_service_account(env: &RealEnv, dir: &'static str, watch: Watch) {
    let rbac = env.apply_rbac_of(dir).await;
    // The launcher's controller identity is the ServiceAccount the rendered bindings name.
    let subjects: Vec<(&str, &str)> = rbac
        .iter()
        .filter(|o| o["kind"].as_str().is_some_and(|k| k.ends_with("Binding")))
        .flat_map(|o| o["subjects"].as_array().into_iter().flatten())
        .map(|s| {
            (
                s["namespace"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        !subjects.is_empty()
            && subjects
                .iter()
                .all(|s| *s == (CONTROLLER_NAMESPACE, CONTROLLER_ACCOUNT)),
        "{subjects:?}"
    );
    // The identity really has no more than the RBAC grants.
    let denied = env
        .kubectl_as(
            "controller",
            &["auth", "can-i", "list", "secrets", "-n", &env.ns],
        )
        .await;
    assert_eq!(String::from_utf8_lossy(&denied.stdout).trim(), "no");

    let roma = roma().await;
    // The Deployment's leader election, on the Lease the Role names.
    let ctl = env.spawn_controller(
        "controller",
        watch,
        &roma.url(),
        &[
            "--leader-election",
            "--lease-name",
            "taskreset-controller",
            "--lease-namespace",
            CONTROLLER_NAMESPACE,
            "--lease-holder",
            &format!("real-server-{}", std::process::id()),
        ],
    );
    once_then_already_executed(env, &roma, &ctl).await;
    let out = env
        .ok(&["get", "lease", "-n", CONTROLLER_NAMESPACE, "-o", "name"])
        .await;
    assert!(
        out.contains("lease.coordination.k8s.io/taskreset-controller"),
        "{out}"
    );
}

/// A ROMA simulator accepting [`TOKEN`].
async fn roma() -> RomaHandle {
    let roma = RomaSimulator::start(RomaConfig::default())
        .await
        .expect("ROMA simulator");
    roma.add_token(TOKEN);
    roma
}

/// Create a Secret and a TaskReset: Succeeded with one call. Delete and re-create it:
/// Succeeded (AlreadyExecuted) with no new call.
async fn once_then_already_executed(env: &RealEnv, roma: &RomaHandle, ctl: &Proc) {
    env.secret("roma", &[("token", TOKEN)]).await;
    let task = format!("{:032x}", fastrand::u128(..));
    let api: Api<TaskReset> = Api::namespaced(env.client.clone(), &env.ns);
    let tr = TaskReset::new("replay", spec(&task, "r1"));
    api.create(&PostParams::default(), &tr).await.unwrap();
    let done = wait_phase(&api, "replay", Phase::Succeeded, ctl).await;
    assert_eq!(ready_reason(&done), "ResetSucceeded");
    let status = done.status.clone().unwrap();
    assert_eq!(status.message.as_deref(), Some("Reset Success"));
    assert_eq!(status.observed_generation, Some(1));
    let calls: Vec<_> = roma
        .calls()
        .into_iter()
        .filter(|c| c.task_id == task)
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].date_from, Some(1_630_052_714_000));

    real_support::delete_and_wait(&api, "replay").await;
    api.create(&PostParams::default(), &tr).await.unwrap();
    let again = wait_phase(&api, "replay", Phase::Succeeded, ctl).await;
    assert_eq!(ready_reason(&again), "AlreadyExecuted");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = roma
        .calls()
        .into_iter()
        .filter(|c| c.task_id == task)
        .count();
    assert_eq!(calls, 1, "the re-created object made no call");

    // Events reached the server (events.k8s.io) and nothing was forbidden on the way.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns);
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.iter().any(|r| r == "ResetSucceeded"), "{reasons:?}");
    let log = ctl.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the controller was refused something:\n{log}"
    );
}

async fn wait_phase(api: &Api<TaskReset>, name: &str, phase: Phase, ctl: &Proc) -> TaskReset {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(tr) = api.get_opt(name).await.unwrap() {
            if tr.current_phase() == Some(phase) {
                return tr;
            }
            last = tr.status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name} did not reach {phase} within {WAIT:?}; last status {last:#?}\ncontroller log:\n{}",
        ctl.log()
    );
}

/// An object stored under a looser CRD (an older version, a hand edit) that the controller
/// cannot read as a TaskReset: kube-apiserver takes the status write anyway, so the object
/// ends Failed/InvalidSpec in its own status, written once, and nothing is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_object_gets_a_failed_status_from_the_real_server() {
    // A cluster of its own: the CRD is loosened.
    let Some(env) = RealEnv::private("malformed").await else {
        return;
    };
    let loose = r#"[
        {"op": "replace", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec",
         "value": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
    ]"#;
    let patched = env
        .kubectl(&[
            "patch",
            "crd",
            "taskresets.fdi.roma.io",
            "--type=json",
            "-p",
            loose,
        ])
        .await;
    assert!(patched.status.success(), "{patched:?}");
    let broken = format!(
        "apiVersion: fdi.roma.io/v1alpha1\nkind: TaskReset\nmetadata:\n  name: broken\n  namespace: {}\nspec:\n  projectId: 42\n",
        env.ns
    );
    let file = env.write("broken.yaml", &broken);
    let deadline = Instant::now() + WAIT;
    // The loosened schema takes effect a moment after the patch.
    while !env.kubectl(&["apply", "-f", &file]).await.status.success() {
        assert!(
            Instant::now() < deadline,
            "the loosened CRD never admitted the object"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let roma = roma().await;
    let ctl = env.spawn_controller("admin", Watch::ThisNamespace, &roma.url(), &[]);
    let jsonpath = r#"-o=jsonpath={.status.phase}/{.status.conditions[?(@.type=="Ready")].reason}/{.metadata.resourceVersion}"#;
    let args = ["get", "taskreset", "broken", "-n", &env.ns, jsonpath];
    let read = || env.kubectl(&args);
    let seen = loop {
        let out = String::from_utf8_lossy(&read().await.stdout).into_owned();
        if out.starts_with("Failed/InvalidSpec/") {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "no status for the malformed object: {out}\n{}",
            ctl.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = String::from_utf8_lossy(&read().await.stdout).into_owned();
    assert_eq!(later, seen, "the status is written once, not in a loop");
    assert!(roma.calls().is_empty(), "nothing is called for it");
}
