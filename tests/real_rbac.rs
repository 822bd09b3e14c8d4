//! RBAC as shipped, proven on a real kube-apiserver (issue 12 "RBAC as shipped", issue 11.10):
//! for each rendering of the RBAC (kustomize `deploy/` and `deploy/namespaced`, the Helm chart
//! with its default values, with namespace-scoped RBAC in the release namespace, and watching
//! another namespace with a default Secret in the release namespace), the
//! controller runs as its ServiceAccount with exactly those rules and the rendered Deployment's
//! arguments, through a scenario that reaches every API path it has (a reset, a 409 on the
//! result write, AlreadyExecuted after re-creation, a missing then incomplete then missing
//! Secret, an aggregated event, every ledger shard, the leader Lease created, renewed and
//! released). kube-apiserver's audit log then shows that no request of that identity was
//! forbidden and that every (group, resource, subresource, verb, resourceName) the rules grant
//! was used at least once: the rules are sufficient and hold nothing unused.
//!
//! Each variant gets a private cluster (its own audit log). Skipped, loudly, without Go
//! (failing instead when `CI` is set); see tests/real_support.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod real_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fixture::Fixture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use real_support::rbac::{self, Grant};
use real_support::{CONTROLLER_ACCOUNT, CONTROLLER_NAMESPACE, Proc, RealEnv};
use serde_json::{Value, json};
use taskreset_controller::api::{Phase, TaskReset, TaskResetSpec};
use taskreset_controller::ledger::{RunKey, SHARDS};
use taskreset_simulators::roma::{RomaConfig, RomaHandle, RomaSimulator, Step};

