//! What the controller keeps of each watched TaskReset.
//!
//! The watch delivers whole objects and the controller caches every one of them for as long
//! as it runs. Two parts of an object are often bigger than the rest of it together and are
//! never read: `metadata.managedFields` (server-side apply bookkeeping) and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (a full copy of the manifest
//! kept by client-side `kubectl apply`). They are dropped as each event arrives, before the
//! object reaches the cache, so neither memory nor the status writes carry them.
//!
//! Dropping them is safe for writes: the controller writes only the status subresource, where
//! the API server keeps the stored metadata and ignores the metadata sent.

use kube::core::DeserializeGuard;

use crate::api::TaskReset;

/// The annotation client-side `kubectl apply` keeps on every object it applies.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drop the parts of a watched object the controller never reads (see the module docs).
/// Malformed objects keep only their metadata in the cache; it is trimmed the same way.
pub fn trim(obj: &mut DeserializeGuard<TaskReset>) {
    let metadata = match &mut obj.0 {
        Ok(tr) => &mut tr.metadata,
        Err(invalid) => &mut invalid.metadata,
    };
    metadata.managed_fields = None;
    if let Some(annotations) = &mut metadata.annotations {
        annotations.remove(LAST_APPLIED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use kube::core::error_boundary::InvalidObject;

    fn applied() -> TaskReset {
        let mut tr = crate::fixture::Fixture::new("orders", "t").build();
        tr.metadata.labels = Some([("team".to_owned(), "data".to_owned())].into());
        tr.metadata.annotations = Some(
            [
                (
                    LAST_APPLIED.to_owned(),
                    r#"{"spec":{"taskId":"t"}}"#.to_owned(),
                ),
                ("owner".to_owned(), "ops".to_owned()),
            ]
            .into(),
        );
        tr.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({"f:spec": {"f:taskId": {}}}))),
            ..ManagedFieldsEntry::default()
        }]);
        tr.metadata.resource_version = Some("42".into());
        tr
    }

    #[test]
    fn drops_managed_fields_and_last_applied_only() {
        let original = applied();
        let mut guard = DeserializeGuard(Ok(original.clone()));
        trim(&mut guard);
        let Ok(trimmed) = guard.0 else {
            panic!("a valid object stays valid");
        };
        assert_eq!(trimmed.metadata.managed_fields, None);
        let annotations = trimmed.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("owner").map(String::as_str), Some("ops"));
        // Everything the controller reads is untouched.
        assert_eq!(trimmed.spec, original.spec);
        assert_eq!(trimmed.status, original.status);
        assert_eq!(trimmed.metadata.labels, original.metadata.labels);
        assert_eq!(
            trimmed.metadata.resource_version,
            original.metadata.resource_version
        );
        assert_eq!(trimmed.metadata.name, original.metadata.name);
        assert!(
            serde_json::to_vec(&trimmed).map(|v| v.len()).unwrap_or(0)
                < serde_json::to_vec(&original).map(|v| v.len()).unwrap_or(0)
        );
    }

    #[test]
    fn malformed_objects_are_trimmed_too() {
        let mut guard: DeserializeGuard<TaskReset> = DeserializeGuard(Err(InvalidObject {
            error: "spec.taskId: invalid type".into(),
            metadata: applied().metadata,
        }));
        trim(&mut guard);
        let Err(invalid) = guard.0 else {
            panic!("a malformed object stays malformed");
        };
        assert_eq!(invalid.metadata.managed_fields, None);
        assert_eq!(
            invalid
                .metadata
                .annotations
                .map(|a| a.contains_key(LAST_APPLIED)),
            Some(false)
        );
        assert_eq!(invalid.error, "spec.taskId: invalid type");
    }
}
