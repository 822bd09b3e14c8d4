//! Faults on the real thing (issue 12, point 3): a burst of TaskResets, two generations each,
//! against a real kube-apiserver and etcd, the controller (the real binary, as its
//! ServiceAccount with the RBAC of `deploy/`) talking to the server through a fault-injecting
//! proxy (5xx, 409, 429, dropped connections, answers lost after the server acted, cut
//! watches, latency), while the test restarts
//! kube-apiserver, then etcd, and SIGKILLs the controller three times. The ROMA simulator
//! plays the fault suite's scripts. The fault suite's own verifier
//! (tests/fault_suite/verify.rs) judges the evidence: no second call for a generation, every
//! generation terminal with a status that tells what the simulator answered, the ledger
//! agreeing; and no secret in any log, status, event or ledger entry.
//!
//! `FAULT_SUITE_SEED` replays a run's scripts (the seed is printed first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod real_support;
mod support;

#[path = "fault_suite/plan.rs"]
mod plan;
#[path = "fault_suite/verify.rs"]
mod verify;

use std::io::Write as _;

use futures::StreamExt;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use plan::{Cred, Knobs, ObjectPlan};
use real_support::e2e::Scenario;
use real_support::proxy::{Fault, Proxy, Rule};
use real_support::{Proc, RealEnv, Watch};
use verify::{Evidence, GenOutcome, Track};

const OBJECTS: usize = 40;
const GENERATIONS: i64 = 2;
const DEADLINE: Duration = Duration::from_secs(150);
const KNOBS: Knobs = Knobs {
    request_timeout: Duration::from_secs(3),
    max_attempts: 6,
    slow_max: Duration::from_millis(400),
    hang: Duration::from_millis(4500),
};

