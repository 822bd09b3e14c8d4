//! CEL validation rules (`x-kubernetes-validations`) of CRD schemas, evaluated with the `cel`
//! crate and the Kubernetes CEL libraries of kube-cel.
//!
//! kube-cel's own `Validator` cannot evaluate `type(self) == string` (its `cel` build has no
//! `type()` nor type identifiers), which this project's `dateFrom` rule needs, so the schema
//! walk is done here: `type()` returns the CEL type name and the type identifiers (`string`,
//! `int`, ...) are bound to the same names, so type comparisons behave as in cel-go.
//! Transition rules (those that read `oldSelf`) run only on updates, where the old value
//! exists, as in kube-apiserver. Not supported: `messageExpression` (the static `message` is
//! used), `optionalOldSelf`, correlating `oldSelf` inside lists.

use super::errors::Cause;
use kube_cel::KubeCelExt as _;
use kube_cel::cel::{Context, ParseErrors, Program, Value as CelValue};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug)]
struct Rule {
    source: String,
    program: Program,
    message: String,
    reason: &'static str,
    field_path: Option<String>,
    transition: bool,
}

/// The compiled rules of a schema tree.
#[derive(Debug, Default)]
pub(crate) struct CelRules {
    rules: Vec<Rule>,
    properties: BTreeMap<String, CelRules>,
    additional: Option<Box<CelRules>>,
    items: Option<Box<CelRules>>,
}

/// Names `type()` returns and the type identifiers bound to them.
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
];

fn cel_type(value: CelValue) -> String {
    match value {
        CelValue::Int(_) => "int",
        CelValue::UInt(_) => "uint",
        CelValue::Float(_) => "double",
        CelValue::Bool(_) => "bool",
        CelValue::String(_) => "string",
        CelValue::Bytes(_) => "bytes",
        CelValue::List(_) => "list",
        CelValue::Map(_) => "map",
        CelValue::Null => "null_type",
        CelValue::Timestamp(_) => "google.protobuf.Timestamp",
        CelValue::Duration(_) => "google.protobuf.Duration",
        _ => "dyn",
    }
    .to_string()
}

fn base_context() -> Context<'static> {
    let mut ctx = Context::default().with_all();
    ctx.add_function("type", cel_type);
    for name in TYPE_NAMES {
        ctx.add_variable_from_value(*name, CelValue::String(Arc::new((*name).to_string())));
    }
    ctx
}

/// JSON to CEL, with integers as `int` (as kube-apiserver converts `type: integer`).
fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let converted: HashMap<String, CelValue> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            converted.into()
        }
    }
}

/// A `x-kubernetes-validations` rule that does not compile.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}.x-kubernetes-validations[{index}].rule: Invalid value: {rule:?}: compilation failed: {source}"
)]
pub(crate) struct CelError {
    path: String,
    index: usize,
    rule: String,
    #[source]
    source: ParseErrors,
}

impl CelRules {
    /// Compiles every rule of a schema; `Ok(None)` when it has none. A rule that does not
    /// parse is an error, as kube-apiserver refuses such a CRD.
    pub fn compile(schema: &Value) -> Result<Option<Self>, CelError> {
        let rules = Self::compile_at(schema, "openAPIV3Schema")?;
        Ok(rules.has_rules().then_some(rules))
    }

    fn has_rules(&self) -> bool {
        !self.rules.is_empty()
            || self.properties.values().any(Self::has_rules)
            || self.additional.as_deref().is_some_and(Self::has_rules)
            || self.items.as_deref().is_some_and(Self::has_rules)
    }

