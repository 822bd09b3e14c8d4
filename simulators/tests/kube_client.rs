//! The Kubernetes API simulator driven by kube-rs 5: watch semantics (resourceVersion,
//! ADDED/MODIFIED/DELETED, 410 Expired), optimistic concurrency (409), generation and status
//! subresource rules, kube::runtime::watcher, Lease leader election writes, the events
//! Recorder, server-side apply, selectors and pagination, Table output, fault injection and
//! the request log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::discovery::ApiResource;
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiHandle, KubeApiServer};

const STEP: Duration = Duration::from_secs(10);

fn tr_resource() -> ApiResource {
    ApiResource {
        group: "fdi.roma.io".into(),
        version: "v1alpha1".into(),
        api_version: "fdi.roma.io/v1alpha1".into(),
        kind: "TaskReset".into(),
        plural: "taskresets".into(),
    }
}

/// The committed CRD.
fn crd() -> CustomResourceDefinition {
    let yaml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crd.yaml"))
            .unwrap();
    serde_saphyr::from_str(&yaml).unwrap()
}

async fn start(config: KubeApiConfig) -> (KubeApiHandle, kube::Client, Api<DynamicObject>) {
    let server = KubeApiServer::start(config).await.unwrap();
    let client = server.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    let api = Api::namespaced_with(client.clone(), "default", &tr_resource());
    (server, client, api)
}

fn taskreset(name: &str, task: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "fdi.roma.io/v1alpha1",
        "kind": "TaskReset",
        "metadata": {"name": name},
        "spec": {"projectId": "p1", "instanceId": "i1", "taskId": task},
    }))
    .unwrap()
}

fn rv(obj: &DynamicObject) -> String {
    obj.metadata.resource_version.clone().unwrap()
}

fn generation(obj: &DynamicObject) -> i64 {
    obj.metadata.generation.unwrap()
}

fn api_code(err: &kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("not an API error: {other:?}"),
    }
}

async fn next<S, T>(stream: &mut S) -> T
where
    S: futures::Stream<Item = T> + Unpin,
{
    tokio::time::timeout(STEP, stream.next())
        .await
        .expect("no event in time")
        .expect("stream ended")
}

#[tokio::test]
async fn watch_from_a_resource_version_sees_added_modified_deleted() {
    let (_server, _client, api) = start(KubeApiConfig::default()).await;
    let before = api
        .create(&PostParams::default(), &taskreset("before", "t0"))
        .await
        .unwrap();
    let stream = api
        .watch(&WatchParams::default(), &rv(&before))
        .await
        .unwrap();
    let mut stream = Box::pin(stream);

    let created = api
        .create(&PostParams::default(), &taskreset("a", "t1"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runId": "2"}})),
        )
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let WatchEvent::Added(added) = next(&mut stream).await.unwrap() else {
        panic!("not ADDED")
    };
    assert_eq!(added.metadata.name.as_deref(), Some("a"));
    assert_eq!(rv(&added), rv(&created));
    let WatchEvent::Modified(modified) = next(&mut stream).await.unwrap() else {
        panic!("not MODIFIED")
    };
    assert_eq!(rv(&modified), rv(&patched));
    assert_eq!(modified.data["spec"]["runId"], "2");
    let WatchEvent::Deleted(deleted) = next(&mut stream).await.unwrap() else {
        panic!("not DELETED")
    };
    let (a, b, c): (u64, u64, u64) = (
        rv(&created).parse().unwrap(),
        rv(&modified).parse().unwrap(),
        rv(&deleted).parse().unwrap(),
    );
    assert!(
        a < b && b < c,
        "one global increasing resourceVersion: {a} {b} {c}"
    );
    let before_rv: u64 = rv(&before).parse().unwrap();
    assert!(
        before_rv < a,
        "the object created before the watch is not replayed"
    );

    // A watch without a resourceVersion starts with the current objects.
    let stream = api.watch(&WatchParams::default(), "0").await.unwrap();
    let mut stream = Box::pin(stream);
    let WatchEvent::Added(first) = next(&mut stream).await.unwrap() else {
        panic!("not ADDED")
    };
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
}

#[tokio::test]
async fn watches_get_410_once_history_is_gone_and_bookmarks_when_asked() {
    let config = KubeApiConfig {
        history_limit: 3,
        bookmark_interval: Duration::from_millis(100),
        ..KubeApiConfig::default()
    };
    let (server, _client, api) = start(config).await;
    let first = api
        .create(&PostParams::default(), &taskreset("a", "t1"))
        .await
        .unwrap();
    for i in 0..5 {
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runId": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    let stream = api
        .watch(&WatchParams::default(), &rv(&first))
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    match next(&mut stream).await.unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // expire_history(): even a recent resourceVersion is too old afterwards.
    let latest = api.get("a").await.unwrap();
    server.faults().expire_history();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"runId": "x"}})),
    )
    .await
    .unwrap();
    let stream = api
        .watch(&WatchParams::default(), &rv(&latest))
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    assert!(matches!(next(&mut stream).await.unwrap(), WatchEvent::Error(s) if s.code == 410));

    // Bookmarks carry the latest resourceVersion seen.
    let now = api.get("a").await.unwrap();
    let stream = api.watch(&WatchParams::default(), &rv(&now)).await.unwrap();
    let mut stream = Box::pin(stream);
    match next(&mut stream).await.unwrap() {
        WatchEvent::Bookmark(b) => {
            let bookmark_rv: u64 = b.metadata.resource_version.parse().unwrap();
            assert!(bookmark_rv >= rv(&now).parse::<u64>().unwrap());
        }
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}

