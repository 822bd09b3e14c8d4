//! The reconciler as one state machine: from an object and what is known about it to the one
//! thing to do next. No I/O here; [`super::reconcile`] carries each [`Effect`] out, adds what
//! it learned to the [`Facts`] and asks [`step`] again, until [`Effect::Done`].
//!
//! DESIGN section 3, in the order an attempt goes (each row is a test in `step_tests.rs`):
//!
//! | known so far | next effect |
//! | --- | --- |
//! | the decision (3.1, 3.2, 3.6, 3.7) is idle, a wait or a status write | done, or [`Effect::Write`] |
//! | an attempt is due | [`Effect::ResolveEndpoint`] |
//! | the endpoint is refused (3.3) | [`Effect::Write`] `Failed`/`InvalidSpec` |
//! | stopping, nothing claimed | done: nothing new is claimed or called |
//! | the endpoint | [`Effect::ReadCredentials`] (through the Secret cache, past it while `Pending`) |
//! | no usable Secret (3.3), or the version the gateway rejected | [`Effect::Write`] `Pending`, or wait |
//! | password credentials | [`Effect::Prepare`] the IAM token, before the turn: the exchange holds no call slot |
//! | its reservation failed lately | requeue after its pause, no claim |
//! | credentials | [`Effect::TakeTurn`] (limits); no turn yet: requeue |
//! | a turn | [`Effect::Claim`] on the decided-on resourceVersion (3.4) |
//! | the claim lost (409) / the object gone (404) | requeue / done, no call |
//! | claimed, stopping | [`Effect::Withdraw`] the claim, no call |
//! | claimed | [`Effect::Reserve`] in the ledger on the claim's resourceVersion (3.8) |
//! | the ledger cannot be written | [`Effect::Withdraw`], then fail (retried), no call |
//! | the ledger says it may have run | [`Effect::Record`] `AlreadyExecuted`, no call |
//! | reserved, stopping | [`Effect::Withdraw`], then [`Effect::Release`] if withdrawn |
//! | reserved | [`Effect::Call`] (3.5) |
//! | the outcome | [`Effect::Record`] (a result wins over `Interrupted` on the same attempt, 3.6) |
//! | recorded | [`Effect::Complete`] the ledger entry ([`decision::ledger_outcome`]) |
//! | completed, or a status written | [`Effect::Publish`] its event, then done |

use std::time::Duration;

use jiff::Timestamp;
use url::Url;

use super::conditions::Reason;
use super::credentials::Lookup;
use super::decision::{self, Attempt, Decision, Note, Policy, Update};
use super::limits::Target;
use crate::api::{Phase, RetryPolicy, TaskReset, TaskResetStatus};
use crate::ledger::{Entry, Reservation, RunKey, Runner, Verdict};
use crate::roma::{Credentials, Endpoint, OutcomeClass, ResetOutcome, ResetRequest};

/// How soon to look again after losing an optimistic-lock race.
pub const CONFLICT_REQUEUE: Duration = Duration::from_secs(1);

/// The Kubernetes API's answer to a status write.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Written: the object as it now is (the next write's precondition).
    Written(Box<TaskReset>),
    /// 409: someone else wrote first.
    Conflict,
    /// 404: the object was deleted.
    Gone,
}

/// What the limiter said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// A permit is held (by the executor) for this call.
    Granted,
    /// Not now: ask again after this long, holding no reconcile slot.
    Wait(Duration),
}

/// The claim as written, and the API's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The claim's status (`Resetting`).
    pub status: TaskResetStatus,
    /// The answer to its write.
    pub answer: Answer,
}

/// The call's outcome and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Called {
    /// What ROMA answered.
    pub outcome: ResetOutcome,
    /// How the outcome counts.
    pub class: OutcomeClass,
}

