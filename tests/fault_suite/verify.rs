//! The invariants, checked from evidence only: the ROMA simulator's call log, the terminal
//! status each generation showed, the kill instants and the execution ledger.
//!
//! Each call is attributed to its (object, generation) by (taskId, date_from) and to the
//! scripted answer it got by its rank among that generation's calls; the simulator's recorded
//! status must agree with that answer, so a wrong attribution shows up as a mismatch.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use taskreset_controller::api::{Phase, RetryPolicy, TaskReset, TaskResetStatus};
use taskreset_controller::ledger::{Entry, RunKey};
use taskreset_simulators::roma::{CallRecord, Step};

use super::plan::{self, Class, Knobs, ObjectPlan};
use crate::support::NS;

/// The terminal status one generation showed when the driver moved on.
#[derive(Debug, Clone)]
pub struct GenOutcome {
    /// metadata.uid of the object.
    pub uid: String,
    /// The status (observedGeneration = this generation, a terminal phase).
    pub status: TaskResetStatus,
    /// When the driver saw it (after it was written).
    pub observed_at: SystemTime,
}

/// How long a driver holds an `Interrupted` verdict before it counts: the original caller's
/// result may still replace it.
pub const INTERRUPTED_HOLD: Duration = Duration::from_secs(3);

/// What a driver knows of one object.
#[derive(Debug, Default)]
pub struct Track {
    /// `outcomes[g - 1]`: the terminal status generation g showed.
    pub outcomes: Vec<Option<GenOutcome>>,
    /// (generation, first seen) of an `Interrupted` verdict being held.
    pub interrupted: Option<(i64, std::time::Instant)>,
}

impl Track {
    /// Nothing seen yet of `generations` generations.
    pub fn new(generations: i64) -> Self {
        Self {
            outcomes: vec![None; usize::try_from(generations).unwrap_or(0)],
            interrupted: None,
        }
    }

    /// Note `tr`'s current generation once its status is final (an `Interrupted` verdict only
    /// after [`INTERRUPTED_HOLD`]); whether that generation's outcome is known.
    pub fn observe(&mut self, tr: &TaskReset) -> bool {
        let g = tr.metadata.generation.unwrap_or(0);
        let slot = usize::try_from(g - 1)
            .ok()
            .filter(|s| *s < self.outcomes.len())
            .unwrap_or_else(|| panic!("{:?}: unexpected generation {g}", tr.metadata.name));
        if self.outcomes[slot].is_some() {
            return true;
        }
        if !tr.current_phase().is_some_and(Phase::is_terminal) {
            return false;
        }
        let ready = tr
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        if ready.is_some_and(|c| c.reason == "Interrupted") {
            match self.interrupted {
                Some((seen, since)) if seen == g && since.elapsed() >= INTERRUPTED_HOLD => {}
                Some((seen, _)) if seen == g => return false,
                _ => {
                    self.interrupted = Some((g, std::time::Instant::now()));
                    return false;
                }
            }
        }
        self.outcomes[slot] = Some(GenOutcome {
            uid: tr.metadata.uid.clone().unwrap_or_default(),
            status: tr.status.clone().unwrap_or_default(),
            observed_at: SystemTime::now(),
        });
        true
    }
}

/// Where the controller writes that no secret may reach, besides its logs: its events, the
/// final statuses, the statuses recorded on the way, the ledger. As (place, text).
pub fn written_places(
    events: &impl serde::Serialize,
    statuses: &impl serde::Serialize,
    outcomes: &[Vec<Option<GenOutcome>>],
    ledger: &impl std::fmt::Debug,
) -> Vec<(String, String)> {
    vec![
        (
            "events".into(),
            serde_json::to_string(events).unwrap_or_default(),
        ),
        (
            "statuses".into(),
            serde_json::to_string(statuses).unwrap_or_default(),
        ),
        ("recorded statuses".into(), format!("{outcomes:?}")),
        ("ledger".into(), format!("{ledger:?}")),
    ]
}

/// Each place of `places` that holds one of `needles`: `"<place> holds abc"` (the first three
/// characters only).
pub fn leaks<'a>(
    places: &[(String, String)],
    needles: impl Iterator<Item = &'a str> + Clone,
) -> Vec<String> {
    let mut found = Vec::new();
    for (name, text) in places {
        for needle in needles.clone() {
            if text.contains(needle) {
                found.push(format!("{name} holds {}", &needle[..3.min(needle.len())]));
            }
        }
    }
    found
}

