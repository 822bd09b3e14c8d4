//! What a reset call came to ([`ResetOutcome`]) and what the controller should do about it
//! ([`classify`] into DESIGN section 3.5's classes).

use std::fmt;

/// The result of one reset call (including the client's own single IAM refresh and retry on
/// a 401). Every text field was sanitised and capped, and holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetOutcome {
    /// 200 with the documented success body (`{"message": ...}`): the reset was done.
    Succeeded {
        /// HTTP status (200).
        http_status: u16,
        /// `message` of the body (`Reset Success`).
        message: String,
        /// `X-Request-Id` of the answer.
        request_id: Option<String>,
    },
    /// Any other HTTP answer: not 2xx, or a 2xx whose body is not the documented success body
    /// (which then says nothing about whether the reset ran).
    HttpError {
        /// HTTP status.
        http_status: u16,
        /// `error_code` (or the SDK's fallbacks; the status when the body has none).
        error_code: String,
        /// `error_msg` (or the SDK's fallbacks; the body's text when it is not JSON).
        error_message: String,
        /// `X-Request-Id` of the answer.
        request_id: Option<String>,
        /// The body is the documented FDI/gateway error body (top-level string `error_code` of
        /// 8-36 characters and string `error_msg`); false for anything else (HTML, empty,
        /// garbage, a proxy's `{code, message}`, nested pairs).
        structured: bool,
    },
    /// Provably not executed: DNS, connect or TLS failure, the IAM token exchange failed or
    /// was unreachable, or the request could not be built.
    NotSent {
        /// What failed.
        reason: String,
    },
    /// Maybe executed: a timeout or a broken connection after the request was sent.
    Ambiguous {
        /// What happened.
        reason: String,
    },
    /// Credentials refused before anything executed (the IAM exchange answered 4xx, ...).
    CredentialsRejected {
        /// HTTP status of the refusal, if there was an answer.
        http_status: Option<u16>,
        /// Error code of the refusal.
        error_code: String,
        /// Error message of the refusal.
        error_message: String,
        /// `X-Request-Id` of the refusal.
        request_id: Option<String>,
    },
}

impl ResetOutcome {
    /// The HTTP status of the answer, if there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Succeeded { http_status, .. } | Self::HttpError { http_status, .. } => {
                Some(*http_status)
            }
            Self::CredentialsRejected { http_status, .. } => *http_status,
            Self::NotSent { .. } | Self::Ambiguous { .. } => None,
        }
    }

    /// The `X-Request-Id` of the answer, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Succeeded { request_id, .. }
            | Self::HttpError { request_id, .. }
            | Self::CredentialsRejected { request_id, .. } => request_id.as_deref(),
            Self::NotSent { .. } | Self::Ambiguous { .. } => None,
        }
    }
}

impl ResetOutcome {
    /// The error code of a refusal, if any (not for a success, a failure to send or an
    /// ambiguous outcome).
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::HttpError { error_code, .. } | Self::CredentialsRejected { error_code, .. } => {
                Some(error_code.as_str()).filter(|c| !c.is_empty())
            }
            Self::Succeeded { .. } | Self::NotSent { .. } | Self::Ambiguous { .. } => None,
        }
    }
}

/// `HTTP {status} {code}: {message}` without saying a thing twice: a code that only repeats
/// the status is left out, an empty message is named as such, and a message that already
/// starts with the status (an HTML title such as `404 Not Found`) follows `HTTP` directly.
fn http_line(f: &mut fmt::Formatter<'_>, status: u16, code: &str, message: &str) -> fmt::Result {
    let status_text = status.to_string();
    let code = Some(code).filter(|c| !c.is_empty() && *c != status_text);
    let message = message.trim();
    match code {
        Some(code) if message.is_empty() => write!(f, "HTTP {status} {code} with an empty message"),
        Some(code) => write!(f, "HTTP {status} {code}: {message}"),
        None if message.is_empty() => write!(f, "HTTP {status} with an empty body"),
        None if message.starts_with(&format!("{status_text} ")) => write!(f, "HTTP {message}"),
        None => write!(f, "HTTP {status}: {message}"),
    }
}

