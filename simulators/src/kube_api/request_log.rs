//! The request log and the per-verb / per-resource counters.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// One API request as the server saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Sequence number from 1, in arrival order.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    /// Kubernetes verb (`list`, `watch`, `get`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), or "" for discovery and other non-resource requests.
    pub verb: String,
    /// Resource as `plural.group` (`plural` for core), or "".
    pub resource: String,
    /// Subresource (`status`) or "".
    pub subresource: String,
    /// Namespace or "".
    pub namespace: String,
    /// Object name or "".
    pub name: String,
    /// The patch or body content type, "" when none.
    pub content_type: String,
    /// The body's `metadata.resourceVersion` of an update (its optimistic-lock
    /// precondition), "" when none.
    #[serde(default)]
    pub precondition: String,
    /// HTTP status answered (for a watch: of the response head).
    pub status: u16,
    /// Request body size.
    pub bytes_in: u64,
    /// Response body size (a watch counts only what was known when its head was sent: 0).
    pub bytes_out: u64,
    /// Arrival time, RFC 3339 with microseconds.
    pub time: String,
    /// Handling time in microseconds (for a watch: until the head was sent).
    pub duration_micros: u64,
    /// Whether an injected fault produced the answer.
    pub injected: bool,
}

#[derive(Debug, Default)]
struct Inner {
    records: VecDeque<RequestRecord>,
    counters: BTreeMap<String, u64>,
    next_seq: u64,
}

/// A bounded request log plus counters (which are never trimmed).
#[derive(Debug)]
pub(crate) struct RequestLog {
    inner: Mutex<Inner>,
    limit: usize,
}

impl RequestLog {
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a request and counts it under `verb`, `resource` and `verb:resource[/sub]`.
    pub fn record(&self, mut record: RequestRecord) {
        let mut inner = self.lock();
        inner.next_seq += 1;
        record.seq = inner.next_seq;
        if !record.verb.is_empty() {
            *inner.counters.entry(record.verb.clone()).or_default() += 1;
        }
        if !record.resource.is_empty() {
            *inner.counters.entry(record.resource.clone()).or_default() += 1;
            let mut key = format!("{}:{}", record.verb, record.resource);
            if !record.subresource.is_empty() {
                key = format!("{key}/{}", record.subresource);
            }
            *inner.counters.entry(key).or_default() += 1;
        }
        *inner.counters.entry("requests".to_string()).or_default() += 1;
        if record.status >= 400 {
            *inner
                .counters
                .entry(format!("status:{}", record.status))
                .or_default() += 1;
        }
        inner.records.push_back(record);
        while inner.records.len() > self.limit {
            inner.records.pop_front();
        }
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.lock().records.iter().cloned().collect()
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.lock().counters.clone()
    }

    /// Empties the log and the counters.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.records.clear();
        inner.counters.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(verb: &str, resource: &str, sub: &str, status: u16) -> RequestRecord {
        RequestRecord {
            seq: 0,
            method: "GET".into(),
            path: "/x".into(),
            query: String::new(),
            verb: verb.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: String::new(),
            name: String::new(),
            content_type: String::new(),
            precondition: String::new(),
            status,
            bytes_in: 0,
            bytes_out: 0,
            time: String::new(),
            duration_micros: 0,
            injected: false,
        }
    }

    #[test]
    fn counts_per_verb_and_resource_and_trims_the_log() {
        let log = RequestLog::new(2);
        log.record(rec("list", "taskresets.fdi.roma.io", "", 200));
        log.record(rec("patch", "taskresets.fdi.roma.io", "status", 409));
        log.record(rec("", "", "", 200));
        let c = log.counters();
        assert_eq!(c.get("list"), Some(&1));
        assert_eq!(c.get("taskresets.fdi.roma.io"), Some(&2));
        assert_eq!(c.get("patch:taskresets.fdi.roma.io/status"), Some(&1));
        assert_eq!(c.get("status:409"), Some(&1));
        assert_eq!(c.get("requests"), Some(&3));
        let records = log.records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].seq, 2);
    }
}
