//! Telemetry: logs, Prometheus metrics, and the health/metrics HTTP server.

mod logging;
mod metrics;
mod server;

pub use logging::{LogFormat, init_logging};
pub use metrics::{Format, Metrics};
pub use server::{Health, serve};
