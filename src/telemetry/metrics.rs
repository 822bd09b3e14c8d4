//! Prometheus metrics of the controller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::process::ProcessCollector;
use crate::roma::OutcomeClass;

/// The `outcome` of a call that ended before it was classified (cut short, e.g. by shutdown).
pub const ABORTED: &str = "aborted";

/// The `reason` values of `taskreset_reconcile_errors_total`: what
/// [`crate::reconciler::Error::metric_label`] returns.
pub const RECONCILE_ERROR_REASONS: [&str; 4] =
    ["ledger", "forbidden", "api_error", "api_unreachable"];

/// The `outcome` values of `taskreset_resets_total`: every [`OutcomeClass`], then
/// [`ABORTED`].
pub fn reset_outcomes() -> impl Iterator<Item = &'static str> {
    OutcomeClass::ALL
        .iter()
        .map(|class| class.as_str())
        .chain([ABORTED])
}

/// The `result` values of `taskreset_reconcile_duration_seconds`: the object waits for its
/// next change (`done`), is looked at again after a delay (`requeued`), or the reconcile
/// failed (`error`, by reason in `taskreset_reconcile_errors_total`).
pub const RECONCILE_RESULTS: [&str; 3] = ["done", "requeued", "error"];

/// The `git_commit` of `taskreset_build_info`: `TASKRESET_GIT_COMMIT` at build time (the
/// image build sets it from its `REVISION` argument), else `unknown`.
pub const GIT_COMMIT: &str = match option_env!("TASKRESET_GIT_COMMIT") {
    Some(commit) if !commit.is_empty() => commit,
    _ => "unknown",
};

/// The labels of `taskreset_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfo {
    version: String,
    git_commit: String,
}

/// A reconcile's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileResult {
    result: String,
}

/// A label set with one value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

/// A label set naming an error category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorReason {
    reason: String,
}

/// The controller's metrics, all under the `taskreset_` prefix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_duration: Family<ReconcileResult, Histogram>,
    reconcile_errors: Family<ErrorReason, Counter>,
    resets: Family<Outcome, Counter>,
    reset_duration: Histogram,
    in_flight: Gauge,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("taskreset");
        let reconciles = Counter::default();
        // 1 ms .. ~65 s
        let reconcile_duration = Family::<ReconcileResult, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 9))
        });
        let build_info = Family::<BuildInfo, Gauge>::default();
        build_info
            .get_or_create(&BuildInfo {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                git_commit: GIT_COMMIT.to_owned(),
            })
            .set(1);
        let reconcile_errors = Family::<ErrorReason, Counter>::default();
        let resets = Family::<Outcome, Counter>::default();
        // 10 ms .. ~80 s
        let reset_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let in_flight = Gauge::default();
        let leader = Gauge::default();
        // Every series exists from the start, at 0: `increase()` over a series born at 1 with
        // its first event is 0, and an alert would miss the first bad call after a start.
        for reason in RECONCILE_ERROR_REASONS {
            drop(reconcile_errors.get_or_create(&ErrorReason {
                reason: reason.to_owned(),
            }));
        }
        for outcome in reset_outcomes() {
            drop(resets.get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            }));
        }
        for result in RECONCILE_RESULTS {
            drop(reconcile_duration.get_or_create(&ReconcileResult {
                result: result.to_owned(),
            }));
        }
        registry.register(
            "build_info",
            "1, labelled with the controller's version and the git commit it was built from",
            build_info,
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            format!(
                "Duration of reconciles, by result ({})",
                RECONCILE_RESULTS.join(", ")
            ),
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            format!(
                "Reconciles that failed, by reason ({})",
                RECONCILE_ERROR_REASONS.join(", ")
            ),
            reconcile_errors.clone(),
        );
        registry.register(
            "resets",
            format!(
                "Reset calls made, by outcome ({})",
                reset_outcomes().collect::<Vec<_>>().join(", ")
            ),
            resets.clone(),
        );
        registry.register(
            "reset_duration_seconds",
            "Duration of reset calls",
            reset_duration.clone(),
        );
        registry.register(
            "resets_in_flight",
            "Reset calls in flight",
            in_flight.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without leader election)",
            leader.clone(),
        );
        Self {
            registry: root,
            reconciles,
            reconcile_duration,
            reconcile_errors,
            resets,
            reset_duration,
            in_flight,
            leader,
        }
    }
}

