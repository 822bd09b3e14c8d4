//! `metadata.managedFields` and server-side apply, with a simple field-set model: a field set
//! is a set of leaf paths (`f:spec`, `f:taskId`; list-map items as `k:{"type":"Ready"}`);
//! maps merge, lists are atomic unless the schema says `x-kubernetes-list-type: map`.

use super::schema::Schema;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A leaf path of field-set elements.
pub(crate) type FieldPath = Vec<String>;
/// A set of leaf paths.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a request may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Everything (no status subresource).
    All,
    /// Everything but `.status` (the main resource of a type with a status subresource).
    Main,
    /// Only `.status` (the status subresource).
    Status,
}

const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

fn in_scope(top: &str, scope: Scope) -> bool {
    match scope {
        Scope::All => !matches!(top, "apiVersion" | "kind"),
        Scope::Main => !matches!(top, "apiVersion" | "kind" | "status"),
        Scope::Status => top == "status",
    }
}

/// The leaf paths of an object within a scope.
pub(crate) fn field_set(obj: &Value, schema: Option<&Schema>, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return set;
    };
    for (key, value) in map {
        if !in_scope(key, scope) {
            continue;
        }
        if key == "metadata" {
            if scope == Scope::Status {
                continue;
            }
            for owned in OWNED_METADATA {
                if let Some(v) = value.get(*owned) {
                    let mut path = vec!["f:metadata".to_string(), format!("f:{owned}")];
                    collect(v, None, &mut path, &mut set);
                }
            }
            continue;
        }
        let mut path = vec![format!("f:{key}")];
        collect(
            value,
            schema.and_then(|s| s.property(key)),
            &mut path,
            &mut set,
        );
    }
    set
}

fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut k = Map::new();
    for key in keys {
        k.insert(key.clone(), item.get(key)?.clone());
    }
    Some(format!("k:{}", Value::Object(k)))
}

fn collect(value: &Value, schema: Option<&Schema>, path: &mut FieldPath, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(format!("f:{k}"));
                collect(v, schema.and_then(|s| s.property(k)), path, set);
                path.pop();
            }
        }
        Value::Array(items)
            if schema.is_some_and(|s| !s.list_map_keys.is_empty()) && !items.is_empty() =>
        {
            let keys = schema.map(|s| s.list_map_keys.clone()).unwrap_or_default();
            let item_schema = schema.and_then(Schema::item);
            for item in items {
                match item_key(item, &keys) {
                    Some(k) => {
                        path.push(k);
                        collect(item, item_schema, path, set);
                        path.pop();
                    }
                    None => {
                        set.insert(path.clone());
                        return;
                    }
                }
            }
        }
        _ => {
            set.insert(path.clone());
        }
    }
}

fn child<'a>(value: &'a Value, element: &str) -> Option<&'a Value> {
    if let Some(name) = element.strip_prefix("f:") {
        return value.get(name);
    }
    let key: Map<String, Value> = serde_json::from_str(element.strip_prefix("k:")?).ok()?;
    value
        .as_array()?
        .iter()
        .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
}

/// The value at a path.
pub(crate) fn value_at<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, element| child(v, element))
}

/// Removes the value at a path (and empties nothing else).
pub(crate) fn remove_at(root: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = root;
    for element in parents {
        let next = if let Some(name) = element.strip_prefix("f:") {
            current.get_mut(name)
        } else {
            let Some(key) = element
                .strip_prefix("k:")
                .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
            else {
                return;
            };
            current.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
            })
        };
        match next {
            Some(n) => current = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(map) = current.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(key) = last
        .strip_prefix("k:")
        .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
        && let Some(items) = current.as_array_mut()
    {
        items.retain(|item| !key.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
}

/// Merges an applied configuration into an object: maps recursively, list-map items by key,
/// everything else replaced.
pub(crate) fn apply_merge(target: &mut Value, config: &Value, schema: Option<&Schema>) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                let sub = schema.and_then(|s| s.property(k));
                match t.get_mut(k) {
                    Some(existing) => apply_merge(existing, v, sub),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(c))
            if schema.is_some_and(|s| !s.list_map_keys.is_empty()) =>
        {
            let keys = schema.map(|s| s.list_map_keys.clone()).unwrap_or_default();
            let item_schema = schema.and_then(Schema::item);
            for item in c {
                let key = item_key(item, &keys);
                match t
                    .iter_mut()
                    .find(|x| key.is_some() && item_key(x, &keys) == key)
                {
                    Some(existing) => apply_merge(existing, item, item_schema),
                    None => t.push(item.clone()),
                }
            }
        }
        (target, config) => *target = config.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

fn fields_to_json(set: &FieldSet) -> Value {
    let mut root = Map::new();
    // Descendants first, so that an owned parent that has owned children gets its "." marker.
    for path in set.iter().rev() {
        let mut node = &mut root;
        for (i, element) in path.iter().enumerate() {
            let entry = node
                .entry(element.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(map) = entry else { break };
            if i + 1 == path.len() && !map.is_empty() {
                map.insert(".".to_string(), json!({}));
            }
            node = map;
        }
    }
    Value::Object(root)
}

fn fields_from_json(value: &Value, path: &mut FieldPath, set: &mut FieldSet) {
    let Some(map) = value.as_object() else {
        return;
    };
    if map.is_empty() && !path.is_empty() {
        set.insert(path.clone());
        return;
    }
    for (k, v) in map {
        if k == "." {
            set.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        fields_from_json(v, path, set);
        path.pop();
    }
}

/// The entries of an object's `metadata.managedFields`.
pub(crate) fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                fields_from_json(f, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields,
            }
        })
        .collect()
}

/// Writes entries to `metadata.managedFields` (removed when empty).
pub(crate) fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let meta = super::util::metadata_mut(obj);
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_to_json(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn is_prefix(prefix: &[String], path: &[String]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| a == b)
}

/// Whether a set owns a path: the path itself, an ancestor leaf, or a descendant.
fn owns(set: &FieldSet, path: &[String]) -> bool {
    set.iter().any(|p| is_prefix(p, path) || is_prefix(path, p))
}

/// Who writes: manager, operation, version, subresource.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub time: &'a str,
}

