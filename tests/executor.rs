//! The executor's API calls, in order, per path of the state machine (as kube-rs
//! controller-rs's `ApiServerVerifier` scenarios do): what the controller asks the API server
//! and ROMA, one object at a time, read from the simulators' request logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

use std::time::{Duration, SystemTime};

use kube::api::DeleteParams;
use support::{Env, SECRET};
use taskreset_controller::api::{Phase, TaskReset};
use taskreset_simulators::roma::Step;

const WAIT: Duration = Duration::from_secs(20);

/// One step of the trail: what was asked, and the resourceVersion a status write was
/// preconditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asked {
    what: String,
    precondition: String,
}

/// The requests made for the object `name` (its status, its Secret, the ledger, its events)
/// and ROMA's calls for `task`, merged in the order they arrived. Reads of the watch, leases
/// and discovery are left out.
fn trail(env: &Env, name: &str, task: &str) -> Vec<Asked> {
    let mut asked: Vec<(SystemTime, Asked)> = Vec::new();
    for r in env.kube.request_log() {
        let what = match (r.resource.as_str(), r.subresource.as_str()) {
            ("taskresets.fdi.roma.io", "status") if r.name == name => format!("status {}", r.verb),
            ("secrets", "") if r.name == SECRET => format!("secret {}", r.verb),
            ("configmaps", "") if r.name.starts_with("taskreset-ledger-") => "ledger".to_owned(),
            ("events.events.k8s.io" | "events", "") if r.verb != "list" => "event".to_owned(),
            _ => continue,
        };
        // A ledger shard not written yet is read as a 404, then created: one step.
        let what = if r.status >= 400 && !(what == "ledger" && r.status == 404) {
            format!("{what} {}", r.status)
        } else {
            what
        };
        let at: jiff::Timestamp = r.time.parse().expect("record time");
        let precondition = r.precondition.clone();
        asked.push((SystemTime::from(at), Asked { what, precondition }));
    }
    for call in env.calls(task) {
        let what = "call".to_owned();
        let precondition = String::new();
        asked.push((call.at, Asked { what, precondition }));
    }
    asked.sort_by_key(|(at, _)| *at);
    // Consecutive ledger requests (a read, then a write; retries of a failure) are one step.
    let mut merged: Vec<Asked> = Vec::new();
    for (_, step) in asked {
        let ledger = step.what.starts_with("ledger");
        if ledger && merged.last().is_some_and(|l| l.what == step.what) {
            continue;
        }
        merged.push(step);
    }
    merged
}

fn names(trail: &[Asked]) -> Vec<&str> {
    trail.iter().map(|a| a.what.as_str()).collect()
}

/// Both simulators, requests spaced out so their order is plain, and a controller.
async fn env() -> (Env, support::Running) {
    let env = Env::new().await;
    env.kube.faults().latency(Duration::from_millis(15));
    env.kube.reset_request_log();
    let ctl = env.start_controller(&[]);
    (env, ctl)
}

/// A task whose call takes a while, so what comes after it is plainly after it.
fn slow_task(env: &Env) -> String {
    let task = Env::task();
    let slow = Step::Delay(Duration::from_millis(200), Box::new(Step::Succeed));
    env.roma.script(&task, vec![slow]);
    task
}

