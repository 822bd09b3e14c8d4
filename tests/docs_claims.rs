//! Claims of docs/status.md and README.md, run against the controller and the simulators (issue
//! 15, "docs that match the behaviour"): fixing the controller's flags does not re-run an
//! `InvalidSpec` generation (a new `spec.runId` does); re-creating a rejected run calls again;
//! `AlreadyExecuted` carries `Unknown` when the recorded run may have executed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

use std::time::Duration;

use kube::api::DeleteParams;
use support::{Env, settle};
use taskreset_controller::api::Phase;
use taskreset_simulators::roma::Step;

const WAIT: Duration = Duration::from_secs(20);

/// Delete `name` and wait until it is gone.
async fn delete(env: &Env, name: &str) {
    env.api()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..200 {
        if env.api().get_opt(name).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} was not deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixing_the_flags_does_not_rerun_an_invalid_spec_a_new_run_id_does() {
    let env = Env::new().await;
    // The simulator under a host name the allow-list does not name.
    let other = env.roma.url().replace("127.0.0.1", "localhost");
    let controller = env.start_controller(&[]);
    let task = Env::task();
    env.create("refused", &task, |s| s.endpoint = Some(other.clone()))
        .await;
    let tr = env.wait_phase("refused", Phase::Failed, WAIT).await;
    assert_eq!(Env::ready(&tr).1, "InvalidSpec");
    controller.stop().await;

    // The operator widens --allowed-endpoints: the generation stays final, nothing is called.
    let allowed = format!("{},{other}", env.roma.url());
    let controller = env.start_controller(&["--allowed-endpoints", &allowed]);
    settle().await;
    let tr = env.wait_phase("refused", Phase::Failed, WAIT).await;
    assert_eq!(Env::ready(&tr).1, "InvalidSpec");
    assert!(env.calls(&task).is_empty());

    // A new runId is a new generation: it runs with the new flags.
    env.patch_spec("refused", serde_json::json!({"runId": "after-the-fix"}))
        .await;
    env.wait_phase("refused", Phase::Succeeded, WAIT).await;
    assert_eq!(env.calls(&task).len(), 1);
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_creating_a_rejected_run_calls_again_an_unknown_one_does_not() {
    let env = Env::new().await;
    let controller = env.start_controller(&[]);

    // Rejected (400): nothing executed, so the same run re-created is called again.
    let rejected = Env::task();
    env.roma.script(&rejected, vec![Step::task_list_empty()]);
    env.create("rejected", &rejected, |_| {}).await;
    let tr = env.wait_phase("rejected", Phase::Failed, WAIT).await;
    assert_eq!(Env::ready(&tr).1, "ResetFailed");
    delete(&env, "rejected").await;
    env.create("rejected", &rejected, |_| {}).await;
    let tr = env.wait_phase("rejected", Phase::Succeeded, WAIT).await;
    assert_eq!(Env::ready(&tr), ("True".into(), "ResetSucceeded".into()));
    assert_eq!(env.calls(&rejected).len(), 2);

    // Unknown (executed, no answer): re-created, it is AlreadyExecuted and stays Unknown.
    let dropped = Env::task();
    env.roma.script(&dropped, vec![Step::DropAfterExecute]);
    env.create("dropped", &dropped, |_| {}).await;
    let tr = env.wait_phase("dropped", Phase::Unknown, WAIT).await;
    assert_eq!(Env::ready(&tr).1, "OutcomeUnknown");
    delete(&env, "dropped").await;
    env.create("dropped", &dropped, |_| {}).await;
    let tr = env.wait_phase("dropped", Phase::Unknown, WAIT).await;
    assert_eq!(Env::ready(&tr), ("False".into(), "AlreadyExecuted".into()));
    settle().await;
    assert_eq!(env.calls(&dropped).len(), 1);
    controller.stop().await;
}
