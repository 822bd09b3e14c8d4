//! `taskreset-controller sandbox`: the whole job on loopback, with no cluster and no cloud
//! account. A Kubernetes-API-compatible server and a ROMA FDI simulator start, the CRD and a
//! credentials Secret are installed, the controller runs against both, the examples are
//! applied (pointed at the simulator), and each object's phase is printed as it changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResourceExt, ResourceExt};
use taskreset_simulators::kube_api::{
    KubeApiConfig, KubeApiServer, StartError as KubeApiStartError,
};
use taskreset_simulators::roma::{RomaConfig, RomaSimulator, SimulatorError};
use tokio_util::sync::CancellationToken;

use super::run::{RunArgs, StartError, start};
use crate::api::{TaskReset, TaskResetSpec};

/// The examples the sandbox applies (the same files as `deploy/examples/`).
const EXAMPLES: [(&str, &str); 2] = [
    (
        "taskreset.yaml",
        include_str!("../../deploy/examples/taskreset.yaml"),
    ),
    (
        "taskreset-rfc3339.yaml",
        include_str!("../../deploy/examples/taskreset-rfc3339.yaml"),
    ),
];
/// Access key and secret key the simulator accepts (not secrets: they exist only here).
const SANDBOX_AK: &str = "SANDBOXACCESSKEY0001";
const SANDBOX_SK: &str = "sandbox-secret-key-not-a-real-one-0001";
/// The AK/SK Secret the examples name (deploy/examples/secret-aksk.yaml).
const SECRET_NAME: &str = "roma-credentials-aksk";

/// Flags of `sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Port of the Kubernetes-API-compatible server on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub api_port: u16,
    /// Port of the ROMA FDI simulator on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub roma_port: u16,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = "./sandbox.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Namespace of the examples.
    #[arg(long, default_value = "default", value_parser = super::run::parse_namespace)]
    pub namespace: String,
    /// Start the servers only: no controller, no examples.
    #[arg(long)]
    pub no_controller: bool,
    /// Exit (0) once every example reached its final phase, instead of running until Ctrl-C
    /// (1 if that takes longer than --settle-timeout).
    #[arg(long)]
    pub until_settled: bool,
    /// How long --until-settled waits.
    #[arg(long, default_value = "60s", value_parser = super::duration::parse_duration)]
    pub settle_timeout: Duration,
}

