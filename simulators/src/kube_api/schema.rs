//! Structural OpenAPI v3 schemas of CRDs: defaulting, pruning and validation with
//! kube-apiserver's messages (types, required, enum, pattern, lengths, bounds, formats,
//! int-or-string, nullable). CEL rules are in `validation`.

use super::errors::Cause;
use super::util::{shown, type_name};
use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;

/// A compiled schema node.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    ty: Option<String>,
    nullable: bool,
    int_or_string: bool,
    preserve_unknown: bool,
    embedded_resource: bool,
    properties: BTreeMap<String, Schema>,
    additional: Option<Box<Schema>>,
    items: Option<Box<Schema>>,
    required: Vec<String>,
    enumeration: Option<Vec<Value>>,
    pattern: Option<(String, Regex)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: bool,
    exclusive_maximum: bool,
    min_items: Option<u64>,
    max_items: Option<u64>,
    format: Option<String>,
    default: Option<Value>,
    /// `x-kubernetes-list-map-keys` when `x-kubernetes-list-type: map`.
    pub list_map_keys: Vec<String>,
}

/// A schema that cannot be compiled (a bad pattern).
#[derive(Debug, thiserror::Error)]
#[error("{path}.pattern: invalid pattern {pattern:?}: {source}")]
pub(crate) struct SchemaError {
    path: String,
    pattern: String,
    #[source]
    source: regex::Error,
}

impl Schema {
    /// Compiles a JSON schema node.
    pub fn compile(json: &Value) -> Result<Self, SchemaError> {
        Self::compile_at(json, "openAPIV3Schema")
    }

