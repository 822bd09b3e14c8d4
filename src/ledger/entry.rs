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

/// The API server's limit on a ConfigMap data key (as on a DNS-1123 subdomain).
pub const MAX_DATA_KEY_LEN: usize = 253;
/// How much of a long name a hashed [`RunKey::data_key`] keeps, for people reading the ledger.
pub const LONG_NAME_PREFIX: usize = 200;

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

    /// The key inside the ConfigMap's data (`[-._a-zA-Z0-9]+`, like object names): `name.hash`
    /// while that fits the API server's 253-character limit on data keys (names of up to 236
    /// characters, so existing entries keep their keys); for longer names the first
    /// [`LONG_NAME_PREFIX`] characters, `-`, and 16 hex digits of the name's SHA-256 stand for
    /// the name, so every key fits (at most 234 characters) and distinct names stay distinct.
    pub fn data_key(&self) -> String {
        let key = format!("{}.{}", self.name, self.spec_hash);
        if key.len() <= MAX_DATA_KEY_LEN {
            return key;
        }
        let digest = hex::encode(Sha256::digest(self.name.as_bytes()));
        // Object names are ASCII; a byte index is a char boundary.
        let prefix = self.name.get(..LONG_NAME_PREFIX).unwrap_or(&self.name);
        format!("{prefix}-{}.{}", &digest[..16], self.spec_hash)
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
    /// While open: the object's resourceVersion right after the claim of this attempt (the
    /// reservation is written once the claim landed). Any later write to the object changes
    /// it, so only the very reconcile that claimed can pass its own open entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// An earlier attempt of the same generation that may have executed (`retryPolicy:
    /// Always` retries after it). Once set, the run never reads as not executed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambiguous_attempt: Option<u32>,
}

impl Entry {
    /// Whether this run may have changed the task: succeeded, unknown, or never recorded.
    /// Only a run rejected or never sent (and with no ambiguous attempt before) did not
    /// execute, so running it again is allowed.
    pub fn may_have_executed(&self) -> bool {
        self.outcome != Some(Phase::Failed) || self.ambiguous_attempt.is_some()
    }

    /// Whether the entry is an open reservation for exactly `runner`'s attempt and claim (a
    /// reservation written again after a write that failed on the way back).
    pub(super) fn unclaimed_reservation_of(&self, runner: &Runner) -> bool {
        self.outcome.is_none()
            && self.same_run(runner)
            && self.attempt == runner.attempt
            && self.base.as_deref() == Some(runner.base.as_str())
    }

    fn same_run(&self, runner: &Runner) -> bool {
        self.uid == runner.uid && self.generation == runner.generation
    }

    /// The entry with `runner`'s result recorded, or `None` when it is not `runner`'s to
    /// complete (another object or generation, or a later attempt, wrote it since).
    /// "May have executed" is never downgraded: after an ambiguous attempt, a rejected or
    /// unsent one still records `Unknown`.
    pub fn completed(
        existing: Option<&Entry>,
        runner: &Runner,
        outcome: Phase,
        detail: Option<&str>,
        now: Timestamp,
    ) -> Option<Entry> {
        let mut entry = match existing {
            None => runner.reservation(now, None),
            Some(e) if !e.same_run(runner) || e.attempt > runner.attempt => return None,
            Some(e) => e.clone(),
        };
        let strongest = |p: Option<Phase>| match p {
            Some(Phase::Succeeded) => 2,
            Some(Phase::Unknown) => 1,
            _ => 0,
        };
        let mut outcome = if entry.attempt == runner.attempt
            && strongest(entry.outcome) > strongest(Some(outcome))
        {
            entry.outcome.unwrap_or(outcome)
        } else {
            outcome
        };
        if outcome == Phase::Failed && entry.ambiguous_attempt.is_some() {
            outcome = Phase::Unknown;
        }
        entry.attempt = runner.attempt;
        entry.at = now;
        entry.outcome = Some(outcome);
        entry.base = None;
        entry.detail = detail.map(|d| d.chars().take(MAX_DETAIL_CHARS).collect());
        Some(entry)
    }
}

