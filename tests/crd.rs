//! The generated CRD: committed copy in sync, structural, carrying every validation the
//! design asks for; the examples deserialize and validate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use taskreset_controller::api::{
    DateFrom, ID_PATTERN, NOT_OBSERVED, REGION_PATTERN, RetryPolicy, TaskReset, TaskResetStatus,
    crd_yaml,
};
use taskreset_controller::reconciler::decision::{Decision, Policy, decide};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn committed_crd() -> String {
    std::fs::read_to_string(root().join("deploy/crd.yaml")).expect("deploy/crd.yaml")
}

fn schema() -> Value {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&committed_crd()).expect("CRD");
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("openAPIV3Schema"),
    )
    .expect("schema to JSON")
}

#[test]
fn committed_crd_equals_the_generated_one() {
    let generated = crd_yaml().expect("generate");
    assert!(
        generated == committed_crd(),
        "deploy/crd.yaml is out of date: run `cargo run -- crd > deploy/crd.yaml`"
    );
}

#[test]
fn crd_names_scope_and_subresources() {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&committed_crd()).expect("CRD");
    assert_eq!(crd.metadata.name.as_deref(), Some("taskresets.fdi.roma.io"));
    assert_eq!(crd.spec.group, "fdi.roma.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "TaskReset");
    assert_eq!(crd.spec.names.plural, "taskresets");
    assert_eq!(crd.spec.names.short_names, Some(vec!["tr".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["roma".to_owned(), "fdi".to_owned()])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<(&str, i32)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.priority.unwrap_or(0)))
        .collect();
    // Issue 15: -o wide adds Attempts, Completed and the Ready message (priority 1).
    assert_eq!(
        columns,
        [
            ("Task", 0),
            ("Phase", 0),
            ("Ready", 0),
            ("Reason", 0),
            ("Age", 0),
            ("Attempts", 1),
            ("Completed", 1),
            ("Message", 1)
        ]
    );
}

