//! The sandbox benchmark (issue 8): the real controller binary against both simulators on
//! loopback, in one run of four phases, printing a table and a JSON summary.
//!
//! 1. Throughput: `--objects` TaskResets (10,000) created before the controller starts, ROMA
//!    latency 20 ms, `--max-concurrent-resets 64`, `--max-resets-per-second 0`: time until
//!    all are `Succeeded`, resets/s, ratio to 64 / 20 ms.
//! 2. Cost of phase 1: Kubernetes API requests and bytes per reset, ROMA calls per reset,
//!    controller CPU per 1,000 resets, peak RSS.
//! 3. Idle: the controller restarted with every object terminal: time to ready, RSS, CPU.
//! 4. Latency: new objects at a steady rate (100/s for 60 s) against the idle controller:
//!    create returned -> first seen `Succeeded` on a watch, p50/p95/p99.
//! 5. Fairness (issue 11.5): `--fairness-objects` TaskResets (1,000) in one namespace whose
//!    Secret the gateway rejects (401), a fresh controller at its default limits (16 at once,
//!    5 calls/s): how long a TaskReset of another namespace waits from create to `Succeeded`
//!    (target: 10 s).
//!
//! `cargo bench --bench sandbox` (add `-- --quick` for 500 objects and short phases;
//! `-- --controller PATH` measures another build of the binary, e.g. for a before/after). The
//! summary is also written to `target/tmp/sandbox-bench/summary[-LABEL].json`, with the
//! controller logs next to it.

mod observer;
mod process;
mod report;
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use taskreset_controller::api::TaskReset;
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiHandle, KubeApiServer};
use taskreset_simulators::roma::{RomaConfig, RomaHandle, RomaSimulator};

use observer::Observer;
use process::Controller;
use report::{Summary, mib, percentile};

