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

/// Start competing for the lease.
pub async fn elect(client: Client, config: &LeaseConfig) -> Result<Leadership, LeaderError> {
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.holder)
        .with_duration(config.duration.as_secs().max(2))
        .with_grace(config.grace.as_secs().max(1))
        .build()
        .await
        .map_err(|source| LeaderError {
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            source,
        })?;
    let (receiver, task) = manager.watch().await;
    Ok(Leadership { receiver, task })
}
