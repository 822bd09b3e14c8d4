//! The TaskResets the benchmark creates: shaped like objects applied with kubectl, so the
//! controller's cache has managed fields and a last-applied annotation to carry (or strip).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use taskreset_controller::api::TaskReset;

/// Project and instance of every object (the target differs by task ID).
const PROJECT: &str = "c53626012ba84727b938ca8bf03108ef";
const INSTANCE: &str = "fae7ff6c-8e07-4cf8-9e67-589cab2f017c";
/// The credentials Secret in every namespace.
pub const SECRET: &str = "roma-credentials";
/// What kubectl's server-side apply uses as field manager.
const FIELD_MANAGER: &str = "kubectl";
/// The annotation client-side `kubectl apply` keeps.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One object to create.
#[derive(Debug, Clone)]
pub struct Item {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its own FDI task ID: every object resets a different target.
    pub task_id: String,
}

impl Item {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `count` items named `{prefix}-{i}`, spread round-robin over `namespaces`.
pub fn items(prefix: &str, count: usize, namespaces: &[String]) -> Vec<Item> {
    (0..count)
        .map(|i| Item {
            namespace: namespaces[i % namespaces.len()].clone(),
            name: format!("{prefix}-{i:05}"),
            // 32 hex characters, like real FDI task IDs; unique per prefix and index.
            task_id: format!("{:016x}{:016x}", fnv(prefix), i),
        })
        .collect()
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The manifest as a user would write it, plus the last-applied annotation that client-side
/// `kubectl apply` adds (the manifest itself as compact JSON).
pub fn manifest(item: &Item) -> Value {
    let mut manifest = json!({
        "apiVersion": "fdi.roma.io/v1alpha1",
        "kind": "TaskReset",
        "metadata": {
            "name": item.name,
            "namespace": item.namespace,
            "labels": {
                "app.kubernetes.io/name": "orders-pipeline",
                "app.kubernetes.io/part-of": "data-platform",
                "app.kubernetes.io/managed-by": "kubectl",
            },
        },
        "spec": {
            "projectId": PROJECT,
            "instanceId": INSTANCE,
            "taskId": item.task_id,
            "dateFrom": 1_630_052_714_000_i64,
            "credentialsSecretRef": {"name": SECRET},
            "runId": "2026-11-29-a",
        },
    });
    let applied = format!("{manifest}\n");
    manifest["metadata"]["annotations"] = json!({ LAST_APPLIED: applied });
    manifest
}

/// Server-side apply `item` (creates it with `managedFields`).
pub async fn apply(client: &kube::Client, item: &Item) -> Result<(), String> {
    let api: Api<TaskReset> = Api::namespaced(client.clone(), &item.namespace);
    api.patch(
        &item.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(manifest(item)),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("applying {}: {e}", item.key()))
}

/// Apply every item, `concurrency` at a time; the time it took.
pub async fn apply_all(
    client: &kube::Client,
    items: &[Item],
    concurrency: usize,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut results = futures::stream::iter(items)
        .map(|item| apply(client, item))
        .buffer_unordered(concurrency);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(started.elapsed())
}

/// One paced create: when it was sent and when it returned.
#[derive(Debug, Clone)]
pub struct Created {
    /// The object.
    pub item: Item,
    /// When the request was sent.
    pub sent: Instant,
    /// When the answer came back.
    pub returned: Instant,
}

/// Apply `items` at a steady `per_second`, each in its own task so a slow answer does not
/// delay the schedule; returns every create's timing and the schedule's actual duration.
pub async fn apply_paced(
    client: &kube::Client,
    items: Vec<Item>,
    per_second: f64,
) -> Result<(Vec<Created>, Duration), String> {
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let client = Arc::new(client.clone());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        ticks.tick().await;
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            apply(&client, &item).await.map(|()| Created {
                item,
                sent,
                returned: Instant::now(),
            })
        }));
    }
    let scheduled = started.elapsed();
    let mut created = Vec::with_capacity(tasks.len());
    for task in tasks {
        created.push(task.await.map_err(|e| format!("create task: {e}"))??);
    }
    Ok((created, scheduled))
}
