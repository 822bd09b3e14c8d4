//! Object validation: metadata, the CRD schema (see `schema`), the CRD's CEL rules
//! (`x-kubernetes-validations`, see `cel`) and
//! the few built-in rules the project relies on.

use super::errors::Cause;
use super::registry::{Builtin, ResourceType, VersionInfo};
use super::util::meta_str;
use base64::Engine as _;
use serde_json::Value;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validates `metadata.name` and `metadata.namespace` the way the type requires.
fn validate_metadata(rt: &ResourceType, obj: &Value, causes: &mut Vec<Cause>) {
    let name = meta_str(obj, "name");
    let shown = format!("{name:?}");
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if rt.builtin == Builtin::Namespace {
        if !is_dns_label(name) {
            causes.push(Cause::invalid("metadata.name", &shown, DNS1123_LABEL_MSG));
        }
    } else if !is_dns_subdomain(name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &shown,
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    let namespace = meta_str(obj, "namespace");
    if rt.namespaced && !namespace.is_empty() && !is_dns_label(namespace) {
        causes.push(Cause::invalid(
            "metadata.namespace",
            &format!("{namespace:?}"),
            DNS1123_LABEL_MSG,
        ));
    }
    if let Some(labels) = obj
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            match v.as_str() {
                Some(s) if s.len() <= 63 => {}
                _ => causes.push(Cause::invalid(
                    "metadata.labels",
                    &super::util::shown(v),
                    format!("label {k:?}: must be no more than 63 characters"),
                )),
            }
        }
    }
}

fn validate_builtin(rt: &ResourceType, obj: &Value, causes: &mut Vec<Cause>) {
    match rt.builtin {
        Builtin::Secret => {
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in data {
                    let ok = v.as_str().is_some_and(|s| {
                        base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                    });
                    if !ok {
                        causes.push(Cause::invalid(
                            format!("data[{k}]"),
                            "\"<secret contents redacted>\"",
                            "a valid base64 string is required",
                        ));
                    }
                }
            }
        }
        Builtin::Crd => {
            let name = meta_str(obj, "name");
            if let Some(key) = super::registry::crd_key(obj) {
                let expected = format!("{}.{}", key.plural, key.group);
                if name != expected {
                    causes.push(Cause::invalid(
                        "metadata.name",
                        &format!("{name:?}"),
                        "must be spec.names.plural+\".\"+spec.group",
                    ));
                }
            } else {
                causes.push(Cause::required("spec.group", ""));
            }
        }
        _ => {}
    }
}

/// Every cause that makes `obj` invalid; `old` is the stored object on updates.
pub(crate) fn validate(
    rt: &ResourceType,
    version: &VersionInfo,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_metadata(rt, obj, &mut causes);
    validate_builtin(rt, obj, &mut causes);
    if let Some(schema) = &version.schema {
        causes.extend(schema.validate(obj, true));
    }
    if let Some(cel) = &version.cel {
        // kube-apiserver skips the CEL rules after a wrong type, a missing required field, an
        // unsupported enum value or a value too long or with too many items, and says so; the
        // other schema errors (a pattern, a bound, a name) leave the rules to run.
        let blocking = causes.iter().any(|c| {
            matches!(
                c.reason,
                "FieldValueNotSupported"
                    | "FieldValueRequired"
                    | "FieldValueTooLong"
                    | "FieldValueTooMany"
                    | "FieldValueTypeInvalid"
            )
        });
        if blocking {
            causes.push(Cause::invalid(
                "<nil>",
                "null",
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            causes.extend(cel.validate(obj, old));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::super::registry::{Registry, TypeKey};
    use super::*;
    use serde_json::json;

    const COMMITTED_CRD: &str = include_str!("../../../deploy/crd.yaml");

    fn crd() -> Value {
        serde_saphyr::from_str(COMMITTED_CRD).unwrap_or(Value::Null)
    }

    #[test]
    fn committed_crd_rules_compile() {
        let crd: Value = serde_saphyr::from_str(COMMITTED_CRD).unwrap_or(Value::Null);
        let mut registry = Registry::with_builtins();
        let result = registry.register_crd(&crd);
        assert!(
            result.is_ok(),
            "deploy/crd.yaml would be refused by kube-apiserver: {result:?}"
        );
    }

    fn tr(spec: Value) -> Value {
        json!({"apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
            "metadata": {"name": "a", "namespace": "default"}, "spec": spec})
    }

    fn spec() -> Value {
        json!({"projectId": "p1", "instanceId": "i1", "taskId": "t1"})
    }

    fn check(obj: &Value, old: Option<&Value>) -> Vec<String> {
        let mut registry = Registry::with_builtins();
        let key = registry.register_crd(&crd());
        assert_eq!(
            key.as_ref().ok(),
            Some(&TypeKey::new("fdi.roma.io", "taskresets")),
            "{key:?}"
        );
        let Some(rt) = registry.get(&TypeKey::new("fdi.roma.io", "taskresets")) else {
            panic!("not registered")
        };
        let version = rt.storage_version();
        validate(&rt, version, obj, old)
            .iter()
            .map(Cause::line)
            .collect()
    }

    #[test]
    fn the_projects_cel_rules_evaluate() {
        assert_eq!(check(&tr(spec()), None), Vec::<String>::new());
        let mut s = spec();
        s["dateFrom"] = json!(1630052714000u64);
        assert_eq!(check(&tr(s.clone()), None), Vec::<String>::new());
        s["dateFrom"] = json!("2021-08-27T08:25:14Z");
        assert!(check(&tr(s.clone()), None).is_empty());
        s["dateFrom"] = json!(-5);
        let bad = check(&tr(s.clone()), None);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].starts_with("spec.dateFrom: Invalid value: -5: dateFrom must be"),
            "{bad:?}"
        );
        s["dateFrom"] = json!("yesterday");
        let bad = check(&tr(s), None);
        assert!(
            bad[0].starts_with("spec.dateFrom: Invalid value: \"yesterday\": dateFrom must be"),
            "{bad:?}"
        );
    }

    #[test]
    fn transition_rules_reject_a_changed_task_id() {
        let old = tr(spec());
        let mut s = spec();
        s["taskId"] = json!("t2");
        let bad = check(&tr(s), Some(&old));
        assert_eq!(
            bad,
            vec![
                "spec.taskId: Invalid value: \"t2\": taskId is immutable: create a new TaskReset for another target"
            ]
        );
        let mut s = spec();
        s["runId"] = json!("again");
        assert!(check(&tr(s), Some(&old)).is_empty());
    }

    #[test]
    fn pattern_and_metadata_violations_are_reported() {
        let mut s = spec();
        s["taskId"] = json!("../etc");
        let bad = check(&tr(s), None);
        assert_eq!(
            bad,
            vec![
                "spec.taskId: Invalid value: \"../etc\": spec.taskId in body should match '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'"
            ]
        );
        let mut obj = tr(spec());
        obj["metadata"]["name"] = json!("Bad_Name");
        assert!(check(&obj, None)[0].starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
    }
}
