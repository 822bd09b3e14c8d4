//! SDK-HMAC-SHA256 request signing, byte for byte as the official Huawei Cloud SDK does it.
//!
//! Shared by the ROMA client (which signs) and the ROMA simulator (which verifies).
//!
//! The reference is `huaweicloudsdkcore.signer.Signer` (Python SDK 3.1.219):
//!
//! 1. Before signing, the SDK adds `X-Sdk-Date` (when absent), `Host` (when absent) and, for a
//!    body whose `Content-Type` is neither JSON nor BSON, `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`.
//! 2. Canonical request, lines joined by `\n`: the method in upper case; the path
//!    percent-decoded, split on `/`, each segment re-encoded keeping only unreserved
//!    characters, with a trailing `/`; the query sorted by key then value, encoded the same
//!    way; one `name:trimmed-value` line per signed header, then a blank line; the signed
//!    header names joined by `;`; the hex SHA-256 of the body.
//! 3. Signed headers: every header whose name has no `_`, lower-cased and sorted.
//! 4. String to sign: `SDK-HMAC-SHA256\n{X-Sdk-Date}\n{hex sha256(canonical request)}`.
//! 5. Signature: hex HMAC-SHA256 of the string to sign, keyed with the secret key; header
//!    `Authorization: SDK-HMAC-SHA256 Access={AK}, SignedHeaders={names}, Signature={hex}`.
//!
//! Nothing in this crate logs, and no value it returns contains the secret key.

use std::fmt;
use std::time::SystemTime;

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// The signing algorithm, first word of the `Authorization` header and of the string to sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The header carrying the signing time, formatted as [`SDK_DATE_FORMAT`].
pub const HEADER_SDK_DATE: &str = "X-Sdk-Date";
/// The header the SDK sets to `UNSIGNED-PAYLOAD` for bodies that are neither JSON nor BSON;
/// when present, its value replaces the body hash in the canonical request.
pub const HEADER_CONTENT_SHA256: &str = "X-Sdk-Content-Sha256";
/// The header carrying the project ID on AK/SK-signed requests.
pub const HEADER_PROJECT_ID: &str = "X-Project-Id";
/// The header carrying the security token of temporary AK/SK credentials.
pub const HEADER_SECURITY_TOKEN: &str = "X-Security-Token";
/// `strftime` format of [`HEADER_SDK_DATE`]: basic ISO 8601 in UTC, e.g. `20210827T083000Z`.
pub const SDK_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Hex SHA-256 of an empty body.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The value of [`HEADER_CONTENT_SHA256`] for a body that is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Characters kept as they are by the SDK's `quote(s, safe='~')`: letters, digits, `-._~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a request cannot be signed or verified. No variant carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// `X-Sdk-Date` is not of the form `20210827T083000Z`.
    #[error("X-Sdk-Date {0:?} is not of the form YYYYMMDDTHHMMSSZ")]
    InvalidDate(String),
    /// The same header name (case-insensitively) was given twice.
    #[error("header {0:?} is given more than once")]
    DuplicateHeader(String),
    /// A header value that cannot be sent (control characters).
    #[error("header {0:?} has a value that cannot be sent")]
    InvalidHeaderValue(String),
    /// The access key is empty.
    #[error("the access key is empty")]
    EmptyAccessKey,
    /// The secret key is empty.
    #[error("the secret key is empty")]
    EmptySecretKey,
}

/// Why an `Authorization` header does not verify. No variant carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The `Authorization` header is not an SDK-HMAC-SHA256 authorization.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// A header listed in `SignedHeaders` is absent from the request.
    #[error("signed header {0:?} is missing from the request")]
    MissingSignedHeader(String),
    /// A header listed in `SignedHeaders` appears more than once in the request.
    #[error("signed header {0:?} appears more than once")]
    RepeatedSignedHeader(String),
    /// The request has no usable `X-Sdk-Date`.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The signature does not match the one recomputed with the secret key.
    #[error("signature mismatch")]
    SignatureMismatch,
}

