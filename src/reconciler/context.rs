//! What every reconcile shares ([`Context`]), why one fails ([`Error`]), and how logs and
//! errors name things.

use std::sync::Arc;

use kube::Client;
use tokio_util::sync::CancellationToken;

use super::credentials::SecretRef;
use super::decision::Policy;
use super::events;
use super::limits::Limits;
use super::secrets;
use crate::roma::{EndpointPolicy, RomaClient};
use crate::telemetry::Metrics;

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
    /// The credentials Secrets, read through a short-lived cache.
    pub secrets: secrets::Secrets,
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
    pub(super) fn for_term(&self, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            stop,
            ..self.clone()
        })
    }
}
