//! A fault-injecting proxy between the controller and kube-apiserver: plain HTTP on loopback
//! in front of the server's TLS. Each request goes through unchanged (the identity's bearer
//! token included) unless a rule a test set matches it: then it is answered with an injected
//! Kubernetes `Status` (5xx, 409, 429), its connection is closed unanswered, or it is held
//! before it goes on. Watches can be cut mid-stream, and every request is logged with what
//! happened to it, so a test can count the faults it caused.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, TRANSFER_ENCODING};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What a rule does to a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a Kubernetes `Status` body; nothing reaches the server.
    Status(u16),
    /// Close the connection without an answer; nothing reaches the server.
    Drop,
    /// Hold the request this long, then let it through.
    Hold(Duration),
    /// Let the request through, then close the connection instead of answering: the server
    /// acted, the client cannot know.
    Lose,
}

/// Which requests a rule applies to, and how often.
#[derive(Debug, Clone)]
pub struct Rule {
    fault: Fault,
    method: Option<&'static str>,
    path: Option<String>,
    body: Option<String>,
    watch: Option<bool>,
    share: f64,
    times: Option<usize>,
}

impl Rule {
    /// Every request, every time, until narrowed.
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            method: None,
            path: None,
            body: None,
            watch: None,
            share: 1.0,
            times: None,
        }
    }

    /// Only this HTTP method (`GET`, `PUT`, ...).
    pub fn method(mut self, method: &'static str) -> Self {
        self.method = Some(method);
        self
    }

    /// Only paths containing `part`.
    pub fn path(mut self, part: &str) -> Self {
        self.path = Some(part.to_owned());
        self
    }

    /// Only request bodies containing `part`.
    pub fn body(mut self, part: &str) -> Self {
        self.body = Some(part.to_owned());
        self
    }

    /// Only watches (`true`) or only other requests (`false`).
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Only this share of the matching requests, drawn at random.
    pub fn share(mut self, share: f64) -> Self {
        self.share = share;
        self
    }

    /// Only the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str, watch: bool, body: &[u8]) -> bool {
        self.method.is_none_or(|m| m == method)
            && self.path.as_deref().is_none_or(|p| path.contains(p))
            && self.watch.is_none_or(|w| w == watch)
            && self
                .body
                .as_deref()
                .is_none_or(|b| String::from_utf8_lossy(body).contains(b))
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub watch: bool,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// The status the client got (None: the connection was closed, or the upstream failed).
    pub status: Option<u16>,
}

