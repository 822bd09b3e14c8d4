//! The executor: carries out the effects [`step`] asks for (status writes, the limiter, the
//! Secret, the claim, the ledger, the call, events) and tells it what they learned.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::context::{self, Context, Error, FIELD_MANAGER};
use super::credentials::{self, Lookup};
use super::decision::{self, Note, Update};
use super::limits::{CallPermit, Target, Waiter};
use super::step::{
    Answer, CONFLICT_REQUEUE, Called, Claim, Effect, Facts, Learned, Next, Turn, step,
};
use crate::api::{Phase, TaskReset, TaskResetStatus};
use crate::ledger::{Entry, RunKey, Runner};
use crate::roma::{Credentials, Endpoint, OutcomeClass, ResetOutcome, ResetRequest, classify};
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
        Err(invalid) => malformed(&invalid.metadata, &invalid.error, &ctx).await,
    }
}

/// A stored object that does not read as a TaskReset: its status says so (once per
/// generation, preconditioned like every status write), and an event; never a call.
async fn malformed(
    meta: &kube::api::ObjectMeta,
    error: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    warn!(taskreset = %context::object_name(meta), %error, "malformed TaskReset skipped");
    let resource = ApiResource::erase::<TaskReset>(&());
    let api: Api<DynamicObject> = match meta.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let name = meta.name.clone().unwrap_or_default();
    let mut current = match api.get_status(&name).await {
        Ok(current) => current,
        Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
        Err(source) => {
            let context = "reading a malformed object";
            return Err(Error::Kube { context, source });
        }
    };
    let status = current
        .data
        .get("status")
        .and_then(|s| serde_json::from_value::<TaskResetStatus>(s.clone()).ok());
    let generation = current.metadata.generation.unwrap_or(0);
    let Some(update) = decision::malformed(status, generation, error, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    current.metadata.managed_fields = None;
    // A status is plain data: serialising it cannot fail.
    current.data["status"] = serde_json::to_value(&update.status).unwrap_or_default();
    match api.replace_status(&name, &params, &current).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => return Ok(Action::requeue(CONFLICT_REQUEUE)),
        Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
        Err(source) => {
            let context = "writing the status of a malformed object";
            return Err(Error::Kube { context, source });
        }
    }
    log_decision(&update);
    if let Some(note) = &update.note {
        publish(ctx, &current.object_ref(&resource), note).await;
    }
    Ok(Action::await_change())
}

/// What the controller does after a failed reconcile: back off and look again.
pub fn error_policy(
    obj: Arc<DeserializeGuard<TaskReset>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    warn!(taskreset = %context::object_name(obj.meta()), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5) + Duration::from_millis(fastrand::u64(0..2000)))
}

#[tracing::instrument(skip_all, fields(taskreset = %context::object_name(&tr.metadata), generation = tr.metadata.generation.unwrap_or(0)))]
async fn reconcile_task_reset(tr: &TaskReset, ctx: &Context) -> Result<Action, Error> {
    let mut facts = Facts::new(Timestamp::now(), fastrand::f64());
    let namespace = tr.metadata.namespace.as_deref().unwrap_or_default();
    facts.ledger_paused = ctx.ledger.paused(namespace, &tr.name_any());
    let mut run = Executor {
        ctx,
        tr,
        permit: None,
        error: None,
    };
    // Each effect fills one slot of the facts, and `step` never asks for a filled one.
    for _ in 0..MAX_EFFECTS {
        facts.stopping = ctx.stop.is_cancelled();
        let effect = step(tr, &facts, Timestamp::now(), &ctx.policy);
        match run.carry_out(effect, &facts).await {
            ControlFlow::Continue(learned) => facts.learn(learned),
            ControlFlow::Break(next) => return run.finish(next),
        }
    }
    warn!("the reconcile did not settle; looking again later");
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// More effects than a reconcile can need (one per slot of [`Facts`]).
const MAX_EFFECTS: usize = 16;

/// Carries out the effects [`step`] asks for, for one object in one reconcile.
struct Executor<'a> {
    ctx: &'a Context,
    tr: &'a TaskReset,
    /// The limiter's permit, from [`Effect::TakeTurn`] to the end of [`Effect::Call`].
    permit: Option<CallPermit>,
    /// The error of the effect that failed ([`Learned::Failed`]).
    error: Option<Error>,
}