impl Metrics {
    /// Count one reconcile.
    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    /// Record a finished reconcile: its `result`, one of [`RECONCILE_RESULTS`], and how long
    /// it took.
    pub fn reconcile_finished(&self, result: &'static str, took: std::time::Duration) {
        debug_assert!(
            RECONCILE_RESULTS.contains(&result),
            "result {result:?} is not in RECONCILE_RESULTS (and so not created at 0 nor documented)"
        );
        self.reconcile_duration
            .get_or_create(&ReconcileResult {
                result: result.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Count one failed reconcile under `reason`, one of [`RECONCILE_ERROR_REASONS`].
    pub fn reconcile_failed(&self, reason: &str) {
        debug_assert!(
            RECONCILE_ERROR_REASONS.contains(&reason),
            "reason {reason:?} is not in RECONCILE_ERROR_REASONS (and so not created at 0 nor documented)"
        );
        self.reconcile_errors
            .get_or_create(&ErrorReason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Mark a call as started; the returned guard ends it (in-flight gauge, duration, outcome).
    pub fn call_started(&self) -> CallTimer<'_> {
        self.in_flight.inc();
        CallTimer {
            metrics: self,
            started: std::time::Instant::now(),
            outcome: ABORTED,
        }
    }

    /// Record whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The exposition in `format`.
    pub fn encode_as(&self, format: Format) -> Result<String, std::fmt::Error> {
        let openmetrics = self.encode()?;
        Ok(match format {
            Format::OpenMetrics => openmetrics,
            Format::Text => openmetrics_to_text(&openmetrics),
        })
    }
}

/// An exposition format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The `Content-Type` of an exposition in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format for a request's `Accept` header: OpenMetrics when the scraper names it and
    /// likes it at least as well as the text format (Prometheus' default header does), else
    /// the Prometheus text format (also without a header, as Prometheus client libraries do).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }
}

/// The Prometheus text format 0.0.4 of an OpenMetrics exposition (as prometheus-client writes
/// it): counters are declared under their `_total` sample name, `unknown` is `untyped`, and
/// `# UNIT`, `_created` samples and `# EOF` (OpenMetrics only) are left out.
fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        let rewritten = if line == "# EOF" || line.starts_with("# UNIT ") {
            None
        } else if let Some(rest) = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)))
        {
            let (kind, rest) = rest;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let tail = if kind == "# TYPE " && tail == "unknown" {
                "untyped"
            } else {
                tail
            };
            if counters.contains(name) && !name.ends_with("_total") {
                Some(format!("{kind}{name}_total {tail}"))
            } else {
                Some(format!("{kind}{name} {tail}"))
            }
        } else if counters.iter().any(|c| {
            line.strip_prefix(c)
                .is_some_and(|r| r.starts_with("_created"))
        }) {
            None
        } else {
            Some(line.to_owned())
        };
        if let Some(line) = rewritten {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// A call in flight: dropping it records the call (in-flight gauge, duration, outcome);
/// one dropped without [`CallTimer::finish`] counts as [`ABORTED`].
#[derive(Debug)]
pub struct CallTimer<'a> {
    metrics: &'a Metrics,
    started: std::time::Instant,
    outcome: &'static str,
}

impl CallTimer<'_> {
    /// The call ended with `outcome`, an [`OutcomeClass::as_str`].
    pub fn finish(mut self, outcome: &'static str) {
        debug_assert!(
            reset_outcomes().any(|o| o == outcome),
            "outcome {outcome:?} is not an OutcomeClass name (and so not created at 0 nor documented)"
        );
        self.outcome = outcome;
    }
}

