//! The credentials Secrets, read through a short-lived cache: the objects that share a Secret
//! cost one read of it per `ttl`, not one per reset, and RBAC stays `get` on Secrets (no list,
//! no watch of every Secret in the cluster).
//!
//! A changed Secret is seen within `ttl`. A Secret the gateway rejected (401) is forgotten at
//! once, so the next look reads it afresh. A missing Secret is never cached: one created later
//! is found at the next look.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// Most Secrets kept (the oldest read is forgotten first).
const KEPT: usize = 1024;

/// One Secret's place in the cache: when it was read, and what. Concurrent lookups of the
/// same Secret wait on its lock, so a burst of objects naming it costs one read.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<Secret>)>>>;

/// Secrets by (namespace, name).
type Slots = HashMap<(String, String), Slot>;

/// Reads Secrets through the cache. Cheap to clone: clones share it.
#[derive(Clone)]
pub struct Secrets {
    client: kube::Client,
    ttl: Duration,
    slots: Arc<Mutex<Slots>>,
}

impl Secrets {
    /// A cache keeping each Secret for `ttl` (zero: every look reads it).
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            slots: Arc::default(),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, key: &(String, String)) -> Slot {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(key) {
            return Arc::clone(slot);
        }
        if slots.len() >= KEPT {
            // Forget a Secret nobody is reading now (the oldest such, by its last read).
            let idle = slots
                .iter()
                .filter_map(|(k, slot)| Some((k, slot.try_lock().ok()?.as_ref()?.0)))
                .min_by_key(|(_, read)| *read)
                .map(|(k, _)| k.clone());
            if let Some(idle) = idle {
                slots.remove(&idle);
            }
        }
        let slot = Slot::default();
        slots.insert(key.clone(), Arc::clone(&slot));
        slot
    }

    /// The Secret `namespace/name`, or `None` when it does not exist; `fresh` reads it past
    /// the cache (and keeps what it read).
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
        fresh: bool,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        let slot = self.slot(&key);
        let mut cached = slot.lock().await;
        if let Some((read, secret)) = cached.as_ref()
            && !fresh
            && read.elapsed() < self.ttl
        {
            return Ok(Some(Arc::clone(secret)));
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let Some(mut secret) = api.get_opt(name).await? else {
            *cached = None;
            return Ok(None);
        };
        secret.metadata.managed_fields = None;
        let secret = Arc::new(secret);
        if !self.ttl.is_zero() {
            *cached = Some((Instant::now(), Arc::clone(&secret)));
        }
        Ok(Some(secret))
    }

    /// Forget `namespace/name`: the next look reads it afresh.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.slots()
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}
