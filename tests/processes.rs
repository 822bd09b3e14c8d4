//! The real binary as a process: graceful shutdown, leader election with two replicas, and
//! the metrics and health endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use support::{Env, NS};
use taskreset_controller::api::Phase;
use taskreset_simulators::roma::Step;

const WAIT: Duration = Duration::from_secs(30);

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("GET");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// Poll `/readyz` until it answers 200 (readiness follows the watch sync by a moment).
async fn wait_ready(addr: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, _) = get(&format!("http://{addr}/readyz")).await;
        if code == 200 {
            return;
        }
        assert_eq!(code, 503, "readyz answers 200 or 503");
        assert!(Instant::now() < deadline, "{addr} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(child: &Child) {
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_finish_and_record() {
    let env = Env::new().await;
    let task = Env::task();
    env.roma.script(
        &task,
        vec![Step::delay(Duration::from_secs(2), Step::Succeed)],
    );
    let mut child = env.spawn_binary(&[], "graceful.log");
    let addr = env.metrics_addr("graceful.log").await;
    env.create("graceful", &task, |_| {}).await;
    env.wait_phase("graceful", Phase::Resetting, WAIT).await;

    let (code, _) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!(code, 200);
    wait_ready(&addr).await;
    let (_, metrics) = get(&format!("http://{addr}/metrics")).await;
    assert!(
        metrics.contains("taskreset_resets_in_flight 1"),
        "{metrics}"
    );

    terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit code after SIGTERM: {status}");
    let tr = env
        .wait_phase("graceful", Phase::Succeeded, Duration::from_secs(1))
        .await;
    assert_eq!(tr.status.unwrap().message.as_deref(), Some("Reset Success"));
    assert_eq!(env.calls(&task).len(), 1);
    let log = env.log("graceful.log");
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(
        !log.contains(support::TOKEN),
        "the token never reaches the logs"
    );
}

/// The flags of replica `id` under leader election on Lease `taskreset-e2e`.
fn replica_flags(id: &'static str, lease_duration: &'static str) -> [&'static str; 9] {
    [
        "--leader-election",
        "--lease-name",
        "taskreset-e2e",
        "--lease-namespace",
        NS,
        "--lease-holder",
        id,
        "--lease-duration",
        lease_duration,
    ]
}

async fn holder(env: &Env) -> Option<String> {
    let leases: kube::Api<Lease> = kube::Api::namespaced(env.client.clone(), NS);
    leases
        .get_opt("taskreset-e2e")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_when_the_leader_dies() {
    let env = Env::new().await;
    let flags = |id: &'static str| replica_flags(id, "3s");
    let mut replicas = vec![
        ("replica-a", env.spawn_binary(&flags("replica-a"), "a.log")),
        ("replica-b", env.spawn_binary(&flags("replica-b"), "b.log")),
    ];
    let deadline = Instant::now() + WAIT;
    let leader = loop {
        if let Some(h) = holder(&env).await {
            break h;
        }
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first = Env::task();
    env.create("before", &first, |_| {}).await;
    env.wait_phase("before", Phase::Succeeded, WAIT).await;

    // Both replicas answer ready: the leader once synced, the standby as a standby.
    for (id, _) in &replicas {
        let addr = env.metrics_addr(&format!("{}.log", &id[8..])).await;
        wait_ready(&addr).await;
        let (_, metrics) = get(&format!("http://{addr}/metrics")).await;
        let leads = if *id == leader {
            "taskreset_leader 1"
        } else {
            "taskreset_leader 0"
        };
        assert!(metrics.contains(leads), "{id}: {metrics}");
    }

    let index = replicas
        .iter()
        .position(|(id, _)| *id == leader)
        .expect("the leader is ours");
    let (_, mut dead) = replicas.remove(index);
    dead.kill().unwrap();
    dead.wait().unwrap();
    let second = Env::task();
    env.create("after", &second, |_| {}).await;
    env.wait_phase("after", Phase::Succeeded, WAIT).await;
    let new_leader = holder(&env).await.unwrap();
    assert_eq!(new_leader, replicas[0].0, "the standby took the lease");
    assert_eq!((env.calls(&first).len(), env.calls(&second).len()), (1, 1));
    for (_, child) in &mut replicas {
        terminate(child);
        assert!(child.wait().unwrap().success());
    }
}

/// Issue 11.3: after SIGTERM nothing new is called, even with a backlog waiting for the rate
/// limit; only the call on the wire finishes, and the process exits at once after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_backlog_starts_no_new_call() {
    let env = Env::new().await;
    let mut child = env.spawn_binary(&["--max-resets-per-second", "1"], "backlog.log");
    let tasks: Vec<String> = (0..20).map(|_| Env::task()).collect();
    for (i, task) in tasks.iter().enumerate() {
        env.create(&format!("backlog-{i}"), task, |_| {}).await;
    }
    let deadline = Instant::now() + WAIT;
    while env.roma.calls().len() < 2 {
        assert!(Instant::now() < deadline, "no call started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped_at = std::time::SystemTime::now();
    terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let exited_in = stopped_at.elapsed().unwrap();
    assert!(status.success(), "exit code after SIGTERM: {status}");
    // A call whose claim was written just before the signal may still start a moment later.
    let late: Vec<_> = env
        .roma
        .calls()
        .into_iter()
        .filter(|c| c.at > stopped_at + Duration::from_millis(250))
        .collect();
    assert!(
        late.is_empty(),
        "{} calls started after SIGTERM, the last {:?} after it",
        late.len(),
        late.last().map(|c| c.at.duration_since(stopped_at))
    );
    assert!(
        exited_in < Duration::from_secs(5),
        "the backlog held the exit for {exited_in:?}"
    );
    assert!(
        env.roma.calls().len() < 5,
        "{} calls",
        env.roma.calls().len()
    );
}

/// SIGTERM while the API server fails the first list: nothing can be in flight, so the
/// process exits at once (kube-runtime alone would wait for a cache that never fills).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_before_the_first_list_exits_at_once() {
    let env = Env::new().await;
    env.kube
        .faults()
        .fail_share("list", "taskresets.fdi.roma.io", 1.0, 500);
    let child = env.spawn_binary(&[], "unsynced.log");
    let deadline = Instant::now() + WAIT;
    while !env
        .log("unsynced.log")
        .contains("watching TaskResets failed")
    {
        assert!(Instant::now() < deadline, "{}", env.log("unsynced.log"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signalled = Instant::now();
    terminate(&child);
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let status = status.expect("the process was still running 10 s after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

/// A JSON value whose objects, at any depth, repeat no key (serde_json keeps the last of
/// duplicated keys silently; jq and Python do the same).
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut keys = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !keys.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    map.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The JSON lines of a log, each checked for repeated keys.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            if let Err(e) = serde_json::from_str::<NoDuplicateKeys>(line) {
                panic!("{e}: {line}");
            }
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
        })
        .collect()
}

/// Issue 15.3 and 15.4: JSON log lines name the object once (no key repeats), carry plain
/// values (no Rust `Debug`), log a transient API 500 once, and log at info every decision
/// made without a call (here the allow-list refusal) and the result of every call with its
/// HTTP status and request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_object_once_and_every_decision() {
    let env = Env::new().await;
    let faults = env.kube.faults();
    // Every Secret read fails with a 500 until cleared: transient API errors.
    faults.fail_share("get", "secrets", 1.0, 500);
    let mut child = env.spawn_binary(
        &[
            "--log-format",
            "json",
            "--default-credentials-secret",
            "data/roma",
            "--default-credentials-namespaces",
            "data,etl",
        ],
        "json.log",
    );
    let task = Env::task();
    env.create("logged", &task, |_| {}).await;
    let deadline = Instant::now() + WAIT;
    while !env.log("json.log").contains("reconcile failed") {
        assert!(Instant::now() < deadline, "{}", env.log("json.log"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.clear();
    env.wait_phase("logged", Phase::Succeeded, WAIT).await;
    env.create("refused", &Env::task(), |spec| {
        spec.endpoint = Some("https://roma.evil.example.com".to_owned());
    })
    .await;
    env.wait_phase("refused", Phase::Failed, WAIT).await;
    env.create("no-secret", &Env::task(), |spec| {
        spec.credentials_secret_ref = Some(taskreset_controller::api::SecretReference {
            name: "missing".into(),
        });
    })
    .await;
    // The same run again, deleted and re-created: the ledger answers, no call.
    env.api()
        .delete("logged", &Default::default())
        .await
        .unwrap();
    while env.api().get_opt("logged").await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.create("logged", &task, |_| {}).await;
    let deadline = Instant::now() + WAIT;
    while !(env
        .log("json.log")
        .contains("\"taskreset\":\"data/no-secret\"")
        && env.log("json.log").contains("AlreadyExecuted"))
    {
        assert!(Instant::now() < deadline, "{}", env.log("json.log"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(&child);
    assert!(child.wait().unwrap().success());

    let log = env.log("json.log");
    let lines = json_lines(&log);
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    assert!(!log.contains("Some("), "Rust Debug in the logs:\n{log}");
    // A transient 500 is logged once per failed reconcile: no ERROR of kube's own, no second
    // WARN of the controller stream.
    let mentions_500 = lines
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .filter(|l| {
            let mut l = (*l).clone();
            l.as_object_mut().unwrap().remove("timestamp");
            l.to_string().contains("500")
        })
        .count();
    let failed = lines
        .iter()
        .filter(|l| l["message"] == "reconcile failed; retrying")
        .collect::<Vec<_>>();
    assert!(!failed.is_empty());
    assert_eq!(mentions_500, failed.len(), "{log}");
    assert!(lines.iter().all(|l| l["level"] != "ERROR"), "{log}");
    assert_eq!(failed[0]["taskreset"], "data/logged", "{log}");
    assert_eq!(failed[0]["level"], "WARN");

    let answered = lines
        .iter()
        .find(|l| l["message"] == "reset call answered")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(answered["span"]["taskreset"], "data/logged", "{answered}");
    assert_eq!(answered["phase"], "Succeeded", "{answered}");
    assert_eq!(answered["outcome"], "succeeded", "{answered}");
    assert_eq!(answered["http_status"], 200, "{answered}");
    assert!(answered["request_id"].is_string(), "{answered}");

    let refused = lines
        .iter()
        .find(|l| l.to_string().contains("data/refused") && l["level"] == "INFO")
        .unwrap_or_else(|| panic!("no info line for the refusal:\n{log}"));
    assert_eq!(refused["reason"], "InvalidSpec", "{refused}");
    assert_eq!(refused["phase"], "Failed", "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not in the allowed endpoints")),
        "{refused}"
    );
    let decided = |name: &str| {
        lines
            .iter()
            .filter(|l| l["message"] == "decided without a call")
            .filter(|l| l["span"]["taskreset"] == format!("data/{name}"))
            .map(|l| l["reason"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        decided("no-secret").contains(&"CredentialsNotFound".to_owned()),
        "{:?}\n{log}",
        decided("no-secret")
    );
    assert!(
        decided("logged").contains(&"AlreadyExecuted".to_owned()),
        "{:?}\n{log}",
        decided("logged")
    );
    assert_eq!(env.calls(&task).len(), 1);
}

/// Issue 15.12: on SIGTERM the leader releases the Lease, and the standby takes it at once
/// instead of waiting for it to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_at_once_when_the_leader_is_stopped() {
    let env = Env::new().await;
    let flags = |id: &'static str| replica_flags(id, "15s");
    let mut a = env.spawn_binary(&flags("replica-a"), "a.log");
    let deadline = Instant::now() + WAIT;
    while holder(&env).await.as_deref() != Some("replica-a") {
        assert!(Instant::now() < deadline, "replica-a never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut b = env.spawn_binary(&flags("replica-b"), "b.log");
    let addr = env.metrics_addr("b.log").await;
    wait_ready(&addr).await;
    // Let the standby settle into waiting for the lease to expire.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let stopped = Instant::now();
    terminate(&a);
    assert!(a.wait().unwrap().success());
    let exited = stopped.elapsed();
    let leases: kube::Api<Lease> = kube::Api::namespaced(env.client.clone(), NS);
    let after_exit = leases.get("taskreset-e2e").await.unwrap().spec.unwrap();
    assert_ne!(
        after_exit.holder_identity.as_deref(),
        Some("replica-a"),
        "the leader exited still holding the Lease"
    );
    let deadline = stopped + Duration::from_secs(5);
    while holder(&env).await.as_deref() != Some("replica-b") {
        assert!(
            Instant::now() < deadline,
            "the standby did not take the Lease within 5 s of SIGTERM (a lease lasts 15 s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took_over = stopped.elapsed();
    eprintln!("leader exited in {exited:?}; standby took over in {took_over:?}");
    assert!(
        took_over < Duration::from_millis(2500),
        "hand-over took {took_over:?}"
    );
    let task = Env::task();
    env.create("after-handover", &task, |_| {}).await;
    env.wait_phase("after-handover", Phase::Succeeded, WAIT)
        .await;
    terminate(&b);
    assert!(b.wait().unwrap().success());
}