/// What happens to the cluster and the controller, each so many seconds after the previous
/// one is over (the first after the start of the burst).
#[derive(Debug, Clone, Copy)]
enum Blow {
    Kill,
    Restart(&'static str),
}

const BLOWS: [(f64, Blow); 5] = [
    (1.5, Blow::Kill),
    (1.5, Blow::Restart("restart-apiserver")),
    (2.5, Blow::Kill),
    (2.5, Blow::Restart("restart-etcd")),
    (2.5, Blow::Kill),
];

macro_rules! report {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The proxy's standing faults: a share of status writes conflict, some requests fail or are
/// throttled or lose their connection, every request is a little late.
fn faults(proxy: &Proxy) {
    proxy.add(
        Rule::new(Fault::Status(409))
            .method("PUT")
            .path("/status")
            .share(0.08),
    );
    proxy.add(Rule::new(Fault::Status(500)).share(0.02));
    proxy.add(Rule::new(Fault::Status(429)).watch(false).share(0.02));
    proxy.add(Rule::new(Fault::Drop).watch(false).share(0.01));
    // Answers lost after the server acted: result writes. (Lost claim answers read
    // Interrupted without a kill, lost ledger reservations AlreadyExecuted: scenarios of their
    // own in tests/real_scenarios.rs.)
    let result = Rule::new(Fault::Lose).method("PUT").path("/status");
    proxy.add(result.clone().body("\"phase\":\"Succeeded\"").share(0.05));
    proxy.add(result.body("\"phase\":\"Failed\"").share(0.05));
    proxy.add(Rule::new(Fault::Hold(Duration::from_millis(5))));
}

/// The run's secret values, installed in Secrets and the simulator.
struct Secrets {
    values: Vec<String>,
}

impl Secrets {
    async fn install(s: &Scenario, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5EC2_E700);
        let password = format!("pw-{:024x}", rng.u128(..));
        let access_key = format!("REALAK{:014X}", rng.u64(..) >> 8);
        let secret_key = format!("sk{:038x}", rng.u128(..));
        s.roma.add_user("acme", "fault-robot", &password);
        s.roma.add_access_key(&access_key, &secret_key);
        let iam = s.roma.url();
        let password_keys = [
            ("username", "fault-robot"),
            ("password", password.as_str()),
            ("domainName", "acme"),
            ("iamEndpoint", iam.as_str()),
        ];
        s.env.secret(Cred::Password.secret(), &password_keys).await;
        let aksk = [
            ("accessKey", access_key.as_str()),
            ("secretKey", &secret_key),
        ];
        s.env.secret(Cred::AccessKey.secret(), &aksk).await;
        let token = real_support::e2e::TOKEN.to_owned();
        // "MIIsim": the prefix of every token the simulator's IAM issues.
        let values = vec![token, password, secret_key, "MIIsim".to_owned()];
        Self { values }
    }

    /// Edit every Secret (an annotation), as an operator fixing one would: a Secret version
    /// the gateway rejected (401) is not called with again until it changes.
    async fn touch(s: &Scenario, round: u32) {
        let secrets: Api<Secret> = Api::namespaced(s.env.client.clone(), &s.env.ns);
        let patch =
            serde_json::json!({"metadata": {"annotations": {"rotation": round.to_string()}}});
        for cred in [Cred::Token, Cred::Password, Cred::AccessKey] {
            let _ = secrets
                .patch(
                    cred.secret(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
        }
    }
}

/// The controller processes of the run, the SIGKILL instants and every log.
struct Controllers<'s> {
    s: &'s Scenario,
    kubeconfig: std::path::PathBuf,
    flags: Vec<String>,
    current: Option<Proc>,
    kills: Vec<SystemTime>,
    logs: Vec<std::path::PathBuf>,
}

impl<'s> Controllers<'s> {
    /// Controllers as their ServiceAccount through `proxy`, with the fault suite's flags.
    fn new(s: &'s Scenario, proxy: &Proxy) -> Self {
        let timeout = format!("{}ms", KNOBS.request_timeout.as_millis());
        let flags = [
            ("--allowed-iam-endpoints", s.roma.url()),
            ("--request-timeout", timeout),
            ("--max-attempts", KNOBS.max_attempts.to_string()),
            ("--retry-max-delay", "1s".into()),
            ("--credentials-retry-delay", "500ms".into()),
            ("--max-concurrent-resets", "32".into()),
        ];
        Self {
            s,
            kubeconfig: proxy.kubeconfig(s.env.kubeconfig("controller"), &s.env.dir),
            flags: flags
                .into_iter()
                .flat_map(|(f, v)| [f.to_owned(), v])
                .collect(),
            current: None,
            kills: Vec::new(),
            logs: Vec::new(),
        }
    }

    fn spawn(&mut self) {
        let name = format!("controller-{:02}", self.logs.len() + 1);
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        let url = self.s.roma.url();
        let proc =
            self.s
                .env
                .spawn_named(&name, &self.kubeconfig, Watch::ThisNamespace, &url, &flags);
        self.logs.push(proc.log.clone());
        self.current = Some(proc);
    }

    fn kill_and_respawn(&mut self) {
        let mut proc = self.current.take().expect("a controller");
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!(
                "the controller exited by itself ({status}):\n{}",
                proc.log()
            );
        }
        self.kills.push(SystemTime::now());
        proc.kill();
        self.spawn();
    }
}

/// Read every object (as admin, past the proxy), note generations that became terminal and
/// move the others on to their next generation (script first, then the spec edit; a failed
/// edit, e.g. during a restart, is tried again on the next pass).
async fn drive(s: &Scenario, plan: &[ObjectPlan], tracks: &mut [Track]) {
    let Ok(list) = s.api.list(&ListParams::default()).await else {
        return; // the server is restarting
    };
    for tr in list.items {
        let Some(i) = plan.iter().position(|o| o.name == tr.name_any()) else {
            continue;
        };
        let g = tr.metadata.generation.unwrap_or(0);
        if !tracks[i].observe(&tr) {
            continue;
        }
        if g < GENERATIONS {
            let object = &plan[i];
            s.roma.script(&object.task, object.script(g + 1).to_vec());
            let edit = serde_json::json!({
                "runId": plan::run_id(g + 1),
                "dateFrom": plan::date_from(g + 1),
            });
            let patch = Patch::Merge(serde_json::json!({ "spec": edit }));
            let _ = s
                .api
                .patch(&object.name, &PatchParams::default(), &patch)
                .await;
        }
    }
}

fn done(tracks: &[Track]) -> usize {
    tracks
        .iter()
        .filter(|t| t.outcomes.iter().all(Option::is_some))
        .count()
}

/// The ledger ConfigMaps' data (key -> entry JSON).
async fn ledger(s: &Scenario) -> std::collections::BTreeMap<String, String> {
    let api: Api<ConfigMap> = Api::namespaced(s.env.client.clone(), &s.env.ns);
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|cm| cm.name_any().starts_with("taskreset-ledger-"))
        .flat_map(|cm| cm.data.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_under_api_faults_restarts_and_kills_keeps_the_guarantee() {
    let seed = std::env::var("FAULT_SUITE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    report!("real-faults: seed={seed} (replay with FAULT_SUITE_SEED={seed})");
    // The verifier's ledger keys name the fault suite's namespace.
    let Some(env) = RealEnv::private_in(support::NS).await else {
        return;
    };
    let started = Instant::now();
    let s = Scenario::on(env).await;
    let secrets = Secrets::install(&s, seed).await;
    let proxy = Proxy::start(s.env.kubeconfig("admin")).await;
    faults(&proxy);
    let plan = plan::draw(seed, OBJECTS, GENERATIONS, &KNOBS);
    let mut ctl = Controllers::new(&s, &proxy);
    ctl.spawn();
    for object in &plan {
        s.roma.script(&object.task, object.script(1).to_vec());
        s.create(&object.name, object.spec(1)).await;
    }
    let (outcomes, tally) = burst(&s, &plan, &proxy, &mut ctl).await;
    // Quiet time: nothing may call any more. Then a graceful stop, and the evidence.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_stop = s.roma.calls().len();
    let stopped = ctl.current.take().unwrap().terminate().await;
    let calls = s.roma.calls();
    let ledger = ledger(&s).await;
    let found = verify::check(&Evidence {
        plan: &plan,
        generations: GENERATIONS,
        outcomes: &outcomes,
        calls: &calls,
        kills: &ctl.kills,
        ledger: &ledger,
        knobs: KNOBS,
    });
    let leaks = leaks(&s, &ctl.logs, &secrets, &outcomes, &ledger).await;
    report!(
        "real-faults report: seed={seed} objects={OBJECTS} generations={GENERATIONS} calls={} {} | {} | kills={} restarts(s)={:?} watch_cuts={} secret_rotations={} secret_leaks={} calls_during_stop={} | time: burst {:.1}s, total {:.1}s",
        calls.len(),
        summary(&found),
        proxy_summary(&proxy),
        ctl.kills.len(),
        tally
            .restarts
            .iter()
            .map(|(from, to)| (*to - *from).total(jiff::Unit::Second).unwrap_or(0.0))
            .collect::<Vec<_>>(),
        tally.cuts,
        tally.rotations,
        leaks.len(),
        calls.len() - before_stop,
        tally.time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    for problem in found.problems.iter().take(40) {
        report!("  problem: {problem}");
    }
    assert!(
        found.clean(),
        "invariants broken (seed {seed}), see the problems above"
    );
    assert!(leaks.is_empty(), "secrets leaked: {leaks:?}");
    assert_eq!(
        calls.len(),
        before_stop,
        "calls after every generation was terminal"
    );
    assert!(stopped.success(), "graceful stop: {stopped}");
    exercised(&proxy, &ctl, &tally, &found);
}

/// The verifier's findings in one line.
fn summary(found: &verify::Findings) -> String {
    format!(
        "executed={} outcomes={:?} roma_faults={:?} duplicates={} calls_after_terminal={} wrong_statuses={} unattributable={} ledger_mismatches={} ledger_open={}",
        found.executed,
        found.outcomes,
        found.faults,
        found.duplicates,
        found.calls_after_terminal,
        found.wrong_statuses,
        found.unattributable,
        found.ledger_mismatches,
        found.ledger_open
    )
}

const PROXY_FAULTS: [Fault; 5] = [
    Fault::Status(409),
    Fault::Status(500),
    Fault::Status(429),
    Fault::Drop,
    Fault::Lose,
];

fn injected(proxy: &Proxy, fault: Fault) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|r| r.fault == Some(fault))
        .count()
}

fn proxy_summary(proxy: &Proxy) -> String {
    let faults: Vec<String> = PROXY_FAULTS
        .iter()
        .map(|f| format!("{f:?}={}", injected(proxy, *f)))
        .collect();
    format!(
        "proxy requests={} injected {}",
        proxy.seen().len(),
        faults.join(" ")
    )
}

/// The run did what it claims: faults of every kind met, watches cut, kills made, and the
/// shipped RBAC refused nothing (outside the restarts).
fn exercised(proxy: &Proxy, ctl: &Controllers<'_>, tally: &Tally, found: &verify::Findings) {
    for fault in PROXY_FAULTS {
        assert!(injected(proxy, fault) > 0, "no {fault:?} injected");
    }
    assert!(tally.cuts > 0 && ctl.kills.len() == 3 && tally.restarts.len() == 2);
    let outcomes = &found.outcomes;
    assert!(
        outcomes.contains_key("Succeeded/ResetSucceeded"),
        "{outcomes:?}"
    );
    // A restarting kube-apiserver serves requests before its RBAC caches are filled: a 403
    // then says nothing about the RBAC (a second's margin for the controller's log line).
    let restarting = |line: &str| {
        let at = line
            .split_whitespace()
            .next()?
            .parse::<jiff::Timestamp>()
            .ok()?;
        let margin = jiff::SignedDuration::from_secs(1);
        Some(
            tally
                .restarts
                .iter()
                .any(|(from, to)| at >= *from && at <= *to + margin),
        )
    };
    for log in &ctl.logs {
        let text = std::fs::read_to_string(log).unwrap();
        let refused: Vec<&str> = text
            .lines()
            .filter(|l| l.to_lowercase().contains("forbidden") && restarting(l) != Some(true))
            .collect();
        assert!(
            refused.is_empty(),
            "{}:\n{}",
            log.display(),
            refused.join("\n")
        );
    }
}

/// What the burst did besides the kills.
struct Tally {
    cuts: u32,
    rotations: u32,
    /// (from, to) of each server restart.
    restarts: Vec<(jiff::Timestamp, jiff::Timestamp)>,
    time: Duration,
}

/// Drive every object through its generations while the blows land, watches are cut every
/// 3 s and the Secrets edited every 4 s; each generation's terminal status.
async fn burst(
    s: &Scenario,
    plan: &[ObjectPlan],
    proxy: &Proxy,
    ctl: &mut Controllers<'_>,
) -> (Vec<Vec<Option<GenOutcome>>>, Tally) {
    let mut tracks: Vec<Track> = (0..OBJECTS).map(|_| Track::new(GENERATIONS)).collect();
    let started = Instant::now();
    let mut last_blow = started;
    let (mut blows, mut cuts, mut rotations, mut restarts) = (0, 0_u32, 0_u32, Vec::new());
    while blows < BLOWS.len() || done(&tracks) < OBJECTS {
        let left = OBJECTS - done(&tracks);
        assert!(started.elapsed() < DEADLINE, "{left} of {OBJECTS} not done");
        let t = started.elapsed().as_secs_f64();
        if let Some((gap, blow)) = BLOWS.get(blows).copied()
            && last_blow.elapsed().as_secs_f64() >= gap
        {
            match blow {
                Blow::Kill => ctl.kill_and_respawn(),
                Blow::Restart(cmd) => {
                    let from = jiff::Timestamp::now();
                    s.env.restart(cmd).await;
                    restarts.push((from, jiff::Timestamp::now()));
                }
            }
            blows += 1;
            last_blow = Instant::now();
        }
        if t >= 3.0 * f64::from(cuts + 1) {
            proxy.drop_watches();
            cuts += 1;
        }
        if t >= 4.0 * f64::from(rotations + 1) {
            rotations += 1;
            Secrets::touch(s, rotations).await;
        }
        drive(s, plan, &mut tracks).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tally = Tally {
        cuts,
        rotations,
        restarts,
        time: started.elapsed(),
    };
    (tracks.into_iter().map(|t| t.outcomes).collect(), tally)
}

/// Where each secret value shows up: every log, every event, the statuses, the ledger.
async fn leaks(
    s: &Scenario,
    logs: &[std::path::PathBuf],
    secrets: &Secrets,
    outcomes: &[Vec<Option<GenOutcome>>],
    ledger: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(s.env.client.clone(), &s.env.ns);
    let events = events.list(&ListParams::default()).await.unwrap();
    let finals = s.api.list(&ListParams::default()).await.unwrap();
    let mut places: Vec<(String, String)> = logs
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(p).unwrap_or_default(),
            )
        })
        .collect();
    places.extend(verify::written_places(
        &events.items,
        &finals.items,
        outcomes,
        ledger,
    ));
    verify::leaks(&places, secrets.values.iter().map(String::as_str))
}