#[tokio::test]
async fn stale_writes_get_409() {
    let (_server, _client, api) = start(KubeApiConfig::default()).await;
    let v1 = api
        .create(&PostParams::default(), &taskreset("a", "t1"))
        .await
        .unwrap();
    let mut v2 = v1.clone();
    v2.data["spec"]["runId"] = json!("2");
    let v2 = api.replace("a", &PostParams::default(), &v2).await.unwrap();
    assert_ne!(rv(&v1), rv(&v2));

    let mut stale = v1.clone();
    stale.data["spec"]["runId"] = json!("3");
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    let kube::Error::Api(status) = &err else {
        unreachable!()
    };
    assert_eq!(status.reason, "Conflict");
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );

    // A resourceVersion in a patch body is a precondition.
    let stale_patch = json!({"metadata": {"resourceVersion": rv(&v1)}, "spec": {"runId": "4"}});
    let err = api
        .patch("a", &PatchParams::default(), &Patch::Merge(stale_patch))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    let fresh_patch = json!({"metadata": {"resourceVersion": rv(&v2)}, "spec": {"runId": "4"}});
    api.patch("a", &PatchParams::default(), &Patch::Merge(fresh_patch))
        .await
        .unwrap();

    // Delete preconditions.
    let err = api
        .delete(
            "a",
            &DeleteParams::default().preconditions(kube::api::Preconditions {
                resource_version: Some(rv(&v1)),
                uid: None,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);

    // Duplicate create, missing object.
    let err = api
        .create(&PostParams::default(), &taskreset("a", "t1"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    let err = api.get("missing").await.unwrap_err();
    assert_eq!(api_code(&err), 404);
    // A custom resource update needs a resourceVersion.
    let mut unconditional = v2.clone();
    unconditional.metadata.resource_version = None;
    let err = api
        .replace("a", &PostParams::default(), &unconditional)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);
}

#[tokio::test]
async fn generation_counts_spec_changes_only() {
    let (_server, _client, api) = start(KubeApiConfig::default()).await;
    let mut obj = taskreset("", "t1");
    obj.metadata.generate_name = Some("gen-".into());
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(generation(&created), 1);
    assert!(created.metadata.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(created.metadata.creation_timestamp.is_some());

    let labelled = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        generation(&labelled),
        1,
        "metadata changes keep the generation"
    );
    let status = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Resetting"}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&status), 1, "status changes keep the generation");
    let spec = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runId": "again"}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&spec), 2);
    let same = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runId": "again"}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&same), 2);
    assert_eq!(rv(&same), rv(&spec), "a no-op patch writes nothing");
    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/runId", "value": "third"}]))
            .unwrap();
    let third = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch),
        )
        .await
        .unwrap();
    assert_eq!(generation(&third), 3);
    assert_eq!(third.data["spec"]["runId"], "third");
}

