//! The project's Kubernetes API simulator checked against kube-apiserver (issue 12 point 4):
//! one sequence of requests (create, status writes with a stale resourceVersion, generation
//! bumps, watch from an old resourceVersion, 422 bodies, events through events.k8s.io/v1 and
//! core/v1, a namespace that does not exist) is sent to both, and what matters in each answer
//! (status code, reason, message, details and causes, generation, whether the resourceVersion
//! moved, the events a watch or a list shows) must be the same. What the simulator does
//! differently on purpose is listed in testenv/README.md and in its own docs; nothing of it
//! is reached here.
//!
//! Skipped, loudly, without Go (failing instead when `CI` is set); see tests/real_support.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod real_support;

use std::time::{Duration, Instant};

use axum::http::Request;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use real_support::RealEnv;
use serde_json::{Value, json};
use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiServer};

const PROJECT: &str = "c53626012ba84727b938ca8bf03108ef";
const INSTANCE: &str = "fae7ff6c-8e07-4cf8-9e67-589cab2f017c";

/// One answer: the status code and the JSON body (or the watch events, one per line).
#[derive(Debug, Clone)]
struct Answer {
    code: u16,
    body: Value,
}

/// A client and the namespace the sequence works in.
struct Target {
    client: kube::Client,
    ns: String,
}

impl Target {
    async fn send(&self, method: &str, path: &str, content_type: &str, body: &Value) -> Answer {
        let path = path.replace("{ns}", &self.ns);
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let request = Request::builder()
            .method(method)
            .uri(path.as_str())
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(bytes)
            .unwrap();
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await;
        let response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = response.status().as_u16();
        let bytes = response.into_body().collect_bytes().await.unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let body = serde_json::from_str(&text).unwrap_or_else(|_| {
            // A watch: one JSON event per line.
            Value::Array(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.to_owned())))
                    .collect(),
            )
        });
        Answer { code, body }
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> Answer {
        self.send(method, path, "application/json", &body).await
    }

    async fn merge(&self, path: &str, body: Value) -> Answer {
        self.send("PATCH", path, "application/merge-patch+json", &body)
            .await
    }
}

fn taskreset(name: &str, task: &str, extra: Value) -> Value {
    let mut spec =
        json!({"projectId": PROJECT, "instanceId": INSTANCE, "taskId": task, "runId": "r1"});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({"apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
           "metadata": {"name": name}, "spec": spec})
}

const TR: &str = "/apis/fdi.roma.io/v1alpha1/namespaces/{ns}/taskresets";