/// What the checks found. Every counter but the informational ones must be 0.
#[derive(Debug, Default)]
pub struct Findings {
    /// Generations with more than one executed call.
    pub duplicates: usize,
    /// Ledger keys with more than one executed call.
    pub ledger_duplicates: usize,
    /// Calls made for a generation after it was terminal (or after a terminal answer).
    pub calls_after_terminal: usize,
    /// Terminal statuses that do not match what the simulator answered.
    pub wrong_statuses: usize,
    /// Calls that belong to no planned generation, or disagree with their scripted answer.
    pub unattributable: usize,
    /// Generations that made a call without a ledger entry of their own, or whose ledger
    /// outcome contradicts their status.
    pub ledger_mismatches: usize,
    /// Ledger entries still without an outcome (a kill or an API fault between the call and
    /// the ledger write): allowed, they read as "may have executed".
    pub ledger_open: usize,
    /// Faults the simulator played, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Terminal (phase, reason) counts.
    pub outcomes: BTreeMap<String, usize>,
    /// Calls attributed to a generation.
    pub calls: usize,
    /// Executed calls.
    pub executed: usize,
    /// 401 refusals by the gateway's own token check (expired tokens), before a body is read.
    pub auth_refusals: usize,
    /// One line per problem (capped in the report).
    pub problems: Vec<String>,
}

impl Findings {
    /// Whether every invariant held.
    pub fn clean(&self) -> bool {
        self.duplicates == 0
            && self.ledger_duplicates == 0
            && self.calls_after_terminal == 0
            && self.wrong_statuses == 0
            && self.unattributable == 0
            && self.ledger_mismatches == 0
    }
}

/// All the evidence of one run.
pub struct Evidence<'a> {
    /// The plan.
    pub plan: &'a [ObjectPlan],
    /// Generations per object.
    pub generations: i64,
    /// `outcomes[object][g - 1]`.
    pub outcomes: &'a [Vec<Option<GenOutcome>>],
    /// The simulator's call log.
    pub calls: &'a [CallRecord],
    /// When a controller process was SIGKILLed.
    pub kills: &'a [SystemTime],
    /// The ledger ConfigMaps' data (key -> entry JSON).
    pub ledger: &'a BTreeMap<String, String>,
    /// Timeout, attempts, delays.
    pub knobs: Knobs,
}

/// Check every invariant.
pub fn check(evidence: &Evidence<'_>) -> Findings {
    let mut found = Findings::default();
    let by_task: HashMap<&str, usize> = evidence
        .plan
        .iter()
        .enumerate()
        .map(|(i, o)| (o.task.as_str(), i))
        .collect();
    let mut grouped: BTreeMap<(usize, i64), Vec<&CallRecord>> = BTreeMap::new();
    for call in evidence.calls {
        let Some(&object) = by_task.get(call.task_id.as_str()) else {
            found.unattributable += 1;
            found
                .problems
                .push(format!("call for unknown task {}", call.task_id));
            continue;
        };
        let Some(date_from) = call.date_from else {
            // The gateway refused the token before the body was read: nothing executed.
            if call.status == Some(401) && !call.executed {
                found.auth_refusals += 1;
            } else {
                found.unattributable += 1;
                found.problems.push(format!(
                    "{}: call without date_from answered {:?}",
                    evidence.plan[object].name, call.status
                ));
            }
            continue;
        };
        let g = date_from - plan::DATE_BASE;
        if !(1..=evidence.generations).contains(&g) {
            found.unattributable += 1;
            found.problems.push(format!(
                "{}: call with date_from {date_from} belongs to no generation",
                evidence.plan[object].name
            ));
            continue;
        }
        grouped.entry((object, g)).or_default().push(call);
    }
    let mut executed_by_key: BTreeMap<String, usize> = BTreeMap::new();
    for (i, object) in evidence.plan.iter().enumerate() {
        for g in 1..=evidence.generations {
            let mut calls = grouped.remove(&(i, g)).unwrap_or_default();
            calls.sort_by_key(|c| c.at);
            let outcome = evidence
                .outcomes
                .get(i)
                .and_then(|o| o.get(usize::try_from(g - 1).ok()?))
                .and_then(Option::as_ref);
            let key = RunKey::of(
                &{
                    let mut tr = TaskReset::new(&object.name, object.spec(g));
                    tr.metadata.namespace = Some(NS.to_owned());
                    tr
                },
                &object
                    .spec(g)
                    .validate()
                    .expect("the planned spec is valid"),
            )
            .data_key();
            *executed_by_key.entry(key.clone()).or_default() +=
                calls.iter().filter(|c| c.executed).count();
            generation(evidence, object, g, &calls, outcome, &key, &mut found);
        }
    }
    found.ledger_duplicates = executed_by_key.values().filter(|n| **n > 1).count();
    found
}

