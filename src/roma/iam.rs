//! IAM password authentication: the token exchange and the token cache.
//!
//! `POST {iam}/v3/auth/tokens?nocatalog=true` scoped to the project; the token is the
//! `X-Subject-Token` header, its expiry `token.expires_at`. Tokens are cached per (IAM
//! endpoint, credential set, project) and reused until shortly before they expire; callers
//! asking for the same token at the same time share one exchange.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use url::Url;

use super::outcome::ResetOutcome;
use super::response::{MAX_REQUEST_ID_CHARS, parse_error_body, sanitize};
use super::secret::SecretString;

/// A token from IAM.
#[derive(Clone)]
pub(crate) struct IssuedToken {
    pub token: SecretString,
    /// `token.expires_at`; `None` when IAM did not say (the token is then not cached).
    pub expires_at: Option<SystemTime>,
    pub obtained_at: SystemTime,
}

impl IssuedToken {
    /// Usable at `now` if it does not expire within the margin (at most half its lifetime).
    fn usable_at(&self, now: SystemTime, margin: Duration) -> bool {
        let Some(expires_at) = self.expires_at else {
            return false;
        };
        let lifetime = expires_at
            .duration_since(self.obtained_at)
            .unwrap_or_default();
        let margin = margin.min(lifetime / 2);
        now + margin < expires_at
    }
}

/// What a slot remembers: the token, and the last failed exchange (shared with the callers
/// that were waiting for it).
#[derive(Default)]
struct Slot {
    token: Option<IssuedToken>,
    last_failure: Option<(Instant, ResetOutcome)>,
}

/// Cached IAM tokens, one slot per cache key.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("TokenCache").field("slots", &slots).finish()
    }
}

impl TokenCache {
    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(key.to_owned()).or_default())
    }

    /// The cached token for `key`, or a fresh one from `fetch`. Only one `fetch` runs per key
    /// at a time; callers that waited for a failed one get its failure.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: &str,
        margin: Duration,
        fetch: F,
    ) -> Result<SecretString, ResetOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, ResetOutcome>>,
    {
        let asked_at = Instant::now();
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let Some(token) = &slot.token
            && token.usable_at(SystemTime::now(), margin)
        {
            return Ok(token.token.clone());
        }
        if let Some((failed_at, failure)) = &slot.last_failure
            && *failed_at >= asked_at
        {
            return Err(failure.clone());
        }
        match fetch().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                slot.last_failure = None;
                slot.token = fresh.expires_at.is_some().then_some(fresh);
                Ok(token)
            }
            Err(failure) => {
                slot.token = None;
                slot.last_failure = Some((Instant::now(), failure.clone()));
                Err(failure)
            }
        }
    }

    /// Forget `token` (the service answered 401 to it); a newer token is kept.
    pub async fn invalidate(&self, key: &str, token: &SecretString) {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if slot.token.as_ref().is_some_and(|t| &t.token == token) {
            slot.token = None;
        }
    }

    /// How many tokens are cached.
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        let slots: Vec<_> = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        slots
            .iter()
            .filter(|s| s.try_lock().is_ok_and(|s| s.token.is_some()))
            .count()
    }
}

/// The cache key of a credential set and project: a digest, so that the map holds no password.
pub(crate) fn cache_key(
    iam: &Url,
    domain_name: &str,
    username: &str,
    password: &SecretString,
    project_id: &str,
) -> String {
    let material = json!([
        iam.as_str(),
        domain_name,
        username,
        password.expose(),
        project_id
    ]);
    roma_signer::sha256_hex(material.to_string().as_bytes())
}

/// What the exchange needs.
pub(crate) struct Exchange<'a> {
    pub http: &'a reqwest::Client,
    pub iam: &'a Url,
    pub username: &'a str,
    pub password: &'a SecretString,
    pub domain_name: &'a str,
    pub project_id: &'a str,
    pub max_body_bytes: usize,
    /// Whole-exchange limit, shorter than the reset call's: the exchange and the call must
    /// both fit the pod's termination grace period.
    pub timeout: std::time::Duration,
}