#[tokio::test]
async fn the_status_subresource_writes_only_status() {
    let (_server, _client, api) = start(KubeApiConfig::default()).await;
    let mut obj = taskreset("a", "t1");
    obj.data["status"] = json!({"phase": "Succeeded"});
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    // What was sent is dropped; what reads back is the CRD's default, as on kube-apiserver.
    let unwritten = json!({"observedGeneration": -1});
    assert_eq!(
        created.data["status"], unwritten,
        "status is dropped on create"
    );

    // The main resource ignores .status.
    let main = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Failed"}, "spec": {"runId": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(main.data["status"], unwritten);
    assert_eq!(main.data["spec"]["runId"], "1");

    // The status subresource ignores everything but .status.
    let mut with_status = main.clone();
    with_status.data["status"] =
        json!({"phase": "Resetting", "observedGeneration": 2, "attempts": 1});
    with_status.data["spec"]["runId"] = json!("ignored");
    with_status.metadata.labels =
        Some(BTreeMap::from([("ignored".to_string(), "yes".to_string())]));
    let st = api
        .replace_status("a", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Resetting");
    assert_eq!(st.data["spec"]["runId"], "1");
    assert!(st.metadata.labels.is_none());
    assert_eq!(generation(&st), 2);

    // Status is validated against the schema too.
    let err = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Exploded"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);
    let got = api.get_status("a").await.unwrap();
    assert_eq!(got.data["status"]["phase"], "Resetting");
}

#[tokio::test]
async fn invalid_objects_get_422_with_field_causes() {
    let (_server, _client, api) = start(KubeApiConfig::default()).await;
    let mut bad = taskreset("bad", "../escape");
    bad.data["spec"]["dateFrom"] = json!(-1);
    bad.data["spec"]["retryPolicy"] = json!("Sometimes");
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(status) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    let causes: Vec<(String, String)> = status
        .details
        .as_ref()
        .unwrap()
        .causes
        .iter()
        .map(|c| (c.field.clone(), c.reason.clone()))
        .collect();
    assert!(
        causes.contains(&("spec.taskId".into(), "FieldValueInvalid".into())),
        "{causes:?}"
    );
    assert!(
        causes.contains(&("spec.retryPolicy".into(), "FieldValueNotSupported".into())),
        "{causes:?}"
    );
    // CEL runs once the structure is valid.
    let mut cel = taskreset("cel", "t1");
    cel.data["spec"]["dateFrom"] = json!(-1);
    let err = api.create(&PostParams::default(), &cel).await.unwrap_err();
    let kube::Error::Api(status) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        status.details.as_ref().unwrap().causes[0].field,
        "spec.dateFrom"
    );
    assert!(
        status
            .message
            .contains("dateFrom must be epoch milliseconds"),
        "{}",
        status.message
    );

    let ok = api
        .create(&PostParams::default(), &taskreset("ok", "t1"))
        .await
        .unwrap();
    let err = api
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"instanceId": "other"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);
    assert_eq!(
        rv(&api.get("ok").await.unwrap()),
        rv(&ok),
        "nothing written"
    );
}

