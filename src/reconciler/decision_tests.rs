//! Row-by-row tests of DESIGN section 3 against the pure decision functions.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{RetryPolicy, TaskResetStatus};
use crate::reconciler::fixtures::*;
use crate::roma::{OutcomeClass, ResetOutcome};

fn write(decision: Decision) -> Update {
    match decision {
        Decision::Write(update) => update,
        other => panic!("expected a status write, got {other:?}"),
    }
}

fn attempt_of(decision: Decision) -> Attempt {
    match decision {
        Decision::Attempt(attempt) => attempt,
        other => panic!("expected an attempt, got {other:?}"),
    }
}

// Row 1: suspend, notAfter.

#[test]
fn suspended_objects_are_parked_once_and_then_left_alone() {
    let mut tr = object(1, None);
    tr.spec.suspend = true;
    let update = write(decide(&tr, now(), &policy()));
    assert_eq!(update.status.phase, Some(Phase::Suspended));
    assert_eq!(update.status.observed_generation, Some(1));
    assert_eq!(ready(&update.status), ("False", "Suspended"));
    assert_eq!(update.requeue, None);
    tr.status = Some(update.status);
    assert_eq!(decide(&tr, now(), &policy()), Decision::Idle);
}

#[test]
fn not_after_in_the_past_fails_expired_without_a_call() {
    let mut tr = object(1, None);
    tr.spec.not_after = Some(Time(ts("2026-11-29T11:59:59Z")));
    let update = write(decide(&tr, now(), &policy()));
    assert_eq!(update.status.phase, Some(Phase::Failed));
    assert_eq!(ready(&update.status), ("False", "Expired"));
    assert!(has(&update.status, "Stalled"));
    assert!(update.status.completion_time.is_some());
    tr.spec.not_after = Some(Time(ts("2026-11-29T12:00:01Z")));
    assert_eq!(attempt_of(decide(&tr, now(), &policy())).number, 1);
}

// Row 2: terminal generations.

#[test]
fn a_terminal_generation_is_never_touched_again() {
    for phase in [Phase::Succeeded, Phase::Failed, Phase::Unknown] {
        let tr = object(2, Some(status(2, phase)));
        assert_eq!(decide(&tr, now(), &policy()), Decision::Idle, "{phase}");
        // Even a suspend or an expiry does not rewrite a finished generation.
        let mut tr = tr;
        tr.spec.not_after = Some(Time(ts("2000-01-01T00:00:00Z")));
        assert_eq!(decide(&tr, now(), &policy()), Decision::Idle, "{phase}");
    }
}

#[test]
fn a_new_generation_starts_again_from_attempt_one() {
    let mut old = status(1, Phase::Succeeded);
    old.attempts = Some(3);
    old.message = Some("Reset Success".into());
    let tr = object(2, Some(old));
    let attempt = attempt_of(decide(&tr, now(), &policy()));
    assert_eq!((attempt.generation, attempt.number), (2, 1));
    let claimed = claim(&tr, &attempt, now());
    assert_eq!(
        claimed.message, None,
        "the old generation's result is cleared"
    );
    assert_eq!(claimed.observed_generation, Some(2));
}

// Row 3: invalid spec.

#[test]
fn an_invalid_spec_fails_without_a_call() {
    let mut tr = object(1, None);
    tr.spec.task_id = "../../admin".into();
    let update = write(decide(&tr, now(), &policy()));
    assert_eq!(update.status.phase, Some(Phase::Failed));
    assert_eq!(ready(&update.status), ("False", "InvalidSpec"));
    assert!(update.status.conditions[0].message.contains("taskId"));
    let note = update.note.expect("an event");
    assert!(note.warning);

    let tr = object(1, None);
    let update = invalid_spec(&tr, "endpoint https://evil.example is not allowed", now());
    assert_eq!(ready(&update.status), ("False", "InvalidSpec"));
}

