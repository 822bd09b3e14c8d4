//! Leader election on a coordination.k8s.io Lease (kube-lease-manager).

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::warn;

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
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
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

    /// Stop competing and release the lease if held.
    pub async fn release(self) {
        drop(self.receiver);
        match self.task.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(%error, "releasing the leader lease failed"),
            Err(error) => warn!(%error, "the leader election task failed"),
        }
    }
}

/// How long start-up keeps retrying transient failures to read or create the Lease.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Start competing for the lease. Reading (or creating) the Lease at start-up is retried with
/// backoff while the API server fails transiently (5xx, 429, unreachable), as client-go's
/// leader election does: one failed request must not end the process. Other errors (RBAC
/// 403, ...) and failures past [`STARTUP_PATIENCE`] are returned at once.
pub async fn elect(client: Client, config: &LeaseConfig) -> Result<Leadership, LeaderError> {
    let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
    let mut pause = Duration::from_millis(200);
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.holder)
            .with_duration(config.duration.as_secs().max(2))
            .with_grace(config.grace.as_secs().max(1))
            .build()
            .await;
        match built {
            Ok(manager) => break manager,
            Err(source) if transient(&source) && tokio::time::Instant::now() < deadline => {
                warn!(error = %source, retry_in = ?pause, "could not read the leader Lease; retrying");
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
    let (receiver, task) = manager.watch().await;
    Ok(Leadership { receiver, task })
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
