//! The end-to-end scenarios on a real kube-apiserver and etcd (issue 12, point 3), with the
//! real controller binary (as its ServiceAccount, with exactly the RBAC of `deploy/`), real
//! kubectl and the ROMA simulator counting calls per task: a lost claim race, `kubectl replace
//! --force`, suspend, notAfter, a Secret created late, `kubectl wait`, a SIGKILL mid-call, a
//! leader killed, a SIGTERM hand-over (the replicas on clusters of their own, on the Lease
//! `deploy/` grants).
//!
//! Skipped, loudly, without Go (failing instead when `CI` is set); see tests/real_support.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod real_support;

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use real_support::e2e::{self, SETTLE, Scenario, manifest, ready_reason, spec, task};
use real_support::proxy::{Fault, Proxy, Rule};
use taskreset_controller::api::{Phase, SecretReference};
use taskreset_simulators::roma::Step;

/// A claim that loses the race to another writer (here a label edit that lands while the
/// claim is on its way) gets kube-apiserver's own 409: no call for it; the next claim calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_race_makes_no_call() {
    let Some(s) = Scenario::new("claim-race").await else {
        return;
    };
    let proxy = Proxy::start(s.env.kubeconfig("controller")).await;
    let hold = Rule::new(Fault::Hold(Duration::from_secs(2)))
        .method("PUT")
        .path("/taskresets/race/status")
        .body("\"Resetting\"")
        .times(1);
    proxy.add(hold);
    let kubeconfig = proxy.kubeconfig(s.env.kubeconfig("controller"), &s.env.dir);
    let ctl = s.controller_with("controller", &kubeconfig, &[]);
    let task = task();
    s.create("race", spec(&task, "r1")).await;
    let deadline = Instant::now() + e2e::WAIT;
    while proxy.matched() == 0 {
        assert!(Instant::now() < deadline, "no claim came:\n{}", ctl.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The claim is held: another writer moves the resourceVersion on.
    let label = Patch::Merge(serde_json::json!({"metadata": {"labels": {"moved": "yes"}}}));
    s.api
        .patch("race", &PatchParams::default(), &label)
        .await
        .unwrap();
    let done = s.wait_phase("race", Phase::Succeeded, &[&ctl]).await;
    assert_eq!(ready_reason(&done), "ResetSucceeded");
    let lost: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .map(|r| r.status)
        .collect();
    assert_eq!(
        lost,
        [Some(409)],
        "the held claim met the server's conflict"
    );
    assert!(ctl.log().contains("claim lost to a concurrent writer"));
    // Only the claim that landed counts as an attempt, and made the one call.
    assert_eq!(done.status.unwrap().attempts, Some(1));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(s.calls(&task), 1);
}

/// `kubectl replace --force` deletes and re-creates the object (a new uid, generation 1):
/// the ledger knows the run, so it ends AlreadyExecuted with no second call (docs/status.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_force_is_already_executed_without_a_call() {
    let Some(s) = Scenario::new("replace-force").await else {
        return;
    };
    let ctl = s.controller("controller", &[]);
    let task = task();
    let file = s.env.write("replay.yaml", &manifest("replay", &task, ""));
    s.env.ok(&["apply", "-f", &file]).await;
    let first = s.wait_phase("replay", Phase::Succeeded, &[&ctl]).await;
    assert_eq!(ready_reason(&first), "ResetSucceeded");
    let out = s.env.ok(&["replace", "--force", "-f", &file]).await;
    assert!(
        out.contains("taskreset.fdi.roma.io/replay replaced"),
        "{out}"
    );
    let again = s.wait_phase("replay", Phase::Succeeded, &[&ctl]).await;
    assert_ne!(again.metadata.uid, first.metadata.uid, "a new object");
    assert_eq!(again.metadata.generation, Some(1));
    assert_eq!(ready_reason(&again), "AlreadyExecuted");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(s.calls(&task), 1, "replace --force made no second call");
}

