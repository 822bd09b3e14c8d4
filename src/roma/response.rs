//! Reading a response body the way the official SDK does, and making anything copied out of
//! it safe to show (status, events, logs).

use serde_json::Value;

/// Longest error code kept (ROMA's are 8-36 characters).
pub const MAX_CODE_CHARS: usize = 64;
/// Longest message kept.
pub const MAX_MESSAGE_CHARS: usize = 256;
/// Longest request ID kept.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Shortest and longest `error_code` of the documented FDI and gateway bodies.
const DOCUMENTED_CODE_CHARS: std::ops::RangeInclusive<usize> = 8..=36;

/// An error answer, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// `error_code`; the HTTP status when the body is not the documented one.
    pub code: String,
    /// `error_msg`; the body's text when the body is not the documented one.
    pub message: String,
    /// Whether the body is the documented FDI/gateway error body: a JSON object whose
    /// top-level `error_code` is a string of 8-36 characters and whose top-level `error_msg`
    /// is a string (the gateway adds `request_id`). Look-alikes (`code`/`message`,
    /// `errorCode`/`errorMsg`, nested objects, numbers) are not.
    pub structured: bool,
}

/// The documented error body's `error_code` and `error_msg`, as sent (nothing shortened).
fn documented_error(text: &str) -> Option<(String, String)> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let code = object.get("error_code")?.as_str()?;
    let message = object.get("error_msg")?.as_str()?;
    let plausible = DOCUMENTED_CODE_CHARS.contains(&code.chars().count())
        && code.chars().all(|c| c.is_ascii_graphic());
    plausible.then(|| (code.to_owned(), message.to_owned()))
}

/// Parse an error answer of ROMA or its gateway. Only the documented body (see
/// [`ErrorBody::structured`]) gives code and message; anything else gives code = the HTTP
/// status and message = the body's text. Secrets are removed by `redactor` from the raw text
/// and from the decoded fields before anything is shortened, then the text is sanitised and
/// capped.
pub fn parse_error_body(status: u16, body: &[u8], redactor: &Redactor) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    if let Some((code, message)) = documented_error(&text) {
        return ErrorBody {
            code: redactor.show(&code, MAX_CODE_CHARS),
            message: redactor.show(&message, MAX_MESSAGE_CHARS),
            structured: true,
        };
    }
    ErrorBody {
        code: status.to_string(),
        message: redactor.show(html_title(&text).unwrap_or(&text), MAX_MESSAGE_CHARS),
        structured: false,
    }
}

/// The `<title>` of an HTML error page (`404 Not Found`): its headings and footer only
/// repeat it (`404 Not Found 404 Not Found nginx`).
fn html_title(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    if !lower.trim_start().starts_with('<') {
        return None;
    }
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title = text.get(start..end)?.trim();
    (!title.is_empty()).then_some(title)
}

/// The `message` of the documented success body (`{"message": "Reset Success"}`): a JSON
/// object with a string `message` and neither `error_code` nor `error_msg`. `None` for
/// anything else (which, after sending, says nothing about whether the reset ran).
pub fn parse_success_message(body: &[u8], redactor: &Redactor) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&text) else {
        return None;
    };
    if object.contains_key("error_code") || object.contains_key("error_msg") {
        return None;
    }
    let message = object.get("message")?.as_str()?;
    Some(redactor.show(message, MAX_MESSAGE_CHARS))
}

/// Whether `code` looks like a documented gateway or service code (`APIGW.0301`,
/// `FDI.3150`): letters, a dot, four digits. Such a code carries no free text.
pub fn is_documented_code(code: &str) -> bool {
    let Some((prefix, number)) = code.split_once('.') else {
        return false;
    };
    (2..=16).contains(&prefix.len())
        && prefix.bytes().all(|c| c.is_ascii_uppercase())
        && number.len() == 4
        && number.bytes().all(|c| c.is_ascii_digit())
}

/// Make text from a remote party safe to show: HTML tags removed, control characters and
/// runs of whitespace turned into single spaces, trimmed, at most `max_chars` characters
/// (cut text ends with `...`). It does not remove secrets: use [`Redactor::show`] for
/// anything that may quote one.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
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

