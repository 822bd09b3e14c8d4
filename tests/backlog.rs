//! A backlog: many TaskResets waiting when the controller starts. Reconciles run a bounded
//! number at a time, so a backlog never turns into thousands of API requests at once, and
//! every object still gets its one call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::Env;
use taskreset_controller::api::Phase;

const OBJECTS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_reconciled_a_bounded_number_at_a_time() {
    let env = Env::new().await;
    // One call at a time, each held for a while: reconciles pile up behind the call slot.
    env.roma.set_latency(Duration::from_millis(400));
    for i in 0..OBJECTS {
        env.create(&format!("backlog-{i:02}"), &Env::task(), |_| {})
            .await;
    }
    env.kube.reset_request_log();
    let controller = env.start_controller(&["--max-concurrent-resets", "1"]);

    // While the first call is held, only the reconciles allowed to run have read their
    // credentials (2 x 1 slot + 16 = 18), not the whole backlog.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let secret_reads = env.kube.counters().get("get:secrets").copied().unwrap_or(0);
    assert!(
        (1..=18).contains(&secret_reads),
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