#[tokio::test]
async fn the_runtime_watcher_follows_changes_through_dropped_watches() {
    let config = KubeApiConfig {
        bookmark_interval: Duration::from_millis(200),
        ..KubeApiConfig::default()
    };
    let (server, _client, api) = start(config).await;
    api.create(&PostParams::default(), &taskreset("existing", "t0"))
        .await
        .unwrap();
    for streaming in [false, true] {
        let cfg = if streaming {
            watcher::Config::default().streaming_lists()
        } else {
            watcher::Config::default().page_size(1)
        };
        let mut stream = Box::pin(watcher(api.clone(), cfg).default_backoff());
        let mut seen_init = Vec::new();
        loop {
            match next(&mut stream).await.unwrap() {
                watcher::Event::InitApply(o) => seen_init.push(o.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert!(seen_init.contains(&"existing".to_string()), "{seen_init:?}");
        let name = format!("new-{streaming}");
        api.create(&PostParams::default(), &taskreset(&name, "t1"))
            .await
            .unwrap();
        loop {
            if let watcher::Event::Apply(o) = next(&mut stream).await.unwrap()
                && o.metadata.name.as_deref() == Some(name.as_str())
            {
                break;
            }
        }
        // Drop every watch: the watcher re-watches from its last resourceVersion.
        server.faults().drop_watches_now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runId": "after-drop"}})),
        )
        .await
        .unwrap();
        loop {
            if let watcher::Event::Apply(o) = next(&mut stream).await.unwrap()
                && o.data["spec"]["runId"] == "after-drop"
            {
                break;
            }
        }
        api.delete(&name, &DeleteParams::default()).await.unwrap();
        loop {
            if let watcher::Event::Delete(o) = next(&mut stream).await.unwrap() {
                assert_eq!(o.metadata.name.as_deref(), Some(name.as_str()));
                break;
            }
        }
    }
    let counters = server.counters();
    assert!(
        counters
            .get("watch:taskresets.fdi.roma.io")
            .copied()
            .unwrap_or(0)
            >= 4,
        "{counters:?}"
    );
    assert_eq!(
        counters.get("list:taskresets.fdi.roma.io"),
        Some(&1),
        "streaming lists do not list: {counters:?}"
    );
}

#[tokio::test]
async fn leases_support_leader_election_writes() {
    let server = KubeApiServer::start(KubeApiConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "taskreset-controller"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15,
                 "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z",
                 "leaseTransitions": 0}
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().renew_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            "2026-01-01T00:00:05.000000Z".parse().unwrap(),
        ));
    let renewed = leases
        .replace("taskreset-controller", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_ne!(
        renewed.metadata.resource_version,
        created.metadata.resource_version
    );

    // A second candidate with the old version loses.
    let mut takeover = created.clone();
    takeover.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let err = leases
        .replace("taskreset-controller", &PostParams::default(), &takeover)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    // Server-side apply with a resourceVersion precondition, as lease managers do.
    let apply = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "taskreset-controller", "resourceVersion": renewed.metadata.resource_version},
        "spec": {"holderIdentity": "pod-b", "leaseTransitions": 1}
    });
    let params = PatchParams::apply("pod-b").force();
    let applied = leases
        .patch("taskreset-controller", &params, &Patch::Apply(&apply))
        .await
        .unwrap();
    assert_eq!(
        applied.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("pod-b")
    );
    let err = leases
        .patch("taskreset-controller", &params, &Patch::Apply(&apply))
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        409,
        "the resourceVersion in the apply body is now stale"
    );
    let got = server
        .get_json(
            "coordination.k8s.io/v1/leases",
            "kube-system",
            "taskreset-controller",
        )
        .unwrap();
    assert_eq!(
        got["spec"]["leaseDurationSeconds"], 15,
        "fields owned by the creator stay"
    );
}

#[tokio::test]
async fn the_event_recorder_creates_and_updates_events() {
    let (server, client, api) = start(KubeApiConfig::default()).await;
    let obj = api
        .create(&PostParams::default(), &taskreset("a", "t1"))
        .await
        .unwrap();
    let reference = ObjectReference {
        api_version: Some("fdi.roma.io/v1alpha1".into()),
        kind: Some("TaskReset".into()),
        name: obj.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: obj.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "taskreset-controller".into(),
            instance: Some("pod-a".into()),
        },
    );
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "ResetSucceeded".into(),
        note: Some("Reset Success".into()),
        action: "Reset".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "the repeat is a series on the same event"
    );
    let ev = &list.items[0];
    assert_eq!(ev.reason.as_deref(), Some("ResetSucceeded"));
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("a")
    );
    assert_eq!(ev.series.as_ref().map(|s| s.count), Some(2));
    let counters = server.counters();
    assert_eq!(counters.get("create:events.events.k8s.io"), Some(&1));
    assert_eq!(counters.get("patch:events.events.k8s.io"), Some(&1));
}