/// What the effects carried out so far have learned about one object in one reconcile.
/// Each effect fills one slot; [`step`] never asks for an effect whose slot is filled, so a
/// reconcile ends after at most one effect per slot.
#[derive(Debug)]
pub struct Facts {
    /// When the reconcile started: the decision is made once, on this clock, so a deadline
    /// passing mid-attempt (`notAfter`, `nextAttemptTime`) does not change it.
    pub started: Timestamp,
    /// In [0, 1): spreads the retry delay.
    pub jitter: f64,
    /// The stop signal came or the lease was lost (sampled before each step).
    pub stopping: bool,
    /// This object's reservation failed lately: no claim for this long (sampled at the
    /// start). A failed reservation withdraws its claim, and that write alone would start the
    /// next reconcile at once.
    pub ledger_paused: Option<Duration>,
    /// The last effect failed (the executor keeps its error): the reconcile fails and is
    /// retried, after taking back a claim that no call will follow.
    pub failed: bool,
    /// The endpoint the attempt calls, or why it is refused.
    pub endpoint: Option<Result<Endpoint, String>>,
    /// The limiter's answer.
    pub turn: Option<Turn>,
    /// The credentials, or why there are none.
    pub credentials: Option<Lookup>,
    /// The IAM token made ready before the turn (password credentials), or why it could not
    /// be: that failure is then the call's outcome, and nothing is sent.
    pub prepared: Option<Result<(), ResetOutcome>>,
    /// A status decided without a call, and the answer to its write.
    pub written: Option<(Update, Answer)>,
    /// The claim.
    pub claim: Option<Claim>,
    /// The ledger reservation and its verdict.
    pub reserved: Option<Reservation>,
    /// Whether the claim was taken back (after the stop signal or a ledger failure).
    pub withdrawn: Option<bool>,
    /// The withdrawn claim's reservation was released.
    pub released: bool,
    /// The call's outcome.
    pub called: Option<Called>,
    /// The result written after the claim (whether the write landed or not).
    pub recorded: Option<Update>,
    /// The ledger entry was completed (or the attempt to complete it failed and was logged).
    pub completed: bool,
    /// The event was published (or publishing failed and was logged).
    pub published: bool,
}

impl Facts {
    /// Nothing known yet, at the start of a reconcile.
    pub fn new(started: Timestamp, jitter: f64) -> Self {
        Self {
            started,
            jitter,
            stopping: false,
            ledger_paused: None,
            failed: false,
            endpoint: None,
            turn: None,
            credentials: None,
            prepared: None,
            written: None,
            claim: None,
            reserved: None,
            withdrawn: None,
            released: false,
            called: None,
            recorded: None,
            completed: false,
            published: false,
        }
    }
}

/// What carrying out one effect learned: it fills that effect's slot of the [`Facts`].
#[derive(Debug)]
pub enum Learned {
    /// [`Effect::ResolveEndpoint`].
    Endpoint(Result<Endpoint, String>),
    /// [`Effect::TakeTurn`].
    Turn(Turn),
    /// [`Effect::ReadCredentials`].
    Credentials(Lookup),
    /// [`Effect::Prepare`].
    Prepared(Result<(), ResetOutcome>),
    /// [`Effect::Write`].
    Written(Update, Answer),
    /// [`Effect::Claim`].
    Claimed(Claim),
    /// [`Effect::Reserve`].
    Reserved(Reservation),
    /// [`Effect::Withdraw`]: whether the claim was taken back.
    Withdrawn(bool),
    /// [`Effect::Release`].
    Released,
    /// [`Effect::Call`].
    Called(Called),
    /// [`Effect::Record`].
    Recorded(Update),
    /// [`Effect::Complete`].
    Completed,
    /// [`Effect::Publish`].
    Published,
    /// The effect failed; the executor keeps the error.
    Failed,
}

impl Facts {
    /// Add what an effect learned.
    pub fn learn(&mut self, learned: Learned) {
        match learned {
            Learned::Endpoint(endpoint) => self.endpoint = Some(endpoint),
            Learned::Turn(turn) => self.turn = Some(turn),
            Learned::Credentials(lookup) => self.credentials = Some(lookup),
            Learned::Prepared(prepared) => self.prepared = Some(prepared),
            Learned::Written(update, answer) => self.written = Some((update, answer)),
            Learned::Claimed(claim) => self.claim = Some(claim),
            Learned::Reserved(reservation) => self.reserved = Some(reservation),
            Learned::Withdrawn(withdrawn) => self.withdrawn = Some(withdrawn),
            Learned::Released => self.released = true,
            Learned::Called(called) => self.called = Some(called),
            Learned::Recorded(update) => self.recorded = Some(update),
            Learned::Completed => self.completed = true,
            Learned::Published => self.published = true,
            Learned::Failed => self.failed = true,
        }
    }
}

/// How a reconcile ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Look again when the object changes.
    AwaitChange,
    /// Look again after this long.
    Requeue(Duration),
    /// The reconcile failed with the error the executor kept (retried with backoff).
    Fail,
}

impl Next {
    fn after(delay: Option<Duration>) -> Self {
        delay.map_or(Self::AwaitChange, Self::Requeue)
    }
}