impl fmt::Display for ResetOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Succeeded {
                http_status,
                message,
                ..
            } => write!(f, "HTTP {http_status}: {message}"),
            Self::HttpError {
                http_status,
                error_code,
                error_message,
                ..
            } => http_line(f, *http_status, error_code, error_message),
            Self::NotSent { reason } => write!(f, "not sent: {reason}"),
            Self::Ambiguous { reason } => write!(f, "outcome unknown: {reason}"),
            Self::CredentialsRejected {
                http_status,
                error_code,
                error_message,
                ..
            } => {
                f.write_str("credentials rejected: ")?;
                match http_status {
                    // The message names the status already ("IAM refused the credentials
                    // (HTTP 401)"): only the code is added.
                    Some(status) if error_message.contains(&format!("HTTP {status}")) => {
                        if error_code.is_empty() || *error_code == status.to_string() {
                            f.write_str(error_message)
                        } else {
                            write!(f, "{error_code}: {error_message}")
                        }
                    }
                    Some(status) => http_line(f, *status, error_code, error_message),
                    None if error_code.is_empty() => f.write_str(error_message),
                    None => write!(f, "{error_code}: {error_message}"),
                }
            }
        }
    }
}

/// What the controller does with an outcome (DESIGN section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeClass {
    /// Done: phase `Succeeded`.
    Succeeded,
    /// Refused by the service, terminal: phase `Failed`.
    Rejected,
    /// Provably not executed: retry with backoff.
    Retryable,
    /// Maybe executed: never call again blindly (unless `retryPolicy: Always`).
    Ambiguous,
    /// Credentials refused (nothing executed): wait for a corrected Secret, long backoff.
    CredentialsRejected,
}

impl OutcomeClass {
    /// Every class, in the order of the docs.
    pub const ALL: [Self; 5] = [
        Self::Succeeded,
        Self::Rejected,
        Self::Retryable,
        Self::Ambiguous,
        Self::CredentialsRejected,
    ];

    /// The one stable name of the class, in snake_case as Prometheus label values are: the
    /// `outcome` label of `taskreset_resets_total` (docs/operating.md and the alert rules name
    /// these values), the `outcome` field of the logs and the `reset` command's result.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Rejected => "rejected",
            Self::Retryable => "retryable",
            Self::Ambiguous => "ambiguous",
            Self::CredentialsRejected => "credentials_rejected",
        }
    }
}