/// `POST {iam}/v3/auth/tokens?nocatalog=true`. Failures are outcomes of the reset (which was
/// then never sent): a 4xx refusal (except 429) is `CredentialsRejected`, anything else
/// `NotSent`.
pub(crate) async fn exchange(x: Exchange<'_>) -> Result<IssuedToken, ResetOutcome> {
    let mut url = x.iam.clone();
    match url.path_segments_mut() {
        Ok(mut segments) => {
            segments.pop_if_empty().extend(["v3", "auth", "tokens"]);
        }
        Err(()) => {
            return Err(ResetOutcome::NotSent {
                reason: format!("IAM endpoint {} cannot take a path", x.iam),
            });
        }
    }
    url.set_query(Some("nocatalog=true"));
    let body = json!({"auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {
                "name": x.username,
                "password": x.password.expose(),
                "domain": {"name": x.domain_name},
            }},
        },
        "scope": {"project": {"id": x.project_id}},
    }});
    let obtained_at = SystemTime::now();
    let response = x
        .http
        .post(url.clone())
        .timeout(x.timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json;charset=utf8",
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|err| ResetOutcome::NotSent {
            reason: format!(
                "IAM token exchange with {} failed: {}",
                x.iam,
                super::client::describe_error(&err)
            ),
        })?;
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| sanitize(v, MAX_REQUEST_ID_CHARS));
    let subject_token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    let (bytes, _) = super::client::read_capped(response, x.max_body_bytes).await;
    if !(200..300).contains(&status) {
        let error = parse_error_body(status, &bytes);
        return Err(if (400..500).contains(&status) && status != 429 {
            ResetOutcome::CredentialsRejected {
                http_status: Some(status),
                error_code: error.code,
                error_message: format!("IAM token exchange refused: {}", error.message),
                request_id,
            }
        } else {
            ResetOutcome::NotSent {
                reason: format!(
                    "IAM token exchange with {} answered HTTP {status} {}: {}",
                    x.iam, error.code, error.message
                ),
            }
        });
    }
    let token = subject_token.ok_or_else(|| ResetOutcome::NotSent {
        reason: format!(
            "IAM at {} answered HTTP {status} without X-Subject-Token",
            x.iam
        ),
    })?;
    Ok(IssuedToken {
        token,
        expires_at: expires_at(&bytes),
        obtained_at,
    })
}

/// `token.expires_at` of an IAM answer.
fn expires_at(body: &[u8]) -> Option<SystemTime> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value.get("token")?.get("expires_at")?.as_str()?;
    let timestamp: jiff::Timestamp = text.parse().ok()?;
    Some(SystemTime::from(timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_reused_until_shortly_before_expiry() {
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        let token = IssuedToken {
            token: "t".into(),
            expires_at: Some(now + day),
            obtained_at: now,
        };
        let margin = Duration::from_secs(600);
        assert!(token.usable_at(now, margin));
        assert!(token.usable_at(now + day - Duration::from_secs(601), margin));
        assert!(!token.usable_at(now + day - Duration::from_secs(599), margin));
        // A short-lived token keeps at least half its lifetime.
        let short = IssuedToken {
            expires_at: Some(now + Duration::from_secs(10)),
            ..token.clone()
        };
        assert!(short.usable_at(now + Duration::from_secs(4), margin));
        assert!(!short.usable_at(now + Duration::from_secs(6), margin));
        let unknown = IssuedToken {
            expires_at: None,
            ..token
        };
        assert!(!unknown.usable_at(now, margin));
    }

    #[test]
    fn expires_at_is_read_from_the_body() {
        let at = expires_at(br#"{"token":{"expires_at":"2021-08-28T08:25:14.123000Z"}}"#)
            .expect("parses");
        assert_eq!(
            at.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after epoch")
                .as_millis(),
            1_630_139_114_123
        );
        assert_eq!(expires_at(b"{}"), None);
        assert_eq!(expires_at(br#"{"token":{"expires_at":"tomorrow"}}"#), None);
    }

    #[tokio::test]
    async fn one_exchange_serves_concurrent_callers_and_failures_are_shared() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let margin = Duration::from_secs(60);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("k", margin, || async {
                        fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(IssuedToken {
                            token: "fresh".into(),
                            expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                            obtained_at: SystemTime::now(),
                        })
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("joins").expect("token").expose(), "fresh");
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(cache.cached(), 1);
        cache.invalidate("k", &"other".into()).await;
        assert_eq!(cache.cached(), 1, "a different token is not dropped");
        cache.invalidate("k", &"fresh".into()).await;
        assert_eq!(cache.cached(), 0);

        // A failed exchange is shared by the callers that waited for it, not repeated.
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("down", margin, || async {
                        fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err(ResetOutcome::NotSent {
                            reason: "IAM unreachable".into(),
                        })
                    })
                    .await
            }));
        }
        for task in tasks {
            assert!(matches!(
                task.await.expect("joins"),
                Err(ResetOutcome::NotSent { .. })
            ));
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A caller arriving after the failure tries again.
        let again = cache
            .get_or_fetch("down", margin, || async {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(IssuedToken {
                    token: "back".into(),
                    expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                    obtained_at: SystemTime::now(),
                })
            })
            .await;
        assert_eq!(again.expect("token").expose(), "back");
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
