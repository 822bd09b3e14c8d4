//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) derived from a phase and a reason.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::Phase;

/// Longest condition, status or event message we write, in bytes (the API limits an event's
/// note to 1 kB); longer ones are cut on a char boundary, the `...` mark included.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Why a generation is where it is: the `reason` of the Ready condition and of the event that
/// reports it (one vocabulary; docs/status.md documents every variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The service answered 200.
    ResetSucceeded,
    /// The service rejected the reset (a 4xx other than 401, or a policy that forbids retrying).
    ResetFailed,
    /// A call is in flight.
    Resetting,
    /// An attempt failed without executing; another is scheduled.
    RetryScheduled,
    /// `--max-attempts` attempts failed without executing.
    RetriesExhausted,
    /// The call may or may not have executed (timeout, reset, 5xx without a service error).
    OutcomeUnknown,
    /// The controller holding the call died before recording a result.
    Interrupted,
    /// The spec (or its endpoint) cannot be acted on.
    InvalidSpec,
    /// The credentials Secret is missing or incomplete.
    CredentialsNotFound,
    /// The credentials Secret is ambiguous: it holds keys of more than one credential kind.
    CredentialsInvalid,
    /// The gateway refused the credentials (401).
    CredentialsRejected,
    /// `spec.suspend` is true.
    Suspended,
    /// `spec.notAfter` passed before the generation finished.
    Expired,
    /// The execution ledger shows this run was already executed.
    AlreadyExecuted,
}

impl Reason {
    /// Every reason, in the order docs/status.md lists them.
    pub const ALL: [Self; 14] = [
        Self::ResetSucceeded,
        Self::AlreadyExecuted,
        Self::Resetting,
        Self::RetryScheduled,
        Self::RetriesExhausted,
        Self::ResetFailed,
        Self::OutcomeUnknown,
        Self::Interrupted,
        Self::InvalidSpec,
        Self::CredentialsNotFound,
        Self::CredentialsInvalid,
        Self::CredentialsRejected,
        Self::Suspended,
        Self::Expired,
    ];

    /// The `action` of the event that reports this reason: what the controller did.
    /// `Reset` only where a reset call was made.
    pub fn action(self) -> &'static str {
        match self {
            Self::ResetSucceeded
            | Self::ResetFailed
            | Self::Resetting
            | Self::RetryScheduled
            | Self::RetriesExhausted
            | Self::OutcomeUnknown
            | Self::CredentialsRejected => "Reset",
            Self::Interrupted => "ExpireClaim",
            Self::InvalidSpec | Self::Expired => "Refuse",
            Self::CredentialsNotFound | Self::CredentialsInvalid => "ReadCredentials",
            Self::Suspended => "Suspend",
            Self::AlreadyExecuted => "CheckLedger",
        }
    }

    /// The CamelCase string written to conditions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResetSucceeded => "ResetSucceeded",
            Self::ResetFailed => "ResetFailed",
            Self::Resetting => "Resetting",
            Self::RetryScheduled => "RetryScheduled",
            Self::RetriesExhausted => "RetriesExhausted",
            Self::OutcomeUnknown => "OutcomeUnknown",
            Self::Interrupted => "Interrupted",
            Self::InvalidSpec => "InvalidSpec",
            Self::CredentialsNotFound => "CredentialsNotFound",
            Self::CredentialsInvalid => "CredentialsInvalid",
            Self::CredentialsRejected => "CredentialsRejected",
            Self::Suspended => "Suspended",
            Self::Expired => "Expired",
            Self::AlreadyExecuted => "AlreadyExecuted",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cut `message` to at most [`MAX_MESSAGE_BYTES`] bytes on a char boundary, marking the cut
/// with `...` (counted in the limit).
pub fn trim_message(message: &str) -> String {
    let message = message.trim();
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut cut = MAX_MESSAGE_BYTES - "...".len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &message[..cut])
}

