//! The ledger's copy of its shards, against the Kubernetes API simulator: a reservation and
//! its completion cost one write each once a shard is known, and a copy made stale by another
//! writer (a second replica here) never loses an entry nor lets a run through twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
mod fixture;

use fixture::Fixture;
use taskreset_controller::api::{Phase, TaskReset};
use taskreset_controller::ledger::{Entry, Ledger, RunKey, Runner, Verdict};
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiHandle, KubeApiServer};

const NS: &str = "ledger-cache";
const RETENTION: Duration = Duration::from_secs(86_400);

fn object(name: &str, uid: &str) -> TaskReset {
    Fixture::new(name, &format!("task-{name}"))
        .namespace(NS)
        .uid(uid)
        .build()
}

fn key(tr: &TaskReset) -> RunKey {
    RunKey::of(tr, &tr.spec.validate().unwrap())
}

fn runner(tr: &TaskReset) -> Runner {
    Runner {
        uid: tr.metadata.uid.clone().unwrap(),
        generation: 1,
        attempt: 1,
        base: "1".into(),
        retries_ambiguous: false,
        retry_of: None,
    }
}

/// `count` object names that share one shard.
fn same_shard(count: usize) -> Vec<String> {
    let shard = key(&object("run-0", "u")).configmap();
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("run-{i}"))
        .filter(|n| key(&object(n, "u")).configmap() == shard)
        .take(count)
        .collect();
    assert_eq!(names.len(), count, "enough names hash to one shard");
    names
}

fn counter(kube: &KubeApiHandle, name: &str) -> u64 {
    kube.counters().get(name).copied().unwrap_or(0)
}

async fn entries(client: &kube::Client, configmap: &str) -> Vec<(String, Entry)> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cm = cms.get(configmap).await.unwrap();
    cm.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, serde_json::from_str(&v).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_shard_costs_one_write_per_step() {
    let kube = KubeApiServer::start(KubeApiConfig::default())
        .await
        .expect("kube sim");
    let client = kube.client().await;
    let ledger = Ledger::new(client.clone(), RETENTION);
    let names = same_shard(4);
    let now = Timestamp::now();

    // The first run reads the (missing) shard and creates it; later runs only write.
    let first = object(&names[0], "uid-0");
    ledger
        .reserve(&key(&first), &runner(&first), now)
        .await
        .unwrap();
    let reads = counter(&kube, "get:configmaps");
    let writes = counter(&kube, "update:configmaps") + counter(&kube, "create:configmaps");
    for (i, name) in names.iter().enumerate().skip(1) {
        let tr = object(name, &format!("uid-{i}"));
        let reserved = ledger.reserve(&key(&tr), &runner(&tr), now).await.unwrap();
        assert_eq!(reserved.verdict, Verdict::PROCEED);
        ledger
            .complete(&key(&tr), &runner(&tr), Phase::Succeeded, None, now)
            .await
            .unwrap();
    }
    assert_eq!(
        counter(&kube, "get:configmaps"),
        reads,
        "no read once the shard is known"
    );
    assert_eq!(
        counter(&kube, "update:configmaps") + counter(&kube, "create:configmaps"),
        writes + 2 * (names.len() as u64 - 1),
        "one write per reservation and per completion"
    );
    let stored = entries(&client, &key(&first).configmap()).await;
    assert_eq!(stored.len(), names.len());
    kube.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_loses_nothing_and_lets_nothing_through_twice() {
    let kube = KubeApiServer::start(KubeApiConfig::default())
        .await
        .expect("kube sim");
    let client = kube.client().await;
    let a = Ledger::new(client.clone(), RETENTION);
    let b = Ledger::new(client.clone(), RETENTION);
    let names = same_shard(3);
    let now = Timestamp::now();

    // Replica A reserves a run and so knows the shard.
    let x = object(&names[0], "uid-x");
    assert_eq!(
        a.reserve(&key(&x), &runner(&x), now).await.unwrap().verdict,
        Verdict::PROCEED
    );
    // Replica B writes two more runs into the same shard behind A's back.
    let y = object(&names[1], "uid-y");
    let z = object(&names[2], "uid-z");
    for tr in [&y, &z] {
        assert_eq!(
            b.reserve(&key(tr), &runner(tr), now).await.unwrap().verdict,
            Verdict::PROCEED
        );
        b.complete(&key(tr), &runner(tr), Phase::Succeeded, None, now)
            .await
            .unwrap();
    }
    let conflicts = counter(&kube, "status:409");

    // A completes its run with a stale copy: the write conflicts, A reads afresh, and B's runs
    // stay in the shard.
    a.complete(&key(&x), &runner(&x), Phase::Succeeded, None, now)
        .await
        .unwrap();
    assert!(
        counter(&kube, "status:409") > conflicts,
        "the stale copy was refused"
    );
    let stored = entries(&client, &key(&x).configmap()).await;
    assert_eq!(stored.len(), 3, "no entry lost: {stored:?}");
    assert!(
        stored
            .iter()
            .all(|(_, e)| e.outcome == Some(Phase::Succeeded))
    );

    // B's copy is now stale. A re-created `z` (new uid) asked of B must still be refused:
    // B's copy has z's old entry, and the decision not to write is confirmed on a fresh read.
    let recreated = object(&names[2], "uid-z-again");
    let verdict = b
        .reserve(&key(&recreated), &runner(&recreated), now)
        .await
        .unwrap()
        .verdict;
    assert!(
        matches!(&verdict, Verdict::AlreadyExecuted(entry) if entry.uid == "uid-z"),
        "{verdict:?}"
    );
    // And a re-created `x` asked of B, whose copy misses A's completion, is refused too.
    let x_again = object(&names[0], "uid-x-again");
    let verdict = b
        .reserve(&key(&x_again), &runner(&x_again), now)
        .await
        .unwrap()
        .verdict;
    assert!(
        matches!(&verdict, Verdict::AlreadyExecuted(entry) if entry.uid == "uid-x"),
        "{verdict:?}"
    );
    kube.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_deleted_by_hand_is_created_again() {
    let kube = KubeApiServer::start(KubeApiConfig::default())
        .await
        .expect("kube sim");
    let client = kube.client().await;
    let ledger = Ledger::new(client.clone(), RETENTION);
    let names = same_shard(2);
    let now = Timestamp::now();
    let first = object(&names[0], "uid-0");
    ledger
        .reserve(&key(&first), &runner(&first), now)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    cms.delete(&key(&first).configmap(), &Default::default())
        .await
        .unwrap();

    let second = object(&names[1], "uid-1");
    assert_eq!(
        ledger
            .reserve(&key(&second), &runner(&second), now)
            .await
            .unwrap()
            .verdict,
        Verdict::PROCEED
    );
    let stored = entries(&client, &key(&second).configmap()).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1.uid, "uid-1");
    kube.shutdown().await;
}
