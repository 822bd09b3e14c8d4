//! Ledger entries, their keys, and the pure rules about them.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{Phase, TaskReset, ValidSpec};

/// Number of ConfigMaps the ledger of one namespace is spread over.
pub const SHARDS: u32 = 16;
/// Most bytes of entry data one shard may hold: well inside the 1 MiB object limit, with room
/// for metadata. Past it, [`compact`] drops the oldest entries that never executed first.
pub const SHARD_BUDGET_BYTES: usize = 768 * 1024;
/// Longest `detail` kept in an entry.
pub const MAX_DETAIL_CHARS: usize = 200;
/// Prefix of the ledger ConfigMaps' names (`taskreset-ledger-0` .. `taskreset-ledger-f`).
pub const CONFIGMAP_PREFIX: &str = "taskreset-ledger-";

/// Which run a TaskReset generation asks for: namespace/name plus a hash of the spec fields
/// that define the run (target, endpoint or region, dateFrom, runId).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    /// Namespace of the TaskReset (and of the ledger ConfigMap).
    pub namespace: String,
    /// Name of the TaskReset.
    pub name: String,
    /// Hex SHA-256 (first 16 characters) of the canonical run definition.
    pub spec_hash: String,
}

impl RunKey {
    /// The key of `tr`'s current spec, validated as `spec`.
    pub fn of(tr: &TaskReset, spec: &ValidSpec) -> Self {
        #[derive(Serialize)]
        struct Canonical<'a> {
            project_id: &'a str,
            instance_id: &'a str,
            task_id: &'a str,
            date_from_ms: Option<i64>,
            run_id: Option<&'a str>,
            endpoint: Option<&'a str>,
            region: Option<&'a str>,
        }
        let canonical = Canonical {
            project_id: &spec.project_id,
            instance_id: &spec.instance_id,
            task_id: &spec.task_id,
            date_from_ms: spec.date_from_ms,
            run_id: tr.spec.run_id.as_deref(),
            endpoint: spec.endpoint.as_ref().map(url::Url::as_str),
            region: spec.region.as_deref(),
        };
        // Serialising a struct of strings and integers cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let digest = hex::encode(Sha256::digest(&bytes));
        Self {
            namespace: tr.metadata.namespace.clone().unwrap_or_default(),
            name: tr.metadata.name.clone().unwrap_or_default(),
            spec_hash: digest[..16].to_owned(),
        }
    }

    /// The ConfigMap holding this key: all runs of one name share a shard.
    pub fn configmap(&self) -> String {
        let digest = Sha256::digest(self.name.as_bytes());
        format!("{CONFIGMAP_PREFIX}{:x}", u32::from(digest[0]) % SHARDS)
    }

    /// The key inside the ConfigMap's data (`[-._a-zA-Z0-9]+`, like object names).
    pub fn data_key(&self) -> String {
        format!("{}.{}", self.name, self.spec_hash)
    }
}

/// One executed (or reserved) run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// uid of the TaskReset that made the call.
    pub uid: String,
    /// Its generation.
    pub generation: i64,
    /// Its attempt number at the last write.
    pub attempt: u32,
    /// When the entry was written (reserved, then recorded).
    pub at: Timestamp,
    /// The final phase of the run; `None` while the call is (or was, if the caller died) in
    /// flight, which reads as ambiguous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Phase>,
    /// Message or error recorded with the outcome (already trimmed; never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Entry {
    /// Whether this run may have changed the task: succeeded, unknown, or never recorded.
    /// A rejected or never-sent run did not execute, so running it again is allowed.
    pub fn may_have_executed(&self) -> bool {
        !matches!(self.outcome, Some(Phase::Failed))
    }
}

/// What the ledger says about reserving a run for `uid`/`generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No conflicting entry: reserve it and call.
    Proceed,
    /// Another object or generation already ran this (namespace, name, spec): no call.
    AlreadyExecuted(Entry),
}

/// The pure rule of DESIGN 3.8: an entry blocks a call when another object (uid) or another
/// generation of this one ran the same run and it may have executed.
pub fn verdict(existing: Option<&Entry>, uid: &str, generation: i64) -> Verdict {
    match existing {
        Some(entry)
            if (entry.uid != uid || entry.generation != generation)
                && entry.may_have_executed() =>
        {
            Verdict::AlreadyExecuted(entry.clone())
        }
        _ => Verdict::Proceed,
    }
}

/// Parse a shard's data, dropping entries older than `retention` (and unreadable ones, which
/// are logged by the caller as a count).
pub fn load(
    data: &BTreeMap<String, String>,
    now: Timestamp,
    retention: Duration,
) -> (BTreeMap<String, Entry>, usize) {
    let mut dropped = 0;
    let oldest = jiff::SignedDuration::try_from(retention)
        .ok()
        .and_then(|r| now.checked_sub(r).ok())
        .unwrap_or(Timestamp::MIN);
    let entries = data
        .iter()
        .filter_map(|(k, v)| match serde_json::from_str::<Entry>(v) {
            Ok(entry) if entry.at >= oldest => Some((k.clone(), entry)),
            _ => {
                dropped += 1;
                None
            }
        })
        .collect();
    (entries, dropped)
}

/// Keep a shard within [`SHARD_BUDGET_BYTES`]: drop the oldest runs that did not execute
/// first (they block nothing), then the oldest of the rest. Returns how many were dropped.
pub fn compact(entries: &mut BTreeMap<String, Entry>) -> usize {
    let size = |k: &String, e: &Entry| k.len() + serde_json::to_string(e).map_or(0, |v| v.len());
    let mut total: usize = entries.iter().map(|(k, e)| size(k, e)).sum();
    if total <= SHARD_BUDGET_BYTES {
        return 0;
    }
    let mut order: Vec<(bool, Timestamp, String)> = entries
        .iter()
        .map(|(k, e)| (e.may_have_executed(), e.at, k.clone()))
        .collect();
    order.sort();
    let mut dropped = 0;
    for (_, _, key) in order {
        if total <= SHARD_BUDGET_BYTES {
            break;
        }
        if let Some(entry) = entries.remove(&key) {
            total -= size(&key, &entry);
            dropped += 1;
        }
    }
    dropped
}

