//! Figures: percentiles, per-verb API costs, the table and the JSON summary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use taskreset_simulators::kube_api::RequestRecord;

/// Nearest-rank percentile of sorted `values` (`p` in 0..=100).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Requests and bytes of one kind of API request, per reset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerbCost {
    /// Requests per reset.
    pub requests: f64,
    /// Request body bytes per reset.
    pub bytes_in: f64,
    /// Response body bytes per reset (0 for watches: see `watch_bytes_per_reset`).
    pub bytes_out: f64,
    /// Mean time the simulator took to answer one (for a watch: to send the head), in ms.
    pub mean_ms: f64,
    #[serde(skip)]
    count: u64,
    #[serde(skip)]
    micros: u64,
}

/// Per `verb resource[/subresource]` and per verb, divided by `resets`.
pub fn api_costs(
    records: &[RequestRecord],
    resets: usize,
) -> (BTreeMap<String, VerbCost>, BTreeMap<String, VerbCost>) {
    let per = resets.max(1) as f64;
    let mut detail: BTreeMap<String, VerbCost> = BTreeMap::new();
    let mut by_verb: BTreeMap<String, VerbCost> = BTreeMap::new();
    for r in records {
        let verb = if r.verb.is_empty() {
            "other".to_owned()
        } else {
            r.verb.clone()
        };
        let mut what = format!("{verb} {}", r.resource);
        if !r.subresource.is_empty() {
            what = format!("{what}/{}", r.subresource);
        }
        for (map, key) in [(&mut detail, what), (&mut by_verb, verb)] {
            let cost = map.entry(key).or_default();
            cost.requests += 1.0 / per;
            cost.bytes_in += r.bytes_in as f64 / per;
            cost.bytes_out += r.bytes_out as f64 / per;
            cost.count += 1;
            cost.micros += r.duration_micros;
        }
    }
    for cost in detail.values_mut().chain(by_verb.values_mut()) {
        cost.mean_ms = cost.micros as f64 / cost.count.max(1) as f64 / 1000.0;
    }
    (detail, by_verb)
}

/// Phase 1: the backlog.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// Objects created before the controller started.
    pub objects: usize,
    /// Namespaces they were spread over.
    pub namespaces: usize,
    /// How long creating them took (server-side apply, 16 at a time).
    pub create_seconds: f64,
    /// Controller spawn to `/readyz` 200 (the 10,000 objects listed and cached).
    pub ready_seconds: f64,
    /// Controller spawn to the last object seen `Succeeded` by the watch.
    pub all_succeeded_seconds: f64,
    /// objects / all_succeeded_seconds.
    pub resets_per_second: f64,
    /// First to last ROMA call (the simulator's clock).
    pub call_span_seconds: f64,
    /// objects / call_span_seconds.
    pub call_rate_per_second: f64,
    /// max-concurrent-resets / ROMA latency.
    pub bound_per_second: f64,
    /// resets_per_second / bound_per_second.
    pub ratio_to_bound: f64,
}

/// Phase 1's costs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cost {
    /// Kubernetes API requests per reset, all kinds.
    pub api_requests_per_reset: f64,
    /// Request + response body bytes per reset (watch streams excluded).
    pub api_bytes_per_reset: f64,
    /// Bytes a watch on all TaskResets received, per reset (the controller's watch receives
    /// the same stream).
    pub watch_bytes_per_reset: f64,
    /// Watch events on TaskResets per reset.
    pub watch_events_per_reset: f64,
    /// Per verb.
    pub by_verb: BTreeMap<String, VerbCost>,
    /// Per verb and resource.
    pub by_request: BTreeMap<String, VerbCost>,
    /// ROMA calls per reset (must be 1).
    pub roma_calls_per_reset: f64,
    /// Calls beyond the first for one task (must be 0).
    pub duplicate_calls: usize,
    /// Controller CPU (user + system) per 1,000 resets, start-up included.
    pub controller_cpu_seconds_per_1000: f64,
    /// The benchmark process's CPU (both simulators, the observer) per 1,000 resets.
    pub simulators_cpu_seconds_per_1000: f64,
    /// Controller VmHWM after the backlog.
    pub peak_rss_mib: f64,
    /// Error answers by `verb resource: status` (409s are lost optimistic-lock races).
    pub api_errors: BTreeMap<String, u64>,
    /// List requests on TaskResets (pages; more than one list means a relist).
    pub taskreset_list_pages: u64,
    /// Warnings in the controller's log.
    pub controller_warnings: usize,
    /// Watches the observer re-opened / relists it made (0 expected).
    pub observer_rewatches: u32,
}

