//! IAM password authentication: the token exchange and the token cache.
//!
//! `POST {iam}/v3/auth/tokens?nocatalog=true` scoped to the project; the token is the
//! `X-Subject-Token` header, its expiry `token.expires_at`. Tokens are cached per (IAM
//! endpoint, credential set, project) and reused until shortly before they expire; callers
//! asking for the same token at the same time share one exchange. The cache is bounded: at
//! most `capacity` entries (expired and unused ones go first, then the least recently used),
//! and a token over the size limit is refused, never cached.
//!
//! Nothing of an IAM answer's body is ever copied into an outcome: a refusal says "IAM
//! refused the credentials (HTTP 401)" and the request id, whatever IAM (or whoever answers
//! at that address) wrote.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use url::Url;

use super::outcome::ResetOutcome;
use super::response::{MAX_REQUEST_ID_CHARS, Redactor, shown_url};
use super::transport::{describe_error, read_capped};
use secrecy::{ExposeSecret, SecretString};

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

/// Entries kept when no capacity is given.
pub(crate) const DEFAULT_CAPACITY: usize = 1024;

/// One cache entry: the slot, when it was last asked for, and until when its token is good
/// (`None`: no token in it).
struct Entry {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    last_used: u64,
    expires_at: Option<SystemTime>,
}

struct Entries {
    map: HashMap<String, Entry>,
    clock: u64,
}

/// Cached IAM tokens, one slot per cache key, at most `capacity` slots.
pub(crate) struct TokenCache {
    entries: Mutex<Entries>,
    capacity: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.lock().map.len();
        f.debug_struct("TokenCache").field("slots", &slots).finish()
    }
}

impl TokenCache {
    /// A cache of at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                clock: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slot of `key`, made if needed; making one first drops expired and empty entries
    /// nobody is using, then the least recently used ones while over capacity.
    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut entries = self.lock();
        entries.clock += 1;
        let now = entries.clock;
        if let Some(entry) = entries.map.get_mut(key) {
            entry.last_used = now;
            return Arc::clone(&entry.slot);
        }
        let wall = SystemTime::now();
        entries.map.retain(|_, e| {
            let in_use = Arc::strong_count(&e.slot) > 1;
            in_use || e.expires_at.is_some_and(|at| at > wall)
        });
        while entries.map.len() >= self.capacity {
            let Some(oldest) = entries
                .map
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.map.remove(&oldest);
        }
        let slot = Arc::new(tokio::sync::Mutex::new(Slot::default()));
        entries.map.insert(
            key.to_owned(),
            Entry {
                slot: Arc::clone(&slot),
                last_used: now,
                expires_at: None,
            },
        );
        slot
    }

    /// Remember until when the token in `slot` (the entry of `key`) is good.
    fn note_expiry(
        &self,
        key: &str,
        slot: &Arc<tokio::sync::Mutex<Slot>>,
        expires_at: Option<SystemTime>,
    ) {
        let mut entries = self.lock();
        if let Some(entry) = entries.map.get_mut(key)
            && Arc::ptr_eq(&entry.slot, slot)
        {
            entry.expires_at = expires_at;
        }
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
        let shared = self.slot(key);
        let mut slot = shared.lock().await;
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
                let expires_at = fresh.expires_at;
                slot.token = expires_at.is_some().then_some(fresh);
                self.note_expiry(key, &shared, expires_at);
                Ok(token)
            }
            Err(failure) => {
                slot.token = None;
                slot.last_failure = Some((Instant::now(), failure.clone()));
                self.note_expiry(key, &shared, None);
                Err(failure)
            }
        }
    }

    /// Forget `token` (the service answered 401 to it); a newer token is kept.
    pub async fn invalidate(&self, key: &str, token: &SecretString) {
        let shared = self.slot(key);
        let mut slot = shared.lock().await;
        if slot
            .token
            .as_ref()
            .is_some_and(|t| t.token.expose_secret() == token.expose_secret())
        {
            slot.token = None;
            self.note_expiry(key, &shared, None);
        }
    }

    /// How many tokens are cached.
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        let slots: Vec<_> = self
            .lock()
            .map
            .values()
            .map(|e| Arc::clone(&e.slot))
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
        password.expose_secret(),
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
    /// Largest `X-Subject-Token` accepted, in bytes.
    pub max_token_bytes: usize,
    /// Removes the credentials' secrets from the request id (nothing else is copied).
    /// Whole-exchange limit, shorter than the reset call's: the exchange and the call must
    /// both fit the pod's termination grace period.
    pub timeout: std::time::Duration,
    pub redactor: &'a Redactor,
}

