//! Leader election on a coordination.k8s.io Lease (kube-lease-manager).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Which Lease to hold, as whom, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub holder: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

/// Leader election could not start.
#[derive(Debug, thiserror::Error)]
#[error("leader election on Lease {namespace}/{name}: {source}")]
pub struct LeaderError {
    namespace: String,
    name: String,
    #[source]
    source: LeaseManagerError,
}

/// This replica's view of the lease: `true` while it leads.
pub struct Leadership {
    receiver: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<(), LeaseManagerError>>,
}

impl Leadership {
    /// Wait until leading equals `leading`; `false` if the election task ended first.
    pub async fn wait_for(&mut self, leading: bool) -> bool {
        self.receiver.wait_for(|l| *l == leading).await.is_ok()
    }

    /// Another view of the same lease state.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.receiver.clone()
    }

    /// Stop competing and release the lease if held: its holder is cleared, so a standby
    /// takes it at once instead of waiting for it to expire. Returns once the release was
    /// written (or failed). Every [`Leadership::subscribe`] view must be dropped first.
    pub async fn release(self) {
        drop(self.receiver);
        match self.task.await {
            Ok(Ok(())) => info!("released the leader lease"),
            Ok(Err(error)) => warn!(%error, "releasing the leader lease failed"),
            Err(error) => warn!(%error, "the leader election task failed"),
        }
    }
}

/// How long start-up keeps retrying transient failures to read or create the Lease.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// How often a standby looks whether the holder released the Lease. kube-lease-manager's
/// standby otherwise sleeps until the holder's lease would expire (a whole lease duration
/// after a graceful release); client-go's standby polls every 2 s.
const RELEASE_POLL: Duration = Duration::from_millis(500);

/// Start competing for the lease. Reading (or creating) the Lease at start-up is retried with
/// backoff while the API server fails transiently (5xx, 429, unreachable), as client-go's
/// leader election does: one failed request must not end the process. Other errors (RBAC
/// 403, ...) and failures past [`STARTUP_PATIENCE`] are returned at once.
pub async fn elect(client: Client, config: &LeaseConfig) -> Result<Leadership, LeaderError> {
    let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
    let mut pause = Duration::from_millis(200);
    let manager = loop {
        match build(&client, config).await {
            Ok(manager) => break manager,
            Err(source) if transient(&source) && tokio::time::Instant::now() < deadline => {
                warn!(error = %source, retry_in_ms = pause.as_millis(), "could not read the leader Lease; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(source) => {
                return Err(LeaderError {
                    namespace: config.namespace.clone(),
                    name: config.name.clone(),
                    source,
                });
            }
        }
    };
    let (sender, receiver) = watch::channel(false);
    let task = tokio::spawn(compete(client, config.clone(), manager, sender));
    Ok(Leadership { receiver, task })
}

async fn build(client: &Client, config: &LeaseConfig) -> Result<LeaseManager, LeaseManagerError> {
    LeaseManagerBuilder::new(client.clone(), &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.holder)
        .with_duration(config.duration.as_secs().max(2))
        .with_grace(config.grace.as_secs().max(1))
        .build()
        .await
}

/// Compete for the lease until every receiver of `sender` is gone, then release it. Like
/// kube-lease-manager's own `watch`, plus: while standing by, look at the Lease every
/// [`RELEASE_POLL`] and, once its holder is gone, start over with a fresh view of it (the
/// manager's cached view would sleep until the old lease's expiry).
async fn compete(
    client: Client,
    config: LeaseConfig,
    mut manager: LeaseManager,
    sender: watch::Sender<bool>,
) -> Result<(), LeaseManagerError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut pause = Duration::from_millis(500);
    loop {
        let leading = *sender.borrow();
        tokio::select! {
            biased;
            () = sender.closed() => return manager.release().await,
            changed = manager.changed() => match changed {
                Ok(now_leading) => {
                    pause = Duration::from_millis(500);
                    sender.send_replace(now_leading);
                }
                Err(error) => {
                    warn!(%error, retry_in_ms = pause.as_millis(), "leader election: the Lease could not be read or written; retrying");
                    tokio::select! {
                        () = sender.closed() => return manager.release().await,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            },
            () = released(&leases, &config.name), if !leading => {
                match build(&client, &config).await {
                    Ok(fresh) => manager = fresh,
                    Err(error) => debug!(%error, "re-reading the released Lease failed"),
                }
            }
        }
    }
}

/// Return once the Lease has no holder (released by its last holder) or is gone.
async fn released(leases: &Api<Lease>, name: &str) {
    loop {
        tokio::time::sleep(RELEASE_POLL).await;
        match leases.get_opt(name).await {
            Ok(Some(lease)) => {
                if lease
                    .spec
                    .and_then(|spec| spec.holder_identity)
                    .is_none_or(|holder| holder.is_empty())
                {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => debug!(%error, "looking at the leader Lease failed"),
        }
    }
}

/// A failure worth retrying: the API server erred, throttled, or could not be reached.
fn transient(error: &LeaseManagerError) -> bool {
    match error {
        LeaseManagerError::KubeError(kube::Error::Api(status)) => {
            status.code >= 500 || status.code == 429
        }
        LeaseManagerError::KubeError(kube::Error::HyperError(_) | kube::Error::Service(_)) => true,
        _ => false,
    }
}
