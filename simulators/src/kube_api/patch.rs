//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch
//! subset. Server-side apply is in `managed_fields`.

use serde_json::{Map, Value};

/// The patch types of `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_map) = target {
        for (key, value) in patch_map {
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatchError {
    /// The body is not an RFC 6902 document.
    #[error("invalid JSON patch: {0}")]
    NotJsonPatch(#[source] serde_json::Error),
    /// An operation failed (a missing path, a failed `test`).
    #[error(transparent)]
    Apply(#[from] json_patch::PatchError),
    /// A `$patch` directive other than `replace`, `delete` or `merge`.
    #[error("unknown patch type: {0}")]
    UnknownDirective(String),
}

/// RFC 6902, all or nothing.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(PatchError::NotJsonPatch)?;
    let mut copy = target.clone();
    json_patch::patch(&mut copy, &ops)?;
    *target = copy;
    Ok(())
}

/// A strategic merge patch, for kinds without merge keys on their lists (every kind this
/// server has): a merge patch that understands `$patch: replace|delete`, `$retainKeys`,
/// `$setElementOrder/<list>` (ignored: lists are replaced) and
/// `$deleteFromPrimitiveList/<list>`.
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = patch_map.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::UnknownDirective(other.to_owned())),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(());
    };
    for (key, value) in patch_map {
        if key == "$patch" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if key == "$retainKeys" {
            let keep: Vec<&str> = value
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            target_map.retain(|k, _| keep.contains(&k.as_str()) || patch_map.contains_key(k));
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(remove)) =
                (target_map.get_mut(list), value)
            {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        let slot = target_map.entry(key.clone()).or_insert(Value::Null);
        strategic_merge_patch(slot, value)?;
        if slot.is_null() {
            target_map.remove(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "s": "x"});
        merge_patch(
            &mut doc,
            &json!({"a": {"b": null, "d": 3}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            doc,
            json!({"a": {"c": 2, "d": 3}, "l": [3], "s": "x", "n": {"x": 1}})
        );
    }

    #[test]
    fn json_patch_is_atomic() {
        let mut doc = json!({"a": 1});
        let bad = json!([{"op": "replace", "path": "/a", "value": 2}, {"op": "test", "path": "/a", "value": 5}]);
        assert!(json_patch(&mut doc, &bad).is_err());
        assert_eq!(doc, json!({"a": 1}));
        let good = json!([{"op": "add", "path": "/b", "value": [1]}, {"op": "add", "path": "/b/-", "value": 2}]);
        assert!(json_patch(&mut doc, &good).is_ok());
        assert_eq!(doc, json!({"a": 1, "b": [1, 2]}));
    }

    #[test]
    fn strategic_merge_directives() {
        let mut doc = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
            "data": {"k": "v"}});
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"$patch": "replace", "z": "3"}},
            "$setElementOrder/conditions": [{"type": "Ready"}],
            "data": {"$patch": "delete"}
        });
        assert!(strategic_merge_patch(&mut doc, &patch).is_ok());
        assert_eq!(
            doc,
            json!({"metadata": {"finalizers": ["b"], "labels": {"z": "3"}}})
        );
        assert!(strategic_merge_patch(&mut doc, &json!({"$patch": "bogus"})).is_err());
    }

    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }
}