/// Every description of the schema, with its path.
fn descriptions(node: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("description", Value::String(text)) => {
                        out.push((path.to_owned(), text.clone()));
                    }
                    _ => descriptions(value, &format!("{path}.{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                descriptions(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Issue 15: doc comments are wrapped at 100 columns; kept as line breaks, `kubectl explain`
/// (which wraps at 80 itself) printed ragged half lines. Paragraph breaks stay.
#[test]
fn descriptions_have_no_hard_line_breaks() {
    let crd: Value = serde_saphyr::from_str(&committed_crd()).expect("CRD");
    let mut all = Vec::new();
    descriptions(&crd["spec"]["versions"][0]["schema"], "schema", &mut all);
    assert!(all.len() > 30, "{} descriptions", all.len());
    for (path, text) in &all {
        let single_breaks = text.replace("\n\n", "").matches('\n').count();
        assert_eq!(single_breaks, 0, "{path}: hard line break in {text:?}");
    }
}

/// Walk every node: structural means each has a type, or is int-or-string, or preserves
/// unknown fields; and no $ref, no types inside anyOf/allOf/oneOf/not.
fn assert_structural(node: &Value, path: &str) {
    let obj = node
        .as_object()
        .unwrap_or_else(|| panic!("{path}: not an object"));
    assert!(!obj.contains_key("$ref"), "{path}: $ref is not structural");
    let typed = obj.get("type").and_then(Value::as_str).is_some();
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    assert!(
        typed || int_or_string || preserve,
        "{path}: a node without a type is not structural"
    );
    for key in ["anyOf", "allOf", "oneOf"] {
        for (i, sub) in obj
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            assert!(
                sub.get("type").is_none(),
                "{path}.{key}[{i}]: type inside {key}"
            );
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            assert_structural(sub, &format!("{path}.{name}"));
        }
    }
    if let Some(items) = obj.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        assert_structural(extra, &format!("{path}{{}}"));
    }
}

#[test]
fn schema_is_structural() {
    assert_structural(&schema(), "");
}

#[test]
fn schema_carries_patterns_int_or_string_and_cel_rules() {
    let s = schema();
    let spec = &s["properties"]["spec"];
    assert_eq!(
        spec["required"],
        serde_json::json!(["instanceId", "projectId", "taskId"])
    );
    for id in ["projectId", "instanceId", "taskId"] {
        let field = &spec["properties"][id];
        assert_eq!(field["pattern"], ID_PATTERN, "{id}");
        assert_eq!(
            field["x-kubernetes-validations"][0]["rule"], "self == oldSelf",
            "{id} must be immutable"
        );
    }
    assert_eq!(spec["properties"]["region"]["pattern"], REGION_PATTERN);
    assert!(
        spec["properties"]["endpoint"]["pattern"]
            .as_str()
            .unwrap()
            .starts_with("^https?://")
    );
    let date_from = &spec["properties"]["dateFrom"];
    assert_eq!(date_from["x-kubernetes-int-or-string"], true);
    let rule = date_from["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .unwrap();
    assert!(
        rule.contains("self >= 0") && rule.contains("self.matches("),
        "{rule}"
    );
    assert_eq!(
        spec["properties"]["retryPolicy"]["enum"],
        serde_json::json!(["OnTransientError", "Never", "Always"])
    );
    assert_eq!(spec["properties"]["notAfter"]["format"], "date-time");
    let conditions = &s["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    let condition_fields = conditions["items"]["properties"].as_object().unwrap();
    assert!(condition_fields.contains_key("observedGeneration"));
    // Every spec field has a description, so `kubectl explain taskreset.spec` helps.
    for (name, field) in spec["properties"].as_object().unwrap() {
        assert!(
            field["description"].as_str().is_some_and(|d| d.len() > 20),
            "spec.{name} lacks a description"
        );
    }
}

fn examples() -> Vec<(PathBuf, TaskReset)> {
    let dir = root().join("deploy/examples");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            for doc in serde_saphyr::from_multiple::<Value>(&text).expect("yaml") {
                if doc["kind"] == "TaskReset" {
                    let tr: TaskReset = serde_json::from_value(doc).expect("TaskReset");
                    found.push((path.clone(), tr));
                }
            }
        }
    }
    found
}

/// Issue 15.9: `kubectl apply -f deploy/examples/` merged the three example Secrets (all
/// named `roma-credentials`) into one with six keys. Each has its own name, and every Secret
/// an example TaskReset names is one of them.
#[test]
fn example_secrets_have_distinct_names_and_are_the_ones_referenced() {
    let dir = root().join("deploy/examples");
    let mut secrets = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            for doc in serde_saphyr::from_multiple::<Value>(&text).expect("yaml") {
                if doc["kind"] == "Secret" {
                    secrets.push(doc["metadata"]["name"].as_str().expect("name").to_owned());
                }
            }
        }
    }
    assert_eq!(secrets.len(), 3, "{secrets:?}");
    let distinct: std::collections::BTreeSet<_> = secrets.iter().collect();
    assert_eq!(distinct.len(), secrets.len(), "{secrets:?}");
    for (path, tr) in examples() {
        let name = &tr.spec.credentials_secret_ref.expect("a Secret").name;
        assert!(secrets.contains(name), "{}: {name}", path.display());
    }
}

