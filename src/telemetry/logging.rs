//! `tracing` logs as text or JSON lines, levels from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// kube-client's HTTP layer logs every failed API request at ERROR ("failed with status 500
/// Internal Server Error"), with no object, before the controller logs the same failure once
/// with its context: its own lines are off unless `RUST_LOG` names `kube_client` itself.
const QUIET_KUBE_CLIENT: &str = "kube_client::client::builder=off";

/// The filter: `RUST_LOG` if set and valid, else `default_level`; with kube-client's
/// duplicate request-failure lines off unless the filter names `kube_client`.
fn filter(rust_log: Option<&str>, default_level: &str) -> EnvFilter {
    let directives = rust_log
        .filter(|text| !text.trim().is_empty() && EnvFilter::try_new(text).is_ok())
        .unwrap_or(default_level);
    if directives.contains("kube_client") {
        EnvFilter::new(directives)
    } else {
        EnvFilter::new(format!("{directives},{QUIET_KUBE_CLIENT}"))
    }
}

/// Install the global subscriber, at `default_level` unless `RUST_LOG` says otherwise.
/// Calling it twice is harmless (the second call is ignored), so tests and the sandbox can
/// start several controllers in one process.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    init(format, default_level, std::io::stderr, ansi);
}

/// As [`init_logging`], into `file` (the sandbox keeps its terminal for the status lines).
pub fn init_logging_to_file(format: LogFormat, default_level: &str, file: std::fs::File) {
    init(format, default_level, std::sync::Arc::new(file), false);
}

fn init<W>(format: LogFormat, default_level: &str, writer: W, ansi: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref(), default_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn kube_clients_duplicate_error_lines_are_off_unless_asked_for() {
        for (rust_log, shown) in [
            (None, "info,kube_client::client::builder=off"),
            (Some("debug"), "debug,kube_client::client::builder=off"),
            (Some("info,kube_client=debug"), "info,kube_client=debug"),
        ] {
            let text = filter(rust_log, "info").to_string();
            for directive in shown.split(',') {
                assert!(text.contains(directive), "{rust_log:?}: {text}");
            }
        }
    }
}