/// A request to sign or verify: everything that the canonical request covers.
#[derive(Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// HTTP method, any case (it is upper-cased).
    pub method: &'a str,
    /// Path as sent on the wire, e.g. `/v2/p/fdi/instances/i/multi-tasks/t/reset` (it is
    /// percent-decoded then re-encoded per segment, so both raw and encoded paths work).
    pub path: &'a str,
    /// Query parameters, decoded (not percent-encoded); order does not matter.
    pub query: Vec<(String, String)>,
    /// Headers, each name at most once (case-insensitively); values as sent.
    pub headers: Vec<(String, String)>,
    /// Body bytes as sent.
    pub body: &'a [u8],
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold a security token: show the names only.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The result of [`sign`]: the headers to send and every intermediate value (for tests and
/// diagnostics). Holds no secret key; `headers` may hold a security token, so `Debug` shows
/// header names only.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    /// The request's headers plus the ones the SDK adds before signing (`X-Sdk-Date`, `Host`,
    /// `X-Sdk-Content-Sha256`), values trimmed, plus `Authorization`.
    pub headers: Vec<(String, String)>,
    /// The canonical request.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// Signed header names, lower-case, sorted, joined by `;`.
    pub signed_headers: String,
    /// Hex HMAC-SHA256 signature.
    pub signature: String,
    /// Value of the `Authorization` header.
    pub authorization: String,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// Sign `request` with an access key and secret key, as the SDK's `Signer.sign` does.
///
/// `host` is the value for the `Host` header when the request has none (host, plus `:port`
/// when the port is not the scheme's default). `now` is the signing time used when the
/// request has no `X-Sdk-Date` header.
pub fn sign(
    request: &Request<'_>,
    host: &str,
    access_key: &str,
    secret_key: &str,
    now: SystemTime,
) -> Result<Signed, SignError> {
    if access_key.is_empty() {
        return Err(SignError::EmptyAccessKey);
    }
    if secret_key.is_empty() {
        return Err(SignError::EmptySecretKey);
    }
    let mut headers = Vec::with_capacity(request.headers.len() + 3);
    for (name, value) in &request.headers {
        if headers
            .iter()
            .any(|(n, _): &(String, String)| n.eq_ignore_ascii_case(name))
        {
            return Err(SignError::DuplicateHeader(name.clone()));
        }
        let value = trim_value(value);
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SignError::InvalidHeaderValue(name.clone()));
        }
        headers.push((name.clone(), value.to_owned()));
    }
    let has = |headers: &[(String, String)], wanted: &str| {
        headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(wanted))
    };
    if let Some((_, content_type)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        && !content_type.starts_with("application/json")
        && !content_type.starts_with("application/bson")
    {
        // The SDK sets (not adds) the header: an existing one is replaced.
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(HEADER_CONTENT_SHA256));
        headers.push((
            HEADER_CONTENT_SHA256.to_owned(),
            UNSIGNED_PAYLOAD.to_owned(),
        ));
    }
    if !has(&headers, HEADER_SDK_DATE) {
        headers.push((HEADER_SDK_DATE.to_owned(), format_sdk_date(now)));
    }
    if !has(&headers, "host") {
        headers.push(("Host".to_owned(), host.to_owned()));
    }

    let mut signed: Vec<(String, &str)> = headers
        .iter()
        .filter(|(n, _)| !n.contains('_'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()))
        .collect();
    signed.sort_by(|a, b| a.0.cmp(&b.0));
    let date = header_value(&headers, HEADER_SDK_DATE).unwrap_or_default();
    let canonical_request = canonical_request(
        request.method,
        request.path,
        &request.query,
        &signed,
        &payload_hash(&headers, request.body),
    );
    let string_to_sign = string_to_sign(date, &canonical_request)?;
    let signature = hmac_sha256_hex(secret_key.as_bytes(), string_to_sign.as_bytes());
    let signed_headers = join_names(signed.iter().map(|(n, _)| n.as_str()));
    let authorization = format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={signature}"
    );
    headers.push(("Authorization".to_owned(), authorization.clone()));
    Ok(Signed {
        headers,
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
        authorization,
    })
}

/// A parsed `Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key ID (not a secret).
    pub access_key: String,
    /// Signed header names, lower-case, in the order given.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