/// The scripted answer the `rank`-th call of a generation got.
fn step_for(script: &[Step], rank: usize) -> &Step {
    static SUCCEED: Step = Step::Succeed;
    script.get(rank).unwrap_or(&SUCCEED)
}

fn generation(
    evidence: &Evidence<'_>,
    object: &ObjectPlan,
    g: i64,
    calls: &[&CallRecord],
    outcome: Option<&GenOutcome>,
    key: &str,
    found: &mut Findings,
) {
    let name = &object.name;
    let timeout = evidence.knobs.request_timeout;
    let script = object.script(g);
    found.calls += calls.len();
    let executed = calls.iter().filter(|c| c.executed).count();
    found.executed += executed;
    if executed > 1 {
        found.duplicates += 1;
        found
            .problems
            .push(format!("{name} gen {g}: {executed} executed calls"));
    }
    for (rank, call) in calls.iter().enumerate() {
        let step = step_for(script, rank);
        if let Some(kind) = plan::fault_kind(step, timeout) {
            *found.faults.entry(kind).or_default() += 1;
        }
        if call.status != plan::recorded_status(step) {
            found.unattributable += 1;
            found.problems.push(format!(
                "{name} gen {g}: call {rank} answered {:?}, the script says {step:?}",
                call.status
            ));
        }
        // Only the last call may have had a terminal answer (for this policy).
        let carries_on = match plan::class(step, timeout) {
            Class::Unauthorized => true,
            Class::Retryable => object.policy != RetryPolicy::Never,
            Class::Ambiguous => object.policy == RetryPolicy::Always,
            Class::Success | Class::Rejected => false,
        };
        if rank + 1 < calls.len() && !carries_on {
            found.calls_after_terminal += 1;
            found.problems.push(format!(
                "{name} gen {g}: another call after call {rank} answered {step:?} ({:?})",
                object.policy
            ));
        }
    }
    let Some(outcome) = outcome else {
        found.wrong_statuses += 1;
        found
            .problems
            .push(format!("{name} gen {g}: never reached a terminal phase"));
        return;
    };
    let status = &outcome.status;
    let completed = status.completion_time.as_ref().map(|t| system_time(t.0));
    for call in calls {
        let after_completion = completed.is_some_and(|c| call.at > c + Duration::from_secs(1));
        if call.at > outcome.observed_at || after_completion {
            found.calls_after_terminal += 1;
            found.problems.push(format!(
                "{name} gen {g}: call at {:?} after the terminal status (seen {:?}, completed {completed:?})",
                call.at, outcome.observed_at
            ));
        }
    }
    let reason = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    let phase = status.phase.map(|p| p.to_string()).unwrap_or_default();
    *found
        .outcomes
        .entry(format!("{phase}/{reason}"))
        .or_default() += 1;
    let last = calls
        .last()
        .map(|call| (*call, step_for(script, calls.len() - 1)));
    // Under retryPolicy Always, an ambiguous attempt before the last: "may have executed" is
    // never downgraded by a later answer.
    let earlier_ambiguous = (0..calls.len().saturating_sub(1)).find(|&i| {
        plan::class(step_for(script, i), evidence.knobs.request_timeout) == Class::Ambiguous
    });
    let answers = Answers {
        last,
        calls,
        executed,
        earlier_ambiguous,
    };
    if let Err(why) = status_matches(evidence, object, status, &reason, &answers) {
        found.wrong_statuses += 1;
        found.problems.push(format!(
            "{name} gen {g}: {phase}/{reason} does not match the calls: {why}; status {status:?}; calls {:?}",
            calls
                .iter()
                .map(|c| (c.status, c.executed, c.ambiguous))
                .collect::<Vec<_>>()
        ));
    }
    ledger(evidence, object, g, outcome, calls.len(), key, found);
}

/// What the simulator answered one generation.
struct Answers<'a> {
    /// The last call and the scripted step it met.
    last: Option<(&'a CallRecord, &'a Step)>,
    calls: &'a [&'a CallRecord],
    /// How many calls executed the reset.
    executed: usize,
    /// The index of the first call before the last whose outcome was ambiguous.
    earlier_ambiguous: Option<usize>,
}