#[test]
fn examples_deserialize_and_validate() {
    let examples = examples();
    assert!(
        examples.len() >= 2,
        "expected at least two TaskReset examples"
    );
    let mut forms = (false, false);
    for (path, tr) in &examples {
        let valid = tr
            .spec
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match &tr.spec.date_from {
            Some(DateFrom::EpochMillis(_)) => forms.0 = true,
            Some(DateFrom::Timestamp(_)) => forms.1 = true,
            None => {}
        }
        if tr.spec.date_from.is_some() {
            assert!(valid.date_from_ms.is_some_and(|ms| ms >= 0));
        }
    }
    assert!(
        forms.0 && forms.1,
        "need an epoch-ms and an RFC 3339 example"
    );
    let reference = examples
        .iter()
        .find(|(_, tr)| tr.spec.task_id == "15366328208d4d77b76532fe9f4006a6")
        .expect("the API reference example");
    assert_eq!(
        reference.1.spec.project_id,
        "c53626012ba84727b938ca8bf03108ef"
    );
    assert_eq!(
        reference.1.spec.instance_id,
        "fae7ff6c-8e07-4cf8-9e67-589cab2f017c"
    );
    assert_eq!(
        reference.1.spec.date_from,
        Some(DateFrom::EpochMillis(1_630_052_714_000))
    );
}

#[test]
fn spec_and_status_round_trip_through_json() {
    let doc = serde_json::json!({
        "apiVersion": "fdi.roma.io/v1alpha1",
        "kind": "TaskReset",
        "metadata": {"name": "x", "namespace": "data", "generation": 2},
        "spec": {
            "projectId": "p1", "instanceId": "i1", "taskId": "t1",
            "dateFrom": "2021-08-27T08:25:14Z", "endpoint": "https://roma.example",
            "credentialsSecretRef": {"name": "creds"}, "runId": "r2",
            "retryPolicy": "Always", "suspend": true, "notAfter": "2030-01-01T00:00:00Z"
        },
        "status": {
            "observedGeneration": 2, "phase": "Failed", "errorCode": "FDI.3150",
            "errorMessage": "The task list is empty.", "httpStatus": 400, "attempts": 1,
            "dateFrom": 1630052714000_i64, "requestId": "abc",
            "startTime": "2026-11-29T10:00:00Z", "completionTime": "2026-11-29T10:00:01Z",
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "ResetFailed",
                "message": "FDI.3150: The task list is empty.", "observedGeneration": 2,
                "lastTransitionTime": "2026-11-29T10:00:01Z"
            }]
        }
    });
    let tr: TaskReset = serde_json::from_value(doc.clone()).expect("deserialize");
    assert_eq!(tr.spec.retry_policy, RetryPolicy::Always);
    assert!(tr.spec.suspend);
    let status: &TaskResetStatus = tr.status.as_ref().expect("status");
    assert_eq!(status.http_status, Some(400));
    assert_eq!(
        tr.current_phase().map(|p| p.to_string()).as_deref(),
        Some("Failed")
    );
    let back = serde_json::to_value(&tr).expect("serialize");
    assert_eq!(back["spec"], doc["spec"]);
    assert_eq!(back["status"], doc["status"]);
}

#[test]
fn defaults_apply_when_optional_fields_are_omitted() {
    let tr: TaskReset = serde_json::from_value(serde_json::json!({
        "apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
        "metadata": {"name": "x"},
        "spec": {"projectId": "p", "instanceId": "i", "taskId": "t"}
    }))
    .expect("deserialize");
    assert_eq!(tr.spec.retry_policy, RetryPolicy::OnTransientError);
    assert!(!tr.spec.suspend);
    assert_eq!(tr.spec.date_from, None);
    assert_eq!(tr.current_phase(), None);
}