/// A URL as shown in messages: without user information, sanitised.
pub(crate) fn shown_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    sanitize(shown.as_str(), 256)
}

/// Zero-width and direction-changing characters that could hide or reorder text.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// What replaces a whole text that still shows a secret in a form that could not be cut out
/// (an unusual escape, a case change, whitespace inside it).
pub const WITHHELD: &str = "[REDACTED: the answer quoted a credential]";

/// Secrets shorter than this are not searched for (they would redact ordinary words).
const MIN_SECRET_CHARS: usize = 4;

/// Decoded views are searched only for secrets at least this long (folded).
const MIN_FOLDED_CHARS: usize = 6;

/// A body cut at the read cap may end with the first characters of a secret: at least this
/// many are cut off.
const MIN_TAIL_CHARS: usize = 8;

/// Removes secrets from text copied out of an answer. Remote parties cannot know our secrets,
/// but a misbehaving proxy or server can echo a request (headers, body) in its answer, raw or
/// escaped. Every secret is replaced with [`REDACTED`] in its raw form and in its JSON-escaped
/// and URL-encoded forms; then the text is decoded (HTML entities, JSON escapes,
/// percent-encoding, whitespace and case folded) and if a secret is still there, the whole
/// text is replaced with [`WITHHELD`]. Runs on the raw text, before any shortening or
/// whitespace collapsing.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<Known>,
}

#[derive(Clone)]
struct Known {
    /// The raw value and its escaped forms, longest first.
    forms: Vec<String>,
    /// Lower case, without whitespace.
    folded: String,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for these secret values.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut redactor = Self::default();
        for secret in secrets {
            redactor.add(secret);
        }
        redactor
    }

    /// This redactor plus one more secret.
    pub fn with(&self, secret: &str) -> Self {
        let mut more = self.clone();
        more.add(secret);
        more
    }

    fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        let mut forms = escaped_forms(secret);
        forms.retain(|f| f.chars().count() >= MIN_SECRET_CHARS);
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        self.secrets.push(Known {
            forms,
            folded: fold(secret),
        });
    }

    /// `text` without any secret (see [`Redactor`]); not shortened.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            for form in &secret.forms {
                if out.contains(form.as_str()) {
                    out = out.replace(form.as_str(), REDACTED);
                }
            }
        }
        if self.still_visible(&out) {
            return WITHHELD.to_owned();
        }
        out
    }

    /// `text` without secrets, then sanitised and capped to `max_chars`
    /// ([`sanitize`]), and checked once more.
    pub fn show(&self, text: &str, max_chars: usize) -> String {
        let shown = sanitize(&self.scrub(text), max_chars);
        if self.still_visible(&shown) {
            return WITHHELD.to_owned();
        }
        shown
    }

    /// A body cut at the read cap: if it ends with the first characters (at least 8) of a
    /// secret, in any of its forms, they are replaced.
    pub fn scrub_cut_tail(&self, text: &str) -> String {
        for secret in &self.secrets {
            for form in &secret.forms {
                if let Some(at) = cut_prefix_at(text, form) {
                    return format!("{}{REDACTED}", &text[..at]);
                }
            }
        }
        text.to_owned()
    }

    fn still_visible(&self, text: &str) -> bool {
        let candidates: Vec<&Known> = self
            .secrets
            .iter()
            .filter(|s| s.folded.chars().count() >= MIN_FOLDED_CHARS)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let decoders: [fn(&str) -> String; 4] = [
            html_unescape,
            json_unescape,
            percent_decode,
            percent_decode_plus,
        ];
        let mut views = vec![text.to_owned()];
        for first in decoders {
            let once = first(text);
            for second in decoders {
                views.push(second(&once));
            }
            views.push(once);
        }
        views.iter().any(|view| {
            let folded = fold(view);
            candidates.iter().any(|s| folded.contains(&s.folded))
        })
    }
}