/// Whether the terminal status tells what the simulator answered.
fn status_matches(
    evidence: &Evidence<'_>,
    object: &ObjectPlan,
    status: &TaskResetStatus,
    reason: &str,
    answers: &Answers<'_>,
) -> Result<(), String> {
    let Answers {
        last,
        calls,
        executed,
        earlier_ambiguous,
    } = *answers;
    let knobs = &evidence.knobs;
    let exhausted = status.attempts.unwrap_or(0) >= knobs.max_attempts;
    let answered = |call: &CallRecord| {
        same(status.http_status, call.status, "httpStatus")?;
        same(
            status.request_id.as_deref(),
            Some(call.request_id.as_str()),
            "requestId",
        )
    };
    let error_fields = |step: &Step| match plan::inner(step) {
        Step::Fail { code, message, .. } => {
            same(
                status.error_code.as_deref(),
                Some(code.as_str()),
                "errorCode",
            )?;
            same(
                status.error_message.as_deref(),
                Some(message.as_str()),
                "errorMessage",
            )
        }
        Step::Throttle => same(
            status.error_code.as_deref(),
            Some("APIGW.0308"),
            "errorCode",
        ),
        other => Err(format!("no error fields for {other:?}")),
    };
    let class = last.map(|(_, step)| plan::class(step, knobs.request_timeout));
    match (status.phase, reason) {
        (Some(Phase::Succeeded), "ResetSucceeded") => {
            let (call, _) = last.ok_or("no call")?;
            expect(
                class == Some(Class::Success),
                "the last answer was not a success",
            )?;
            expect(call.executed && executed == 1, "not exactly one execution")?;
            same(status.message.as_deref(), Some("Reset Success"), "message")?;
            answered(call)
        }
        (Some(Phase::Failed), "ResetFailed") => {
            let (call, step) = last.ok_or("no call")?;
            expect(
                class == Some(Class::Rejected),
                "the last answer was no rejection",
            )?;
            expect(executed == 0, "a failed generation executed")?;
            answered(call)?;
            error_fields(step)
        }
        (Some(Phase::Failed), "RetriesExhausted") => {
            let (call, step) = last.ok_or("no call")?;
            expect(
                class == Some(Class::Retryable),
                "the last answer was not retryable",
            )?;
            expect(executed == 0, "a failed generation executed")?;
            expect(
                object.policy == RetryPolicy::Never || exhausted,
                "retries left",
            )?;
            answered(call)?;
            error_fields(step)
        }
        (Some(Phase::Unknown), "OutcomeUnknown")
            if class != Some(Class::Ambiguous) && earlier_ambiguous.is_some() =>
        {
            let (call, _) = last.ok_or("no call")?;
            expect(
                object.policy == RetryPolicy::Always,
                "an earlier ambiguous attempt was retried without retryPolicy Always",
            )?;
            expect(class != Some(Class::Success), "a success reads as unknown")?;
            expect(executed <= 1, "more than one execution")?;
            expect(
                status.ambiguous_attempt.is_some(),
                "no ambiguousAttempt in the status",
            )?;
            answered(call)
        }
        (Some(Phase::Unknown), "OutcomeUnknown") => {
            let (call, step) = last.ok_or("no call")?;
            expect(
                class == Some(Class::Ambiguous),
                "the last answer was not ambiguous",
            )?;
            expect(
                object.policy != RetryPolicy::Always || exhausted,
                "retryPolicy Always with retries left",
            )?;
            let in_time = !matches!(step, Step::Delay(d, _) if *d >= knobs.request_timeout)
                && call.status.is_some();
            if in_time {
                answered(call)
            } else {
                same(status.http_status, None, "httpStatus")
            }
        }
        (Some(Phase::Unknown), "Interrupted") => {
            let claimed = status
                .last_attempt_time
                .as_ref()
                .map(|t| system_time(t.0))
                .ok_or("no lastAttemptTime")?;
            let completed = status
                .completion_time
                .as_ref()
                .map(|t| system_time(t.0))
                .ok_or("no completionTime")?;
            let kill = evidence
                .kills
                .iter()
                .filter(|k| {
                    **k + Duration::from_secs(1) >= claimed
                        && **k <= completed + Duration::from_secs(1)
                })
                .max()
                .ok_or("no controller was killed while the claim was held")?;
            expect(
                // The simulator stamps a call when it gets to it: a request the killed
                // process had already sent can be stamped a moment after the kill.
                calls.iter().all(|c| c.at <= *kill + Duration::from_secs(1)),
                &format!(
                    "a call arrived after the kill that interrupted the claim: calls at {:?}, kills {:?}",
                    calls.iter().map(|c| millis(c.at)).collect::<Vec<_>>(),
                    evidence
                        .kills
                        .iter()
                        .map(|k| millis(*k))
                        .collect::<Vec<_>>()
                ),
            )
        }
        (phase, reason) => Err(format!("unexpected terminal {phase:?}/{reason}")),
    }
}