/// Why the sandbox could not run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The Kubernetes API simulator failed to start.
    #[error("starting the Kubernetes API simulator: {0}")]
    KubeApi(#[source] KubeApiStartError),
    /// The ROMA FDI simulator failed to start.
    #[error("starting the ROMA FDI simulator: {0}")]
    Roma(#[source] SimulatorError),
    /// The kubeconfig could not be written.
    #[error("writing {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A Kubernetes API call against the simulator failed.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// An embedded example does not parse.
    #[error("example {file}: {source}")]
    Example {
        /// The example file.
        file: &'static str,
        /// The parse error.
        #[source]
        source: serde_saphyr::Error,
    },
    /// The controller stopped with an error.
    #[error("controller: {0}")]
    Controller(#[from] StartError),
    /// The controller's task panicked or was cancelled.
    #[error("controller: {0}")]
    ControllerTask(#[from] tokio::task::JoinError),
    /// Watching the examples failed.
    #[error("watching the examples: {0}")]
    Watch(#[from] watcher::Error),
    /// --until-settled ran out of time.
    #[error("the examples did not settle within {0:?}")]
    NotSettled(Duration),
}

fn kube_err(context: &'static str) -> impl FnOnce(kube::Error) -> SandboxError {
    move |source| SandboxError::Kube { context, source }
}

/// Run the sandbox until Ctrl-C (or until settled).
pub fn execute(args: SandboxArgs) -> ExitCode {
    crate::telemetry::init_logging(crate::telemetry::LogFormat::Text, "warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sandbox(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn sandbox(args: SandboxArgs) -> Result<(), SandboxError> {
    let kube_sim = KubeApiServer::start(KubeApiConfig {
        port: args.api_port,
        ..KubeApiConfig::default()
    })
    .await
    .map_err(SandboxError::KubeApi)?;
    let roma = RomaSimulator::start(RomaConfig {
        port: args.roma_port,
        ..RomaConfig::default()
    })
    .await
    .map_err(SandboxError::Roma)?;
    roma.add_access_key(SANDBOX_AK, SANDBOX_SK);
    kube_sim
        .write_kubeconfig(&args.kubeconfig_out, &args.namespace)
        .map_err(|source| SandboxError::Kubeconfig {
            path: args.kubeconfig_out.clone(),
            source,
        })?;
    let client = kube_sim.client().await;
    install(&client, &args.namespace).await?;

    let kubeconfig = args.kubeconfig_out.display();
    println!("Kubernetes API simulator: {}", kube_sim.url());
    println!("ROMA FDI simulator:       {}", roma.url());
    println!("kubeconfig:               {kubeconfig}");
    println!("Try:  kubectl --kubeconfig {kubeconfig} get taskresets");
    println!("      kubectl --kubeconfig {kubeconfig} describe tr orders-replay");
    if args.no_controller {
        println!("Running without the controller; Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
        return Ok(());
    }

    let shutdown = CancellationToken::new();
    let controller = tokio::spawn(start(
        controller_args(&roma.url()),
        Some(client.clone()),
        shutdown.clone(),
    ));
    let names = apply_examples(&client, &args.namespace, &roma.url()).await?;
    println!("{}", watching_line(names.len(), args.until_settled));
    let outcome = tokio::select! {
        result = watch(&client, &args.namespace, names, args.until_settled) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
        () = tokio::time::sleep(args.settle_timeout), if args.until_settled => Err(SandboxError::NotSettled(args.settle_timeout)),
    };
    shutdown.cancel();
    controller.await??;
    println!("ROMA simulator saw {} reset call(s).", roma.calls().len());
    outcome
}

/// What the sandbox says while it watches: `--until-settled` stops by itself.
fn watching_line(applied: usize, until_settled: bool) -> String {
    if until_settled {
        format!("Applied {applied} TaskResets; watching them until every one is final:")
    } else {
        format!("Applied {applied} TaskResets; watching them (Ctrl-C to stop):")
    }
}

/// The controller's flags in the sandbox: only the simulator is allowed, over plain http.
fn controller_args(roma_url: &str) -> RunArgs {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunArgs,
    }
    let flags = [
        "sandbox".to_owned(),
        "--allowed-endpoints".to_owned(),
        roma_url.to_owned(),
        "--insecure-allow-http".to_owned(),
        "--metrics-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--request-timeout".to_owned(),
        "10s".to_owned(),
        "--retry-base-delay".to_owned(),
        "1s".to_owned(),
    ];
    Wrapper::parse_from(flags).args
}

/// Install the CRD and the credentials Secret.
async fn install(client: &kube::Client, namespace: &str) -> Result<(), SandboxError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &TaskReset::crd())
        .await
        .map_err(kube_err("installing the CRD"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET_NAME.to_owned()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("accessKey".to_owned(), SANDBOX_AK.to_owned()),
            ("secretKey".to_owned(), SANDBOX_SK.to_owned()),
        ])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .map_err(kube_err("creating the credentials Secret"))?;
    Ok(())
}

/// Apply the examples with `spec.endpoint` pointed at the simulator.
async fn apply_examples(
    client: &kube::Client,
    namespace: &str,
    roma_url: &str,
) -> Result<Vec<String>, SandboxError> {
    let api: Api<TaskReset> = Api::namespaced(client.clone(), namespace);
    let mut names = Vec::new();
    for (file, text) in EXAMPLES {
        let mut tr: TaskReset = serde_saphyr::from_str(text)
            .map_err(|source| SandboxError::Example { file, source })?;
        let spec: &mut TaskResetSpec = &mut tr.spec;
        spec.endpoint = Some(roma_url.to_owned());
        spec.region = None;
        tr.metadata.namespace = Some(namespace.to_owned());
        let created = api
            .create(&PostParams::default(), &tr)
            .await
            .map_err(kube_err("applying an example"))?;
        names.push(created.name_any());
    }
    Ok(names)
}

/// Print each example's phase as it changes; with `until_settled`, return once all are final.
async fn watch(
    client: &kube::Client,
    namespace: &str,
    names: Vec<String>,
    until_settled: bool,
) -> Result<(), SandboxError> {
    let api: Api<TaskReset> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut stream = watcher(api, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(tr) = stream.try_next().await? {
        let name = tr.name_any();
        if !names.contains(&name) {
            continue;
        }
        let line = describe(&tr);
        if seen.get(&name) != Some(&line) {
            println!(
                "{:>7.3}s  {name:<24} {line}",
                started.elapsed().as_secs_f64()
            );
            seen.insert(name, line);
        }
        let settled = names.iter().all(|n| {
            seen.get(n).is_some_and(|l| {
                l.starts_with("Succeeded") || l.starts_with("Failed") || l.starts_with("Unknown")
            })
        });
        if until_settled && settled {
            return Ok(());
        }
    }
    Ok(())
}

fn describe(tr: &TaskReset) -> String {
    let Some(status) = tr.status.as_ref() else {
        return "(no status yet)".to_owned();
    };
    let phase = status
        .phase
        .map_or_else(|| "-".to_owned(), |p| p.to_string());
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let detail = status
        .message
        .clone()
        .or_else(|| {
            status
                .error_code
                .clone()
                .map(|c| format!("{c}: {}", status.error_message.clone().unwrap_or_default()))
        })
        .unwrap_or_default();
    format!(
        "{phase:<10} Ready={:<8} {:<16} {detail}",
        ready.map_or("-", |c| c.status.as_str()),
        ready.map_or("-", |c| c.reason.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::watching_line;

    /// Issue 15.10: `--until-settled` does not tell the user to press Ctrl-C.
    #[test]
    fn until_settled_needs_no_ctrl_c() {
        assert!(!watching_line(2, true).contains("Ctrl-C"));
        assert!(watching_line(2, true).contains("until every one is final"));
        assert!(watching_line(2, false).contains("Ctrl-C to stop"));
    }
}