impl Authorization {
    /// Parse the value of an `Authorization` header.
    pub fn parse(value: &str) -> Result<Self, VerifyError> {
        let rest = value
            .trim()
            .strip_prefix(ALGORITHM)
            .ok_or(VerifyError::Malformed("algorithm is not SDK-HMAC-SHA256"))?;
        if !rest.starts_with(' ') {
            return Err(VerifyError::Malformed("algorithm is not SDK-HMAC-SHA256"));
        }
        let (mut access_key, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, val) = part
                .trim()
                .split_once('=')
                .ok_or(VerifyError::Malformed("expected key=value pairs"))?;
            let slot = match key {
                "Access" => &mut access_key,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => return Err(VerifyError::Malformed("unknown key")),
            };
            if slot.replace(val.to_owned()).is_some() {
                return Err(VerifyError::Malformed("repeated key"));
            }
        }
        let access_key = access_key
            .filter(|a| !a.is_empty())
            .ok_or(VerifyError::Malformed("no Access"))?;
        let signed_headers: Vec<String> = signed_headers
            .ok_or(VerifyError::Malformed("no SignedHeaders"))?
            .split(';')
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if signed_headers.is_empty() {
            return Err(VerifyError::Malformed("empty SignedHeaders"));
        }
        let signature = signature
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::Malformed("no Signature"))?;
        Ok(Self {
            access_key,
            signed_headers,
            signature,
        })
    }
}

/// Verify a received request against its parsed `Authorization`, recomputing the signature
/// over the headers that `SignedHeaders` names, as the API gateway does. The comparison is
/// constant-time. The caller checks the date skew (see [`parse_sdk_date`]).
pub fn verify(
    request: &Request<'_>,
    authorization: &Authorization,
    secret_key: &str,
) -> Result<(), VerifyError> {
    let mut signed: Vec<(String, &str)> = Vec::with_capacity(authorization.signed_headers.len());
    for name in &authorization.signed_headers {
        let mut values = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let (_, value) = values
            .next()
            .ok_or_else(|| VerifyError::MissingSignedHeader(name.clone()))?;
        if values.next().is_some() {
            return Err(VerifyError::RepeatedSignedHeader(name.clone()));
        }
        signed.push((name.clone(), trim_value(value)));
    }
    let date = header_value(&request.headers, HEADER_SDK_DATE)
        .ok_or_else(|| SignError::InvalidDate(String::new()))?;
    let canonical = canonical_request(
        request.method,
        request.path,
        &request.query,
        &signed,
        &payload_hash(&request.headers, request.body),
    );
    let to_sign = string_to_sign(date, &canonical)?;
    let claimed =
        hex::decode(&authorization.signature).map_err(|_| VerifyError::SignatureMismatch)?;
    let mut mac = new_mac(secret_key.as_bytes());
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&claimed)
        .map_err(|_| VerifyError::SignatureMismatch)
}

/// The canonical request, from already selected signed headers (lower-case names, in the
/// order to sign them) and the payload hash.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &[(String, String)],
    signed_headers: &[(String, &str)],
    payload_hash: &str,
) -> String {
    let mut headers = String::new();
    for (name, value) in signed_headers {
        headers.push_str(name);
        headers.push(':');
        headers.push_str(trim_value(value));
        headers.push('\n');
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        canonical_uri(path),
        canonical_query(query),
        headers,
        join_names(signed_headers.iter().map(|(n, _)| n.as_str())),
        payload_hash
    )
}

/// The canonical URI: percent-decode, split on `/`, encode each segment keeping only
/// unreserved characters, join, and end with `/`.
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let mut uri = decoded.split('/').map(encode).collect::<Vec<_>>().join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The canonical query string: pairs sorted by key then value, each side encoded with
/// [`encode`], `k=v` joined by `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encode as the SDK's `quote(s, safe='~')`: UTF-8, upper-case hex, keeping letters,
/// digits and `-._~`.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Split a raw query string (`a=1&b=x%20y`) into decoded pairs, as a server receiving a signed
/// request needs them for [`Request::query`].
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