/// `spec.suspend: true` parks the generation without a call; setting it back to false is a
/// new generation, which calls once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_makes_no_call_until_resumed_then_one() {
    let Some(s) = Scenario::new("suspend").await else {
        return;
    };
    let ctl = s.controller("controller", &[]);
    let task = task();
    let file = s.env.write(
        "paused.yaml",
        &manifest("paused", &task, "  suspend: true\n"),
    );
    s.env.ok(&["apply", "-f", &file]).await;
    let parked = s.wait_phase("paused", Phase::Suspended, &[&ctl]).await;
    assert_eq!(ready_reason(&parked), "Suspended");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(s.calls(&task), 0, "no call while suspended");
    let resume = [
        "patch",
        "tr",
        "paused",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ];
    s.env.ok(&resume).await;
    let done = s.wait_phase("paused", Phase::Succeeded, &[&ctl]).await;
    assert_eq!(ready_reason(&done), "ResetSucceeded");
    assert_eq!(done.status.unwrap().observed_generation, Some(2));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(s.calls(&task), 1);
}

/// A `notAfter` already passed: Failed, reason Expired, and never a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_not_after_expires_without_a_call() {
    let Some(s) = Scenario::new("not-after").await else {
        return;
    };
    let ctl = s.controller("controller", &[]);
    let task = task();
    let stale = manifest("stale", &task, "  notAfter: \"2021-01-01T00:00:00Z\"\n");
    s.env
        .ok(&["apply", "-f", &s.env.write("stale.yaml", &stale)])
        .await;
    let failed = s.wait_phase("stale", Phase::Failed, &[&ctl]).await;
    assert_eq!(ready_reason(&failed), "Expired");
    assert_eq!(failed.status.unwrap().attempts.unwrap_or(0), 0);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(s.calls(&task), 0);
}

/// A TaskReset naming a Secret that does not exist yet waits (Pending, CredentialsNotFound)
/// without a call; once the Secret is created it calls once, with no spec change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_created_later_is_picked_up_and_called_with_once() {
    let Some(s) = Scenario::new("late-secret").await else {
        return;
    };
    let ctl = s.controller("controller", &[]);
    let task = task();
    let mut late = spec(&task, "r1");
    late.credentials_secret_ref = Some(SecretReference {
        name: "arrives-later".into(),
    });
    s.create("waiting", late).await;
    let pending = s.wait_phase("waiting", Phase::Pending, &[&ctl]).await;
    assert_eq!(ready_reason(&pending), "CredentialsNotFound");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(s.calls(&task), 0);
    s.env
        .secret("arrives-later", &[("token", e2e::TOKEN)])
        .await;
    let done = s.wait_phase("waiting", Phase::Succeeded, &[&ctl]).await;
    assert_eq!(ready_reason(&done), "ResetSucceeded");
    assert_eq!(done.metadata.generation, Some(1), "no spec change needed");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(s.calls(&task), 1);
}

/// `kubectl wait --for=condition=Ready` times out while the call is in flight and returns
/// as soon as the reset succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_for_ready_returns_when_the_reset_succeeded() {
    let Some(s) = Scenario::new("kubectl-wait").await else {
        return;
    };
    let ctl = s.controller("controller", &[]);
    let task = task();
    s.roma.script(
        &task,
        vec![Step::delay(Duration::from_secs(6), Step::Succeed)],
    );
    s.create("awaited", spec(&task, "r1")).await;
    let wait = |timeout: &'static str| {
        [
            "wait",
            "tr/awaited",
            "--for=condition=Ready",
            "--timeout",
            timeout,
        ]
    };
    let early = s.env.kubectl(&wait("2s")).await;
    assert!(!early.status.success(), "Ready before the call answered");
    let out = s.env.ok(&wait("60s")).await;
    assert_eq!(out.trim(), "taskreset.fdi.roma.io/awaited condition met");
    let tr = s.api.get("awaited").await.unwrap();
    assert_eq!(
        tr.current_phase(),
        Some(Phase::Succeeded),
        "{:?}",
        ctl.log()
    );
    assert_eq!(s.calls(&task), 1);
}

