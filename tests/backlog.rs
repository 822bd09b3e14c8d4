//! A backlog: many TaskResets waiting when the controller starts. An object waiting for its
//! turn to call costs no API request and holds no reconcile slot, every object still gets its
//! one call, and a backlog in one namespace does not starve another (issue 11.5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

use std::time::Duration;

use support::Env;
use taskreset_controller::api::Phase;

const OBJECTS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_reconciled_a_bounded_number_at_a_time() {
    let env = Env::new().await;
    // One call at a time, each held for a while: the others wait for their turn.
    env.roma.set_latency(Duration::from_millis(400));
    for i in 0..OBJECTS {
        env.create(&format!("backlog-{i:02}"), &Env::task(), |_| {})
            .await;
    }
    env.kube.reset_request_log();
    let controller = env.start_controller(&["--max-concurrent-resets", "1"]);

    // While the first call is held, only the object holding the call slot has read its
    // credentials: the waiting ones read nothing.
    let reads = || env.kube.counters().get("get:secrets").copied().unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reads() == 0 {
        assert!(std::time::Instant::now() < deadline, "nothing was read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let secret_reads = reads();
    assert!(
        (1..=2).contains(&secret_reads),
        "{secret_reads} credential reads while one call is in flight"
    );

    // Speed up and let it finish: every object gets exactly one call.
    env.roma.set_latency(Duration::ZERO);
    for i in 0..OBJECTS {
        env.wait_phase(
            &format!("backlog-{i:02}"),
            Phase::Succeeded,
            Duration::from_secs(30),
        )
        .await;
    }
    assert_eq!(env.roma.calls().len(), OBJECTS);
    controller.stop().await;
}

/// 300 objects with rejected credentials in one namespace, at the default limits (5 calls/s,
/// 16 at once): an object of another namespace still succeeds within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_full_of_failing_objects_does_not_stall_another() {
    const NOISY: usize = 300;
    let env = Env::new().await;
    let noisy: kube::Api<taskreset_controller::api::TaskReset> =
        kube::Api::namespaced(env.client.clone(), "noisy");
    env.put_secret_in("noisy", support::SECRET, &[("token", "not-the-token")])
        .await;
    for i in 0..NOISY {
        let tr = taskreset_controller::api::TaskReset::new(
            &format!("bad-{i:03}"),
            Env::spec(&Env::task()),
        );
        noisy.create(&Default::default(), &tr).await.unwrap();
    }
    let controller = env.start_controller(&["--max-resets-per-second", "5"]);
    // Let the noisy namespace fill the line first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    env.create("good", &Env::task(), |_| {}).await;
    env.wait_phase("good", Phase::Succeeded, Duration::from_secs(10))
        .await;
    let waited = started.elapsed();
    let rejected = env
        .roma
        .calls()
        .iter()
        .filter(|c| c.status == Some(401))
        .count();
    println!(
        "fairness: the good object succeeded {waited:?} after its creation, behind {rejected} rejected calls of {NOISY} noisy objects"
    );
    assert!(rejected >= 5, "the noisy namespace was calling: {rejected}");
    controller.stop().await;
}
