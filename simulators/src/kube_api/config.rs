//! The settings of the server.

use std::time::Duration;

/// Settings of a [`super::KubeApiServer`].
#[derive(Debug, Clone)]
pub struct KubeApiConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Watch events retained for watches that resume from a resourceVersion; older ones get
    /// 410 Expired.
    pub history_limit: usize,
    /// Requests kept in the request log (the counters are never trimmed).
    pub request_log_limit: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// Refuse to create a namespaced object in a Namespace that does not exist (404
    /// `namespaces "x" not found`), as kube-apiserver does. Off by default so tests can use any
    /// namespace without creating it first; the sandbox turns it on.
    pub namespaces_must_exist: bool,
}

impl Default for KubeApiConfig {
    fn default() -> Self {
        Self {
            port: 0,
            history_limit: 5000,
            request_log_limit: 100_000,
            bookmark_interval: Duration::from_secs(5),
            default_watch_timeout: Duration::from_secs(1800),
            namespaces_must_exist: false,
        }
    }
}
