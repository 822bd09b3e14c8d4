//! The execution ledger (DESIGN 3.8): which runs were executed, kept in ConfigMaps that
//! outlive TaskResets, so a deleted and re-created object never resets twice.
//!
//! Per namespace, [`SHARDS`] ConfigMaps `taskreset-ledger-{0..f}`, with no owner reference;
//! one data key per run (`name.spechash`), pruned after the retention period on every write.
//! An entry is reserved (outcome empty) before the call and completed after it; an entry left
//! empty by a crash reads as ambiguous.
//!
//! This process keeps the last version of each shard it read or wrote, so a reservation and
//! its completion cost one write each instead of a read and a write: every write still carries
//! the shard's resourceVersion, so a copy made stale by another writer (another replica, a
//! person) fails with a conflict and the shard is read afresh.

mod entry;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tracing::{debug, warn};

pub use entry::{
    CONFIGMAP_PREFIX, Entry, MAX_DETAIL_CHARS, RunKey, Runner, SHARD_BUDGET_BYTES, SHARDS, Verdict,
    verdict,
};

/// Labels on every ledger ConfigMap.
const LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/managed-by", "taskreset-controller"),
    ("app.kubernetes.io/component", "ledger"),
];
/// Retries of a ledger read or write that failed for a passing reason (5xx, 429, no
/// connection), so a blip between the call and its completion does not leave the entry open.
const TRANSIENT_RETRIES: usize = 4;

/// Whether an API failure may pass by itself.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// Optimistic-lock retries before a ledger write gives up.
const MAX_CONFLICTS: usize = 20;

/// A ledger write or read failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The Kubernetes API refused or failed.
    #[error(
        "execution ledger {namespace}/{configmap}: {}",
        crate::reconciler::api_error_text(source)
    )]
    Api {
        /// Namespace of the shard.
        namespace: String,
        /// Name of the shard ConfigMap.
        configmap: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Other writers kept changing the shard between our read and our write.
    #[error(
        "execution ledger {namespace}/{configmap}: still conflicting after {MAX_CONFLICTS} tries"
    )]
    Contended {
        /// Namespace of the shard.
        namespace: String,
        /// Name of the shard ConfigMap.
        configmap: String,
    },
}

/// What [`Ledger::reserve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Whether to call.
    pub verdict: Verdict,
    /// The entry the reservation replaced (put back by [`Ledger::release`]).
    pub replaced: Option<Entry>,
}

/// In-process locks that serialise this controller's writes to one shard, so its own
/// concurrent reconciles do not race each other into conflicts (other writers still meet the
/// optimistic lock).
const WRITE_LOCKS: usize = 64;

/// The last known version of the shards behind one lock, by (namespace, ConfigMap name).
type KnownShards = HashMap<(String, String), ConfigMap>;

/// Most shard copies kept behind one lock (so at most `WRITE_LOCKS` times this many in all,
/// whatever the number of namespaces, deleted ones included). A copy only saves a read.
const KNOWN_PER_LOCK: usize = 8;

/// Keep `cm` as the last known version of `shard`, forgetting another copy when full.
fn remember(known: &mut KnownShards, shard: (String, String), cm: ConfigMap) {
    if known.len() >= KNOWN_PER_LOCK
        && !known.contains_key(&shard)
        && let Some(oldest) = known.keys().next().cloned()
    {
        known.remove(&oldest);
    }
    known.insert(shard, cm);
}

/// How long a TaskReset waits before it claims again after its reservation failed: the
/// controller's error backoff (`error_policy`), which the withdrawal's own write would
/// otherwise bypass.
const FAILED_PAUSE: Duration = Duration::from_secs(5);
/// TaskResets whose failures are remembered at most (the oldest is forgotten first).
const FAILED_KEPT: usize = 4096;

/// TaskResets (namespace, name) whose reservation failed lately, and when they may claim
/// again. A failed reservation withdraws its claim, and that write would start the object's
/// next reconcile at once, past the error backoff: without this pause an unwritable ledger (a
/// 403, an outage) would turn into a loop of claims and withdrawals. Per object, so one
/// object's bad luck does not hold back the others of its namespace.
type Failed = HashMap<(String, String), std::time::Instant>;

/// The ledger of every namespace, reached through the Kubernetes API.
#[derive(Clone)]
pub struct Ledger {
    client: kube::Client,
    retention: Duration,
    locks: std::sync::Arc<[tokio::sync::Mutex<KnownShards>]>,
    failed: std::sync::Arc<std::sync::Mutex<Failed>>,
}

