//! The TaskReset controller: watch -> decide -> claim -> call -> record.
//!
//! [`decision`] is pure; [`reconcile`] carries its decisions out; [`run`] wires the kube-rs
//! `Controller`, the limits, leader election and graceful shutdown together.

mod cache;
pub mod conditions;
pub mod credentials;
pub mod decision;
pub mod events;
#[cfg(test)]
mod fixtures;
mod leader;
pub mod limits;
mod reconcile;
pub mod step;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{Controller, WatchStreamExt, controller, reflector, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::TaskReset;
use crate::roma::{EndpointPolicy, RomaClient};
use crate::telemetry::{Health, Metrics};
pub use credentials::SecretRef;
pub use decision::Policy;
pub use leader::{LeaderError, LeaseConfig};
use limits::Limits;

/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "taskreset-controller";

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The execution ledger could not be read or written (no call was made).
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// A Kubernetes API call failed.
    #[error("{context}: {}", api_error_text(source))]
    Kube {
        /// What the controller was doing.
        context: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// A Kubernetes API error on one line in words: `HTTP 500 InternalError: etcd timed out`,
/// not kube's `ApiError: ... (Status { ... })` dump of the whole struct.
pub(crate) fn api_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.message.is_empty() => {
            format!("HTTP {} {}", status.code, status.reason)
        }
        kube::Error::Api(status) => {
            format!("HTTP {} {}: {}", status.code, status.reason, status.message)
        }
        other => other.to_string(),
    }
}

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

/// How logs name a TaskReset: `namespace/name` (one field: the span's own `name` key must
/// not be repeated in JSON lines).
pub(crate) fn object_name(meta: &kube::api::ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("");
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

impl Error {
    /// A short, bounded label for the `reason` of the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Ledger(_) => "ledger",
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 403 => "forbidden",
                kube::Error::Api(_) => "api_error",
                _ => "api_unreachable",
            },
        }
    }
}

/// Everything a reconcile needs, shared by all of them. Cloned once per leadership term (the
/// clones share the limits, caches and connections) with that term's [`Context::stop`].
#[derive(Clone)]
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The ROMA client (shares connections and cached IAM tokens across reconciles).
    pub roma: RomaClient,
    /// Where calls may go.
    pub endpoints: EndpointPolicy,
    /// The execution ledger.
    pub ledger: crate::ledger::Ledger,
    /// Attempts, backoffs, claim expiry.
    pub policy: Policy,
    /// The Secret used when a TaskReset names none.
    pub default_secret: Option<SecretRef>,
    /// Concurrency, per-target and rate limits.
    pub limits: Arc<Limits>,
    /// Publishes events.k8s.io events.
    pub recorder: events::Events,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled on the stop signal or the loss of the lease: from then on nothing new is
    /// reserved, claimed or called; only calls already on the wire finish and record.
    pub stop: CancellationToken,
}

impl Context {
    /// This context for a term that ends when `stop` is cancelled.
    fn for_term(&self, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            stop,
            ..self.clone()
        })
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
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
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

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

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
