//! `taskreset-controller sandbox`: the whole job on loopback, with no cluster and no cloud
//! account. A Kubernetes-API-compatible server and a ROMA FDI simulator start, the CRD and a
//! credentials Secret are installed, the controller runs against both, the examples are
//! applied (pointed at the simulator), and every TaskReset's phase is printed as it changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
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
/// The namespace of the README's first TaskReset: it gets the Secret too, so that manifest
/// works applied as printed.
const README_NAMESPACE: &str = "data";

/// How to rehearse failures, for `sandbox --help` (README.md "Rehearsing failures in the
/// sandbox" has the full walk-through; a test runs it).
const REHEARSAL_HELP: &str = r#"Rehearsing failures: the ROMA simulator answers each task's calls from a script, one
step per call, then 200 "Reset Success". Script the next call(s) for a task, then apply
a TaskReset for it (omit spec.region and spec.endpoint: the sandbox's default endpoint is
the simulator):

  curl -s "$ROMA/_sim/script" -d '{"taskId":"TASK","steps":[STEP, ...]}'

with $ROMA the "ROMA FDI simulator" address printed at start-up and STEP one of:

  400 (Failed)                   {"kind":"fail","status":400,"code":"FDI.3150","message":"The task list is empty."}
  404 (Failed)                   {"kind":"fail","status":404,"code":"FDI.3083","message":"One or more scheduled tasks are not configured with scheduled plans."}
  500 (Retrying)                 {"kind":"fail","status":500,"code":"FDI.3000","message":"Internal server error."}
  500, no body (Unknown)         {"kind":"serverErrorNoBody"}
  timeout (Unknown)              {"kind":"delay","ms":15000,"then":{"kind":"succeed"}}
  429 (Retrying)                 {"kind":"throttle"}
  401 (Pending)                  {"kind":"unauthorized"}
  executed, no answer (Unknown)  {"kind":"dropAfterExecute"}

The sandbox's request timeout is 10s. Also: POST $ROMA/_sim/default '{"step":STEP}' (every
unscripted call), POST $ROMA/_sim/latency '{"ms":500}', GET $ROMA/_sim/calls (the calls seen)."#;

/// Flags of `sandbox`.
#[derive(Debug, Clone, Args)]
#[command(after_help = REHEARSAL_HELP)]
pub struct SandboxArgs {
    /// Port of the Kubernetes-API-compatible server on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub api_port: u16,
    /// Port of the ROMA FDI simulator on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub roma_port: u16,
    /// Port of the controller's /metrics, /healthz and /readyz on 127.0.0.1 (0 = any free
    /// port).
    #[arg(long, default_value_t = 0)]
    pub metrics_port: u16,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = "./sandbox.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Where the controller's logs go (RUST_LOG sets the level; default info).
    #[arg(long, default_value = "./sandbox.log")]
    pub log_file: PathBuf,
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
    /// The kubeconfig or the log file could not be written, or no metrics port was free.
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
    match std::fs::File::create(&args.log_file) {
        Ok(file) => {
            crate::telemetry::init_logging_to_file(crate::telemetry::LogFormat::Text, "info", file);
        }
        Err(err) => {
            eprintln!("error: cannot write {}: {err}", args.log_file.display());
            return ExitCode::FAILURE;
        }
    }
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
        // As kube-apiserver: a TaskReset in a namespace that does not exist is refused.
        namespaces_must_exist: true,
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
    let mut namespaces = vec![args.namespace.clone()];
    if args.namespace != README_NAMESPACE {
        namespaces.push(README_NAMESPACE.to_owned());
    }
    install(&client, &namespaces).await?;
    let metrics_addr =
        free_loopback_port(args.metrics_port).map_err(|source| SandboxError::Kubeconfig {
            path: PathBuf::from(format!("127.0.0.1:{}", args.metrics_port)),
            source,
        })?;