/// The one thing to do next. Borrowed parts come from the [`Facts`].
#[derive(Debug)]
pub enum Effect<'a> {
    /// Check the endpoint (or region) against the allow-list.
    ResolveEndpoint {
        /// `spec.endpoint`.
        endpoint: Option<Url>,
        /// `spec.region`.
        region: Option<String>,
    },
    /// Have what the call needs ready before taking a turn: the IAM token of password
    /// credentials, so the exchange holds no call slot.
    Prepare {
        /// Where the call goes.
        endpoint: Endpoint,
        /// The project the token is scoped to.
        project_id: String,
        /// The credentials.
        credentials: &'a Credentials,
    },
    /// Ask the limiter for a turn to call `Target`.
    TakeTurn(Target),
    /// Read the credentials Secret, for calls to this endpoint (a password Secret's IAM
    /// endpoint is checked against it).
    ReadCredentials {
        /// Where the call would go.
        endpoint: Endpoint,
        /// Past the Secret cache: the object waits for its credentials to be fixed (`Pending`),
        /// so a fixed Secret is seen at the next look, not a cache lifetime later.
        fresh: bool,
    },
    /// Write a status decided without a call, preconditioned on the object's resourceVersion.
    Write(Update),
    /// Write the claim, preconditioned on the resourceVersion the decision was made on.
    Claim(TaskResetStatus),
    /// Reserve the run in the ledger.
    Reserve {
        /// The run.
        key: RunKey,
        /// Who runs it, on the claim's resourceVersion.
        runner: Runner,
    },
    /// Put `status` (the one from before the claim) back on top of the claim, with a
    /// result's patience: no call follows.
    Withdraw {
        /// The object as the claim left it.
        claimed: &'a TaskReset,
        /// The claim.
        claim: &'a TaskResetStatus,
        /// The status to put back.
        status: TaskResetStatus,
    },
    /// Give the reservation of a withdrawn claim back.
    Release {
        /// The run.
        key: RunKey,
        /// Who reserved it.
        runner: Runner,
        /// The entry the reservation replaced.
        replaced: Option<Entry>,
    },
    /// Make the call.
    Call {
        /// What to reset.
        request: ResetRequest,
        /// With these credentials.
        credentials: &'a Credentials,
        /// Its outcome, known before sending (the IAM exchange failed): nothing is sent.
        known: Option<ResetOutcome>,
    },
    /// Write the result in place of the claim (or of an `Interrupted` verdict on the same
    /// attempt), with patience.
    Record {
        /// The object as the claim left it.
        claimed: &'a TaskReset,
        /// The claim.
        claim: &'a TaskResetStatus,
        /// The result.
        update: Update,
    },
    /// Complete the ledger entry.
    Complete {
        /// The run.
        key: RunKey,
        /// Who ran it.
        runner: Runner,
        /// What the ledger records.
        outcome: Phase,
        /// The message or error, for the entry.
        detail: Option<String>,
    },
    /// Publish an event about the object.
    Publish(Note),
    /// Nothing more this reconcile.
    Done(Next),
}

/// The next effect for `tr`, given `facts`, at `now` (DESIGN section 3; see the module's
/// table).
pub fn step<'a>(tr: &TaskReset, facts: &'a Facts, now: Timestamp, policy: &Policy) -> Effect<'a> {
    // A failure before a claim landed ends the reconcile; after one, the claim is withdrawn
    // first (see `Claimed::next`).
    let claimed = matches!(
        &facts.claim,
        Some(Claim {
            answer: Answer::Written(_),
            ..
        })
    );
    if facts.failed && !claimed {
        return Effect::Done(Next::Fail);
    }
    let mut attempt = match decision::decide(tr, facts.started, policy) {
        Decision::Attempt(attempt) => attempt,
        other => return decided(other, facts),
    };
    let endpoint = match &facts.endpoint {
        None => {
            return Effect::ResolveEndpoint {
                endpoint: attempt.spec.endpoint.clone(),
                region: attempt.spec.region.clone(),
            };
        }
        Some(Err(refusal)) => return write(decision::invalid_spec(tr, refusal, now), facts),
        Some(Ok(endpoint)) => endpoint,
    };
    let Some(claim) = &facts.claim else {
        return before_claim(tr, facts, attempt, endpoint, now, policy);
    };
    let claimed = match &claim.answer {
        Answer::Written(claimed) => claimed.as_ref(),
        Answer::Conflict => return Effect::Done(Next::Requeue(CONFLICT_REQUEUE)),
        Answer::Gone => return Effect::Done(Next::AwaitChange),
    };
    if let Some(Lookup::Found(_, version)) = &facts.credentials {
        attempt.credentials = Some(version.clone());
    }
    let claimed = Claimed {
        key: RunKey::of(tr, &attempt.spec),
        runner: runner(tr, &attempt, claimed),
        before: tr.status.clone().unwrap_or_default(),
        attempt,
        facts,
        claim,
        claimed,
    };
    claimed.next(tr, endpoint, now, policy)
}

