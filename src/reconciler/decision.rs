//! The pure heart of the controller: from (object, now, policy) to what to do, and from an
//! attempt's outcome to the status that records it. No I/O here; `reconcile` carries it out.
//!
//! Per generation G (DESIGN section 3): a `Resetting` claim is waited on, or, once older than
//! the request timeout plus a margin, declared `Interrupted`; terminal generations are left
//! alone; suspend, notAfter and an invalid spec end or park G without a call; otherwise an
//! attempt is due (after `nextAttemptTime`, if one is set).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{Reason, conditions, trim_message};
use crate::api::{Phase, RetryPolicy, SecretVersion, TaskReset, TaskResetStatus, ValidSpec};
use crate::ledger::Entry;
use crate::roma::{OutcomeClass, ResetOutcome};

/// The knobs the decisions depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Attempts per generation before `RetriesExhausted` (at least 1).
    pub max_attempts: u32,
    /// Age after which a `Resetting` claim is declared `Interrupted`: the request timeout plus
    /// a margin for the result write.
    pub claim_expiry: Duration,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// First delay while the credentials Secret is missing; grows with the time spent waiting.
    pub credentials_retry_min: Duration,
    /// Longest delay while the credentials Secret is missing.
    pub credentials_retry_max: Duration,
    /// First delay before the Secret is read again after the gateway rejected the credentials;
    /// it doubles (with the time since the rejection) up to `credentials_retry_max`. No call
    /// is made until the Secret holds a new version (the gateway locks an access key after
    /// five failures in a row).
    pub credentials_rejected_retry: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            claim_expiry: Duration::from_secs(90),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            credentials_retry_min: Duration::from_secs(5),
            credentials_retry_max: Duration::from_secs(300),
            credentials_rejected_retry: Duration::from_secs(120),
        }
    }
}

/// A Kubernetes event to publish about the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// The reason: the same as the Ready condition's reason of the status it reports.
    pub reason: Reason,
    /// Human-readable text; never holds a secret (it is built from status fields).
    pub message: String,
}

impl Note {
    /// The event's action: what the controller did ([`Reason::action`]).
    pub fn action(&self) -> &'static str {
        self.reason.action()
    }
}

/// A status write, with what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The whole new status.
    pub status: TaskResetStatus,
    /// The event to publish once the write succeeded.
    pub note: Option<Note>,
    /// When to look again; `None` waits for a change of the object.
    pub requeue: Option<Duration>,
}

/// An attempt that is due: check the credentials, claim, call, record.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The generation the attempt belongs to.
    pub generation: i64,
    /// 1 for the first attempt of the generation.
    pub number: u32,
    /// The validated spec to call with.
    pub spec: ValidSpec,
    /// The earlier attempt whose retried result (`Retrying`, or `Pending` after a 401) the
    /// status records: this attempt is its retry.
    pub retry_of: Option<u32>,
    /// An earlier attempt of this generation that may have executed (from the status, and
    /// the ledger's word once the attempt is reserved): with `retryPolicy: Always` the attempt
    /// goes ahead, but its failure still reads "may have executed".
    pub ambiguous_before: Option<u32>,
    /// The version of the credentials Secret the call is made with (set once it is read):
    /// a 401 records it as rejected.
    pub credentials: Option<SecretVersion>,
}

/// What to do about an object now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing, until the object changes.
    Idle,
    /// Nothing now; look again after this long.
    Wait(Duration),
    /// Write this status (no call).
    Write(Update),
    /// Make an attempt.
    Attempt(Attempt),
}

/// The status of the object's current generation, or a fresh one if it describes an older
/// generation (a new generation starts from nothing but the conditions' history).
fn current_status(tr: &TaskReset) -> (i64, TaskResetStatus, bool) {
    let generation = tr.metadata.generation.unwrap_or(0);
    current_status_of(tr.status.clone().unwrap_or_default(), generation)
}

fn current_status_of(status: TaskResetStatus, generation: i64) -> (i64, TaskResetStatus, bool) {
    if status.observed_generation == Some(generation) {
        (generation, status, true)
    } else {
        let fresh = TaskResetStatus {
            conditions: status.conditions,
            ..TaskResetStatus::default()
        };
        (generation, fresh, false)
    }
}