/// Who is running a run: the object's uid, generation and attempt, and what the attempt's
/// claim will be preconditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    /// uid of the TaskReset.
    pub uid: String,
    /// Its generation.
    pub generation: i64,
    /// The attempt number.
    pub attempt: u32,
    /// The object's resourceVersion as the attempt's claim left it.
    pub base: String,
    /// Whether the spec retries after an ambiguous outcome (`retryPolicy: Always`).
    pub retries_ambiguous: bool,
    /// The earlier attempt of this generation whose result the object's status records as
    /// retried (`Retrying`, or `Pending` after a 401): this attempt is its retry. Lets an
    /// attempt pass an entry that attempt left open (its completion was lost to a crash or an
    /// API failure after the status write).
    pub retry_of: Option<u32>,
}

impl Runner {
    /// A reserved entry for this runner: no outcome yet, which reads as ambiguous.
    pub fn reservation(&self, now: Timestamp, ambiguous_attempt: Option<u32>) -> Entry {
        Entry {
            uid: self.uid.clone(),
            generation: self.generation,
            attempt: self.attempt,
            at: now,
            outcome: None,
            detail: None,
            base: Some(self.base.clone()),
            ambiguous_attempt,
        }
    }
}

/// What the ledger says about reserving a run for a [`Runner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reserve it and call. `ambiguous_attempt`: an earlier attempt of this generation may
    /// have executed (the call is a `retryPolicy: Always` retry after it).
    Proceed {
        /// The earlier attempt that may have executed, if any.
        ambiguous_attempt: Option<u32>,
    },
    /// This run may already have executed (another object or generation, or this very
    /// generation before its status was lost): no call.
    AlreadyExecuted(Entry),
}

impl Verdict {
    /// Proceed, with no ambiguous attempt before.
    pub const PROCEED: Self = Self::Proceed {
        ambiguous_attempt: None,
    };
}