/// A controller SIGKILLed while its call is on the wire: the next controller finds the claim,
/// waits out the request timeout plus the margin and declares it Unknown/Interrupted; the
/// reset (which the simulator executed after all) is never called again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_call_ends_interrupted_with_no_second_call() {
    let Some(s) = Scenario::new("sigkill").await else {
        return;
    };
    let task = task();
    // Held past the kill, inside the request timeout of a controller left alive (3 s: an
    // interrupted claim expires 3 s plus the 2 s margin after it was made).
    let timeout = ["--request-timeout", "3s"];
    s.roma.script(
        &task,
        vec![Step::delay(Duration::from_millis(2500), Step::Succeed)],
    );
    let mut first = s.controller("first", &timeout);
    s.create("cut", spec(&task, "r1")).await;
    let deadline = Instant::now() + e2e::WAIT;
    while !first.log().contains("calling reset") {
        assert!(Instant::now() < deadline, "no call:\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the request reach the simulator, then kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill();
    let claimed = s.api.get("cut").await.unwrap();
    assert_eq!(claimed.current_phase(), Some(Phase::Resetting));
    let second = s.controller("second", &timeout);
    let verdict = s.wait_phase("cut", Phase::Unknown, &[&second]).await;
    assert_eq!(ready_reason(&verdict), "Interrupted");
    let status = verdict.status.unwrap();
    assert_eq!(status.attempts, Some(1));
    // The simulator answered the killed call (it had it): one executed call, and no other.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls: Vec<_> = s
        .roma
        .calls()
        .into_iter()
        .filter(|c| c.task_id == task)
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].executed);
    assert!(s.event_reasons().await.iter().any(|r| r == "Interrupted"));
    assert!(!second.log().contains("calling reset"), "{}", second.log());
}

/// Two replicas under Lease leader election: the leader is SIGKILLed, the standby takes the
/// Lease once it expires and carries on; one call per generation throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_each_generation_calls_once() {
    let Some(s) = Scenario::private("leader-kill").await else {
        return;
    };
    let mut replicas = [s.replica("a", "3s"), s.replica("b", "3s")];
    let (leader, _) = s.new_holder(None).await;
    let task = task();
    s.create("led", spec(&task, "r1")).await;
    s.wait_phase("led", Phase::Succeeded, &[&replicas[0], &replicas[1]])
        .await;
    let index = usize::from(leader == "b");
    replicas[index].kill();
    let (survivor, after) = s.new_holder(Some(&leader)).await;
    assert_ne!(survivor, leader);
    eprintln!("takeover {after:?} after the leader's SIGKILL (lease 3 s)");
    assert!(after < Duration::from_secs(15), "took {after:?}");
    let other = task.clone() + "0";
    s.create("after", spec(&other, "r1")).await;
    s.patch_spec("led", serde_json::json!({"runId": "r2"}))
        .await;
    let alive = &replicas[1 - index];
    let led = s.wait_phase("led", Phase::Succeeded, &[alive]).await;
    assert_eq!(led.metadata.generation, Some(2));
    assert_eq!(ready_reason(&led), "ResetSucceeded");
    s.wait_phase("after", Phase::Succeeded, &[alive]).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        (s.calls(&task), s.calls(&other)),
        (2, 1),
        "one per generation"
    );
    assert_eq!(s.lease_holder().await.as_deref(), Some(survivor.as_str()));
}

/// SIGTERM of the leader: it exits cleanly and releases the Lease, and the standby takes it
/// at once, long before the Lease (15 s) would have expired, and resets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_lease_over_at_once() {
    let Some(s) = Scenario::private("handover").await else {
        return;
    };
    let mut replicas = [s.replica("a", "15s"), s.replica("b", "15s")];
    let (leader, _) = s.new_holder(None).await;
    let task = task();
    s.create("before", spec(&task, "r1")).await;
    s.wait_phase("before", Phase::Succeeded, &[&replicas[0], &replicas[1]])
        .await;
    let index = usize::from(leader == "b");
    let stopped_at = Instant::now();
    let status = replicas[index].terminate().await;
    assert!(status.success(), "{status}:\n{}", replicas[index].log());
    assert!(replicas[index].log().contains("released the leader lease"));
    let (survivor, _) = s.new_holder(Some(&leader)).await;
    let handover = stopped_at.elapsed();
    eprintln!("hand-over {handover:?} after SIGTERM (lease 15 s)");
    assert!(handover < Duration::from_secs(5), "took {handover:?}");
    let other = task.clone() + "0";
    s.create("after", spec(&other, "r1")).await;
    let alive = &replicas[1 - index];
    s.wait_phase("after", Phase::Succeeded, &[alive]).await;
    assert!(alive.log().contains("calling reset"), "{survivor} resets");
    tokio::time::sleep(SETTLE).await;
    assert_eq!((s.calls(&task), s.calls(&other)), (1, 1));
}