const WAIT: Duration = Duration::from_secs(45);
const TOKEN: &str = "real-rbac-token-0001";
/// The chart's release: its full name is the release name, as in docs/install.md.
const RELEASE: &str = "taskreset-controller";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_cluster_wide_rbac_is_sufficient_and_all_used() {
    let Some(env) = RealEnv::private("rbac-deploy").await else {
        return;
    };
    let rendered = rbac::kustomize(&env.cluster, "deploy");
    prove(&env, "kustomize deploy", &rendered, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_namespaced_rbac_is_sufficient_and_all_used() {
    // The namespaced variant watches its own namespace: the TaskResets live there.
    let Some(env) = RealEnv::private_in(CONTROLLER_NAMESPACE).await else {
        return;
    };
    let rendered = rbac::kustomize(&env.cluster, "deploy/namespaced");
    prove(&env, "kustomize deploy/namespaced", &rendered, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_default_rbac_is_sufficient_and_all_used() {
    let Some(env) = RealEnv::private("rbac-chart").await else {
        return;
    };
    let rendered = rbac::render_chart(RELEASE, CONTROLLER_NAMESPACE, &json!({}));
    prove(&env, "chart, default values", &rendered, None).await;
}

/// `rbac.scope: namespace` with no watchNamespace: the release namespace is watched, one Role
/// there for the work and one for the Lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_namespace_scoped_rbac_in_the_release_namespace_is_sufficient_and_all_used() {
    let Some(env) = RealEnv::private_in(CONTROLLER_NAMESPACE).await else {
        return;
    };
    let rendered = rbac::render_chart(
        RELEASE,
        CONTROLLER_NAMESPACE,
        &json!({"rbac": {"scope": "namespace"}}),
    );
    assert!(
        !rendered.iter().any(|o| o["kind"] == "ClusterRole"),
        "namespace scope renders no ClusterRole"
    );
    prove(
        &env,
        "chart, rbac.scope=namespace (release namespace)",
        &rendered,
        None,
    )
    .await;
}

/// `rbac.scope: namespace` watching another namespace than the release's, with the default
/// Secret in the release namespace: a Role per namespace, one of them for that Secret by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_namespace_scoped_rbac_with_a_default_secret_is_sufficient_and_all_used() {
    let Some(env) = RealEnv::private("rbac-chart-ns").await else {
        return;
    };
    let values = json!({
        "rbac": {"scope": "namespace"},
        "watchNamespace": env.ns,
        "defaultCredentials": {"secretName": "roma-default", "namespaces": [env.ns]},
    });
    let rendered = rbac::render_chart(RELEASE, CONTROLLER_NAMESPACE, &values);
    assert!(
        !rendered.iter().any(|o| o["kind"] == "ClusterRole"),
        "namespace scope renders no ClusterRole"
    );
    prove(
        &env,
        "chart, rbac.scope=namespace",
        &rendered,
        Some((CONTROLLER_NAMESPACE, "roma-default")),
    )
    .await;
}

/// Apply the RBAC of `rendered`, run the scenario as the ServiceAccount with the rendered
/// Deployment's flags, then judge the audit log.
async fn prove(
    env: &RealEnv,
    variant: &str,
    rendered: &[Value],
    default_secret: Option<(&str, &str)>,
) {
    let rbac_objects = rbac::rbac_objects(rendered);
    // The launcher's controller identity is the ServiceAccount the rendered bindings name.
    let subjects: BTreeSet<(String, String)> = rbac_objects
        .iter()
        .filter(|o| o["kind"].as_str().is_some_and(|k| k.ends_with("Binding")))
        .flat_map(|o| {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            o["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |s| {
                    (
                        s["namespace"].as_str().unwrap_or(ns).to_owned(),
                        s["name"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from([(CONTROLLER_NAMESPACE.into(), CONTROLLER_ACCOUNT.into())]),
        "{variant}"
    );
    let grants = rbac::grants(&rbac_objects);
    env.apply_objects("rbac", rbac_objects).await;

    let roma = RomaSimulator::start(RomaConfig::default())
        .await
        .expect("ROMA simulator");
    roma.add_token(TOKEN);
    let url = roma.url();
    let allowed = format!("--allowed-endpoints={url}");
    let endpoint = format!("--default-endpoint={url}");
    let deployment = rbac::deployment(rendered);
    let mut ctl = env.spawn_as_deployed(
        "controller",
        &deployment,
        "taskreset-controller-rbac-0",
        &[
            "--metrics-addr=127.0.0.1:0",
            &allowed,
            &endpoint,
            "--insecure-allow-http",
            "--max-resets-per-second=0",
            "--retry-base-delay=100ms",
            "--credentials-wait-max=1s",
        ],
    );
    let started = Instant::now();
    scenario(env, &roma, &ctl, default_secret).await;
    // SIGTERM: the Lease is released (patch) and the process exits 0.
    let pid = ctl.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = ctl.child.wait().expect("wait for the controller");
    assert!(status.success(), "graceful exit: {status}\n{}", ctl.log());

    let events = rbac::audit_events(&env.cluster, &rbac::controller_user());
    let forbidden: Vec<String> = events
        .iter()
        .filter(|e| e.code() == 403)
        .map(|e| format!("{} {}", e.verb, e.request_uri))
        .collect();
    assert!(
        forbidden.is_empty(),
        "{variant}: the controller was refused:\n{}",
        forbidden.join("\n")
    );
    let unused: Vec<String> = rbac::unused(&grants, &events)
        .into_iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        unused.is_empty(),
        "{variant}: granted but never used:\n{}\nrequests made:\n{}",
        unused.join("\n"),
        requests(&events)
    );
    // The judge can fail: a grant nothing asked for is reported.
    let delete = Grant {
        verb: "delete".into(),
        ..grants
            .iter()
            .find(|g| g.resource == "configmaps")
            .expect("a ConfigMap grant")
            .clone()
    };
    assert_eq!(
        rbac::unused(std::slice::from_ref(&delete), &events).len(),
        1
    );
    eprintln!(
        "{variant}: {} grants, all used by {} requests of {} in {:.0?}, none forbidden",
        grants.len(),
        events.len(),
        rbac::controller_user(),
        started.elapsed()
    );
    roma.shutdown().await;
}

/// The distinct requests of `events`, one line each, for a failure message.
fn requests(events: &[rbac::AuditEvent]) -> String {
    let lines: BTreeSet<String> = events
        .iter()
        .map(|e| {
            let o = e.object_ref.clone().unwrap_or_default();
            format!(
                "{} {}/{}/{} ns={} name={} -> {}",
                e.verb,
                o.api_group,
                o.resource,
                o.subresource,
                o.namespace,
                o.name,
                e.code()
            )
        })
        .collect();
    lines.into_iter().collect::<Vec<_>>().join("\n")
}

/// Every API path of the controller, in the namespace the variant watches (the test's).
async fn scenario(
    env: &RealEnv,
    roma: &RomaHandle,
    ctl: &Proc,
    default_secret: Option<(&str, &str)>,
) {
    let api: Api<TaskReset> = Api::namespaced(env.client.clone(), &env.ns);
    env.secret("roma", &[("token", TOKEN)]).await;
    let mut shards = BTreeSet::new();

    // A reset whose result write meets a newer resourceVersion (a label edited during the
    // call): 409, the status re-read (taskresets/status get), then written.
    let task = task_id();
    roma.script(
        &task,
        vec![Step::delay(Duration::from_secs(2), Step::Succeed)],
    );
    let tr = TaskReset::new("replay", spec(&task, Some("roma")));
    api.create(&PostParams::default(), &tr).await.unwrap();
    wait_for(&api, "replay", ctl, "Resetting", |t| {
        t.current_phase() == Some(Phase::Resetting)
    })
    .await;
    api.patch(
        "replay",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"edited": "during-the-call"}}})),
    )
    .await
    .unwrap();
    let done = wait_phase(&api, "replay", Phase::Succeeded, ctl).await;
    assert_eq!(ready(&done).0, "ResetSucceeded");
    assert_eq!(roma.calls().iter().filter(|c| c.task_id == task).count(), 1);
    shards.insert(shard(&env.ns, "replay"));

    // Deleted and re-created: AlreadyExecuted from the ledger, no call.
    real_support::delete_and_wait(&api, "replay").await;
    api.create(&PostParams::default(), &tr).await.unwrap();
    let again = wait_phase(&api, "replay", Phase::Succeeded, ctl).await;
    assert_eq!(ready(&again).0, "AlreadyExecuted");
    assert_eq!(roma.calls().iter().filter(|c| c.task_id == task).count(), 1);

    // A missing Secret, then an incomplete one, then missing again: the first event again,
    // aggregated into a series (events patch). Then a good Secret: the reset.
    let late_task = task_id();
    api.create(
        &PostParams::default(),
        &TaskReset::new("late", spec(&late_task, Some("late"))),
    )
    .await
    .unwrap();
    let missing = wait_for(&api, "late", ctl, "Pending", |t| {
        t.current_phase() == Some(Phase::Pending)
    })
    .await;
    let missing = ready(&missing).1;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    env.secret("late", &[("unrelated", "value")]).await;
    wait_for(&api, "late", ctl, "another message", |t| {
        t.current_phase() == Some(Phase::Pending) && ready(t).1 != missing
    })
    .await;
    secrets
        .delete("late", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&api, "late", ctl, "the first message again", |t| {
        t.current_phase() == Some(Phase::Pending) && ready(t).1 == missing
    })
    .await;
    env.secret("late", &[("token", TOKEN)]).await;
    wait_phase(&api, "late", Phase::Succeeded, ctl).await;
    shards.insert(shard(&env.ns, "late"));

    // The default Secret, where the variant names one.
    if let Some((namespace, name)) = default_secret {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            string_data: Some([("token".to_owned(), TOKEN.to_owned())].into()),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(env.client.clone(), namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        api.create(
            &PostParams::default(),
            &TaskReset::new("defaulted", spec(&task_id(), None)),
        )
        .await
        .unwrap();
        let done = wait_phase(&api, "defaulted", Phase::Succeeded, ctl).await;
        assert_eq!(ready(&done).0, "ResetSucceeded");
        shards.insert(shard(&env.ns, "defaulted"));
    }

    // One TaskReset in each ledger shard not used yet: every ConfigMap name the rules list
    // is read, created and updated.
    let mut names = Vec::new();
    for i in 0.. {
        if shards.len() == SHARDS as usize {
            break;
        }
        let name = format!("shard-{i}");
        if shards.insert(shard(&env.ns, &name)) {
            api.create(
                &PostParams::default(),
                &TaskReset::new(&name, spec(&task_id(), Some("roma"))),
            )
            .await
            .unwrap();
            names.push(name);
        }
    }
    for name in &names {
        let done = wait_phase(&api, name, Phase::Succeeded, ctl).await;
        assert_eq!(ready(&done).0, "ResetSucceeded", "{name}");
    }
}

/// The ledger ConfigMap of the TaskReset `name` in `namespace`.
fn shard(namespace: &str, name: &str) -> String {
    RunKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        spec_hash: String::new(),
    }
    .configmap()
}

fn task_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn spec(task: &str, secret: Option<&str>) -> TaskResetSpec {
    let fixture = Fixture::new("x", task).run_id("r1");
    match secret {
        Some(name) => fixture.secret(name).build_spec(),
        None => fixture.build_spec(),
    }
}

/// The Ready condition's (reason, message).
fn ready(tr: &TaskReset) -> (String, String) {
    tr.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

async fn wait_phase(api: &Api<TaskReset>, name: &str, phase: Phase, ctl: &Proc) -> TaskReset {
    wait_for(api, name, ctl, &phase.to_string(), |t| {
        t.current_phase() == Some(phase)
    })
    .await
}

async fn wait_for(
    api: &Api<TaskReset>,
    name: &str,
    ctl: &Proc,
    what: &str,
    done: impl Fn(&TaskReset) -> bool,
) -> TaskReset {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(tr) = api.get_opt(name).await.unwrap() {
            if done(&tr) {
                return tr;
            }
            last = tr.status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{name}: no {what} within {WAIT:?}; last status {last:#?}\ncontroller log:\n{}",
        ctl.log()
    );
}