/// The raw value, its JSON-escaped forms (standard, `\/`, ASCII-only, doubly escaped) and its
/// URL-encoded forms (every non-alphanumeric byte, the URI-component set, form encoding; hex
/// in upper and lower case).
fn escaped_forms(secret: &str) -> Vec<String> {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    let json = json_escape(secret);
    let ascii: String = json
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect();
    let mut forms = vec![
        secret.to_owned(),
        json.clone(),
        json.replace('/', "\\/"),
        ascii,
        json_escape(&json),
    ];
    for encoded in [
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(secret, COMPONENT).to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
    ] {
        forms.push(lower_hex(&encoded));
        forms.push(encoded);
    }
    forms
}

/// The text of a JSON string literal holding `text`, without the quotes.
fn json_escape(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned()
}

/// `%2F` -> `%2f` for every percent escape.
fn lower_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut left = 0usize;
    for c in text.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lower case, without whitespace, control or invisible characters.
fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !(c.is_whitespace() || c.is_control() || is_invisible(*c)))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where `text` starts ending with the first characters (at least [`MIN_TAIL_CHARS`]) of
/// `form`, if it does.
fn cut_prefix_at(text: &str, form: &str) -> Option<usize> {
    let head: String = form.chars().take(MIN_TAIL_CHARS).collect();
    if head.chars().count() < MIN_TAIL_CHARS {
        return None;
    }
    let window_start = text.len().saturating_sub(form.len());
    let mut start = window_start;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..]
        .match_indices(head.as_str())
        .map(|(i, _)| start + i)
        .find(|&at| form.starts_with(&text[at..]))
}

fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity.strip_prefix('#').and_then(|n| {
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => n.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn json_unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16) {
                    Ok(unit @ 0xd800..=0xdbff) => pending_high = Some(unit),
                    Ok(unit @ 0xdc00..=0xdfff) => {
                        if let Some(high) = pending_high.take() {
                            let code = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
                            out.extend(char::from_u32(code));
                        }
                    }
                    Ok(unit) => out.extend(char::from_u32(unit)),
                    Err(_) => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn percent_decode_plus(text: &str) -> String {
    percent_decode(&text.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Redactor {
        Redactor::default()
    }

    #[test]
    fn only_the_documented_body_is_structured() {
        let parsed = parse_error_body(
            400,
            br#"{"error_code":"FDI.3150","error_msg":"The task list is empty.","code":"X","message":"Y"}"#,
            &none(),
        );
        assert_eq!(
            parsed,
            ErrorBody {
                code: "FDI.3150".into(),
                message: "The task list is empty.".into(),
                structured: true
            }
        );
        let gateway = parse_error_body(
            429,
            br#"{"error_code":"APIGW.0308","error_msg":"throttled","request_id":"r"}"#,
            &none(),
        );
        assert!(gateway.structured);
        // The SDK's fallbacks and nested pairs are look-alikes here: code = status, message =
        // the body's text.
        for body in [
            &br#"{"errorCode":"SVC.00001","errorMsg":"m1"}"#[..],
            br#"{"code":"C2","message":"m2"}"#,
            br#"{"error":{"code":401,"message":"The username or password is wrong."}}"#,
            br#"{"data":{"error_code":"FDI.3000","error_msg":"nested"}}"#,
            br#"{"error_code":500,"error_msg":"number"}"#,
            br#"{"error_code":"E","error_msg":"short code"}"#,
            br#"{"error_code":"FDI.3000"}"#,
        ] {
            let parsed = parse_error_body(500, body, &none());
            assert!(!parsed.structured, "{}", String::from_utf8_lossy(body));
            assert_eq!(parsed.code, "500");
        }
    }

    #[test]
    fn non_json_bodies_give_the_status_and_clean_text() {
        let html = parse_error_body(
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad\tGateway</h1></body></html>",
            &none(),
        );
        assert_eq!(html.code, "502");
        assert_eq!(html.message, "502 Bad Gateway");
        assert!(!html.structured);
        let empty = parse_error_body(500, b"", &none());
        assert_eq!(
            (
                empty.code.as_str(),
                empty.message.as_str(),
                empty.structured
            ),
            ("500", "", false)
        );
        let garbage = parse_error_body(500, b"\x00\x1b[31mboom\xff\xfe\r\n", &none());
        assert_eq!(garbage.message, "[31mboom\u{fffd}\u{fffd}");
        assert!(!parse_error_body(503, br#"{"status":"down"}"#, &none()).structured);
        assert!(!parse_error_body(500, b"[1,2]", &none()).structured);
    }

    #[test]
    fn long_text_is_capped() {
        let long = "word ".repeat(1000);
        let parsed = parse_error_body(500, long.as_bytes(), &none());
        assert!(parsed.message.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(parsed.message.ends_with("..."));
        let json = format!(
            r#"{{"error_code":"FDI.3150","error_msg":"{}"}}"#,
            "m".repeat(900)
        );
        assert_eq!(
            parse_error_body(400, json.as_bytes(), &none())
                .message
                .chars()
                .count(),
            MAX_MESSAGE_CHARS
        );
        assert_eq!(sanitize("é".repeat(10).as_str(), 5), "éé...");
    }

    #[test]
    fn only_the_documented_success_body_has_a_message() {
        assert_eq!(
            parse_success_message(br#"{"message": "Reset Success"}"#, &none()).as_deref(),
            Some("Reset Success")
        );
        for body in [
            &b""[..],
            b"done\n",
            br#"{"error_code":"FDI.3150","error_msg":"The task list is empty."}"#,
            br#"{"message":"Reset Success","error_code":"FDI.3150"}"#,
            br#"{"message":7}"#,
            br#"["Reset Success"]"#,
        ] {
            assert_eq!(
                parse_success_message(body, &none()),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn documented_codes() {
        for code in ["APIGW.0301", "FDI.3150", "APIGW.0308"] {
            assert!(is_documented_code(code), "{code}");
        }
        for code in [
            "401",
            "APIGW.301",
            "apigw.0301",
            "X.0001",
            "APIGW.0301 token=abc",
            "",
        ] {
            assert!(!is_documented_code(code), "{code}");
        }
    }

    #[test]
    fn secrets_are_scrubbed_raw_and_escaped_before_shortening() {
        let r = Redactor::new(["abcd1234", "x"]);
        assert_eq!(
            r.scrub("echo: token=abcd1234 and abcd1234"),
            "echo: token=[REDACTED] and [REDACTED]"
        );
        let secret = r#"pa"ss\wo/rd  é+%"#;
        let r = Redactor::new([secret]);
        for form in escaped_forms(secret) {
            let shown = r.show(&format!("you sent {form} here"), 64);
            assert!(
                !shown.contains("wo/rd") && !shown.contains("wo%2F"),
                "{form}: {shown}"
            );
            assert!(shown.contains(REDACTED), "{form}: {shown}");
        }
        // Forms nobody escapes on purpose: each character as \u, mixed case, spread over lines.
        let unicode: String = secret
            .chars()
            .map(|c| format!("\\u{:04X}", u32::from(c)))
            .collect();
        assert_eq!(r.show(&format!("token {unicode}"), 64), WITHHELD);
        assert_eq!(
            r.show(&format!("token {}", secret.to_uppercase()), 64),
            WITHHELD
        );
        assert_eq!(r.show("token pa\"ss\\wo/\nrd é+%", 64), WITHHELD);
        // A long secret is found before the text is cut to its first characters.
        let long: String = "0123456789abcdef".repeat(400);
        let r = Redactor::new([long.as_str()]);
        let shown = r.show(&format!("header too long: {long}"), MAX_MESSAGE_CHARS);
        assert_eq!(shown, "header too long: [REDACTED]");
        // A body cut at the cap ending with the start of a secret.
        let cut = format!("xx {}", &long[..100]);
        assert_eq!(r.scrub_cut_tail(&cut), "xx [REDACTED]");
        assert_eq!(r.scrub_cut_tail("xx 0123456"), "xx 0123456");
        // Ordinary text is left alone.
        assert_eq!(
            r.show("The task list is empty.", 64),
            "The task list is empty."
        );
    }
}