    fn compile_at(json: &Value, path: &str) -> Result<Self, SchemaError> {
        let get_u64 = |k: &str| json.get(k).and_then(Value::as_u64);
        let get_f64 = |k: &str| json.get(k).and_then(Value::as_f64);
        let get_bool = |k: &str| json.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut properties = BTreeMap::new();
        if let Some(props) = json.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                properties.insert(
                    name.clone(),
                    Self::compile_at(sub, &format!("{path}.properties[{name}]"))?,
                );
            }
        }
        let additional = match json.get("additionalProperties") {
            Some(v @ Value::Object(_)) => Some(Box::new(Self::compile_at(
                v,
                &format!("{path}.additionalProperties"),
            )?)),
            Some(Value::Bool(true)) => Some(Box::new(Schema {
                preserve_unknown: true,
                ..Schema::default()
            })),
            _ => None,
        };
        let items = match json.get("items") {
            Some(v @ Value::Object(_)) => {
                Some(Box::new(Self::compile_at(v, &format!("{path}.items"))?))
            }
            _ => None,
        };
        let pattern = match json.get("pattern").and_then(Value::as_str) {
            Some(p) => Some((
                p.to_string(),
                Regex::new(p).map_err(|source| SchemaError {
                    path: path.to_owned(),
                    pattern: p.to_owned(),
                    source,
                })?,
            )),
            None => None,
        };
        let list_map_keys =
            if json.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                json.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
        Ok(Self {
            ty: json.get("type").and_then(Value::as_str).map(str::to_string),
            nullable: get_bool("nullable"),
            int_or_string: get_bool("x-kubernetes-int-or-string"),
            preserve_unknown: get_bool("x-kubernetes-preserve-unknown-fields"),
            embedded_resource: get_bool("x-kubernetes-embedded-resource"),
            properties,
            additional,
            items,
            required: json
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            enumeration: json.get("enum").and_then(Value::as_array).cloned(),
            pattern,
            min_length: get_u64("minLength"),
            max_length: get_u64("maxLength"),
            minimum: get_f64("minimum"),
            maximum: get_f64("maximum"),
            exclusive_minimum: get_bool("exclusiveMinimum"),
            exclusive_maximum: get_bool("exclusiveMaximum"),
            min_items: get_u64("minItems"),
            max_items: get_u64("maxItems"),
            format: json
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_string),
            default: json.get("default").cloned(),
            list_map_keys,
        })
    }

    /// The schema of a property, if declared.
    pub fn property(&self, name: &str) -> Option<&Schema> {
        self.properties.get(name).or(self.additional.as_deref())
    }

    /// The schema of the items of an array.
    pub fn item(&self) -> Option<&Schema> {
        self.items.as_deref()
    }

    /// Applies defaults and removes fields the schema does not declare; returns the paths of
    /// the removed fields (for `fieldValidation`). At the root, `apiVersion`, `kind` and
    /// `metadata` are kept.
    pub fn default_and_prune(&self, value: &mut Value, root: bool) -> Vec<String> {
        let mut unknown = Vec::new();
        self.walk_default_prune(value, "", root, &mut unknown);
        unknown
    }

    fn walk_default_prune(
        &self,
        value: &mut Value,
        path: &str,
        root: bool,
        unknown: &mut Vec<String>,
    ) {
        match value {
            Value::Object(map) => {
                for (name, sub) in &self.properties {
                    if !map.contains_key(name)
                        && let Some(default) = &sub.default
                    {
                        map.insert(name.clone(), default.clone());
                    }
                }
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if self.embedded_resource
                        && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                    {
                        continue;
                    }
                    let child_path = join(path, &key);
                    let sub = self.properties.get(&key).or(self.additional.as_deref());
                    match sub {
                        Some(sub) => {
                            if let Some(child) = map.get_mut(&key) {
                                sub.walk_default_prune(child, &child_path, false, unknown);
                            }
                        }
                        None if self.preserve_unknown => {}
                        None => {
                            map.remove(&key);
                            unknown.push(child_path);
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(sub) = &self.items {
                    for (i, item) in items.iter_mut().enumerate() {
                        sub.walk_default_prune(item, &format!("{path}[{i}]"), false, unknown);
                    }
                }
            }
            _ => {}
        }
    }

    /// Validates a value; `root` skips `apiVersion`, `kind` and `metadata` (validated apart).
    pub fn validate(&self, value: &Value, root: bool) -> Vec<Cause> {
        let mut causes = Vec::new();
        self.walk_validate(value, "", root, &mut causes);
        causes
    }

    fn walk_validate(&self, value: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
        let shown_path = if path.is_empty() { "<root>" } else { path };
        if value.is_null() {
            if !self.nullable && (self.ty.is_some() || self.int_or_string) {
                let expected = if self.int_or_string {
                    "integer,string"
                } else {
                    self.ty.as_deref().unwrap_or("")
                };
                causes.push(Cause::type_invalid(
                    path,
                    "\"null\"",
                    format!("{shown_path} in body must be of type {expected}: \"null\""),
                ));
            }
            return;
        }
        if self.int_or_string {
            let ok = matches!(type_name(value), "integer" | "string");
            if !ok {
                let actual = type_name(value);
                causes.push(Cause::type_invalid(
                    path,
                    &format!("{actual:?}"),
                    format!("{shown_path} in body must be of type integer,string: {actual:?}"),
                ));
                return;
            }
        } else if let Some(ty) = &self.ty {
            let actual = type_name(value);
            let ok = actual == ty || (ty == "number" && actual == "integer");
            if !ok {
                causes.push(Cause::type_invalid(
                    path,
                    &format!("{actual:?}"),
                    format!("{shown_path} in body must be of type {ty}: {actual:?}"),
                ));
                return;
            }
        }
        if let Some(allowed) = &self.enumeration
            && !allowed.contains(value)
        {
            let supported: Vec<String> = allowed.iter().map(shown).collect();
            causes.push(Cause::not_supported(path, &shown(value), &supported));
        }
        match value {
            Value::String(s) => self.validate_string(s, value, path, shown_path, causes),
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    self.validate_number(x, value, path, shown_path, causes);
                }
            }
            Value::Object(map) => {
                for req in &self.required {
                    if !map.contains_key(req) {
                        causes.push(Cause::required(join(path, req), ""));
                    }
                }
                for (key, child) in map {
                    if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(sub) = self.properties.get(key).or(self.additional.as_deref()) {
                        let child_path = if self.properties.contains_key(key) {
                            join(path, key)
                        } else {
                            format!("{path}[{key}]")
                        };
                        sub.walk_validate(child, &child_path, false, causes);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(max) = self.max_items
                    && items.len() as u64 > max
                {
                    causes.push(Cause {
                        reason: "FieldValueTooMany",
                        message: format!(
                            "Too many: {}: must have at most {max} items",
                            items.len()
                        ),
                        field: path.to_string(),
                    });
                }
                if let Some(min) = self.min_items
                    && (items.len() as u64) < min
                {
                    causes.push(Cause::invalid(
                        path,
                        &items.len().to_string(),
                        format!("{shown_path} in body should have at least {min} items"),
                    ));
                }
                if let Some(sub) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        sub.walk_validate(item, &format!("{path}[{i}]"), false, causes);
                    }
                }
            }
            _ => {}
        }
    }

    fn validate_string(
        &self,
        s: &str,
        value: &Value,
        path: &str,
        shown_path: &str,
        causes: &mut Vec<Cause>,
    ) {
        if let Some(max) = self.max_length
            && s.chars().count() as u64 > max
        {
            causes.push(Cause::too_long(path, max));
        }
        if let Some(min) = self.min_length
            && (s.chars().count() as u64) < min
        {
            causes.push(Cause::invalid(
                path,
                &shown(value),
                format!("{shown_path} in body should be at least {min} chars long"),
            ));
        }
        if let Some((source, regex)) = &self.pattern
            && !regex.is_match(s)
        {
            causes.push(Cause::invalid(
                path,
                &shown(value),
                format!("{shown_path} in body should match '{source}'"),
            ));
        }
        if let Some(format) = &self.format
            && !format_ok(format, s)
        {
            causes.push(Cause::invalid(
                path,
                &shown(value),
                format!("{shown_path} in body must be of type {format}: {s:?}"),
            ));
        }
    }

    fn validate_number(
        &self,
        x: f64,
        value: &Value,
        path: &str,
        shown_path: &str,
        causes: &mut Vec<Cause>,
    ) {
        if let Some(min) = self.minimum {
            let bad = if self.exclusive_minimum {
                x <= min
            } else {
                x < min
            };
            if bad {
                let op = if self.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                causes.push(Cause::invalid(
                    path,
                    &shown(value),
                    format!("{shown_path} in body should be {op} {}", trim_float(min)),
                ));
            }
        }
        if let Some(max) = self.maximum {
            let bad = if self.exclusive_maximum {
                x >= max
            } else {
                x > max
            };
            if bad {
                let op = if self.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                causes.push(Cause::invalid(
                    path,
                    &shown(value),
                    format!("{shown_path} in body should be {op} {}", trim_float(max)),
                ));
            }
        }
    }
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The string formats kube-apiserver checks; unknown formats pass, as there.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => is_date_time(s),
        "date" => s.parse::<jiff::civil::Date>().is_ok(),
        "int32" | "int64" | "uint32" | "uint16" | "double" | "float" | "byte" | "password" => true,
        _ => true,
    }
}

