//! Carrying out decisions: status writes, the claim, the call, the result, events.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::PostParams;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::conditions::{Reason, trim_message};
use super::credentials::{self, Lookup};
use super::decision::{self, Attempt, Decision, Note, Update};
use super::limits::{CallPermit, Target, Waiter};
use super::{Context, Error, FIELD_MANAGER};
use crate::api::{Phase, RetryPolicy, TaskReset, TaskResetStatus};
use crate::ledger::{RunKey, Runner, Verdict};
use crate::roma::{Credentials, Endpoint, ResetRequest, classify};

/// How soon to look again after losing an optimistic-lock race.
const CONFLICT_REQUEUE: Duration = Duration::from_secs(1);
/// How long the result write is retried on API errors before giving up (the claim then
/// expires into `Interrupted`, which is truthful).
const RESULT_WRITE_PATIENCE: Duration = Duration::from_secs(30);

/// Reconcile one object, malformed or not.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<TaskReset>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled();
    match &obj.0 {
        Ok(tr) => reconcile_task_reset(tr, &ctx).await,
        Err(invalid) => {
            warn!(taskreset = %super::object_name(&invalid.metadata), error = %invalid.error, "malformed TaskReset skipped");
            let reference = obj.object_ref(&());
            let note = Note {
                warning: true,
                reason: Reason::InvalidSpec,
                message: trim_message(&format!(
                    "the object does not match the TaskReset schema and is skipped: {}",
                    invalid.error
                )),
            };
            publish(&ctx, &reference, &note).await;
            Ok(Action::await_change())
        }
    }
}

/// What the controller does after a failed reconcile: back off and look again.
pub fn error_policy(
    obj: Arc<DeserializeGuard<TaskReset>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    warn!(taskreset = %super::object_name(obj.meta()), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5) + Duration::from_millis(fastrand::u64(0..2000)))
}

#[tracing::instrument(skip_all, fields(taskreset = %super::object_name(&tr.metadata), generation = tr.metadata.generation.unwrap_or(0)))]
async fn reconcile_task_reset(tr: &TaskReset, ctx: &Context) -> Result<Action, Error> {
    match decision::decide(tr, Timestamp::now(), &ctx.policy) {
        Decision::Idle => Ok(Action::await_change()),
        Decision::Wait(delay) => Ok(requeue(Some(delay))),
        Decision::Write(update) => apply(tr, update, ctx).await,
        Decision::Attempt(attempt) => attempt_reset(tr, attempt, ctx).await,
    }
}

fn requeue(after: Option<Duration>) -> Action {
    match after {
        Some(delay) => Action::requeue(delay.max(Duration::from_millis(50))),
        None => Action::await_change(),
    }
}

/// One info line for a status decided without a call.
fn log_decision(update: &Update) {
    let ready = update.status.conditions.iter().find(|c| c.type_ == "Ready");
    info!(
        phase = update.status.phase.map(tracing::field::display),
        reason = ready.map(|c| c.reason.as_str()),
        detail = ready.map(|c| c.message.as_str()),
        "decided without a call"
    );
}

/// Write a status decided without a call; a lost race just looks again.
async fn apply(tr: &TaskReset, update: Update, ctx: &Context) -> Result<Action, Error> {
    match write_status(ctx, tr, &update.status).await {
        Ok(_) => {
            if let Some(note) = &update.note {
                publish(ctx, &tr.object_ref(&()), note).await;
            }
            log_decision(&update);
            Ok(requeue(update.requeue))
        }
        Err(e) if is_status(&e, 409) => Ok(Action::requeue(CONFLICT_REQUEUE)),
        Err(e) if is_status(&e, 404) => Ok(Action::await_change()),
        Err(source) => Err(Error::Kube {
            context: "writing the status",
            source,
        }),
    }
}

