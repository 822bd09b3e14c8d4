//! A list read in pages while objects change: every page carries the first page's
//! resourceVersion, so a watch from it replays the changes made meanwhile (a cache built from
//! the pages cannot keep a stale object), and a continue token older than the watch history
//! is refused with 410 like kube-apiserver's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiServer};

const NS: &str = "pages";

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([("v".to_owned(), "1".to_owned())].into()),
        ..ConfigMap::default()
    }
}

fn page(limit: u32, token: Option<&str>) -> ListParams {
    let params = ListParams::default().limit(limit);
    match token {
        Some(token) => params.continue_token(token),
        None => params,
    }
}

#[tokio::test]
async fn later_pages_carry_the_first_pages_version_and_the_watch_replays_changes() {
    let kube = KubeApiServer::start(KubeApiConfig::default())
        .await
        .expect("kube sim");
    let api: Api<ConfigMap> = Api::namespaced(kube.client().await, NS);
    for i in 0..6 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    let first = api.list(&page(3, None)).await.unwrap();
    let version = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    assert_eq!(first.items.len(), 3);

    // cm-0, already read, changes before the second page is asked for.
    api.patch(
        "cm-0",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    let second = api.list(&page(3, Some(&token))).await.unwrap();
    assert_eq!(second.items.len(), 3);
    assert_eq!(
        second.metadata.resource_version.as_deref(),
        Some(version.as_str()),
        "every page belongs to the first page's list"
    );

    // A watch from the list's version brings the change to cm-0.
    let mut events = api
        .watch(&WatchParams::default().timeout(5), &version)
        .await
        .unwrap()
        .boxed();
    let event = events.next().await.unwrap().unwrap();
    let WatchEvent::Modified(cm) = event else {
        panic!("expected cm-0 MODIFIED, got {event:?}");
    };
    assert_eq!(cm.metadata.name.as_deref(), Some("cm-0"));
    assert_eq!(cm.data.unwrap().get("v").map(String::as_str), Some("2"));
    kube.shutdown().await;
}

#[tokio::test]
async fn a_continue_token_older_than_the_history_is_expired() {
    let kube = KubeApiServer::start(KubeApiConfig::default())
        .await
        .expect("kube sim");
    let api: Api<ConfigMap> = Api::namespaced(kube.client().await, NS);
    for i in 0..4 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    let first = api.list(&page(2, None)).await.unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    kube.faults().expire_history();
    let error = api.list(&page(2, Some(&token))).await.unwrap_err();
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 410),
        "{error:?}"
    );
    // A new list without the token works.
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
    kube.shutdown().await;
}