#[test]
fn missing_credentials_park_the_object_pending_with_growing_waits() {
    let tr = object(1, None);
    let update = write(credentials_missing(
        &tr,
        Reason::CredentialsNotFound,
        "Secret data/roma not found",
        now(),
        &policy(),
    ));
    assert_eq!(update.status.phase, Some(Phase::Pending));
    assert_eq!(ready(&update.status), ("Unknown", "CredentialsNotFound"));
    assert!(has(&update.status, "Reconciling"));
    assert_eq!(update.requeue, Some(Duration::from_secs(5)));

    // The same message at the next look (issue 15.8: nextAttemptTime went stale): only
    // nextAttemptTime moves, to the next look, a longer wait away; no event.
    let tr = object(1, Some(update.status));
    let later = ts("2026-11-29T12:01:00Z");
    let look = write(credentials_missing(
        &tr,
        Reason::CredentialsNotFound,
        "Secret data/roma not found",
        later,
        &policy(),
    ));
    assert_eq!(look.requeue, Some(Duration::from_secs(60)));
    assert_eq!(
        look.status.next_attempt_time,
        Some(Time(ts("2026-11-29T12:02:00Z")))
    );
    assert_eq!(look.note, None);
    assert_eq!(
        look.status.conditions,
        tr.status.as_ref().expect("status").conditions
    );
    // Looked at again before that: only a wait, no write.
    let tr_look = object(1, Some(look.status));
    assert_eq!(
        credentials_missing(
            &tr_look,
            Reason::CredentialsNotFound,
            "Secret data/roma not found",
            ts("2026-11-29T12:01:30Z"),
            &policy()
        ),
        Decision::Wait(Duration::from_secs(30))
    );
    // Before nextAttemptTime, decide only waits.
    let Decision::Wait(wait) = decide(&tr, ts("2026-11-29T12:00:02Z"), &policy()) else {
        panic!("expected a wait")
    };
    assert_eq!(wait, Duration::from_secs(3));
    // A different message (the Secret appeared but is incomplete) is written.
    assert!(matches!(
        credentials_missing(
            &tr,
            Reason::CredentialsNotFound,
            "Secret data/roma is not usable: no token",
            later,
            &policy()
        ),
        Decision::Write(_)
    ));
}

// Row 4: the claim.

#[test]
fn the_claim_marks_resetting_and_counts_the_attempt() {
    let tr = object(1, None);
    let attempt = attempt_of(decide(&tr, now(), &policy()));
    let claimed = claim(&tr, &attempt, now());
    assert_eq!(claimed.phase, Some(Phase::Resetting));
    assert_eq!(claimed.attempts, Some(1));
    assert_eq!(claimed.observed_generation, Some(1));
    assert_eq!(claimed.date_from, Some(1_630_052_714_000));
    assert_eq!(claimed.start_time, Some(Time(now())));
    assert_eq!(claimed.last_attempt_time, Some(Time(now())));
    assert_eq!(ready(&claimed), ("Unknown", "Resetting"));
    assert!(has(&claimed, "Reconciling"));
}

// Row 5: classification.

fn recorded(
    outcome: ResetOutcome,
    class: OutcomeClass,
    retry_policy: RetryPolicy,
    number: u32,
) -> Update {
    let mut tr = object(1, None);
    tr.spec.retry_policy = retry_policy;
    let mut attempt = attempt_of(decide(&tr, now(), &policy()));
    attempt.number = number;
    let claimed = claim(&tr, &attempt, now());
    record(&claimed, &attempt, &outcome, class, now(), &policy(), 0.5)
}

#[test]
fn success_records_the_message_and_ends_ready() {
    let update = recorded(
        ResetOutcome::Succeeded {
            http_status: 200,
            message: "Reset Success".into(),
            request_id: Some("req-0".into()),
        },
        OutcomeClass::Succeeded,
        RetryPolicy::OnTransientError,
        1,
    );
    let s = &update.status;
    assert_eq!(s.phase, Some(Phase::Succeeded));
    assert_eq!(s.message.as_deref(), Some("Reset Success"));
    assert_eq!(s.http_status, Some(200));
    assert_eq!(s.request_id.as_deref(), Some("req-0"));
    assert!(s.completion_time.is_some());
    assert_eq!(ready(s), ("True", "ResetSucceeded"));
    assert!(!has(s, "Reconciling") && !has(s, "Stalled"));
    assert_eq!(update.requeue, None);
    let note = update.note.expect("event");
    assert_eq!((note.warning, note.reason), (false, Reason::ResetSucceeded));
}

