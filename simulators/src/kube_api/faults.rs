//! Fault injection: failing a share of requests, latency, dropped watches, expired history.

use super::util::random_unit;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// Fail `share` of the requests of `verb` on `resource` with HTTP `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// `list`, `watch`, `get`, `create`, `update`, `patch`, `delete`, `deletecollection`, or `*`.
    pub verb: String,
    /// `taskresets`, `taskresets.fdi.roma.io`, `taskresets.fdi.roma.io/status`, or `*`.
    pub resource: String,
    /// 0.0 (never) to 1.0 (always).
    pub share: f64,
    /// The HTTP status answered, with a Kubernetes `Status` body of the usual reason.
    pub status: u16,
}

impl FaultRule {
    fn matches(&self, verb: &str, resource: &str, group: &str, subresource: &str) -> bool {
        let verb_ok = self.verb == "*" || self.verb == "any" || self.verb == verb;
        let full = super::errors::group_resource(group, resource);
        let with_sub = if subresource.is_empty() {
            full.clone()
        } else {
            format!("{full}/{subresource}")
        };
        let resource_ok = matches!(self.resource.as_str(), "*" | "any")
            || self.resource == resource
            || self.resource == full
            || (!subresource.is_empty()
                && (self.resource == with_sub
                    || self.resource == format!("{resource}/{subresource}")));
        verb_ok && resource_ok
    }
}

/// The fault settings, as `POST /_sim/faults` takes them (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultSettings {
    /// Rules added (`POST`) to the current ones.
    pub fail_share: Vec<FaultRule>,
    /// Added latency per API request, milliseconds.
    pub latency_ms: Option<u64>,
    /// End every open watch stream this often, milliseconds (0 = never).
    pub drop_watches_every_ms: Option<u64>,
    /// Forget the watch history now: re-watching from an older resourceVersion gets 410.
    pub expire_history: bool,
    /// Remove every rule, latency and watch dropping first.
    pub clear: bool,
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<FaultRule>,
    latency: Duration,
    drop_every: Option<Duration>,
}

/// What `expire_history` runs: set by the server once its store exists.
type ExpireHook = Box<dyn Fn() + Send + Sync>;

/// A handle to change the faults of a running server; clones share the settings.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
    /// Bumped to end every open watch.
    drop_tx: Arc<watch::Sender<u64>>,
    expire_hook: Arc<OnceLock<ExpireHook>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("settings", &self.settings())
            .finish()
    }
}

impl Faults {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            drop_tx: Arc::new(watch::channel(0).0),
            expire_hook: Arc::new(OnceLock::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answer `share` (0..1) of the `verb` requests on `resource` (`*` for any) with `status`.
    pub fn fail_share(&self, verb: &str, resource: &str, share: f64, status: u16) {
        self.lock().rules.push(FaultRule {
            verb: verb.to_string(),
            resource: resource.to_string(),
            share: share.clamp(0.0, 1.0),
            status,
        });
    }

    /// Adds this latency to every API request.
    pub fn latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Ends every open watch stream every `period` (`Duration::ZERO` stops it).
    pub fn drop_watches_every(&self, period: Duration) {
        self.lock().drop_every = (!period.is_zero()).then_some(period);
    }

    /// Ends every open watch stream now.
    pub fn drop_watches_now(&self) {
        self.drop_tx.send_modify(|n| *n += 1);
    }

    /// Forgets the watch history now: a watch from any resourceVersion seen so far gets 410
    /// Expired (the client has to list again; the list's resourceVersion is watchable).
    pub fn expire_history(&self) {
        if let Some(hook) = self.expire_hook.get() {
            hook();
        }
    }

    pub(crate) fn set_expire_hook(&self, hook: ExpireHook) {
        // Set once, when the server starts; a second call is ignored.
        let _ = self.expire_hook.set(hook);
    }

    /// Removes every rule, the latency and the watch dropping.
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    /// The current rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().rules.clone()
    }

    /// Applies settings received over HTTP.
    pub fn apply(&self, settings: &FaultSettings) {
        if settings.clear {
            self.clear();
        }
        for rule in &settings.fail_share {
            self.fail_share(&rule.verb, &rule.resource, rule.share, rule.status);
        }
        if let Some(ms) = settings.latency_ms {
            self.latency(Duration::from_millis(ms));
        }
        if let Some(ms) = settings.drop_watches_every_ms {
            self.drop_watches_every(Duration::from_millis(ms));
        }
        if settings.expire_history {
            self.expire_history();
        }
    }

    /// The current settings, for `GET /_sim/faults`.
    pub fn settings(&self) -> FaultSettings {
        let inner = self.lock();
        FaultSettings {
            fail_share: inner.rules.clone(),
            latency_ms: Some(inner.latency.as_millis() as u64),
            drop_watches_every_ms: Some(inner.drop_every.map_or(0, |d| d.as_millis() as u64)),
            expire_history: false,
            clear: false,
        }
    }

    pub(crate) fn current_latency(&self) -> Duration {
        self.lock().latency
    }

    pub(crate) fn drop_period(&self) -> Option<Duration> {
        self.lock().drop_every
    }

    /// The status to answer with, if a rule fires for this request.
    pub(crate) fn sample(
        &self,
        verb: &str,
        resource: &str,
        group: &str,
        subresource: &str,
    ) -> Option<u16> {
        let inner = self.lock();
        inner
            .rules
            .iter()
            .filter(|r| r.matches(verb, resource, group, subresource))
            .find(|r| r.share > 0.0 && random_unit() < r.share)
            .map(|r| r.status)
    }

    pub(crate) fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_verb_and_resource_spellings() {
        let faults = Faults::new();
        faults.fail_share("patch", "taskresets.fdi.roma.io/status", 1.0, 500);
        assert_eq!(
            faults.sample("patch", "taskresets", "fdi.roma.io", "status"),
            Some(500)
        );
        assert_eq!(
            faults.sample("patch", "taskresets", "fdi.roma.io", ""),
            None
        );
        assert_eq!(
            faults.sample("get", "taskresets", "fdi.roma.io", "status"),
            None
        );
        faults.clear();
        faults.fail_share("*", "leases", 1.0, 503);
        assert_eq!(
            faults.sample("update", "leases", "coordination.k8s.io", ""),
            Some(503)
        );
        faults.clear();
        faults.fail_share("list", "*", 0.0, 500);
        assert_eq!(faults.sample("list", "secrets", "", ""), None);
    }

    #[test]
    fn a_share_fails_about_that_share() {
        let faults = Faults::new();
        faults.fail_share("get", "*", 0.3, 500);
        let failed = (0..2000)
            .filter(|_| faults.sample("get", "x", "", "").is_some())
            .count();
        assert!((400..800).contains(&failed), "{failed} of 2000");
    }
}