impl Drop for CallTimer<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        self.metrics
            .reset_duration
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .resets
            .get_or_create(&Outcome {
                outcome: self.outcome.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_value_is_a_series_at_zero_from_the_start() {
        let text = Metrics::default().encode().expect("encode");
        let mut series = 0;
        for outcome in reset_outcomes() {
            let line = format!("taskreset_resets_total{{outcome=\"{outcome}\"}} 0\n");
            assert!(text.contains(&line), "missing {line} in\n{text}");
            series += 1;
        }
        for class in OutcomeClass::ALL {
            assert!(reset_outcomes().any(|o| o == class.as_str()), "{class}");
        }
        for reason in RECONCILE_ERROR_REASONS {
            let line = format!("taskreset_reconcile_errors_total{{reason=\"{reason}\"}} 0\n");
            assert!(text.contains(&line), "missing {line} in\n{text}");
            series += 1;
        }
        for result in RECONCILE_RESULTS {
            let line =
                format!("taskreset_reconcile_duration_seconds_count{{result=\"{result}\"}} 0\n");
            assert!(text.contains(&line), "missing {line} in\n{text}");
            series += 1;
        }
        assert_eq!(series, 13);
    }

    #[test]
    fn the_text_format_declares_counters_by_their_sample_names() {
        let m = Metrics::default();
        m.reconciled();
        m.call_started().finish("succeeded");
        let text = m.encode_as(Format::Text).expect("encode");
        for needle in [
            "# HELP taskreset_reconciles_total Reconciles run.\n",
            "# TYPE taskreset_reconciles_total counter\ntaskreset_reconciles_total 1\n",
            "# TYPE taskreset_resets_total counter\n",
            "taskreset_resets_total{outcome=\"succeeded\"} 1\n",
            "# TYPE taskreset_reset_duration_seconds histogram\n",
            "taskreset_reset_duration_seconds_bucket{le=\"+Inf\"} 1\n",
            "# TYPE taskreset_leader gauge\ntaskreset_leader 0\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# TYPE taskreset_resets counter"), "{text}");
        // Process figures move between two scrapes; the rest is the same exposition.
        let steady = |text: String| -> String {
            text.lines()
                .filter(|l| !l.contains("process_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            steady(m.encode_as(Format::OpenMetrics).expect("encode")),
            steady(m.encode().expect("encode"))
        );
    }

    #[test]
    fn negotiation_follows_the_accept_header() {
        for (accept, format) in [
            (None, Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain; version=0.0.4"), Format::Text),
            (Some("text/plain;version=0.0.4;q=1,*/*;q=0.1"), Format::Text),
            // Prometheus 2.x and 3.x by default.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text; version=1.0.0"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.5,text/plain;q=0.9"),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
            (Some("application/json"), Format::Text),
        ] {
            assert_eq!(Format::negotiate(accept), format, "{accept:?}");
        }
    }

    #[test]
    fn exposition_names_every_metric_and_counts_calls() {
        let m = Metrics::default();
        m.reconciled();
        m.reconcile_failed("api_error");
        m.call_started().finish("succeeded");
        drop(m.call_started());
        m.set_leader(true);
        m.reconcile_finished("done", std::time::Duration::from_millis(3));
        let text = m.encode().expect("encode");
        for needle in [
            "taskreset_reconcile_duration_seconds_count{result=\"done\"} 1",
            "taskreset_reconcile_duration_seconds_bucket{le=\"0.004\",result=\"done\"} 1",
            "taskreset_reconcile_duration_seconds_bucket{le=\"0.001\",result=\"done\"} 0",
            "taskreset_reconcile_duration_seconds_count{result=\"error\"} 0",
            "taskreset_build_info{version=\"0.1.0\",git_commit=\"",
            "taskreset_reconciles_total 1",
            "taskreset_reconcile_errors_total{reason=\"api_error\"} 1",
            "taskreset_reconcile_errors_total{reason=\"ledger\"} 0",
            "taskreset_resets_total{outcome=\"succeeded\"} 1",
            "taskreset_resets_total{outcome=\"aborted\"} 1",
            "taskreset_resets_total{outcome=\"credentials_rejected\"} 0",
            "taskreset_reset_duration_seconds_count 2",
            "taskreset_resets_in_flight 0",
            "taskreset_leader 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