#[test]
fn a_service_rejection_is_terminal_with_its_code() {
    let update = recorded(
        http_error(400, "FDI.3150", "The task list is empty.", true),
        OutcomeClass::Rejected,
        RetryPolicy::Always,
        1,
    );
    let s = &update.status;
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.error_code.as_deref(), Some("FDI.3150"));
    assert_eq!(s.error_message.as_deref(), Some("The task list is empty."));
    assert_eq!(s.http_status, Some(400));
    assert_eq!(ready(s), ("False", "ResetFailed"));
    assert!(has(s, "Stalled"));
    assert_eq!(update.note.expect("event").reason, Reason::ResetFailed);
}

#[test]
fn retryable_failures_back_off_until_attempts_run_out() {
    let throttled = || http_error(429, "APIGW.0308", "over ratelimit", true);
    let update = recorded(
        throttled(),
        OutcomeClass::Retryable,
        RetryPolicy::OnTransientError,
        1,
    );
    assert_eq!(update.status.phase, Some(Phase::Retrying));
    assert_eq!(ready(&update.status), ("Unknown", "RetryScheduled"));
    // 2 s base, jitter 0.5 -> factor 1.0.
    assert_eq!(update.requeue, Some(Duration::from_secs(2)));
    assert_eq!(
        update.status.next_attempt_time,
        Some(Time(ts("2026-11-29T12:00:02Z")))
    );
    assert_eq!(
        update.note.as_ref().expect("event").reason,
        Reason::RetryScheduled
    );

    let last = recorded(
        throttled(),
        OutcomeClass::Retryable,
        RetryPolicy::OnTransientError,
        3,
    );
    assert_eq!(last.status.phase, Some(Phase::Failed));
    assert_eq!(ready(&last.status), ("False", "RetriesExhausted"));

    let never = recorded(
        ResetOutcome::NotSent {
            reason: "connection refused".into(),
        },
        OutcomeClass::Retryable,
        RetryPolicy::Never,
        1,
    );
    assert_eq!(never.status.phase, Some(Phase::Failed));
    assert!(never.status.conditions[0].message.contains("Never"));
}

#[test]
fn a_retry_is_attempted_once_next_attempt_time_passes() {
    let update = recorded(
        http_error(503, "FDI.9999", "busy", true),
        OutcomeClass::Retryable,
        RetryPolicy::OnTransientError,
        1,
    );
    let tr = object(1, Some(update.status));
    assert_eq!(
        decide(&tr, ts("2026-11-29T12:00:01Z"), &policy()),
        Decision::Wait(Duration::from_secs(1))
    );
    let attempt = attempt_of(decide(&tr, ts("2026-11-29T12:00:02Z"), &policy()));
    assert_eq!(attempt.number, 2);
    assert_eq!(
        attempt.retry_of,
        Some(1),
        "the retry of the recorded attempt"
    );
    let fresh = attempt_of(decide(&object(1, None), now(), &policy()));
    assert_eq!(fresh.retry_of, None);
}

#[test]
fn ambiguous_outcomes_stop_at_unknown_unless_the_policy_is_always() {
    let timeout = || ResetOutcome::Ambiguous {
        reason: "timed out after 60s waiting for the answer".into(),
    };
    for policy in [RetryPolicy::OnTransientError, RetryPolicy::Never] {
        let update = recorded(timeout(), OutcomeClass::Ambiguous, policy, 1);
        assert_eq!(update.status.phase, Some(Phase::Unknown), "{policy:?}");
        assert_eq!(ready(&update.status), ("False", "OutcomeUnknown"));
        assert!(has(&update.status, "Stalled"));
        assert_eq!(update.requeue, None);
        assert!(update.note.expect("event").warning);
    }
    let always = recorded(timeout(), OutcomeClass::Ambiguous, RetryPolicy::Always, 1);
    assert_eq!(always.status.phase, Some(Phase::Retrying));
    let exhausted = recorded(timeout(), OutcomeClass::Ambiguous, RetryPolicy::Always, 3);
    assert_eq!(exhausted.status.phase, Some(Phase::Unknown));
}