    let kubeconfig = args.kubeconfig_out.display();
    println!("Kubernetes API simulator: {}", kube_sim.url());
    println!("ROMA FDI simulator:       {}", roma.url());
    println!("kubeconfig:               {kubeconfig}");
    println!(
        "Secret {SECRET_NAME} (AK/SK the simulator accepts) in namespace(s): {}",
        namespaces.join(", ")
    );
    if !args.no_controller {
        println!("Controller metrics:       http://{metrics_addr}/metrics");
        println!(
            "Controller logs:          tail -f {} (RUST_LOG=debug for more)",
            args.log_file.display()
        );
        println!(
            "A TaskReset without spec.region or spec.endpoint calls the simulator; rehearse \
             400/404/500/timeouts: taskreset-controller sandbox --help"
        );
    }
    println!("Try:  kubectl --kubeconfig {kubeconfig} get taskresets -A -o wide");
    println!("      kubectl --kubeconfig {kubeconfig} describe tr orders-replay");
    if args.no_controller {
        println!("Running without the controller; Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
        return Ok(());
    }

    let shutdown = CancellationToken::new();
    let controller = tokio::spawn(start(
        controller_args(&roma.url(), metrics_addr),
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
        format!(
            "Applied {applied} TaskResets; watching every TaskReset until each example is final:"
        )
    } else {
        format!("Applied {applied} TaskResets; watching every TaskReset (Ctrl-C to stop):")
    }
}

/// `127.0.0.1:port`, or a port free right now when `port` is 0 (the controller binds it a
/// moment later; the sandbox prints it first).
fn free_loopback_port(port: u16) -> std::io::Result<SocketAddr> {
    if port != 0 {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()
}

/// The controller's flags in the sandbox: only the simulator is allowed, over plain http, and
/// it is the default endpoint of TaskResets that name none.
fn controller_args(roma_url: &str, metrics_addr: SocketAddr) -> RunArgs {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunArgs,
    }
    let flags = [
        "sandbox".to_owned(),
        "--allowed-endpoints".to_owned(),
        roma_url.to_owned(),
        "--default-endpoint".to_owned(),
        roma_url.to_owned(),
        "--insecure-allow-http".to_owned(),
        "--metrics-addr".to_owned(),
        metrics_addr.to_string(),
        "--request-timeout".to_owned(),
        "10s".to_owned(),
        "--retry-base-delay".to_owned(),
        "1s".to_owned(),
    ];
    Wrapper::parse_from(flags).args
}

/// Install the CRD and the credentials Secret in each namespace.
async fn install(client: &kube::Client, namespaces: &[String]) -> Result<(), SandboxError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &TaskReset::crd())
        .await
        .map_err(kube_err("installing the CRD"))?;
    for namespace in namespaces {
        create_namespace(client, namespace).await?;
        create_secret(client, namespace).await?;
    }
    Ok(())
}

/// The simulator refuses objects in a namespace that does not exist, like kube-apiserver.
async fn create_namespace(client: &kube::Client, namespace: &str) -> Result<(), SandboxError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(namespace.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match namespaces.create(&PostParams::default(), &ns).await {
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()), // default, kube-system, ...
        other => other
            .map(|_| ())
            .map_err(kube_err("creating the namespace")),
    }
}

async fn create_secret(client: &kube::Client, namespace: &str) -> Result<(), SandboxError> {
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

/// Print every TaskReset's phase as it changes (in any namespace; those outside the examples'
/// one as `namespace/name`); with `until_settled`, return once every example is final.
async fn watch(
    client: &kube::Client,
    namespace: &str,
    names: Vec<String>,
    until_settled: bool,
) -> Result<(), SandboxError> {
    let api: Api<TaskReset> = Api::all(client.clone());
    let started = Instant::now();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut stream = watcher(api, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(tr) = stream.try_next().await? {
        let name = match tr.namespace() {
            Some(ns) if ns != namespace => format!("{ns}/{}", tr.name_any()),
            _ => tr.name_any(),
        };
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
    // A status nobody wrote is the CRD's default, {observedGeneration: -1}: no phase.
    let Some(status) = tr.status.as_ref().filter(|s| s.phase.is_some()) else {
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
        assert!(watching_line(2, true).contains("until each example is final"));
        assert!(watching_line(2, false).contains("Ctrl-C to stop"));
    }

    /// Every step of `sandbox --help` is valid JSON of a step the simulator takes.
    #[test]
    fn the_help_names_steps_the_simulator_takes() {
        let steps: Vec<&str> = super::REHEARSAL_HELP
            .lines()
            .filter_map(|l| l.find("{\"kind\"").map(|i| &l[i..]))
            .collect();
        assert_eq!(steps.len(), 8, "{steps:?}");
        for step in steps {
            let parsed: Result<taskreset_simulators::roma::Step, _> = serde_json::from_str(step);
            assert!(parsed.is_ok(), "{step}: {parsed:?}");
        }
    }
}
