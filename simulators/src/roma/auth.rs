//! The API gateway's checks: `X-Auth-Token` or an SDK-HMAC-SHA256 signature.

use std::time::{Duration, Instant, SystemTime};

use axum::http::HeaderMap;
use axum::http::request::Parts;
use roma_signer::{Authorization, HEADER_SDK_DATE, HEADER_SECURITY_TOKEN, Request};

use super::state::{AuthKind, State};

/// A refusal by the gateway (`APIGW.*`), before anything executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatewayError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl GatewayError {
    fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            code: "APIGW.0301",
            message: format!(
                "Incorrect IAM authentication information: {}",
                message.into()
            ),
        }
    }
}

/// Check the credentials of a request: the kind presented, and whether they pass.
pub(crate) fn authenticate(
    state: &State,
    parts: &Parts,
    body: &[u8],
) -> (AuthKind, Result<(), GatewayError>) {
    if let Some(token) = header(&parts.headers, "x-auth-token") {
        return check_token(state, token);
    }
    if let Some(authorization) = header(&parts.headers, "authorization") {
        return (
            AuthKind::AccessKey,
            check_signature(state, parts, authorization, body),
        );
    }
    (
        AuthKind::None,
        Err(GatewayError::unauthorized("x-auth-token not found")),
    )
}

fn check_token(state: &State, token: &str) -> (AuthKind, Result<(), GatewayError>) {
    let now = state.now();
    let inner = state.lock();
    let Some(info) = inner.tokens.get(token) else {
        return (
            AuthKind::Token,
            Err(GatewayError::unauthorized("token is invalid")),
        );
    };
    let kind = if info.issued_by_iam {
        AuthKind::IamToken
    } else {
        AuthKind::Token
    };
    let expired_at = if info.expired {
        Some(info.expires_at.unwrap_or(now).min(now))
    } else {
        info.expires_at.filter(|at| *at <= now)
    };
    match expired_at {
        Some(at) => (
            kind,
            Err(GatewayError::unauthorized(format!(
                "token expires, expires_at:{}",
                rfc3339(at)
            ))),
        ),
        None => (kind, Ok(())),
    }
}

fn check_signature(
    state: &State,
    parts: &Parts,
    authorization: &str,
    body: &[u8],
) -> Result<(), GatewayError> {
    let auth = Authorization::parse(authorization)
        .map_err(|_| GatewayError::unauthorized("Authorization format incorrect"))?;
    let now = state.now();
    let mut inner = state.lock();
    let Some(key) = inner.access_keys.get_mut(&auth.access_key) else {
        return Err(GatewayError::unauthorized(
            "verify aksk signature fail: unknown access key",
        ));
    };
    let instant = Instant::now();
    if let Some(until) = key.locked_until {
        if until > instant {
            return Err(GatewayError::unauthorized(format!(
                "the access key is locked for {} s after {} failed attempts",
                (until - instant).as_secs().max(1),
                state.config.lock_threshold
            )));
        }
        key.locked_until = None;
        key.consecutive_failures = 0;
    }
    let verdict = verify(
        parts,
        &auth,
        body,
        &key.secret_key,
        key.security_token.as_deref(),
        now,
        state.config.max_clock_skew,
    );
    match verdict {
        Ok(()) => {
            key.consecutive_failures = 0;
            Ok(())
        }
        Err(err) => {
            key.consecutive_failures += 1;
            if key.consecutive_failures >= state.config.lock_threshold {
                key.locked_until = Some(instant + state.config.lock_duration);
            }
            Err(err)
        }
    }
}

fn verify(
    parts: &Parts,
    auth: &Authorization,
    body: &[u8],
    secret_key: &str,
    security_token: Option<&str>,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), GatewayError> {
    for required in ["host", "x-sdk-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(GatewayError::unauthorized(format!(
                "header {required} must be signed"
            )));
        }
    }
    if let Some(expected) = security_token
        && (!auth.signed_headers.iter().any(|h| h == "x-security-token")
            || header(&parts.headers, HEADER_SECURITY_TOKEN) != Some(expected))
    {
        return Err(GatewayError::unauthorized("security token is invalid"));
    }
    let date = header(&parts.headers, HEADER_SDK_DATE)
        .and_then(|d| roma_signer::parse_sdk_date(d).ok())
        .ok_or_else(|| GatewayError::unauthorized("x-sdk-date is missing or invalid"))?;
    let skew = match now.duration_since(date) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if skew > max_skew {
        return Err(GatewayError {
            status: 401,
            code: "APIGW.0303",
            message: "Incorrect app authentication information: signature expired".to_owned(),
        });
    }
    let headers = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let request = Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: roma_signer::query_pairs(parts.uri.query().unwrap_or_default()),
        headers,
        body,
    };
    roma_signer::verify(&request, auth, secret_key)
        .map_err(|_| GatewayError::unauthorized("verify aksk signature fail"))
}

/// A header's value, if present once and readable.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// RFC 3339 with microseconds, as IAM writes `expires_at`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}