#[test]
fn rejected_credentials_wait_long_and_stay_pending() {
    let update = recorded(
        http_error(
            401,
            "APIGW.0301",
            "Incorrect IAM authentication information",
            true,
        ),
        OutcomeClass::CredentialsRejected,
        RetryPolicy::OnTransientError,
        1,
    );
    assert_eq!(update.status.phase, Some(Phase::Pending));
    assert_eq!(ready(&update.status), ("Unknown", "CredentialsRejected"));
    assert_eq!(update.requeue, Some(Duration::from_secs(120)));
    assert_eq!(update.status.http_status, Some(401));
    // After the delay, the Secret is read again (a fixed Secret is picked up with no spec
    // change).
    let tr = object(1, Some(update.status));
    assert_eq!(
        attempt_of(decide(&tr, ts("2026-11-29T12:02:00Z"), &policy())).number,
        2
    );
}

/// Issue 15.7: a 401 is a fact about one version of the Secret. It is recorded; the same
/// version is never called with again (the Secret is re-read on a doubling, bounded delay,
/// `nextAttemptTime` telling when); a new version is called with. No "attempt 19 is due".
#[test]
fn a_rejected_secret_version_is_never_called_with_again() {
    let v7 = SecretVersion {
        secret: "data/roma".into(),
        resource_version: "7".into(),
    };
    let tr = object(1, None);
    let mut attempt = attempt_of(decide(&tr, now(), &policy()));
    attempt.credentials = Some(v7.clone());
    let claimed = claim(&tr, &attempt, now());
    let rejected = http_error(
        401,
        "APIGW.0301",
        "Incorrect IAM authentication information",
        true,
    );
    let update = record(
        &claimed,
        &attempt,
        &rejected,
        OutcomeClass::CredentialsRejected,
        now(),
        &policy(),
        0.5,
    );
    assert_eq!(update.status.rejected_credentials.as_ref(), Some(&v7));
    assert_eq!(update.status.attempts, Some(1));
    let message = &update.note.as_ref().expect("event").message;
    assert!(
        message.contains("Secret data/roma (resourceVersion 7)"),
        "{message}"
    );
    assert!(
        !message.contains("is due") && !message.contains("attempt 2"),
        "{message}"
    );
    assert_eq!(
        update.note.as_ref().expect("event").reason,
        Reason::CredentialsRejected
    );

    // Each look at the same version: no call, the next look further away (2m, 4m, then the
    // 5m cap), nextAttemptTime moved, no event.
    let mut tr = object(1, Some(update.status));
    let mut at = ts("2026-11-29T12:02:00Z");
    for (expected, next) in [
        (120, "2026-11-29T12:04:00Z"),
        (240, "2026-11-29T12:08:00Z"),
        (300, "2026-11-29T12:13:00Z"),
        (300, "2026-11-29T12:18:00Z"),
    ] {
        let attempt = attempt_of(decide(&tr, at, &policy()));
        assert_eq!(attempt.number, 2, "the count of calls stays honest");
        let look = write(credentials_found(&tr, &v7, at, &policy()).expect("no call"));
        assert_eq!(look.requeue, Some(Duration::from_secs(expected)));
        assert_eq!(look.status.next_attempt_time, Some(Time(ts(next))));
        assert_eq!(look.note, None);
        assert_eq!(look.status.attempts, Some(1));
        assert_eq!(look.status.phase, Some(Phase::Pending));
        tr = object(1, Some(look.status));
        assert!(matches!(decide(&tr, at, &policy()), Decision::Wait(_)));
        at = ts(next);
    }
    // The same version, once the bounded recheck (30 x 2m) is reached: called with once more.
    let look =
        write(credentials_found(&tr, &v7, ts("2026-11-29T12:58:00Z"), &policy()).expect("no call"));
    assert_eq!(
        look.requeue,
        Some(Duration::from_secs(120)),
        "capped at the recheck"
    );
    assert_eq!(
        credentials_found(&tr, &v7, ts("2026-11-29T13:00:00Z"), &policy()),
        None
    );
    // A new version of the Secret (any edit): called with.
    let v8 = SecretVersion {
        resource_version: "8".into(),
        ..v7.clone()
    };
    assert_eq!(credentials_found(&tr, &v8, at, &policy()), None);
    // The default Secret's versions are compared the same way (another Secret is another).
    let other = SecretVersion {
        secret: "ops/roma".into(),
        ..v7
    };
    assert_eq!(credentials_found(&tr, &other, at, &policy()), None);
}