/// Carry out a decision made without a call after the credentials were read.
async fn carry_out(tr: &TaskReset, decision: Decision, ctx: &Context) -> Result<Action, Error> {
    match decision {
        Decision::Write(update) => apply(tr, update, ctx).await,
        Decision::Wait(delay) => Ok(requeue(Some(delay))),
        Decision::Idle | Decision::Attempt(_) => Ok(Action::await_change()),
    }
}

/// Nothing more this term: the stop signal came or the lease was lost. The next leader (or
/// this process's next term) lists the object again.
fn stopped() -> Action {
    debug!("stopping: nothing new is claimed or called");
    Action::await_change()
}

async fn attempt_reset(
    tr: &TaskReset,
    mut attempt: Attempt,
    ctx: &Context,
) -> Result<Action, Error> {
    let endpoint = match ctx.endpoints.resolve(
        attempt.spec.endpoint.as_ref(),
        attempt.spec.region.as_deref(),
    ) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            let update = decision::invalid_spec(tr, &err.to_string(), Timestamp::now());
            return apply(tr, update, ctx).await;
        }
    };
    let target = Target {
        endpoint: endpoint.to_string(),
        project_id: attempt.spec.project_id.clone(),
        instance_id: attempt.spec.instance_id.clone(),
        task_id: attempt.spec.task_id.clone(),
    };
    if ctx.stop.is_cancelled() {
        return Ok(stopped());
    }
    // Waiting for a turn holds no reconcile slot: ask again when told.
    let waiter = Waiter {
        namespace: tr.metadata.namespace.clone().unwrap_or_default(),
        name: tr.name_any(),
    };
    let mut permit = match ctx
        .limits
        .try_acquire(&waiter, &target, tokio::time::Instant::now())
    {
        Ok(permit) => permit,
        Err(wait) => return Ok(Action::requeue(wait)),
    };
    // Read only with a permit in hand: objects waiting for their turn cost no API request.
    let credentials = match credentials::lookup(
        &ctx.client,
        tr,
        ctx.default_secret.as_ref(),
        &ctx.roma,
        &endpoint,
    )
    .await
    .map_err(|source| Error::Kube {
        context: "reading the credentials Secret",
        source,
    })? {
        Lookup::Found(credentials, version) => {
            // A version of the Secret the gateway already rejected is never called with again.
            if let Some(wait) =
                decision::credentials_found(tr, &version, Timestamp::now(), &ctx.policy)
            {
                return carry_out(tr, wait, ctx).await;
            }
            attempt.credentials = Some(version);
            credentials
        }
        Lookup::Missing(message) => {
            let reason = Reason::CredentialsNotFound;
            let wait =
                decision::credentials_missing(tr, reason, &message, Timestamp::now(), &ctx.policy);
            return carry_out(tr, wait, ctx).await;
        }
        Lookup::Invalid(message) => {
            let reason = Reason::CredentialsInvalid;
            let wait =
                decision::credentials_missing(tr, reason, &message, Timestamp::now(), &ctx.policy);
            return carry_out(tr, wait, ctx).await;
        }
    };
    if ctx.stop.is_cancelled() {
        return Ok(stopped());
    }

    // The claim: written with the resourceVersion the decision was made on, so a concurrent
    // writer (another replica, an overlapping leader) makes this fail and no call happens.
    let claimed = decision::claim(tr, &attempt, Timestamp::now());
    let claimed_obj = match write_status(ctx, tr, &claimed).await {
        Ok(obj) => obj,
        Err(e) if is_status(&e, 409) => {
            debug!("claim lost to a concurrent writer; looking again");
            return Ok(Action::requeue(CONFLICT_REQUEUE));
        }
        Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
        Err(source) => {
            return Err(Error::Kube {
                context: "writing the claim",
                source,
            });
        }
    };
    // The signal came while the claim was being written: take it back; no call.
    if ctx.stop.is_cancelled() {
        withdraw_claim(ctx, &claimed_obj, &attempt, tr.status.clone()).await;
        return Ok(stopped());
    }

    // Then the ledger entry, on the claim's resourceVersion: a call is never made without
    // one, and a run that may already have executed is not made again.
    let key = RunKey::of(tr, &attempt.spec);
    let runner = Runner {
        uid: tr.metadata.uid.clone().unwrap_or_default(),
        generation: attempt.generation,
        attempt: attempt.number,
        base: claimed_obj
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
        retries_ambiguous: attempt.spec.retry_policy == RetryPolicy::Always,
        retry_of: attempt.retry_of,
    };
    let reservation = match ctx.ledger.reserve(&key, &runner, Timestamp::now()).await {
        Ok(reservation) => reservation,
        Err(error) => {
            withdraw_claim(ctx, &claimed_obj, &attempt, tr.status.clone()).await;
            return Err(error.into());
        }
    };
    attempt.ambiguous_before = match reservation.verdict {
        Verdict::AlreadyExecuted(entry) => {
            // Replaces the claim, with the same patience as a call's result.
            let update = decision::already_executed(tr, &entry, Timestamp::now());
            record_result(ctx, claimed_obj, &attempt, &update).await;
            if let Some(note) = &update.note {
                publish(ctx, &tr.object_ref(&()), note).await;
            }
            log_decision(&update);
            return Ok(requeue(update.requeue));
        }
        Verdict::Proceed { ambiguous_attempt } => attempt.ambiguous_before.or(ambiguous_attempt),
    };
    if ctx.stop.is_cancelled() {
        if !withdraw_claim(ctx, &claimed_obj, &attempt, tr.status.clone()).await {
            // The claim stands: so does the reservation (the run reads as may-have-run).
            return Ok(stopped());
        }
        let replaced = reservation.replaced;
        if let Err(error) = ctx
            .ledger
            .release(&key, &runner, replaced, Timestamp::now())
            .await
        {
            warn!(%error, "could not release the ledger reservation; the run reads as ambiguous");
        }
        return Ok(stopped());
    }
    let claim = Claimed {
        attempt,
        key,
        runner,
        status: claimed,
        object: claimed_obj,
    };
    permit.calling();
    Ok(call_and_record(ctx, tr, claim, endpoint, &credentials, permit).await)
}