/// kube-apiserver's `date-time` check (kube-openapi `strfmt.IsDateTime`): lower-cased and
/// split at `t`, a date that Go's `time.Parse("2006-01-02")` accepts, then
/// `^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$` with hour <= 23,
/// minute and second <= 59. The fraction has any number of digits (its separator is any
/// character) and the offset any two-digit numbers: kube-apiserver stores such values as
/// given, so a client must read them (a parser such as `jiff::Timestamp` refuses more than
/// nine fractional digits, and refused them here before).
fn is_date_time(s: &str) -> bool {
    static TIME: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
            .unwrap_or_else(|e| unreachable!("fixed pattern: {e}"))
    });
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 {
        return false;
    }
    let date = parts[0];
    let date_ok = date.len() == 10
        && date.as_bytes()[4] == b'-'
        && date.as_bytes()[7] == b'-'
        && date.parse::<jiff::civil::Date>().is_ok();
    if !date_ok {
        return false;
    }
    TIME.captures(parts[1])
        .is_some_and(|m| &m[1] <= "23" && &m[2] <= "59" && &m[3] <= "59")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// As kube-openapi's `IsDateTime`: more than nine fractional digits, lower case and any
    /// offset digits pass; a space separator, a leap second, an unreal date do not.
    #[test]
    fn date_time_is_checked_like_kube_apiserver() {
        for good in [
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00.1234567890Z",
            "2030-01-01t00:00:00.5z",
            "2030-01-01T00:00:00+99:99",
            "2030-01-01T00:00:00x5Z",
            "9999-12-31T23:59:59-23:59",
        ] {
            assert!(is_date_time(good), "{good}");
        }
        for bad in [
            "2030-01-01 00:00:00Z",
            "2030-01-01T00:00:60Z",
            "2030-01-01T24:00:00Z",
            "2030-02-30T00:00:00Z",
            "2030-01-01T00:00:00",
            "2030-01-01",
            "soon",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }

    fn schema() -> Schema {
        let json = json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["taskId"],
                    "properties": {
                        "taskId": {"type": "string", "pattern": "^[a-z]+$"},
                        "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                        "count": {"type": "integer", "minimum": 0.0, "maximum": 10.0},
                        "from": {"x-kubernetes-int-or-string": true, "nullable": true},
                        "when": {"type": "string", "format": "date-time"},
                        "name": {"type": "string", "maxLength": 3, "minLength": 1}
                    }
                }
            }
        });
        match Schema::compile(&json) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn lines(obj: &Value) -> Vec<String> {
        schema()
            .validate(obj, true)
            .iter()
            .map(Cause::line)
            .collect()
    }

    #[test]
    fn messages_match_kube_apiserver_wording() {
        assert_eq!(
            lines(&json!({"spec": {"taskId": "A/B"}})),
            vec![
                "spec.taskId: Invalid value: \"A/B\": spec.taskId in body should match '^[a-z]+$'"
            ]
        );
        assert_eq!(
            lines(&json!({"spec": {}})),
            vec!["spec.taskId: Required value"]
        );
        assert_eq!(
            lines(&json!({"spec": {"taskId": "a", "mode": "C"}})),
            vec!["spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\""]
        );
        assert_eq!(
            lines(&json!({"spec": {"taskId": "a", "count": -1}})),
            vec![
                "spec.count: Invalid value: -1: spec.count in body should be greater than or equal to 0"
            ]
        );
        assert_eq!(
            lines(&json!({"spec": {"taskId": "a", "count": "x"}})),
            vec![
                "spec.count: Invalid value: \"string\": spec.count in body must be of type integer: \"string\""
            ]
        );
        assert_eq!(
            lines(&json!({"spec": {"taskId": "a", "from": true}})),
            vec![
                "spec.from: Invalid value: \"boolean\": spec.from in body must be of type integer,string: \"boolean\""
            ]
        );
        assert_eq!(
            lines(&json!({"spec": {"taskId": "a", "when": "yesterday"}})),
            vec![
                "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\""
            ]
        );
        assert_eq!(
            lines(&json!({"spec": {"taskId": "a", "name": "abcd"}})),
            vec!["spec.name: Too long: may not be more than 3 bytes"]
        );
        assert!(
            lines(&json!({"spec": {"taskId": "a", "from": 5, "when": "2021-08-27T08:25:14Z"}}))
                .is_empty()
        );
        assert!(lines(&json!({"spec": {"taskId": "a", "from": "x"}})).is_empty());
        assert!(lines(&json!({"spec": {"taskId": "a", "from": null}})).is_empty());
    }

    #[test]
    fn defaults_apply_and_unknown_fields_are_pruned() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"taskId": "a", "bogus": 1}, "extra": true});
        let unknown = schema().default_and_prune(&mut obj, true);
        assert_eq!(unknown, vec!["extra".to_string(), "spec.bogus".to_string()]);
        assert_eq!(obj["spec"]["mode"], "A");
        assert!(obj["spec"].get("bogus").is_none());
        assert_eq!(obj["metadata"]["name"], "n");
    }
}