impl Executor<'_> {
    fn finish(&mut self, next: Next) -> Result<Action, Error> {
        match next {
            Next::AwaitChange => Ok(Action::await_change()),
            Next::Requeue(delay) => Ok(Action::requeue(delay.max(Duration::from_millis(50)))),
            // `Fail` follows `Learned::Failed`, which always comes with the error.
            Next::Fail => self
                .error
                .take()
                .map_or_else(|| Ok(Action::requeue(Duration::from_secs(5))), Err),
        }
    }

    /// Keep `error` for the end of the reconcile.
    fn failed(&mut self, error: Error) -> Learned {
        self.error = Some(error);
        Learned::Failed
    }

    /// Carry out `effect`: what it learned, or how the reconcile ends.
    async fn carry_out(&mut self, effect: Effect<'_>, facts: &Facts) -> ControlFlow<Next, Learned> {
        let ctx = self.ctx;
        ControlFlow::Continue(match effect {
            Effect::Done(next) => return ControlFlow::Break(next),
            Effect::ResolveEndpoint { endpoint, region } => Learned::Endpoint(
                ctx.endpoints
                    .resolve(endpoint.as_ref(), region.as_deref())
                    .map_err(|refusal| refusal.to_string()),
            ),
            Effect::TakeTurn(target) => self.take_turn(&target),
            Effect::ReadCredentials { endpoint, fresh } => {
                self.read_credentials(&endpoint, fresh).await
            }
            Effect::Write(update) => self.write(update).await,
            Effect::Claim(status) => self.claim(status).await,
            Effect::Reserve { key, runner } => self.reserve(&key, &runner).await,
            Effect::Release {
                key,
                runner,
                replaced,
            } => self.release(&key, &runner, replaced).await,
            Effect::Complete {
                key,
                runner,
                outcome,
                detail,
            } => self.complete(&key, &runner, outcome, detail).await,
            Effect::Withdraw {
                claimed,
                claim,
                status,
            } => Learned::Withdrawn(record_result(ctx, claimed.clone(), claim, &status).await),
            Effect::Prepare {
                endpoint,
                project_id,
                credentials,
            } => Learned::Prepared(ctx.roma.prepare(&endpoint, &project_id, credentials).await),
            Effect::Call {
                request,
                credentials,
                known,
            } => Learned::Called(self.call_or_not(&request, credentials, known, facts).await),
            Effect::Record {
                claimed,
                claim,
                update,
            } => {
                match &facts.called {
                    Some(called) => log_answer(claim, called, &update),
                    None => log_decision(&update),
                }
                record_result(ctx, claimed.clone(), claim, &update.status).await;
                Learned::Recorded(update)
            }
            Effect::Publish(note) => {
                publish(ctx, &self.tr.object_ref(&()), &note).await;
                Learned::Published
            }
        })
    }

    /// Reserve the run: a failure fails the reconcile (after the claim is withdrawn).
    async fn reserve(&mut self, key: &RunKey, runner: &Runner) -> Learned {
        match self.ctx.ledger.reserve(key, runner, Timestamp::now()).await {
            Ok(reservation) => Learned::Reserved(reservation),
            Err(error) => self.failed(error.into()),
        }
    }

    /// Give a withdrawn claim's reservation back; a failure leaves the entry open, which
    /// reads as ambiguous.
    async fn release(&self, key: &RunKey, runner: &Runner, replaced: Option<Entry>) -> Learned {
        let released = self
            .ctx
            .ledger
            .release(key, runner, replaced, Timestamp::now());
        let meaning = "could not release the ledger reservation; the run reads as ambiguous";
        logged(released.await, meaning);
        Learned::Released
    }

    /// Complete the entry; a failure leaves it open, which reads as ambiguous.
    async fn complete(
        &self,
        key: &RunKey,
        runner: &Runner,
        outcome: Phase,
        detail: Option<String>,
    ) -> Learned {
        let ledger = &self.ctx.ledger;
        let completed = ledger.complete(key, runner, outcome, detail, Timestamp::now());
        logged(
            completed.await,
            "could not complete the ledger entry; it stays ambiguous",
        );
        Learned::Completed
    }

    /// Waiting for a turn holds no reconcile slot: the object is looked at again when told.
    fn take_turn(&mut self, target: &Target) -> Learned {
        let waiter = Waiter {
            namespace: self.tr.metadata.namespace.clone().unwrap_or_default(),
            name: self.tr.name_any(),
        };
        let now = tokio::time::Instant::now();
        match self.ctx.limits.try_acquire(&waiter, target, now) {
            Ok(permit) => {
                self.permit = Some(permit);
                Learned::Turn(Turn::Granted)
            }
            Err(wait) => Learned::Turn(Turn::Wait(wait)),
        }
    }

    async fn read_credentials(&mut self, endpoint: &Endpoint, fresh: bool) -> Learned {
        let ctx = self.ctx;
        let source = credentials::Source {
            secrets: &ctx.secrets,
            default: ctx.default_secret.as_ref(),
            fresh,
        };
        match credentials::lookup(&source, self.tr, &ctx.roma, endpoint).await {
            Ok(lookup) => Learned::Credentials(lookup),
            Err(source) => self.failed(Error::Kube {
                context: "reading the credentials Secret",
                source,
            }),
        }
    }

    async fn write(&mut self, update: Update) -> Learned {
        match answer(write_status(self.ctx, self.tr, &update.status).await) {
            Ok(answer) => {
                if matches!(answer, Answer::Written(_)) {
                    log_decision(&update);
                }
                Learned::Written(update, answer)
            }
            Err(source) => self.failed(Error::Kube {
                context: "writing the status",
                source,
            }),
        }
    }

    async fn claim(&mut self, status: TaskResetStatus) -> Learned {
        match answer(write_status(self.ctx, self.tr, &status).await) {
            Ok(answer) => {
                if answer == Answer::Conflict {
                    debug!("claim lost to a concurrent writer; looking again");
                }
                Learned::Claimed(Claim { status, answer })
            }
            Err(source) => self.failed(Error::Kube {
                context: "writing the claim",
                source,
            }),
        }
    }

    /// The call's outcome: `known` (the IAM exchange failed; nothing is sent), or the call's.
    /// A Secret the gateway rejected is read afresh at the next look, past the cache.
    async fn call_or_not(
        &mut self,
        request: &ResetRequest,
        credentials: &Credentials,
        known: Option<ResetOutcome>,
        facts: &Facts,
    ) -> Called {
        let called = match known {
            Some(outcome) => {
                info!(outcome = %outcome, "not calling: the IAM token exchange failed");
                let class = classify(&outcome);
                Called { outcome, class }
            }
            None => {
                let attempt = facts.claim.as_ref().and_then(|c| c.status.attempts);
                self.call(request, credentials, attempt).await
            }
        };
        if called.class == OutcomeClass::CredentialsRejected
            && let Some(Lookup::Found(_, version)) = &facts.credentials
            && let Some((namespace, name)) = version.secret.split_once('/')
        {
            self.ctx.secrets.forget(namespace, name);
        }
        called
    }

    async fn call(
        &mut self,
        request: &ResetRequest,
        credentials: &Credentials,
        attempt: Option<u32>,
    ) -> Called {
        let ctx = self.ctx;
        if let Some(permit) = self.permit.as_mut() {
            permit.calling();
        }
        info!(attempt = attempt.unwrap_or(0), endpoint = %request.endpoint, task = %request.task_id, "calling reset");
        let timer = ctx.metrics.call_started();
        let outcome = ctx.roma.reset_until(request, credentials, &ctx.stop).await;
        // The call is over: its slot and its target are free while the result is recorded.
        self.permit = None;
        let class = classify(&outcome);
        timer.finish(class.as_str());
        Called { outcome, class }
    }
}

