//! [`RomaClient`]: the reset call itself, with its transport and authentication.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::credentials::Credentials;
use super::endpoint::{Endpoint, EndpointError, IamEndpointPolicy};
use super::iam::{self, Exchange, TokenCache};
use super::outcome::ResetOutcome;
use super::response::{
    MAX_REQUEST_ID_CHARS, Redactor, is_documented_code, parse_error_body, parse_success_message,
    shown_url,
};
use super::transport::{read_capped, transport_outcome};
use secrecy::{ExposeSecret, SecretString};

/// `Content-Type` of the reset call.
pub const RESET_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// `User-Agent` of every call: the project and its version.
pub const USER_AGENT: &str = concat!("taskreset-controller/", env!("CARGO_PKG_VERSION"));

/// How the client talks to ROMA and IAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Whole-call limit, connection to last body byte (default 30 s).
    pub request_timeout: Duration,
    /// Limit for establishing the connection, TLS included (default 10 s).
    pub connect_timeout: Duration,
    /// Whole-call limit of an IAM token exchange (default 10 s).
    pub iam_timeout: Duration,
    /// Extra CA certificates (PEM bundle) trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// `User-Agent` header (default [`USER_AGENT`]).
    pub user_agent: String,
    /// Most response body bytes read (default 64 KiB); the rest is ignored.
    pub max_body_bytes: usize,
    /// Allow an IAM endpoint with plain http (the IAM allow-list must allow it too, which
    /// takes insecure mode as well).
    pub insecure_allow_http: bool,
    /// Where an IAM password may be sent (`--allowed-iam-endpoints`; default the global and
    /// regional Huawei Cloud IAM endpoints). An IAM endpoint outside it gets nothing.
    pub iam_endpoints: IamEndpointPolicy,
    /// Largest IAM token accepted, in bytes of `X-Subject-Token` (default 16 KiB; real ones
    /// are a few KB). A larger one is refused and never used, cached or shown.
    pub max_token_bytes: usize,
    /// Most IAM tokens cached (default 1,024): expired ones go first, then the least
    /// recently used.
    pub max_cached_tokens: usize,
    /// Refresh IAM tokens this long before they expire (at most half their lifetime;
    /// default 10 min).
    pub token_refresh_margin: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            iam_timeout: Duration::from_secs(10),
            ca_file: None,
            user_agent: USER_AGENT.to_owned(),
            max_body_bytes: 64 * 1024,
            insecure_allow_http: false,
            iam_endpoints: IamEndpointPolicy::default(),
            max_token_bytes: 16 * 1024,
            max_cached_tokens: 1024,
            token_refresh_margin: Duration::from_secs(600),
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    ReadCaFile {
        /// The file.
        path: PathBuf,
        /// The error from the OS.
        source: std::io::Error,
    },
    /// The CA file is not a PEM bundle.
    #[error("CA file {path} holds no usable PEM certificate: {source}")]
    InvalidCaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: reqwest::Error,
    },
    /// The CA file is PEM but holds no certificate.
    #[error("CA file {path} holds no usable PEM certificate: no certificate found")]
    NoCaCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// Why an IAM password is not sent to an IAM endpoint: the configuration
/// (`--allowed-iam-endpoints`, `--insecure-allow-http`) or the Secret's `iamEndpoint` forbids
/// it. A configuration error, found before anything is sent: nobody refused the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamEndpointError {
    /// Plain http while insecure mode is off: the password would travel in clear.
    #[error(
        "IAM endpoint {iam} is not https (--insecure-allow-http allows it); no password was sent"
    )]
    NotHttps {
        /// The endpoint, as shown in messages.
        iam: String,
    },
    /// The IAM allow-list does not match it.
    #[error(
        "IAM endpoint {iam} is not in the allowed IAM endpoints ({allowed}; --allowed-iam-endpoints); no password was sent"
    )]
    NotAllowed {
        /// The endpoint, as shown in messages.
        iam: String,
        /// The allowed patterns, comma-separated.
        allowed: String,
    },
    /// Not a usable URL (user information, a query, ...).
    #[error("IAM endpoint {iam} is not usable: {source}; no password was sent")]
    Invalid {
        /// The endpoint, as shown in messages.
        iam: String,
        /// What is wrong with it.
        #[source]
        source: EndpointError,
    },
}