#[tokio::test]
async fn server_side_apply_of_status_with_force_and_conflicts() {
    let (server, _client, api) = start(KubeApiConfig::default()).await;
    api.create(&PostParams::default(), &taskreset("a", "t1"))
        .await
        .unwrap();
    let status = json!({
        "apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
        "status": {"phase": "Succeeded", "observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "ResetSucceeded", "message": "ok",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}
    });
    let params = PatchParams::apply("taskreset-controller").force();
    let applied = api
        .patch_status("a", &params, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["phase"], "Succeeded");
    let managers: Vec<(String, Option<String>)> = applied
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|m| (m.manager.clone().unwrap(), m.subresource.clone()))
        .collect();
    assert!(
        managers.contains(&("taskreset-controller".into(), Some("status".into()))),
        "{managers:?}"
    );

    // Another manager changing a field the controller owns: conflict unless forced.
    let other = json!({"apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset", "status": {"phase": "Failed"}});
    let err = api
        .patch_status(
            "a",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    let kube::Error::Api(s) = &err else {
        unreachable!()
    };
    assert!(
        s.message.contains("conflict with \"taskreset-controller\""),
        "{}",
        s.message
    );
    // Applying a list-map item merges by key.
    let more = json!({"apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset", "status": {"conditions": [
        {"type": "Stalled", "status": "False", "reason": "Fine", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let merged = api
        .patch_status(
            "a",
            &PatchParams::apply("stall-writer"),
            &Patch::Apply(&more),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.data["status"]["conditions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Spec through apply, without fieldManager: 400.
    let err = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Apply(&json!({"apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset"})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 400);
    // Apply creates when absent.
    let created = api
        .patch(
            "fresh",
            &PatchParams::apply("gitops"),
            &Patch::Apply(&taskreset("fresh", "t9")),
        )
        .await
        .unwrap();
    assert_eq!(generation(&created), 1);
    assert!(
        server
            .get_json("fdi.roma.io/v1alpha1/taskresets", "default", "fresh")
            .is_some()
    );
}

#[tokio::test]
async fn lists_select_by_label_and_field_and_paginate() {
    let (_server, _client, api) = start(KubeApiConfig::default()).await;
    for i in 0..7 {
        let mut obj = taskreset(&format!("tr-{i}"), "t1");
        obj.metadata.labels = Some(BTreeMap::from([(
            "parity".to_string(),
            if i % 2 == 0 { "even" } else { "odd" }.to_string(),
        )]));
        api.create(&PostParams::default(), &obj).await.unwrap();
    }
    let other_ns: Api<DynamicObject> =
        Api::namespaced_with(_client.clone(), "other", &tr_resource());
    other_ns
        .create(&PostParams::default(), &taskreset("elsewhere", "t1"))
        .await
        .unwrap();

    let even = api
        .list(&ListParams::default().labels("parity=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let odd = api
        .list(&ListParams::default().labels("parity in (odd),parity!=even"))
        .await
        .unwrap();
    assert_eq!(odd.items.len(), 3);
    let one = api
        .list(&ListParams::default().fields("metadata.name=tr-3"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert!(one.metadata.resource_version.is_some());

    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("tr-{i}")).collect::<Vec<_>>());

    let all: Api<DynamicObject> = Api::all_with(_client, &tr_resource());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        8
    );
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("parity=odd"),
        )
        .await
        .unwrap();
    assert!(deleted.is_left());
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_server, _client, api) = start(KubeApiConfig::default()).await;
    let mut obj = taskreset("held", "t1");
    obj.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    let stream = api.watch(&WatchParams::default(), "0").await.unwrap();
    let mut stream = Box::pin(stream);
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        WatchEvent::Added(_)
    ));

    let deleting = api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = deleting
        .left()
        .expect("the object is returned while finalizers remain");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        matches!(next(&mut stream).await.unwrap(), WatchEvent::Modified(o) if o.metadata.deletion_timestamp.is_some())
    );
    let err = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/cleanup", "new"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422, "no new finalizers while deleting");
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        WatchEvent::Modified(_)
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        WatchEvent::Deleted(_)
    ));
    assert_eq!(api_code(&api.get("held").await.unwrap_err()), 404);
}

#[tokio::test]
async fn secrets_convert_string_data_and_stay_out_of_logs() {
    let server = KubeApiServer::start(KubeApiConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "roma-credentials"},
        "stringData": {"accessKey": "AK-visible-id", "secretKey": "SK-must-not-leak"}
    }))
    .unwrap();
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert!(created.string_data.is_none());
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let data = created.data.unwrap();
    assert_eq!(data["secretKey"].0, b"SK-must-not-leak");
    let bad: Secret = serde_json::from_value(json!({"metadata": {"name": "bad"}})).unwrap();
    let mut bad_json = serde_json::to_value(&bad).unwrap();
    bad_json["data"] = json!({"k": "SK-not-base64!!"});
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::erase::<Secret>(&()));
    let err = raw
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad_json).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 422);
    assert!(
        !status.message.contains("SK-not-base64"),
        "{}",
        status.message
    );
    let log = format!(
        "{:?}{:?}{server:?}{err}{err:?}",
        server.request_log(),
        server.counters()
    );
    // Neither in clear nor as stored (base64 of SK-must-not-leak).
    assert!(!log.contains("SK-must-not-leak") && !log.contains("SK-not-base64"));
    assert!(!log.contains("U0stbXVzdC1ub3QtbGVhaw=="));
}