/// What the comparison looks at in an error body (a `Status`).
fn status_view(a: &Answer) -> Value {
    let causes: Vec<Value> = a.body["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!({"field": c["field"], "reason": c["reason"], "message": c["message"]}))
        .collect();
    json!({
        "code": a.code,
        "status": a.body["status"],
        "reason": a.body["reason"],
        "message": a.body["message"],
        "details": {"name": a.body["details"]["name"], "group": a.body["details"]["group"],
                    "kind": a.body["details"]["kind"], "causes": causes},
    })
}

fn rv(a: &Answer) -> String {
    a.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The sequence; one labelled view per step.
async fn sequence(t: &Target) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut step = |label: &str, view: Value| out.push((label.to_owned(), view));

    // Create: generation 1, a resourceVersion, no status.
    let created = t
        .json("POST", TR, taskreset("cmp", "task-1", json!({})))
        .await;
    step(
        "create",
        json!({"code": created.code, "generation": created.body["metadata"]["generation"],
               "status": created.body["status"], "rv": !rv(&created).is_empty()}),
    );
    let mut claim = created.body.clone();
    claim["status"] = json!({"phase": "Resetting", "observedGeneration": 1});

    // A status write with the current resourceVersion (the claim), then the same write again
    // with the now stale one: 409.
    let claimed = t
        .json("PUT", &format!("{TR}/cmp/status"), claim.clone())
        .await;
    step(
        "status write",
        json!({"code": claimed.code, "generation": claimed.body["metadata"]["generation"],
               "phase": claimed.body["status"]["phase"],
               "rv moved": rv(&claimed) != rv(&created)}),
    );
    let stale = t
        .json("PUT", &format!("{TR}/cmp/status"), claim.clone())
        .await;
    step("stale status write", status_view(&stale));
    // The same stale write through the main resource (spec) endpoint.
    let mut stale_spec = claim.clone();
    stale_spec["spec"]["runId"] = json!("r9");
    let stale = t.json("PUT", &format!("{TR}/cmp"), stale_spec).await;
    step("stale update", status_view(&stale));

    // A status write ignores spec changes; a spec write ignores status changes.
    let mut both = claimed.body.clone();
    both["spec"]["runId"] = json!("ignored");
    both["status"]["phase"] = json!("Succeeded");
    let status_only = t.json("PUT", &format!("{TR}/cmp/status"), both).await;
    step(
        "status write with a spec change",
        json!({"code": status_only.code, "runId": status_only.body["spec"]["runId"],
               "phase": status_only.body["status"]["phase"],
               "generation": status_only.body["metadata"]["generation"]}),
    );
    let mut both = status_only.body.clone();
    both["spec"]["runId"] = json!("r2");
    both["status"]["phase"] = json!("Failed");
    let spec_only = t.json("PUT", &format!("{TR}/cmp"), both).await;
    step(
        "update with a status change",
        json!({"code": spec_only.code, "runId": spec_only.body["spec"]["runId"],
               "phase": spec_only.body["status"]["phase"],
               "generation": spec_only.body["metadata"]["generation"]}),
    );

    // Labels leave the generation alone; a spec change bumps it; a status patch does not.
    let labelled = t
        .merge(
            &format!("{TR}/cmp"),
            json!({"metadata": {"labels": {"team": "data"}}}),
        )
        .await;
    step(
        "label patch",
        json!({"code": labelled.code, "generation": labelled.body["metadata"]["generation"],
               "rv moved": rv(&labelled) != rv(&spec_only)}),
    );
    let unchanged = t
        .merge(&format!("{TR}/cmp"), json!({"spec": {"runId": "r2"}}))
        .await;
    step(
        "no-op spec patch",
        json!({"code": unchanged.code, "generation": unchanged.body["metadata"]["generation"],
               "rv moved": rv(&unchanged) != rv(&labelled)}),
    );
    let bumped = t
        .merge(&format!("{TR}/cmp"), json!({"spec": {"runId": "r3"}}))
        .await;
    step(
        "spec patch",
        json!({"code": bumped.code, "generation": bumped.body["metadata"]["generation"]}),
    );
    let status_patch = t
        .merge(
            &format!("{TR}/cmp/status"),
            json!({"status": {"phase": "Succeeded", "observedGeneration": 3}}),
        )
        .await;
    step(
        "status patch",
        json!({"code": status_patch.code,
               "generation": status_patch.body["metadata"]["generation"],
               "observedGeneration": status_patch.body["status"]["observedGeneration"]}),
    );
    // A merge patch with a stale resourceVersion precondition: 409.
    let stale = t
        .merge(
            &format!("{TR}/cmp"),
            json!({"metadata": {"resourceVersion": rv(&created)}, "spec": {"runId": "r4"}}),
        )
        .await;
    step("stale patch", status_view(&stale));

    // Watch from the creation's resourceVersion: every change since, in order.
    let watch = t
        .json(
            "GET",
            &format!(
                "{TR}?watch=true&resourceVersion={}&timeoutSeconds=1&fieldSelector=metadata.name%3Dcmp",
                rv(&created)
            ),
            Value::Null,
        )
        .await;
    let events: Vec<Value> = watch
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| {
            json!([
                e["type"],
                e["object"]["metadata"]["generation"],
                e["object"]["status"]["phase"],
                e["object"]["spec"]["runId"]
            ])
        })
        .collect();
    step(
        "watch from an old resourceVersion",
        json!({"code": watch.code, "events": events}),
    );

    // 404s: a missing object, the status of a missing object.
    let missing = t.json("GET", &format!("{TR}/nope"), Value::Null).await;
    step("get missing", status_view(&missing));
    let missing = t
        .json(
            "PUT",
            &format!("{TR}/nope/status"),
            taskreset("nope", "task-1", json!({})),
        )
        .await;
    step("status write of a missing object", status_view(&missing));

    // 422s: the schema, CEL rules, an enum (schema errors skip CEL), immutability, a name.
    for (label, name, task, extra) in [
        ("422 pattern", "bad-pattern", "no/slashes", json!({})),
        ("422 CEL", "bad-cel", "task-2", json!({"dateFrom": -1})),
        (
            "422 enum",
            "bad-enum",
            "task-3",
            json!({"retryPolicy": "Sometimes"}),
        ),
        ("422 name", "Bad_Name", "task-4", json!({})),
    ] {
        let bad = t.json("POST", TR, taskreset(name, task, extra)).await;
        step(label, status_view(&bad));
    }
    let moved = t
        .merge(&format!("{TR}/cmp"), json!({"spec": {"taskId": "task-9"}}))
        .await;
    step("422 immutable", status_view(&moved));
    let unknown = t
        .send(
            "POST",
            &format!("{TR}?fieldValidation=Strict"),
            "application/json",
            &taskreset("unknown", "task-5", json!({"runID": "x"})),
        )
        .await;
    step("400 strict unknown field", status_view(&unknown));

    // A namespace that does not exist.
    let nowhere = t
        .json(
            "POST",
            "/apis/fdi.roma.io/v1alpha1/namespaces/no-such-namespace/taskresets",
            taskreset("x", "task-1", json!({})),
        )
        .await;
    step("create in a missing namespace", status_view(&nowhere));
    let nowhere = t
        .json(
            "POST",
            "/api/v1/namespaces/no-such-namespace/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        )
        .await;
    step("ConfigMap in a missing namespace", status_view(&nowhere));

    // Events, written through one group, read through both.
    let regarding = json!({"apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
                           "name": "cmp", "namespace": t.ns});
    let new_event = t
        .json(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                   "metadata": {"name": "cmp.new"},
                   "eventTime": "2026-01-01T00:00:00.000000Z",
                   "reportingController": "taskreset-controller",
                   "reportingInstance": "taskreset-controller-0",
                   "action": "Reset", "reason": "ResetSucceeded", "type": "Normal",
                   "note": "Reset Success", "regarding": regarding}),
        )
        .await;
    step(
        "events.k8s.io/v1 create",
        json!({"code": new_event.code, "note": new_event.body["note"]}),
    );
    let old_event = t
        .json(
            "POST",
            "/api/v1/namespaces/{ns}/events",
            json!({"apiVersion": "v1", "kind": "Event",
                   "metadata": {"name": "cmp.old"},
                   "involvedObject": regarding,
                   "reason": "ResetFailed", "type": "Warning", "message": "The task list is empty.",
                   "source": {"component": "someone-else"},
                   "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
                   "count": 1}),
        )
        .await;
    step(
        "core/v1 event create",
        json!({"code": old_event.code, "message": old_event.body["message"]}),
    );
    for (label, path, text) in [
        (
            "events read through core/v1",
            "/api/v1/namespaces/{ns}/events",
            "message",
        ),
        (
            "events read through events.k8s.io/v1",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            "note",
        ),
    ] {
        let list = t.json("GET", path, Value::Null).await;
        let mut seen: Vec<Value> = list.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| json!([e["metadata"]["name"], e["reason"], e["type"], e[text]]))
            .collect();
        seen.sort_by_key(ToString::to_string);
        step(label, json!({"code": list.code, "events": seen}));
    }
    // The core/v1 view of the events.k8s.io/v1 event names what it is about.
    let mirrored = t
        .json("GET", "/api/v1/namespaces/{ns}/events/cmp.new", Value::Null)
        .await;
    step(
        "events.k8s.io/v1 event read through core/v1",
        json!({"code": mirrored.code,
               "involvedObject": mirrored.body["involvedObject"]["name"],
               "reportingComponent": mirrored.body["reportingComponent"],
               "message": mirrored.body["message"]}),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_like_kube_apiserver() {
    let Some(env) = RealEnv::new("sim-vs-real").await else {
        return;
    };
    let real = Target {
        client: env.client.clone(),
        ns: env.ns.clone(),
    };

    let sim = KubeApiServer::start(KubeApiConfig {
        namespaces_must_exist: true,
        ..KubeApiConfig::default()
    })
    .await
    .expect("kube API simulator");
    let sim_client = sim.client().await;
    // The same CRD (deploy/crd.yaml) and namespace.
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&std::fs::read_to_string(env.repo_file("deploy/crd.yaml")).unwrap())
            .unwrap();
    Api::<CustomResourceDefinition>::all(sim_client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let sim = (sim, sim_client);
    let simulated = Target {
        client: sim.1.clone(),
        ns: env.ns.clone(),
    };
    let created = simulated
        .json(
            "POST",
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env.ns}}),
        )
        .await;
    assert_eq!(created.code, 201, "{:?}", created.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while simulated.json("GET", TR, Value::Null).await.code != 200 {
        assert!(
            Instant::now() < deadline,
            "the simulator never served the CRD"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let from_real = sequence(&real).await;
    let from_sim = sequence(&simulated).await;
    assert_eq!(from_real.len(), from_sim.len());
    let mut differences = Vec::new();
    for ((label, real), (_, sim)) in from_real.iter().zip(&from_sim) {
        if real != sim {
            differences.push(format!(
                "{label}:\n  kube-apiserver: {real}\n  simulator:      {sim}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        from_real.len(),
        differences.join("\n")
    );
    eprintln!(
        "the simulator answered {} steps like kube-apiserver",
        from_real.len()
    );
}
