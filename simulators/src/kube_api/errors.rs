//! API errors as Kubernetes `Status` objects, worded the way kube-apiserver words them.

use serde_json::{Value, json};

/// One field-level cause of an `Invalid` (422) error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// The message without the field path, e.g. `Invalid value: "x": ...`.
    pub message: String,
    /// The field path, e.g. `spec.taskId`.
    pub field: String,
}

impl Cause {
    /// `field: Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, shown_value: &str, detail: impl AsRef<str>) -> Self {
        Self {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {shown_value}: {}", detail.as_ref()),
            field: field.into(),
        }
    }

    /// `field: Invalid value: <value>: <detail>` for a value of the wrong type
    /// (`FieldValueTypeInvalid`, which stops kube-apiserver from running the CEL rules).
    pub fn type_invalid(
        field: impl Into<String>,
        shown_value: &str,
        detail: impl AsRef<str>,
    ) -> Self {
        Self {
            reason: "FieldValueTypeInvalid",
            ..Self::invalid(field, shown_value, detail)
        }
    }

    /// `field: Required value` (with an optional detail).
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            reason: "FieldValueRequired",
            message,
            field: field.into(),
        }
    }

    /// `field: Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        shown_value: &str,
        supported: &[String],
    ) -> Self {
        Self {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {shown_value}: supported values: {}",
                supported.join(", ")
            ),
            field: field.into(),
        }
    }

    /// `field: Too long: may not be more than N bytes`.
    pub fn too_long(field: impl Into<String>, max: u64) -> Self {
        Self {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} bytes"),
            field: field.into(),
        }
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }

    /// `field: message` as kubectl prints it.
    pub fn line(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// An error answer of the API: HTTP code, reason and message of a `Status`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub(crate) struct ApiError {
    /// HTTP status code, also `Status.code`.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: String,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the error is about one object.
    pub details: Option<Value>,
}

impl ApiError {
    /// A bare error with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let mut details = json!({"name": name, "kind": kind});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        self.details = Some(details);
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 NotFound for an object: `taskresets.fdi.roma.io "x" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", group_resource(group, plural)),
        )
        .with_details(name, group, plural)
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details("", "", "")
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{name}\" already exists",
                group_resource(group, plural)
            ),
        )
        .with_details(name, group, plural)
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                group_resource(group, plural)
            ),
        )
        .with_details(name, group, plural)
    }

    /// The usual stale-write conflict.
    pub fn stale(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with causes: `TaskReset.fdi.roma.io "x" is invalid: [a, b]`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[Cause]) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let list = match causes {
            [one] => one.line(),
            many => format!(
                "[{}]",
                many.iter().map(Cause::line).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut err = Self::new(
            422,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {list}"),
        )
        .with_details(name, group, kind);
        if let Some(details) = err.details.as_mut() {
            details["causes"] = causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
        }
        err
    }

    /// 410 Expired for a watch or list from a compacted resourceVersion.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// An injected fault: the usual reason for that code.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        let mut err = Self::new(code, reason, format!("injected fault: HTTP {code}"));
        if code == 429 {
            err.details = Some(json!({"retryAfterSeconds": 1}));
        }
        err
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// `plural.group`, or `plural` for the core group.
pub(crate) fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_lists_causes_like_kube_apiserver() {
        let one = ApiError::invalid(
            "fdi.roma.io",
            "TaskReset",
            "a",
            &[Cause::required("spec.taskId", "")],
        );
        assert_eq!(
            one.message,
            "TaskReset.fdi.roma.io \"a\" is invalid: spec.taskId: Required value"
        );
        let two = ApiError::invalid(
            "",
            "Secret",
            "s",
            &[Cause::required("a", ""), Cause::forbidden("b", "no")],
        );
        assert_eq!(
            two.message,
            "Secret \"s\" is invalid: [a: Required value, b: Forbidden: no]"
        );
        let status = two.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][1]["field"], "b");
        assert!(status["details"].get("group").is_none());
    }
}
