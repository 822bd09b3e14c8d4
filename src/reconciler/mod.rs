//! The TaskReset controller: watch -> decide -> claim -> call -> record.
//!
//! [`step`] is the state machine and [`decision`] the status it writes, both pure;
//! `reconcile` carries the effects out with what [`Context`] holds; [`run`] wires the kube-rs
//! `Controller`, the limits, leader election and graceful shutdown together.

mod cache;
pub mod conditions;
mod context;
pub mod credentials;
pub mod decision;
pub mod events;
#[cfg(test)]
mod fixtures;
mod leader;
pub mod limits;
mod reconcile;
pub mod secrets;
pub mod step;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::runtime::{Controller, WatchStreamExt, controller, reflector, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::TaskReset;
use crate::telemetry::Health;
pub(crate) use context::api_error_text;
pub use context::{Context, Error, FIELD_MANAGER};
pub use credentials::SecretRef;
pub use decision::Policy;
pub use leader::{LeaderError, LeaseConfig};

/// A watch error in words, without kube's struct dump of the API's answer.
pub(crate) fn watch_error_text(error: &watcher::Error) -> String {
    match error {
        watcher::Error::InitialListFailed(e) => format!("listing failed: {}", api_error_text(e)),
        watcher::Error::WatchStartFailed(e) => {
            format!("starting the watch failed: {}", api_error_text(e))
        }
        watcher::Error::WatchFailed(e) => format!("the watch failed: {}", api_error_text(e)),
        watcher::Error::WatchError(status) => format!(
            "the watch failed: {}",
            api_error_text(&kube::Error::Api(status.clone()))
        ),
        watcher::Error::NoResourceVersion => error.to_string(),
    }
}

/// How the controller runs, beyond what [`Context`] holds.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Watch one namespace, or all.
    pub namespace: Option<String>,
    /// Leader election, if enabled.
    pub lease: Option<LeaseConfig>,
}

/// Run the controller until `shutdown` is cancelled. With leader election, reconcile only
/// while holding the lease; losing it stops reconciling (in-flight calls finish and record).
pub async fn run(
    ctx: Arc<Context>,
    config: RunConfig,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(), LeaderError> {
    let mark = |leading: bool| {
        health.set_role(leading);
        ctx.metrics.set_leader(leading);
    };
    let Some(lease) = config.lease.clone() else {
        mark(true);
        run_controller(
            ctx.for_term(shutdown.clone()),
            &config,
            Arc::clone(&health),
            shutdown.clone(),
        )
        .await;
        return Ok(());
    };
    let mut leadership = tokio::select! {
        elected = leader::elect(ctx.client.clone(), &lease) => elected?,
        () = shutdown.cancelled() => return Ok(()),
    };
    loop {
        info!(holder = %lease.holder, "standing by for the leader lease");
        mark(false);
        tokio::select! {
            () = shutdown.cancelled() => break,
            led = leadership.wait_for(true) => if !led { break },
        }
        info!(holder = %lease.holder, "leading: starting the controller");
        mark(true);
        let stop = shutdown.child_token();
        let lost = {
            let stop = stop.clone();
            let mut leadership = leadership.subscribe();
            tokio::spawn(async move {
                if leadership.wait_for(|leading| !*leading).await.is_err() {
                    warn!("the leader lease watch ended");
                }
                stop.cancel();
            })
        };
        run_controller(
            ctx.for_term(stop.clone()),
            &config,
            Arc::clone(&health),
            stop,
        )
        .await;
        lost.abort();
        health.set_synced(false);
        if shutdown.is_cancelled() {
            break;
        }
        warn!("lost the leader lease: stopped reconciling");
    }
    mark(false);
    leadership.release().await;
    Ok(())
}

async fn run_controller(
    ctx: Arc<Context>,
    config: &RunConfig,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let api: Api<kube::core::DeserializeGuard<TaskReset>> = match &config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    // The controller's own watch and cache, with each object trimmed before it is cached.
    let (store, writer) = reflector::store();
    let cache = store.clone();
    let objects = watcher(api, watcher::Config::default().any_semantic())
        .modify(cache::trim)
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(objects, store.clone())
        .with_config(controller::Config::default().concurrency(ctx.limits.reconciles()));
    let ready = tokio::spawn({
        let health = Arc::clone(&health);
        async move {
            // The store's readiness wakes only one waiter, and the controller itself waits on
            // it; polling again with a timeout sees the memoized value once it is set.
            loop {
                match tokio::time::timeout(Duration::from_millis(50), store.wait_until_ready())
                    .await
                {
                    Ok(Ok(())) => {
                        health.set_synced(true);
                        break;
                    }
                    Ok(Err(_)) => break,
                    Err(_) => {}
                }
            }
        }
    });
    let stopped = stop.clone();
    let running = controller
        .graceful_shutdown_on(async move { stopped.cancelled().await })
        .run(timed_reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                match error {
                    // Logged once, with the object, by `error_policy`.
                    kube::runtime::controller::Error::ObjectNotFound(_)
                    | kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    kube::runtime::controller::Error::QueueError(error) => {
                        warn!(error = %watch_error_text(&error), "watching TaskResets failed; retrying");
                    }
                    other => warn!(error = %other, "controller stream error"),
                }
            }
        });
    // kube-runtime starts reconciles only once the first list has filled the cache, and its
    // graceful shutdown waits for that: stopped before it (the API server failing the list),
    // nothing can be in flight, so stop at once instead of waiting forever.
    let never_synced = async {
        stop.cancelled().await;
        let synced = tokio::time::timeout(Duration::ZERO, cache.wait_until_ready()).await;
        if matches!(synced, Ok(Ok(()))) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = running => {}
        () = never_synced => info!("stopped before the first list of TaskResets completed"),
    }
    ready.abort();
}