/// The conditions for `phase`/`reason` at `generation`, keeping each condition's
/// `lastTransitionTime` from `previous` unless its status changed.
///
/// Ready is always present: True on success, False when the generation ended otherwise or is
/// suspended, Unknown while work goes on. Reconciling is present (True) while the controller
/// works; Stalled is present (True) when only a human can move the generation on.
pub fn conditions(
    previous: &[Condition],
    generation: i64,
    phase: Phase,
    reason: Reason,
    message: &str,
    now: &Time,
) -> Vec<Condition> {
    let message = trim_message(message);
    let ready = match phase {
        Phase::Succeeded => "True",
        Phase::Failed | Phase::Unknown | Phase::Suspended => "False",
        Phase::Pending | Phase::Resetting | Phase::Retrying => "Unknown",
    };
    let working = matches!(phase, Phase::Pending | Phase::Resetting | Phase::Retrying);
    let stalled = matches!(phase, Phase::Failed | Phase::Unknown);
    let make = |type_: &str, status: &str| {
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.as_str().to_owned(),
            message: message.clone(),
            observed_generation: Some(generation),
            last_transition_time,
        }
    };
    let mut out = vec![make("Ready", ready)];
    if working {
        out.push(make("Reconciling", "True"));
    }
    if stalled {
        out.push(make("Stalled", "True"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().expect("timestamp"))
    }

    fn find<'a>(conds: &'a [Condition], t: &str) -> Option<&'a Condition> {
        conds.iter().find(|c| c.type_ == t)
    }

    #[test]
    fn each_phase_maps_to_kstatus_conditions() {
        let now = time("2026-11-29T10:00:00Z");
        let cases = [
            (
                Phase::Succeeded,
                Reason::ResetSucceeded,
                "True",
                false,
                false,
            ),
            (Phase::Failed, Reason::ResetFailed, "False", false, true),
            (Phase::Unknown, Reason::OutcomeUnknown, "False", false, true),
            (Phase::Suspended, Reason::Suspended, "False", false, false),
            (
                Phase::Pending,
                Reason::CredentialsNotFound,
                "Unknown",
                true,
                false,
            ),
            (Phase::Resetting, Reason::Resetting, "Unknown", true, false),
            (
                Phase::Retrying,
                Reason::RetryScheduled,
                "Unknown",
                true,
                false,
            ),
        ];
        for (phase, reason, ready, reconciling, stalled) in cases {
            let conds = conditions(&[], 3, phase, reason, "m", &now);
            let r = find(&conds, "Ready").expect("Ready always present");
            assert_eq!(r.status, ready, "{phase}");
            assert_eq!(r.reason, reason.as_str());
            assert_eq!(r.observed_generation, Some(3));
            assert_eq!(
                find(&conds, "Reconciling").is_some(),
                reconciling,
                "{phase}"
            );
            assert_eq!(find(&conds, "Stalled").is_some(), stalled, "{phase}");
            assert!(conds.iter().all(|c| c.observed_generation == Some(3)));
        }
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let t0 = time("2026-11-29T10:00:00Z");
        let t1 = time("2026-11-29T10:05:00Z");
        let pending = conditions(
            &[],
            1,
            Phase::Pending,
            Reason::CredentialsNotFound,
            "a",
            &t0,
        );
        let resetting = conditions(&pending, 1, Phase::Resetting, Reason::Resetting, "b", &t1);
        let ready = find(&resetting, "Ready").expect("Ready");
        assert_eq!(ready.last_transition_time, t0, "Ready stayed Unknown");
        assert_eq!(ready.reason, "Resetting");
        let done = conditions(
            &resetting,
            1,
            Phase::Succeeded,
            Reason::ResetSucceeded,
            "ok",
            &t1,
        );
        assert_eq!(
            find(&done, "Ready").expect("Ready").last_transition_time,
            t1
        );
    }

    /// Issue 15.6: the API limits an event note to 1,024 bytes, not characters.
    #[test]
    fn long_messages_are_trimmed_to_the_byte_limit_on_a_char_boundary() {
        for long in [
            "é".repeat(MAX_MESSAGE_BYTES),
            "任务".repeat(MAX_MESSAGE_BYTES),
            format!("a{}", "😀".repeat(600)),
            "x".repeat(MAX_MESSAGE_BYTES + 1),
        ] {
            let trimmed = trim_message(&long);
            assert!(
                trimmed.len() <= MAX_MESSAGE_BYTES,
                "{} bytes",
                trimmed.len()
            );
            assert!(
                trimmed.len() > MAX_MESSAGE_BYTES - 8,
                "{} bytes",
                trimmed.len()
            );
            assert!(trimmed.ends_with("..."));
            assert!(long.starts_with(trimmed.trim_end_matches("...")));
        }
        let exact = "é".repeat(MAX_MESSAGE_BYTES / 2);
        assert_eq!(trim_message(&exact), exact);
        assert_eq!(trim_message("  short \n"), "short");
    }

    /// Issue 15.6: every reason the controller can write is documented in docs/status.md.
    #[test]
    fn every_reason_is_documented() {
        let docs = include_str!("../../docs/status.md");
        for reason in Reason::ALL {
            let row = format!("| `{reason}` |");
            assert!(
                docs.contains(&row),
                "docs/status.md has no row for {reason}"
            );
        }
        let distinct: std::collections::HashSet<_> = Reason::ALL.iter().collect();
        assert_eq!(distinct.len(), Reason::ALL.len());
        // `ALL` is complete: a new variant fails to compile here until it is listed.
        for reason in Reason::ALL {
            match reason {
                Reason::ResetSucceeded
                | Reason::ResetFailed
                | Reason::Resetting
                | Reason::RetryScheduled
                | Reason::RetriesExhausted
                | Reason::OutcomeUnknown
                | Reason::Interrupted
                | Reason::InvalidSpec
                | Reason::CredentialsNotFound
                | Reason::CredentialsInvalid
                | Reason::CredentialsRejected
                | Reason::Suspended
                | Reason::Expired
                | Reason::AlreadyExecuted => {}
            }
        }
    }

    /// Issue 13.2: every phase is what the status serialises, and docs/status.md has a row
    /// for it in its phase table and lists it under `phase`.
    #[test]
    fn every_phase_is_documented_as_written() {
        let docs = include_str!("../../docs/status.md");
        let field = docs
            .lines()
            .find(|l| l.starts_with("| `phase` |"))
            .unwrap_or_default();
        for phase in crate::api::Phase::ALL {
            let written = serde_json::to_value(phase).unwrap_or_default();
            assert_eq!(written, phase.as_str(), "{phase:?}");
            assert!(docs.contains(&format!("| `{phase}` |")), "no row for {phase}");
            assert!(field.contains(&format!("`{phase}`")), "`phase` does not list {phase}");
            match phase {
                crate::api::Phase::Pending
                | crate::api::Phase::Resetting
                | crate::api::Phase::Retrying
                | crate::api::Phase::Succeeded
                | crate::api::Phase::Failed
                | crate::api::Phase::Unknown
                | crate::api::Phase::Suspended => {}
            }
        }
    }

    /// Issue 15.6: `action: Reset` only where a reset call was made.
    #[test]
    fn actions_say_what_the_controller_did() {
        for reason in [
            Reason::Suspended,
            Reason::CredentialsNotFound,
            Reason::CredentialsInvalid,
            Reason::InvalidSpec,
            Reason::Expired,
            Reason::AlreadyExecuted,
            Reason::Interrupted,
        ] {
            assert_ne!(reason.action(), "Reset", "{reason}");
        }
        assert_eq!(Reason::RetryScheduled.action(), "Reset");
    }
}
