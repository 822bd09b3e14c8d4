//! The HTTP server for `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::{Format, Metrics};

/// What `/readyz` reports: the TaskReset watch has synced, and this replica knows whether it
/// leads or stands by.
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicBool,
    role_known: AtomicBool,
    leading: AtomicBool,
}

impl Health {
    /// The watch cache holds a full list.
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Relaxed);
    }

    /// The replica knows whether it leads (always leading without leader election).
    pub fn set_role(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
        self.role_known.store(true, Ordering::Relaxed);
    }

    /// Ready: a leader whose watch has synced, or a standby.
    pub fn is_ready(&self) -> bool {
        self.role_known.load(Ordering::Relaxed)
            && (!self.leading.load(Ordering::Relaxed) || self.synced.load(Ordering::Relaxed))
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Serve until `shutdown` is cancelled. Binding happens before this returns, so a bad
/// address is reported at start-up.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, health });
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    });
    Ok((bound, task))
}

/// `/metrics` in the format the scraper asks for (see [`Format::negotiate`]).
async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    match state.metrics.encode_as(format) {
        Ok(text) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, format.content_type()),
                (header::VARY, "Accept"),
            ],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ready_handler(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