/// An attempt whose claim landed: what the call and its records need.
struct Claimed {
    attempt: Attempt,
    key: RunKey,
    runner: Runner,
    /// The claim as written.
    status: TaskResetStatus,
    /// The object as the claim left it (the result write's precondition).
    object: TaskReset,
}

/// Make the call of a claimed attempt, then record its result in the status, the ledger and
/// an event.
async fn call_and_record(
    ctx: &Context,
    tr: &TaskReset,
    claim: Claimed,
    endpoint: Endpoint,
    credentials: &Credentials,
    permit: CallPermit,
) -> Action {
    let Claimed {
        attempt,
        key,
        runner,
        status,
        object,
    } = claim;
    info!(attempt = attempt.number, endpoint = %endpoint, task = %attempt.spec.task_id, "calling reset");
    let request = ResetRequest {
        endpoint,
        project_id: attempt.spec.project_id.clone(),
        instance_id: attempt.spec.instance_id.clone(),
        task_id: attempt.spec.task_id.clone(),
        date_from_ms: attempt.spec.date_from_ms,
    };
    let timer = ctx.metrics.call_started();
    let outcome = ctx.roma.reset_until(&request, credentials, &ctx.stop).await;
    // The call is over: its slot and its target are free while the result is recorded.
    drop(permit);
    let class = classify(&outcome);
    timer.finish(class.as_str());
    let update = decision::record(
        &status,
        &attempt,
        &outcome,
        class,
        Timestamp::now(),
        &ctx.policy,
        fastrand::f64(),
    );
    info!(
        attempt = attempt.number,
        outcome = class.as_str(),
        phase = update.status.phase.map(tracing::field::display),
        http_status = outcome.http_status(),
        error_code = outcome.error_code(),
        request_id = outcome.request_id(),
        "reset call answered"
    );
    record_result(ctx, object, &attempt, &update).await;
    let detail = update
        .status
        .message
        .clone()
        .or_else(|| update.status.error_message.clone());
    let executed = decision::ledger_outcome(class, &attempt);
    if let Err(error) = ctx
        .ledger
        .complete(&key, &runner, executed, detail, Timestamp::now())
        .await
    {
        warn!(%error, "could not complete the ledger entry; it stays ambiguous");
    }
    if let Some(note) = &update.note {
        publish(ctx, &tr.object_ref(&()), note).await;
    }
    requeue(update.requeue)
}