/// An attempt whose claim landed, and what the steps after the claim need.
struct Claimed<'a> {
    facts: &'a Facts,
    attempt: Attempt,
    claim: &'a Claim,
    /// The object as the claim left it.
    claimed: &'a TaskReset,
    /// The status from before the claim, which a withdrawal puts back.
    before: TaskResetStatus,
    key: RunKey,
    runner: Runner,
}

impl<'a> Claimed<'a> {
    /// Reserve, then call (or stop, or find the run already executed), then record.
    fn next(
        mut self,
        tr: &TaskReset,
        endpoint: &Endpoint,
        now: Timestamp,
        policy: &Policy,
    ) -> Effect<'a> {
        let facts = self.facts;
        let reservation = match (&facts.reserved, facts.withdrawn) {
            (None, None) if facts.stopping || facts.failed => return self.withdraw(),
            (None, None) => {
                return Effect::Reserve {
                    key: self.key,
                    runner: self.runner,
                };
            }
            (None, Some(_)) if facts.failed => return Effect::Done(Next::Fail),
            (None, Some(_)) => return Effect::Done(Next::AwaitChange),
            (Some(reservation), _) => reservation,
        };
        let ambiguous_attempt = match &reservation.verdict {
            Verdict::AlreadyExecuted(entry) => {
                return match &facts.recorded {
                    None => self.record(decision::already_executed(tr, entry, now)),
                    Some(update) => then_publish(update, facts),
                };
            }
            Verdict::Proceed { ambiguous_attempt } => *ambiguous_attempt,
        };
        self.attempt.ambiguous_before = self.attempt.ambiguous_before.or(ambiguous_attempt);
        let Some(called) = &facts.called else {
            return match (facts.stopping, facts.withdrawn) {
                (false, None) => call(&self.attempt, endpoint, facts),
                (true, None) => self.withdraw(),
                // The claim stands: so does the reservation (the run reads as may-have-run).
                (_, Some(false)) => Effect::Done(Next::AwaitChange),
                (_, Some(true)) if !facts.released => Effect::Release {
                    key: self.key,
                    runner: self.runner,
                    replaced: reservation.replaced.clone(),
                },
                (_, Some(true)) => Effect::Done(Next::AwaitChange),
            };
        };
        self.after_call(called, now, policy)
    }

    /// Record the outcome, complete the ledger entry, publish.
    fn after_call(self, called: &Called, now: Timestamp, policy: &Policy) -> Effect<'a> {
        let facts = self.facts;
        let Some(update) = &facts.recorded else {
            let (outcome, class) = (&called.outcome, called.class);
            let status = &self.claim.status;
            let jitter = facts.jitter;
            let update =
                decision::record(status, &self.attempt, outcome, class, now, policy, jitter);
            return self.record(update);
        };
        if !facts.completed {
            return Effect::Complete {
                outcome: decision::ledger_outcome(called.class, &self.attempt),
                detail: update
                    .status
                    .message
                    .clone()
                    .or_else(|| update.status.error_message.clone()),
                key: self.key,
                runner: self.runner,
            };
        }
        then_publish(update, facts)
    }

    fn record(self, update: Update) -> Effect<'a> {
        Effect::Record {
            claimed: self.claimed,
            claim: &self.claim.status,
            update,
        }
    }

    fn withdraw(self) -> Effect<'a> {
        Effect::Withdraw {
            claimed: self.claimed,
            claim: &self.claim.status,
            status: self.before,
        }
    }
}

