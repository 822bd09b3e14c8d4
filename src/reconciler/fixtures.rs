//! Test fixtures of the reconciler's pure core: one object, status and policy builder for the
//! decision and state-machine tests.
#![allow(clippy::expect_used)]

use std::time::Duration;

use jiff::Timestamp;

use super::decision::Policy;
use crate::api::{Phase, TaskReset, TaskResetStatus};
use crate::roma::ResetOutcome;

pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

pub const NOW: &str = "2026-11-29T12:00:00Z";

pub fn now() -> Timestamp {
    ts(NOW)
}

pub fn object(generation: i64, status: Option<TaskResetStatus>) -> TaskReset {
    let mut tr = TaskReset::new("orders-replay", crate::api::reference_spec());
    tr.metadata.namespace = Some("data".into());
    tr.metadata.generation = Some(generation);
    tr.metadata.resource_version = Some("7".into());
    tr.metadata.uid = Some("uid-1".into());
    tr.status = status;
    tr
}

pub fn status(generation: i64, phase: Phase) -> TaskResetStatus {
    TaskResetStatus {
        observed_generation: Some(generation),
        phase: Some(phase),
        attempts: Some(1),
        ..TaskResetStatus::default()
    }
}

pub fn policy() -> Policy {
    Policy {
        max_attempts: 3,
        claim_expiry: Duration::from_secs(90),
        retry_base: Duration::from_secs(2),
        retry_max: Duration::from_secs(60),
        credentials_retry_min: Duration::from_secs(5),
        credentials_retry_max: Duration::from_secs(300),
        credentials_rejected_retry: Duration::from_secs(120),
    }
}

pub fn ready(status: &TaskResetStatus) -> (&str, &str) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    (c.status.as_str(), c.reason.as_str())
}

pub fn has(status: &TaskResetStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

pub fn http_error(status: u16, code: &str, message: &str, structured: bool) -> ResetOutcome {
    ResetOutcome::HttpError {
        http_status: status,
        error_code: code.into(),
        error_message: message.into(),
        request_id: Some("req-1".into()),
        structured,
    }
}