/// Put back the status the object had before `attempt`'s claim (`before`), on top of the
/// claim (`claimed`), with the patience of a result write. Whether it worked; if not, the
/// claim stands and expires into `Interrupted` (no call is made either way once the stop
/// signal came).
async fn withdraw_claim(
    ctx: &Context,
    claimed: &TaskReset,
    attempt: &Attempt,
    before: Option<TaskResetStatus>,
) -> bool {
    let update = Update {
        status: before.unwrap_or_default(),
        note: None,
        requeue: None,
    };
    record_result(ctx, claimed.clone(), attempt, &update).await
}

/// Write the result of an attempt. A conflicting write (a label edit, an expired-claim
/// `Interrupted` written by another replica) is re-read: the result still wins as long as the
/// status describes the same attempt. API failures are retried for a while; if the result
/// cannot be written, the claim expires into `Interrupted` later, which stays truthful.
async fn record_result(
    ctx: &Context,
    mut base: TaskReset,
    attempt: &Attempt,
    update: &Update,
) -> bool {
    let deadline = tokio::time::Instant::now() + RESULT_WRITE_PATIENCE;
    let mut pause = Duration::from_millis(200);
    loop {
        let error = match write_status(ctx, &base, &update.status).await {
            Ok(_) => return true,
            Err(e) => e,
        };
        if is_status(&error, 404) {
            warn!("the TaskReset was deleted meanwhile; the result is only in the logs and events");
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(%error, "could not record the result; the claim will expire into Interrupted");
            return false;
        }
        if !is_status(&error, 409) {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
        let api = api_for(ctx, &base);
        match api.get_status(&base.name_any()).await {
            Ok(fresh) if same_attempt(&fresh, attempt) => base = fresh,
            Ok(_) => {
                warn!(
                    attempt = attempt.number,
                    "the status moved on meanwhile; the result is only in the logs and events"
                );
                return false;
            }
            Err(e) => debug!(error = %e, "re-reading before the result write failed"),
        }
    }
}

/// Whether `tr`'s status still describes `attempt`: its claim, or an `Interrupted` verdict on
/// it that the real result should replace.
fn same_attempt(tr: &TaskReset, attempt: &Attempt) -> bool {
    let Some(status) = &tr.status else {
        return false;
    };
    let interrupted = status.phase == Some(Phase::Unknown)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == Reason::Interrupted.as_str());
    status.observed_generation == Some(attempt.generation)
        && status.attempts == Some(attempt.number)
        && (status.phase == Some(Phase::Resetting) || interrupted)
}

fn api_for(ctx: &Context, tr: &TaskReset) -> Api<TaskReset> {
    match tr.metadata.namespace.as_deref() {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

/// Replace the status subresource with `status`, preconditioned on `tr`'s resourceVersion.
async fn write_status(
    ctx: &Context,
    tr: &TaskReset,
    status: &TaskResetStatus,
) -> Result<TaskReset, kube::Error> {
    let mut obj = tr.clone();
    obj.status = Some(status.clone());
    obj.metadata.managed_fields = None;
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    api_for(ctx, tr)
        .replace_status(&tr.name_any(), &params, &obj)
        .await
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

async fn publish(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    note: &Note,
) {
    if let Err(error) = ctx.recorder.publish(note, reference).await {
        debug!(%error, reason = note.reason.as_str(), "could not publish the event");
    }
}
