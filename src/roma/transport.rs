//! What went wrong on the wire, in words, and reading a body with a size cap: shared by the
//! reset call and the IAM token exchange.

use super::outcome::ResetOutcome;
use super::response::sanitize;

/// A failed send: never connected (not sent) or broken after sending (ambiguous).
pub(crate) fn transport_outcome(err: &reqwest::Error) -> ResetOutcome {
    let reason = describe_error(err);
    if err.is_builder() || err.is_connect() {
        ResetOutcome::NotSent { reason }
    } else {
        // Timeouts, resets and truncated answers after the request went out.
        ResetOutcome::Ambiguous { reason }
    }
}

/// An error and its causes on one line, sanitised, without the URL: reqwest's own line
/// ("error sending request for url (...)") quotes the whole request URL, which the spec
/// names already; only what went wrong is kept.
pub(crate) fn describe_error(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    if err.is_timeout() {
        parts.push("timed out".to_owned());
    } else if err.is_connect() {
        parts.push("could not connect".to_owned());
    } else if err.is_body() || err.is_decode() {
        parts.push("the answer broke off".to_owned());
    } else if err.is_builder() {
        parts.push("the request could not be built".to_owned());
    }
    let mut current: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = current {
        let text = e.to_string();
        let text = if text.contains("connection closed before message completed") {
            "connection closed before the answer".to_owned()
        } else {
            text
        };
        if !text.contains("://") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        parts.push("the request failed".to_owned());
    }
    sanitize(&parts.join(": "), 512)
}

/// Read at most `cap` bytes of the body; the error, if reading stopped early.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> (Vec<u8>, Option<String>) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap.saturating_sub(bytes.len());
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() >= cap {
                    return (bytes, None);
                }
            }
            Ok(None) => return (bytes, None),
            Err(err) => return (bytes, Some(describe_error(&err))),
        }
    }
}