/// The pure rule of DESIGN 3.8 and of the guarantee: a run that may have executed is never
/// run again. The exceptions are a run that provably did not execute (rejected or never sent),
/// this attempt's own reservation (written again after a lost answer), the retry of an attempt whose
/// retried result the status records (its entry left open), and a `retryPolicy: Always` retry
/// after an ambiguous attempt of the same generation (which the new reservation remembers).
pub fn verdict(existing: Option<&Entry>, runner: &Runner) -> Verdict {
    let Some(entry) = existing else {
        return Verdict::PROCEED;
    };
    if !entry.may_have_executed() {
        return Verdict::PROCEED;
    }
    if entry.unclaimed_reservation_of(runner) {
        return Verdict::Proceed {
            ambiguous_attempt: entry.ambiguous_attempt,
        };
    }
    let retry_of_open = entry.outcome.is_none()
        && entry.same_run(runner)
        && runner.retry_of == Some(entry.attempt)
        && entry.attempt < runner.attempt;
    if retry_of_open {
        // Whether that attempt was the ambiguous kind, the status says (`ambiguousAttempt`).
        return Verdict::Proceed {
            ambiguous_attempt: entry.ambiguous_attempt,
        };
    }
    let always_retry = entry.same_run(runner)
        && entry.outcome == Some(Phase::Unknown)
        && runner.retries_ambiguous
        && entry.attempt < runner.attempt;
    if always_retry {
        return Verdict::Proceed {
            ambiguous_attempt: entry.ambiguous_attempt.or(Some(entry.attempt)),
        };
    }
    Verdict::AlreadyExecuted(entry.clone())
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
    use crate::api::DateFrom;
    use crate::fixture::Fixture;

    fn tr(name: &str, run_id: Option<&str>) -> TaskReset {
        let fixture = Fixture::new(name, "t1");
        match run_id {
            Some(run) => fixture.run_id(run).build(),
            None => fixture.build(),
        }
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
            base: None,
            ambiguous_attempt: None,
        }
    }

    /// Attempt `attempt` of `uid` generation 1, deciding on resourceVersion `base`.
    fn runner(uid: &str, attempt: u32, base: &str, retries_ambiguous: bool) -> Runner {
        Runner {
            uid: uid.into(),
            generation: 1,
            attempt,
            base: base.into(),
            retries_ambiguous,
            retry_of: None,
        }
    }

    fn blocked(v: &Verdict) -> bool {
        matches!(v, Verdict::AlreadyExecuted(_))
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
        c.spec.date_from = Some(DateFrom::Timestamp("2021-08-27T08:25:14Z".into()));
        assert_eq!(
            key(&a),
            key(&c),
            "the same instant in either form is the same run"
        );
        assert_ne!(key(&a).configmap(), String::new());
        assert!(key(&a).configmap().starts_with(CONFIGMAP_PREFIX));
        assert!(key(&a).data_key().starts_with("x."));
    }

    /// Issue 11.11: a name over 236 characters made a data key over 253 (a 422 forever).
    #[test]
    fn every_data_key_fits_the_api_server_limit_and_short_ones_keep_their_form() {
        let key_of = |name: &str| RunKey {
            namespace: "ns".into(),
            name: name.into(),
            spec_hash: "0123456789abcdef".into(),
        };
        let valid = |k: &str| {
            k.len() <= 253
                && k.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        };
        // Up to 236 characters: the key is `name.hash` as before, so old entries are found.
        let edge = "a".repeat(236);
        assert_eq!(key_of(&edge).data_key(), format!("{edge}.0123456789abcdef"));
        assert_eq!(key_of(&edge).data_key().len(), 253);
        assert_eq!(key_of("x").data_key(), "x.0123456789abcdef");
        // Longer, up to the longest object name: hashed, and still distinct.
        let mut keys = std::collections::BTreeSet::new();
        for name in [
            "a".repeat(237),
            "a".repeat(253),
            format!("{}b", "a".repeat(252)),
            format!("{}.c", "a".repeat(250)),
        ] {
            let key = key_of(&name).data_key();
            assert!(valid(&key), "{} -> {key}", name.len());
            assert!(key.starts_with(&name[..200]), "{key}");
            assert!(key.ends_with(".0123456789abcdef"), "{key}");
            assert!(keys.insert(key), "{name}: collision");
        }
    }

    #[test]
    fn another_uid_or_generation_is_blocked_unless_the_run_failed() {
        let done = entry("u1", 1, Some(Phase::Succeeded));
        assert!(blocked(&verdict(Some(&done), &runner("u2", 1, "9", false))));
        let mut later_generation = runner("u1", 1, "9", false);
        later_generation.generation = 3;
        assert!(blocked(&verdict(Some(&done), &later_generation)));
        let in_flight = entry("u1", 1, None);
        assert!(blocked(&verdict(
            Some(&in_flight),
            &runner("u2", 1, "9", false)
        )));
        let rejected = entry("u1", 1, Some(Phase::Failed));
        assert_eq!(
            verdict(Some(&rejected), &runner("u2", 1, "9", false)),
            Verdict::PROCEED
        );
        assert_eq!(
            verdict(None, &runner("u2", 1, "9", false)),
            Verdict::PROCEED
        );
    }

    /// Issue 11.1: the status of a finished object cleared (attempt numbering starts again).
    #[test]
    fn the_same_generation_is_blocked_once_it_may_have_executed() {
        for outcome in [Phase::Succeeded, Phase::Unknown] {
            let done = entry("u1", 1, Some(outcome));
            assert!(
                blocked(&verdict(Some(&done), &runner("u1", 1, "9", false))),
                "{outcome}"
            );
        }
        let rejected = entry("u1", 1, Some(Phase::Failed));
        assert_eq!(
            verdict(Some(&rejected), &runner("u1", 2, "9", false)),
            Verdict::PROCEED,
            "a run that provably did not execute may go again"
        );
    }

    /// An open entry is only passed by the very attempt that left it, on the
    /// resourceVersion its claim was to be preconditioned on (so the claim never landed).
    #[test]
    fn an_open_entry_is_passed_only_by_its_own_unclaimed_reservation() {
        let mut open = entry("u1", 1, None);
        open.base = Some("7".into());
        assert_eq!(
            verdict(Some(&open), &runner("u1", 1, "7", false)),
            Verdict::PROCEED
        );
        assert!(
            blocked(&verdict(Some(&open), &runner("u1", 1, "8", false))),
            "the object moved on: the claim may have landed and the call been made"
        );
        assert!(
            blocked(&verdict(Some(&open), &runner("u1", 2, "7", false))),
            "another attempt"
        );
        open.base = None;
        assert!(blocked(&verdict(Some(&open), &runner("u1", 1, "7", false))));
    }

    /// An attempt's completion lost after its retried result reached the status: the retry
    /// passes (the status's `ambiguousAttempt` tells whether that attempt may have executed).
    #[test]
    fn the_retry_recorded_in_the_status_passes_the_entry_its_attempt_left_open() {
        let open = entry("u1", 1, None);
        let mut retry = runner("u1", 2, "9", false);
        assert!(blocked(&verdict(Some(&open), &retry)), "no recorded retry");
        retry.retry_of = Some(1);
        assert_eq!(verdict(Some(&open), &retry), Verdict::PROCEED);
        let mut cleared = runner("u1", 1, "9", false);
        cleared.retry_of = Some(1);
        assert!(
            blocked(&verdict(Some(&open), &cleared)),
            "only a later attempt is a retry"
        );
    }

    /// Issue 11.2: `retryPolicy: Always` retries after an ambiguous attempt, and the ledger
    /// remembers it: a later rejection still records `Unknown`.
    #[test]
    fn retry_policy_always_keeps_may_have_executed() {
        let ambiguous = entry("u1", 1, Some(Phase::Unknown));
        assert!(
            blocked(&verdict(Some(&ambiguous), &runner("u1", 2, "9", false))),
            "only Always retries an ambiguous run"
        );
        assert!(
            blocked(&verdict(Some(&ambiguous), &runner("u1", 1, "9", true))),
            "a status cleared back to attempt 1 is no retry"
        );
        let retry = runner("u1", 2, "9", true);
        let verdict = verdict(Some(&ambiguous), &retry);
        assert_eq!(
            verdict,
            Verdict::Proceed {
                ambiguous_attempt: Some(1)
            }
        );
        let reserved = retry.reservation(ambiguous.at, Some(1));
        let done = Entry::completed(Some(&reserved), &retry, Phase::Failed, None, ambiguous.at)
            .expect("its own reservation");
        assert_eq!(done.outcome, Some(Phase::Unknown));
        assert!(done.may_have_executed());
        assert!(blocked(&super::verdict(
            Some(&done),
            &runner("u2", 1, "9", true)
        )));
    }

    /// Issue 11.4: a completed entry is never reopened or overwritten by a stale writer.
    #[test]
    fn completion_belongs_to_the_runner_and_never_downgrades() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().expect("ts");
        let first = runner("u1", 1, "7", false);
        let succeeded = Entry::completed(None, &first, Phase::Succeeded, Some("ok"), now)
            .expect("missing entry written anew");
        assert_eq!(succeeded.outcome, Some(Phase::Succeeded));
        assert_eq!(succeeded.base, None);
        let again = Entry::completed(Some(&succeeded), &first, Phase::Failed, None, now)
            .expect("same attempt");
        assert_eq!(again.outcome, Some(Phase::Succeeded), "never downgraded");
        assert_eq!(
            Entry::completed(
                Some(&succeeded),
                &runner("u2", 1, "7", false),
                Phase::Failed,
                None,
                now
            ),
            None,
            "another object's entry"
        );
        let mut later = succeeded.clone();
        later.attempt = 3;
        assert_eq!(
            Entry::completed(Some(&later), &first, Phase::Failed, None, now),
            None,
            "a later attempt's entry"
        );
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
