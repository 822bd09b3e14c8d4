//! The state machine, row by row: each test walks [`step`] through one path of DESIGN
//! section 3 with a pretend world answering its effects, and checks the effects in order.

use std::time::Duration;

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::SecretVersion;
use crate::ledger::Entry;
use crate::reconciler::fixtures::*;
use crate::roma::{SecretString, classify};

/// How the pretend API server answers a status write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Ok,
    Conflict,
    Gone,
    Fails,
}

/// What the Secret read finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    Found,
    Password,
    Missing,
    Mixed,
    Fails,
}

/// What the pretend world answers to each effect.
#[derive(Debug, Clone)]
struct World {
    endpoint: Result<(), String>,
    turn: Turn,
    secret: Secret,
    write: Api,
    claim: Api,
    /// `None`: the ledger cannot be written.
    ledger: Option<Verdict>,
    outcome: ResetOutcome,
    withdraw_lands: bool,
    /// What the IAM exchange before the turn gives (password credentials).
    prepared: Result<(), ResetOutcome>,
    /// The stop signal comes right after this effect.
    stop_after: Option<&'static str>,
    /// How long after the reconcile started each step runs.
    later: SignedDuration,
}

impl Default for World {
    fn default() -> Self {
        Self {
            endpoint: Ok(()),
            turn: Turn::Granted,
            secret: Secret::Found,
            write: Api::Ok,
            claim: Api::Ok,
            ledger: Some(Verdict::PROCEED),
            outcome: ResetOutcome::Succeeded {
                http_status: 200,
                message: "Reset Success".into(),
                request_id: Some("req-1".into()),
            },
            withdraw_lands: true,
            prepared: Ok(()),
            stop_after: None,
            later: SignedDuration::ZERO,
        }
    }
}

/// What a walk did.
#[derive(Debug, Default)]
struct Trace {
    /// The effects, by name, in order; the last is `Done`.
    effects: Vec<&'static str>,
    /// How it ended.
    next: Option<Next>,
    /// Every status written (decided, claimed, withdrawn, recorded), in order.
    statuses: Vec<TaskResetStatus>,
    /// What the ledger entry was completed with.
    ledger: Option<Phase>,
    /// The reasons of the events published.
    events: Vec<Reason>,
    /// Whether the call went out (not answered from a failed IAM exchange).
    sent: bool,
}

impl Trace {
    fn last(&self) -> &TaskResetStatus {
        self.statuses.last().expect("a status was written")
    }

    fn called(&self) -> bool {
        self.effects.contains(&"Call")
    }
}