/// Before the claim: stop, read the credentials (through the Secret cache), take a turn,
/// then claim.
fn before_claim<'a>(
    tr: &TaskReset,
    facts: &'a Facts,
    mut attempt: Attempt,
    endpoint: &Endpoint,
    now: Timestamp,
    policy: &Policy,
) -> Effect<'a> {
    if facts.stopping {
        return Effect::Done(Next::AwaitChange);
    }
    let version = match &facts.credentials {
        None => {
            return Effect::ReadCredentials {
                endpoint: endpoint.clone(),
                fresh: tr.current_phase() == Some(Phase::Pending),
            };
        }
        Some(Lookup::Missing(message)) => {
            let reason = Reason::CredentialsNotFound;
            return decided(
                decision::credentials_missing(tr, reason, message, now, policy),
                facts,
            );
        }
        Some(Lookup::Invalid(message)) => {
            let reason = Reason::CredentialsInvalid;
            return decided(
                decision::credentials_missing(tr, reason, message, now, policy),
                facts,
            );
        }
        Some(Lookup::Found(_, version)) => version,
    };
    // A version of the Secret the gateway already rejected is never called with again.
    if let Some(wait) = decision::credentials_found(tr, version, now, policy) {
        return decided(wait, facts);
    }
    if let Some(Lookup::Found(credentials, _)) = &facts.credentials
        && credentials.exchanges_token()
        && facts.prepared.is_none()
    {
        return Effect::Prepare {
            endpoint: endpoint.clone(),
            project_id: attempt.spec.project_id.clone(),
            credentials,
        };
    }
    if let Some(pause) = facts.ledger_paused {
        return Effect::Done(Next::Requeue(pause));
    }
    match facts.turn {
        None => return Effect::TakeTurn(target(&attempt, endpoint)),
        Some(Turn::Wait(delay)) => return Effect::Done(Next::Requeue(delay)),
        Some(Turn::Granted) => {}
    }
    attempt.credentials = Some(version.clone());
    Effect::Claim(decision::claim(tr, &attempt, now))
}

/// Carry out a decision made without a call.
fn decided(decision: Decision, facts: &Facts) -> Effect<'_> {
    match decision {
        Decision::Write(update) => write(update, facts),
        Decision::Wait(delay) => Effect::Done(Next::Requeue(delay)),
        Decision::Idle | Decision::Attempt(_) => Effect::Done(Next::AwaitChange),
    }
}

/// Write `update` unless a status was already written; then follow the answer: a lost race
/// looks again soon, a deleted object is left, a failure fails the reconcile.
fn write(update: Update, facts: &Facts) -> Effect<'_> {
    match &facts.written {
        None => Effect::Write(update),
        Some((written, Answer::Written(_))) => then_publish(written, facts),
        Some((_, Answer::Conflict)) => Effect::Done(Next::Requeue(CONFLICT_REQUEUE)),
        Some((_, Answer::Gone)) => Effect::Done(Next::AwaitChange),
    }
}

/// Publish the event of a written status (once), then look again when it says.
fn then_publish<'a>(update: &Update, facts: &Facts) -> Effect<'a> {
    match &update.note {
        Some(note) if !facts.published => Effect::Publish(note.clone()),
        _ => Effect::Done(Next::after(update.requeue)),
    }
}

fn call<'a>(attempt: &Attempt, endpoint: &Endpoint, facts: &'a Facts) -> Effect<'a> {
    let Some(Lookup::Found(credentials, _)) = &facts.credentials else {
        // Unreachable: the claim is only written once credentials were found.
        return Effect::Done(Next::AwaitChange);
    };
    Effect::Call {
        request: ResetRequest {
            endpoint: endpoint.clone(),
            project_id: attempt.spec.project_id.clone(),
            instance_id: attempt.spec.instance_id.clone(),
            task_id: attempt.spec.task_id.clone(),
            date_from_ms: attempt.spec.date_from_ms,
        },
        credentials,
        known: facts.prepared.clone().and_then(Result::err),
    }
}

/// What a call resets, for the limiter.
fn target(attempt: &Attempt, endpoint: &Endpoint) -> Target {
    Target {
        endpoint: endpoint.to_string(),
        project_id: attempt.spec.project_id.clone(),
        instance_id: attempt.spec.instance_id.clone(),
        task_id: attempt.spec.task_id.clone(),
    }
}

/// Who runs `attempt`, on the resourceVersion its claim left.
fn runner(tr: &TaskReset, attempt: &Attempt, claimed: &TaskReset) -> Runner {
    Runner {
        uid: tr.metadata.uid.clone().unwrap_or_default(),
        generation: attempt.generation,
        attempt: attempt.number,
        base: claimed
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
        retries_ambiguous: attempt.spec.retry_policy == RetryPolicy::Always,
        retry_of: attempt.retry_of,
    }
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