/// The token every namespace's Secret holds and the ROMA simulator accepts.
const TOKEN: &str = "sandbox-bench-token";
/// The whole run stops by itself after this.
const TIME_LIMIT: Duration = Duration::from_secs(14 * 60);
/// Issue 11.5's target for phase 5.
const FAIRNESS_TARGET: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Options {
    objects: usize,
    namespaces: usize,
    concurrency: usize,
    roma_latency: Duration,
    rate: f64,
    latency_seconds: f64,
    idle_seconds: f64,
    /// Objects with rejected credentials in the noisy namespace of phase 5.
    fairness_objects: usize,
    /// The binary under test (default: this workspace's, built by cargo bench).
    controller: PathBuf,
    /// Names the summary file (`summary-LABEL.json`) and goes into the summary.
    label: String,
    /// Also write phase 1's request log (`requests[-LABEL].jsonl`).
    dump_requests: bool,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self {
            objects: 10_000,
            namespaces: 10,
            concurrency: 64,
            roma_latency: Duration::from_millis(20),
            rate: 100.0,
            latency_seconds: 60.0,
            idle_seconds: 20.0,
            fairness_objects: 1_000,
            controller: PathBuf::from(env!("CARGO_BIN_EXE_taskreset-controller")),
            label: String::new(),
            dump_requests: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            let number = |text: String, name: &str| {
                text.parse::<f64>()
                    .ok()
                    .filter(|v| *v > 0.0)
                    .ok_or_else(|| format!("{name}: {text:?} is not a positive number"))
            };
            match arg.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--quick" => {
                    options.objects = 500;
                    options.latency_seconds = 10.0;
                    options.idle_seconds = 5.0;
                }
                "--objects" => options.objects = number(value("--objects")?, "--objects")? as usize,
                "--namespaces" => {
                    options.namespaces = number(value("--namespaces")?, "--namespaces")? as usize
                }
                "--concurrency" => {
                    options.concurrency = number(value("--concurrency")?, "--concurrency")? as usize
                }
                "--roma-latency-ms" => {
                    options.roma_latency = Duration::from_secs_f64(
                        number(value("--roma-latency-ms")?, "--roma-latency-ms")? / 1000.0,
                    )
                }
                "--rate" => options.rate = number(value("--rate")?, "--rate")?,
                "--latency-seconds" => {
                    options.latency_seconds =
                        number(value("--latency-seconds")?, "--latency-seconds")?
                }
                "--controller" => options.controller = PathBuf::from(value("--controller")?),
                "--label" => options.label = value("--label")?,
                "--dump-requests" => options.dump_requests = true,
                "--idle-seconds" => {
                    options.idle_seconds = number(value("--idle-seconds")?, "--idle-seconds")?
                }
                "--fairness-objects" => {
                    options.fairness_objects =
                        number(value("--fairness-objects")?, "--fairness-objects")? as usize
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; known: --quick --objects N --namespaces N \
                         --concurrency N --roma-latency-ms MS --rate PER_S --latency-seconds S \
                         --idle-seconds S --fairness-objects N --controller PATH --label NAME \
                         --dump-requests"
                    ));
                }
            }
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("sandbox bench: {e}");
            return ExitCode::from(64);
        }
    };
    process::watchdog(TIME_LIMIT);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sandbox bench: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = if options.label.is_empty() {
        "summary.json".to_owned()
    } else {
        format!("summary-{}.json", options.label)
    };
    match runtime.block_on(run(options)) {
        Ok(summary) => {
            let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
            println!("\n{}", report::table(&summary));
            println!("{json}");
            let path = out_dir().join(file);
            if let Err(e) = std::fs::write(&path, format!("{json}\n")) {
                eprintln!("sandbox bench: cannot write {}: {e}", path.display());
            }
            if summary.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("sandbox bench: PROBLEMS: {:#?}", summary.problems);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("sandbox bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sandbox-bench")
}

fn progress(started: Instant, message: &str) {
    eprintln!("[{:>7.2}s] {message}", started.elapsed().as_secs_f64());
}

/// Both simulators, the CRD, a credentials Secret per namespace.
struct Cluster {
    kube: KubeApiHandle,
    roma: RomaHandle,
    client: kube::Client,
    http: reqwest::Client,
    kubeconfig: PathBuf,
    namespaces: Vec<String>,
}

impl Cluster {
    async fn start(options: &Options, dir: &std::path::Path) -> Result<Self, String> {
        let kube = KubeApiServer::start(KubeApiConfig {
            request_log_limit: 1_000_000,
            // The backlog writes ~2,500 objects/s (status, ledger, events). The default 5,000
            // events of watch history is two seconds of that: a watch that falls behind for a
            // moment must relist 10,000 objects. kube-apiserver's watch cache holds minutes.
            history_limit: 100_000,
            ..KubeApiConfig::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        let roma = RomaSimulator::start(RomaConfig {
            latency: options.roma_latency,
            ..RomaConfig::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        roma.add_token(TOKEN);
        let client = kube.client().await;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &TaskReset::crd())
            .await
            .map_err(|e| format!("creating the CRD: {e}"))?;
        let namespaces: Vec<String> = (0..options.namespaces.max(1))
            .map(|i| format!("team-{i:02}"))
            .collect();
        for ns in &namespaces {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(workload::SECRET.to_owned()),
                    ..ObjectMeta::default()
                },
                string_data: Some([("token".to_owned(), TOKEN.to_owned())].into()),
                ..Secret::default()
            };
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .map_err(|e| format!("creating the Secret in {ns}: {e}"))?;
        }
        let kubeconfig = dir.join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, "default")
            .map_err(|e| format!("writing the kubeconfig: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            kube,
            roma,
            client,
            http,
            kubeconfig,
            namespaces,
        })
    }

    /// The flags of phases 1 to 4: the simulator, `--concurrency`, no rate limit.
    fn controller_flags(&self, options: &Options) -> Vec<String> {
        let mut flags = self.base_flags();
        flags.extend(
            [
                "--max-concurrent-resets",
                &options.concurrency.to_string(),
                "--max-resets-per-second",
                "0",
            ]
            .iter()
            .map(|s| (*s).to_owned()),
        );
        flags
    }

    /// The simulator as the only endpoint, JSON logs, every limit at its default.
    fn base_flags(&self) -> Vec<String> {
        [
            "--allowed-endpoints",
            &self.roma.url(),
            "--default-endpoint",
            &self.roma.url(),
            "--insecure-allow-http",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    async fn spawn(&self, options: &Options, log: &str) -> Result<(Controller, String), String> {
        self.spawn_with(options, log, &self.controller_flags(options))
            .await
    }

    async fn spawn_with(
        &self,
        options: &Options,
        log: &str,
        flags: &[String],
    ) -> Result<(Controller, String), String> {
        let log = if options.label.is_empty() {
            format!("{log}.log")
        } else {
            format!("{log}-{}.log", options.label)
        };
        let mut controller = Controller::spawn(
            &options.controller,
            &self.kubeconfig,
            flags,
            out_dir().join(&log),
        )?;
        let addr = controller.metrics_addr(Duration::from_secs(30)).await?;
        Ok((controller, addr))
    }

    /// Wait until the API request counter has not moved for `quiet` (at most `within`).
    async fn settle(&self, quiet: Duration, within: Duration) {
        let deadline = Instant::now() + within;
        let count = || self.kube.counters().get("requests").copied().unwrap_or(0);
        let mut last = count();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = count();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return;
            }
        }
    }

    fn requests(&self) -> u64 {
        self.kube.counters().get("requests").copied().unwrap_or(0)
    }
}

fn machine() -> BTreeMap<String, String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    [
        ("cpu_model", model),
        ("cpus", cpus.to_string()),
        ("memory", memory),
        ("load_average_at_start", load.trim().to_owned()),
        (
            "started_unix",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Write the request log, one JSON record a line, for a closer look.
fn dump_requests(
    records: &[taskreset_simulators::kube_api::RequestRecord],
    label: &str,
) -> Result<(), String> {
    let name = if label.is_empty() {
        "requests.jsonl".to_owned()
    } else {
        format!("requests-{label}.jsonl")
    };
    let path = out_dir().join(name);
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn warnings(log: &str) -> usize {
    log.lines().filter(|l| l.contains("\"WARN\"")).count()
}

async fn run(options: Options) -> Result<Summary, String> {
    let started = Instant::now();
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut summary = Summary {
        machine: machine(),
        ..Summary::default()
    };
    summary.settings = [
        ("objects", options.objects.to_string()),
        ("namespaces", options.namespaces.to_string()),
        ("max_concurrent_resets", options.concurrency.to_string()),
        ("max_resets_per_second", "0".to_owned()),
        (
            "roma_latency_ms",
            options.roma_latency.as_millis().to_string(),
        ),
        ("latency_rate_per_second", options.rate.to_string()),
        ("latency_seconds", options.latency_seconds.to_string()),
        ("idle_seconds", options.idle_seconds.to_string()),
        ("fairness_objects", options.fairness_objects.to_string()),
        ("log", "RUST_LOG=info --log-format json".to_owned()),
        ("controller", options.controller.display().to_string()),
        ("label", options.label.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let cluster = Cluster::start(&options, &dir).await?;
    // No overall timeout on this client: a watch body lasts as long as the run.
    let streaming = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let observer = Observer::start(streaming, cluster.kube.url()).await?;

    // --- phase 1: the backlog ------------------------------------------------------------
    let backlog = workload::items("tp", options.objects, &cluster.namespaces);
    progress(started, &format!("creating {} TaskResets", backlog.len()));
    let create_time = workload::apply_all(&cluster.client, &backlog, 16).await?;
    progress(
        started,
        &format!(
            "created in {:.1}s; starting the controller",
            create_time.as_secs_f64()
        ),
    );
    let sim_cpu_before = process::own().cpu_seconds;
    let watch_before = observer.totals();
    cluster.kube.reset_request_log();
    let (mut first, addr) = cluster.spawn(&options, "controller-1").await?;
    let ready = first
        .wait_ready(&cluster.http, &addr, Duration::from_secs(120))
        .await?;
    progress(started, &format!("ready after {:.2}s", ready.as_secs_f64()));
    let all_within = Duration::from_secs(60 + options.objects as u64 / 20);
    let done = observer
        .wait_for(options.objects, all_within)
        .await
        .map_err(|seen| {
            format!(
                "only {seen} of {} Succeeded within {all_within:?}",
                options.objects
            )
        })?;
    let all_succeeded = done.duration_since(first.started);
    progress(
        started,
        &format!("all Succeeded after {:.2}s", all_succeeded.as_secs_f64()),
    );
    cluster
        .settle(Duration::from_secs(1), Duration::from_secs(30))
        .await;
    let after = first.sample();
    let sim_cpu = process::own().cpu_seconds - sim_cpu_before;
    let watch_after = observer.totals();
    let records = cluster.kube.request_log();
    if options.dump_requests {
        dump_requests(&records, &options.label)?;
    }
    let calls = cluster.roma.calls();
    let n = options.objects as f64;
    let span = calls
        .iter()
        .map(|c| c.at)
        .min()
        .zip(calls.iter().map(|c| c.at).max())
        .and_then(|(a, b)| b.duration_since(a).ok())
        .unwrap_or_default();
    let bound = options.concurrency as f64 / options.roma_latency.as_secs_f64();
    let rate = n / all_succeeded.as_secs_f64();
    summary.throughput = report::Throughput {
        objects: options.objects,
        namespaces: cluster.namespaces.len(),
        create_seconds: create_time.as_secs_f64(),
        ready_seconds: ready.as_secs_f64(),
        all_succeeded_seconds: all_succeeded.as_secs_f64(),
        resets_per_second: rate,
        call_span_seconds: span.as_secs_f64(),
        call_rate_per_second: n / span.as_secs_f64().max(1e-9),
        bound_per_second: bound,
        ratio_to_bound: rate / bound,
    };
    let (by_request, by_verb) = report::api_costs(&records, options.objects);
    let mut per_task: HashMap<&str, usize> = HashMap::new();
    for call in &calls {
        *per_task.entry(call.task_id.as_str()).or_default() += 1;
    }
    summary.cost = report::Cost {
        api_requests_per_reset: records.len() as f64 / n,
        api_bytes_per_reset: records
            .iter()
            .map(|r| (r.bytes_in + r.bytes_out) as f64)
            .sum::<f64>()
            / n,
        watch_bytes_per_reset: (watch_after.bytes - watch_before.bytes) as f64 / n,
        watch_events_per_reset: (watch_after.events - watch_before.events) as f64 / n,
        by_verb,
        by_request,
        roma_calls_per_reset: calls.len() as f64 / n,
        duplicate_calls: per_task.values().map(|c| c.saturating_sub(1)).sum(),
        controller_cpu_seconds_per_1000: after.cpu_seconds / n * 1000.0,
        simulators_cpu_seconds_per_1000: sim_cpu / n * 1000.0,
        peak_rss_mib: mib(after.hwm_bytes),
        api_errors: records.iter().filter(|r| r.status >= 400).fold(
            BTreeMap::new(),
            |mut errors, r| {
                *errors
                    .entry(format!("{} {}: {}", r.verb, r.resource, r.status))
                    .or_default() += 1;
                errors
            },
        ),
        taskreset_list_pages: records
            .iter()
            .filter(|r| r.verb == "list" && r.resource == "taskresets.fdi.roma.io")
            .count() as u64,
        controller_warnings: warnings(&first.log()),
        observer_rewatches: watch_after.rewatches + watch_after.relists,
    };

    // --- phase 2: idle with every object terminal -------------------------------------------
    let shutdown = first.terminate(Duration::from_secs(60)).await?;
    let calls_before_idle = cluster.roma.calls().len();
    let requests_before_start = cluster.requests();
    let (mut second, addr) = cluster.spawn(&options, "controller-2").await?;
    let ready = second
        .wait_ready(&cluster.http, &addr, Duration::from_secs(120))
        .await?;
    let startup_requests = cluster.requests() - requests_before_start;
    progress(
        started,
        &format!("restarted: ready after {:.2}s; idling", ready.as_secs_f64()),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_start = (Instant::now(), second.sample(), cluster.requests());
    tokio::time::sleep(Duration::from_secs_f64(options.idle_seconds)).await;
    let idle_end = (Instant::now(), second.sample(), cluster.requests());
    let window = idle_end.0.duration_since(idle_start.0).as_secs_f64();
    summary.idle = report::Idle {
        objects: options.objects,
        ready_seconds: ready.as_secs_f64(),
        window_seconds: window,
        cpu_percent: (idle_end.1.cpu_seconds - idle_start.1.cpu_seconds) / window * 100.0,
        rss_mib: mib(idle_end.1.rss_bytes),
        peak_rss_mib: mib(idle_end.1.hwm_bytes),
        threads: idle_end.1.threads,
        api_requests: idle_end.2 - idle_start.2,
        roma_calls: cluster.roma.calls().len() - calls_before_idle,
        startup_api_requests: startup_requests,
        previous_shutdown_seconds: shutdown.as_secs_f64(),
    };

    // --- phase 3: latency at a steady rate ---------------------------------------------------
    let count = (options.rate * options.latency_seconds).round() as usize;
    progress(
        started,
        &format!("latency: {count} objects at {}/s", options.rate),
    );
    let cpu_before = second.sample().cpu_seconds;
    let stream = workload::items("lat", count, &cluster.namespaces);
    let (created, schedule) = workload::apply_paced(&cluster.client, stream, options.rate).await?;
    let mut create_durations: Vec<Duration> = created
        .iter()
        .map(|c| c.returned.duration_since(c.sent))
        .collect();
    create_durations.sort();
    let total = options.objects + count;
    observer
        .wait_for(total, Duration::from_secs(60))
        .await
        .map_err(|seen| format!("latency phase: only {seen} of {total} Succeeded"))?;
    cluster
        .settle(Duration::from_secs(1), Duration::from_secs(30))
        .await;
    let end = second.sample();
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|c| {
            observer
                .succeeded_at(&c.item.key())
                .map(|at| at.saturating_duration_since(c.returned))
        })
        .collect();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    summary.latency = report::Latency {
        objects: count,
        target_per_second: options.rate,
        achieved_per_second: count as f64 / schedule.as_secs_f64().max(1e-9),
        p50_ms: ms(percentile(&latencies, 50.0)),
        p95_ms: ms(percentile(&latencies, 95.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        create_p50_ms: ms(percentile(&create_durations, 50.0)),
        controller_cpu_seconds_per_1000: (end.cpu_seconds - cpu_before) / count.max(1) as f64
            * 1000.0,
        rss_mib: mib(end.rss_bytes),
    };
    let warnings_second = warnings(&second.log());
    let leaked = [first.log(), second.log()]
        .iter()
        .any(|log| log.contains(TOKEN));
    if leaked {
        summary
            .problems
            .push("the credentials token appears in a controller log".to_owned());
    }
    second.terminate(Duration::from_secs(60)).await?;

    // --- checks --------------------------------------------------------------------------------
    let calls = cluster.roma.calls();
    summary.roma_calls_per_object = calls.len() as f64 / total as f64;
    let mut per_task: HashMap<&str, usize> = HashMap::new();
    for call in &calls {
        *per_task.entry(call.task_id.as_str()).or_default() += 1;
    }
    let duplicates: usize = per_task.values().map(|c| c.saturating_sub(1)).sum();
    if duplicates > 0 {
        summary
            .problems
            .push(format!("{duplicates} duplicate ROMA calls"));
    }
    if calls.len() != total {
        summary
            .problems
            .push(format!("{} ROMA calls for {total} objects", calls.len()));
    }
    if observer.succeeded() != total {
        summary.problems.push(format!(
            "{} of {total} objects Succeeded; other terminal phases: {:?}",
            observer.succeeded(),
            observer.other_terminal()
        ));
    }
    if summary.idle.roma_calls > 0 {
        summary
            .problems
            .push(format!("{} ROMA calls while idle", summary.idle.roma_calls));
    }
    if summary.cost.controller_warnings + warnings_second > 0 {
        summary.problems.push(format!(
            "{} warnings in the controller logs (see {})",
            summary.cost.controller_warnings + warnings_second,
            dir.display()
        ));
    }
    // The controller trims what it caches; what is stored must keep everything.
    if let Some(item) = backlog.first() {
        let stored = cluster
            .kube
            .get_json(
                "fdi.roma.io/v1alpha1/taskresets",
                &item.namespace,
                &item.name,
            )
            .unwrap_or_default();
        let meta = &stored["metadata"];
        let managers: Vec<&str> = meta["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        if meta["annotations"][workload::LAST_APPLIED]
            .as_str()
            .is_none()
            || !managers.contains(&"kubectl")
            || stored["status"]["phase"] != "Succeeded"
        {
            summary.problems.push(format!(
                "{} lost its last-applied annotation or kubectl's managed fields (managers: \
                 {managers:?}) or is not Succeeded",
                item.key()
            ));
        }
    }

    // --- phase 5: fairness between namespaces (after the checks: its 401s are on purpose) ------
    summary.fairness = fairness(&cluster, &options, &observer, started).await?;
    if summary.fairness.waited_seconds > FAIRNESS_TARGET.as_secs_f64() {
        summary.problems.push(format!(
            "fairness: the other namespace's TaskReset waited {:.2}s (target {}s)",
            summary.fairness.waited_seconds,
            FAIRNESS_TARGET.as_secs()
        ));
    }
    summary.run_seconds = started.elapsed().as_secs_f64();
    drop(observer);
    cluster.kube.shutdown().await;
    cluster.roma.shutdown().await;
    Ok(summary)
}

/// Phase 5 (issue 11.5): a namespace full of TaskResets whose Secret the gateway rejects (401),
/// a fresh controller at its default limits (the scenario of tests/backlog.rs); how long a
/// TaskReset of another namespace then waits from create to `Succeeded`.
async fn fairness(
    cluster: &Cluster,
    options: &Options,
    observer: &Observer,
    started: Instant,
) -> Result<report::Fairness, String> {
    const NOISY: &str = "noisy";
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), NOISY);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(workload::SECRET.to_owned()),
            ..ObjectMeta::default()
        },
        string_data: Some([("token".to_owned(), "not-the-token".to_owned())].into()),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| format!("creating the Secret in {NOISY}: {e}"))?;
    let noisy = workload::items("noisy", options.fairness_objects, &[NOISY.to_owned()]);
    progress(
        started,
        &format!(
            "fairness: {} TaskResets with a rejected token in {NOISY}",
            noisy.len()
        ),
    );
    workload::apply_all(&cluster.client, &noisy, 16).await?;
    let calls_before = cluster.roma.calls().len();
    let (mut controller, addr) = cluster
        .spawn_with(options, "controller-3", &cluster.base_flags())
        .await?;
    controller
        .wait_ready(&cluster.http, &addr, Duration::from_secs(120))
        .await?;
    // Let the noisy namespace fill the line first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let good = workload::items("fair", 1, &cluster.namespaces[..1]);
    workload::apply(&cluster.client, &good[0]).await?;
    let created = Instant::now();
    let deadline = created + Duration::from_secs(120);
    let succeeded = loop {
        if let Some(at) = observer.succeeded_at(&good[0].key()) {
            break at;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "fairness: {} not Succeeded within 120 s",
                good[0].key()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let waited = succeeded.saturating_duration_since(created);
    let rejected = cluster.roma.calls()[calls_before..]
        .iter()
        .filter(|c| c.status == Some(401))
        .count();
    progress(
        started,
        &format!(
            "fairness: {} Succeeded {:.2}s after its creation, behind {rejected} rejected calls",
            good[0].key(),
            waited.as_secs_f64()
        ),
    );
    controller.terminate(Duration::from_secs(60)).await?;
    Ok(report::Fairness {
        noisy_objects: noisy.len(),
        waited_seconds: waited.as_secs_f64(),
        target_seconds: FAIRNESS_TARGET.as_secs_f64(),
        rejected_calls: rejected,
        limits: "defaults: --max-concurrent-resets 16, --max-resets-per-second 5".to_owned(),
    })
}
