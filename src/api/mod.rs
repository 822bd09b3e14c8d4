//! The `TaskReset` custom resource (`fdi.roma.io/v1alpha1`): its spec, its status, its CRD.

mod date_from;
mod rfc3339;
mod validation;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use date_from::{
    DateFrom, DateFromError, MAX_DATE_FROM_LEN, MAX_EPOCH_MILLIS, MIN_MILLIS, SECONDS_MESSAGE,
};
pub use rfc3339::{Instant, RFC3339_PATTERN, parse as parse_rfc3339};
pub use validation::{
    DNS1123_SUBDOMAIN_PATTERN, ID_PATTERN, MAX_ENDPOINT_LEN, MAX_ID_LEN, MAX_REGION_LEN,
    MAX_RUN_ID_LEN, MAX_SECRET_NAME_LEN, REGION_PATTERN, SpecError, ValidSpec,
    is_dns1123_subdomain, is_valid_id, is_valid_region, parse_endpoint,
};

/// The API group of every kind this controller serves.
pub const GROUP: &str = "fdi.roma.io";
/// The API version of [`TaskReset`].
pub const VERSION: &str = "v1alpha1";

/// Reset the progress of a ROMA Connect FDI combined (multi-table) task, once per generation.
///
/// The controller calls `POST /v2/{projectId}/fdi/instances/{instanceId}/multi-tasks/{taskId}/reset`
/// exactly once for each `metadata.generation` of the object and records the answer in
/// `.status`. Edit the spec (for example set a new `runId`) to reset again.
// kube-derive takes one `printcolumn(...)` per column; clippy reads their keys as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fdi.roma.io",
    version = "v1alpha1",
    kind = "TaskReset",
    plural = "taskresets",
    singular = "taskreset",
    shortname = "tr",
    category = "roma",
    category = "fdi",
    namespaced,
    status = "TaskResetStatus",
    derive = "PartialEq",
    doc = "TaskReset resets the progress of a Huawei Cloud ROMA Connect FDI combined (multi-table) task, exactly once per generation of the object. Read the outcome in .status.",
    printcolumn(name = "Task", type_ = "string", json_path = ".spec.taskId"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TaskResetSpec {
    /// Huawei Cloud project ID ({project_id} of the call). 1-64 characters of letters, digits,
    /// '_' and '-'. Immutable: a different target is a different TaskReset.
    #[schemars(regex(pattern = ID_PATTERN), length(max = MAX_ID_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("projectId is immutable: create a new TaskReset for another target"))]
    pub project_id: String,

    /// ROMA Connect instance ID ({instance_id} of the call). Same character rules as projectId.
    /// Immutable.
    #[schemars(regex(pattern = ID_PATTERN), length(max = MAX_ID_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("instanceId is immutable: create a new TaskReset for another target"))]
    pub instance_id: String,

    /// ID of the combined (multi-table) FDI task to reset ({task_id} of the call). Same
    /// character rules as projectId. Immutable.
    #[schemars(regex(pattern = ID_PATTERN), length(max = MAX_ID_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("taskId is immutable: create a new TaskReset for another target"))]
    pub task_id: String,

    /// Where the reset starts from: UTC epoch milliseconds (integer >= 0, e.g. 1630052714000)
    /// or an RFC 3339 timestamp (e.g. "2021-08-27T08:25:14Z"). Omitted: no date_from is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_from: Option<DateFrom>,

    /// Huawei Cloud region, e.g. cn-north-4: the call goes to
    /// https://roma.{region}.myhuaweicloud.com. Ignored when endpoint is set; when both are
    /// omitted the controller's default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION_PATTERN), length(max = MAX_REGION_LEN))]
    pub region: Option<String>,

    /// Base URL of the ROMA Connect API, e.g. https://roma.cn-north-4.myhuaweicloud.com.
    /// Overrides region. Must be an absolute https:// URL that the controller's
    /// --allowed-endpoints permit, so credentials cannot be sent elsewhere. At most 2048
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"),
        length(max = MAX_ENDPOINT_LEN)
    )]
    pub endpoint: Option<String>,

    /// Secret in this namespace holding the credentials: `token`; or `accessKey` and
    /// `secretKey` (and optional `securityToken`); or `username`, `password` and `domainName`
    /// (and optional `iamEndpoint`). Omitted: the controller's default Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,

    /// Free text. The reset runs once per generation and once per (namespace, name, spec);
    /// set a new runId to run the same reset again, also after the object was deleted and
    /// re-created. At most 253 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_RUN_ID_LEN))]
    pub run_id: Option<String>,

    /// What to do when an attempt fails: OnTransientError (default) retries failures that
    /// provably did not execute (connection refused, 429, 5xx with a service error) and stops
    /// at an ambiguous outcome (timeout after sending); Never never calls twice; Always also
    /// retries ambiguous outcomes, which may reset twice.
    #[serde(default)]
    pub retry_policy: RetryPolicy,

    /// true: do nothing until set back to false (phase Suspended).
    #[serde(default)]
    pub suspend: bool,

    /// Never call after this instant (RFC 3339). A generation not finished by then fails with
    /// reason Expired: a guard against stale manifests re-applied by GitOps. Any fraction
    /// length; offsets up to 23:59.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rfc3339::deserialize_opt_time"
    )]
    #[schemars(regex(pattern = RFC3339_PATTERN), length(max = MAX_NOT_AFTER_LEN))]
    pub not_after: Option<Time>,
}

