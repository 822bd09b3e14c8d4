//! Watch streams: newline-delimited JSON events from a resourceVersion (or the current state
//! first), BOOKMARKs, `sendInitialEvents`, `timeoutSeconds`, a 410 `Expired` ERROR event for a
//! forgotten resourceVersion, and the drop/shutdown signals.

use super::errors::ApiError;
use super::registry::{ResourceType, present};
use super::selector::{FieldSelector, LabelSelector};
use super::shared::Shared;
use super::store::{EventKind, WatchEvent};
use super::table::{IncludeObject, Representation, partial_metadata, table};
use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// What a watch asks for.
#[derive(Debug)]
pub(crate) struct WatchRequest {
    pub rt: Arc<ResourceType>,
    /// The requested version (for `apiVersion` of the objects sent).
    pub version: String,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `None` when unset or "0": the current objects come first as ADDED.
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub representation: Representation,
    pub include: IncludeObject,
}

impl WatchRequest {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && super::util::meta_str(obj, "namespace") != ns
        {
            return false;
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this watcher sees for a store event, if any: objects entering or leaving
    /// the selection appear as ADDED or DELETED.
    fn translate(&self, ev: &WatchEvent) -> Option<(&'static str, Arc<Value>)> {
        if ev.key != self.rt.key {
            return None;
        }
        let now = self.matches(&ev.object);
        let kind = match ev.kind {
            EventKind::Added | EventKind::Deleted => now.then_some(ev.kind.as_str())?,
            EventKind::Modified => {
                let before = ev.previous.as_deref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
        };
        Some((kind, ev.object.clone()))
    }

    fn encode(&self, kind: &str, obj: &Value) -> Bytes {
        let obj = present(obj, &self.rt, &self.version);
        let object = match &self.representation {
            Representation::Json => obj,
            Representation::PartialMetadata(v) => partial_metadata(&obj, v),
            Representation::Table(v) => match self.rt.version(&self.version) {
                Some(info) => table(
                    info,
                    &[&obj],
                    self.include,
                    v,
                    json!({"resourceVersion": super::util::meta_str(&obj, "resourceVersion")}),
                ),
                None => obj,
            },
        };
        line(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(&json!({
            "type": "BOOKMARK",
            "object": {
                "kind": self.rt.kind,
                "apiVersion": self.rt.api_version(&self.version),
                "metadata": metadata,
            },
        }))
    }
}

fn line(value: &Value) -> Bytes {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Starts a watch: returns the streaming body.
pub(crate) fn start(shared: Arc<Shared>, w: WatchRequest) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let (events, last_rv) = {
        let store = shared.store();
        let current = store.current_rv();
        let mut first_error = None;
        let mut initial_end = false;
        match w.resource_version {
            Some(rv) if !w.send_initial_events => match store.events_since(&w.rt.key, rv) {
                Ok(events) => {
                    for ev in &events {
                        if let Some((kind, obj)) = w.translate(ev) {
                            first.push(w.encode(kind, &obj));
                        }
                    }
                }
                Err(e) => first_error = Some(e),
            },
            _ => {
                let pinned = w.fields.pinned_name().map(str::to_string);
                for ((ns, name), obj) in store.list(&w.rt.key, w.namespace.as_deref()) {
                    if pinned.as_deref().is_some_and(|p| p != name) {
                        continue;
                    }
                    let _ = ns;
                    if w.matches(obj) {
                        first.push(w.encode("ADDED", obj));
                    }
                }
                initial_end = w.send_initial_events;
            }
        }
        if let Some(err) = first_error {
            first.push(expired_event(&err));
            drop(store);
            return stream_of(first);
        }
        if initial_end {
            first.push(w.bookmark(current, true));
        }
        (store.subscribe(), current)
    };
    tokio::spawn(pump(shared, w, first, events, last_rv, tx));
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn expired_event(err: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": err.to_status()}))
}

fn stream_of(lines: Vec<Bytes>) -> Body {
    Body::from_stream(futures::stream::iter(
        lines.into_iter().map(Ok::<Bytes, Infallible>),
    ))
}

async fn pump(
    shared: Arc<Shared>,
    w: WatchRequest,
    first: Vec<Bytes>,
    mut events: broadcast::Receiver<Arc<WatchEvent>>,
    mut last_rv: u64,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    for bytes in first {
        if tx.send(Ok(bytes)).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(w.timeout);
    tokio::pin!(deadline);
    let interval = shared
        .config
        .bookmark_interval
        .max(Duration::from_millis(10));
    let mut bookmarks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut dropped = shared.faults.drop_signal();
    dropped.borrow_and_update();
    let mut shutdown = shared.shutdown.clone();
    loop {
        let out = tokio::select! {
            _ = &mut deadline => break,
            changed = dropped.changed() => {
                let _ = changed;
                break;
            }
            _ = shutdown.wait_for(|s| *s) => break,
            _ = tx.closed() => break,
            _ = bookmarks.tick(), if w.bookmarks => Some(w.bookmark(last_rv, false)),
            received = events.recv() => match received {
                Ok(ev) => {
                    last_rv = ev.rv;
                    w.translate(&ev).map(|(kind, obj)| w.encode(kind, &obj))
                }
                // Too slow to follow: end the stream; the client re-watches from its last RV.
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        if let Some(bytes) = out
            && tx.send(Ok(bytes)).await.is_err()
        {
            break;
        }
    }
}
