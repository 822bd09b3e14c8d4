//! Prometheus metrics of the controller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    reconcile_errors: Family<ErrorReason, Counter>,
    resets: Family<Outcome, Counter>,
    reset_duration: Histogram,
    in_flight: Gauge,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("taskreset");
        let reconciles = Counter::default();
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
        registry.register("reconciles", "Reconciles run", reconciles.clone());
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
            registry,
            reconciles,
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
        assert_eq!(series, 10);
    }

    #[test]
    fn exposition_names_every_metric_and_counts_calls() {
        let m = Metrics::default();
        m.reconciled();
        m.reconcile_failed("api_error");
        m.call_started().finish("succeeded");
        drop(m.call_started());
        m.set_leader(true);
        let text = m.encode().expect("encode");
        for needle in [
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
