//! The fault suite's plan, drawn from one seed: the objects (target, credentials, retry
//! policy) and, per generation, the script of ROMA answers the simulator plays. Also what each
//! scripted answer looks like to the controller's client, which the verifier needs.

use std::time::Duration;

use taskreset_controller::api::{DateFrom, RetryPolicy, TaskResetSpec};
use taskreset_simulators::roma::Step;

use crate::support::SECRET;

/// `dateFrom` of generation `g` of any object is `DATE_BASE + g`: every call the simulator
/// records names its generation (task ids are unique per object).
pub const DATE_BASE: i64 = 1_700_000_000_000;

/// How an object authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cred {
    /// A static IAM token (`token`).
    Token,
    /// IAM password credentials: the controller exchanges them for tokens.
    Password,
    /// AK/SK signing.
    AccessKey,
}

impl Cred {
    /// The Secret holding these credentials.
    pub fn secret(self) -> &'static str {
        match self {
            Self::Token => SECRET,
            Self::Password => "iam",
            Self::AccessKey => "aksk",
        }
    }
}

/// `spec.dateFrom` of generation `g`.
pub fn date_from(g: i64) -> i64 {
    DATE_BASE + g
}

/// `spec.runId` of generation `g`.
pub fn run_id(g: i64) -> String {
    format!("gen-{g}")
}

/// One TaskReset of the run.
#[derive(Debug, Clone)]
pub struct ObjectPlan {
    /// metadata.name.
    pub name: String,
    /// spec.taskId, unique in the run.
    pub task: String,
    /// Which Secret it names.
    pub cred: Cred,
    /// spec.retryPolicy.
    pub policy: RetryPolicy,
    /// `scripts[g - 1]`: the simulator's answers to generation g's calls, in order; the
    /// default (success) answers once they are used up.
    pub scripts: Vec<Vec<Step>>,
}

impl ObjectPlan {
    /// The spec of generation `g`: what the object is created with (g = 1) or patched to.
    pub fn spec(&self, g: i64) -> TaskResetSpec {
        crate::fixture::Fixture::new(&self.name, &self.task)
            .secret(self.cred.secret())
            .run_id(&run_id(g))
            .retry_policy(self.policy)
            .spec(|s| s.date_from = Some(DateFrom::EpochMillis(date_from(g))))
            .build_spec()
    }

    /// The script of generation `g` (1-based).
    pub fn script(&self, g: i64) -> &[Step] {
        usize::try_from(g - 1)
            .ok()
            .and_then(|i| self.scripts.get(i))
            .map_or(&[], Vec::as_slice)
    }
}

/// The knobs the plan and the verifier share.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// `--request-timeout` of the controller.
    pub request_timeout: Duration,
    /// `--max-attempts` of the controller.
    pub max_attempts: u32,
    /// A delay the controller always outwaits (well under the timeout).
    pub slow_max: Duration,
    /// A delay the controller never outwaits (well over the timeout).
    pub hang: Duration,
}

/// Draw `objects` objects with `generations` scripted generations each from `seed`.
pub fn draw(seed: u64, objects: usize, generations: i64, knobs: &Knobs) -> Vec<ObjectPlan> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..objects)
        .map(|i| {
            let cred = [Cred::Token, Cred::Password, Cred::AccessKey][i % 3];
            let policy = match rng.u32(0..10) {
                0..=5 => RetryPolicy::OnTransientError,
                6..=7 => RetryPolicy::Never,
                _ => RetryPolicy::Always,
            };
            let scripts = (0..generations)
                .map(|_| script(&mut rng, policy, knobs))
                .collect();
            ObjectPlan {
                name: format!("fault-{i:03}"),
                task: format!("{:032x}", rng.u128(..)),
                cred,
                policy,
                scripts,
            }
        })
        .collect()
}

/// One generation's script: mostly short runs of faults, now and then a run that exhausts the
/// retries. `Always` objects never get an answer that executes after the client gave up (it
/// would be retried and executed twice, which is what that policy accepts).
fn script(rng: &mut fastrand::Rng, policy: RetryPolicy, knobs: &Knobs) -> Vec<Step> {
    if rng.u32(0..50) == 0 {
        return vec![Step::Throttle; knobs.max_attempts as usize];
    }
    let len = match rng.u32(0..20) {
        0..=6 => 0,
        7..=13 => 1,
        14..=17 => 2,
        _ => 3,
    };
    (0..len).map(|_| step(rng, policy, knobs)).collect()
}

fn step(rng: &mut fastrand::Rng, policy: RetryPolicy, knobs: &Knobs) -> Step {
    let roll = rng.u32(0..100);
    let slow_max = u64::try_from(knobs.slow_max.as_millis()).unwrap_or(u64::MAX);
    let slow = Duration::from_millis(rng.u64(50..=slow_max.max(50)));
    match roll {
        0..=11 => Step::delay(slow, Step::Succeed),
        12..=25 => Step::Throttle,
        26..=35 => Step::server_error(),
        36..=41 => Step::fail(503, "FDI.3001", "The service is busy. Try again later."),
        42..=47 => Step::delay(slow, Step::Throttle),
        48..=53 => Step::task_list_empty(),
        54..=56 => Step::not_scheduled(),
        57..=59 => Step::fail(400, "FDI.3021", "The task does not exist."),
        60..=65 => Step::ServerErrorNoBody,
        66..=69 => Step::Html { status: 502 },
        70..=76 => Step::DropConnection,
        77..=82 if policy != RetryPolicy::Always => Step::DropAfterExecute,
        77..=82 => Step::DropConnection,
        83..=87 if policy != RetryPolicy::Always => Step::delay(knobs.hang, Step::Succeed),
        83..=90 => Step::delay(knobs.hang, Step::server_error()),
        _ => Step::Unauthorized,
    }
}