/// Longest `notAfter`: as [`MAX_DATE_FROM_LEN`].
pub const MAX_NOT_AFTER_LEN: usize = MAX_DATE_FROM_LEN;

/// A Secret in the TaskReset's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret: a DNS-1123 subdomain (lower-case letters, digits, '-' and '.',
    /// at most 253 characters), as every Secret name is.
    #[schemars(
        regex(pattern = DNS1123_SUBDOMAIN_PATTERN),
        length(min = 1, max = MAX_SECRET_NAME_LEN)
    )]
    pub name: String,
}

/// One version of a credentials Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersion {
    /// The Secret, as NAMESPACE/NAME.
    pub secret: String,
    /// Its metadata.resourceVersion: any change of the Secret changes it.
    pub resource_version: String,
}

impl fmt::Display for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Secret {} (resourceVersion {})",
            self.secret, self.resource_version
        )
    }
}

/// When the controller may call again after a failed attempt.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RetryPolicy {
    /// Retry only what provably did not execute; an ambiguous outcome ends in Unknown.
    #[default]
    OnTransientError,
    /// Never call a second time for the same generation.
    Never,
    /// Retry ambiguous outcomes too (timeouts after sending): the reset may run twice.
    Always,
}

/// The phase of the current generation's reset.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Waiting for something outside the controller (credentials) before calling.
    Pending,
    /// A call is in flight (the claim is written).
    Resetting,
    /// An attempt failed without executing; another is scheduled at nextAttemptTime.
    Retrying,
    /// The service answered 200.
    Succeeded,
    /// The service rejected the reset, the spec is invalid, retries ran out, or it expired.
    Failed,
    /// A call may or may not have executed; the controller will not call again by itself.
    Unknown,
    /// spec.suspend is true.
    Suspended,
}

impl Phase {
    /// Every phase, in the order of the state machine.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Resetting,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Unknown,
        Self::Suspended,
    ];

    /// The phase as written in the status, the docs and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Resetting => "Resetting",
            Self::Retrying => "Retrying",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Unknown => "Unknown",
            Self::Suspended => "Suspended",
        }
    }

    /// Whether this phase ends a generation: no further call is ever made for it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Unknown)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the controller observed and did for `observedGeneration`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResetStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Resetting, Retrying, Succeeded, Failed, Unknown or Suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The service's message on success (e.g. "Reset Success").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The service's or gateway's error code (e.g. FDI.3150), or the HTTP status when the
    /// body carried none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The service's or gateway's error message, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// HTTP status of the last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // kube-apiserver knows int32/int64, not Rust's uint16/uint32 (it warns on install).
    #[schemars(extend("format" = "int32"))]
    pub http_status: Option<u16>,
    /// Calls made (or claimed) for this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // kube-apiserver knows int32/int64, not Rust's uint16/uint32 (it warns on install).
    #[schemars(extend("format" = "int64"))]
    pub attempts: Option<u32>,
    /// The date_from actually sent, in UTC epoch milliseconds; absent when none was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_from: Option<i64>,
    /// When the first attempt for this generation started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the current (or last) attempt was claimed; a `Resetting` claim older than the
    /// request timeout plus a margin means its holder died mid-call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<Time>,
    /// When this generation reached its final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the next attempt is due (phase Retrying, Pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
    /// X-Request-Id of the last remote answer, for Huawei Cloud support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The first attempt of this generation whose outcome is unknown (it may have reset the
    /// task). Set when `retryPolicy: Always` retries after it; from then on the generation
    /// never reads as not executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // kube-apiserver knows int32/int64, not Rust's uint16/uint32 (it warns on install).
    #[schemars(extend("format" = "int64"))]
    pub ambiguous_attempt: Option<u32>,
    /// The version of the credentials Secret that the gateway rejected (401). No call is made
    /// with it again: the controller re-reads the Secret (at nextAttemptTime) and calls only
    /// once it holds a new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_credentials: Option<SecretVersion>,
    /// Ready (True when Succeeded), Reconciling (while working) and Stalled (when a human is
    /// needed), each with the generation it describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl TaskResetSpec {
    /// A spec for one target with every optional field at its default.
    pub fn new(project_id: &str, instance_id: &str, task_id: &str) -> Self {
        Self {
            project_id: project_id.to_owned(),
            instance_id: instance_id.to_owned(),
            task_id: task_id.to_owned(),
            date_from: None,
            region: None,
            endpoint: None,
            credentials_secret_ref: None,
            run_id: None,
            retry_policy: RetryPolicy::default(),
            suspend: false,
            not_after: None,
        }
    }
}

/// The spec of the ROMA API reference example, for unit tests.
#[cfg(test)]
pub(crate) fn reference_spec() -> TaskResetSpec {
    TaskResetSpec {
        date_from: Some(DateFrom::EpochMillis(1_630_052_714_000)),
        region: Some("cn-north-4".into()),
        ..TaskResetSpec::new(
            "c53626012ba84727b938ca8bf03108ef",
            "fae7ff6c-8e07-4cf8-9e67-589cab2f017c",
            "15366328208d4d77b76532fe9f4006a6",
        )
    }
}

impl TaskReset {
    /// The phase recorded for the object's current generation, if the status describes it.
    pub fn current_phase(&self) -> Option<Phase> {
        let status = self.status.as_ref()?;
        (status.observed_generation == self.metadata.generation)
            .then_some(status.phase)
            .flatten()
    }
}

/// The CRD as YAML, exactly as `taskreset-controller crd` prints it and `deploy/crd.yaml`
/// holds it.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&TaskReset::crd())
}
