//! The fault suite (issue 8): the real controller binary, SIGKILLed and restarted, then two
//! replicas under leader election with the leader killed, against both simulators with fault
//! injection on, over a few hundred TaskResets with several generations each. The guarantee is
//! checked from evidence (the ROMA simulator's call log, each generation's terminal status,
//! the ledger), never from timing: at most one executed call per (object, generation) and per
//! ledger key, no call after a terminal status, every generation terminal with fields that
//! tell what the simulator answered (or `Unknown` exactly where the outcome was ambiguous),
//! and no secret in any log line, event, status or ledger entry.
//!
//! Set `FAULT_SUITE_SEED` to replay a run's plan (scripts, policies, kill and chaos timing);
//! the seed is printed first and in the report line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

#[path = "fault_suite/plan.rs"]
mod plan;
#[path = "fault_suite/verify.rs"]
mod verify;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use plan::{Cred, Knobs, ObjectPlan};
use support::{Env, NS, Proc};
use taskreset_controller::api::{Phase, TaskReset};
use taskreset_simulators::kube_api::RequestRecord;
use taskreset_simulators::roma::AuthKind;
use verify::{Evidence, GenOutcome, Track};

/// TaskResets in the run, each with its own task id.
const OBJECTS: usize = 300;
/// Generations per object; the last one runs under leader election.
const GENERATIONS: i64 = 3;
/// SIGKILLs of the single controller process (phase A) before the replicas take over.
const MIN_KILLS: usize = 10;
/// Leaders killed in phase B, each followed by a takeover by the standby.
const LEADER_KILLS: usize = 3;
/// Everything must be over by then (the suite normally takes a fraction of it).
const DEADLINE: Duration = Duration::from_secs(170);
const LEASE: &str = "taskreset-fault-suite";
const TASKRESETS: &str = "fdi.roma.io/v1alpha1/taskresets";

const KNOBS: Knobs = Knobs {
    request_timeout: Duration::from_secs(3),
    max_attempts: 6,
    slow_max: Duration::from_millis(400),
    hang: Duration::from_millis(4500),
};

/// Controller flags on top of the harness's (`--retry-base-delay 100ms`, no rate limit).
fn flags() -> Vec<String> {
    [
        "--request-timeout",
        &format!("{}ms", KNOBS.request_timeout.as_millis()),
        "--max-attempts",
        &KNOBS.max_attempts.to_string(),
        "--retry-max-delay",
        "1s",
        "--credentials-retry-delay",
        "500ms",
        "--max-concurrent-resets",
        "32",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Report to the terminal even when the test harness captures output.
macro_rules! report {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// One controller process and its captured log.
struct Controller {
    child: Proc,
    log: String,
}

impl Controller {
    /// Fail loudly, with the end of its log, if the process ended on its own: a controller
    /// that exits under API or ROMA faults is a finding (nothing here restarts it).
    fn assert_alive(&mut self, env: &Env, what: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            let log = env.log(&self.log);
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "{what} ({}) exited by itself with {status}; last log lines, newest first:\n{}",
                self.log,
                tail.join("\n")
            );
        }
    }
}

/// The controller processes of the run and every SIGKILL (and SIGTERM mid-run).
struct Processes<'e> {
    env: &'e Env,
    spawned: usize,
    kills: Vec<SystemTime>,
    logs: Vec<String>,
}

