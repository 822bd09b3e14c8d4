//! Faults on the real thing (issue 12, point 3): a burst of TaskResets, two generations each,
//! against a real kube-apiserver and etcd, the controller (the real binary, as its
//! ServiceAccount with the RBAC of `deploy/`) talking to the server through a fault-injecting
//! proxy (5xx, 409, 429, dropped connections, cut watches, latency), while the test restarts
//! kube-apiserver, then etcd, and SIGKILLs the controller three times. The ROMA simulator
//! plays the fault suite's scripts. The fault suite's own verifier
//! (tests/fault_suite/verify.rs) judges the evidence: no second call for a generation, every
//! generation terminal with a status that tells what the simulator answered, the ledger
//! agreeing; and no secret in any log, status, event or ledger entry.
//!
//! `FAULT_SUITE_SEED` replays a run's scripts (the seed is printed first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod real_support;
mod support;

#[path = "fault_suite/plan.rs"]
mod plan;
#[path = "fault_suite/verify.rs"]
mod verify;

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use plan::{Cred, Knobs, ObjectPlan};
use real_support::e2e::{Scenario, ready_reason};
use real_support::proxy::{Fault, Proxy, Rule};
use real_support::{Proc, RealEnv, Watch};
use taskreset_controller::api::Phase;
use verify::{Evidence, GenOutcome};

const OBJECTS: usize = 40;
const GENERATIONS: i64 = 2;
const DEADLINE: Duration = Duration::from_secs(150);
/// An `Interrupted` verdict counts once it has stood this long (a late result replaces it).
const INTERRUPTED_HOLD: Duration = Duration::from_secs(3);
const KNOBS: Knobs = Knobs {
    request_timeout: Duration::from_secs(3),
    max_attempts: 6,
    slow_max: Duration::from_millis(400),
    hang: Duration::from_millis(4500),
};