// Row 6: a claim left behind.

#[test]
fn a_young_claim_is_waited_on_and_an_old_one_is_interrupted() {
    // The previous attempt was throttled; its answer must not outlive the next claim.
    let tr = object(
        1,
        Some(TaskResetStatus {
            http_status: Some(429),
            error_code: Some("APIGW.0308".into()),
            request_id: Some("old".into()),
            ..status(1, Phase::Retrying)
        }),
    );
    let attempt = attempt_of(decide(&tr, now(), &policy()));
    assert_eq!(attempt.number, 2);
    let claimed = claim(&tr, &attempt, now());
    assert_eq!(
        (claimed.error_code.as_deref(), claimed.request_id.as_deref()),
        (None, None)
    );
    let tr = object(1, Some(claimed));
    assert_eq!(
        decide(&tr, ts("2026-11-29T12:01:00Z"), &policy()),
        Decision::Wait(Duration::from_secs(30))
    );
    let update = write(decide(&tr, ts("2026-11-29T12:01:30Z"), &policy()));
    assert_eq!(update.status.phase, Some(Phase::Unknown));
    assert_eq!(
        update.status.http_status, None,
        "no answer is shown for an interrupted attempt"
    );
    assert_eq!(ready(&update.status), ("False", "Interrupted"));
    assert_eq!(update.status.attempts, Some(2), "no new attempt is counted");
    assert_eq!(update.note.expect("event").reason, Reason::Interrupted);
}

// Row 7: metadata-only edits.

#[test]
fn metadata_only_edits_change_nothing() {
    let mut tr = object(4, Some(status(4, Phase::Succeeded)));
    tr.metadata
        .labels
        .get_or_insert_default()
        .insert("team".into(), "data".into());
    tr.metadata.resource_version = Some("99".into());
    assert_eq!(decide(&tr, now(), &policy()), Decision::Idle);
}

#[test]
fn retry_delays_double_are_capped_and_jittered() {
    let p = policy();
    assert_eq!(retry_delay(1, &p, 0.5), Duration::from_secs(2));
    assert_eq!(retry_delay(2, &p, 0.5), Duration::from_secs(4));
    assert_eq!(retry_delay(3, &p, 0.5), Duration::from_secs(8));
    assert_eq!(retry_delay(30, &p, 0.5), Duration::from_secs(60));
    assert_eq!(retry_delay(1, &p, 0.0), Duration::from_millis(1600));
    assert!(retry_delay(1, &p, 0.999) < Duration::from_millis(2400));
}

// Row 8: the execution ledger.

#[test]
fn a_run_already_in_the_ledger_is_not_repeated() {
    let tr = object(1, None);
    let done = crate::ledger::Entry {
        uid: "old-uid".into(),
        generation: 1,
        attempt: 1,
        at: ts("2026-11-28T08:00:00Z"),
        outcome: Some(Phase::Succeeded),
        detail: Some("Reset Success".into()),
        base: None,
        ambiguous_attempt: None,
    };
    let update = already_executed(&tr, &done, now());
    assert_eq!(update.status.phase, Some(Phase::Succeeded));
    assert_eq!(ready(&update.status), ("True", "AlreadyExecuted"));
    assert_eq!(
        update.status.completion_time,
        Some(Time(ts("2026-11-28T08:00:00Z")))
    );
    assert_eq!(update.status.message.as_deref(), Some("Reset Success"));
    assert!(update.status.conditions[0].message.contains("runId"));

    let unknown = crate::ledger::Entry {
        outcome: None,
        ..done
    };
    let update = already_executed(&tr, &unknown, now());
    assert_eq!(update.status.phase, Some(Phase::Unknown));
    assert_eq!(ready(&update.status), ("False", "AlreadyExecuted"));
    assert!(has(&update.status, "Stalled"));
}

// Row 5 with retryPolicy Always, and the guarantee: "may have executed" is never downgraded.