/// A ledger failure the reconcile goes on after: logged, with what it means.
fn logged(result: Result<(), crate::ledger::LedgerError>, meaning: &'static str) {
    if let Err(error) = result {
        warn!(%error, "{meaning}");
    }
}

/// A status write's answer: written, or the conflict or deletion [`step`] reacts to.
fn answer(result: Result<TaskReset, kube::Error>) -> Result<Answer, kube::Error> {
    match result {
        Ok(obj) => Ok(Answer::Written(Box::new(obj))),
        Err(e) if is_status(&e, 409) => Ok(Answer::Conflict),
        Err(e) if is_status(&e, 404) => Ok(Answer::Gone),
        Err(e) => Err(e),
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

/// One info line for a call's answer and the phase it leads to.
fn log_answer(claim: &TaskResetStatus, called: &Called, update: &Update) {
    let outcome = &called.outcome;
    info!(
        attempt = claim.attempts.unwrap_or(0),
        outcome = called.class.as_str(),
        phase = update.status.phase.map(tracing::field::display),
        http_status = outcome.http_status(),
        error_code = outcome.error_code(),
        request_id = outcome.request_id(),
        "reset call answered"
    );
}

/// Write `status` in place of the claim `claim` (the result of its attempt, or the status
/// from before it). A conflicting write (a label edit, an expired-claim `Interrupted` written
/// by another replica) is re-read: the write still goes ahead while the status describes the
/// same attempt ([`decision::still_describes`]). API failures are retried for a while; if
/// the write cannot be made, the claim expires into `Interrupted` later, which stays
/// truthful. Whether it was written.
async fn record_result(
    ctx: &Context,
    mut base: TaskReset,
    claim: &TaskResetStatus,
    status: &TaskResetStatus,
) -> bool {
    let deadline = tokio::time::Instant::now() + RESULT_WRITE_PATIENCE;
    let mut pause = Duration::from_millis(200);
    loop {
        let error = match write_status(ctx, &base, status).await {
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
            Ok(fresh) if decision::still_describes(fresh.status.as_ref(), claim) => base = fresh,
            Ok(_) => {
                warn!(
                    attempt = claim.attempts.unwrap_or(0),
                    "the status moved on meanwhile; the result is only in the logs and events"
                );
                return false;
            }
            Err(e) => debug!(error = %e, "re-reading before the result write failed"),
        }
    }
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
