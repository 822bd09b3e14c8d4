//! A ROMA Connect FDI (and IAM) simulator: the reset endpoint, token and AK/SK verification.
//!
//! A real HTTP/1.1 server on loopback that answers like the API gateway in front of FDI:
//!
//! - `POST /v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}/reset` checks
//!   `X-Auth-Token` (tokens added with [`RomaHandle::add_token`] or issued by the IAM endpoint
//!   below) or an SDK-HMAC-SHA256 signature recomputed with `roma-signer` (`X-Sdk-Date` more
//!   than 15 minutes off -> 401 `APIGW.0303`; unknown access key or bad signature -> 401
//!   `APIGW.0301`; after 5 consecutive failures the access key is locked for a while), then
//!   answers with the task's next scripted [`Step`] (200 `{"message": "Reset Success"}` by
//!   default) and records the call ([`CallRecord`]).
//! - `POST /v3/auth/tokens` as IAM: password authentication scoped to a project; the token
//!   comes back in `X-Subject-Token`, its expiry in `token.expires_at`.
//! - `/_sim/...`: a JSON control API so that another process can script it:
//!   `GET /_sim/calls`, `GET /_sim/iam-calls`, `POST /_sim/script`
//!   (`{"taskId": "t", "steps": [{"kind": "fail", "status": 400, "code": "FDI.3150",
//!   "message": "..."}]}`), `POST /_sim/default` (`{"step": {...}}`), `POST /_sim/latency`
//!   (`{"ms": 100}`), `POST /_sim/tokens` (`{"token": "..."}`), `POST /_sim/access-keys`
//!   (`{"accessKey": "...", "secretKey": "...", "securityToken": null}`), `POST /_sim/users`
//!   (`{"domain": "...", "user": "...", "password": "..."}`), `POST /_sim/expire-tokens`.
//!
//! Every answer carries an `X-Request-Id`. Everything else answers 404 `APIGW.0101`.

mod auth;
mod config;
mod handlers;
mod state;
mod step;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use config::RomaConfig;
pub use state::{AuthKind, CallRecord};
pub use step::Step;

use handlers::Answer;
use state::State;

/// Largest request body the simulator reads (1 MiB); a bigger one closes the connection.
const MAX_REQUEST_BODY: usize = 1 << 20;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The error from the OS.
        source: std::io::Error,
    },
}

/// The ROMA FDI simulator; [`RomaSimulator::start`] runs one.
#[derive(Debug)]
pub struct RomaSimulator;

impl RomaSimulator {
    /// Bind `127.0.0.1:{config.port}` and serve until [`RomaHandle::shutdown`] (or until the
    /// handle is dropped).
    pub async fn start(config: RomaConfig) -> Result<RomaHandle, SimulatorError> {
        let port = config.port;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| SimulatorError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimulatorError::Bind { port, source })?;
        let state = Arc::new(State::new(config));
        let (stop_tx, stop_rx) = oneshot::channel();
        let server = tokio::spawn(serve(listener, Arc::clone(&state), stop_rx));
        tracing::debug!(%addr, "ROMA simulator listening");
        Ok(RomaHandle {
            addr,
            state,
            stop: Some(stop_tx),
            server: Some(server),
        })
    }
}

/// A running simulator: its address, its knobs, what it saw. Dropping it stops the server.
#[derive(Debug)]
pub struct RomaHandle {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl RomaHandle {
    /// Base URL of both the ROMA and the IAM endpoints, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accept `token` in `X-Auth-Token` (no expiry, until [`RomaHandle::expire_tokens`]).
    pub fn add_token(&self, token: &str) {
        self.state.add_token(token);
    }

    /// Accept AK/SK signatures made with this key pair.
    pub fn add_access_key(&self, ak: &str, sk: &str) {
        self.state.add_access_key(ak, sk, None);
    }

    /// Accept temporary AK/SK credentials: signatures must also carry this `X-Security-Token`.
    pub fn add_temporary_access_key(&self, ak: &str, sk: &str, security_token: &str) {
        self.state
            .add_access_key(ak, sk, Some(security_token.to_owned()));
    }

    /// Let IAM issue tokens for this user of this domain (account).
    pub fn add_user(&self, domain: &str, user: &str, password: &str) {
        self.state
            .lock()
            .users
            .insert((domain.to_owned(), user.to_owned()), password.to_owned());
    }

    /// From now on every known or issued token answers 401 "token expires"; tokens issued
    /// after this call are valid.
    pub fn expire_tokens(&self) {
        self.state.expire_tokens();
    }

    /// Answer the next calls for `task_id` with `steps`, one per call; afterwards the
    /// default step answers. Replaces any script left for the task.
    pub fn script(&self, task_id: &str, steps: Vec<Step>) {
        self.state
            .lock()
            .scripts
            .insert(task_id.to_owned(), steps.into_iter().collect());
    }

    /// The answer once a task's script is used up (initially [`Step::Succeed`]).
    pub fn set_default(&self, step: Step) {
        self.state.lock().default_step = step;
    }

    /// Latency added to every ROMA and IAM answer from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    /// Latency added to IAM token exchanges only, from now on (an IAM slower than the gateway).
    pub fn set_iam_latency(&self, latency: Duration) {
        self.state.lock().iam_latency = latency;
    }

    /// Freeze the simulator's clock at `at` (for signatures with a fixed `X-Sdk-Date` and
    /// token expiry), or let it follow real time again with `None`.
    pub fn freeze_clock(&self, at: Option<SystemTime>) {
        self.state.lock().frozen_clock = at;
    }

    /// Every reset call so far (refused ones too), in arrival order of their answers.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.state.lock().calls.clone()
    }

    /// The reset calls that took effect.
    pub fn executed_calls(&self) -> Vec<CallRecord> {
        self.calls().into_iter().filter(|c| c.executed).collect()
    }

    /// How many times `/v3/auth/tokens` was called.
    pub fn iam_calls(&self) -> usize {
        self.state.lock().iam_calls
    }

    /// Stop accepting, close every connection and wait for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may already be gone; nothing to stop then.
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for RomaHandle {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Accept connections until told to stop; each connection is served by hyper's HTTP/1.1.
async fn serve(listener: TcpListener, state: Arc<State>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(error = %err, "ROMA simulator: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        answer(state, request)
                    });
                    if let Err(err) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(error = %err, "ROMA simulator: connection ended");
                    }
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// The connection was closed on purpose, without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the simulator's script")]
struct Dropped;

/// Serve one request. The work runs in its own task so that a scripted reset completes (and
/// is recorded) even when the client gives up waiting.
async fn answer(
    state: Arc<State>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Dropped> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(Body::new(body), MAX_REQUEST_BODY).await else {
        return Err(Dropped);
    };
    let task = tokio::spawn(handlers::handle(state, parts, body));
    let result = match task.await {
        Ok(Answer::Respond(response)) => Ok(response),
        Ok(Answer::Drop) | Err(_) => Err(Dropped),
    };
    tracing::trace!(elapsed = ?started.elapsed(), "ROMA simulator: answered");
    result
}