impl fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Map an outcome to its class. Only the documented answers prove anything: the success body
/// for 200 and the FDI error body (`error_code` `FDI.*`, `error_msg`, top level) for a 5xx
/// that did not execute; anything else after sending is ambiguous.
///
/// | outcome | class |
/// | --- | --- |
/// | 200 with the documented success body (`Succeeded`) | `Succeeded` |
/// | any other 2xx answer (`HttpError` with a 2xx status: an `error_code` body, HTML, empty) | `Ambiguous` |
/// | 401 (after the client's own single IAM refresh and retry) | `CredentialsRejected` |
/// | 429 | `Retryable` (the gateway throttled; nothing executed) |
/// | 504 | `Ambiguous` (the gateway gave up waiting for the service, which may have executed) |
/// | other 5xx with the documented FDI error body (`structured`, code `FDI.*`) | `Retryable` |
/// | other 5xx with anything else (a proxy's `{code, message}`, HTML, empty, garbage) | `Ambiguous` |
/// | any other status (3xx, 4xx) | `Rejected` |
/// | not sent | `Retryable` |
/// | ambiguous | `Ambiguous` |
/// | credentials rejected | `CredentialsRejected` |
pub fn classify(outcome: &ResetOutcome) -> OutcomeClass {
    match outcome {
        ResetOutcome::Succeeded { .. } => OutcomeClass::Succeeded,
        ResetOutcome::HttpError {
            http_status,
            structured,
            error_code,
            ..
        } => match *http_status {
            200..=299 => OutcomeClass::Ambiguous,
            401 => OutcomeClass::CredentialsRejected,
            429 => OutcomeClass::Retryable,
            504 => OutcomeClass::Ambiguous,
            500..=599 if *structured && error_code.starts_with("FDI.") => OutcomeClass::Retryable,
            500..=599 => OutcomeClass::Ambiguous,
            _ => OutcomeClass::Rejected,
        },
        ResetOutcome::NotSent { .. } => OutcomeClass::Retryable,
        ResetOutcome::Ambiguous { .. } => OutcomeClass::Ambiguous,
        ResetOutcome::CredentialsRejected { .. } => OutcomeClass::CredentialsRejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, structured: bool) -> ResetOutcome {
        ResetOutcome::HttpError {
            http_status: status,
            error_code: "FDI.3000".into(),
            error_message: "m".into(),
            request_id: None,
            structured,
        }
    }

    #[test]
    fn every_row_of_the_table() {
        use OutcomeClass::*;
        let ok = ResetOutcome::Succeeded {
            http_status: 200,
            message: "Reset Success".into(),
            request_id: None,
        };
        assert_eq!(classify(&ok), Succeeded);
        for (outcome, class) in [
            (http(400, true), Rejected),
            (http(403, true), Rejected),
            (http(404, true), Rejected),
            (http(404, false), Rejected),
            (http(302, false), Rejected),
            (http(401, true), CredentialsRejected),
            (http(401, false), CredentialsRejected),
            (http(429, true), Retryable),
            (http(429, false), Retryable),
            (http(500, true), Retryable),
            (http(503, true), Retryable),
            (http(500, false), Ambiguous),
            (http(502, false), Ambiguous),
            (http(504, true), Ambiguous),
            (http(200, true), Ambiguous),
            (http(200, false), Ambiguous),
            (http(204, false), Ambiguous),
            (
                ResetOutcome::HttpError {
                    http_status: 500,
                    error_code: "APIGW.0201".into(),
                    error_message: "backend unavailable".into(),
                    request_id: None,
                    structured: true,
                },
                Ambiguous,
            ),
            (
                ResetOutcome::NotSent {
                    reason: "refused".into(),
                },
                Retryable,
            ),
            (
                ResetOutcome::Ambiguous {
                    reason: "timeout".into(),
                },
                Ambiguous,
            ),
            (
                ResetOutcome::CredentialsRejected {
                    http_status: Some(401),
                    error_code: "401".into(),
                    error_message: "bad".into(),
                    request_id: None,
                },
                CredentialsRejected,
            ),
        ] {
            assert_eq!(classify(&outcome), class, "{outcome:?}");
        }
    }

    /// Issue 15.10: what each outcome reads as in a status, an event and the CLI; nothing
    /// said twice, nothing empty left dangling.
    #[test]
    fn every_outcome_reads_as_one_clean_message() {
        let http =
            |status: u16, code: &str, message: &str, structured: bool| ResetOutcome::HttpError {
                http_status: status,
                error_code: code.into(),
                error_message: message.into(),
                request_id: Some("r-1".into()),
                structured,
            };
        let rejected =
            |status: Option<u16>, code: &str, message: &str| ResetOutcome::CredentialsRejected {
                http_status: status,
                error_code: code.into(),
                error_message: message.into(),
                request_id: None,
            };
        let cases = [
            (
                ResetOutcome::Succeeded {
                    http_status: 200,
                    message: "Reset Success".into(),
                    request_id: None,
                },
                "HTTP 200: Reset Success",
            ),
            (
                http(400, "FDI.3150", "The task list is empty.", true),
                "HTTP 400 FDI.3150: The task list is empty.",
            ),
            (http(500, "500", "", false), "HTTP 500 with an empty body"),
            (http(404, "404", "404 Error", false), "HTTP 404 Error"),
            (
                http(502, "502", "502 Bad Gateway", false),
                "HTTP 502 Bad Gateway",
            ),
            (
                http(503, "503", "upstream connect error", false),
                "HTTP 503: upstream connect error",
            ),
            (
                http(500, "FDI.3000", "", true),
                "HTTP 500 FDI.3000 with an empty message",
            ),
            (
                http(401, "401", "the gateway refused the credentials", false),
                "HTTP 401: the gateway refused the credentials",
            ),
            (
                http(
                    401,
                    "APIGW.0301",
                    "the gateway refused the credentials (a bad or expired token)",
                    true,
                ),
                "HTTP 401 APIGW.0301: the gateway refused the credentials (a bad or expired token)",
            ),
            (
                rejected(
                    Some(401),
                    "IamRefused",
                    "IAM refused the credentials (HTTP 401)",
                ),
                "credentials rejected: IamRefused: IAM refused the credentials (HTTP 401)",
            ),
            (
                rejected(Some(401), "401", "IAM token exchange refused"),
                "credentials rejected: HTTP 401: IAM token exchange refused",
            ),
            (
                rejected(
                    None,
                    "InvalidToken",
                    "the token holds a line break; fix the Secret (no request was made)",
                ),
                "credentials rejected: InvalidToken: the token holds a line break; fix the Secret (no request was made)",
            ),
            (
                ResetOutcome::NotSent {
                    reason: "could not connect: Connection refused".into(),
                },
                "not sent: could not connect: Connection refused",
            ),
            (
                ResetOutcome::Ambiguous {
                    reason: "connection closed before the answer".into(),
                },
                "outcome unknown: connection closed before the answer",
            ),
        ];
        for (outcome, message) in cases {
            assert_eq!(outcome.to_string(), message, "{outcome:?}");
        }
    }

    #[test]
    fn display_names_status_code_and_message() {
        assert_eq!(http(400, true).to_string(), "HTTP 400 FDI.3000: m");
        assert_eq!(
            ResetOutcome::NotSent {
                reason: "connection refused".into()
            }
            .to_string(),
            "not sent: connection refused"
        );
    }
}