impl Processes<'_> {
    fn spawn(&mut self, extra: &[&str]) -> Controller {
        self.spawned += 1;
        let log = format!("controller-{:02}.log", self.spawned);
        let flags = flags();
        let flags: Vec<&str> = flags
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        let child = tokio::task::block_in_place(|| self.env.spawn_binary(&flags, &log));
        self.logs.push(log.clone());
        Controller { child, log }
    }

    fn spawn_replica(&mut self, id: &str) -> Controller {
        self.spawn(&[
            "--leader-election",
            "--lease-name",
            LEASE,
            "--lease-namespace",
            NS,
            "--lease-holder",
            id,
            "--lease-duration",
            "3s",
        ])
    }

    fn kill(&mut self, mut controller: Controller) {
        controller.assert_alive(self.env, "a controller about to be killed");
        self.kills.push(SystemTime::now());
        controller.child.kill().expect("SIGKILL");
        // Reaping blocks a moment: keep the simulators' tasks running meanwhile.
        tokio::task::block_in_place(|| controller.child.wait()).expect("reap");
    }

    /// SIGTERM one process mid-run and wait for it to exit: the calls that started more than
    /// a moment after the signal (nothing new may be called once it arrived).
    async fn terminate(&mut self, mut controller: Controller) -> usize {
        controller.assert_alive(self.env, "a controller about to be stopped");
        // A claim being written as the signal comes may stand (its withdrawal failing):
        // for the verifier, a stop is a moment a claim may be left, like a kill.
        self.kills.push(SystemTime::now());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &controller.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while controller.child.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "{} still running 20 s after SIGTERM",
                controller.log
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The process's own word: the calls it began after it took the signal (a call whose
        // last check passed just before may log a moment after it).
        let log = self.env.log(&controller.log);
        let at = |line: &str| {
            line.split_whitespace()
                .next()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        };
        let Some(signal) = log
            .lines()
            .find(|l| l.contains("shutdown requested"))
            .and_then(at)
        else {
            panic!("{} logged no shutdown after SIGTERM", controller.log);
        };
        let late = signal + jiff::SignedDuration::from_millis(50);
        let calls: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("calling reset") && at(l).is_some_and(|t| t > late))
            .collect();
        for call in &calls {
            report!("  call begun after SIGTERM by {}: {call}", controller.log);
        }
        calls.len()
    }

    /// SIGTERM every process and wait (bounded) for it to exit; the ones that did not.
    async fn stop(&mut self, controllers: &mut [(String, Controller)]) -> Vec<String> {
        for (_, controller) in controllers.iter() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &controller.child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut stuck = Vec::new();
        for (id, controller) in controllers.iter_mut() {
            loop {
                match controller.child.try_wait().expect("try_wait") {
                    Some(status) if status.success() => break,
                    Some(status) => {
                        stuck.push(format!("{id} exited with {status} after SIGTERM"));
                        break;
                    }
                    None if Instant::now() >= deadline => {
                        stuck.push(format!("{id} still running 20 s after SIGTERM"));
                        break;
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        stuck
    }
}

/// Both simulators' fault injection, and how often each knob was turned.
/// The steps of a history expiry.
enum Outage {
    /// Watches work.
    None,
    /// TaskReset watches are ended and refused.
    Refusing,
    /// The history is forgotten; watches are let through again after this instant.
    Expired(Instant),
}

struct Chaos {
    rng: fastrand::Rng,
    next_history_expiry: Instant,
    /// Where the history expiry is.
    watch_outage: Outage,
    next_token_expiry: Instant,
    /// (when, the first resourceVersion still watchable) of every history expiry.
    expiries: Vec<(jiff::Timestamp, u64)>,
    token_expiries: usize,
}

impl Chaos {
    fn start(env: &Env, seed: u64) -> Self {
        Self::base(env);
        env.roma.set_latency(Duration::from_millis(10));
        let mut rng = fastrand::Rng::with_seed(seed ^ 0xC4A0_5000);
        let now = Instant::now();
        Self {
            next_history_expiry: now + jitter(&mut rng, 4.0, 7.0),
            watch_outage: Outage::None,
            next_token_expiry: now + jitter(&mut rng, 5.0, 9.0),
            rng,
            expiries: Vec::new(),
            token_expiries: 0,
        }
    }

    /// The faults that are always on.
    fn base(env: &Env) {
        let faults = env.kube.faults();
        faults.clear();
        faults.fail_share("update", "taskresets.fdi.roma.io/status", 0.08, 409);
        faults.fail_share("*", "*", 0.02, 500);
        faults.latency(Duration::from_millis(3));
        faults.drop_watches_every(Duration::from_secs(3));
    }

    async fn tick(&mut self, env: &Env) {
        let now = Instant::now();
        // The history expiry: end the TaskReset watches and refuse new ones; once the streams
        // are closed (the next tick), forget the history; a moment later, let watches through
        // again. The re-watch then comes from a forgotten resourceVersion (410 Expired) and the
        // controller has to list again. (Expired while a stream is open, the busy stream
        // would often hand the client a newer resourceVersion before it closes.)
        match self.watch_outage {
            Outage::None if now >= self.next_history_expiry => {
                let faults = env.kube.faults();
                faults.fail_share("watch", "taskresets.fdi.roma.io", 1.0, 500);
                faults.drop_watches_now();
                self.watch_outage = Outage::Refusing;
                self.next_history_expiry = now + jitter(&mut self.rng, 4.0, 7.0);
            }
            Outage::Refusing => {
                env.kube.faults().expire_history();
                self.expiries
                    .push((jiff::Timestamp::now(), env.kube.current_resource_version()));
                self.watch_outage = Outage::Expired(now + Duration::from_millis(500));
            }
            Outage::Expired(until) if now >= until => {
                Self::base(env);
                self.watch_outage = Outage::None;
            }
            _ => {}
        }
        if now >= self.next_token_expiry {
            // Every token dies (the IAM-issued ones too); the static one is issued again and
            // its Secret edited, as an operator rotating it would (a 401 pins the Secret's
            // version: the controller calls again only once the Secret changed).
            env.roma.expire_tokens();
            env.roma.add_token(support::TOKEN);
            self.token_expiries += 1;
            let secret = k8s_openapi::api::core::v1::Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(Cred::Token.secret().to_owned()),
                    ..Default::default()
                },
                string_data: Some(
                    [
                        ("token".to_owned(), support::TOKEN.to_owned()),
                        ("rotation".to_owned(), self.token_expiries.to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            };
            let secrets: Api<k8s_openapi::api::core::v1::Secret> =
                Api::namespaced(env.client.clone(), NS);
            let params = PatchParams::apply("fault-suite").force();
            let patch = Patch::Apply(&secret);
            persist("rotating the token Secret", || {
                secrets.patch(Cred::Token.secret(), &params, &patch)
            })
            .await;
            self.next_token_expiry = now + jitter(&mut self.rng, 5.0, 9.0);
        }
    }
}

impl Chaos {
    /// TaskReset watches that asked for a resourceVersion forgotten by then: each got 410
    /// Expired and sent the controller back to a fresh list.
    fn expired_rewatches(&self, requests: &[RequestRecord]) -> usize {
        requests
            .iter()
            .filter(|r| {
                r.verb == "watch" && r.status == 200 && r.resource.starts_with("taskresets")
            })
            .filter(|r| {
                let (Ok(at), Some(rv)) = (
                    r.time.parse::<jiff::Timestamp>(),
                    r.query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("resourceVersion="))
                        .and_then(|v| v.parse::<u64>().ok()),
                ) else {
                    return false;
                };
                self.expiries
                    .iter()
                    .rev()
                    .find(|(when, _)| *when <= at)
                    .is_some_and(|(_, watchable)| rv < *watchable)
            })
            .count()
    }
}

fn jitter(rng: &mut fastrand::Rng, min_s: f64, max_s: f64) -> Duration {
    Duration::from_secs_f64(min_s + rng.f64() * (max_s - min_s))
}

/// The secret values of the run, to grep for.
struct Secrets {
    password: String,
    secret_key: String,
}

impl Secrets {
    async fn install(env: &Env, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5EC2_E700);
        let password = format!("pw-{:024x}", rng.u128(..));
        let access_key = format!("FAULTAK{:013X}", rng.u64(..) >> 12);
        let secret_key = format!("sk{:038x}", rng.u128(..));
        env.roma.add_user("acme", "fault-robot", &password);
        env.roma.add_access_key(&access_key, &secret_key);
        env.put_secret(
            Cred::Password.secret(),
            &[
                ("username", "fault-robot"),
                ("password", &password),
                ("domainName", "acme"),
                ("iamEndpoint", &env.roma.url()),
            ],
        )
        .await;
        env.put_secret(
            Cred::AccessKey.secret(),
            &[("accessKey", &access_key), ("secretKey", &secret_key)],
        )
        .await;
        Self {
            password,
            secret_key,
        }
    }

    /// Each secret value, and the prefix of every token the simulator's IAM issues.
    fn needles(&self) -> [&str; 4] {
        [support::TOKEN, &self.password, &self.secret_key, "MIIsim"]
    }
}

/// Retry an API call through the injected faults, a bounded number of times.
async fn persist<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut last = None;
    for _ in 0..40 {
        match call().await {
            Ok(value) => return value,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: still failing after 40 tries: {last:?}");
}

/// The Lease holder, straight from the store.
fn lease_holder(env: &Env) -> Option<String> {
    env.kube
        .get_json("coordination.k8s.io/v1/leases", NS, LEASE)?
        .pointer("/spec/holderIdentity")?
        .as_str()
        .map(str::to_owned)
}

/// The leader kills of phase B.
enum Failover {
    /// Kill the leader once this instant has passed.
    Due(Instant),
    /// The leader is dead; waiting for the standby (`survivor`) to take the lease.
    AwaitTakeover {
        dead: String,
        survivor: String,
        since: Instant,
    },
}

/// Issue 11.1: clear the status of up to 30 objects whose last generation made a call that
/// succeeded or may have executed (as `kubectl patch --subresource=status -p '{"status":null}'`
/// does), and wait until each reads AlreadyExecuted again. Any call this causes is a call
/// after a terminal status for the verifier. Returns the indexes of the cleared objects.
async fn clear_finished_statuses(
    env: &Env,
    plan: &[ObjectPlan],
    tracks: &[Track],
) -> std::collections::BTreeSet<usize> {
    let cleared: std::collections::BTreeSet<usize> = tracks
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            // Interrupted is left out: a claim killed before its reservation made no call, so
            // after its status is cleared the run may rightly be made (once).
            t.outcomes.last().and_then(Option::as_ref).is_some_and(|o| {
                let ready = o.status.conditions.iter().find(|c| c.type_ == "Ready");
                let reason = ready.map_or("", |c| c.reason.as_str());
                matches!(reason, "ResetSucceeded" | "OutcomeUnknown")
            })
        })
        .map(|(i, _)| i)
        .take(30)
        .collect();
    let api = env.api();
    let params = PatchParams::default();
    let clear = Patch::Merge(serde_json::json!({ "status": null }));
    for &i in &cleared {
        persist("clear the status", || {
            api.patch_status(&plan[i].name, &params, &clear)
        })
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for &i in &cleared {
        loop {
            let tr = persist("get", || api.get(&plan[i].name)).await;
            if ready_reason(&tr) == "AlreadyExecuted" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never read AlreadyExecuted after its status was cleared: {:?}",
                plan[i].name,
                tr.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cleared
}

fn ready_reason(tr: &TaskReset) -> String {
    tr.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

/// Look at every object (straight from the store: the driver's reads suffer no faults),
/// record generations that became terminal, and move those with generations left to the next
/// (script first, then the spec edit, retried on the next pass if the API fails it).
async fn drive(env: &Env, plan: &[ObjectPlan], tracks: &mut [Track], upto: i64) -> usize {
    let mut advance = Vec::new();
    for (i, object) in plan.iter().enumerate() {
        let Some(json) = env.kube.get_json(TASKRESETS, NS, &object.name) else {
            continue;
        };
        let tr: TaskReset = serde_json::from_value(json).expect("a TaskReset");
        let g = tr.metadata.generation.unwrap_or(0);
        if !tracks[i].observe(&tr) {
            continue;
        }
        if g < upto {
            advance.push((i, g + 1));
        }
    }
    let api: Api<TaskReset> = env.api();
    futures::stream::iter(advance)
        .map(|(i, next)| {
            let api = api.clone();
            let object = &plan[i];
            env.roma.script(&object.task, object.script(next).to_vec());
            async move {
                let edit = serde_json::json!({"spec": {
                    "runId": plan::run_id(next),
                    "dateFrom": plan::date_from(next),
                }});
                api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&edit))
                    .await
                    .is_ok()
            }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}

fn done(tracks: &[Track], g: i64) -> usize {
    tracks
        .iter()
        .filter(|t| t.outcomes[usize::try_from(g - 1).unwrap()].is_some())
        .count()
}

/// What is left to do, for a timeout message.
fn stragglers(env: &Env, plan: &[ObjectPlan], tracks: &[Track]) -> String {
    plan.iter()
        .zip(tracks)
        .filter(|(_, t)| t.outcomes.iter().any(Option::is_none))
        .take(10)
        .map(|(o, _)| {
            let json = env.kube.get_json(TASKRESETS, NS, &o.name);
            let generation = json
                .as_ref()
                .and_then(|j| j.pointer("/metadata/generation").cloned());
            let status = json.as_ref().and_then(|j| j.get("status").cloned());
            format!("{} gen {generation:?}: {status:?}", o.name)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guarantee_holds_under_faults_kills_and_failover() {
    let started = Instant::now();
    let seed = std::env::var("FAULT_SUITE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    report!("fault-suite: seed={seed} (replay with FAULT_SUITE_SEED={seed})");
    let env = Env::new().await;
    let secrets = Secrets::install(&env, seed).await;
    let plan = plan::draw(seed, OBJECTS, GENERATIONS, &KNOBS);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x4B11_1000);
    let mut procs = Processes {
        env: &env,
        spawned: 0,
        kills: Vec::new(),
        logs: Vec::new(),
    };
    let mut chaos = Chaos::start(&env, seed);

    // Phase A: one controller process, SIGKILLed at random moments and restarted.
    let mut current = procs.spawn(&[]);
    let api = env.api();
    futures::stream::iter(&plan)
        .for_each_concurrent(16, |object| {
            let api = api.clone();
            env.roma.script(&object.task, object.script(1).to_vec());
            async move {
                let tr = TaskReset::new(&object.name, object.spec(1));
                let params = PostParams::default();
                persist("create", || api.create(&params, &tr)).await;
            }
        })
        .await;
    let mut tracks: Vec<Track> = (0..OBJECTS).map(|_| Track::new(GENERATIONS)).collect();
    let mut patches = 0;
    let mut next_kill = Instant::now() + jitter(&mut rng, 1.0, 3.0);
    let mut restarts = 0;
    let (mut sigterms, mut calls_after_sigterm) = (0, 0);
    loop {
        assert!(
            started.elapsed() < DEADLINE,
            "phase A did not finish within {DEADLINE:?} (seed {seed}): {} of {OBJECTS} at generation {}, {restarts} restarts\n{}",
            done(&tracks, GENERATIONS - 1),
            GENERATIONS - 1,
            stragglers(&env, &plan, &tracks)
        );
        chaos.tick(&env).await;
        current.assert_alive(&env, "the controller");
        patches += drive(&env, &plan, &mut tracks, GENERATIONS - 1).await;
        if Instant::now() >= next_kill {
            if restarts % 3 == 2 {
                // A graceful stop amid the backlog: nothing new is called after the signal.
                calls_after_sigterm += procs.terminate(current).await;
                sigterms += 1;
            } else {
                procs.kill(current);
            }
            restarts += 1;
            current = procs.spawn(&[]);
            next_kill = Instant::now() + jitter(&mut rng, 1.0, 3.0);
        }
        if restarts >= MIN_KILLS && done(&tracks, GENERATIONS - 1) == OBJECTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let phase_a = started.elapsed();
    procs.kill(current);

    // Phase B: two replicas under leader election; the leader is killed and the standby
    // takes over, then a fresh replica joins as the new standby.
    let mut replica_ids = 0;
    let mut replicas: Vec<(String, Controller)> = Vec::new();
    for _ in 0..2 {
        let id = format!("replica-{replica_ids}");
        replica_ids += 1;
        replicas.push((id.clone(), procs.spawn_replica(&id)));
    }
    let mut failover = Failover::Due(Instant::now() + jitter(&mut rng, 2.0, 4.0));
    let mut leader_kills = 0;
    let mut takeovers = Vec::new();
    loop {
        assert!(
            started.elapsed() < DEADLINE,
            "phase B did not finish within {DEADLINE:?} (seed {seed}): {} of {OBJECTS} done, {leader_kills} leader kills, holder {:?}\n{}",
            done(&tracks, GENERATIONS),
            lease_holder(&env),
            stragglers(&env, &plan, &tracks)
        );
        chaos.tick(&env).await;
        for (id, replica) in &mut replicas {
            replica.assert_alive(&env, id);
        }
        patches += drive(&env, &plan, &mut tracks, GENERATIONS).await;
        failover = match failover {
            Failover::Due(at) if Instant::now() >= at && leader_kills < LEADER_KILLS => {
                match lease_holder(&env).and_then(|h| replicas.iter().position(|(id, _)| *id == h))
                {
                    Some(index) => {
                        let (dead, child) = replicas.remove(index);
                        procs.kill(child);
                        leader_kills += 1;
                        Failover::AwaitTakeover {
                            dead,
                            survivor: replicas[0].0.clone(),
                            since: Instant::now(),
                        }
                    }
                    None => Failover::Due(at),
                }
            }
            Failover::AwaitTakeover {
                dead,
                survivor,
                since,
            } => {
                if lease_holder(&env).as_deref() == Some(survivor.as_str()) {
                    takeovers.push((dead, survivor, since.elapsed()));
                    let id = format!("replica-{replica_ids}");
                    replica_ids += 1;
                    replicas.push((id.clone(), procs.spawn_replica(&id)));
                    Failover::Due(Instant::now() + jitter(&mut rng, 2.0, 4.0))
                } else {
                    assert!(
                        since.elapsed() < Duration::from_secs(30),
                        "{survivor} did not take the lease from the killed {dead} within 30 s; holder {:?}",
                        lease_holder(&env)
                    );
                    Failover::AwaitTakeover {
                        dead,
                        survivor,
                        since,
                    }
                }
            }
            other => other,
        };
        let failovers_done = leader_kills >= LEADER_KILLS && matches!(failover, Failover::Due(_));
        if failovers_done && done(&tracks, GENERATIONS) == OBJECTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let phase_b = started.elapsed() - phase_a;

    // Quiet time: nothing may call any more. Then a graceful stop, and the faults off so the
    // evidence can be read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cleared = clear_finished_statuses(&env, &plan, &tracks).await;
    let before_stop = env.roma.calls().len();
    let stuck = procs.stop(&mut replicas).await;
    env.kube.faults().clear();
    let calls = env.roma.calls();
    let calls_during_stop = calls.len() - before_stop;

    // The evidence.
    let ledger = env.ledger().await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), NS);
    let events = events.list(&ListParams::default()).await.expect("events");
    let finals = env.api().list(&ListParams::default()).await.expect("list");
    let outcomes: Vec<Vec<Option<GenOutcome>>> = tracks.into_iter().map(|t| t.outcomes).collect();
    let mut found = verify::check(&Evidence {
        plan: &plan,
        generations: GENERATIONS,
        outcomes: &outcomes,
        calls: &calls,
        kills: &procs.kills,
        ledger: &ledger,
        knobs: KNOBS,
    });

    // The last generation's status stays what it was when it became terminal; a status
    // cleared by hand comes back as AlreadyExecuted with the same phase (and no call).
    for tr in &finals.items {
        let index = plan.iter().position(|o| o.name == tr.name_any()).unwrap();
        let last = outcomes[index].last().unwrap().as_ref().unwrap();
        let now = tr.status.clone().unwrap_or_default();
        let unchanged = if cleared.contains(&index) {
            // Unknown when the ledger lost the completion (a kill right after the status
            // write): "may have executed" is all it can say then.
            let phase_kept = now.phase == last.status.phase || now.phase == Some(Phase::Unknown);
            phase_kept
                && now.observed_generation == last.status.observed_generation
                && ready_reason(tr) == "AlreadyExecuted"
        } else {
            (now.phase, now.observed_generation, &now.request_id)
                == (
                    last.status.phase,
                    last.status.observed_generation,
                    &last.status.request_id,
                )
        };
        if !unchanged {
            found.wrong_statuses += 1;
            found.problems.push(format!(
                "{}: terminal status changed afterwards: {:?} -> {now:?}",
                tr.name_any(),
                last.status
            ));
        }
    }

    // No secret anywhere the controller writes.
    let mut haystacks: Vec<(String, String)> = procs
        .logs
        .iter()
        .map(|log| (log.clone(), env.log(log)))
        .collect();
    haystacks.extend(verify::written_places(
        &events.items,
        &finals.items,
        &outcomes,
        &ledger,
    ));
    let leaks = verify::leaks(&haystacks, secrets.needles().into_iter());
    let log_lines: usize = haystacks[..procs.logs.len()]
        .iter()
        .map(|(_, text)| text.lines().count())
        .sum();
    let logged_calls: usize = haystacks[..procs.logs.len()]
        .iter()
        .map(|(_, text)| text.matches("calling reset").count())
        .sum();

    // The report.
    let requests = env.kube.request_log();
    let expired_rewatches = chaos.expired_rewatches(&requests);
    let taskreset_requests = |verb: &str| {
        requests
            .iter()
            .filter(|r| r.verb == verb && r.resource.starts_with("taskresets"))
            .count()
    };
    let injected = |status: u16| {
        requests
            .iter()
            .filter(|r| r.injected && r.status == status)
            .count()
    };
    let by_auth = |kind: AuthKind| calls.iter().filter(|c| c.auth == kind).count();
    let roma_faults: BTreeMap<_, _> = found.faults.clone();
    report!(
        "fault-suite report: seed={seed} objects={OBJECTS} generations={} calls={} (attributed {}, executed {}, gateway 401 on expired tokens {}, by auth: token {} iam {} aksk {}) iam_token_exchanges={} \
         faults: roma {roma_faults:?} token_expiries={} | kube injected_500={} injected_409={} watch_drops_every=3s taskreset_watches={} history_expiries={} (410 on re-watch {expired_rewatches}) taskreset_lists={} (controller starts {}) | \
         kills={} (restarts {restarts}, leader kills {leader_kills}, takeovers {}) outcomes={:?} \
         duplicates={} ledger_duplicates={} calls_after_terminal={} wrong_statuses={} unattributable={} ledger_mismatches={} ledger_open={} secret_leaks={} \
         calls_during_stop={calls_during_stop} sigterms={sigterms} calls_after_sigterm={calls_after_sigterm} statuses_cleared={} unclean_stops={} log_lines={log_lines} spec_edits={patches} time: phase A {:.1}s, phase B {:.1}s, total {:.1}s",
        OBJECTS as i64 * GENERATIONS,
        calls.len(),
        found.calls,
        found.executed,
        found.auth_refusals,
        by_auth(AuthKind::Token),
        by_auth(AuthKind::IamToken),
        by_auth(AuthKind::AccessKey),
        env.roma.iam_calls(),
        chaos.token_expiries,
        injected(500),
        injected(409),
        taskreset_requests("watch"),
        chaos.expiries.len(),
        taskreset_requests("list"),
        procs.spawned,
        procs.kills.len(),
        takeovers.len(),
        found.outcomes,
        found.duplicates,
        found.ledger_duplicates,
        found.calls_after_terminal,
        found.wrong_statuses,
        found.unattributable,
        found.ledger_mismatches,
        found.ledger_open,
        leaks.len(),
        cleared.len(),
        stuck.len(),
        phase_a.as_secs_f64(),
        phase_b.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    for problem in found.problems.iter().take(40) {
        report!("  problem: {problem}");
    }
    for (dead, survivor, after) in &takeovers {
        report!("  takeover: {survivor} took the lease {after:.1?} after {dead} was killed");
    }

    assert!(
        found.clean(),
        "invariants broken (seed {seed}), see the problems above"
    );
    assert!(leaks.is_empty(), "secrets leaked: {leaks:?}");
    assert_eq!(
        calls_during_stop, 0,
        "calls after every generation was terminal"
    );
    assert!(stuck.is_empty(), "graceful stop: {stuck:?}");
    assert!(sigterms > 0, "no graceful stop amid the backlog");
    assert_eq!(calls_after_sigterm, 0, "calls started after a SIGTERM");
    assert!(!cleared.is_empty(), "no finished status was cleared");
    assert!(procs.kills.len() > MIN_KILLS + LEADER_KILLS - 1);
    assert_eq!(
        takeovers.len(),
        LEADER_KILLS,
        "every leader kill ended in a takeover"
    );
    // The run exercised what it claims to: every credential kind, the IAM refresh, every
    // terminal outcome, the faults, and logs worth grepping.
    assert!(by_auth(AuthKind::IamToken) > 0 && by_auth(AuthKind::AccessKey) > 0);
    assert!(env.roma.iam_calls() > 1, "the IAM tokens were refreshed");
    for outcome in [
        "Succeeded/ResetSucceeded",
        "Failed/ResetFailed",
        "Unknown/OutcomeUnknown",
    ] {
        assert!(
            found.outcomes.contains_key(outcome),
            "no {outcome} in the run"
        );
    }
    assert!(injected(500) > 0 && injected(409) > 0);
    assert!(logged_calls > 0, "the captured logs show the calls");
}

/// A replica started while the API server fails every Lease read waits it out (as client-go's
/// leader election does) instead of exiting, then leads and resets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_during_an_api_outage_waits_for_the_lease() {
    let env = Env::new().await;
    let faults = env.kube.faults();
    faults.fail_share("*", "leases", 1.0, 500);
    let mut child = env.spawn_binary(
        &[
            "--leader-election",
            "--lease-name",
            LEASE,
            "--lease-namespace",
            NS,
            "--lease-holder",
            "patient",
        ],
        "patient.log",
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = env
        .kube
        .request_log()
        .iter()
        .filter(|r| r.resource.starts_with("leases") && r.status == 500)
        .count();
    assert!(
        refused > 1,
        "the Lease was asked for again: {refused} refusals"
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the replica exited during the outage:\n{}",
        env.log("patient.log")
    );
    faults.clear();
    let task = Env::task();
    env.create("after-outage", &task, |_| {}).await;
    env.wait_phase("after-outage", Phase::Succeeded, Duration::from_secs(30))
        .await;
    assert_eq!(lease_holder(&env).as_deref(), Some("patient"));
    assert_eq!(env.calls(&task).len(), 1);
}