fn name(effect: &Effect<'_>) -> &'static str {
    match effect {
        Effect::ResolveEndpoint { .. } => "ResolveEndpoint",
        Effect::Prepare { .. } => "Prepare",
        Effect::TakeTurn(_) => "TakeTurn",
        Effect::ReadCredentials { .. } => "ReadCredentials",
        Effect::Write(_) => "Write",
        Effect::Claim(_) => "Claim",
        Effect::Reserve { .. } => "Reserve",
        Effect::Withdraw { .. } => "Withdraw",
        Effect::Release { .. } => "Release",
        Effect::Call { .. } => "Call",
        Effect::Record { .. } => "Record",
        Effect::Complete { .. } => "Complete",
        Effect::Publish(_) => "Publish",
        Effect::Done(_) => "Done",
    }
}

fn written(tr: &TaskReset, status: &TaskResetStatus, api: Api) -> Option<Answer> {
    let mut obj = tr.clone();
    obj.status = Some(status.clone());
    obj.metadata.resource_version = Some("8".into());
    match api {
        Api::Ok => Some(Answer::Written(Box::new(obj))),
        Api::Conflict => Some(Answer::Conflict),
        Api::Gone => Some(Answer::Gone),
        Api::Fails => None,
    }
}

/// Walk `tr` through [`step`] in `world` until it is done.
fn walk(tr: &TaskReset, world: &World) -> Trace {
    let mut facts = Facts::new(now(), 0.5);
    let mut trace = Trace::default();
    let clock = now().checked_add(world.later).expect("clock");
    for _ in 0..32 {
        let effect = step(tr, &facts, clock, &policy());
        let effect_name = name(&effect);
        trace.effects.push(effect_name);
        let learned = match effect {
            Effect::Done(next) => {
                trace.next = Some(next);
                return trace;
            }
            Effect::ResolveEndpoint { .. } => Learned::Endpoint(
                world
                    .endpoint
                    .clone()
                    .map(|()| Endpoint::for_region("cn-north-4").expect("endpoint")),
            ),
            Effect::Prepare { .. } => Learned::Prepared(world.prepared.clone()),
            Effect::TakeTurn(_) => Learned::Turn(world.turn),
            Effect::ReadCredentials { .. } => match world.secret {
                Secret::Found => Learned::Credentials(Lookup::Found(
                    Credentials::Token(SecretString::from("token")),
                    secret_version("41"),
                )),
                Secret::Password => Learned::Credentials(Lookup::Found(
                    Credentials::Password {
                        username: "robot".into(),
                        password: SecretString::from("s3cret"),
                        domain_name: "acme".into(),
                        iam_endpoint: None,
                    },
                    secret_version("41"),
                )),
                Secret::Missing => {
                    Learned::Credentials(Lookup::Missing("Secret data/roma not found".into()))
                }
                Secret::Mixed => {
                    Learned::Credentials(Lookup::Invalid("holds keys of more than one kind".into()))
                }
                Secret::Fails => Learned::Failed,
            },
            Effect::Write(update) => {
                trace.statuses.push(update.status.clone());
                match written(tr, &update.status, world.write) {
                    Some(answer) => Learned::Written(update, answer),
                    None => Learned::Failed,
                }
            }
            Effect::Claim(status) => {
                trace.statuses.push(status.clone());
                match written(tr, &status, world.claim) {
                    Some(answer) => Learned::Claimed(Claim { status, answer }),
                    None => Learned::Failed,
                }
            }
            Effect::Reserve { .. } => match &world.ledger {
                Some(verdict) => Learned::Reserved(Reservation {
                    verdict: verdict.clone(),
                    replaced: None,
                }),
                None => Learned::Failed,
            },
            Effect::Withdraw { status, .. } => {
                trace.statuses.push(status);
                Learned::Withdrawn(world.withdraw_lands)
            }
            Effect::Release { .. } => Learned::Released,
            Effect::Call { known, .. } => {
                let sent = known.is_none();
                let outcome = known.unwrap_or_else(|| world.outcome.clone());
                trace.sent = sent;
                let class = classify(&outcome);
                Learned::Called(Called { outcome, class })
            }
            Effect::Record { update, .. } => {
                trace.statuses.push(update.status.clone());
                Learned::Recorded(update)
            }
            Effect::Complete { outcome, .. } => {
                trace.ledger = Some(outcome);
                Learned::Completed
            }
            Effect::Publish(note) => {
                trace.events.push(note.reason);
                Learned::Published
            }
        };
        facts.learn(learned);
        if world.stop_after == Some(effect_name) {
            facts.stopping = true;
        }
    }
    panic!("the walk did not settle: {:?}", trace.effects);
}

fn secret_version(resource_version: &str) -> SecretVersion {
    SecretVersion {
        secret: "data/roma".into(),
        resource_version: resource_version.into(),
    }
}

fn due() -> TaskReset {
    object(1, None)
}

const CALL_PATH: [&str; 8] = [
    "ResolveEndpoint",
    "ReadCredentials",
    "TakeTurn",
    "Claim",
    "Reserve",
    "Call",
    "Record",
    "Complete",
];

#[test]
fn rows_4_and_5_a_due_attempt_claims_reserves_calls_records_completes_and_publishes() {
    let trace = walk(&due(), &World::default());
    assert_eq!(trace.effects[..8], CALL_PATH);
    assert_eq!(trace.effects[8..], ["Publish", "Done"]);
    assert_eq!(trace.next, Some(Next::AwaitChange));
    assert_eq!(trace.statuses[0].phase, Some(Phase::Resetting), "the claim");
    assert_eq!(trace.statuses[0].attempts, Some(1));
    assert_eq!(trace.last().phase, Some(Phase::Succeeded));
    assert_eq!(trace.ledger, Some(Phase::Succeeded));
    assert_eq!(trace.events, [Reason::ResetSucceeded]);
}

#[test]
fn row_1_suspend_parks_the_generation_without_a_call() {
    let mut tr = due();
    tr.spec.suspend = true;
    let trace = walk(&tr, &World::default());
    assert_eq!(trace.effects, ["Write", "Publish", "Done"]);
    assert_eq!(trace.last().phase, Some(Phase::Suspended));
    assert_eq!(trace.events, [Reason::Suspended]);
}

#[test]
fn row_1_a_passed_not_after_expires_the_generation_without_a_call() {
    let mut tr = due();
    tr.spec.not_after = Some(Time(ts("2026-11-29T11:00:00Z")));
    let trace = walk(&tr, &World::default());
    assert_eq!(trace.effects, ["Write", "Publish", "Done"]);
    assert_eq!(trace.last().phase, Some(Phase::Failed));
    assert_eq!(trace.events, [Reason::Expired]);
}

#[test]
fn row_2_a_terminal_generation_is_left_alone() {
    for phase in [Phase::Succeeded, Phase::Failed, Phase::Unknown] {
        let trace = walk(&object(3, Some(status(3, phase))), &World::default());
        assert_eq!(trace.effects, ["Done"], "{phase}");
        assert_eq!(trace.next, Some(Next::AwaitChange));
    }
}

#[test]
fn row_3_an_invalid_spec_fails_without_a_call() {
    let mut tr = due();
    tr.spec.task_id = "not a task id".into();
    let trace = walk(&tr, &World::default());
    assert_eq!(trace.effects, ["Write", "Publish", "Done"]);
    assert_eq!(ready(trace.last()), ("False", "InvalidSpec"));
}

#[test]
fn row_3_an_endpoint_the_allow_list_refuses_fails_without_a_call() {
    let world = World {
        endpoint: Err("endpoint https://evil.example is not allowed".into()),
        ..World::default()
    };
    let trace = walk(&due(), &world);
    assert_eq!(
        trace.effects,
        ["ResolveEndpoint", "Write", "Publish", "Done"]
    );
    assert_eq!(ready(trace.last()), ("False", "InvalidSpec"));
    assert!(ready_message(trace.last()).contains("evil.example"));
}

#[test]
fn row_3_missing_or_mixed_credentials_park_the_object_pending_without_a_claim() {
    for (secret, reason) in [
        (Secret::Missing, "CredentialsNotFound"),
        (Secret::Mixed, "CredentialsInvalid"),
    ] {
        let trace = walk(
            &due(),
            &World {
                secret,
                ..World::default()
            },
        );
        let path = [
            "ResolveEndpoint",
            "ReadCredentials",
            "Write",
            "Publish",
            "Done",
        ];
        assert_eq!(trace.effects, path, "{secret:?}");
        assert_eq!(trace.last().phase, Some(Phase::Pending));
        assert_eq!(ready(trace.last()).1, reason);
        assert!(matches!(trace.next, Some(Next::Requeue(_))));
    }
}

#[test]
fn row_5_a_secret_version_the_gateway_rejected_is_not_called_with_again() {
    let mut rejected = status(1, Phase::Pending);
    rejected.rejected_credentials = Some(secret_version("41"));
    rejected.last_attempt_time = Some(Time(ts("2026-11-29T11:59:00Z")));
    rejected.next_attempt_time = Some(Time(ts("2026-11-29T11:59:30Z")));
    let trace = walk(&object(1, Some(rejected)), &World::default());
    assert_eq!(trace.effects[..2], CALL_PATH[..2]);
    assert!(
        !trace.effects.contains(&"TakeTurn") && !trace.effects.contains(&"Claim"),
        "no turn taken, nothing claimed: {:?}",
        trace.effects
    );
}

#[test]
fn a_reconcile_waiting_for_its_turn_claims_nothing_and_looks_again_when_told() {
    let wait = Duration::from_millis(750);
    let trace = walk(
        &due(),
        &World {
            turn: Turn::Wait(wait),
            ..World::default()
        },
    );
    assert_eq!(
        trace.effects,
        ["ResolveEndpoint", "ReadCredentials", "TakeTurn", "Done"]
    );
    assert_eq!(trace.next, Some(Next::Requeue(wait)));
}

#[test]
fn row_4_a_lost_claim_race_makes_no_call_and_looks_again_soon() {
    let trace = walk(
        &due(),
        &World {
            claim: Api::Conflict,
            ..World::default()
        },
    );
    assert_eq!(trace.effects[..4], CALL_PATH[..4]);
    assert_eq!(trace.effects[4..], ["Done"]);
    assert_eq!(trace.next, Some(Next::Requeue(CONFLICT_REQUEUE)));
}

#[test]
fn row_4_a_claim_on_a_deleted_object_makes_no_call() {
    let trace = walk(
        &due(),
        &World {
            claim: Api::Gone,
            ..World::default()
        },
    );
    assert_eq!(trace.effects[4..], ["Done"]);
    assert_eq!(trace.next, Some(Next::AwaitChange));
}

#[test]
fn a_failed_claim_write_fails_the_reconcile_without_a_call() {
    let trace = walk(
        &due(),
        &World {
            claim: Api::Fails,
            ..World::default()
        },
    );
    assert_eq!(trace.effects[4..], ["Done"]);
    assert_eq!(trace.next, Some(Next::Fail));
}

#[test]
fn a_failed_secret_read_fails_the_reconcile_before_any_write() {
    let trace = walk(
        &due(),
        &World {
            secret: Secret::Fails,
            ..World::default()
        },
    );
    assert_eq!(
        trace.effects,
        ["ResolveEndpoint", "ReadCredentials", "Done"]
    );
    assert_eq!(trace.next, Some(Next::Fail));
}

#[test]
fn a_decided_write_that_conflicts_or_finds_the_object_gone_publishes_nothing() {
    let mut tr = due();
    tr.spec.suspend = true;
    for (api, next) in [
        (Api::Conflict, Next::Requeue(CONFLICT_REQUEUE)),
        (Api::Gone, Next::AwaitChange),
        (Api::Fails, Next::Fail),
    ] {
        let trace = walk(
            &tr,
            &World {
                write: api,
                ..World::default()
            },
        );
        assert_eq!(trace.effects, ["Write", "Done"], "{api:?}");
        assert_eq!(trace.next, Some(next), "{api:?}");
    }
}

#[test]
fn after_its_reservation_failed_an_object_claims_nothing_until_its_pause_ends() {
    let pause = Duration::from_secs(5);
    let mut facts = Facts::new(now(), 0.5);
    facts.ledger_paused = Some(pause);
    let mut effects = Vec::new();
    let answers = [
        Learned::Endpoint(Ok(Endpoint::for_region("cn-north-4").expect("endpoint"))),
        Learned::Credentials(Lookup::Found(
            Credentials::Token(SecretString::from("token")),
            secret_version("41"),
        )),
    ];
    for answer in answers {
        effects.push(name(&step(&due(), &facts, now(), &policy())));
        facts.learn(answer);
    }
    let last = step(&due(), &facts, now(), &policy());
    assert_eq!(effects, CALL_PATH[..2]);
    assert!(
        matches!(last, Effect::Done(Next::Requeue(d)) if d == pause),
        "{last:?}"
    );
}

#[test]
fn a_ledger_that_cannot_be_written_withdraws_the_claim_and_makes_no_call() {
    let trace = walk(
        &due(),
        &World {
            ledger: None,
            ..World::default()
        },
    );
    assert_eq!(trace.effects[..5], CALL_PATH[..5]);
    assert_eq!(trace.effects[5..], ["Withdraw", "Done"]);
    assert_eq!(trace.next, Some(Next::Fail));
    assert_eq!(
        trace.last(),
        &TaskResetStatus::default(),
        "the status from before the claim"
    );
}

#[test]
fn row_8_a_run_the_ledger_says_may_have_run_is_already_executed_without_a_call() {
    for outcome in [Some(Phase::Succeeded), Some(Phase::Unknown), None] {
        let entry = Entry {
            uid: "uid-0".into(),
            generation: 1,
            attempt: 1,
            at: ts("2026-11-28T08:00:00Z"),
            outcome,
            detail: None,
            base: None,
            ambiguous_attempt: None,
        };
        let world = World {
            ledger: Some(Verdict::AlreadyExecuted(entry)),
            ..World::default()
        };
        let trace = walk(&due(), &world);
        assert_eq!(trace.effects[..5], CALL_PATH[..5]);
        assert_eq!(
            trace.effects[5..],
            ["Record", "Publish", "Done"],
            "{outcome:?}"
        );
        assert_eq!(ready(trace.last()).1, "AlreadyExecuted");
        let expected = if outcome == Some(Phase::Succeeded) {
            Phase::Succeeded
        } else {
            Phase::Unknown
        };
        assert_eq!(trace.last().phase, Some(expected));
        assert_eq!(trace.ledger, None, "nothing to complete: no call was made");
    }
}

#[test]
fn the_stop_signal_before_the_claim_claims_nothing() {
    for stop_after in ["ResolveEndpoint", "ReadCredentials", "TakeTurn"] {
        let world = World {
            stop_after: Some(stop_after),
            ..World::default()
        };
        let trace = walk(&due(), &world);
        assert!(
            !trace.effects.contains(&"Claim"),
            "{stop_after}: {:?}",
            trace.effects
        );
        assert_eq!(trace.next, Some(Next::AwaitChange));
    }
}

#[test]
fn the_stop_signal_right_after_the_claim_withdraws_it_and_reserves_nothing() {
    let world = World {
        stop_after: Some("Claim"),
        ..World::default()
    };
    let trace = walk(&due(), &world);
    assert_eq!(trace.effects[4..], ["Withdraw", "Done"]);
    assert_eq!(trace.last(), &TaskResetStatus::default());
}

#[test]
fn the_stop_signal_after_the_reservation_withdraws_the_claim_then_releases_the_run() {
    let world = World {
        stop_after: Some("Reserve"),
        ..World::default()
    };
    let trace = walk(&due(), &world);
    assert_eq!(trace.effects[5..], ["Withdraw", "Release", "Done"]);
    // A claim that could not be withdrawn stands, and so does its reservation.
    let world = World {
        withdraw_lands: false,
        ..world
    };
    let trace = walk(&due(), &world);
    assert_eq!(trace.effects[5..], ["Withdraw", "Done"]);
    assert!(!trace.called());
}

#[test]
fn the_stop_signal_during_the_call_still_records_completes_and_publishes() {
    let world = World {
        stop_after: Some("Call"),
        ..World::default()
    };
    let trace = walk(&due(), &world);
    assert_eq!(trace.effects[..8], CALL_PATH);
    assert_eq!(trace.effects[8..], ["Publish", "Done"]);
}

#[test]
fn the_decision_is_made_once_a_deadline_passing_mid_attempt_does_not_change_it() {
    let mut tr = due();
    tr.spec.not_after = Some(Time(ts("2026-11-29T12:00:01Z")));
    let world = World {
        later: SignedDuration::from_secs(60),
        ..World::default()
    };
    let trace = walk(&tr, &world);
    assert_eq!(trace.effects[..8], CALL_PATH);
    assert_eq!(trace.last().phase, Some(Phase::Succeeded));
}

#[test]
fn row_5_each_outcome_class_completes_the_ledger_with_what_may_have_happened() {
    let ambiguous = ResetOutcome::Ambiguous {
        reason: "timed out".into(),
    };
    let cases = [
        (
            http_error(400, "FDI.3020", "bad", true),
            Phase::Failed,
            Phase::Failed,
        ),
        (ambiguous, Phase::Unknown, Phase::Unknown),
        (
            http_error(503, "FDI.5000", "busy", true),
            Phase::Retrying,
            Phase::Failed,
        ),
    ];
    for (outcome, phase, ledger) in cases {
        let trace = walk(
            &due(),
            &World {
                outcome: outcome.clone(),
                ..World::default()
            },
        );
        assert_eq!(trace.effects[..8], CALL_PATH, "{outcome:?}");
        assert_eq!(trace.last().phase, Some(phase), "{outcome:?}");
        assert_eq!(trace.ledger, Some(ledger), "{outcome:?}");
    }
}

#[test]
fn row_5_after_an_ambiguous_attempt_the_ledger_never_reads_not_executed() {
    let mut tr = due();
    tr.spec.retry_policy = crate::api::RetryPolicy::Always;
    let world = World {
        ledger: Some(Verdict::Proceed {
            ambiguous_attempt: Some(1),
        }),
        outcome: http_error(400, "FDI.3020", "bad", true),
        ..World::default()
    };
    let trace = walk(&tr, &world);
    assert_eq!(trace.last().phase, Some(Phase::Unknown));
    assert_eq!(trace.last().ambiguous_attempt, Some(1));
    assert_eq!(trace.ledger, Some(Phase::Unknown));
}

#[test]
fn row_5_a_retryable_failure_schedules_the_next_attempt() {
    let world = World {
        outcome: http_error(503, "FDI.5000", "busy", true),
        ..World::default()
    };
    let trace = walk(&due(), &world);
    assert_eq!(trace.events, [Reason::RetryScheduled]);
    assert!(matches!(trace.next, Some(Next::Requeue(d)) if d > Duration::ZERO));
    assert!(trace.last().next_attempt_time.is_some());
}

#[test]
fn row_6_a_fresh_claim_is_waited_on_and_an_expired_one_is_declared_interrupted() {
    let mut claimed = status(1, Phase::Resetting);
    claimed.last_attempt_time = Some(Time(ts("2026-11-29T11:59:30Z")));
    let trace = walk(&object(1, Some(claimed.clone())), &World::default());
    assert_eq!(trace.effects, ["Done"]);
    assert!(matches!(trace.next, Some(Next::Requeue(_))));
    claimed.last_attempt_time = Some(Time(ts("2026-11-29T11:00:00Z")));
    let trace = walk(&object(1, Some(claimed)), &World::default());
    assert_eq!(trace.effects, ["Write", "Publish", "Done"]);
    assert_eq!(
        (trace.last().phase, ready(trace.last()).1),
        (Some(Phase::Unknown), "Interrupted")
    );
}

#[test]
fn row_6_a_result_written_later_wins_over_interrupted_on_the_same_attempt_only() {
    let claim = decision::claim(&due(), &attempt(&due()), now());
    assert!(decision::still_describes(Some(&claim), &claim));
    let mut expired = object(1, Some(claim.clone()));
    expired.status.as_mut().expect("status").last_attempt_time =
        Some(Time(ts("2026-11-29T10:00:00Z")));
    let interrupted = match decision::decide(&expired, now(), &policy()) {
        Decision::Write(update) => update.status,
        other => panic!("expected Interrupted, got {other:?}"),
    };
    assert!(
        decision::still_describes(Some(&interrupted), &claim),
        "Interrupted on the same attempt"
    );
    let mut next_attempt = claim.clone();
    next_attempt.attempts = Some(2);
    assert!(
        !decision::still_describes(Some(&next_attempt), &claim),
        "another attempt"
    );
    let mut next_generation = claim.clone();
    next_generation.observed_generation = Some(2);
    assert!(
        !decision::still_describes(Some(&next_generation), &claim),
        "another generation"
    );
    let done = status(1, Phase::Succeeded);
    assert!(
        !decision::still_describes(Some(&done), &claim),
        "a verdict other than Interrupted"
    );
    assert!(!decision::still_describes(None, &claim), "a cleared status");
}

#[test]
fn row_7_a_new_generation_of_a_finished_object_runs_again() {
    let trace = walk(
        &object(2, Some(status(1, Phase::Succeeded))),
        &World::default(),
    );
    assert_eq!(trace.effects[..8], CALL_PATH);
    assert_eq!(trace.statuses[0].observed_generation, Some(2));
}

#[test]
fn every_walk_ends_after_at_most_one_effect_per_slot() {
    let outcomes = [
        World::default().outcome,
        ResetOutcome::Ambiguous {
            reason: "reset".into(),
        },
        ResetOutcome::NotSent {
            reason: "dns".into(),
        },
        http_error(401, "APIGW.0301", "bad token", true),
    ];
    for outcome in outcomes {
        for stop_after in [None, Some("Claim"), Some("Reserve"), Some("Call")] {
            let world = World {
                outcome: outcome.clone(),
                stop_after,
                ..World::default()
            };
            let trace = walk(&due(), &world);
            let mut seen = trace.effects.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(
                seen.len(),
                trace.effects.len(),
                "an effect repeated: {:?}",
                trace.effects
            );
        }
    }
}

fn attempt(tr: &TaskReset) -> decision::Attempt {
    match decision::decide(tr, now(), &policy()) {
        Decision::Attempt(attempt) => attempt,
        other => panic!("expected an attempt, got {other:?}"),
    }
}

fn ready_message(status: &TaskResetStatus) -> &str {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or("", |c| c.message.as_str())
}

#[test]
fn an_object_waiting_for_its_credentials_reads_its_secret_past_the_cache() {
    let fresh = |tr: &TaskReset| {
        let mut facts = Facts::new(now(), 0.5);
        facts.learn(Learned::Endpoint(Ok(
            Endpoint::for_region("cn-north-4").expect("endpoint")
        )));
        match step(tr, &facts, now(), &policy()) {
            Effect::ReadCredentials { fresh, .. } => fresh,
            other => panic!("expected a Secret read, got {}", name(&other)),
        }
    };
    assert!(!fresh(&due()), "a first attempt may use the cache");
    let mut retrying = status(1, Phase::Retrying);
    retrying.next_attempt_time = Some(Time(ts("2026-11-29T11:00:00Z")));
    assert!(!fresh(&object(1, Some(retrying))));
    let mut pending = status(1, Phase::Pending);
    pending.next_attempt_time = Some(Time(ts("2026-11-29T11:00:00Z")));
    assert!(
        fresh(&object(1, Some(pending))),
        "a fixed Secret is seen at the next look"
    );
}

#[test]
fn password_credentials_get_their_token_before_the_turn_so_the_exchange_holds_no_call_slot() {
    let world = World {
        secret: Secret::Password,
        ..World::default()
    };
    let trace = walk(&due(), &world);
    assert_eq!(
        trace.effects[..5],
        [
            "ResolveEndpoint",
            "ReadCredentials",
            "Prepare",
            "TakeTurn",
            "Claim"
        ]
    );
    assert!(trace.sent);
    assert_eq!(trace.last().phase, Some(Phase::Succeeded));
    // Tokens and AK/SK need nothing prepared.
    assert!(!walk(&due(), &World::default()).effects.contains(&"Prepare"));
}

#[test]
fn a_failed_iam_exchange_before_the_turn_is_the_calls_outcome_and_nothing_is_sent() {
    let refused = ResetOutcome::CredentialsRejected {
        http_status: Some(401),
        error_code: "IAM.0101".into(),
        error_message: "The username or password is wrong.".into(),
        request_id: None,
    };
    let world = World {
        secret: Secret::Password,
        prepared: Err(refused),
        ..World::default()
    };
    let trace = walk(&due(), &world);
    assert!(trace.effects.contains(&"Call"), "{:?}", trace.effects);
    assert!(!trace.sent, "no second exchange, no request to ROMA");
    assert_eq!(ready(trace.last()).1, "CredentialsRejected");
    assert_eq!(trace.ledger, Some(Phase::Failed), "provably not executed");
}
