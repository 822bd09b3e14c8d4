//! Starting and stopping the server, and the handle tests use.

use super::config::KubeApiConfig;
use super::faults::Faults;
use super::registry::TypeKey;
use super::request_log::{RequestLog, RequestRecord};
use super::shared::Shared;
use super::store::Store;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding 127.0.0.1:port failed.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The Kubernetes-API-compatible server.
#[derive(Debug)]
pub struct KubeApiServer;

impl KubeApiServer {
    /// Binds 127.0.0.1:`config.port` and serves until [`KubeApiHandle::shutdown`] (or the
    /// handle is dropped).
    pub async fn start(config: KubeApiConfig) -> Result<KubeApiHandle, StartError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| StartError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut store = Store::new(config.history_limit);
        seed_namespaces(&mut store);
        let shared = Arc::new(Shared::new(
            store,
            RequestLog::new(config.request_log_limit),
            config,
            addr,
            shutdown_rx.clone(),
        ));
        let weak = Arc::downgrade(&shared);
        shared.faults.set_expire_hook(Box::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.store().expire_history();
            }
        }));
        let router = super::http::router(shared.clone());
        let mut stop = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            // TCP_NODELAY on every connection, as Go's net/http (kube-apiserver) does: without
            // it, delayed ACKs hold some answers back by 40 ms.
            let result = axum::serve(
                axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                router,
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "kube API simulator stopped with an error");
            }
        });
        let background = tokio::spawn(background(shared.clone(), shutdown_rx));
        tracing::info!(%addr, "kube API simulator listening");
        Ok(KubeApiHandle {
            shared,
            shutdown_tx,
            tasks: vec![server, background],
        })
    }
}

fn seed_namespaces(store: &mut Store) {
    let key = TypeKey::new("", "namespaces");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        store.put(
            &key,
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "uid": super::util::new_uid(),
                    "creationTimestamp": super::util::now_rfc3339(),
                    "labels": {"kubernetes.io/metadata.name": name},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }),
        );
    }
}

/// Watch dropping on a schedule.
async fn background(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut last_drop = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tick.tick() => {
                match shared.faults.drop_period() {
                    Some(period) if last_drop.elapsed() >= period => {
                        last_drop = Instant::now();
                        shared.faults.drop_watches_now();
                    }
                    Some(_) => {}
                    None => last_drop = Instant::now(),
                }
            }
        }
    }
}

/// A running server. Over HTTP, the same hooks are `GET /_sim/requests`,
/// `GET /_sim/counters`, `GET|POST /_sim/faults` (body: [`super::faults::FaultSettings`] JSON,
/// camelCase) and `POST /_sim/reset` (empties the log and counters).
#[derive(Debug)]
pub struct KubeApiHandle {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl KubeApiHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig for kubectl and kube::Config, with `namespace` as the context's default.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: taskreset-sim\n  cluster:\n    server: {url}\ncontexts:\n- name: taskreset-sim\n  context:\n    cluster: taskreset-sim\n    user: taskreset-sim\n    namespace: {namespace}\ncurrent-context: taskreset-sim\nusers:\n- name: taskreset-sim\n  user: {{}}\npreferences: {{}}\n",
            url = self.url(),
        )
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(namespace))
    }

    /// A kube client pointed at the server, default namespace `default`.
    pub async fn client(&self) -> kube::Client {
        let url: axum::http::Uri = match self.url().parse() {
            Ok(url) => url,
            // Built from a socket address: always a valid URI.
            Err(e) => panic!("kube API simulator URL {}: {e}", self.url()),
        };
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".to_string();
        config.read_timeout = Some(Duration::from_secs(300));
        match kube::Client::try_from(config.clone()) {
            Ok(client) => client,
            Err(e) => {
                // Building a client for plain http with no TLS settings cannot fail; if it
                // somehow does, fail loudly in the test that asked for it.
                panic!("kube client for {}: {e}", self.url())
            }
        }
    }

    /// Every request recorded (bounded by `request_log_limit`), oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.log.records()
    }

    /// Counters: per verb (`list`, `watch`, `get`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), per resource (`taskresets.fdi.roma.io`, `leases.coordination.k8s.io`,
    /// `secrets`), per `verb:resource[/subresource]`, `requests` in total and `status:<code>`
    /// for error answers.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.shared.log.counters()
    }

    /// Empties the request log and the counters.
    pub fn reset_request_log(&self) {
        self.shared.log.reset();
    }

    /// The fault settings of this server.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// An object straight from the store: `gvr` is `group/version/plural` (`v1/secrets` for
    /// core), `namespace` "" for cluster-scoped objects.
    pub fn get_json(&self, gvr: &str, namespace: &str, name: &str) -> Option<Value> {
        let parts: Vec<&str> = gvr.split('/').collect();
        let (group, plural) = match parts.as_slice() {
            [_, plural] => ("", *plural),
            [group, _, plural] => (*group, *plural),
            _ => return None,
        };
        self.shared
            .store()
            .get(&TypeKey::new(group, plural), namespace, name)
            .map(|o| (*o).clone())
    }

    /// The latest resourceVersion.
    pub fn current_resource_version(&self) -> u64 {
        self.shared.store().current_rv()
    }

    /// Stops the server: open watches end, in-flight requests finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for KubeApiHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}