/// One reset to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    /// Where to send it.
    pub endpoint: Endpoint,
    /// `{project_id}`.
    pub project_id: String,
    /// `{instance_id}`.
    pub instance_id: String,
    /// `{task_id}`.
    pub task_id: String,
    /// `date_from` (UTC epoch ms); `None` sends `{}`.
    pub date_from_ms: Option<i64>,
}

/// The ROMA FDI client. Cheap to clone: clones share the connection pool and the IAM token
/// cache.
#[derive(Clone)]
pub struct RomaClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    tokens: TokenCache,
}

impl fmt::Debug for RomaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RomaClient")
            .field("config", &self.inner.config)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// How one attempt authenticates.
enum Auth<'a> {
    Token(&'a SecretString),
    Signed {
        access_key: &'a str,
        secret_key: &'a SecretString,
        security_token: Option<&'a SecretString>,
    },
}

impl RomaClient {
    /// Whether a reset at `endpoint` with `credentials` may go ahead as far as the
    /// configuration goes: for IAM password credentials, whether the password may be sent to
    /// their IAM endpoint (the Secret's `iamEndpoint`, else the one that goes with
    /// `endpoint`). Other credentials need no IAM endpoint. Nothing is sent.
    pub fn check_iam_endpoint(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
    ) -> Result<(), IamEndpointError> {
        match credentials {
            Credentials::Password { iam_endpoint, .. } => self
                .password_target(endpoint, iam_endpoint.as_ref())
                .map(drop),
            Credentials::Token(_) | Credentials::AccessKey { .. } => Ok(()),
        }
    }

    /// Before a reset of `project_id` at `endpoint`: with IAM password credentials, have the
    /// token ready (from the cache, or exchanged now, within `--iam-timeout`), so that the
    /// call, made later with a call slot, needs no exchange. Other credentials need nothing.
    /// A failure is what the call would have answered: nothing was sent to ROMA.
    pub async fn prepare(
        &self,
        endpoint: &Endpoint,
        project_id: &str,
        credentials: &Credentials,
    ) -> Result<(), ResetOutcome> {
        let Credentials::Password {
            username,
            password,
            domain_name,
            iam_endpoint,
        } = credentials
        else {
            return Ok(());
        };
        let iam = self
            .password_target(endpoint, iam_endpoint.as_ref())
            .map_err(|err| ResetOutcome::NotSent {
                reason: err.to_string(),
            })?;
        let redactor = Redactor::new(credentials.secrets());
        let key = iam::cache_key(&iam, domain_name, username, password, project_id);
        let exchange = Exchange {
            http: &self.inner.http,
            iam: &iam,
            username,
            password,
            domain_name,
            project_id,
            max_body_bytes: self.inner.config.max_body_bytes,
            max_token_bytes: self.inner.config.max_token_bytes,
            timeout: self.inner.config.iam_timeout,
            redactor: &redactor,
        };
        let margin = self.inner.config.token_refresh_margin;
        self.inner
            .tokens
            .get_or_fetch(&key, margin, || iam::exchange(exchange))
            .await
            .map(drop)
            .map_err(|outcome| scrub_outcome(outcome, &redactor))
    }