/// A claim that lands but whose answer is lost (the connection closes after kube-apiserver
/// wrote it): the controller cannot tell its claim from another replica's, so it calls
/// nothing; once the claim expires it reads Unknown/Interrupted (DESIGN 3.6), with no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_expires_interrupted_without_a_call() {
    let Some(s) = Scenario::new("claim-lost").await else {
        return;
    };
    let proxy = Proxy::start(s.env.kubeconfig("controller")).await;
    let lose = Rule::new(Fault::Lose)
        .method("PUT")
        .path("/taskresets/lost/status")
        .body("\"Resetting\"")
        .times(1);
    proxy.add(lose);
    let kubeconfig = proxy.kubeconfig(s.env.kubeconfig("controller"), &s.env.dir);
    let timeout = ["--request-timeout", "3s"];
    let ctl = s.controller_with("controller", &kubeconfig, &timeout);
    let task = task();
    s.create("lost", spec(&task, "r1")).await;
    let verdict = s.wait_phase("lost", Phase::Unknown, &[&ctl]).await;
    assert_eq!(ready_reason(&verdict), "Interrupted");
    assert_eq!(verdict.status.unwrap().attempts, Some(1));
    let lost: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.fault == Some(Fault::Lose))
        .map(|r| r.status)
        .collect();
    assert_eq!(lost, [Some(200)], "the server wrote the claim");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        s.calls(&task),
        0,
        "nothing was called for a claim it could not own"
    );
    assert!(!ctl.log().contains("calling reset"));
}

/// The ledger reservation lands but its answer is lost, and the writes after it fail: the
/// controller must not leave its own reservation behind as a run that "may have executed".
/// Nothing was called, so the generation still makes its one call and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_answer_is_lost_still_makes_its_one_call() {
    let Some(s) = Scenario::new("reserve-lost").await else {
        return;
    };
    let proxy = Proxy::start(s.env.kubeconfig("controller")).await;
    // The first ledger write (creating the shard) lands unanswered; the 4 re-writes the ledger
    // allows after a transient failure fail too.
    proxy.add(
        Rule::new(Fault::Lose)
            .method("POST")
            .path("/configmaps")
            .times(1),
    );
    let failing = Rule::new(Fault::Status(500))
        .method("PUT")
        .path("/configmaps/");
    proxy.add(failing.times(4));
    let kubeconfig = proxy.kubeconfig(s.env.kubeconfig("controller"), &s.env.dir);
    let ctl = s.controller_with("controller", &kubeconfig, &[]);
    let task = task();
    s.create("reserved", spec(&task, "r1")).await;
    let deadline = Instant::now() + e2e::WAIT;
    let tr = loop {
        let tr = s.api.get("reserved").await.unwrap();
        if tr.current_phase().is_some_and(Phase::is_terminal) {
            break tr;
        }
        assert!(
            Instant::now() < deadline,
            "not terminal: {:?}\n{}",
            tr.status,
            ctl.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seen = proxy.seen();
    let used = seen.iter().filter(|r| r.fault.is_some()).count();
    assert_eq!(used, 5, "{seen:?}");
    let status = tr.status.clone().unwrap();
    assert_eq!(
        (status.phase, ready_reason(&tr).as_str(), s.calls(&task)),
        (Some(Phase::Succeeded), "ResetSucceeded", 1),
        "{status:?}\n{}",
        ctl.log()
    );
}