/// The string to sign: algorithm, the date (validated), and the hex SHA-256 of the canonical
/// request.
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> Result<String, SignError> {
    // The SDK parses the header and formats it again: an invalid date cannot be signed.
    parse_sdk_date(sdk_date)?;
    Ok(format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        sha256_hex(canonical_request.as_bytes())
    ))
}

/// Format a time as an `X-Sdk-Date` value (`20210827T083000Z`, UTC).
pub fn format_sdk_date(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(ts) => ts.strftime(SDK_DATE_FORMAT).to_string(),
        // Out of jiff's range (year > 9999 or < -9999): no real clock is there.
        Err(_) => "19700101T000000Z".to_owned(),
    }
}

/// Parse an `X-Sdk-Date` value (`20210827T083000Z`) to a UTC time.
pub fn parse_sdk_date(value: &str) -> Result<SystemTime, SignError> {
    let invalid = || SignError::InvalidDate(value.chars().take(32).collect());
    if value.len() != 16 || !value.is_ascii() {
        return Err(invalid());
    }
    let b = value.as_bytes();
    if b[8] != b'T' || b[15] != b'Z' {
        return Err(invalid());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i16, SignError> {
        let digits = &value[range];
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        digits.parse::<i16>().map_err(|_| invalid())
    };
    let as_i8 = |n: i16| i8::try_from(n).map_err(|_| invalid());
    let civil = jiff::civil::DateTime::new(
        num(0..4)?,
        as_i8(num(4..6)?)?,
        as_i8(num(6..8)?)?,
        as_i8(num(9..11)?)?,
        as_i8(num(11..13)?)?,
        as_i8(num(13..15)?)?,
        0,
    )
    .map_err(|_| invalid())?;
    let ts = civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| invalid())?;
    Ok(SystemTime::from(ts.timestamp()))
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex HMAC-SHA256 of `data` keyed with `key`.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = new_mac(key);
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length (long ones are hashed); this arm cannot be reached.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

fn payload_hash(headers: &[(String, String)], body: &[u8]) -> String {
    if body.is_empty() {
        return EMPTY_BODY_SHA256.to_owned();
    }
    match header_value(headers, HEADER_CONTENT_SHA256) {
        Some(value) if !value.is_empty() => value.to_owned(),
        _ => sha256_hex(body),
    }
}

fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| trim_value(v))
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators `\x1c`-`\x1f`.
fn trim_value(value: &str) -> &str {
    value.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

fn join_names<'n>(names: impl Iterator<Item = &'n str>) -> String {
    names.collect::<Vec<_>>().join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Inputs and expected values from /work/shared/reference/roma-fdi.md, produced by the
    // official SDK's signer.
    const AK: &str = "HPUAEXAMPLEAK0000001";
    const SK: &str = "ExampleSecretKey0000000000000000000000001";
    const DATE: &str = "20210827T083000Z";
    const HOST: &str = "roma.cn-north-4.myhuaweicloud.com";
    const PROJECT: &str = "c53626012ba84727b938ca8bf03108ef";
    const PATH: &str = "/v2/c53626012ba84727b938ca8bf03108ef/fdi/instances/ce9dfd5c-b3d1-4c60-a7c8-0d1a1a5c8e2b/multi-tasks/1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6/reset";

    fn reference(body: &'static [u8], security_token: Option<&str>) -> Request<'static> {
        let mut headers = vec![
            (
                "Content-Type".to_owned(),
                "application/json;charset=UTF-8".to_owned(),
            ),
            (HEADER_SDK_DATE.to_owned(), DATE.to_owned()),
            ("Host".to_owned(), HOST.to_owned()),
            (HEADER_PROJECT_ID.to_owned(), PROJECT.to_owned()),
        ];
        if let Some(token) = security_token {
            headers.push((HEADER_SECURITY_TOKEN.to_owned(), token.to_owned()));
        }
        Request {
            method: "POST",
            path: PATH,
            query: vec![],
            headers,
            body,
        }
    }

    fn sign_ref(request: &Request<'_>) -> Signed {
        sign(request, HOST, AK, SK, SystemTime::UNIX_EPOCH).expect("signs")
    }

    #[test]
    fn v1_reproduces_the_reference_byte_for_byte() {
        let signed = sign_ref(&reference(br#"{"date_from":1630052714000}"#, None));
        let expected_canonical = format!(
            "POST\n{PATH}/\n\ncontent-type:application/json;charset=UTF-8\nhost:{HOST}\nx-project-id:{PROJECT}\nx-sdk-date:{DATE}\n\ncontent-type;host;x-project-id;x-sdk-date\n620cb0f8ad31a2cedeedc3a143da85f356afcab759b002593d035fcc7b477567"
        );
        assert_eq!(signed.canonical_request, expected_canonical);
        assert_eq!(
            signed.string_to_sign,
            format!(
                "SDK-HMAC-SHA256\n{DATE}\n508010ab8514755b2f8895940e6835dac08d5a646af999cc849d8ee3e654bbeb"
            )
        );
        assert_eq!(
            signed.signature,
            "0df3dd5bd779520125b7fe0e6eb8f7287d8ba4ec01c4cb101d4d1bcd6379217f"
        );
        assert_eq!(
            signed.authorization,
            format!(
                "SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature=0df3dd5bd779520125b7fe0e6eb8f7287d8ba4ec01c4cb101d4d1bcd6379217f"
            )
        );
    }

    #[test]
    fn v2_adds_the_security_token() {
        let signed = sign_ref(&reference(
            br#"{"date_from":1630052714000}"#,
            Some("ExampleSecurityToken0001"),
        ));
        assert_eq!(
            signed.signed_headers,
            "content-type;host;x-project-id;x-sdk-date;x-security-token"
        );
        assert!(
            signed
                .string_to_sign
                .ends_with("\nd5d790973ae766658b7c1d743b86e98ebc61877342945495c48e83fb8b8078cf")
        );
        assert_eq!(
            signed.signature,
            "00868ef5f0c42987648da9fe3a3d2ba8a88b2184bfcd17f516a7b80834a8f709"
        );
    }

    #[test]
    fn v3_hashes_the_body_as_sent() {
        let signed = sign_ref(&reference(br#"{"date_from": 1630052714000}"#, None));
        assert!(
            signed
                .canonical_request
                .ends_with("\n8b1fe776836708deb6a2ad076e8f37756e52f5d582a9974feb91b7e94814eea9")
        );
        assert_eq!(
            signed.signature,
            "5043be10f7bd07e13c189fb2fca5ef1924530058fb7b6a3752a7892b55e950be"
        );
    }

    #[test]
    fn the_signer_adds_date_and_host_when_absent() {
        let mut request = reference(b"{}", None);
        request
            .headers
            .retain(|(n, _)| n != HEADER_SDK_DATE && n != "Host");
        let at = parse_sdk_date(DATE).expect("date");
        let signed = sign(&request, HOST, AK, SK, at).expect("signs");
        assert!(
            signed
                .headers
                .contains(&(HEADER_SDK_DATE.to_owned(), DATE.to_owned()))
        );
        assert!(
            signed
                .headers
                .contains(&("Host".to_owned(), HOST.to_owned()))
        );
        // Same headers as given explicitly: same signature.
        let explicit = sign_ref(&reference(b"{}", None));
        assert_eq!(signed.signature, explicit.signature);
    }

    #[test]
    fn verify_accepts_its_own_signature_and_rejects_changes() {
        let request = reference(br#"{"date_from":1630052714000}"#, Some("tok"));
        let signed = sign_ref(&request);
        let auth = Authorization::parse(&signed.authorization).expect("parses");
        assert_eq!(auth.access_key, AK);
        verify(&request, &auth, SK).expect("verifies");
        assert_eq!(
            verify(&request, &auth, "another-secret"),
            Err(VerifyError::SignatureMismatch)
        );
        let tampered = Request {
            body: br#"{"date_from":1630052714001}"#,
            ..request.clone()
        };
        assert_eq!(
            verify(&tampered, &auth, SK),
            Err(VerifyError::SignatureMismatch)
        );
        let mut other_path = request.clone();
        other_path.path = "/v2/x/fdi/instances/y/multi-tasks/z/reset";
        assert_eq!(
            verify(&other_path, &auth, SK),
            Err(VerifyError::SignatureMismatch)
        );
        let mut unsigned_extra = request.clone();
        unsigned_extra
            .headers
            .push(("User-Agent".to_owned(), "curl".to_owned()));
        verify(&unsigned_extra, &auth, SK).expect("unsigned headers do not matter");
        let mut missing = request;
        missing.headers.retain(|(n, _)| n != HEADER_SECURITY_TOKEN);
        assert_eq!(
            verify(&missing, &auth, SK),
            Err(VerifyError::MissingSignedHeader("x-security-token".into()))
        );
    }

    #[test]
    fn canonical_uri_reencodes_each_segment() {
        assert_eq!(
            canonical_uri("/a b/c%2Fd/e~f.g_h-i"),
            "/a%20b/c/d/e~f.g_h-i/"
        );
        assert_eq!(canonical_uri("/x/"), "/x/");
        assert_eq!(canonical_uri("/%E4%B8%AD"), "/%E4%B8%AD/");
        assert_eq!(canonical_uri("/中"), "/%E4%B8%AD/");
        assert_eq!(canonical_uri("/a+b*c"), "/a%2Bb%2Ac/");
    }

    #[test]
    fn canonical_query_sorts_by_key_then_value() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            canonical_query(&q(&[("b", "2"), ("a", "z y"), ("a", "x"), ("c/d", "é")])),
            "a=x&a=z%20y&b=2&c%2Fd=%C3%A9"
        );
        assert_eq!(canonical_query(&[]), "");
        assert_eq!(
            query_pairs("a=x%20y&b&c=1=2"),
            q(&[("a", "x y"), ("b", ""), ("c", "1=2")])
        );
    }

    #[test]
    fn headers_with_underscores_are_not_signed_and_non_json_bodies_are_unsigned() {
        let mut request = reference(b"plain text", None);
        request.headers[0].1 = "text/plain".to_owned();
        request
            .headers
            .push(("X_Custom".to_owned(), "ignored".to_owned()));
        let signed = sign_ref(&request);
        assert!(!signed.signed_headers.contains("x_custom"));
        assert!(signed.signed_headers.contains("x-sdk-content-sha256"));
        assert!(signed.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let mut request = reference(b"{}", None);
        request.headers[1].1 = "2021-08-27T08:30:00Z".to_owned();
        assert!(matches!(
            sign(&request, HOST, AK, SK, SystemTime::UNIX_EPOCH),
            Err(SignError::InvalidDate(_))
        ));
        let mut dup = reference(b"{}", None);
        dup.headers.push(("host".to_owned(), "other".to_owned()));
        assert_eq!(
            sign(&dup, HOST, AK, SK, SystemTime::UNIX_EPOCH),
            Err(SignError::DuplicateHeader("host".into()))
        );
        assert_eq!(
            sign(
                &reference(b"{}", None),
                HOST,
                AK,
                "",
                SystemTime::UNIX_EPOCH
            ),
            Err(SignError::EmptySecretKey)
        );
        for bad in [
            "",
            "SDK-HMAC-SHA256",
            "SDK-HMAC-SHA256Access=a, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Access=a, SignedHeaders=host, Signature=00",
            "SDK-HMAC-SHA256 Access=a, SignedHeaders=host",
            "SDK-HMAC-SHA256 Access=a, Access=b, SignedHeaders=host, Signature=00",
        ] {
            assert!(Authorization::parse(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn sdk_dates_round_trip() {
        let t = parse_sdk_date(DATE).expect("parses");
        assert_eq!(format_sdk_date(t), DATE);
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after")
                .as_secs(),
            1_630_053_000
        );
        for bad in [
            "20210827T083000",
            "20211327T083000Z",
            "2021-08-27T08:30Z",
            "20210827T083000Zx",
        ] {
            assert!(parse_sdk_date(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_hides_header_values() {
        let request = reference(b"{}", Some("SECRET-SECURITY-TOKEN"));
        let signed = sign_ref(&request);
        for shown in [format!("{request:?}"), format!("{signed:?}")] {
            assert!(!shown.contains("SECRET-SECURITY-TOKEN"), "{shown}");
            assert!(!shown.contains(SK), "{shown}");
        }
    }
}
