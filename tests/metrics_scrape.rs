//! A real scrape of the real binary: the controller runs against the simulators, makes calls
//! of every outcome, and its `/metrics` is read the way Prometheus reads it. The text format
//! when a scraper asks for it, OpenMetrics when it prefers that, HELP and TYPE on every family,
//! every outcome series from the start, and `promtool check metrics` on the scrape (when
//! promtool is on the PATH; required when `CI` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Env;
use taskreset_simulators::roma::Step;

const WAIT: Duration = Duration::from_secs(30);
/// What Prometheus 2.x sends by default (it prefers OpenMetrics).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// What a scraper that wants the Prometheus text format sends.
const TEXT_ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// GET `/metrics` with this `Accept` header (none: `None`): content type and body.
async fn scrape(addr: &str, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .expect("a content type")
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// The value of the sample `series` (exact name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

/// Families of the text format without `# HELP` or `# TYPE` (a sample's family is its name,
/// or for histograms its name without `_bucket`, `_sum`, `_count`).
fn families_without_help_or_type(text: &str) -> Vec<String> {
    let declared = |kind: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("# {kind} ")))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    let (help, types) = (declared("HELP"), declared("TYPE"));
    let mut missing = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.contains(*f) && !types.contains(name))
            })
            .unwrap_or(name);
        if !help.contains(family) || !types.contains(family) {
            missing.push(family.to_owned());
        }
    }
    missing.sort();
    missing.dedup();
    missing
}

/// `promtool check metrics` on `text`: None when promtool is not installed.
fn promtool_check_metrics(text: &str) -> Option<(bool, String)> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

/// VmRSS of another process, in bytes, from /proc (Linux).
fn child_rss_bytes(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_scrape_is_valid_prometheus_text_with_every_outcome() {
    let env = Env::new().await;
    let child = env.spawn_binary(&[], "scrape.log");
    let addr = env.metrics_addr("scrape.log").await;

    // Before any call: every outcome series exists, at 0.
    let (_, fresh) = scrape(&addr, Some(TEXT_ACCEPT)).await;
    for outcome in [
        "succeeded",
        "rejected",
        "retryable",
        "ambiguous",
        "credentials_rejected",
        "aborted",
    ] {
        let series = format!("taskreset_resets_total{{outcome=\"{outcome}\"}}");
        assert_eq!(value(&fresh, &series), Some(0.0), "{series} in\n{fresh}");
    }

    // One call of each class the alerts care about.
    let scripts = [
        ("ok", vec![Step::Succeed]),
        ("refused", vec![Step::task_list_empty()]),
        ("dropped", vec![Step::DropAfterExecute]),
        ("unauthorized", vec![Step::Unauthorized]),
        ("throttled", vec![Step::Throttle, Step::Succeed]),
    ];
    for (name, steps) in scripts {
        let task = Env::task();
        env.roma.script(&task, steps);
        env.create(name, &task, |_| {}).await;
    }
    let expected = [
        ("succeeded", 2.0),
        ("rejected", 1.0),
        ("retryable", 1.0),
        ("ambiguous", 1.0),
        ("credentials_rejected", 1.0),
    ];
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let (_, text) = scrape(&addr, Some(TEXT_ACCEPT)).await;
        let done = expected.iter().all(|(outcome, n)| {
            value(
                &text,
                &format!("taskreset_resets_total{{outcome=\"{outcome}\"}}"),
            )
            .is_some_and(|v| v >= *n)
        });
        if done {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "not every outcome was counted:\n{text}\n{}",
            env.log("scrape.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        value(&text, "taskreset_resets_total{outcome=\"aborted\"}"),
        Some(0.0)
    );
    assert!(!text.contains("credentialsRejected"), "{text}");

    // The Prometheus text format, as asked for: counters typed under their _total name, no
    // OpenMetrics EOF marker.
    let (content_type, _) = scrape(&addr, Some(TEXT_ACCEPT)).await;
    assert_eq!(content_type, TEXT_TYPE);
    assert!(
        text.contains("# TYPE taskreset_resets_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    let missing = families_without_help_or_type(&text);
    assert!(
        missing.is_empty(),
        "families without HELP or TYPE: {missing:?}\n{text}"
    );
    let families = text.lines().filter(|l| l.starts_with("# HELP ")).count();

    // Issue 15: reconciles timed by result, the build, the process.
    assert!(
        value(
            &text,
            "taskreset_reconcile_duration_seconds_count{result=\"done\"}"
        )
        .is_some_and(|n| n >= 5.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "taskreset_reconcile_duration_seconds_count{result=\"requeued\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "a throttled call is retried later: {text}"
    );
    assert!(
        text.contains(&format!(
            "taskreset_build_info{{version=\"{}\",git_commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            taskreset_controller::telemetry::GIT_COMMIT
        )),
        "{text}"
    );
    if cfg!(target_os = "linux") {
        let process_pid_rss = child_rss_bytes(child.id());
        let rss = value(&text, "process_resident_memory_bytes").expect("RSS");
        // The controller's own RSS as ps would tell, within what one scrape apart can move.
        assert!(
            (rss - process_pid_rss).abs() < 32.0 * 1024.0 * 1024.0,
            "RSS {rss} vs /proc/{}: {process_pid_rss}",
            child.id()
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value(&text, "process_start_time_seconds").expect("start time");
        assert!(
            start <= now + 1.0 && start > now - 300.0,
            "start {start}, now {now}"
        );
        assert!(value(&text, "process_cpu_seconds_total").is_some_and(|c| c > 0.0));
        assert!(value(&text, "process_open_fds").is_some_and(|n| n >= 3.0));
        assert!(value(&text, "process_max_fds").is_some_and(|n| n >= 64.0));
    }

    // No Accept header (curl, a browser): the text format too.
    let (content_type, _) = scrape(&addr, None).await;
    assert_eq!(content_type, TEXT_TYPE);
    // Prometheus' default Accept prefers OpenMetrics: that is what it gets.
    let (content_type, openmetrics) = scrape(&addr, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(content_type, OPENMETRICS_TYPE);
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(
        openmetrics.contains("# TYPE taskreset_resets counter\n"),
        "{openmetrics}"
    );

    // Keep the scrape for .ci/promtool.sh and for a look.
    let out = std::env::var_os("TASKRESET_METRICS_SCRAPE").map_or_else(
        || std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics-scrape.prom"),
        std::path::PathBuf::from,
    );
    std::fs::write(&out, &text).expect("write the scrape");
    std::fs::write(out.with_extension("openmetrics"), &openmetrics).expect("write the scrape");
    println!(
        "scrape: {families} families, {} samples, written to {}",
        text.lines().filter(|l| !l.starts_with('#')).count(),
        out.display()
    );

    match promtool_check_metrics(&text) {
        Some((ok, said)) => {
            assert!(
                ok && said.trim().is_empty(),
                "promtool check metrics:\n{said}\n{text}"
            );
            println!("promtool check metrics: no problems");
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("promtool is not on the PATH and CI is set: install it (.ci/promtool.sh)")
        }
        None => eprintln!(
            "!!!!! SKIPPED: promtool is not on the PATH, `promtool check metrics` did NOT run \
             (apt-get install prometheus, or run .ci/promtool.sh) !!!!!"
        ),
    }
    drop(child);
}
