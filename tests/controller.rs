//! End-to-end: the real controller against the Kubernetes API and ROMA simulators, over HTTP.
//! Every test checks the ROMA simulator's call log, not only the status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use support::{Env, NS, settle};
use taskreset_controller::api::{Phase, RetryPolicy};
use taskreset_simulators::roma::Step;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_calls_once_and_records_success() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    env.create("orders-replay", &task, |_| {}).await;
    let tr = env
        .wait_phase("orders-replay", Phase::Succeeded, WAIT)
        .await;
    let status = tr.status.clone().unwrap();
    assert_eq!(status.message.as_deref(), Some("Reset Success"));
    assert_eq!(status.http_status, Some(200));
    assert_eq!(status.attempts, Some(1));
    assert_eq!(status.date_from, Some(1_630_052_714_000));
    assert!(status.request_id.is_some());
    assert_eq!(Env::ready(&tr), ("True".into(), "ResetSucceeded".into()));
    let calls = env.calls(&task);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].date_from, Some(1_630_052_714_000));
    assert_eq!(calls[0].project_id, support::PROJECT);
    assert_eq!(calls[0].request_id, status.request_id.unwrap());

    // The controller's own status writes and a label edit never cause a call.
    env.api()
        .patch(
            "orders-replay",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"team": "data"}}})),
        )
        .await
        .unwrap();
    settle().await;
    assert_eq!(env.calls(&task).len(), 1, "a label edit must not call");

    // A new runId is a new generation: exactly one more call.
    env.patch_spec("orders-replay", serde_json::json!({"runId": "again"}))
        .await;
    let tr = env
        .wait_phase("orders-replay", Phase::Succeeded, WAIT)
        .await;
    assert_eq!(tr.status.as_ref().unwrap().observed_generation, Some(2));
    settle().await;
    assert_eq!(env.calls(&task).len(), 2);
    let events = env.events("orders-replay").await;
    assert!(
        events.iter().any(|(reason, _)| reason == "ResetSucceeded"),
        "{events:?}"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_rejections_fail_with_code_and_message() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let (a, b) = (Env::task(), Env::task());
    env.roma.script(&a, vec![Step::task_list_empty()]);
    env.roma.script(&b, vec![Step::not_scheduled()]);
    env.create("empty", &a, |_| {}).await;
    env.create("unscheduled", &b, |_| {}).await;
    let tr = env.wait_phase("empty", Phase::Failed, WAIT).await;
    let s = tr.status.clone().unwrap();
    assert_eq!(
        (
            s.error_code.as_deref(),
            s.error_message.as_deref(),
            s.http_status
        ),
        (Some("FDI.3150"), Some("The task list is empty."), Some(400))
    );
    assert_eq!(Env::ready(&tr), ("False".into(), "ResetFailed".into()));
    let tr = env.wait_phase("unscheduled", Phase::Failed, WAIT).await;
    let s = tr.status.clone().unwrap();
    assert_eq!(
        (s.error_code.as_deref(), s.http_status),
        (Some("FDI.3083"), Some(404))
    );
    settle().await;
    assert_eq!((env.calls(&a).len(), env.calls(&b).len()), (1, 1));
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_not_after_make_no_call() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let (a, b) = (Env::task(), Env::task());
    env.create("parked", &a, |s| s.suspend = true).await;
    env.create("stale", &b, |s| {
        s.not_after = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2020-01-01T00:00:00Z".parse().unwrap(),
        ));
    })
    .await;
    let parked = env.wait_phase("parked", Phase::Suspended, WAIT).await;
    assert_eq!(Env::ready(&parked), ("False".into(), "Suspended".into()));
    let stale = env.wait_phase("stale", Phase::Failed, WAIT).await;
    assert_eq!(Env::ready(&stale), ("False".into(), "Expired".into()));
    settle().await;
    assert!(env.calls(&a).is_empty() && env.calls(&b).is_empty());
    // Unsuspending is a new generation: one call.
    env.patch_spec("parked", serde_json::json!({"suspend": false}))
        .await;
    env.wait_phase("parked", Phase::Succeeded, WAIT).await;
    assert_eq!(env.calls(&a).len(), 1);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_created_later_is_picked_up() {
    let env = Env::new().await;
    let ctl = env.start_controller(&["--credentials-wait-max", "1s"]);
    let task = Env::task();
    env.create("late-secret", &task, |s| {
        s.credentials_secret_ref = Some(taskreset_controller::api::SecretReference {
            name: "later".into(),
        });
    })
    .await;
    let tr = env.wait_phase("late-secret", Phase::Pending, WAIT).await;
    assert_eq!(
        Env::ready(&tr),
        ("Unknown".into(), "CredentialsNotFound".into())
    );
    assert!(env.calls(&task).is_empty());
    env.put_secret("later", &[("token", support::TOKEN)]).await;
    env.wait_phase("late-secret", Phase::Succeeded, WAIT).await;
    assert_eq!(env.calls(&task).len(), 1);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_token_refreshed_once_on_401() {
    let env = Env::new().await;
    env.roma.add_user("acme", "robot", "s3cret-pass");
    env.put_secret(
        "iam",
        &[
            ("username", "robot"),
            ("password", "s3cret-pass"),
            ("domainName", "acme"),
            ("iamEndpoint", &env.roma.url()),
        ],
    )
    .await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    env.roma
        .script(&task, vec![Step::Unauthorized, Step::Succeed]);
    env.create("iam", &task, |s| {
        s.credentials_secret_ref =
            Some(taskreset_controller::api::SecretReference { name: "iam".into() });
    })
    .await;
    let tr = env.wait_phase("iam", Phase::Succeeded, WAIT).await;
    assert_eq!(
        tr.status.unwrap().attempts,
        Some(1),
        "the refresh is inside one attempt"
    );
    assert_eq!(env.calls(&task).len(), 2, "one 401, one success");
    assert_eq!(env.roma.iam_calls(), 2, "a fresh token after the 401");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_waits_for_a_fixed_secret_without_a_spec_change() {
    let env = Env::new().await;
    env.put_secret("wrong", &[("token", "not-a-known-token")])
        .await;
    let ctl = env.start_controller(&["--credentials-retry-delay", "500ms"]);
    let task = Env::task();
    env.create("rejected", &task, |s| {
        s.credentials_secret_ref = Some(taskreset_controller::api::SecretReference {
            name: "wrong".into(),
        });
    })
    .await;
    let tr = env.wait_phase("rejected", Phase::Pending, WAIT).await;
    assert_eq!(
        Env::ready(&tr),
        ("Unknown".into(), "CredentialsRejected".into())
    );
    let rejected = env.calls(&task);
    assert!(!rejected.is_empty() && rejected.iter().all(|c| !c.executed));
    // Issue 15.7: the same Secret version is not called with again (it was, every
    // --credentials-retry-delay, with "attempt 19 is due"); it is only read again, and
    // nextAttemptTime says when (issue 15.8).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        env.calls(&task).len(),
        1,
        "one call per rejected Secret version"
    );
    let tr = env.api().get("rejected").await.expect("get");
    let status = tr.status.clone().unwrap();
    assert_eq!(status.attempts, Some(1));
    let pinned = status
        .rejected_credentials
        .clone()
        .expect("rejectedCredentials");
    assert!(pinned.secret.ends_with("/wrong"), "{pinned:?}");
    assert!(!pinned.resource_version.is_empty());
    let next = status.next_attempt_time.clone().expect("nextAttemptTime").0;
    assert!(
        next >= jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1),
        "{next}"
    );
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let message = &ready.expect("Ready").message;
    assert!(!message.contains("is due"), "{message}");
    env.put_secret("wrong", &[("token", support::TOKEN)]).await;
    let tr = env.wait_phase("rejected", Phase::Succeeded, WAIT).await;
    assert_eq!(tr.metadata.generation, Some(1), "no spec change was needed");
    assert_eq!(env.calls(&task).iter().filter(|c| c.executed).count(), 1);
    // No secret value in status or events.
    let text = format!("{:?}{:?}", tr.status, env.events("rejected").await);
    assert!(!text.contains(support::TOKEN) && !text.contains("not-a-known-token"));
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_until_success_or_exhaustion() {
    let env = Env::new().await;
    let ctl = env.start_controller(&["--max-attempts", "3"]);
    let (a, b) = (Env::task(), Env::task());
    env.roma.script(
        &a,
        vec![Step::Throttle, Step::server_error(), Step::Succeed],
    );
    env.roma.script(
        &b,
        vec![
            Step::Throttle,
            Step::Throttle,
            Step::Throttle,
            Step::Throttle,
        ],
    );
    env.create("flaky", &a, |_| {}).await;
    env.create("throttled", &b, |_| {}).await;
    let tr = env.wait_phase("flaky", Phase::Succeeded, WAIT).await;
    assert_eq!(tr.status.unwrap().attempts, Some(3));
    assert_eq!(env.calls(&a).len(), 3);
    let tr = env.wait_phase("throttled", Phase::Failed, WAIT).await;
    assert_eq!(Env::ready(&tr), ("False".into(), "RetriesExhausted".into()));
    let s = tr.status.unwrap();
    assert_eq!(
        (s.attempts, s.error_code.as_deref()),
        (Some(3), Some("APIGW.0308"))
    );
    settle().await;
    assert_eq!(env.calls(&b).len(), 3);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_unknown_and_never_repeated_unless_policy_always() {
    let env = Env::new().await;
    let ctl = env.start_controller(&["--request-timeout", "1s"]);
    let (a, b) = (Env::task(), Env::task());
    env.roma
        .script(&a, vec![Step::delay(Duration::from_secs(3), Step::Succeed)]);
    env.roma.script(
        &b,
        vec![
            Step::delay(Duration::from_secs(3), Step::Succeed),
            Step::Succeed,
        ],
    );
    env.create("slow", &a, |_| {}).await;
    env.create("slow-always", &b, |s| s.retry_policy = RetryPolicy::Always)
        .await;
    let tr = env.wait_phase("slow", Phase::Unknown, WAIT).await;
    assert_eq!(Env::ready(&tr), ("False".into(), "OutcomeUnknown".into()));
    let tr = env.wait_phase("slow-always", Phase::Succeeded, WAIT).await;
    assert_eq!(tr.status.unwrap().attempts, Some(2));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.calls(&a).len(),
        1,
        "an ambiguous call is never repeated"
    );
    assert_eq!(env.calls(&b).len(), 2, "retryPolicy Always repeats it");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_objects_on_one_target_never_call_together() {
    let env = Env::new().await;
    env.roma.set_latency(Duration::from_millis(400));
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    env.create("first", &task, |s| s.run_id = Some("1".into()))
        .await;
    env.create("second", &task, |s| s.run_id = Some("2".into()))
        .await;
    env.wait_phase("first", Phase::Succeeded, WAIT).await;
    env.wait_phase("second", Phase::Succeeded, WAIT).await;
    let calls = env.calls(&task);
    assert_eq!(calls.len(), 2);
    let gap = calls[1].at.duration_since(calls[0].at).unwrap_or_default();
    assert!(
        gap >= Duration::from_millis(380),
        "calls overlapped: {gap:?} apart"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_repeats_nothing() {
    let env = Env::new().await;
    let task = Env::task();
    let ctl = env.start_controller(&[]);
    env.create("once", &task, |_| {}).await;
    env.wait_phase("once", Phase::Succeeded, WAIT).await;
    ctl.stop().await;
    let ctl = env.start_controller(&[]);
    settle().await;
    assert_eq!(env.calls(&task).len(), 1);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_call_leaves_interrupted_not_a_second_call() {
    let env = Env::new().await;
    let task = Env::task();
    env.roma.script(
        &task,
        vec![Step::delay(Duration::from_secs(8), Step::Succeed)],
    );
    let mut child = env.spawn_binary(&["--request-timeout", "3s"], "killed.log");
    env.create("killed", &task, |_| {}).await;
    env.wait_phase("killed", Phase::Resetting, WAIT).await;
    // The call is on the wire (the simulator holds it for 8 s) when the process dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let mut child = env.spawn_binary(&["--request-timeout", "3s"], "restarted.log");
    let tr = env.wait_phase("killed", Phase::Unknown, WAIT).await;
    assert_eq!(Env::ready(&tr), ("False".into(), "Interrupted".into()));
    // Past the simulator's delay: the one call it held is the only one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.calls(&task).len(), 1, "no second call after the kill");
    let events = env.events("killed").await;
    assert!(events.iter().any(|(r, _)| r == "Interrupted"), "{events:?}");
    // SIGTERM: graceful exit 0.
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_and_recreated_object_is_not_run_again() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    env.create("gitops", &task, |s| s.run_id = Some("r1".into()))
        .await;
    env.wait_phase("gitops", Phase::Succeeded, WAIT).await;
    env.api()
        .delete("gitops", &DeleteParams::default())
        .await
        .unwrap();
    env.create("gitops", &task, |s| s.run_id = Some("r1".into()))
        .await;
    let tr = env.wait_phase("gitops", Phase::Succeeded, WAIT).await;
    assert_eq!(Env::ready(&tr), ("True".into(), "AlreadyExecuted".into()));
    settle().await;
    assert_eq!(
        env.calls(&task).len(),
        1,
        "the re-created object made no call"
    );

    // A new runId runs it again, once.
    env.patch_spec("gitops", serde_json::json!({"runId": "r2"}))
        .await;
    let tr = env.wait_phase("gitops", Phase::Succeeded, WAIT).await;
    assert_eq!(Env::ready(&tr), ("True".into(), "ResetSucceeded".into()));
    assert_eq!(env.calls(&task).len(), 2);

    // The same names in another namespace are another ledger.
    let other: kube::Api<taskreset_controller::api::TaskReset> =
        kube::Api::namespaced(env.client.clone(), "other");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(env.client.clone(), "other");
    let mut secret: k8s_openapi::api::core::v1::Secret =
        kube::Api::namespaced(env.client.clone(), NS)
            .get(support::SECRET)
            .await
            .unwrap();
    secret.metadata = kube::api::ObjectMeta {
        name: Some(support::SECRET.into()),
        ..Default::default()
    };
    secrets.create(&Default::default(), &secret).await.unwrap();
    let mut spec = Env::spec(&task);
    spec.run_id = Some("r1".into());
    other
        .create(
            &Default::default(),
            &taskreset_controller::api::TaskReset::new("gitops", spec),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let tr = other.get("gitops").await.unwrap();
        if tr.current_phase() == Some(Phase::Succeeded) {
            assert_eq!(Env::ready(&tr).1, "ResetSucceeded");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "other namespace never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.calls(&task).len(), 3);

    // The ledger deleted by hand: the controller carries on.
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(env.client.clone(), NS);
    assert!(
        !env.ledger().await.is_empty(),
        "the ledger holds the runs so far"
    );
    let list = cms.list(&Default::default()).await.unwrap();
    for cm in list.items {
        let name = kube::ResourceExt::name_any(&cm);
        if name.starts_with("taskreset-ledger-") {
            cms.delete(&name, &DeleteParams::default()).await.unwrap();
        }
    }
    env.create("after-ledger-loss", &Env::task(), |_| {}).await;
    env.wait_phase("after-ledger-loss", Phase::Succeeded, WAIT)
        .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_entries_expire_after_retention() {
    let env = Env::new().await;
    let ctl = env.start_controller(&["--ledger-retention", "1s"]);
    let task = Env::task();
    env.create("short-memory", &task, |_| {}).await;
    env.wait_phase("short-memory", Phase::Succeeded, WAIT).await;
    assert!(
        env.ledger()
            .await
            .keys()
            .any(|k| k.starts_with("short-memory."))
    );
    env.api()
        .delete("short-memory", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.create("short-memory", &task, |_| {}).await;
    let tr = env.wait_phase("short-memory", Phase::Succeeded, WAIT).await;
    assert_eq!(
        Env::ready(&tr).1,
        "ResetSucceeded",
        "past retention the run is new"
    );
    assert_eq!(env.calls(&task).len(), 2);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_object_gets_a_failed_status_and_an_event_and_breaks_nothing() {
    let env = Env::new().await;
    // Loosen the installed CRD so the API server admits what the controller cannot read.
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(env.client.clone());
    let mut crd = crds.get("taskresets.fdi.roma.io").await.unwrap();
    let schema = crd.spec.versions[0]
        .schema
        .as_mut()
        .unwrap()
        .open_api_v3_schema
        .as_mut()
        .unwrap();
    let spec = schema.properties.as_mut().unwrap().get_mut("spec").unwrap();
    spec.properties = None;
    spec.required = None;
    spec.x_kubernetes_preserve_unknown_fields = Some(true);
    crds.replace("taskresets.fdi.roma.io", &Default::default(), &crd)
        .await
        .unwrap();
    let ctl = env.start_controller(&[]);
    let raw: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        env.client.clone(),
        NS,
        &kube::api::ApiResource::erase::<taskreset_controller::api::TaskReset>(&()),
    );
    let broken: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
        "metadata": {"name": "broken"},
        "spec": {"projectId": 42}
    }))
    .unwrap();
    raw.create(&Default::default(), &broken).await.unwrap();
    let task = Env::task();
    env.create("healthy", &task, |_| {}).await;
    env.wait_phase("healthy", Phase::Succeeded, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let events = env.events("broken").await;
        if events
            .iter()
            .any(|(reason, note)| reason == "InvalidSpec" && note.contains("schema"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event for the malformed object: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The status says so too, for kubectl, kstatus and Argo CD; written once, not in a loop.
    let read = raw.get_status("broken").await.unwrap();
    let status = &read.data["status"];
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(status["observedGeneration"], 1, "{status}");
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["reason"], "InvalidSpec", "{status}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = raw.get_status("broken").await.unwrap();
    assert_eq!(
        later.metadata.resource_version, read.metadata.resource_version,
        "the status of a malformed object is written once per generation"
    );
    assert_eq!(env.calls(&task).len(), 1);
    assert_eq!(
        env.roma.calls().len(),
        1,
        "nothing was called for the malformed object"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_crash_before_the_call_ends_unknown_without_a_call() {
    let env = Env::new().await;
    let task = Env::task();
    let tr = env.create("crashed", &task, |_| {}).await;
    // What a controller that died after its ledger entry and claim, before the call, leaves.
    let claimed_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120);
    let mut claimed = tr.clone();
    claimed.status = Some(taskreset_controller::api::TaskResetStatus {
        observed_generation: Some(1),
        phase: Some(Phase::Resetting),
        attempts: Some(1),
        start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            claimed_at,
        )),
        last_attempt_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            claimed_at,
        )),
        ..Default::default()
    });
    env.api()
        .replace_status("crashed", &Default::default(), &claimed)
        .await
        .unwrap();
    let ctl = env.start_controller(&["--request-timeout", "5s"]);
    let tr = env.wait_phase("crashed", Phase::Unknown, WAIT).await;
    assert_eq!(Env::ready(&tr), ("False".into(), "Interrupted".into()));
    assert!(tr.status.unwrap().conditions[0].message.contains("runId"));
    settle().await;
    assert!(
        env.calls(&task).is_empty(),
        "a claim without a recorded result is never called blindly"
    );
    ctl.stop().await;
}

fn kubectl(env: &Env, args: &[&str]) -> Option<std::process::Output> {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("!!!!! SKIPPED: kubectl is not on PATH; this test needs the real kubectl !!!!!");
        return None;
    }
    Some(
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(env.kubeconfig())
            .args(args)
            .output()
            .expect("run kubectl"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_and_replace_force_work_against_the_controller() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    let manifest = env.dir.join("tr.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: fdi.roma.io/v1alpha1\nkind: TaskReset\nmetadata:\n  name: waited\n  namespace: {NS}\nspec:\n  projectId: {}\n  instanceId: {}\n  taskId: {task}\n  dateFrom: \"2021-08-27T08:25:14Z\"\n  credentialsSecretRef:\n    name: {}\n",
            support::PROJECT,
            support::INSTANCE,
            support::SECRET
        ),
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap().to_owned();
    let Some(applied) = kubectl(&env, &["apply", "-f", &manifest]) else {
        ctl.stop().await;
        return;
    };
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let waited = tokio::task::spawn_blocking({
        let kubeconfig = env.kubeconfig();
        move || {
            std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args([
                    "-n",
                    NS,
                    "wait",
                    "tr/waited",
                    "--for=condition=Ready",
                    "--timeout=20s",
                ])
                .output()
                .expect("kubectl wait")
        }
    })
    .await
    .unwrap();
    assert!(
        waited.status.success(),
        "kubectl wait: {}{}",
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(String::from_utf8_lossy(&waited.stdout).contains("condition met"));
    let tr = env.wait_phase("waited", Phase::Succeeded, WAIT).await;
    assert_eq!(tr.status.unwrap().date_from, Some(1_630_052_714_000));

    // GitOps-style replacement: delete and re-create from the same manifest.
    let replaced = kubectl(&env, &["replace", "--force", "-f", &manifest]).unwrap();
    assert!(
        replaced.status.success(),
        "{}",
        String::from_utf8_lossy(&replaced.stderr)
    );
    let tr = env.wait_phase("waited", Phase::Succeeded, WAIT).await;
    assert_eq!(Env::ready(&tr), ("True".into(), "AlreadyExecuted".into()));
    let listed = kubectl(&env, &["-n", NS, "get", "tr", "waited"]).unwrap();
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains("AlreadyExecuted") && table.contains("Succeeded"),
        "{table}"
    );
    settle().await;
    assert_eq!(
        env.calls(&task).len(),
        1,
        "replace --force made no second call"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_the_status_of_a_finished_object_makes_no_second_call() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    env.create("cleared", &task, |_| {}).await;
    env.wait_phase("cleared", Phase::Succeeded, WAIT).await;
    env.api()
        .patch_status(
            "cleared",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": null })),
        )
        .await
        .unwrap();
    let tr = env.wait_phase("cleared", Phase::Succeeded, WAIT).await;
    assert_eq!(Env::ready(&tr), ("True".into(), "AlreadyExecuted".into()));
    settle().await;
    assert_eq!(env.calls(&task).len(), 1, "the same generation ran twice");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policy_always_never_forgets_an_ambiguous_attempt() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    env.roma
        .script(&task, vec![Step::DropAfterExecute, Step::task_list_empty()]);
    env.create("always", &task, |s| s.retry_policy = RetryPolicy::Always)
        .await;
    let tr = env.wait_phase("always", Phase::Unknown, WAIT).await;
    let ready = tr
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready.reason, "OutcomeUnknown", "{ready:?}");
    assert!(
        ready.message.contains("attempt 1 may have"),
        "{}",
        ready.message
    );
    assert_eq!(env.calls(&task).len(), 2);
    env.api()
        .delete("always", &DeleteParams::default())
        .await
        .unwrap();
    env.create("always", &task, |s| s.retry_policy = RetryPolicy::Always)
        .await;
    let tr = env.wait_phase("always", Phase::Unknown, WAIT).await;
    assert_eq!(Env::ready(&tr), ("False".into(), "AlreadyExecuted".into()));
    settle().await;
    assert_eq!(
        env.calls(&task).len(),
        2,
        "the re-created object called again"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_claim_failed_blocks_nothing() {
    let env = Env::new().await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    let faults = env.kube.faults();
    faults.fail_share("update", "taskresets/status", 1.0, 409);
    env.create("abandoned", &task, |_| {}).await;
    // The claim keeps losing (409): the ledger is written only after a claim landed.
    let deadline = std::time::Instant::now() + WAIT;
    let claims_lost = || {
        let counters = env.kube.counters();
        counters
            .get("update:taskresets.fdi.roma.io/status")
            .is_some_and(|n| *n > 1)
    };
    while !claims_lost() {
        assert!(
            std::time::Instant::now() < deadline,
            "no lost claim: {:?}",
            env.kube.counters()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        env.ledger().await.is_empty(),
        "a lost claim reserved nothing"
    );
    env.api()
        .delete("abandoned", &DeleteParams::default())
        .await
        .unwrap();
    settle().await;
    faults.clear();
    env.create("abandoned", &task, |_| {}).await;
    let tr = env.wait_phase("abandoned", Phase::Succeeded, WAIT).await;
    assert_eq!(Env::ready(&tr), ("True".into(), "ResetSucceeded".into()));
    assert_eq!(env.calls(&task).len(), 1);
    ctl.stop().await;
}