    /// Where an IAM password goes for a reset at `endpoint`, if the configuration allows it.
    fn password_target(
        &self,
        endpoint: &Endpoint,
        iam_endpoint: Option<&Url>,
    ) -> Result<Url, IamEndpointError> {
        let iam = iam_endpoint
            .cloned()
            .unwrap_or_else(|| endpoint.default_iam_endpoint());
        let shown = shown_url(&iam);
        // Plain http to IAM sends the password in clear: only in insecure mode.
        if iam.scheme() != "https" && !self.inner.config.insecure_allow_http {
            return Err(IamEndpointError::NotHttps { iam: shown });
        }
        // The Secret names the IAM endpoint: it gets the password only if allowed.
        let policy = &self.inner.config.iam_endpoints;
        match policy.check(&iam) {
            Ok(()) => Ok(iam),
            Err(EndpointError::NotAllowed { .. }) => Err(IamEndpointError::NotAllowed {
                iam: shown,
                allowed: policy.allowed_list(),
            }),
            Err(EndpointError::InsecureScheme(_)) => Err(IamEndpointError::NotHttps { iam: shown }),
            Err(source) => Err(IamEndpointError::Invalid { iam: shown, source }),
        }
    }

    /// A client with these timeouts, CA and limits. Proxies come from the environment
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`); redirects are never followed (they could
    /// carry the credentials elsewhere).
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|source| ClientError::ReadCaFile {
                path: path.clone(),
                source,
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                ClientError::InvalidCaFile {
                    path: path.clone(),
                    source,
                }
            })?;
            if certificates.is_empty() {
                return Err(ClientError::NoCaCertificate { path: path.clone() });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(ClientError::Http)?;
        let tokens = TokenCache::new(config.max_cached_tokens);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                tokens,
            }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Call `POST .../multi-tasks/{task_id}/reset` once (with IAM password credentials: once
    /// more with a fresh token if the first answer is a 401) and say what came of it.
    pub async fn reset(&self, request: &ResetRequest, credentials: &Credentials) -> ResetOutcome {
        self.reset_until(request, credentials, &CancellationToken::new())
            .await
    }

    /// As [`RomaClient::reset`], but once `stop` is cancelled no second POST is sent: a 401
    /// answer is returned as it is instead of being retried with a fresh IAM token.
    pub async fn reset_until(
        &self,
        request: &ResetRequest,
        credentials: &Credentials,
        stop: &CancellationToken,
    ) -> ResetOutcome {
        let redactor = Redactor::new(credentials.secrets());
        let outcome = self
            .reset_unscrubbed(request, credentials, &redactor, stop)
            .await;
        let outcome = scrub_outcome(outcome, &redactor);
        tracing::debug!(
            endpoint = %request.endpoint,
            project_id = %request.project_id,
            instance_id = %request.instance_id,
            task_id = %request.task_id,
            credentials = credentials.kind(),
            outcome = %outcome,
            "ROMA reset call"
        );
        outcome
    }

    async fn reset_unscrubbed(
        &self,
        request: &ResetRequest,
        credentials: &Credentials,
        redactor: &Redactor,
        stop: &CancellationToken,
    ) -> ResetOutcome {
        let url = match request.endpoint.reset_url(
            &request.project_id,
            &request.instance_id,
            &request.task_id,
        ) {
            Ok(url) => url,
            Err(err) => {
                return ResetOutcome::NotSent {
                    reason: format!("invalid request, not sent: {err}"),
                };
            }
        };
        let body = match request.date_from_ms {
            Some(ms) => serde_json::json!({ "date_from": ms }).to_string(),
            None => "{}".to_owned(),
        };
        match credentials {
            Credentials::Token(token) => {
                self.send(&url, request, &body, Auth::Token(token), redactor)
                    .await
            }
            Credentials::AccessKey {
                access_key,
                secret_key,
                security_token,
            } => {
                let auth = Auth::Signed {
                    access_key,
                    secret_key,
                    security_token: security_token.as_ref(),
                };
                self.send(&url, request, &body, auth, redactor).await
            }
            Credentials::Password {
                username,
                password,
                domain_name,
                iam_endpoint,
            } => {
                // A configuration error, not a refusal: nobody was asked.
                let iam = match self.password_target(&request.endpoint, iam_endpoint.as_ref()) {
                    Ok(iam) => iam,
                    Err(err) => {
                        return ResetOutcome::NotSent {
                            reason: err.to_string(),
                        };
                    }
                };
                let key =
                    iam::cache_key(&iam, domain_name, username, password, &request.project_id);
                let exchange = || Exchange {
                    http: &self.inner.http,
                    iam: &iam,
                    username,
                    password,
                    domain_name,
                    project_id: &request.project_id,
                    max_body_bytes: self.inner.config.max_body_bytes,
                    max_token_bytes: self.inner.config.max_token_bytes,
                    timeout: self.inner.config.iam_timeout,
                    redactor,
                };
                let margin = self.inner.config.token_refresh_margin;
                let mut refreshed = false;
                loop {
                    let token = match self
                        .inner
                        .tokens
                        .get_or_fetch(&key, margin, || iam::exchange(exchange()))
                        .await
                    {
                        Ok(token) => token,
                        Err(outcome) => return outcome,
                    };
                    let with_token = redactor.with(token.expose_secret());
                    let answer = self
                        .send(&url, request, &body, Auth::Token(&token), &with_token)
                        .await;
                    let answer = scrub_outcome(answer, &with_token);
                    let rejected = matches!(
                        answer,
                        ResetOutcome::HttpError {
                            http_status: 401,
                            ..
                        }
                    );
                    if refreshed || !rejected || stop.is_cancelled() {
                        return answer;
                    }
                    // The token died early (password or permission change): one fresh try.
                    tracing::debug!(task_id = %request.task_id, "ROMA answered 401: refreshing the IAM token once");
                    self.inner.tokens.invalidate(&key, &token).await;
                    refreshed = true;
                }
            }
        }
    }

    /// One HTTP attempt.
    async fn send(
        &self,
        url: &Url,
        request: &ResetRequest,
        body: &str,
        auth: Auth<'_>,
        redactor: &Redactor,
    ) -> ResetOutcome {
        let host = request.endpoint.host_header();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(RESET_CONTENT_TYPE));
        match auth {
            Auth::Token(token) => match sensitive(token.expose_secret()) {
                Some(value) => {
                    headers.insert("x-auth-token", value);
                }
                None => {
                    return unsendable(
                        "InvalidToken",
                        "the token holds a line break or another character that cannot be sent in an HTTP header",
                    );
                }
            },
            Auth::Signed {
                access_key,
                secret_key,
                security_token,
            } => {
                let mut to_sign = vec![
                    ("Content-Type".to_owned(), RESET_CONTENT_TYPE.to_owned()),
                    (
                        roma_signer::HEADER_PROJECT_ID.to_owned(),
                        request.project_id.clone(),
                    ),
                ];
                if let Some(token) = security_token {
                    to_sign.push((
                        roma_signer::HEADER_SECURITY_TOKEN.to_owned(),
                        token.expose_secret().to_owned(),
                    ));
                }
                let unsigned = roma_signer::Request {
                    method: "POST",
                    path: url.path(),
                    query: Vec::new(),
                    headers: to_sign,
                    body: body.as_bytes(),
                };
                let signed = match roma_signer::sign(
                    &unsigned,
                    &host,
                    access_key,
                    secret_key.expose_secret(),
                    SystemTime::now(),
                ) {
                    Ok(signed) => signed,
                    Err(err) => return not_sent(&format!("cannot sign the request: {err}")),
                };
                for (name, value) in signed.headers {
                    let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                        return not_sent("a signed header name cannot be sent");
                    };
                    let Some(value) = sensitive(&value) else {
                        return unsendable(
                            "InvalidAccessKey",
                            "the access key or security token holds a line break or another character that cannot be sent in an HTTP header",
                        );
                    };
                    headers.insert(name, value);
                }
            }
        }
        // The signature covers Host: send exactly the value signed.
        match HeaderValue::from_str(&host) {
            Ok(value) => {
                headers.insert(HOST, value);
            }
            Err(_) => return not_sent("the endpoint's host cannot be sent"),
        }
        let response = match self
            .inner
            .http
            .post(url.clone())
            .headers(headers)
            .body(body.to_owned())
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return transport_outcome(&err),
        };
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| redactor.show(v, MAX_REQUEST_ID_CHARS))
            .filter(|v| !v.is_empty());
        let cap = self.inner.config.max_body_bytes;
        let (bytes, read_error) = read_capped(response, cap).await;
        if let Some(err) = &read_error {
            tracing::debug!(status, error = %err, "ROMA answer body could not be read completely");
        }
        // Secrets go before anything else reads the text: a body cut at the cap may end with
        // the first characters of one.
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if bytes.len() >= cap {
            text = redactor.scrub_cut_tail(&text);
        }
        if status == 200
            && let Some(message) = parse_success_message(text.as_bytes(), redactor)
        {
            return ResetOutcome::Succeeded {
                http_status: status,
                message,
                request_id,
            };
        }
        let error = parse_error_body(status, text.as_bytes(), redactor);
        if status == 401 {
            // Nothing of a 401's text is copied: only a documented code, and what it means.
            let code = if error.structured && is_documented_code(&error.code) {
                error.code
            } else {
                "401".to_owned()
            };
            return ResetOutcome::HttpError {
                http_status: status,
                error_message: gateway_refusal(&code).to_owned(),
                error_code: code,
                request_id,
                structured: error.structured,
            };
        }
        ResetOutcome::HttpError {
            http_status: status,
            error_code: error.code,
            error_message: error.message,
            request_id,
            structured: error.structured,
        }
    }
}

fn not_sent(reason: &str) -> ResetOutcome {
    ResetOutcome::NotSent {
        reason: reason.to_owned(),
    }
}

/// Credentials that cannot go on the wire: no request is made, and no retry can help until
/// the Secret is fixed.
fn unsendable(code: &str, what: &str) -> ResetOutcome {
    ResetOutcome::CredentialsRejected {
        http_status: None,
        error_code: code.to_owned(),
        error_message: format!("{what}; fix the Secret (no request was made)"),
        request_id: None,
    }
}

/// What a gateway 401 means, by its documented code.
fn gateway_refusal(code: &str) -> &'static str {
    match code {
        "APIGW.0301" => {
            "the gateway refused the credentials (a bad or expired token, a wrong AK/SK signature or an unknown access key)"
        }
        "APIGW.0303" => {
            "the gateway refused the signature as expired: the controller's clock is more than 15 minutes off"
        }
        _ => "the gateway refused the credentials",
    }
}

/// A header value marked sensitive (kept out of the HTTP stack's debug output).
fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The last line of defence: every text field of the outcome through `redactor` (they were
/// built from redacted text already; this also covers transport error messages).
fn scrub_outcome(outcome: ResetOutcome, redactor: &Redactor) -> ResetOutcome {
    let s = |text: String| redactor.scrub(&text);
    let id = |id: Option<String>| id.map(s);
    match outcome {
        ResetOutcome::Succeeded {
            http_status,
            message,
            request_id,
        } => ResetOutcome::Succeeded {
            http_status,
            message: s(message),
            request_id: id(request_id),
        },
        ResetOutcome::HttpError {
            http_status,
            error_code,
            error_message,
            request_id,
            structured,
        } => ResetOutcome::HttpError {
            http_status,
            error_code: s(error_code),
            error_message: s(error_message),
            request_id: id(request_id),
            structured,
        },
        ResetOutcome::NotSent { reason } => ResetOutcome::NotSent { reason: s(reason) },
        ResetOutcome::Ambiguous { reason } => ResetOutcome::Ambiguous { reason: s(reason) },
        ResetOutcome::CredentialsRejected {
            http_status,
            error_code,
            error_message,
            request_id,
        } => ResetOutcome::CredentialsRejected {
            http_status,
            error_code: s(error_code),
            error_message: s(error_message),
            request_id: id(request_id),
        },
    }
}