impl Ledger {
    /// A ledger keeping runs for `retention`.
    pub fn new(client: kube::Client, retention: Duration) -> Self {
        Self {
            client,
            retention,
            locks: (0..WRITE_LOCKS)
                .map(|_| tokio::sync::Mutex::new(KnownShards::new()))
                .collect(),
            failed: std::sync::Arc::default(),
        }
    }

    /// How long the TaskReset `namespace/name` waits before it claims again, after its
    /// reservation failed lately; `None` when it may claim.
    pub fn paused(&self, namespace: &str, name: &str) -> Option<Duration> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let until = failed.get(&(namespace.to_owned(), name.to_owned()))?;
        until.checked_duration_since(std::time::Instant::now())
    }

    fn note_outcome(&self, key: &RunKey, ok: bool) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let object = (key.namespace.clone(), key.name.clone());
        if ok {
            failed.remove(&object);
            return;
        }
        if failed.len() >= FAILED_KEPT
            && !failed.contains_key(&object)
            && let Some(oldest) = failed
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            failed.remove(&oldest);
        }
        failed.insert(object, std::time::Instant::now() + FAILED_PAUSE);
    }

    fn lock_for(&self, namespace: &str, configmap: &str) -> &tokio::sync::Mutex<KnownShards> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one((namespace, configmap));
        // The modulo keeps the index below the slice's length.
        &self.locks[(hash % WRITE_LOCKS as u64) as usize]
    }

    /// Before a call: reserve `key` for `runner`, unless the run may already have executed.
    /// Read fresh from the API and written with an optimistic lock, so two writers cannot
    /// both proceed. Returns the verdict and the entry the reservation replaced, which
    /// [`Ledger::release`] puts back.
    pub async fn reserve(
        &self,
        key: &RunKey,
        runner: &Runner,
        now: Timestamp,
    ) -> Result<Reservation, LedgerError> {
        let mut reservation = Reservation {
            verdict: Verdict::PROCEED,
            replaced: None,
        };
        let written = self
            .update(key, now, |entries| {
                let data_key = key.data_key();
                let existing = entries.get(&data_key);
                reservation.verdict = verdict(existing, runner);
                reservation.replaced = existing.cloned();
                let Verdict::Proceed { ambiguous_attempt } = reservation.verdict else {
                    return false;
                };
                entries.insert(data_key, runner.reservation(now, ambiguous_attempt));
                true
            })
            .await;
        let Err(error) = written else {
            self.note_outcome(key, true);
            return Ok(reservation);
        };
        // A write can land with its answer lost, and every retry fail after it: then the
        // reservation is in the ledger. Left there it would read as a run that may have
        // executed, though nothing was called. Look once more: if it is this runner's, the
        // reserve succeeded (a release keeps it open: "may have run", never less).
        let mut landed = None;
        let data_key = key.data_key();
        let looked = self
            .update(key, now, |entries| {
                landed = entries
                    .get(&data_key)
                    .filter(|e| e.unclaimed_reservation_of(runner))
                    .cloned();
                false
            })
            .await;
        let found = match (looked, landed) {
            (Ok(()), Some(ours)) => Ok(Reservation {
                verdict: Verdict::Proceed {
                    ambiguous_attempt: ours.ambiguous_attempt,
                },
                replaced: Some(ours),
            }),
            _ => Err(error),
        };
        self.note_outcome(key, found.is_ok());
        found
    }

    /// The claim after [`Ledger::reserve`] provably did not land (409, 404): put back what
    /// the reservation replaced, so an abandoned reservation blocks no later run. Nothing is
    /// changed unless the entry is still this runner's open reservation.
    pub async fn release(
        &self,
        key: &RunKey,
        runner: &Runner,
        replaced: Option<Entry>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        self.update(key, now, |entries| {
            let data_key = key.data_key();
            let ours = entries.get(&data_key).is_some_and(|e| {
                e.outcome.is_none() && *e == runner.reservation(e.at, e.ambiguous_attempt)
            });
            if !ours {
                return false;
            }
            match replaced.clone() {
                Some(previous) => entries.insert(data_key, previous),
                None => entries.remove(&data_key),
            };
            true
        })
        .await
    }

    /// After a call: record how the run ended (see [`Entry::completed`]: only the runner's
    /// own entry, never downgraded). A missing entry (the ledger was deleted by hand
    /// meanwhile) is written anew.
    pub async fn complete(
        &self,
        key: &RunKey,
        runner: &Runner,
        outcome: crate::api::Phase,
        detail: Option<String>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        self.update(key, now, |entries| {
            let data_key = key.data_key();
            match Entry::completed(
                entries.get(&data_key),
                runner,
                outcome,
                detail.as_deref(),
                now,
            ) {
                Some(entry) => {
                    entries.insert(data_key, entry);
                    true
                }
                None => false,
            }
        })
        .await
    }

    /// Read-modify-write one shard: `change` edits the (pruned) entries and says whether to
    /// write them back.
    async fn update(
        &self,
        key: &RunKey,
        now: Timestamp,
        mut change: impl FnMut(&mut BTreeMap<String, Entry>) -> bool,
    ) -> Result<(), LedgerError> {
        let name = key.configmap();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &key.namespace);
        let mut known = self.lock_for(&key.namespace, &name).lock().await;
        let shard = (key.namespace.clone(), name.clone());
        let fail = |source| LedgerError::Api {
            namespace: key.namespace.clone(),
            configmap: name.clone(),
            source,
        };
        let mut pause = Duration::from_millis(100);
        let mut transient_tries = TRANSIENT_RETRIES;
        for _ in 0..MAX_CONFLICTS {
            // Taken out: a failed write leaves no copy behind, and the next try reads afresh.
            let read = match known.remove(&shard) {
                Some(cm) => Ok((Some(cm), true)),
                None => api.get_opt(&name).await.map(|cm| (cm, false)),
            };
            let (current, copy) = match read {
                Ok(read) => read,
                Err(source) if is_transient(&source) && transient_tries > 0 => {
                    transient_tries -= 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    continue;
                }
                Err(source) => return Err(fail(source)),
            };
            let data = current
                .as_ref()
                .and_then(|cm| cm.data.clone())
                .unwrap_or_default();
            let (mut entries, dropped) = entry::load(&data, now, self.retention);
            if dropped > 0 {
                debug!(configmap = %name, dropped, "pruned ledger entries past retention");
            }
            if !change(&mut entries) {
                if copy {
                    // Decided on a copy without writing: confirm on a fresh read.
                    continue;
                }
                if let Some(cm) = current {
                    remember(&mut known, shard, cm);
                }
                return Ok(());
            }
            let compacted = entry::compact(&mut entries);
            if compacted > 0 {
                warn!(configmap = %name, compacted, "ledger shard over its size budget: dropped the oldest entries");
            }
            let data = entry::store(&entries);
            let result = match current {
                Some(mut cm) => {
                    cm.data = Some(data);
                    cm.metadata.managed_fields = None;
                    api.replace(&name, &PostParams::default(), &cm).await
                }
                None => {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some(key.namespace.clone()),
                            labels: Some(
                                LABELS
                                    .iter()
                                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                                    .collect(),
                            ),
                            ..ObjectMeta::default()
                        },
                        data: Some(data),
                        ..ConfigMap::default()
                    };
                    api.create(&PostParams::default(), &cm).await
                }
            };
            match result {
                Ok(mut written) => {
                    written.metadata.managed_fields = None;
                    remember(&mut known, shard, written);
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                // The copy's ConfigMap was deleted meanwhile: read afresh (and create it).
                Err(kube::Error::Api(status)) if status.code == 404 && copy => continue,
                Err(source) if is_transient(&source) && transient_tries > 0 => {
                    transient_tries -= 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(source) => return Err(fail(source)),
            }
        }
        warn!(configmap = %name, "ledger write kept conflicting");
        Err(LedgerError::Contended {
            namespace: key.namespace.clone(),
            configmap: name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11.6: the shard copies stay bounded however many namespaces (deleted ones
    /// included) the controller has written to.
    #[test]
    fn shard_copies_are_bounded() {
        let mut known = KnownShards::new();
        for ns in 0..1000 {
            let shard = (format!("ns-{ns}"), "taskreset-ledger-0".to_owned());
            remember(&mut known, shard, ConfigMap::default());
        }
        assert_eq!(known.len(), KNOWN_PER_LOCK);
        assert!(known.contains_key(&("ns-999".to_owned(), "taskreset-ledger-0".to_owned())));
    }
}