/// `POST {iam}/v3/auth/tokens?nocatalog=true`. Failures are outcomes of the reset (which was
/// then never sent): a 4xx refusal (except 429) or an oversized token is
/// `CredentialsRejected`, anything else `NotSent`. No outcome quotes the answer's body or the
/// token: only the status, the IAM request id and what the controller made of them.
pub(crate) async fn exchange(x: Exchange<'_>) -> Result<IssuedToken, ResetOutcome> {
    let shown = shown_url(x.iam);
    let mut url = x.iam.clone();
    match url.path_segments_mut() {
        Ok(mut segments) => {
            segments.pop_if_empty().extend(["v3", "auth", "tokens"]);
        }
        Err(()) => {
            return Err(ResetOutcome::NotSent {
                reason: format!("IAM endpoint {shown} cannot take a path"),
            });
        }
    }
    url.set_query(Some("nocatalog=true"));
    let body = json!({"auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {
                "name": x.username,
                "password": x.password.expose_secret(),
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
                "IAM token exchange with {shown} failed: {}",
                describe_error(&err)
            ),
        })?;
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| x.redactor.show(v, MAX_REQUEST_ID_CHARS))
        .filter(|v| !v.is_empty());
    let with_id = |text: String| match &request_id {
        Some(id) => format!("{text} (IAM request id {id})"),
        None => text,
    };
    if !(200..300).contains(&status) {
        return Err(if (400..500).contains(&status) && status != 429 {
            ResetOutcome::CredentialsRejected {
                http_status: Some(status),
                error_code: "IamRefused".to_owned(),
                error_message: format!("IAM refused the credentials (HTTP {status})"),
                request_id,
            }
        } else {
            ResetOutcome::NotSent {
                reason: with_id(format!(
                    "IAM at {shown} answered HTTP {status} to the token exchange"
                )),
            }
        });
    }
    let header = response.headers().get("x-subject-token");
    if let Some(value) = header
        && value.len() > x.max_token_bytes
    {
        return Err(ResetOutcome::CredentialsRejected {
            http_status: Some(status),
            error_code: "IamTokenTooLarge".to_owned(),
            error_message: format!(
                "IAM at {shown} issued a token of {} bytes, over the {}-byte limit; it was not used",
                value.len(),
                x.max_token_bytes
            ),
            request_id,
        });
    }
    let token = header
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(SecretString::from)
        .ok_or_else(|| ResetOutcome::NotSent {
            reason: with_id(format!(
                "IAM at {shown} answered HTTP {status} without a usable X-Subject-Token"
            )),
        })?;
    let (bytes, _) = read_capped(response, x.max_body_bytes).await;
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
            assert_eq!(
                task.await.expect("joins").expect("token").expose_secret(),
                "fresh"
            );
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
        assert_eq!(again.expect("token").expose_secret(), "back");
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    fn issued(token: &str, expires_at: SystemTime) -> IssuedToken {
        IssuedToken {
            token: token.into(),
            expires_at: Some(expires_at),
            obtained_at: SystemTime::now() - Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn a_flood_of_keys_keeps_the_cache_bounded_and_expired_tokens_go() {
        let cache = TokenCache::default();
        let margin = Duration::from_secs(60);
        let hour = SystemTime::now() + Duration::from_secs(3600);
        for i in 0..3000 {
            let key = format!("project-{i}");
            let token = format!("token-{i}");
            let got = cache
                .get_or_fetch(&key, margin, || async move { Ok(issued(&token, hour)) })
                .await;
            assert!(got.is_ok());
        }
        let shown = format!("{cache:?}");
        assert!(cache.cached() <= 1024, "{} tokens cached", cache.cached());
        assert!(shown.contains("slots: 1024 }"), "{shown}");
        // The most recently used survive; the least recently used went first.
        let reused = cache
            .get_or_fetch("project-2999", margin, || async {
                Err(ResetOutcome::NotSent {
                    reason: "must come from the cache".into(),
                })
            })
            .await;
        assert_eq!(reused.expect("cached").expose_secret(), "token-2999");

        // Tokens past their expiry are dropped, not kept until the count is reached.
        let expired = TokenCache::default();
        for i in 0..100 {
            let token = format!("short-{i}");
            let soon = SystemTime::now() + Duration::from_millis(300);
            let _ = expired
                .get_or_fetch(&format!("short-{i}"), Duration::ZERO, || async move {
                    Ok(issued(&token, soon))
                })
                .await;
        }
        assert_eq!(expired.cached(), 100);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = expired
            .get_or_fetch("fresh", margin, || async { Ok(issued("fresh", hour)) })
            .await;
        assert_eq!(expired.cached(), 1, "{expired:?}");
        assert!(format!("{expired:?}").contains("slots: 1 }"), "{expired:?}");
    }
}