/// The ledger entry of a generation: present when it called, its own, and agreeing.
fn ledger(
    evidence: &Evidence<'_>,
    object: &ObjectPlan,
    g: i64,
    outcome: &GenOutcome,
    calls: usize,
    key: &str,
    found: &mut Findings,
) {
    let entry = evidence
        .ledger
        .get(key)
        .and_then(|json| serde_json::from_str::<Entry>(json).ok());
    let Some(entry) = entry else {
        if calls > 0 {
            found.ledger_mismatches += 1;
            found.problems.push(format!(
                "{} gen {g}: {calls} calls but no ledger entry {key}",
                object.name
            ));
        }
        return;
    };
    let phase = outcome.status.phase;
    let agrees = entry.uid == outcome.uid
        && entry.generation == g
        && match entry.outcome {
            None => {
                found.ledger_open += 1;
                true
            }
            Some(recorded) => {
                // A later attempt claimed and was killed before its reservation (so it made
                // no call): the status says Unknown/Interrupted, the ledger still holds the
                // earlier attempt's outcome.
                let interrupted_later = phase == Some(Phase::Unknown)
                    && outcome.status.attempts.is_some_and(|n| n > entry.attempt);
                Some(recorded) == phase || interrupted_later
            }
        };
    if !agrees {
        found.ledger_mismatches += 1;
        found.problems.push(format!(
            "{} gen {g}: ledger entry {entry:?} contradicts status {phase:?} (uid {})",
            object.name, outcome.uid
        ));
    }
}

