//! The execution ledger at scale, against the Kubernetes API simulator: thousands of runs in
//! one namespace stay well inside the object size limit. Prints the measured figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
mod fixture;

use fixture::Fixture;
use taskreset_controller::api::{Phase, TaskReset};
use taskreset_controller::ledger::{Ledger, RunKey, Runner, SHARD_BUDGET_BYTES, SHARDS, Verdict};
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiServer};

const RUNS: usize = 1_000;
const NS: &str = "bulk";

fn object(i: usize) -> TaskReset {
    Fixture::new(&format!("nightly-replay-{i:05}"), &format!("{i:032x}"))
        .namespace(NS)
        .run_id("2026-11-29")
        .uid(&format!("uid-{i}"))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_runs_stay_well_inside_the_object_size_limit() {
    let kube = KubeApiServer::start(KubeApiConfig::default())
        .await
        .expect("kube sim");
    let client = kube.client().await;
    let ledger = Ledger::new(client.clone(), Duration::from_secs(30 * 86_400));
    let started = Instant::now();
    let results: Vec<Verdict> = futures::stream::iter(0..RUNS)
        .map(|i| {
            let ledger = ledger.clone();
            async move {
                let tr = object(i);
                let key = RunKey::of(&tr, &tr.spec.validate().unwrap());
                let runner = Runner {
                    uid: tr.metadata.uid.clone().unwrap(),
                    generation: 1,
                    attempt: 1,
                    base: "1".into(),
                    retries_ambiguous: false,
                    retry_of: None,
                };
                let now = jiff::Timestamp::now();
                let verdict = ledger
                    .reserve(&key, &runner, now)
                    .await
                    .expect("reserve")
                    .verdict;
                ledger
                    .complete(
                        &key,
                        &runner,
                        Phase::Succeeded,
                        Some("Reset Success".into()),
                        now,
                    )
                    .await
                    .expect("complete");
                verdict
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(|v| *v == Verdict::PROCEED));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let shards = cms.list(&Default::default()).await.unwrap().items;
    assert_eq!(shards.len(), SHARDS as usize, "every shard in use");
    let sizes: Vec<(usize, usize)> = shards
        .iter()
        .map(|cm| {
            let data = cm.data.clone().unwrap_or_default();
            (
                data.len(),
                data.iter().map(|(k, v)| k.len() + v.len()).sum(),
            )
        })
        .collect();
    let entries: usize = sizes.iter().map(|s| s.0).sum();
    let largest = sizes.iter().map(|s| s.1).max().unwrap();
    let total: usize = sizes.iter().map(|s| s.1).sum();
    let per_entry = total / entries;
    let capacity = SHARD_BUDGET_BYTES / per_entry * SHARDS as usize;
    println!(
        "ledger: {entries} runs in {} shards, {per_entry} bytes per run, largest shard {largest} bytes \
         ({:.1}% of the {} KiB budget, {:.1}% of 1 MiB), capacity about {capacity} runs per namespace; \
         {:.0} reserve+complete pairs/s against the simulator",
        shards.len(),
        100.0 * largest as f64 / SHARD_BUDGET_BYTES as f64,
        SHARD_BUDGET_BYTES / 1024,
        100.0 * largest as f64 / (1024.0 * 1024.0),
        RUNS as f64 / elapsed.as_secs_f64(),
    );
    assert_eq!(entries, RUNS, "no run was dropped or lost to a write race");
    assert!(
        largest < SHARD_BUDGET_BYTES / 4,
        "a shard holds {largest} bytes"
    );

    // A second object with a known name is blocked by the ledger.
    let mut again = object(7);
    again.metadata.uid = Some("recreated".into());
    let key = RunKey::of(&again, &again.spec.validate().unwrap());
    let runner = Runner {
        uid: "recreated".into(),
        generation: 1,
        attempt: 1,
        base: "1".into(),
        retries_ambiguous: false,
        retry_of: None,
    };
    let verdict = ledger
        .reserve(&key, &runner, jiff::Timestamp::now())
        .await
        .unwrap()
        .verdict;
    assert!(matches!(verdict, Verdict::AlreadyExecuted(entry) if entry.uid == "uid-7"));
    kube.shutdown().await;
}