/// Phase 2: a restart with every object terminal, then nothing to do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Idle {
    /// Terminal objects in the cluster.
    pub objects: usize,
    /// Spawn to `/readyz` 200.
    pub ready_seconds: f64,
    /// How long the idle window lasted.
    pub window_seconds: f64,
    /// CPU used in the window, as a share of one core (percent).
    pub cpu_percent: f64,
    /// VmRSS at the end of the window.
    pub rss_mib: f64,
    /// VmHWM at the end of the window.
    pub peak_rss_mib: f64,
    /// Threads.
    pub threads: u64,
    /// Kubernetes API requests in the window.
    pub api_requests: u64,
    /// ROMA calls from the restart to the end of the window (must be 0).
    pub roma_calls: usize,
    /// Kubernetes API requests from the restart until ready (the initial list).
    pub startup_api_requests: u64,
    /// How long the SIGTERM of the first controller took to end it.
    pub previous_shutdown_seconds: f64,
}

/// Phase 3: a steady stream of new objects.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Objects created.
    pub objects: usize,
    /// Rate asked for.
    pub target_per_second: f64,
    /// Objects / time the creation schedule took.
    pub achieved_per_second: f64,
    /// Create returned -> first seen `Succeeded` on the watch, percentiles in ms.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Worst.
    pub max_ms: f64,
    /// Median round trip of one create (server-side apply).
    pub create_p50_ms: f64,
    /// Controller CPU per 1,000 resets in this phase.
    pub controller_cpu_seconds_per_1000: f64,
    /// Controller VmRSS at the end.
    pub rss_mib: f64,
}

/// Phase 5: fairness between namespaces (issue 11.5).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fairness {
    /// TaskResets in the noisy namespace, all with a token the gateway rejects (401).
    pub noisy_objects: usize,
    /// Create of the other namespace's TaskReset -> first seen `Succeeded`.
    pub waited_seconds: f64,
    /// Issue 11.5's target.
    pub target_seconds: f64,
    /// 401 calls of the noisy namespace from the controller's start to that `Succeeded`.
    pub rejected_calls: usize,
    /// The controller's limits in this phase.
    pub limits: String,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// When and where.
    pub machine: BTreeMap<String, String>,
    /// Controller flags that matter.
    pub settings: BTreeMap<String, String>,
    /// Phase 1.
    pub throughput: Throughput,
    /// Phase 1's costs.
    pub cost: Cost,
    /// Phase 2.
    pub idle: Idle,
    /// Phase 3.
    pub latency: Latency,
    /// Phase 5.
    pub fairness: Fairness,
    /// Total ROMA calls / total objects (must be 1), over the whole run.
    pub roma_calls_per_object: f64,
    /// Objects that did not end `Succeeded`, or calls beyond one per object.
    pub problems: Vec<String>,
    /// Wall time of the whole run.
    pub run_seconds: f64,
}

/// MiB from bytes.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn row(out: &mut String, name: &str, value: String) {
    out.push_str(&format!("| {name:<58} | {value:>18} |\n"));
}