/// Records an Update-operation write (create, update, patch): the writer owns what it added or
/// changed; others lose what it changed or removed.
pub(crate) fn record_update(
    entries: &mut Vec<Entry>,
    writer: &Writer<'_>,
    old: Option<&Value>,
    new: &Value,
    schema: Option<&Schema>,
    scope: Scope,
) {
    let new_set = field_set(new, schema, scope);
    let old_set = old.map(|o| field_set(o, schema, scope)).unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.fields.retain(|p| {
            !changed
                .iter()
                .chain(removed.iter())
                .any(|c| is_prefix(c, p) || is_prefix(p, c))
        });
    }
    let mine = entries.iter_mut().find(|e| {
        e.manager == writer.manager
            && e.operation == "Update"
            && e.subresource == writer.subresource
    });
    match mine {
        Some(e) => {
            e.fields.extend(changed);
            e.time = writer.time.to_string();
            e.api_version = writer.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Update".to_string(),
            api_version: writer.api_version.to_string(),
            time: writer.time.to_string(),
            subresource: writer.subresource.to_string(),
            fields: changed,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conflict {
    pub manager: String,
    pub api_version: String,
    /// `.spec.taskId` style.
    pub field: String,
}

fn dotted(path: &[String]) -> String {
    path.iter()
        .map(|e| match e.strip_prefix("f:") {
            Some(name) => format!(".{name}"),
            None => format!("[{}]", e.strip_prefix("k:").unwrap_or(e)),
        })
        .collect()
}

/// Server-side apply of `config` onto `live` (None: the object does not exist yet). Returns
/// the new object, or the conflicts when `force` is false.
pub(crate) fn apply(
    entries: &mut Vec<Entry>,
    writer: &Writer<'_>,
    live: &Value,
    config: &Value,
    schema: Option<&Schema>,
    scope: Scope,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let new_set = field_set(config, schema, scope);
    let is_mine = |e: &Entry| {
        e.manager == writer.manager && e.operation == "Apply" && e.subresource == writer.subresource
    };
    let mut conflicts = Vec::new();
    let mut stolen = FieldSet::new();
    for path in &new_set {
        if value_at(config, path) == value_at(live, path) {
            continue;
        }
        for e in entries.iter() {
            if is_mine(e) || e.subresource != writer.subresource {
                continue;
            }
            if owns(&e.fields, path) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    field: dotted(path),
                });
                stolen.insert(path.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let previous: FieldSet = entries
        .iter()
        .filter(|e| is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut result = live.clone();
    for path in previous.difference(&new_set) {
        let owned_by_others = entries
            .iter()
            .any(|e| !is_mine(e) && e.subresource == writer.subresource && owns(&e.fields, path));
        if !owned_by_others {
            remove_at(&mut result, path);
        }
    }
    let mut scoped = Map::new();
    if let Some(map) = config.as_object() {
        for (k, v) in map {
            if in_scope(k, scope) || k == "metadata" && scope != Scope::Status {
                let v = if k == "metadata" {
                    let mut m = Map::new();
                    for owned in OWNED_METADATA {
                        if let Some(x) = v.get(*owned) {
                            m.insert((*owned).to_string(), x.clone());
                        }
                    }
                    Value::Object(m)
                } else {
                    v.clone()
                };
                scoped.insert(k.clone(), v);
            }
        }
    }
    apply_merge(&mut result, &Value::Object(scoped), schema);
    for e in entries.iter_mut() {
        if !is_mine(e) {
            e.fields
                .retain(|p| !stolen.iter().any(|s| is_prefix(s, p) || is_prefix(p, s)));
        }
    }
    match entries.iter_mut().find(|e| is_mine(e)) {
        Some(e) => {
            e.fields = new_set;
            e.time = writer.time.to_string();
            e.api_version = writer.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Apply".to_string(),
            api_version: writer.api_version.to_string(),
            time: writer.time.to_string(),
            subresource: writer.subresource.to_string(),
            fields: new_set,
        }),
    }
    entries.retain(|e| !e.fields.is_empty() || (e.operation == "Apply"));
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions_schema() -> Option<Schema> {
        Schema::compile(&json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object"}}}}}}))
        .ok()
    }

    fn writer<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            api_version: "g/v1",
            subresource: "",
            time: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let schema = conditions_schema();
        let obj = json!({"apiVersion": "g/v1", "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"x": 1, "l": [1, 2]}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let set = field_set(&obj, schema.as_ref(), Scope::All);
        assert!(set.contains(&vec![
            "f:metadata".to_string(),
            "f:labels".to_string(),
            "f:a".to_string()
        ]));
        assert!(set.contains(&vec!["f:spec".to_string(), "f:l".to_string()]));
        assert!(set.contains(&vec![
            "f:status".to_string(),
            "f:conditions".to_string(),
            "k:{\"type\":\"Ready\"}".to_string(),
            "f:status".to_string()
        ]));
        let mut back = FieldSet::new();
        fields_from_json(&fields_to_json(&set), &mut Vec::new(), &mut back);
        assert_eq!(back, set);
        assert_eq!(
            field_set(&obj, None, Scope::Main)
                .iter()
                .filter(|p| p[0] == "f:status")
                .count(),
            0
        );
    }

    #[test]
    fn apply_removes_what_the_manager_stopped_applying_and_detects_conflicts() {
        let mut entries = Vec::new();
        let empty = json!({});
        let first = apply(
            &mut entries,
            &writer("a"),
            &empty,
            &json!({"spec": {"x": 1, "y": 2}}),
            None,
            Scope::All,
            false,
        );
        let Ok(live) = first else {
            panic!("first apply failed")
        };
        assert_eq!(live, json!({"spec": {"x": 1, "y": 2}}));
        let Ok(live) = apply(
            &mut entries,
            &writer("a"),
            &live,
            &json!({"spec": {"x": 1}}),
            None,
            Scope::All,
            false,
        ) else {
            panic!("second apply failed")
        };
        assert_eq!(live, json!({"spec": {"x": 1}}));
        // Same value from another manager: shared, no conflict.
        assert!(
            apply(
                &mut entries,
                &writer("b"),
                &live,
                &json!({"spec": {"x": 1}}),
                None,
                Scope::All,
                false
            )
            .is_ok()
        );
        // Different value: conflict unless forced.
        let err = apply(
            &mut entries,
            &writer("b"),
            &live,
            &json!({"spec": {"x": 5}}),
            None,
            Scope::All,
            false,
        );
        assert_eq!(
            err.err().map(|c| c[0].field.clone()),
            Some(".spec.x".to_string())
        );
        let forced = apply(
            &mut entries,
            &writer("b"),
            &live,
            &json!({"spec": {"x": 5}}),
            None,
            Scope::All,
            true,
        );
        assert_eq!(forced.ok(), Some(json!({"spec": {"x": 5}})));
        let a = entries
            .iter()
            .find(|e| e.manager == "a")
            .map(|e| e.fields.len());
        assert_eq!(a, Some(0), "a lost .spec.x to the forced apply");
    }

    #[test]
    fn list_map_items_merge_by_key() {
        let schema = conditions_schema();
        let mut live = json!({"status": {"conditions": [{"type": "A", "status": "True"}]}});
        apply_merge(
            &mut live,
            &json!({"status": {"conditions": [{"type": "B", "status": "False"}]}}),
            schema.as_ref(),
        );
        assert_eq!(
            live["status"]["conditions"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn updates_move_ownership_of_changed_fields() {
        let mut entries = Vec::new();
        let v1 = json!({"spec": {"x": 1, "y": 1}});
        record_update(&mut entries, &writer("a"), None, &v1, None, Scope::All);
        let v2 = json!({"spec": {"x": 2, "y": 1}});
        record_update(&mut entries, &writer("b"), Some(&v1), &v2, None, Scope::All);
        let owned = |m: &str| {
            entries
                .iter()
                .find(|e| e.manager == m)
                .map(|e| e.fields.len())
                .unwrap_or(0)
        };
        assert_eq!((owned("a"), owned("b")), (1, 1));
    }
}