/// What happens to the cluster and the controller, seconds into the burst.
#[derive(Debug, Clone, Copy)]
enum Blow {
    Kill,
    Restart(&'static str),
}

const BLOWS: [(f64, Blow); 5] = [
    (1.5, Blow::Kill),
    (3.0, Blow::Restart("restart-apiserver")),
    (5.5, Blow::Kill),
    (8.0, Blow::Restart("restart-etcd")),
    (10.5, Blow::Kill),
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

impl Controllers<'_> {
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

/// What the driver knows of one object.
#[derive(Default)]
struct Track {
    /// `outcomes[g - 1]`: the terminal status generation g showed.
    outcomes: Vec<Option<GenOutcome>>,
    /// (generation, first seen) of an `Interrupted` verdict being held.
    interrupted: Option<(i64, Instant)>,
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
        let slot = usize::try_from(g - 1).unwrap();
        let track = &mut tracks[i];
        if track.outcomes[slot].is_none() {
            let current = tr.status.as_ref().and_then(|st| st.observed_generation) == Some(g);
            if !current || !tr.current_phase().is_some_and(Phase::is_terminal) {
                continue;
            }
            if ready_reason(&tr) == "Interrupted" {
                match track.interrupted {
                    Some((seen, since)) if seen == g && since.elapsed() >= INTERRUPTED_HOLD => {}
                    Some((seen, _)) if seen == g => continue,
                    _ => {
                        track.interrupted = Some((g, Instant::now()));
                        continue;
                    }
                }
            }
            track.outcomes[slot] = Some(GenOutcome {
                uid: tr.uid().unwrap_or_default(),
                status: tr.status.clone().unwrap_or_default(),
                observed_at: SystemTime::now(),
            });
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
    env.apply_rbac_of("deploy").await;
    let s = Scenario::on(env).await;
    let secrets = Secrets::install(&s, seed).await;
    let proxy = Proxy::start(s.env.kubeconfig("admin")).await;
    faults(&proxy);
    let plan = plan::draw(seed, OBJECTS, GENERATIONS, &KNOBS);
    let timeout = format!("{}ms", KNOBS.request_timeout.as_millis());
    let attempts = KNOBS.max_attempts.to_string();
    let mut ctl = Controllers {
        s: &s,
        kubeconfig: proxy.kubeconfig(s.env.kubeconfig("controller"), &s.env.dir),
        flags: [
            "--allowed-iam-endpoints",
            &s.roma.url(),
            "--request-timeout",
            &timeout,
            "--max-attempts",
            &attempts,
            "--retry-max-delay",
            "1s",
            "--credentials-retry-delay",
            "500ms",
            "--max-concurrent-resets",
            "32",
        ]
        .map(str::to_owned)
        .to_vec(),
        current: None,
        kills: Vec::new(),
        logs: Vec::new(),
    };
    ctl.spawn();
    for object in &plan {
        s.roma.script(&object.task, object.script(1).to_vec());
        s.create(&object.name, object.spec(1)).await;
    }
    let mut tracks: Vec<Track> = (0..OBJECTS)
        .map(|_| Track {
            outcomes: vec![None; 2],
            interrupted: None,
        })
        .collect();
    let burst = Instant::now();
    let (mut blows, mut cuts, mut rotations) = (0, 0_u32, 0_u32);
    while blows < BLOWS.len() || done(&tracks) < OBJECTS {
        assert!(
            burst.elapsed() < DEADLINE,
            "{} of {OBJECTS} done",
            done(&tracks)
        );
        let t = burst.elapsed().as_secs_f64();
        if let Some((at, blow)) = BLOWS.get(blows).copied()
            && t >= at
        {
            match blow {
                Blow::Kill => ctl.kill_and_respawn(),
                Blow::Restart(cmd) => s.env.restart(cmd).await,
            }
            blows += 1;
        }
        if t >= 3.0 * f64::from(cuts + 1) {
            proxy.drop_watches();
            cuts += 1;
        }
        if t >= 4.0 * f64::from(rotations + 1) {
            rotations += 1;
            Secrets::touch(&s, rotations).await;
        }
        drive(&s, &plan, &mut tracks).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let burst_time = burst.elapsed();
    // Quiet time: nothing may call any more. Then a graceful stop, and the evidence.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_stop = s.roma.calls().len();
    let mut last = ctl.current.take().unwrap();
    let stopped = last.terminate().await;
    let calls = s.roma.calls();
    let outcomes: Vec<_> = tracks.into_iter().map(|t| t.outcomes).collect();
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
    let seen = proxy.seen();
    let injected = |f: Fault| seen.iter().filter(|r| r.fault == Some(f)).count();
    let conflicts = seen
        .iter()
        .filter(|r| r.fault.is_none() && r.status == Some(409))
        .count();
    report!(
        "real-faults report: seed={seed} objects={OBJECTS} generations={GENERATIONS} calls={} executed={} outcomes={:?} roma_faults={:?} \
         | proxy requests={} injected 409={} 500={} 429={} dropped={} watch_cuts={cuts} server_409={conflicts} | kills={} restarts=2 secret_rotations={rotations} \
         | duplicates={} calls_after_terminal={} wrong_statuses={} unattributable={} ledger_mismatches={} ledger_open={} secret_leaks={} calls_during_stop={} \
         | time: burst {:.1}s, total {:.1}s",
        calls.len(),
        found.executed,
        found.outcomes,
        found.faults,
        seen.len(),
        injected(Fault::Status(409)),
        injected(Fault::Status(500)),
        injected(Fault::Status(429)),
        injected(Fault::Drop),
        ctl.kills.len(),
        found.duplicates,
        found.calls_after_terminal,
        found.wrong_statuses,
        found.unattributable,
        found.ledger_mismatches,
        found.ledger_open,
        leaks.len(),
        calls.len() - before_stop,
        burst_time.as_secs_f64(),
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
    // The run did what it claims: faults of every kind met, kills made.
    for fault in [
        Fault::Status(409),
        Fault::Status(500),
        Fault::Status(429),
        Fault::Drop,
    ] {
        assert!(injected(fault) > 0, "no {fault:?} injected");
    }
    assert_eq!(ctl.kills.len(), 3);
    assert!(
        found.outcomes.contains_key("Succeeded/ResetSucceeded"),
        "{:?}",
        found.outcomes
    );
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
    let mut haystacks: Vec<(String, String)> = logs
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(p).unwrap_or_default(),
            )
        })
        .collect();
    haystacks.push((
        "events".into(),
        serde_json::to_string(&events.items).unwrap(),
    ));
    haystacks.push((
        "statuses".into(),
        serde_json::to_string(&finals.items).unwrap(),
    ));
    haystacks.push(("recorded statuses".into(), format!("{outcomes:?}")));
    haystacks.push(("ledger".into(), format!("{ledger:?}")));
    let mut found = Vec::new();
    for (name, text) in &haystacks {
        for needle in &secrets.values {
            if text.contains(needle.as_str()) {
                found.push(format!("{name} holds {}...", &needle[..3]));
            }
        }
    }
    found
}