/// The human-readable table.
pub fn table(s: &Summary) -> String {
    let t = &s.throughput;
    let c = &s.cost;
    let i = &s.idle;
    let l = &s.latency;
    let mut out = String::new();
    out.push_str(&format!("| {:<58} | {:>18} |\n", "metric", "value"));
    out.push_str(&format!("|{}|{}|\n", "-".repeat(60), "-".repeat(20)));
    row(
        &mut out,
        "1. throughput: objects (namespaces)",
        format!("{} ({})", t.objects, t.namespaces),
    );
    row(
        &mut out,
        "   spawn -> /readyz (s)",
        format!("{:.2}", t.ready_seconds),
    );
    row(
        &mut out,
        "   spawn -> all Succeeded (s)",
        format!("{:.2}", t.all_succeeded_seconds),
    );
    row(
        &mut out,
        "   resets/s (spawn -> all Succeeded)",
        format!("{:.0}", t.resets_per_second),
    );
    row(
        &mut out,
        "   resets/s (first -> last ROMA call)",
        format!("{:.0}", t.call_rate_per_second),
    );
    row(
        &mut out,
        "   bound: concurrency / ROMA latency (/s)",
        format!("{:.0}", t.bound_per_second),
    );
    row(
        &mut out,
        "   ratio to bound",
        format!("{:.3}", t.ratio_to_bound),
    );
    row(
        &mut out,
        "2. latency: objects at target rate (/s)",
        format!("{} at {:.0}", l.objects, l.target_per_second),
    );
    row(
        &mut out,
        "   achieved create rate (/s)",
        format!("{:.1}", l.achieved_per_second),
    );
    row(
        &mut out,
        "   create returned -> Succeeded p50 (ms)",
        format!("{:.1}", l.p50_ms),
    );
    row(&mut out, "   p95 (ms)", format!("{:.1}", l.p95_ms));
    row(&mut out, "   p99 (ms)", format!("{:.1}", l.p99_ms));
    row(&mut out, "   max (ms)", format!("{:.1}", l.max_ms));
    row(
        &mut out,
        "   controller CPU s per 1,000 resets (steady)",
        format!("{:.2}", l.controller_cpu_seconds_per_1000),
    );
    row(
        &mut out,
        "3. cost: API requests per reset",
        format!("{:.2}", c.api_requests_per_reset),
    );
    for (verb, cost) in &c.by_verb {
        row(
            &mut out,
            &format!("   {verb}: requests / bytes (in+out) per reset"),
            format!(
                "{:.2} / {:.0}",
                cost.requests,
                cost.bytes_in + cost.bytes_out
            ),
        );
    }
    row(
        &mut out,
        "   API body bytes per reset (no watch)",
        format!("{:.0}", c.api_bytes_per_reset),
    );
    row(
        &mut out,
        "   watch events per reset",
        format!("{:.2}", c.watch_events_per_reset),
    );
    row(
        &mut out,
        "   watch bytes per reset",
        format!("{:.0}", c.watch_bytes_per_reset),
    );
    row(
        &mut out,
        "   API error answers (all kinds)",
        format!("{}", c.api_errors.values().sum::<u64>()),
    );
    row(
        &mut out,
        "   TaskReset list pages (20 = one list of 10,000)",
        format!("{}", c.taskreset_list_pages),
    );
    row(
        &mut out,
        "   ROMA calls per reset",
        format!("{:.3}", c.roma_calls_per_reset),
    );
    row(
        &mut out,
        "   duplicate ROMA calls",
        format!("{}", c.duplicate_calls),
    );
    row(
        &mut out,
        "   controller CPU s per 1,000 resets (backlog)",
        format!("{:.2}", c.controller_cpu_seconds_per_1000),
    );
    row(
        &mut out,
        "   simulators CPU s per 1,000 resets (backlog)",
        format!("{:.2}", c.simulators_cpu_seconds_per_1000),
    );
    row(
        &mut out,
        "   controller peak RSS, VmHWM (MiB)",
        format!("{:.1}", c.peak_rss_mib),
    );
    row(
        &mut out,
        "4. idle: terminal objects",
        format!("{}", i.objects),
    );
    row(
        &mut out,
        "   spawn -> /readyz (s)",
        format!("{:.2}", i.ready_seconds),
    );
    row(
        &mut out,
        "   RSS / VmHWM (MiB)",
        format!("{:.1} / {:.1}", i.rss_mib, i.peak_rss_mib),
    );
    row(
        &mut out,
        "   CPU (% of a core)",
        format!("{:.2}", i.cpu_percent),
    );
    row(
        &mut out,
        "   API requests / ROMA calls while idle",
        format!("{} / {}", i.api_requests, i.roma_calls),
    );
    let f = &s.fairness;
    row(
        &mut out,
        "5. fairness: noisy objects (401) / their calls meanwhile",
        format!("{} / {}", f.noisy_objects, f.rejected_calls),
    );
    row(
        &mut out,
        "   other namespace: create -> Succeeded (s)",
        format!("{:.2} (target {:.0})", f.waited_seconds, f.target_seconds),
    );
    row(
        &mut out,
        "ROMA calls per object (whole run)",
        format!("{:.3}", s.roma_calls_per_object),
    );
    row(&mut out, "problems", format!("{}", s.problems.len()));
    out
}