#[tokio::test]
async fn faults_latency_counters_and_the_http_hooks() {
    let server = KubeApiServer::start(KubeApiConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let faults = server.faults();
    // 500, not 503: kube's client retries 429, 503 and 504 by itself.
    faults.fail_share("list", "configmaps", 1.0, 500);
    let err = cms.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(api_code(&err), 500);
    faults.clear();
    cms.list(&ListParams::default()).await.unwrap();

    faults.latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    faults.latency(Duration::ZERO);

    let counters = server.counters();
    assert_eq!(counters.get("list:configmaps"), Some(&3));
    assert_eq!(counters.get("status:500"), Some(&1));
    let injected: Vec<_> = server
        .request_log()
        .into_iter()
        .filter(|r| r.injected)
        .collect();
    assert_eq!(injected.len(), 1);
    assert_eq!(
        (injected[0].verb.as_str(), injected[0].status),
        ("list", 500)
    );

    // The same over HTTP.
    let http = reqwest::Client::new();
    let url = server.url();
    let counters: BTreeMap<String, u64> = http
        .get(format!("{url}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters.get("list:configmaps"), Some(&3));
    let settings: Value = http
        .post(format!("{url}/_sim/faults"))
        .json(
            &json!({"failShare": [{"verb": "get", "resource": "*", "share": 1.0, "status": 500}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["failShare"][0]["status"], 500);
    assert_eq!(api_code(&cms.get("x").await.unwrap_err()), 500);
    http.post(format!("{url}/_sim/faults"))
        .json(&json!({"clear": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(api_code(&cms.get("x").await.unwrap_err()), 404);
    let requests: Vec<Value> = http
        .get(format!("{url}/_sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["verb"] == "get" && r["status"] == 500 && r["injected"] == true)
    );

    // Table output with printer columns, as kubectl asks for it.
    let table: Value = http
        .get(format!("{url}/api/v1/namespaces/default/configmaps"))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, vec!["Name", "Data", "Age"]);

    // Aggregated discovery requests get the legacy document with a plain JSON content type.
    let response = http
        .get(format!("{url}/apis"))
        .header(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let groups: Value = response.json().await.unwrap();
    assert_eq!(groups["kind"], "APIGroupList");
}

#[tokio::test]
async fn deleting_a_crd_stops_serving_its_resources() {
    let (_server, client, api) = start(KubeApiConfig::default()).await;
    api.create(&PostParams::default(), &taskreset("a", "t1"))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let established = crds.get("taskresets.fdi.roma.io").await.unwrap();
    let conditions = established.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    crds.delete("taskresets.fdi.roma.io", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_code(&api.list(&ListParams::default()).await.unwrap_err()),
        404
    );
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
