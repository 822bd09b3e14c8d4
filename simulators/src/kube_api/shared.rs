//! The state every request handler shares: the store, the request log, the faults.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use super::config::KubeApiConfig;
use super::faults::Faults;
use super::request_log::RequestLog;
use super::store::Store;

/// State shared by every request.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    pub log: RequestLog,
    pub faults: Faults,
    pub config: KubeApiConfig,
    pub addr: SocketAddr,
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// The state of a server that has just bound `addr`, with no fault set.
    pub fn new(
        store: Store,
        log: RequestLog,
        config: KubeApiConfig,
        addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store: Mutex::new(store),
            log,
            faults: Faults::new(),
            config,
            addr,
            shutdown,
        }
    }

    /// The store; a poisoned lock is taken over (every write leaves the store consistent).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}