fn system_time(t: jiff::Timestamp) -> SystemTime {
    SystemTime::from(t)
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

fn same<T: PartialEq + std::fmt::Debug>(got: T, want: T, field: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{field} is {got:?}, the simulator answered {want:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use taskreset_simulators::roma::AuthKind;

    const KNOBS: Knobs = Knobs {
        request_timeout: Duration::from_secs(3),
        max_attempts: 3,
        slow_max: Duration::from_millis(400),
        hang: Duration::from_millis(4500),
    };
    const T0: u64 = 1_800_000_000;

    fn object(policy: RetryPolicy, script: Vec<Step>) -> ObjectPlan {
        ObjectPlan {
            name: "probe".into(),
            task: "0123456789abcdef".into(),
            cred: plan::Cred::Token,
            policy,
            scripts: vec![script],
        }
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + s)
    }

    fn ts(s: u64) -> Time {
        Time(jiff::Timestamp::try_from(at(s)).unwrap())
    }

    fn call(n: u64, status: Option<u16>, executed: bool) -> CallRecord {
        CallRecord {
            project_id: crate::support::PROJECT.into(),
            instance_id: crate::support::INSTANCE.into(),
            task_id: "0123456789abcdef".into(),
            date_from: Some(plan::date_from(1)),
            auth: AuthKind::Token,
            at: at(n),
            status,
            executed,
            ambiguous: status.is_none(),
            request_id: format!("sim-{n}"),
        }
    }

    fn status(phase: Phase, reason: &str, attempts: u32) -> TaskResetStatus {
        TaskResetStatus {
            observed_generation: Some(1),
            phase: Some(phase),
            attempts: Some(attempts),
            last_attempt_time: Some(ts(1)),
            completion_time: Some(ts(2)),
            conditions: vec![Condition {
                last_transition_time: ts(2),
                message: String::new(),
                observed_generation: Some(1),
                reason: reason.into(),
                status: "False".into(),
                type_: "Ready".into(),
            }],
            ..TaskResetStatus::default()
        }
    }

    fn run(
        object: &ObjectPlan,
        calls: &[CallRecord],
        status: TaskResetStatus,
        kills: &[SystemTime],
    ) -> Findings {
        let mut tr = TaskReset::new(&object.name, object.spec(1));
        tr.metadata.namespace = Some(NS.to_owned());
        let key = RunKey::of(&tr, &object.spec(1).validate().unwrap()).data_key();
        let entry = Entry {
            uid: "uid-1".into(),
            generation: 1,
            attempt: status.attempts.unwrap_or(1),
            at: jiff::Timestamp::try_from(at(2)).unwrap(),
            outcome: status.phase,
            detail: None,
            base: None,
            ambiguous_attempt: None,
        };
        let ledger = BTreeMap::from([(key, serde_json::to_string(&entry).unwrap())]);
        let outcomes = vec![vec![Some(GenOutcome {
            uid: "uid-1".into(),
            status,
            observed_at: at(3),
        })]];
        check(&Evidence {
            plan: std::slice::from_ref(object),
            generations: 1,
            outcomes: &outcomes,
            calls,
            kills,
            ledger: &ledger,
            knobs: KNOBS,
        })
    }

    fn succeeded(request_id: &str) -> TaskResetStatus {
        TaskResetStatus {
            message: Some("Reset Success".into()),
            http_status: Some(200),
            request_id: Some(request_id.into()),
            ..status(Phase::Succeeded, "ResetSucceeded", 1)
        }
    }

    #[test]
    fn a_truthful_run_is_clean_and_a_second_execution_is_a_duplicate() {
        let object = object(RetryPolicy::OnTransientError, vec![Step::Throttle]);
        let calls = [call(1, Some(429), false), call(2, Some(200), true)];
        let found = run(&object, &calls, succeeded("sim-2"), &[]);
        assert!(found.clean(), "{:?}", found.problems);
        assert_eq!((found.calls, found.executed), (2, 1));
        assert_eq!(found.faults.get("429"), Some(&1));

        let twice = [calls[0].clone(), calls[1].clone(), call(2, Some(200), true)];
        let found = run(&object, &twice, succeeded("sim-2"), &[]);
        assert_eq!((found.duplicates, found.ledger_duplicates), (1, 1));
        assert!(found.calls_after_terminal > 0);
    }

    #[test]
    fn fields_that_differ_from_the_answer_are_wrong() {
        let object = object(RetryPolicy::OnTransientError, vec![Step::task_list_empty()]);
        let calls = [call(1, Some(400), false)];
        let failed = |code: &str| TaskResetStatus {
            error_code: Some(code.into()),
            error_message: Some("The task list is empty.".into()),
            http_status: Some(400),
            request_id: Some("sim-1".into()),
            ..status(Phase::Failed, "ResetFailed", 1)
        };
        assert!(run(&object, &calls, failed("FDI.3150"), &[]).clean());
        assert_eq!(
            run(&object, &calls, failed("FDI.3083"), &[]).wrong_statuses,
            1
        );
        // A success claimed where the service refused.
        assert_eq!(
            run(&object, &calls, succeeded("sim-1"), &[]).wrong_statuses,
            1
        );
    }

    #[test]
    fn unknown_only_where_the_outcome_was_ambiguous_or_a_kill_cut_the_call() {
        let object = object(RetryPolicy::OnTransientError, vec![Step::DropConnection]);
        let calls = [call(1, None, false)];
        let unknown = status(Phase::Unknown, "OutcomeUnknown", 1);
        assert!(run(&object, &calls, unknown.clone(), &[]).clean());
        // The same Unknown after a clean success is a lie.
        let clean = self::object(RetryPolicy::OnTransientError, vec![]);
        let ok = [call(1, Some(200), true)];
        assert_eq!(run(&clean, &ok, unknown, &[]).wrong_statuses, 1);
        // Interrupted needs a kill while the claim was held.
        let interrupted = status(Phase::Unknown, "Interrupted", 1);
        assert_eq!(run(&clean, &ok, interrupted.clone(), &[]).wrong_statuses, 1);
        assert!(run(&clean, &ok, interrupted, &[at(1)]).clean());
        // An ambiguous answer retried under OnTransientError is a call too many.
        let retried = [call(1, None, false), call(2, Some(200), true)];
        let found = run(&object, &retried, succeeded("sim-2"), &[]);
        assert_eq!(found.calls_after_terminal, 1);
    }

    #[test]
    fn a_call_after_the_terminal_status_is_caught() {
        let object = object(RetryPolicy::OnTransientError, vec![]);
        let mut late = call(1, Some(200), true);
        late.at = at(4);
        let found = run(&object, &[late], succeeded("sim-1"), &[]);
        assert_eq!(found.calls_after_terminal, 1);
    }
}
