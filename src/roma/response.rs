//! Reading a response body the way the official SDK does, and making anything copied out of
//! it safe to show (status, events, logs).

use serde_json::{Map, Value};

/// Longest error code kept (ROMA's are 8-36 characters).
pub const MAX_CODE_CHARS: usize = 64;
/// Longest message kept.
pub const MAX_MESSAGE_CHARS: usize = 256;
/// Longest request ID kept.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// An error answer, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// `error_code` (or a fallback); the HTTP status when the body has none.
    pub code: String,
    /// `error_msg` (or a fallback); the body's text when it is not JSON.
    pub message: String,
    /// Whether the body was a JSON error of the service or gateway (a code/message pair).
    pub structured: bool,
}

/// Parse an error body as `huaweicloudsdkcore`'s `DefaultExceptionHandler` does: the pairs
/// `error_code`/`error_msg`, then `errorCode`/`errorMsg`, then `code`/`message`, also inside a
/// nested object (IAM's `{"error": {"code": 401, "message": ...}}`); otherwise code = the
/// HTTP status and message = the body's text. Code and message are sanitised and capped.
pub fn parse_error_body(status: u16, body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&text)
        && let Some((code, message)) = find_error_pair(&object)
    {
        let code = sanitize(&code, MAX_CODE_CHARS);
        return ErrorBody {
            code: if code.is_empty() {
                status.to_string()
            } else {
                code
            },
            message: sanitize(&message, MAX_MESSAGE_CHARS),
            structured: true,
        };
    }
    ErrorBody {
        code: status.to_string(),
        message: sanitize(&text, MAX_MESSAGE_CHARS),
        structured: false,
    }
}

/// The `message` of a success body (`{"message": "Reset Success"}`), else the body's text,
/// sanitised and capped.
pub fn parse_success_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&text)
        && let Some(message) = object.get("message").and_then(scalar)
    {
        return sanitize(&message, MAX_MESSAGE_CHARS);
    }
    sanitize(&text, MAX_MESSAGE_CHARS)
}

fn find_error_pair(object: &Map<String, Value>) -> Option<(String, String)> {
    for (code_key, message_key) in [
        ("error_code", "error_msg"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ] {
        if let (Some(code), Some(message)) = (object.get(code_key), object.get(message_key)) {
            return Some((
                scalar(code).unwrap_or_default(),
                scalar(message).unwrap_or_default(),
            ));
        }
    }
    object.values().find_map(|value| match value {
        Value::Object(inner) => find_error_pair(inner),
        _ => None,
    })
}

/// A JSON scalar as text (IAM's codes are numbers); objects and arrays give `None`.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Make text from a remote party safe to show: HTML tags removed, control characters and
/// runs of whitespace turned into single spaces, trimmed, at most `max_chars` characters
/// (cut text ends with `...`).
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut in_tag = false;
    let mut pending_space = false;
    let mut kept = 0usize;
    let mut truncated = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                pending_space = true;
                continue;
            }
            '>' if in_tag => {
                in_tag = false;
                continue;
            }
            _ if in_tag => continue,
            c if c.is_whitespace() || c.is_control() || is_invisible(c) => {
                pending_space = true;
                continue;
            }
            _ => {}
        }
        if kept >= max_chars {
            truncated = true;
            break;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
            kept += 1;
        }
        pending_space = false;
        out.push(c);
        kept += 1;
    }
    if truncated {
        let cut: String = out.chars().take(max_chars.saturating_sub(3)).collect();
        return format!("{}...", cut.trim_end());
    }
    out
}

/// Zero-width and direction-changing characters that could hide or reorder text.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// Replace every occurrence of a secret in `text` with `[REDACTED]`. Remote answers cannot
/// know our secrets, but a misbehaving proxy could echo a request header: never copy one out.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        // Very short values would redact ordinary words; real secrets are long.
        if secret.len() >= 4 && out.contains(secret) {
            out = out.replace(secret, "[REDACTED]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_keys_are_tried_in_the_sdk_order() {
        let parsed = parse_error_body(
            400,
            br#"{"error_code":"FDI.3150","error_msg":"The task list is empty.","code":"X","message":"Y"}"#,
        );
        assert_eq!(
            parsed,
            ErrorBody {
                code: "FDI.3150".into(),
                message: "The task list is empty.".into(),
                structured: true
            }
        );
        let camel = parse_error_body(500, br#"{"errorCode":"E1","errorMsg":"m1","code":"C"}"#);
        assert_eq!((camel.code.as_str(), camel.message.as_str()), ("E1", "m1"));
        let plain = parse_error_body(403, br#"{"code":"C2","message":"m2"}"#);
        assert_eq!((plain.code.as_str(), plain.message.as_str()), ("C2", "m2"));
        let iam = parse_error_body(
            401,
            br#"{"error":{"code":401,"message":"The username or password is wrong.","title":"Unauthorized"}}"#,
        );
        assert_eq!(iam.code, "401");
        assert_eq!(iam.message, "The username or password is wrong.");
        assert!(iam.structured);
    }

    #[test]
    fn non_json_bodies_give_the_status_and_clean_text() {
        let html = parse_error_body(
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad\tGateway</h1></body></html>",
        );
        assert_eq!(html.code, "502");
        assert_eq!(html.message, "502 Bad Gateway Bad Gateway");
        assert!(!html.structured);
        let empty = parse_error_body(500, b"");
        assert_eq!(
            (
                empty.code.as_str(),
                empty.message.as_str(),
                empty.structured
            ),
            ("500", "", false)
        );
        let garbage = parse_error_body(500, b"\x00\x1b[31mboom\xff\xfe\r\n");
        assert_eq!(garbage.message, "[31mboom\u{fffd}\u{fffd}");
        let other_json = parse_error_body(503, br#"{"status":"down"}"#);
        assert!(!other_json.structured);
        let array = parse_error_body(500, b"[1,2]");
        assert!(!array.structured);
    }

    #[test]
    fn long_text_is_capped() {
        let long = "word ".repeat(1000);
        let parsed = parse_error_body(500, long.as_bytes());
        assert!(parsed.message.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(parsed.message.ends_with("..."));
        let json = format!(r#"{{"error_code":"{}","error_msg":"m"}}"#, "C".repeat(500));
        assert_eq!(
            parse_error_body(400, json.as_bytes()).code.chars().count(),
            MAX_CODE_CHARS
        );
        assert_eq!(sanitize("é".repeat(10).as_str(), 5), "éé...");
    }

    #[test]
    fn success_messages_are_read() {
        assert_eq!(
            parse_success_message(br#"{"message": "Reset Success"}"#),
            "Reset Success"
        );
        assert_eq!(parse_success_message(b""), "");
        assert_eq!(parse_success_message(b"done\n"), "done");
    }

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(
            scrub("echo: token=abcd1234 and abcd1234", &["abcd1234", "x"]),
            "echo: token=[REDACTED] and [REDACTED]"
        );
    }
}