struct State {
    upstream: kube::Client,
    rules: Mutex<Vec<Rule>>,
    /// Cancelled to cut every watch stream open at that moment.
    watches: Mutex<CancellationToken>,
    seen: Mutex<Vec<Seen>>,
    /// Requests a rule matched so far (counted before a held one goes on).
    matched: AtomicUsize,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub url: String,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listen on a free loopback port and forward to the server of `kubeconfig` (its CA
    /// trusted, its credentials not used: each request carries its client's own).
    pub async fn start(kubeconfig: &Path) -> Self {
        let mut config = super::client_config(kubeconfig).await;
        config.auth_info = kube::config::AuthInfo::default();
        // The proxy passes every answer on; only its client retries (kube's default retries
        // 429, 503 and 504 by itself).
        config.default_retry = false;
        let upstream = kube::Client::try_from(config).expect("upstream client");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the proxy");
        let addr: SocketAddr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            watches: Mutex::new(CancellationToken::new()),
            seen: Mutex::new(Vec::new()),
            matched: AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::clone(&state), stop.clone()));
        Self {
            url: format!("http://{addr}"),
            state,
            stop,
        }
    }

    /// A copy of the kubeconfig `identity` (a file of the launcher) that goes through this
    /// proxy, written to `dir`; its path.
    pub fn kubeconfig(&self, identity: &Path, dir: &Path) -> PathBuf {
        let text = std::fs::read_to_string(identity).expect("read the kubeconfig");
        let mut config: serde_json::Value = serde_json::from_str(&text).expect("a JSON kubeconfig");
        for cluster in config["clusters"].as_array_mut().expect("clusters") {
            let cluster = cluster["cluster"].as_object_mut().expect("cluster");
            cluster.insert("server".into(), self.url.clone().into());
            cluster.remove("certificate-authority-data");
        }
        let name = identity.file_name().expect("a file name").to_string_lossy();
        let path = dir.join(format!("proxied-{name}"));
        std::fs::write(&path, config.to_string()).expect("write the kubeconfig");
        path
    }

    /// Add a rule; the first matching rule with turns left applies.
    pub fn add(&self, rule: Rule) {
        self.state.rules.lock().unwrap().push(rule);
    }

    /// Remove every rule: requests go through untouched.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Cut every watch stream open now, mid-stream, as a dropped connection would.
    pub fn drop_watches(&self) {
        let mut token = self.state.watches.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    /// How many requests a rule has matched so far, a held one included.
    pub fn matched(&self) -> usize {
        self.state.matched.load(Ordering::SeqCst)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.drop_watches();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = Arc::clone(&state);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| forward(Arc::clone(&state), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// The connection was closed on purpose.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the fault proxy")]
struct Dropped;

async fn forward(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Dropped> {
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let watch = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let fault = pick(&state, &method, &path, watch, &body);
    let mut seen = Seen {
        method,
        path,
        watch,
        fault,
        status: None,
    };
    let answer = match fault {
        Some(Fault::Drop) => Err(Dropped),
        Some(Fault::Status(code)) => Ok(Some(injected(code))),
        Some(Fault::Hold(pause)) => {
            tokio::time::sleep(pause).await;
            Ok(None)
        }
        Some(Fault::Lose) | None => Ok(None),
    };
    let response = match answer {
        Err(dropped) => {
            state.seen.lock().unwrap().push(seen);
            return Err(dropped);
        }
        Ok(Some(response)) => response,
        Ok(None) => {
            for name in [HOST, CONNECTION, TRANSFER_ENCODING] {
                parts.headers.remove(name);
            }
            let upstream = Request::from_parts(parts, kube::client::Body::from(body));
            match state.upstream.send(upstream).await {
                Ok(response) => {
                    let cut = watch.then(|| state.watches.lock().unwrap().clone());
                    relay(response, cut)
                }
                Err(_) => {
                    // The server is away (a restart): the client sees a closed connection.
                    state.seen.lock().unwrap().push(seen);
                    return Err(Dropped);
                }
            }
        }
    };
    seen.status = Some(response.status().as_u16());
    state.seen.lock().unwrap().push(seen);
    if fault == Some(Fault::Lose) {
        return Err(Dropped);
    }
    Ok(response)
}

/// The fault of the first matching rule with turns left (and the luck of its share).
fn pick(state: &State, method: &str, path: &str, watch: bool, body: &[u8]) -> Option<Fault> {
    let mut rules = state.rules.lock().unwrap();
    let rule = rules.iter_mut().find(|r| {
        r.times != Some(0) && r.matches(method, path, watch, body) && fastrand::f64() < r.share
    })?;
    if let Some(n) = rule.times.as_mut() {
        *n -= 1;
    }
    state.matched.fetch_add(1, Ordering::SeqCst);
    Some(rule.fault)
}

/// A Kubernetes `Status` answer, as kube-apiserver words its own.
fn injected(code: u16) -> Response<ProxyBody> {
    let reason = match code {
        409 => "Conflict",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    };
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the fault proxy ({code})"),
        "reason": reason, "code": code,
    });
    let mut response = Response::new(
        Full::new(Bytes::from(status.to_string()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = hyper::StatusCode::from_u16(code).expect("a status code");
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if code == 429 {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The upstream answer, streamed; a watch (`cut` set) ends with an error when cut.
fn relay(
    response: Response<kube::client::Body>,
    cut: Option<CancellationToken>,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.remove(CONNECTION);
    let body = body.map_err(BoxError::from);
    let Some(cut) = cut else {
        return Response::from_parts(parts, body.boxed_unsync());
    };
    let frames = futures::stream::unfold(Some((body, cut)), |state| async move {
        let (mut body, cut) = state?;
        tokio::select! {
            frame = body.frame() => {
                let frame: Result<Frame<Bytes>, BoxError> = frame?;
                let going = frame.is_ok();
                Some((frame, going.then_some((body, cut))))
            }
            () = cut.cancelled() => Some((Err(BoxError::from("watch cut by the fault proxy")), None)),
        }
    })
    .boxed();
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}