/// Serialise entries back into ConfigMap data.
pub fn store(entries: &BTreeMap<String, Entry>) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|(k, e)| serde_json::to_string(e).ok().map(|v| (k.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DateFrom, TaskResetSpec};

    fn tr(name: &str, run_id: Option<&str>) -> TaskReset {
        let mut tr = TaskReset::new(
            name,
            TaskResetSpec {
                date_from: Some(DateFrom::EpochMillis(1)),
                region: Some("cn-north-4".into()),
                run_id: run_id.map(str::to_owned),
                ..TaskResetSpec::new("p1", "i1", "t1")
            },
        );
        tr.metadata.namespace = Some("data".into());
        tr
    }

    fn key(tr: &TaskReset) -> RunKey {
        RunKey::of(tr, &tr.spec.validate().expect("valid"))
    }

    fn entry(uid: &str, generation: i64, outcome: Option<Phase>) -> Entry {
        Entry {
            uid: uid.into(),
            generation,
            attempt: 1,
            at: "2026-11-29T12:00:00Z".parse().expect("ts"),
            outcome,
            detail: None,
        }
    }

    #[test]
    fn keys_follow_the_run_defining_fields_only() {
        let a = tr("x", Some("r1"));
        let mut b = a.clone();
        b.spec.suspend = true;
        b.spec.retry_policy = crate::api::RetryPolicy::Always;
        assert_eq!(key(&a), key(&b), "policy knobs do not define the run");
        assert_ne!(key(&a), key(&tr("x", Some("r2"))), "runId does");
        let mut c = a.clone();
        c.spec.date_from = Some(DateFrom::Timestamp("1970-01-01T00:00:00.001Z".into()));
        assert_eq!(
            key(&a),
            key(&c),
            "the same instant in either form is the same run"
        );
        assert_ne!(key(&a).configmap(), String::new());
        assert!(key(&a).configmap().starts_with(CONFIGMAP_PREFIX));
        assert!(key(&a).data_key().starts_with("x."));
    }

    #[test]
    fn another_uid_or_generation_is_blocked_unless_the_run_failed() {
        let done = entry("u1", 1, Some(Phase::Succeeded));
        assert_eq!(
            verdict(Some(&done), "u1", 1),
            Verdict::Proceed,
            "our own entry"
        );
        assert_eq!(
            verdict(Some(&done), "u2", 1),
            Verdict::AlreadyExecuted(done.clone())
        );
        assert_eq!(
            verdict(Some(&done), "u1", 3),
            Verdict::AlreadyExecuted(done.clone())
        );
        let in_flight = entry("u1", 1, None);
        assert!(matches!(
            verdict(Some(&in_flight), "u2", 1),
            Verdict::AlreadyExecuted(_)
        ));
        let rejected = entry("u1", 1, Some(Phase::Failed));
        assert_eq!(verdict(Some(&rejected), "u2", 1), Verdict::Proceed);
        assert_eq!(verdict(None, "u2", 1), Verdict::Proceed);
    }

    #[test]
    fn compaction_keeps_a_shard_in_budget_and_executed_runs_longest() {
        let mut entries = BTreeMap::new();
        let detail = "d".repeat(MAX_DETAIL_CHARS);
        for i in 0..6000_i64 {
            let mut e = entry(
                &format!("u{i}"),
                1,
                Some(if i % 2 == 0 {
                    Phase::Succeeded
                } else {
                    Phase::Failed
                }),
            );
            e.at = Timestamp::from_second(1_700_000_000 + i).expect("ts");
            e.detail = Some(detail.clone());
            entries.insert(format!("name-{i:05}.0123456789abcdef"), e);
        }
        let dropped = compact(&mut entries);
        let bytes: usize = store(&entries).iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(
            dropped > 0 && bytes <= SHARD_BUDGET_BYTES,
            "{dropped} dropped, {bytes} bytes"
        );
        let failed_left = entries.values().filter(|e| !e.may_have_executed()).count();
        let newest_failed_dropped = !entries.contains_key("name-05999.0123456789abcdef");
        assert!(
            failed_left == 0 || !newest_failed_dropped,
            "failed runs go first"
        );
        assert!(
            entries.contains_key("name-05998.0123456789abcdef"),
            "the newest executed run stays"
        );
        assert_eq!(compact(&mut entries), 0, "in budget: nothing more to drop");
    }

    #[test]
    fn load_prunes_expired_and_unreadable_entries() {
        let now: Timestamp = "2026-12-29T12:00:00Z".parse().expect("ts");
        let mut data = BTreeMap::new();
        let mut fresh = entry("u1", 1, Some(Phase::Succeeded));
        fresh.at = "2026-12-28T12:00:00Z".parse().expect("ts");
        data.insert(
            "a.1".to_owned(),
            serde_json::to_string(&fresh).expect("json"),
        );
        data.insert(
            "b.2".to_owned(),
            serde_json::to_string(&entry("u2", 1, None)).expect("json"),
        );
        data.insert("c.3".to_owned(), "not json".to_owned());
        let (entries, dropped) = load(&data, now, Duration::from_secs(7 * 86_400));
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["a.1"]);
        assert_eq!(dropped, 2);
        assert_eq!(
            load(&store(&entries), now, Duration::from_secs(86_400 * 7)).0,
            entries
        );
    }
}
