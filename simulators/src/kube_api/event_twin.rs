//! Events are one resource in two API groups: kube-apiserver stores a core/v1 Event and an
//! events.k8s.io/v1 Event as the same object, so an event written through either group is
//! read, listed and watched through both (`kubectl describe` and `kubectl get events` read
//! core/v1; kube-rs's `Recorder` writes events.k8s.io/v1). The store keeps each event under
//! both keys, converted field by field the way kube-apiserver converts them, with the same
//! uid and resourceVersion.

use super::registry::TypeKey;
use serde_json::{Map, Value};

/// (core/v1 field, events.k8s.io/v1 field) pairs whose names differ; the other fields
/// (metadata, eventTime, series, action, reason, related, reportingInstance, type) are the same.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn core() -> TypeKey {
    TypeKey::new("", "events")
}

fn events_v1() -> TypeKey {
    TypeKey::new("events.k8s.io", "events")
}

/// The other group's key and form of an event stored under `key`; None for anything else.
pub(crate) fn twin(key: &TypeKey, obj: &Value) -> Option<(TypeKey, Value)> {
    let from_core = if *key == core() {
        true
    } else if *key == events_v1() {
        false
    } else {
        return None;
    };
    let source = obj.as_object()?;
    let mut out = Map::new();
    for (field, value) in source {
        let renamed = RENAMED.iter().find_map(|(c, e)| match (from_core, field) {
            (true, f) if f == c => Some(*e),
            (false, f) if f == e => Some(*c),
            _ => None,
        });
        out.insert(renamed.unwrap_or(field).to_owned(), value.clone());
    }
    let (twin_key, api_version) = if from_core {
        (events_v1(), "events.k8s.io/v1")
    } else {
        (core(), "v1")
    };
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Some((twin_key, Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_converts_both_ways_and_back() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns", "uid": "u"},
            "regarding": {"kind": "TaskReset", "name": "t"}, "note": "Reset Success",
            "reason": "ResetSucceeded", "type": "Normal", "action": "Reset",
            "reportingController": "taskreset-controller", "reportingInstance": "pod-0",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:00.000000Z"}});
        let Some((key, core_form)) = twin(&events_v1(), &v1) else {
            panic!("no twin")
        };
        assert_eq!(key, core());
        assert_eq!(core_form["apiVersion"], "v1");
        assert_eq!(core_form["involvedObject"]["name"], "t");
        assert_eq!(core_form["message"], "Reset Success");
        assert_eq!(core_form["reportingComponent"], "taskreset-controller");
        assert_eq!(core_form["series"]["count"], 2);
        assert!(core_form.get("note").is_none() && core_form.get("regarding").is_none());
        let back = twin(&core(), &core_form).map(|(_, v)| v);
        assert_eq!(back, Some(v1));
        assert!(twin(&TypeKey::new("", "configmaps"), &json!({})).is_none());
    }
}
