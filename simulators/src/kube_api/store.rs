//! The in-memory store: objects per resource type in name order, one global monotonically
//! increasing resourceVersion, and a bounded history of watch events with a broadcast of new
//! ones.

use super::errors::ApiError;
use super::registry::{Registry, TypeKey};
use super::util::metadata_mut;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// A change to one object.
#[derive(Debug)]
pub(crate) struct WatchEvent {
    pub rv: u64,
    pub key: TypeKey,
    pub kind: EventKind,
    /// The object after the change (for DELETED: its last state, with the deletion's RV).
    pub object: Arc<Value>,
    /// The object before a MODIFIED change (to tell selector entries from exits).
    pub previous: Option<Arc<Value>>,
}

/// (namespace, name); namespace "" for cluster-scoped objects.
pub(crate) type ObjectKey = (String, String);

/// All objects, the resource version counter and the watch history.
pub(crate) struct Store {
    pub registry: Registry,
    objects: HashMap<TypeKey, BTreeMap<ObjectKey, Arc<Value>>>,
    rv: u64,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    /// Events with a resourceVersion up to this one are forgotten.
    compacted_rv: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

/// Counts only: objects (Secrets among them) never appear in Debug output.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.rv)
            .field(
                "objects",
                &self.objects.values().map(BTreeMap::len).sum::<usize>(),
            )
            .field("history", &self.history.len())
            .finish()
    }
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(history_limit.clamp(1024, 65536));
        Self {
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_rv: 0,
            tx,
        }
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Changes up to this resourceVersion are forgotten: a list or watch from an older one
    /// gets 410 Expired.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted_rv
    }

    pub fn get(&self, key: &TypeKey, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(key)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a type in (namespace, name) order, in one namespace or all.
    pub fn list<'a>(
        &'a self,
        key: &TypeKey,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        let Some(map) = self.objects.get(key) else {
            return Box::new(std::iter::empty());
        };
        match namespace {
            Some(ns) => Box::new(
                map.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns),
            ),
            None => Box::new(map.iter()),
        }
    }

    /// Objects of a type after `after` (exclusive), for list pagination.
    pub fn list_after<'a>(
        &'a self,
        key: &TypeKey,
        namespace: Option<&'a str>,
        after: &ObjectKey,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        let Some(map) = self.objects.get(key) else {
            return Box::new(std::iter::empty());
        };
        let iter = map.range((
            std::ops::Bound::Excluded(after.clone()),
            std::ops::Bound::Unbounded,
        ));
        match namespace {
            Some(ns) => Box::new(iter.take_while(move |((n, _), _)| n == ns)),
            None => Box::new(iter),
        }
    }

    /// Stores an object under a new resourceVersion and emits ADDED or MODIFIED.
    pub fn put(&mut self, key: &TypeKey, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        let meta = metadata_mut(&mut obj);
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let twin = super::event_twin::twin(key, &obj);
        let obj = Arc::new(obj);
        if let Some((twin_key, twin)) = twin {
            self.put_twin(twin_key, rv, (namespace.clone(), name.clone()), twin);
        }
        self.insert_and_emit(key.clone(), rv, (namespace, name), obj.clone());
        obj
    }

    /// Stores `obj` as `id` under `rv` and emits ADDED or MODIFIED.
    fn insert_and_emit(&mut self, key: TypeKey, rv: u64, id: ObjectKey, obj: Arc<Value>) {
        let previous = self
            .objects
            .entry(key.clone())
            .or_default()
            .insert(id, obj.clone());
        let kind = if previous.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.emit(WatchEvent {
            rv,
            key,
            kind,
            object: obj,
            previous,
        });
    }

    /// Removes an object, emitting DELETED with a new resourceVersion. Returns its last state.
    pub fn remove(&mut self, key: &TypeKey, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .get_mut(key)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*old).clone();
        metadata_mut(&mut last).insert("resourceVersion".into(), Value::String(rv.to_string()));
        if let Some((twin_key, _)) = super::event_twin::twin(key, &last) {
            self.remove_twin(&twin_key, rv, &(namespace.to_string(), name.to_string()));
        }
        let last = Arc::new(last);
        self.emit(WatchEvent {
            rv,
            key: key.clone(),
            kind: EventKind::Deleted,
            object: last.clone(),
            previous: None,
        });
        Some(last)
    }

    /// Stores the other group's form of an event being put, under the same resourceVersion.
    fn put_twin(&mut self, key: TypeKey, rv: u64, id: ObjectKey, twin: Value) {
        self.insert_and_emit(key, rv, id, Arc::new(twin));
    }

    /// Removes the other group's form of an event being removed, under the same resourceVersion.
    fn remove_twin(&mut self, key: &TypeKey, rv: u64, id: &ObjectKey) {
        let Some(old) = self.objects.get_mut(key).and_then(|m| m.remove(id)) else {
            return;
        };
        let mut last = (*old).clone();
        metadata_mut(&mut last).insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.emit(WatchEvent {
            rv,
            key: key.clone(),
            kind: EventKind::Deleted,
            object: Arc::new(last),
            previous: None,
        });
    }

    /// Removes every object of a type (its CRD was deleted).
    pub fn remove_type(&mut self, key: &TypeKey) {
        let names: Vec<ObjectKey> = self
            .objects
            .get(key)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in names {
            self.remove(key, &ns, &name);
        }
        self.objects.remove(key);
    }

    /// Removes every namespaced object in a namespace (the Namespace was deleted).
    pub fn remove_namespace_contents(&mut self, namespace: &str) {
        let keys: Vec<TypeKey> = self.objects.keys().cloned().collect();
        for key in keys {
            let names: Vec<String> = self
                .list(&key, Some(namespace))
                .map(|((_, name), _)| name.clone())
                .collect();
            for name in names {
                self.remove(&key, namespace, &name);
            }
        }
    }

    fn emit(&mut self, event: WatchEvent) {
        let event = Arc::new(event);
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        // No receiver is not an error: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// Forgets the history: a watch from any resourceVersion handed out so far gets 410
    /// Expired. The counter moves on so that a fresh list has a watchable resourceVersion.
    pub fn expire_history(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.compacted_rv = self.rv;
    }

    /// Retained events of a type after `rv`, or 410 Expired if some were forgotten.
    pub fn events_since(&self, key: &TypeKey, rv: u64) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        if rv < self.compacted_rv {
            return Err(ApiError::expired(rv, self.compacted_rv + 1));
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self
            .history
            .range(start..)
            .filter(|e| &e.key == key)
            .cloned()
            .collect())
    }

    /// A receiver of every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn resource_versions_increase_and_history_is_bounded() {
        let mut store = Store::new(3);
        let key = TypeKey::new("g", "things");
        let a = store.put(&key, obj("a", "x"));
        let b = store.put(&key, obj("b", "y"));
        let rv_a: u64 = a["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let rv_b: u64 = b["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(rv_b > rv_a && rv_a > 1);
        assert_eq!(store.list(&key, Some("a")).count(), 1);
        assert_eq!(store.list(&key, None).count(), 2);
        let since = store.events_since(&key, rv_a).map(|v| v.len());
        assert_eq!(since.ok(), Some(1));
        store.put(&key, obj("a", "x"));
        store.remove(&key, "b", "y");
        assert!(
            store.events_since(&key, rv_a).is_ok(),
            "events after the first are retained"
        );
        assert!(
            store.events_since(&key, rv_a - 1).is_err(),
            "the first event was evicted"
        );
        assert!(store.events_since(&key, rv_b).is_ok());
        let before = store.current_rv();
        store.expire_history();
        assert_eq!(
            store.events_since(&key, before).map_err(|e| e.code).err(),
            Some(410)
        );
        assert!(store.events_since(&key, store.current_rv()).is_ok());
    }
}
