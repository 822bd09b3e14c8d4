//! Telemetry: logs, Prometheus metrics, and the health/metrics HTTP server.

mod logging;
mod metrics;
mod process;
mod server;

pub use logging::{LogFormat, init_logging, init_logging_to_file};
pub use metrics::{Format, GIT_COMMIT, Metrics, RECONCILE_RESULTS};
pub use server::{Health, serve};