fn rv(tr: &TaskReset) -> String {
    tr.metadata.resource_version.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_attempt_reads_claims_reserves_calls_records_completes_and_publishes() {
    let (env, ctl) = env().await;
    let task = slow_task(&env);
    let created = env.create("ordered", &task, |_| {}).await;
    env.wait_phase("ordered", Phase::Succeeded, WAIT).await;
    support::settle().await;
    let trail = trail(&env, "ordered", &task);
    let expected = [
        "secret get",
        "status update",
        "ledger",
        "call",
        "status update",
        "ledger",
        "event",
    ];
    assert_eq!(names(&trail), expected, "{trail:#?}");
    assert_eq!(
        trail[1].precondition,
        rv(&created),
        "the claim is preconditioned on the object it decided on"
    );
    assert!(
        !trail[4].precondition.is_empty() && trail[4].precondition != trail[1].precondition,
        "the result is written on top of the claim: {trail:#?}"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_reserves_nothing_and_calls_nothing_until_a_claim_lands() {
    let (env, ctl) = env().await;
    env.kube
        .faults()
        .fail_share("update", "taskresets", 1.0, 409);
    let task = slow_task(&env);
    env.create("raced", &task, |_| {}).await;
    let deadline = std::time::Instant::now() + WAIT;
    while !names(&trail(&env, "raced", &task)).contains(&"status update 409") {
        assert!(std::time::Instant::now() < deadline, "no claim was tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.kube.faults().clear();
    env.wait_phase("raced", Phase::Succeeded, WAIT).await;
    support::settle().await;
    let trail = trail(&env, "raced", &task);
    let steps = names(&trail);
    let landed = steps.iter().position(|s| *s == "status update").unwrap();
    assert!(
        steps[..landed]
            .iter()
            .all(|s| *s == "secret get" || *s == "status update 409"),
        "only reads and lost claims before the claim that landed: {steps:?}"
    );
    assert_eq!(
        steps[landed..],
        [
            "status update",
            "ledger",
            "call",
            "status update",
            "ledger",
            "event"
        ]
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_cannot_be_written_gets_the_claim_withdrawn_and_no_call() {
    let (env, ctl) = env().await;
    env.kube.faults().fail_share("*", "configmaps", 1.0, 500);
    let task = slow_task(&env);
    let created = env.create("unledgered", &task, |_| {}).await;
    let deadline = std::time::Instant::now() + WAIT;
    let trail = loop {
        let trail = trail(&env, "unledgered", &task);
        if names(&trail)
            .iter()
            .filter(|s| **s == "status update")
            .count()
            >= 2
        {
            break trail;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no withdrawal: {trail:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        names(&trail)[..4],
        ["secret get", "status update", "ledger 500", "status update"],
        "{trail:#?}"
    );
    assert!(
        env.calls(&task).is_empty(),
        "no call without a ledger entry"
    );
    // The withdrawal starts the next reconcile at once: it waits out the ledger's pause.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = self::trail(&env, "unledgered", &task);
    let later = names(&later);
    assert_eq!(
        later.iter().filter(|s| **s == "status update").count(),
        2,
        "{later:?}"
    );
    let tr = env.api().get("unledgered").await.unwrap();
    assert_eq!(
        tr.status.as_ref().and_then(|s| s.phase),
        None,
        "the claim was taken back: {:#?} {trail:#?}",
        tr.status
    );
    assert_ne!(rv(&tr), rv(&created));
    env.kube.faults().clear();
    env.wait_phase("unledgered", Phase::Succeeded, WAIT).await;
    assert_eq!(env.calls(&task).len(), 1);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_already_executed_is_claimed_and_recorded_without_a_call() {
    let (env, ctl) = env().await;
    let task = slow_task(&env);
    env.create("again", &task, |_| {}).await;
    env.wait_phase("again", Phase::Succeeded, WAIT).await;
    env.api()
        .delete("again", &DeleteParams::default())
        .await
        .unwrap();
    support::settle().await;
    env.kube.reset_request_log();
    env.create("again", &task, |_| {}).await;
    let tr = env.wait_phase("again", Phase::Succeeded, WAIT).await;
    assert_eq!(Env::ready(&tr).1, "AlreadyExecuted");
    support::settle().await;
    let trail = trail(&env, "again", &task);
    let steps: Vec<&str> = names(&trail).into_iter().filter(|s| *s != "call").collect();
    // The Secret was read for the first object a moment ago: the cache still has it.
    assert_eq!(
        steps,
        ["status update", "ledger", "status update", "event"],
        "{trail:#?}"
    );
    assert_eq!(env.calls(&task).len(), 1, "the first object's call only");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_decided_without_a_call_is_one_write_and_its_event() {
    let (env, ctl) = env().await;
    let task = Env::task();
    env.create("parked", &task, |spec| spec.suspend = true)
        .await;
    env.wait_phase("parked", Phase::Suspended, WAIT).await;
    support::settle().await;
    let trail = trail(&env, "parked", &task);
    assert_eq!(
        names(&trail),
        ["status update", "event"],
        "no Secret read, no ledger: {trail:#?}"
    );
    assert!(!trail[0].precondition.is_empty());
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_sharing_a_secret_read_it_once_and_a_rejected_one_is_read_afresh() {
    let (env, ctl) = env().await;
    for i in 0..5 {
        env.create(&format!("shared-{i}"), &Env::task(), |_| {})
            .await;
    }
    for i in 0..5 {
        env.wait_phase(&format!("shared-{i}"), Phase::Succeeded, WAIT)
            .await;
    }
    let reads = |env: &Env| {
        env.kube
            .request_log()
            .iter()
            .filter(|r| r.resource == "secrets" && r.verb == "get")
            .count()
    };
    assert_eq!(reads(&env), 1, "five resets, one read of their Secret");
    // The gateway refuses the token: the next look reads the Secret again, past the cache.
    let task = Env::task();
    env.roma.script(&task, vec![Step::Unauthorized]);
    env.create("refused", &task, |_| {}).await;
    env.wait_phase("refused", Phase::Pending, WAIT).await;
    env.patch_spec("refused", serde_json::json!({"runId": "again"}))
        .await;
    env.wait_phase("refused", Phase::Succeeded, WAIT).await;
    assert_eq!(
        reads(&env),
        2,
        "read afresh after the 401, not from the cache"
    );
    ctl.stop().await;
}