/// [`reconcile::reconcile`], timed into `taskreset_reconcile_duration_seconds` by its result.
async fn timed_reconcile(
    obj: Arc<kube::core::DeserializeGuard<TaskReset>>,
    ctx: Arc<Context>,
) -> Result<controller::Action, Error> {
    let started = std::time::Instant::now();
    let metrics = Arc::clone(&ctx.metrics);
    let result = reconcile::reconcile(obj, ctx).await;
    metrics.reconcile_finished(reconcile_result(&result), started.elapsed());
    result
}

/// The `result` label of a reconcile's outcome (one of [`crate::telemetry::RECONCILE_RESULTS`]).
fn reconcile_result(result: &Result<controller::Action, Error>) -> &'static str {
    match result {
        Ok(action) if *action == controller::Action::await_change() => "done",
        Ok(_) => "requeued",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    #[test]
    fn reconcile_results_are_labelled() {
        use controller::Action;
        assert_eq!(reconcile_result(&Ok(Action::await_change())), "done");
        assert_eq!(
            reconcile_result(&Ok(Action::requeue(Duration::from_secs(1)))),
            "requeued"
        );
        let error = Error::Ledger(crate::ledger::LedgerError::Contended {
            namespace: "data".into(),
            configmap: "taskreset-ledger-0".into(),
        });
        assert_eq!(reconcile_result(&Err(error)), "error");
        for result in ["done", "requeued", "error"] {
            assert!(crate::telemetry::RECONCILE_RESULTS.contains(&result));
        }
    }

    /// Issue 15.3/15.10: API errors read in words, not as kube's `Status { .. }` dump.
    #[test]
    fn api_errors_read_in_words() {
        let status = || Box::new(Status::failure("etcd timed out", "InternalError").with_code(500));
        let kube_error = || kube::Error::Api(status());
        assert!(
            kube_error().to_string().contains("Status {"),
            "kube's own text"
        );
        let error = Error::Kube {
            context: "writing the status",
            source: kube_error(),
        };
        assert_eq!(
            error.to_string(),
            "writing the status: HTTP 500 InternalError: etcd timed out"
        );
        for (error, text) in [
            (
                watcher::Error::InitialListFailed(kube_error()),
                "listing failed: HTTP 500 InternalError: etcd timed out",
            ),
            (
                watcher::Error::WatchError(status()),
                "the watch failed: HTTP 500 InternalError: etcd timed out",
            ),
        ] {
            assert_eq!(watch_error_text(&error), text);
        }
        let ledger = crate::ledger::LedgerError::Api {
            namespace: "data".into(),
            configmap: "taskreset-ledger-0".into(),
            source: kube_error(),
        };
        assert_eq!(
            ledger.to_string(),
            "execution ledger data/taskreset-ledger-0: HTTP 500 InternalError: etcd timed out"
        );
    }
}