    fn compile_at(schema: &Value, path: &str) -> Result<Self, CelError> {
        let mut node = CelRules::default();
        for (i, r) in schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let source = r
                .get("rule")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let program = match Program::compile(&source) {
                Ok(program) => program,
                Err(err) => {
                    return Err(CelError {
                        path: path.to_owned(),
                        index: i,
                        rule: source,
                        source: err,
                    });
                }
            };
            let transition = program.references().has_variable("oldSelf");
            let message = r
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("failed rule: {source}"));
            let reason = match r.get("reason").and_then(Value::as_str) {
                Some("FieldValueForbidden") => "FieldValueForbidden",
                Some("FieldValueRequired") => "FieldValueRequired",
                Some("FieldValueDuplicate") => "FieldValueDuplicate",
                _ => "FieldValueInvalid",
            };
            node.rules.push(Rule {
                source,
                program,
                message,
                reason,
                field_path: r
                    .get("fieldPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                transition,
            });
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                node.properties.insert(
                    name.clone(),
                    Self::compile_at(sub, &format!("{path}.properties[{name}]"))?,
                );
            }
        }
        if let Some(sub @ Value::Object(_)) = schema.get("additionalProperties") {
            node.additional = Some(Box::new(Self::compile_at(
                sub,
                &format!("{path}.additionalProperties"),
            )?));
        }
        if let Some(sub @ Value::Object(_)) = schema.get("items") {
            node.items = Some(Box::new(Self::compile_at(sub, &format!("{path}.items"))?));
        }
        Ok(node)
    }

    /// The causes of every failing rule for `obj` (`old`: the stored object on updates).
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let ctx = base_context();
        let mut causes = Vec::new();
        self.walk(&ctx, obj, old, "", true, &mut causes);
        causes
    }

    fn walk(
        &self,
        ctx: &Context<'_>,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        root: bool,
        causes: &mut Vec<Cause>,
    ) {
        for rule in &self.rules {
            if rule.transition && old.is_none() {
                continue;
            }
            let mut scope = ctx.new_inner_scope();
            scope.add_variable_from_value("self", to_cel(value));
            if let Some(old) = old {
                scope.add_variable_from_value("oldSelf", to_cel(old));
            }
            let failure = match rule.program.execute(&scope) {
                Ok(CelValue::Bool(true)) => None,
                Ok(CelValue::Bool(false)) => Some(rule.message.clone()),
                Ok(other) => Some(format!(
                    "rule {:?} did not evaluate to a bool: {other:?}",
                    rule.source
                )),
                Err(e) => Some(format!(
                    "rule {:?} could not be evaluated: {e}",
                    rule.source
                )),
            };
            if let Some(message) = failure {
                let field = match &rule.field_path {
                    Some(fp) => format!("{path}{fp}"),
                    None => path.to_string(),
                };
                // Like kube-apiserver: a scalar is quoted, an object or a list is left out.
                let mut cause = match value {
                    Value::Object(_) | Value::Array(_) => Cause {
                        reason: rule.reason,
                        message: format!("Invalid value: {message}"),
                        field,
                    },
                    Value::String(s) => Cause::invalid(field, &format!("{s:?}"), message),
                    scalar => Cause::invalid(field, &scalar.to_string(), message),
                };
                cause.reason = rule.reason;
                causes.push(cause);
            }
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    let (sub, child_path) = match self.properties.get(key) {
                        Some(sub) => (sub, join(path, key)),
                        None => match &self.additional {
                            Some(sub) => (sub.as_ref(), format!("{path}[{key}]")),
                            None => continue,
                        },
                    };
                    let old_child = old.and_then(|o| o.get(key));
                    sub.walk(ctx, child, old_child, &child_path, false, causes);
                }
            }
            Value::Array(items) => {
                if let Some(sub) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        sub.walk(ctx, item, None, &format!("{path}[{i}]"), false, causes);
                    }
                }
            }
            _ => {}
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(schema: Value) -> CelRules {
        match CelRules::compile(&schema) {
            Ok(Some(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn type_comparisons_work_like_cel_go() {
        let r = rules(
            json!({"properties": {"d": {"x-kubernetes-int-or-string": true,
            "x-kubernetes-validations": [{"rule": "type(self) == string ? self.matches('^[0-9]+[.]?$') : self >= 0", "message": "bad d"}]}}}),
        );
        assert!(r.validate(&json!({"d": 1630052714000u64}), None).is_empty());
        assert!(r.validate(&json!({"d": "12."}), None).is_empty());
        let bad = r.validate(&json!({"d": -1}), None);
        assert_eq!(
            bad.iter().map(Cause::line).collect::<Vec<_>>(),
            vec!["d: Invalid value: -1: bad d"]
        );
        assert_eq!(r.validate(&json!({"d": "x"}), None).len(), 1);
    }

    #[test]
    fn transition_rules_need_an_old_value() {
        let r = rules(
            json!({"properties": {"spec": {"properties": {"id": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]}}}}}),
        );
        let obj = json!({"spec": {"id": "a"}});
        assert!(r.validate(&obj, None).is_empty());
        assert!(r.validate(&obj, Some(&obj)).is_empty());
        let moved = json!({"spec": {"id": "b"}});
        let causes = r.validate(&moved, Some(&obj));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.id");
        // A field added on update has no old value: the transition rule does not run.
        assert!(r.validate(&obj, Some(&json!({"spec": {}}))).is_empty());
    }

    #[test]
    fn kubernetes_libraries_and_bad_rules() {
        let r = rules(
            json!({"x-kubernetes-validations": [{"rule": "self.name.lowerAscii() == self.name"}]}),
        );
        assert!(r.validate(&json!({"name": "abc"}), None).is_empty());
        let causes = r.validate(&json!({"name": "ABC"}), None);
        assert_eq!(
            causes[0].message,
            "Invalid value: failed rule: self.name.lowerAscii() == self.name"
        );
        let err = CelRules::compile(
            &json!({"x-kubernetes-validations": [{"rule": "self.matches('\\.')"}]}),
        );
        assert!(err.is_err(), "\\. is not a CEL escape: {err:?}");
        assert!(matches!(
            CelRules::compile(&json!({"type": "object"})),
            Ok(None)
        ));
    }
}