/// The proxy itself: an untouched request reaches kube-apiserver as the client's own identity
/// (the ServiceAccount is refused what its RBAC does not grant), a rule answers instead of the
/// server or closes the connection, and a watch cut mid-stream ends at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_proxy_passes_identities_through_and_injects_what_a_rule_says() {
    let Some(env) = RealEnv::new("proxy").await else {
        return;
    };
    env.shipped_rbac().await;
    let proxy = Proxy::start(env.kubeconfig("admin")).await;
    let through = proxy.kubeconfig(env.kubeconfig("controller"), &env.dir);
    let client = real_support::client_from(&through).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &env.ns);
    let api_error = |e: kube::Error| match e {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("not an API error: {other:?}"),
    };
    let (code, message) = api_error(secrets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("system:serviceaccount:taskreset-system:taskreset-controller"));
    // (500: kube's client retries a 503 or a 429 by itself, and would hide it.)
    proxy.add(Rule::new(Fault::Status(500)).path("/secrets/").times(1));
    let (code, message) = api_error(secrets.get("absent").await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (500, "injected by the fault proxy (500)")
    );
    // Its one turn is used: the server answers again.
    assert_eq!(api_error(secrets.get("absent").await.unwrap_err()).0, 404);
    proxy.add(Rule::new(Fault::Drop).times(1));
    let dropped = secrets.get("absent").await.unwrap_err();
    assert!(!matches!(dropped, kube::Error::Api(_)), "{dropped:?}");

    let trs: Api<taskreset_controller::api::TaskReset> = Api::namespaced(client, &env.ns);
    let params = kube::api::WatchParams::default().disable_bookmarks();
    let mut watch = Box::pin(trs.watch(&params, "0").await.unwrap());
    // Nothing happens on an open watch...
    let idle = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
    assert!(idle.is_err(), "{idle:?}");
    // ... until it is cut: then it ends (with an error) at once.
    proxy.drop_watches();
    let cut = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
    assert!(matches!(cut, Ok(None | Some(Err(_)))), "{cut:?}");
    let seen = proxy.seen();
    assert!(
        seen.iter().any(|r| r.watch && r.status == Some(200)),
        "{seen:?}"
    );
}