#[test]
fn after_an_ambiguous_attempt_no_outcome_reads_as_not_executed() {
    let after_ambiguous = |outcome: ResetOutcome, class: OutcomeClass, number: u32| {
        let mut tr = object(1, None);
        tr.spec.retry_policy = RetryPolicy::Always;
        let mut attempt = attempt_of(decide(&tr, now(), &policy()));
        attempt.number = number;
        attempt.ambiguous_before = Some(1);
        let claimed = claim(&tr, &attempt, now());
        let update = record(&claimed, &attempt, &outcome, class, now(), &policy(), 0.5);
        (update, ledger_outcome(class, &attempt))
    };
    let (rejected, ledger) = after_ambiguous(
        http_error(400, "FDI.3150", "The task list is empty.", true),
        OutcomeClass::Rejected,
        2,
    );
    assert_eq!(rejected.status.phase, Some(Phase::Unknown));
    assert_eq!(ready(&rejected.status), ("False", "OutcomeUnknown"));
    assert!(has(&rejected.status, "Stalled"));
    let message = &rejected.status.conditions[0].message;
    assert!(message.contains("attempt 1 may have reset"), "{message}");
    assert_eq!(ledger, Phase::Unknown, "the ledger keeps may-have-executed");
    assert_eq!(
        rejected.status.ambiguous_attempt,
        Some(1),
        "and so does the status"
    );

    let (exhausted, ledger) = after_ambiguous(
        http_error(429, "APIGW.0308", "over ratelimit", true),
        OutcomeClass::Retryable,
        3,
    );
    assert_eq!(exhausted.status.phase, Some(Phase::Unknown));
    assert!(
        !exhausted.status.conditions[0]
            .message
            .contains("without executing")
    );
    assert_eq!(ledger, Phase::Unknown);

    let (retrying, _) = after_ambiguous(
        http_error(429, "APIGW.0308", "over ratelimit", true),
        OutcomeClass::Retryable,
        2,
    );
    assert_eq!(retrying.status.phase, Some(Phase::Retrying));
    assert!(
        retrying.status.conditions[0]
            .message
            .contains("attempt 1 may have")
    );

    let (succeeded, ledger) = after_ambiguous(
        ResetOutcome::Succeeded {
            http_status: 200,
            message: "Reset Success".into(),
            request_id: None,
        },
        OutcomeClass::Succeeded,
        2,
    );
    assert_eq!(succeeded.status.phase, Some(Phase::Succeeded));
    assert_eq!(ledger, Phase::Succeeded);
}

#[test]
fn an_ambiguous_attempt_retried_under_always_is_remembered_in_the_status() {
    let timeout = ResetOutcome::Ambiguous {
        reason: "timed out".into(),
    };
    let update = recorded(timeout, OutcomeClass::Ambiguous, RetryPolicy::Always, 1);
    assert_eq!(update.status.phase, Some(Phase::Retrying));
    assert_eq!(update.status.ambiguous_attempt, Some(1));
    let tr = object(1, Some(update.status));
    let later = ts("2026-11-29T13:00:00Z");
    let retry = attempt_of(decide(&tr, later, &policy()));
    assert_eq!(retry.ambiguous_before, Some(1), "the next attempt knows it");
    assert_eq!(
        claim(&tr, &retry, later).ambiguous_attempt,
        Some(1),
        "the claim keeps it"
    );
}

#[test]
fn the_ledger_records_not_executed_only_for_provably_unsent_or_rejected_calls() {
    let attempt = attempt_of(decide(&object(1, None), now(), &policy()));
    for (class, expected) in [
        (OutcomeClass::Succeeded, Phase::Succeeded),
        (OutcomeClass::Ambiguous, Phase::Unknown),
        (OutcomeClass::Rejected, Phase::Failed),
        (OutcomeClass::Retryable, Phase::Failed),
        (OutcomeClass::CredentialsRejected, Phase::Failed),
    ] {
        assert_eq!(ledger_outcome(class, &attempt), expected, "{class:?}");
    }
}