/// `status` moved to `phase` for `reason`, with its conditions recomputed.
fn transition(
    mut status: TaskResetStatus,
    generation: i64,
    phase: Phase,
    reason: Reason,
    message: &str,
    now: Timestamp,
) -> TaskResetStatus {
    status.conditions = conditions(
        &status.conditions,
        generation,
        phase,
        reason,
        message,
        &Time(now),
    );
    status.observed_generation = Some(generation);
    status.phase = Some(phase);
    status
}

/// A terminal status: completion time set, nothing scheduled.
fn finish(
    mut status: TaskResetStatus,
    generation: i64,
    phase: Phase,
    reason: Reason,
    message: &str,
    now: Timestamp,
) -> TaskResetStatus {
    status.completion_time = Some(Time(now));
    status.next_attempt_time = None;
    transition(status, generation, phase, reason, message, now)
}

/// A time for a message, to the second: `2026-11-29T12:00:05Z`, not nanoseconds.
fn moment(t: Timestamp) -> Timestamp {
    t.round(jiff::Unit::Second).unwrap_or(t)
}

fn until(later: Timestamp, now: Timestamp) -> Duration {
    later
        .duration_since(now)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

fn after(now: Timestamp, delay: Duration) -> Timestamp {
    SignedDuration::try_from(delay)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Decide what to do about `tr` at `now` (DESIGN 3.1-3.7, before credentials are read).
pub fn decide(tr: &TaskReset, now: Timestamp, policy: &Policy) -> Decision {
    let (generation, status, current) = current_status(tr);
    let phase = status.phase.filter(|_| current);
    if phase.is_some_and(Phase::is_terminal) {
        return Decision::Idle;
    }
    if phase == Some(Phase::Resetting) {
        return claim_in_flight(status, generation, now, policy);
    }
    if tr.spec.suspend {
        if phase == Some(Phase::Suspended) {
            return Decision::Idle;
        }
        let message = "spec.suspend is true: no call until it is set back to false";
        return Decision::Write(Update {
            status: transition(
                status,
                generation,
                Phase::Suspended,
                Reason::Suspended,
                message,
                now,
            ),
            note: Some(Note {
                warning: false,
                reason: Reason::Suspended,
                message: message.to_owned(),
            }),
            requeue: None,
        });
    }
    if let Some(not_after) = &tr.spec.not_after
        && not_after.0 <= now
    {
        let message = format!(
            "spec.notAfter {} has passed: no call will be made for this generation",
            moment(not_after.0)
        );
        return Decision::Write(terminal(status, generation, Reason::Expired, &message, now));
    }
    let spec = match tr.spec.validate() {
        Ok(spec) => spec,
        Err(err) => {
            return Decision::Write(invalid_spec_update(
                status,
                generation,
                &err.to_string(),
                now,
            ));
        }
    };
    if matches!(phase, Some(Phase::Retrying | Phase::Pending))
        && let Some(next) = &status.next_attempt_time
        && next.0 > now
    {
        return Decision::Wait(until(next.0, now));
    }
    let retried = matches!(phase, Some(Phase::Retrying | Phase::Pending));
    Decision::Attempt(Attempt {
        generation,
        number: status.attempts.unwrap_or(0) + 1,
        spec,
        retry_of: status.attempts.filter(|_| retried),
        ambiguous_before: status.ambiguous_attempt,
        credentials: None,
    })
}

/// A `Resetting` claim for the current generation: wait for its holder's result, or declare
/// it interrupted once it is older than the claim expiry (DESIGN 3.6). Never a second call.
fn claim_in_flight(
    status: TaskResetStatus,
    generation: i64,
    now: Timestamp,
    policy: &Policy,
) -> Decision {
    let claimed_at = status
        .last_attempt_time
        .as_ref()
        .or(status.start_time.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let expiry = after(claimed_at, policy.claim_expiry);
    if expiry > now {
        return Decision::Wait(until(expiry, now));
    }
    let message = format!(
        "attempt {} claimed at {} recorded no result within {}s: the controller making the call stopped; the reset may or may not have run, and will not be repeated. Check the task in ROMA Connect, then set a new spec.runId to run it again",
        status.attempts.unwrap_or(0),
        moment(claimed_at),
        policy.claim_expiry.as_secs()
    );
    Decision::Write(Update {
        note: Some(Note {
            warning: true,
            reason: Reason::Interrupted,
            message: trim_message(&message),
        }),
        status: finish(
            status,
            generation,
            Phase::Unknown,
            Reason::Interrupted,
            &message,
            now,
        ),
        requeue: None,
    })
}

fn terminal(
    status: TaskResetStatus,
    generation: i64,
    reason: Reason,
    message: &str,
    now: Timestamp,
) -> Update {
    Update {
        status: finish(status, generation, Phase::Failed, reason, message, now),
        note: Some(Note {
            warning: true,
            reason,
            message: trim_message(message),
        }),
        requeue: None,
    }
}

fn invalid_spec_update(
    status: TaskResetStatus,
    generation: i64,
    message: &str,
    now: Timestamp,
) -> Update {
    terminal(status, generation, Reason::InvalidSpec, message, now)
}

/// A stored object the controller cannot read as a TaskReset (written under an older or
/// looser CRD): `Failed`/`InvalidSpec` for its generation, no call. `None` when its status
/// already ends the generation or a claim of it is in flight (row 2: never rewritten), or it
/// already says so. `current` is its status, if that much could be read.
pub fn malformed(
    current: Option<TaskResetStatus>,
    generation: i64,
    error: &str,
    now: Timestamp,
) -> Option<Update> {
    let status = current.unwrap_or_default();
    if status.observed_generation == Some(generation) {
        let settled = status
            .phase
            .is_some_and(|p| p.is_terminal() || p == Phase::Resetting);
        if settled {
            return None;
        }
    }
    let (_, status, _) = current_status_of(status, generation);
    let message = format!(
        "the object does not match the TaskReset schema and is skipped: {error}. Fix the spec (kubectl get -o yaml shows it), or delete the object"
    );
    Some(invalid_spec_update(status, generation, &message, now))
}

/// The spec passed validation but cannot be acted on (e.g. its endpoint is not allowed):
/// `Failed`/`InvalidSpec`, no call.
pub fn invalid_spec(tr: &TaskReset, message: &str, now: Timestamp) -> Update {
    let (generation, status, _) = current_status(tr);
    invalid_spec_update(status, generation, message, now)
}

/// The credentials Secret is missing or incomplete (`reason` `CredentialsNotFound`) or holds
/// keys of several kinds (`CredentialsInvalid`): `Pending`, looked at again after a delay that
/// grows with the time spent waiting. The transition (or a new message) is written with an
/// event; each later look only moves `nextAttemptTime` to the next look (no event), so it
/// never goes stale and the writes thin out as the delay doubles.
pub fn credentials_missing(
    tr: &TaskReset,
    reason: Reason,
    message: &str,
    now: Timestamp,
    policy: &Policy,
) -> Decision {
    let (generation, status, current) = current_status(tr);
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let waiting_since = ready
        .filter(|c| current && c.reason == reason.as_str())
        .map(|c| c.last_transition_time.0);
    let waited = waiting_since.map_or(Duration::ZERO, |since| until(now, since));
    let delay = waited.clamp(policy.credentials_retry_min, policy.credentials_retry_max);
    let unchanged = waiting_since.is_some()
        && status.phase == Some(Phase::Pending)
        && ready.is_some_and(|c| c.message == trim_message(message));
    if unchanged {
        return next_look(status, now, delay);
    }
    let mut status = transition(status, generation, Phase::Pending, reason, message, now);
    status.next_attempt_time = Some(Time(after(now, delay)));
    Decision::Write(Update {
        status,
        note: Some(Note {
            warning: true,
            reason,
            message: trim_message(message),
        }),
        requeue: Some(delay),
    })
}

/// Still waiting while `Pending`: wait for a `nextAttemptTime` still ahead, else move it to
/// the next look (`delay` from now) without an event.
fn next_look(mut status: TaskResetStatus, now: Timestamp, delay: Duration) -> Decision {
    if let Some(next) = &status.next_attempt_time
        && next.0 > now
    {
        return Decision::Wait(until(next.0, now));
    }
    status.next_attempt_time = Some(Time(after(now, delay)));
    Decision::Write(Update {
        status,
        note: None,
        requeue: Some(delay),
    })
}

/// How many `credentials_rejected_retry` delays after a 401 the same Secret version is tried
/// once more (1 h at the default 2 m): a 401 can also be fixed outside the Secret (a key
/// re-enabled in IAM, a gateway lock lifted) or be the gateway's mistake.
pub const REJECTED_RECHECK_FACTOR: u32 = 30;

/// The credentials were read: `None` to go ahead with the call, or, when the gateway already
/// rejected this very version of the Secret (`status.rejectedCredentials`), no call: the
/// Secret is read again after a delay that doubles from `credentials_rejected_retry` (the
/// time since the rejected call, at least that) up to `credentials_retry_max`. The same
/// version is called with again only [`REJECTED_RECHECK_FACTOR`] times
/// `credentials_rejected_retry` after the rejected call.
pub fn credentials_found(
    tr: &TaskReset,
    version: &SecretVersion,
    now: Timestamp,
    policy: &Policy,
) -> Option<Decision> {
    let (_, status, current) = current_status(tr);
    if !current || status.rejected_credentials.as_ref() != Some(version) {
        return None;
    }
    let rejected_at = status.last_attempt_time.as_ref().map_or(now, |t| t.0);
    let base = policy.credentials_rejected_retry;
    let recheck = base.saturating_mul(REJECTED_RECHECK_FACTOR);
    let since = until(now, rejected_at);
    if since >= recheck {
        return None;
    }
    let delay = since
        .clamp(base, policy.credentials_retry_max.max(base))
        .min(recheck - since);
    Some(next_look(status, now, delay))
}

/// The execution ledger shows that another object, or another generation of this one, already
/// ran this (namespace, name, spec): copy its outcome and time, make no call (DESIGN 3.8).
/// Ready is True when that run succeeded; an unfinished or unknown run stays `Unknown`.
pub fn already_executed(tr: &TaskReset, entry: &Entry, now: Timestamp) -> Update {
    let (generation, mut status, _) = current_status(tr);
    let phase = if entry.outcome == Some(Phase::Succeeded) {
        Phase::Succeeded
    } else {
        Phase::Unknown
    };
    let outcome = entry.outcome.map_or_else(
        || "no recorded outcome (the call may or may not have run)".to_owned(),
        |p| p.to_string(),
    );
    let message = format!(
        "this run (same namespace, name and spec) was already executed at {} by object uid {} generation {}: {outcome}{}. Set a new spec.runId to run it again",
        moment(entry.at),
        entry.uid,
        entry.generation,
        entry
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
    );
    if phase == Phase::Succeeded {
        status.message = entry.detail.clone();
    }
    status.completion_time = Some(Time(entry.at));
    status.next_attempt_time = None;
    Update {
        note: Some(Note {
            warning: phase != Phase::Succeeded,
            reason: Reason::AlreadyExecuted,
            message: trim_message(&message),
        }),
        status: transition(
            status,
            generation,
            phase,
            Reason::AlreadyExecuted,
            &message,
            now,
        ),
        requeue: None,
    }
}

/// The claim written before the call (DESIGN 3.4): `Resetting`, `attempts` = the attempt's
/// number, `lastAttemptTime` = now. Written with the decided-on resourceVersion as
/// precondition by the caller.
pub fn claim(tr: &TaskReset, attempt: &Attempt, now: Timestamp) -> TaskResetStatus {
    let (_, status, _) = current_status(tr);
    // The previous attempt's answer goes: a claim that is later declared Interrupted must not
    // show it as if it were this attempt's.
    let mut status = TaskResetStatus {
        message: None,
        error_code: None,
        error_message: None,
        http_status: None,
        request_id: None,
        ..status
    };
    status.attempts = Some(attempt.number);
    status.start_time.get_or_insert(Time(now));
    status.last_attempt_time = Some(Time(now));
    status.next_attempt_time = None;
    status.date_from = attempt.spec.date_from_ms;
    let message = format!("attempt {} of the reset is in flight", attempt.number);
    transition(
        status,
        attempt.generation,
        Phase::Resetting,
        Reason::Resetting,
        &message,
        now,
    )
}

/// Retry delay before attempt `number + 1`: `retry_base * 2^(number-1)`, capped, scaled by a
/// jitter factor in [0.8, 1.2) from `jitter` in [0, 1).
pub fn retry_delay(number: u32, policy: &Policy, jitter: f64) -> Duration {
    let exp = number.saturating_sub(1).min(30);
    let raw = policy
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(policy.retry_max);
    raw.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

/// Record an attempt's outcome on top of the claim that preceded it (DESIGN 3.5).
///
/// `claimed` is the status written by [`claim`]; `jitter` in [0, 1) spreads retries.
pub fn record(
    claimed: &TaskResetStatus,
    attempt: &Attempt,
    outcome: &ResetOutcome,
    class: OutcomeClass,
    now: Timestamp,
    policy: &Policy,
    jitter: f64,
) -> Update {
    // The claim carries no answer fields: `describe` sets this attempt's.
    let mut status = claimed.clone();
    let detail = describe(outcome, &mut status);
    let n = attempt.number;
    let retry_allowed = match class {
        OutcomeClass::Retryable => attempt.spec.retry_policy != RetryPolicy::Never,
        OutcomeClass::Ambiguous => attempt.spec.retry_policy == RetryPolicy::Always,
        _ => false,
    };
    status.ambiguous_attempt = attempt
        .ambiguous_before
        .or((class == OutcomeClass::Ambiguous).then_some(n));
    // The next attempt's delay and time, if one is allowed.
    let retry = (retry_allowed && n < policy.max_attempts).then(|| {
        let delay = retry_delay(n, policy, jitter);
        (delay, after(now, delay))
    });
    let (phase, reason, message, retry_in) =
        outcome_row(&mut status, attempt, class, &detail, retry, policy);
    let status = match retry_in {
        Some(delay) => {
            status.next_attempt_time = Some(Time(after(now, delay)));
            transition(status, attempt.generation, phase, reason, &message, now)
        }
        None => finish(status, attempt.generation, phase, reason, &message, now),
    };
    Update {
        status,
        note: Some(Note {
            warning: phase != Phase::Succeeded,
            reason,
            message: trim_message(if phase == Phase::Succeeded {
                &detail
            } else {
                &message
            }),
        }),
        requeue: retry_in,
    }
}

/// The row of DESIGN 3.5 an outcome falls in: (phase, reason, message, delay before the next
/// attempt). `retry`: the next attempt's delay and time, when one is allowed. Sets
/// `rejectedCredentials` on a 401.
fn outcome_row(
    status: &mut TaskResetStatus,
    attempt: &Attempt,
    class: OutcomeClass,
    detail: &str,
    retry: Option<(Duration, Timestamp)>,
    policy: &Policy,
) -> (Phase, Reason, String, Option<Duration>) {
    let n = attempt.number;
    let rerun_hint = "Check the task in ROMA Connect, then set a new spec.runId to run it again";
    // (phase, reason, message, delay before the next attempt); the event's reason is the
    // condition's.
    match (class, attempt.ambiguous_before, retry) {
        (OutcomeClass::Succeeded, _, _) => (
            Phase::Succeeded,
            Reason::ResetSucceeded,
            status.message.clone().unwrap_or_default(),
            None,
        ),
        (OutcomeClass::CredentialsRejected, _, _) => {
            status.rejected_credentials = attempt.credentials.clone();
            let secret = attempt
                .credentials
                .as_ref()
                .map_or_else(|| "the Secret".to_owned(), ToString::to_string);
            (
                Phase::Pending,
                Reason::CredentialsRejected,
                format!(
                    "attempt {n}: the gateway rejected the credentials of {secret} ({detail}). No call is made with them again: fix the Secret; the controller reads it again at nextAttemptTime and calls once it has changed"
                ),
                Some(policy.credentials_rejected_retry),
            )
        }
        (OutcomeClass::Retryable | OutcomeClass::Ambiguous, earlier, Some((delay, at))) => {
            let earlier = earlier.map_or_else(String::new, |k| {
                format!("; attempt {k} may have reset the task already")
            });
            (
                Phase::Retrying,
                Reason::RetryScheduled,
                format!(
                    "attempt {n} of {} failed ({detail}){earlier}; next attempt at {}",
                    policy.max_attempts,
                    moment(at)
                ),
                Some(delay),
            )
        }
        (OutcomeClass::Ambiguous, _, None) => (
            Phase::Unknown,
            Reason::OutcomeUnknown,
            format!(
                "attempt {n} may or may not have reset the task ({detail}); it will not be repeated. {rerun_hint}"
            ),
            None,
        ),
        // "May have executed" is never downgraded: after an ambiguous attempt (retryPolicy
        // Always), a rejected or exhausted run ends Unknown, not Failed.
        (OutcomeClass::Rejected, Some(k), _) | (OutcomeClass::Retryable, Some(k), None) => (
            Phase::Unknown,
            Reason::OutcomeUnknown,
            format!(
                "attempt {n} did not execute ({detail}), but attempt {k} may have reset the task; it will not be repeated. {rerun_hint}"
            ),
            None,
        ),
        (OutcomeClass::Rejected, None, _) => {
            (Phase::Failed, Reason::ResetFailed, detail.to_owned(), None)
        }
        (OutcomeClass::Retryable, None, None) => (
            Phase::Failed,
            Reason::RetriesExhausted,
            if attempt.spec.retry_policy == RetryPolicy::Never {
                format!("attempt {n} failed without executing ({detail}) and retryPolicy is Never")
            } else {
                format!("{n} attempts failed without executing; the last: {detail}")
            },
            None,
        ),
    }
}

/// What the execution ledger records for an attempt that ended in `class`: `Succeeded`,
/// `Unknown` when it (or an earlier attempt of the generation) may have executed, else
/// `Failed` (provably not executed, so a later run may go ahead).
pub fn ledger_outcome(class: OutcomeClass, attempt: &Attempt) -> Phase {
    match class {
        OutcomeClass::Succeeded => Phase::Succeeded,
        OutcomeClass::Ambiguous => Phase::Unknown,
        _ if attempt.ambiguous_before.is_some() => Phase::Unknown,
        _ => Phase::Failed,
    }
}

/// Whether a result (or a withdrawal) of the attempt that wrote `claim` may still replace
/// `current` after a conflicting write: while `current` still describes that attempt, as its
/// claim or as an `Interrupted` verdict on it (a result written later wins over `Interrupted`,
/// DESIGN 3.6). Once the status moved on (another attempt, generation or verdict), it may not.
pub fn still_describes(current: Option<&TaskResetStatus>, claim: &TaskResetStatus) -> bool {
    let Some(status) = current else {
        return false;
    };
    let interrupted = status.phase == Some(Phase::Unknown)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == Reason::Interrupted.as_str());
    status.observed_generation == claim.observed_generation
        && status.attempts == claim.attempts
        && (status.phase == Some(Phase::Resetting) || interrupted)
}

/// Copy the outcome's fields into `status` and describe it in one line.
fn describe(outcome: &ResetOutcome, status: &mut TaskResetStatus) -> String {
    status.http_status = outcome.http_status();
    status.request_id = outcome.request_id().map(str::to_owned);
    match outcome {
        ResetOutcome::Succeeded { message, .. } => status.message = Some(trim_message(message)),
        ResetOutcome::HttpError {
            error_code,
            error_message,
            ..
        }
        | ResetOutcome::CredentialsRejected {
            error_code,
            error_message,
            ..
        } => {
            status.error_code = Some(error_code.clone());
            status.error_message = Some(trim_message(error_message));
        }
        ResetOutcome::NotSent { reason } | ResetOutcome::Ambiguous { reason } => {
            status.error_message = Some(trim_message(reason));
        }
    }
    trim_message(&outcome.to_string())
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