/// Issue 15.5: kstatus reads an object without status.observedGeneration as Current. The CRD
/// defaults a missing status (and a missing observedGeneration) to "no generation observed";
/// the controller reads that as a fresh generation: a first attempt, no skip, no retry.
#[test]
fn the_status_default_is_not_observed_and_a_fresh_generation_for_the_controller() {
    let status = &schema()["properties"]["status"];
    let default = &status["default"];
    assert_eq!(
        *default,
        serde_json::json!({"observedGeneration": NOT_OBSERVED})
    );
    assert_eq!(
        status["properties"]["observedGeneration"]["default"],
        serde_json::json!(NOT_OBSERVED)
    );
    for generation in [1, 7] {
        let tr: TaskReset = serde_json::from_value(serde_json::json!({
            "apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
            "metadata": {"name": "x", "namespace": "data", "generation": generation},
            "spec": {"projectId": "p", "instanceId": "i", "taskId": "t", "region": "cn-north-4"},
            "status": default,
        }))
        .expect("deserialize");
        assert_eq!(tr.current_phase(), None);
        match decide(&tr, jiff::Timestamp::now(), &Policy::default()) {
            Decision::Attempt(attempt) => {
                assert_eq!(attempt.generation, generation);
                assert_eq!((attempt.number, attempt.retry_of), (1, None));
                assert_eq!(attempt.ambiguous_before, None);
            }
            other => panic!("generation {generation}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Admission: the committed CRD on the project's Kubernetes API simulator, and the controller's
// own validation, must agree on every input (issue 11, points 6, 11 and 13).

mod admission {
    use super::*;
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::core::ApiResource;
    use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiServer};

    const NS: &str = "data";

    struct Sim {
        _kube: taskreset_simulators::kube_api::KubeApiHandle,
        client: kube::Client,
    }

    async fn sim() -> Sim {
        let kube = KubeApiServer::start(KubeApiConfig::default())
            .await
            .expect("kube sim");
        let client = kube.client().await;
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&committed_crd()).expect("CRD");
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .expect("the committed CRD is accepted");
        Sim {
            _kube: kube,
            client,
        }
    }

    fn object(name: &str, edit: &Value) -> Value {
        let mut spec = serde_json::json!({
            "projectId": "p1", "instanceId": "i1", "taskId": "t1", "region": "cn-north-4"
        });
        for (k, v) in edit.as_object().expect("edit") {
            spec[k] = v.clone();
        }
        serde_json::json!({
            "apiVersion": "fdi.roma.io/v1alpha1", "kind": "TaskReset",
            "metadata": {"name": name, "namespace": NS}, "spec": spec
        })
    }

    /// Create the object; `Ok` when admitted, else the API server's message.
    async fn admit(sim: &Sim, name: &str, edit: &Value) -> Result<Value, String> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            sim.client.clone(),
            NS,
            &ApiResource::erase::<TaskReset>(&()),
        );
        let obj: DynamicObject = serde_json::from_value(object(name, edit)).expect("object");
        match api.create(&PostParams::default(), &obj).await {
            Ok(created) => Ok(serde_json::to_value(created).expect("json")),
            Err(kube::Error::Api(status)) if status.code == 422 => Err(status.message),
            Err(other) => panic!("{name}: unexpected error {other}"),
        }
    }

    /// What the controller makes of the object: `Ok` when it would act on it.
    fn controller_accepts(doc: Value) -> Result<(), String> {
        let tr: TaskReset = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        tr.spec.validate().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Each case: admitted by the CRD exactly when the controller accepts it.
    async fn agree(cases: &[(&str, Value, bool)]) {
        let sim = sim().await;
        let mut failures = Vec::new();
        for (i, (what, edit, want)) in cases.iter().enumerate() {
            let name = format!("case-{i}");
            let admitted = admit(&sim, &name, edit).await;
            let controller = controller_accepts(object(&name, edit));
            if admitted.is_ok() != *want || controller.is_ok() != *want {
                failures.push(format!(
                    "{what}: want admitted={want}; CRD: {:?}; controller: {:?}",
                    admitted.as_ref().map(|_| "admitted"),
                    controller
                ));
            }
            if let Ok(stored) = admitted {
                // What the API server stores, the controller reads.
                let back: Result<TaskReset, _> = serde_json::from_value(stored);
                if let Err(e) = back {
                    failures.push(format!("{what}: stored object unreadable: {e}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn s(n: usize) -> String {
        "a".repeat(n)
    }

    /// Like kube-apiserver, the simulator serves the CRD's status default on an object no
    /// one wrote a status to (tests/real_kstatus.rs checks kube-apiserver).
    #[tokio::test]
    async fn a_new_object_reads_with_the_default_status() {
        let sim = sim().await;
        let created = admit(&sim, "fresh", &serde_json::json!({}))
            .await
            .expect("admitted");
        let want = serde_json::json!({"observedGeneration": NOT_OBSERVED});
        assert_eq!(created["status"], want);
        let api: Api<DynamicObject> = Api::namespaced_with(
            sim.client.clone(),
            NS,
            &ApiResource::erase::<TaskReset>(&()),
        );
        let read = serde_json::to_value(api.get("fresh").await.expect("get")).expect("json");
        assert_eq!(read["status"], want);
    }

    /// Point 6: every free-text field has a maxLength, enforced by both.
    #[tokio::test]
    async fn lengths_are_bounded_in_the_crd_and_the_controller() {
        let endpoint = |n: usize| {
            let base = "https://roma.example/";
            format!("{base}{}", "p".repeat(n - base.len()))
        };
        let region = |n: usize| format!("cn-{}-4", "n".repeat(n - 5));
        agree(&[
            (
                "endpoint of 2048",
                serde_json::json!({"endpoint": endpoint(2048)}),
                true,
            ),
            (
                "endpoint of 2049",
                serde_json::json!({"endpoint": endpoint(2049)}),
                false,
            ),
            ("runId of 253", serde_json::json!({"runId": s(253)}), true),
            ("runId of 254", serde_json::json!({"runId": s(254)}), false),
            (
                "region of 63",
                serde_json::json!({"region": region(63)}),
                true,
            ),
            (
                "region of 64",
                serde_json::json!({"region": region(64)}),
                false,
            ),
            (
                "secret of 253",
                serde_json::json!({"credentialsSecretRef": {"name": s(253)}}),
                true,
            ),
            (
                "secret of 254",
                serde_json::json!({"credentialsSecretRef": {"name": s(254)}}),
                false,
            ),
            ("taskId of 64", serde_json::json!({"taskId": s(64)}), true),
            ("taskId of 65", serde_json::json!({"taskId": s(65)}), false),
        ])
        .await;
        let schema = schema();
        let spec = &schema["properties"]["spec"]["properties"];
        for (field, max) in [
            ("projectId", 64),
            ("instanceId", 64),
            ("taskId", 64),
            ("region", 63),
            ("endpoint", 2048),
            ("runId", 253),
            ("dateFrom", 64),
            ("notAfter", 64),
        ] {
            assert_eq!(spec[field]["maxLength"], max, "{field}");
        }
        assert_eq!(
            spec["credentialsSecretRef"]["properties"]["name"]["maxLength"],
            253
        );
    }

    /// Point 11: a Secret name is a DNS-1123 subdomain (`tok?x=1` read Secret `tok`).
    #[tokio::test]
    async fn secret_names_are_dns_1123_subdomains() {
        let name = |n: &str| serde_json::json!({"credentialsSecretRef": {"name": n}});
        agree(&[
            ("plain", name("roma-credentials"), true),
            ("dotted", name("roma.credentials-1"), true),
            ("query", name("tok?x=1"), false),
            ("slash", name("a/b"), false),
            ("dot-dot", name(".."), false),
            ("percent", name("tok%2F"), false),
            ("upper case", name("Tok"), false),
            ("leading dash", name("-tok"), false),
            ("empty", name(""), false),
        ])
        .await;
    }

    /// Point 13: `dateFrom` accepts the same range as an integer and as a string, and refuses
    /// the same, at both ends (offsets included).
    #[tokio::test]
    async fn date_from_has_one_range_in_both_forms() {
        let d = |v: Value| serde_json::json!({ "dateFrom": v });
        agree(&[
            ("int 0", d(0.into()), true),
            ("int -1", d((-1).into()), false),
            ("int max", d(253_402_300_799_999_i64.into()), true),
            ("int max + 1", d(253_402_300_800_000_i64.into()), false),
            ("string max", d("9999-12-31T23:59:59.999Z".into()), true),
            (
                "string max, nanoseconds",
                d("9999-12-31T23:59:59.999999999Z".into()),
                true,
            ),
            (
                "string max, offset",
                d("9999-12-31T22:59:59.999-01:00".into()),
                true,
            ),
            (
                "string past max, offset",
                d("9999-12-31T23:00:00-01:00".into()),
                false,
            ),
            (
                "string past max by a minute",
                d("9999-12-31T23:59:59-00:01".into()),
                false,
            ),
            ("string epoch", d("1970-01-01T00:00:00Z".into()), true),
            (
                "string epoch, east",
                d("1970-01-01T08:00:00+08:00".into()),
                true,
            ),
            (
                "string epoch, west",
                d("1969-12-31T23:00:00-01:00".into()),
                true,
            ),
            (
                "string before epoch",
                d("1969-12-31T23:59:59.999Z".into()),
                false,
            ),
            (
                "string before epoch, east",
                d("1970-01-01T07:59:59.999+08:00".into()),
                false,
            ),
            (
                "string before epoch, west",
                d("1969-12-31T22:59:59-01:00".into()),
                false,
            ),
            ("string 1960", d("1960-06-01T00:00:00Z".into()), false),
            (
                "ten fractional digits",
                d("2021-08-27T08:25:14.1234567890Z".into()),
                true,
            ),
            (
                "offset of 24 hours",
                d("2021-08-27T08:25:14+24:00".into()),
                false,
            ),
            (
                "too long",
                d(format!("2021-08-27T08:25:14.{}Z", "1".repeat(60)).into()),
                false,
            ),
            ("not a date", d("tomorrow".into()), false),
            // Issue 15.9: an integer that can only be seconds.
            ("seconds", d(1_630_052_714_i64.into()), false),
            ("int 1", d(1.into()), false),
            ("int below 1973-03-03", d(99_999_999_999_i64.into()), false),
            ("int 1973-03-03", d(100_000_000_000_i64.into()), true),
            ("milliseconds", d(1_630_052_714_000_i64.into()), true),
        ])
        .await;
    }

    /// Issue 15.9: seconds are refused at admission with a message that says so, and by the
    /// controller with the same advice.
    #[tokio::test]
    async fn seconds_are_refused_at_admission_saying_so() {
        let sim = sim().await;
        let edit = serde_json::json!({ "dateFrom": 1_630_052_714_i64 });
        let message = admit(&sim, "seconds", &edit).await.expect_err("refused");
        assert!(
            message.contains("looks like seconds: use milliseconds, e.g. 1630052714000"),
            "{message}"
        );
        let controller = controller_accepts(object("seconds", &edit)).expect_err("refused");
        assert!(
            controller.contains("looks like seconds: use milliseconds, e.g. 1630052714000"),
            "{controller}"
        );
    }

    /// Point 11: a `notAfter` kube-apiserver stores is one the controller can read; what the
    /// controller cannot read is refused at admission.
    #[tokio::test]
    async fn not_after_admitted_is_not_after_readable() {
        let n = |v: &str| serde_json::json!({ "notAfter": v });
        agree(&[
            ("plain", n("2030-01-01T00:00:00Z"), true),
            (
                "ten fractional digits",
                n("2030-01-01T00:00:00.1234567890Z"),
                true,
            ),
            ("lower case", n("2030-01-01t00:00:00.5z"), true),
            ("end of year 9999", n("9999-12-31T23:59:59-23:59"), true),
            ("any separator", n("2030-01-01T00:00:00x5Z"), false),
            ("offset 99:99", n("2030-01-01T00:00:00+99:99"), false),
            ("leap second", n("2030-01-01T00:00:60Z"), false),
            ("not a date", n("2030-02-30T00:00:00Z"), false),
        ])
        .await;
    }
}