/// How the controller's client sees a scripted answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// 2xx in time: done.
    Success,
    /// A 4xx service error in time: terminal failure.
    Rejected,
    /// Provably not executed (429, 5xx with a service error body): retried.
    Retryable,
    /// 401 from the gateway: a token refresh or a credentials backoff, never terminal.
    Unauthorized,
    /// Maybe executed: dropped connection, an answer after the timeout, 5xx without a body.
    Ambiguous,
}

/// The class of `step` for a client that waits `timeout` (DESIGN 3.5).
pub fn class(step: &Step, timeout: Duration) -> Class {
    match step {
        Step::Delay(delay, _) if *delay >= timeout => Class::Ambiguous,
        Step::Delay(_, inner) => class(inner, timeout),
        Step::Succeed => Class::Success,
        Step::Raw { status, .. } if (200..300).contains(status) => Class::Success,
        Step::Fail { status: 401, .. } | Step::Unauthorized => Class::Unauthorized,
        Step::Fail { status: 429, .. } | Step::Throttle => Class::Retryable,
        Step::Fail { status: 504, .. } => Class::Ambiguous,
        Step::Fail { status, .. } if *status >= 500 => Class::Retryable,
        Step::Fail { .. } => Class::Rejected,
        Step::Html { status } | Step::Raw { status, .. } if *status >= 500 => Class::Ambiguous,
        Step::Html { .. } | Step::Raw { .. } => Class::Rejected,
        Step::ServerErrorNoBody | Step::DropConnection | Step::DropAfterExecute => Class::Ambiguous,
    }
}

/// The step without its delay.
pub fn inner(step: &Step) -> &Step {
    match step {
        Step::Delay(_, then) => inner(then),
        other => other,
    }
}

/// The HTTP status the simulator records for `step` (`None`: connection dropped).
pub fn recorded_status(step: &Step) -> Option<u16> {
    match inner(step) {
        Step::Succeed => Some(200),
        Step::Fail { status, .. } | Step::Html { status } | Step::Raw { status, .. } => {
            Some(*status)
        }
        Step::ServerErrorNoBody => Some(500),
        Step::Throttle => Some(429),
        Step::Unauthorized => Some(401),
        Step::DropConnection | Step::DropAfterExecute | Step::Delay(..) => None,
    }
}

/// A short name of the fault `step` injects, for the report (`None`: a plain success).
pub fn fault_kind(step: &Step, timeout: Duration) -> Option<&'static str> {
    if let Step::Delay(delay, _) = step {
        return Some(if *delay >= timeout {
            "timeout"
        } else {
            match inner(step) {
                Step::Succeed => "slow",
                _ => "slow_error",
            }
        });
    }
    Some(match step {
        Step::Succeed | Step::Delay(..) => return None,
        Step::Throttle => "429",
        Step::Fail { status, .. } if *status >= 500 => "5xx_body",
        Step::Fail { .. } => "4xx_rejected",
        Step::ServerErrorNoBody => "500_no_body",
        Step::Html { .. } => "html_5xx",
        Step::Unauthorized => "401",
        Step::DropConnection => "drop",
        Step::DropAfterExecute => "drop_after_execute",
        Step::Raw { .. } => "raw",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOBS: Knobs = Knobs {
        request_timeout: Duration::from_secs(3),
        max_attempts: 6,
        slow_max: Duration::from_millis(400),
        hang: Duration::from_millis(4500),
    };

    #[test]
    fn plans_repeat_for_a_seed_and_always_objects_never_execute_late() {
        let a = draw(7, 200, 3, &KNOBS);
        let b = draw(7, 200, 3, &KNOBS);
        assert_eq!(
            a.iter().map(|o| (&o.task, &o.scripts)).collect::<Vec<_>>(),
            b.iter().map(|o| (&o.task, &o.scripts)).collect::<Vec<_>>()
        );
        for object in a.iter().filter(|o| o.policy == RetryPolicy::Always) {
            for step in object.scripts.iter().flatten() {
                let executes_late = class(step, KNOBS.request_timeout) == Class::Ambiguous
                    && matches!(inner(step), Step::Succeed | Step::DropAfterExecute);
                assert!(!executes_late, "{}: {step:?}", object.name);
            }
        }
    }

    #[test]
    fn delays_beyond_the_timeout_are_ambiguous() {
        let late = Step::delay(KNOBS.hang, Step::server_error());
        assert_eq!(class(&late, KNOBS.request_timeout), Class::Ambiguous);
        let slow = Step::delay(KNOBS.slow_max, Step::server_error());
        assert_eq!(class(&slow, KNOBS.request_timeout), Class::Retryable);
        assert_eq!(recorded_status(&late), Some(500));
    }
}
