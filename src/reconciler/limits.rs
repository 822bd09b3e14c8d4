//! Limits on calls: one at a time per target, a global concurrency cap, and a rate limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
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

type TargetLocks = Mutex<HashMap<Target, Arc<tokio::sync::Mutex<()>>>>;

/// The limits shared by every reconcile of one controller process.
#[derive(Debug)]
pub struct Limits {
    targets: Arc<TargetLocks>,
    concurrent: Arc<Semaphore>,
    max_concurrent: usize,
    bucket: Mutex<Bucket>,
    rate: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Held for the duration of one call; releases everything on drop.
#[derive(Debug)]
pub struct CallPermit {
    target: Target,
    targets: Arc<TargetLocks>,
    // Field order matters: the target guard must be dropped before the map is pruned.
    guard: Option<OwnedMutexGuard<()>>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map itself still holds the lock: nobody waits for this target.
        if map
            .get(&self.target)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.target);
        }
    }
}

impl Limits {
    /// `max_concurrent` calls at once (at least 1), `per_second` calls started per second
    /// (a burst of up to `max(1, per_second)`); `per_second <= 0` disables the rate limit.
    pub fn new(max_concurrent: usize, per_second: f64) -> Self {
        let burst = per_second.max(1.0);
        Self {
            targets: Arc::default(),
            concurrent: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max_concurrent: max_concurrent.max(1),
            bucket: Mutex::new(Bucket {
                tokens: burst,
                refilled: Instant::now(),
            }),
            rate: per_second,
        }
    }

    /// Wait for the target to be free, then for a concurrency slot, then for a rate token.
    pub async fn acquire(&self, target: Target) -> CallPermit {
        let lock = {
            let mut map = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(target.clone()).or_default())
        };
        let guard = lock.lock_owned().await;
        let slot = match Arc::clone(&self.concurrent).acquire_owned().await {
            Ok(slot) => slot,
            // The semaphore is never closed: `Limits` owns it and never calls `close`.
            Err(_) => unreachable!("the concurrency semaphore is never closed"),
        };
        self.take_token().await;
        CallPermit {
            target,
            targets: Arc::clone(&self.targets),
            guard: Some(guard),
            _slot: slot,
        }
    }

    async fn take_token(&self) {
        if self.rate <= 0.0 {
            return;
        }
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let burst = self.rate.max(1.0);
                let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
                bucket.tokens = (bucket.tokens + elapsed * self.rate).min(burst);
                bucket.refilled = now;
                if bucket.tokens >= 1.0 {
                    bucket.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// How many reconciles may run at once: twice the call slots (so a freed slot is taken at
    /// once and statuses that need no call are still written) plus a few, never thousands of
    /// API requests at once when a backlog is listed.
    pub fn reconciles(&self) -> u16 {
        u16::try_from(self.max_concurrent.saturating_mul(2).saturating_add(16)).unwrap_or(u16::MAX)
    }

    /// Calls in flight right now.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.max_concurrent
            .saturating_sub(self.concurrent.available_permits())
    }

    /// Targets currently locked or waited for.
    #[cfg(test)]
    fn targets_held(&self) -> usize {
        self.targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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

    #[tokio::test]
    async fn one_call_per_target_and_the_map_is_pruned() {
        let limits = Arc::new(Limits::new(8, 0.0));
        let first = limits.acquire(target("a")).await;
        let other = limits.acquire(target("b")).await;
        let waiter = {
            let limits = Arc::clone(&limits);
            tokio::spawn(async move { limits.acquire(target("a")).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "a second call on the same target must wait"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released")
            .expect("join");
        drop(second);
        drop(other);
        assert_eq!(limits.targets_held(), 0);
    }

    #[tokio::test]
    async fn the_global_cap_bounds_calls_in_flight() {
        let limits = Arc::new(Limits::new(2, 0.0));
        let a = limits.acquire(target("a")).await;
        let _b = limits.acquire(target("b")).await;
        assert_eq!(limits.in_flight(), 2);
        let waiter = {
            let limits = Arc::clone(&limits);
            tokio::spawn(async move { limits.acquire(target("c")).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a third call must wait for a slot");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("slot freed")
            .expect("join");
    }

    #[test]
    fn reconciles_follow_the_call_slots_and_fit_the_controller_setting() {
        assert_eq!(Limits::new(1, 0.0).reconciles(), 18);
        assert_eq!(Limits::new(64, 0.0).reconciles(), 144);
        assert_eq!(Limits::new(100_000, 0.0).reconciles(), u16::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_spaces_calls() {
        let limits = Limits::new(64, 2.0);
        let start = Instant::now();
        for i in 0..6 {
            drop(limits.acquire(target(&i.to_string())).await);
        }
        // A burst of 2, then 4 more at 2/s.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(2600),
            "{elapsed:?}"
        );
    }
}
