//! Limits on calls: one at a time per target, a global concurrency cap, a rate limit, and a
//! fair turn between namespaces.
//!
//! Nobody waits in place: [`Limits::try_acquire`] either hands out a [`CallPermit`] or says
//! when to come back, so a reconcile waiting for its turn holds no reconcile slot. Waiters
//! queue per namespace (first come, first served) and namespaces take turns, so a thousand
//! objects in one namespace delay an object of another namespace by one turn, not by a
//! thousand calls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What a call resets: two objects naming the same target never call at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The resolved endpoint's base URL.
    pub endpoint: String,
    /// Project ID.
    pub project_id: String,
    /// Instance ID.
    pub instance_id: String,
    /// Task ID.
    pub task_id: String,
}

/// Who asks for a permit: the object, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Waiter {
    /// The object's namespace: the unit of fairness.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

/// Shortest "come back later".
const MIN_WAIT: Duration = Duration::from_millis(20);
/// Longest "come back later": a waiter far back in line still looks in now and then.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A waiter that has not come back this long after it was due loses its place (the object
/// was deleted, or no longer needs a call).
const PLACE_KEPT: Duration = Duration::from_secs(2);
/// First guess of a call's length (then a moving average of real calls), to tell a waiter
/// when a concurrency slot or its target frees.
const CALL_GUESS: Duration = Duration::from_millis(200);

/// The limits shared by every reconcile of one controller process.
#[derive(Debug)]
pub struct Limits {
    max_concurrent: usize,
    rate: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled: Instant,
    in_flight: usize,
    busy: HashSet<Target>,
    /// Moving average of how long a permit is held for a call.
    call_length: Duration,
    /// Waiters per namespace, in arrival order, with the instant after which a waiter that
    /// has not come back loses its place.
    queues: HashMap<String, VecDeque<(String, Instant)>>,
    /// Namespaces with waiters, in the order of their turns.
    turns: VecDeque<String>,
}

/// Held for the duration of one call; frees the slot and the target on drop. A permit
/// dropped without [`CallPermit::calling`] gives its rate token back: the rate limit counts
/// calls started, not reconciles that found they had nothing to call.
#[derive(Debug)]
pub struct CallPermit {
    limits: Arc<Limits>,
    target: Target,
    started: Option<Instant>,
}

impl CallPermit {
    /// The call starts now.
    pub fn calling(&mut self) {
        self.started = Some(Instant::now());
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        let rate = self.limits.rate;
        let mut state = self.limits.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.busy.remove(&self.target);
        match self.started {
            Some(started) => {
                let length = started.elapsed();
                state.call_length = (state.call_length * 7 + length) / 8;
            }
            None if rate > 0.0 => state.tokens = (state.tokens + 1.0).min(rate.max(1.0)),
            None => {}
        }
    }
}