/// Issue 15.6: the event's reason is the Ready condition's, for every recorded outcome (a
/// timeout read `ResetInterrupted`, `retryPolicy: Never` `ResetFailed` under
/// `RetriesExhausted`).
#[test]
fn every_event_reason_is_the_ready_reason() {
    let timeout = || ResetOutcome::Ambiguous {
        reason: "timed out".into(),
    };
    let refused = || ResetOutcome::NotSent {
        reason: "connection refused".into(),
    };
    let cases = [
        recorded(
            timeout(),
            OutcomeClass::Ambiguous,
            RetryPolicy::OnTransientError,
            1,
        ),
        recorded(refused(), OutcomeClass::Retryable, RetryPolicy::Never, 1),
        recorded(
            refused(),
            OutcomeClass::Retryable,
            RetryPolicy::OnTransientError,
            1,
        ),
        recorded(
            refused(),
            OutcomeClass::Retryable,
            RetryPolicy::OnTransientError,
            3,
        ),
        recorded(
            http_error(400, "FDI.3150", "The task list is empty.", true),
            OutcomeClass::Rejected,
            RetryPolicy::OnTransientError,
            1,
        ),
        recorded(
            http_error(401, "APIGW.0301", "Incorrect", true),
            OutcomeClass::CredentialsRejected,
            RetryPolicy::OnTransientError,
            1,
        ),
    ];
    for update in cases {
        let note = update.note.expect("an event");
        assert_eq!(note.reason.as_str(), ready(&update.status).1);
    }
    let never = recorded(refused(), OutcomeClass::Retryable, RetryPolicy::Never, 1);
    assert_eq!(never.note.expect("event").reason, Reason::RetriesExhausted);
    let unknown = recorded(timeout(), OutcomeClass::Ambiguous, RetryPolicy::Never, 1);
    assert_eq!(unknown.note.expect("event").reason, Reason::OutcomeUnknown);
}

#[test]
fn messages_name_times_to_the_second() {
    let precise = ts("2026-11-29T12:00:00.123456789Z");
    let fractional = |message: &str| {
        message
            .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
            .any(|word| word.starts_with("2026-") && word.contains('.'))
    };
    // "next attempt at ..."
    let tr = object(1, None);
    let attempt = attempt_of(decide(&tr, precise, &policy()));
    let claimed = claim(&tr, &attempt, precise);
    let busy = http_error(503, "FDI.5000", "busy", true);
    let class = crate::roma::classify(&busy);
    let retry = record(&claimed, &attempt, &busy, class, precise, &policy(), 0.5);
    // "claimed at ... recorded no result"
    let mut stale = claimed.clone();
    stale.last_attempt_time = Some(Time(ts("2026-11-29T10:00:00.987654321Z")));
    let interrupted = write(decide(&object(1, Some(stale)), now(), &policy()));
    // "already executed at ..."
    let entry = crate::ledger::Entry {
        uid: "uid-0".into(),
        generation: 1,
        attempt: 1,
        at: precise,
        outcome: Some(Phase::Succeeded),
        detail: None,
        base: None,
        ambiguous_attempt: None,
    };
    let executed = already_executed(&tr, &entry, precise);
    for update in [retry, interrupted, executed] {
        let (_, reason) = ready(&update.status);
        let message = &update.status.conditions[0].message;
        assert!(message.contains("2026-11-29T1"), "{reason}: {message}");
        assert!(!fractional(message), "{reason}: {message}");
    }
}

#[test]
fn a_malformed_object_fails_invalid_spec_once_and_never_over_a_settled_generation() {
    let update = malformed(None, 1, "spec.projectId: invalid type", now()).expect("a status");
    assert_eq!(update.status.phase, Some(Phase::Failed));
    assert_eq!(update.status.observed_generation, Some(1));
    assert_eq!(ready(&update.status), ("False", "InvalidSpec"));
    assert!(update.status.conditions[0].message.contains("spec.projectId"));
    assert_eq!(update.note.map(|n| n.reason), Some(Reason::InvalidSpec));
    // Written once: the status it wrote settles the generation.
    assert_eq!(malformed(Some(update.status), 1, "x", now()), None);
    // A finished generation or a claim in flight is never rewritten (row 2, row 6).
    for phase in [Phase::Succeeded, Phase::Unknown, Phase::Resetting] {
        assert_eq!(malformed(Some(status(1, phase)), 1, "x", now()), None, "{phase}");
    }
    // A new generation that no longer reads is a new verdict.
    let next = malformed(Some(status(1, Phase::Succeeded)), 2, "x", now()).expect("a status");
    assert_eq!(next.status.observed_generation, Some(2));
    assert_eq!(next.status.attempts, None, "a new generation starts from nothing");
}
