//! The simulator's mutable state: credentials it accepts, scripts, the call log, its clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use super::config::RomaConfig;
use super::step::Step;

/// How a reset call presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthKind {
    /// `X-Auth-Token` with a token added by [`super::RomaHandle::add_token`] (or unknown).
    Token,
    /// `X-Auth-Token` with a token this simulator's IAM issued.
    IamToken,
    /// An SDK-HMAC-SHA256 `Authorization` header.
    AccessKey,
    /// No credentials at all.
    None,
}

/// One reset call, as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// `{project_id}` of the path.
    pub project_id: String,
    /// `{instance_id}` of the path.
    pub instance_id: String,
    /// `{task_id}` of the path.
    pub task_id: String,
    /// `date_from` of the body, if sent.
    pub date_from: Option<i64>,
    /// How the caller authenticated.
    pub auth: AuthKind,
    /// When the call arrived (the simulator's clock).
    #[serde(serialize_with = "epoch_millis")]
    pub at: SystemTime,
    /// The status answered; `None` when the connection was dropped without an answer.
    pub status: Option<u16>,
    /// Whether the reset took effect (a 200, or [`Step::DropAfterExecute`]).
    pub executed: bool,
    /// Whether the caller cannot know what happened (connection dropped).
    pub ambiguous: bool,
    /// The `X-Request-Id` of the answer.
    pub request_id: String,
}

fn epoch_millis<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    s.serialize_u64(ms)
}

/// A token the reset endpoint accepts.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub issued_by_iam: bool,
    pub expires_at: Option<SystemTime>,
    /// Set by `expire_tokens`: answers "token expires" from then on.
    pub expired: bool,
}

/// An access key the reset endpoint accepts.
#[derive(Debug, Clone)]
pub(crate) struct AccessKey {
    pub secret_key: String,
    pub security_token: Option<String>,
    pub consecutive_failures: u32,
    pub locked_until: Option<Instant>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub tokens: HashMap<String, TokenInfo>,
    pub access_keys: HashMap<String, AccessKey>,
    /// (domain, user) -> password.
    pub users: HashMap<(String, String), String>,
    pub scripts: HashMap<String, VecDeque<Step>>,
    pub default_step: Step,
    pub latency: Duration,
    /// Added to IAM token exchanges only, after `latency`.
    pub iam_latency: Duration,
    pub calls: Vec<CallRecord>,
    pub iam_calls: usize,
    pub frozen_clock: Option<SystemTime>,
    pub next_id: u64,
}

/// Shared by the server's connections and the handle.
#[derive(Debug)]
pub(crate) struct State {
    pub config: RomaConfig,
    inner: Mutex<Inner>,
}

impl State {
    pub fn new(config: RomaConfig) -> Self {
        let latency = config.latency;
        Self {
            config,
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                access_keys: HashMap::new(),
                users: HashMap::new(),
                scripts: HashMap::new(),
                default_step: Step::Succeed,
                latency,
                iam_latency: Duration::ZERO,
                calls: Vec::new(),
                iam_calls: 0,
                frozen_clock: None,
                next_id: 1,
            }),
        }
    }

    /// The state, also after a panic elsewhere (the data stays consistent: every update is a
    /// single assignment or push).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulator's clock: real time unless frozen.
    pub fn now(&self) -> SystemTime {
        self.lock().frozen_clock.unwrap_or_else(SystemTime::now)
    }

    /// A fresh `X-Request-Id`.
    pub fn request_id(&self) -> String {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        format!("sim-{id:012x}")
    }

    /// The next scripted step for `task_id`, or the default one.
    pub fn next_step(&self, task_id: &str) -> Step {
        let mut inner = self.lock();
        let scripted = inner.scripts.get_mut(task_id).and_then(VecDeque::pop_front);
        scripted.unwrap_or_else(|| inner.default_step.clone())
    }

    /// Accept `token` in `X-Auth-Token`, with no expiry.
    pub fn add_token(&self, token: &str) {
        self.lock().tokens.insert(
            token.to_owned(),
            TokenInfo {
                issued_by_iam: false,
                expires_at: None,
                expired: false,
            },
        );
    }

    /// Accept an access key, with a security token for temporary credentials.
    pub fn add_access_key(&self, ak: &str, sk: &str, security_token: Option<String>) {
        self.lock().access_keys.insert(
            ak.to_owned(),
            AccessKey {
                secret_key: sk.to_owned(),
                security_token,
                consecutive_failures: 0,
                locked_until: None,
            },
        );
    }

    /// Every token known so far answers "token expires" from now on.
    pub fn expire_tokens(&self) {
        for token in self.lock().tokens.values_mut() {
            token.expired = true;
        }
    }

    pub fn record(&self, call: CallRecord) {
        self.lock().calls.push(call);
    }
}