impl Limits {
    /// `max_concurrent` calls at once (at least 1), `per_second` calls started per second
    /// (a burst of up to `max(1, per_second)`); `per_second <= 0` disables the rate limit.
    pub fn new(max_concurrent: usize, per_second: f64) -> Self {
        Self {
            max_concurrent: max_concurrent.max(1),
            rate: per_second,
            state: Mutex::new(State {
                tokens: per_second.max(1.0),
                refilled: Instant::now(),
                in_flight: 0,
                busy: HashSet::new(),
                call_length: CALL_GUESS,
                queues: HashMap::new(),
                turns: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit for `waiter` to call `target` now, or how long to wait before asking again.
    /// A waiter keeps its place in line between asks; it is let through once fewer waiters
    /// stand before it (namespaces taking turns, the least recently served first) than
    /// there are calls to give out now.
    pub fn try_acquire(
        self: &Arc<Self>,
        waiter: &Waiter,
        target: &Target,
        now: Instant,
    ) -> Result<CallPermit, Duration> {
        let mut state = self.lock();
        state.refill(now, self.rate);
        state.prune(now);
        if state.busy.contains(target) {
            // Another object's call on the same target: no place in line until it ends.
            state.leave(waiter);
            return Err(state.call_length.clamp(MIN_WAIT, MAX_WAIT));
        }
        state.enqueue(waiter, now);
        let ahead = state.ahead_of(waiter);
        let slots = self.max_concurrent.saturating_sub(state.in_flight);
        let capacity = if self.rate > 0.0 {
            // Whole tokens only; at most a burst, so the cast cannot overflow.
            slots.min(state.tokens.floor().max(0.0) as usize)
        } else {
            slots
        };
        if ahead < capacity {
            state.grant(waiter, target.clone(), self.rate);
            drop(state);
            return Ok(CallPermit {
                limits: Arc::clone(self),
                target: target.clone(),
                started: None,
            });
        }
        let by_rate = if self.rate > 0.0 {
            Duration::from_secs_f64((ahead as f64 + 1.0 - state.tokens).max(0.0) / self.rate)
        } else {
            Duration::ZERO
        };
        // Calls that must end before a slot is free for this waiter, spread over the slots.
        let calls_before = (ahead + 1).saturating_sub(slots) as f64;
        let by_calls = state
            .call_length
            .mul_f64((calls_before / self.max_concurrent as f64).ceil());
        let wait = by_rate.max(by_calls).clamp(MIN_WAIT, MAX_WAIT);
        state.keep_place(waiter, now + wait + PLACE_KEPT);
        Err(wait)
    }

    /// How many reconciles may run at once: twice the call slots (so a freed slot is taken at
    /// once and statuses that need no call are still written) plus a few, never thousands of
    /// API requests at once when a backlog is listed. Waiting for a permit holds none.
    pub fn reconciles(&self) -> u16 {
        u16::try_from(self.max_concurrent.saturating_mul(2).saturating_add(16)).unwrap_or(u16::MAX)
    }

    /// Calls in flight right now.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Waiters currently holding a place in line.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().queues.values().map(VecDeque::len).sum()
    }
}

impl State {
    fn refill(&mut self, now: Instant, rate: f64) {
        if rate <= 0.0 {
            return;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        self.refilled = now;
    }

    /// Drop the waiters that did not come back in time (the object was deleted, or needs no
    /// call any more): they must not stand before anyone.
    fn prune(&mut self, now: Instant) {
        let queues = &mut self.queues;
        self.turns.retain(|ns| {
            let Some(queue) = queues.get_mut(ns) else {
                return false;
            };
            queue.retain(|(_, until)| *until >= now);
            if queue.is_empty() {
                queues.remove(ns);
                return false;
            }
            true
        });
    }

    /// Join the namespace's line at the back, unless already in it.
    fn enqueue(&mut self, waiter: &Waiter, now: Instant) {
        let queue = self.queues.entry(waiter.namespace.clone()).or_default();
        if queue.iter().any(|(name, _)| *name == waiter.name) {
            return;
        }
        queue.push_back((waiter.name.clone(), now + PLACE_KEPT));
        if queue.len() == 1 {
            self.turns.push_back(waiter.namespace.clone());
        }
    }

    fn leave(&mut self, waiter: &Waiter) {
        if let Some(queue) = self.queues.get_mut(&waiter.namespace) {
            queue.retain(|(name, _)| *name != waiter.name);
            if queue.is_empty() {
                self.queues.remove(&waiter.namespace);
                self.turns.retain(|ns| *ns != waiter.namespace);
            }
        }
    }

    fn keep_place(&mut self, waiter: &Waiter, until: Instant) {
        if let Some(entry) = self
            .queues
            .get_mut(&waiter.namespace)
            .and_then(|q| q.iter_mut().find(|(name, _)| *name == waiter.name))
        {
            entry.1 = until;
        }
    }

    /// How many waiters stand before `waiter` when the lines are taken in turns: `i` before
    /// it in its own line, and in every other line `i`, or `i + 1` for a namespace whose
    /// turn comes first.
    fn ahead_of(&self, waiter: &Waiter) -> usize {
        let Some(i) = self
            .queues
            .get(&waiter.namespace)
            .and_then(|q| q.iter().position(|(name, _)| *name == waiter.name))
        else {
            return 0;
        };
        let mut earlier_turn = true;
        self.turns
            .iter()
            .map(|ns| {
                if *ns == waiter.namespace {
                    earlier_turn = false;
                    return i;
                }
                let len = self.queues.get(ns).map_or(0, VecDeque::len);
                len.min(i + usize::from(earlier_turn))
            })
            .sum()
    }

    /// Give `waiter` its call: it leaves the line, its namespace's next turn comes last.
    fn grant(&mut self, waiter: &Waiter, target: Target, rate: f64) {
        if rate > 0.0 {
            self.tokens -= 1.0;
        }
        self.in_flight += 1;
        self.busy.insert(target);
        self.leave(waiter);
        if self.queues.contains_key(&waiter.namespace) {
            self.turns.retain(|ns| *ns != waiter.namespace);
            self.turns.push_back(waiter.namespace.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(task: &str) -> Target {
        Target {
            endpoint: "https://roma.example".into(),
            project_id: "p".into(),
            instance_id: "i".into(),
            task_id: task.into(),
        }
    }

    fn waiter(namespace: &str, name: &str) -> Waiter {
        Waiter {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_call_per_target() {
        let limits = Arc::new(Limits::new(8, 0.0));
        let now = Instant::now();
        let first = limits
            .try_acquire(&waiter("a", "x"), &target("t"), now)
            .expect("free");
        let busy = limits.try_acquire(&waiter("a", "y"), &target("t"), now);
        assert!(busy.is_err(), "a second call on the same target must wait");
        assert_eq!(limits.waiting(), 0, "and holds no place in line meanwhile");
        let other = limits
            .try_acquire(&waiter("a", "z"), &target("u"), now)
            .expect("another target is free");
        drop(first);
        limits
            .try_acquire(&waiter("a", "y"), &target("t"), now)
            .expect("released");
        drop(other);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_cap_bounds_calls_in_flight() {
        let limits = Arc::new(Limits::new(2, 0.0));
        let now = Instant::now();
        let a = limits.try_acquire(&waiter("n", "a"), &target("a"), now);
        let _b = limits.try_acquire(&waiter("n", "b"), &target("b"), now);
        assert_eq!(limits.in_flight(), 2);
        let wait = limits
            .try_acquire(&waiter("n", "c"), &target("c"), now)
            .expect_err("a third call must wait for a slot");
        assert!(wait >= MIN_WAIT);
        drop(a);
        limits
            .try_acquire(&waiter("n", "c"), &target("c"), now)
            .expect("slot freed");
    }

    #[test]
    fn reconciles_follow_the_call_slots_and_fit_the_controller_setting() {
        assert_eq!(Limits::new(1, 0.0).reconciles(), 18);
        assert_eq!(Limits::new(64, 0.0).reconciles(), 144);
        assert_eq!(Limits::new(100_000, 0.0).reconciles(), u16::MAX);
    }

    /// Every waiter asks again exactly when told; returns the order of the grants.
    fn drive(limits: &Arc<Limits>, waiters: &[Waiter], grants: usize) -> (Vec<Waiter>, Instant) {
        let start = Instant::now();
        let mut due: Vec<(Instant, usize)> = (0..waiters.len()).map(|i| (start, i)).collect();
        let mut granted = Vec::new();
        let mut now = start;
        while granted.len() < grants {
            due.sort();
            let (at, i) = due.remove(0);
            now = now.max(at);
            match limits.try_acquire(&waiters[i], &target(&waiters[i].name), now) {
                Ok(mut permit) => {
                    granted.push(waiters[i].clone());
                    permit.calling();
                }
                Err(wait) => due.push((now + wait, i)),
            }
        }
        (granted, now)
    }

    #[test]
    fn namespaces_take_turns_whatever_the_backlog() {
        let limits = Arc::new(Limits::new(16, 5.0));
        let mut waiters: Vec<Waiter> = (0..1000)
            .map(|i| waiter("noisy", &format!("o{i}")))
            .collect();
        waiters.push(waiter("quiet", "good"));
        let (granted, _) = drive(&limits, &waiters, 10);
        // The first burst (5 tokens) goes before the quiet object asks at all; then it is
        // second in line: one noisy call, then its own.
        let place = granted.iter().position(|w| w.namespace == "quiet");
        assert_eq!(place, Some(6), "{granted:?}");
        assert_eq!(
            granted.iter().filter(|w| w.namespace == "noisy").count(),
            9,
            "the noisy namespace still gets every other turn"
        );
    }

    #[test]
    fn the_rate_limit_spaces_calls_and_waiting_costs_few_asks() {
        let limits = Arc::new(Limits::new(64, 2.0));
        let waiters: Vec<Waiter> = (0..6).map(|i| waiter("n", &format!("o{i}"))).collect();
        let start = Instant::now();
        let (granted, end) = drive(&limits, &waiters, 6);
        assert_eq!(granted.len(), 6);
        // A burst of 2, then 4 more at 2/s.
        let elapsed = end - start;
        assert!(
            elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(2600),
            "{elapsed:?}"
        );
        assert_eq!(limits.waiting(), 0, "granted waiters leave the line");
    }

    #[test]
    fn a_permit_that_makes_no_call_gives_its_token_back() {
        let limits = Arc::new(Limits::new(4, 1.0));
        let now = Instant::now();
        drop(limits.try_acquire(&waiter("n", "a"), &target("a"), now));
        let mut called = limits
            .try_acquire(&waiter("n", "b"), &target("b"), now)
            .expect("the token came back");
        called.calling();
        drop(called);
        assert!(
            limits
                .try_acquire(&waiter("n", "c"), &target("c"), now)
                .is_err(),
            "a call took the only token"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_never_comes_back_loses_its_place() {
        let limits = Arc::new(Limits::new(1, 0.0));
        let now = Instant::now();
        let held = limits.try_acquire(&waiter("n", "a"), &target("a"), now);
        assert!(held.is_ok());
        let wait = limits
            .try_acquire(&waiter("n", "gone"), &target("g"), now)
            .expect_err("no slot");
        drop(held);
        // "gone" was deleted and never asks again; "next" is not blocked behind it for long.
        let later = now + wait + PLACE_KEPT + Duration::from_millis(1);
        limits
            .try_acquire(&waiter("n", "next"), &target("n"), later)
            .expect("the stale place was pruned");
        assert_eq!(limits.waiting(), 0);
    }
}
