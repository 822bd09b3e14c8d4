//! `taskreset-controller run`: the controller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use kube::runtime::events::Reporter;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::duration::{parse_duration, parse_timeout};
use crate::reconciler::{self, Context, LeaseConfig, Policy, RunConfig, SecretRef, limits::Limits};
use crate::roma::{
    ClientConfig, ClientError, EndpointError, EndpointPolicy, IamEndpointPolicy, RomaClient,
};
use crate::telemetry::{self, Health, LogFormat, Metrics};

/// Margin added to the request timeout before a `Resetting` claim counts as interrupted:
/// room for the result write after the call returns (half the timeout, 2 s to 30 s). A result
/// written after the margin still replaces the `Interrupted` verdict.
fn claim_margin(request_timeout: Duration) -> Duration {
    (request_timeout / 2).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// Flags of `run`; each can also be set by the environment variable shown in `--help`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Watch TaskResets in this namespace only (default: all namespaces).
    #[arg(long, env = "TASKRESET_NAMESPACE", value_name = "NS", value_parser = parse_namespace)]
    pub namespace: Option<String>,

    /// Secret (NAMESPACE/NAME) used by TaskResets without spec.credentialsSecretRef.
    #[arg(
        long,
        env = "TASKRESET_DEFAULT_CREDENTIALS_SECRET",
        value_name = "NS/NAME"
    )]
    pub default_credentials_secret: Option<SecretRef>,

    /// Namespaces (comma-separated) whose TaskResets may use --default-credentials-secret;
    /// TaskResets elsewhere must name their own Secret. Empty: every namespace (warned at
    /// start-up).
    #[arg(
        long,
        env = "TASKRESET_DEFAULT_CREDENTIALS_NAMESPACES",
        value_name = "NS,...",
        value_delimiter = ','
    )]
    pub default_credentials_namespaces: Vec<String>,

    /// Region used when a TaskReset names neither endpoint nor region.
    #[arg(long, env = "TASKRESET_DEFAULT_REGION", value_name = "REGION")]
    pub default_region: Option<String>,

    /// Endpoint used when a TaskReset names neither endpoint nor region (wins over
    /// --default-region).
    #[arg(long, env = "TASKRESET_DEFAULT_ENDPOINT", value_name = "URL")]
    pub default_endpoint: Option<url::Url>,

    /// Endpoint patterns calls may go to, comma-separated; `*` matches one DNS label. The
    /// configured defaults are always allowed.
    #[arg(
        long,
        env = "TASKRESET_ALLOWED_ENDPOINTS",
        value_delimiter = ',',
        default_value = "https://roma.*.myhuaweicloud.com"
    )]
    pub allowed_endpoints: Vec<String>,

    /// IAM endpoint patterns an IAM password may be sent to (a Secret's `iamEndpoint`, or the
    /// IAM endpoint derived from the ROMA endpoint), comma-separated; same syntax as
    /// --allowed-endpoints.
    #[arg(
        long,
        env = "TASKRESET_ALLOWED_IAM_ENDPOINTS",
        value_delimiter = ',',
        default_values = crate::roma::DEFAULT_ALLOWED_IAM_ENDPOINTS
    )]
    pub allowed_iam_endpoints: Vec<String>,

    /// Reset calls in flight at once, over all TaskResets.
    #[arg(long, env = "TASKRESET_MAX_CONCURRENT_RESETS", default_value_t = 16)]
    pub max_concurrent_resets: usize,

    /// Reset calls started per second, over all TaskResets (0 = unlimited).
    #[arg(long, env = "TASKRESET_MAX_RESETS_PER_SECOND", default_value_t = 5.0)]
    pub max_resets_per_second: f64,

    /// Attempts per generation for failures that did not execute, before RetriesExhausted.
    #[arg(long, env = "TASKRESET_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Timeout of one reset call (longer than 0).
    #[arg(long, env = "TASKRESET_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub request_timeout: Duration,

    /// How long a credentials Secret read is reused by the objects that name it (0s: read it
    /// for every reset). A changed Secret is seen within this; one the gateway rejected (401)
    /// is read afresh at the next look.
    #[arg(long, env = "TASKRESET_SECRET_CACHE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub secret_cache_ttl: Duration,

    /// Timeout of one IAM token exchange (IAM password credentials). The exchange and the
    /// call must both fit the pod's termination grace period.
    #[arg(long, env = "TASKRESET_IAM_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub iam_timeout: Duration,

    /// First retry delay after a failure that did not execute; doubles per attempt.
    #[arg(long, env = "TASKRESET_RETRY_BASE_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub retry_base_delay: Duration,

    /// Longest retry delay.
    #[arg(long, env = "TASKRESET_RETRY_MAX_DELAY", default_value = "5m", value_parser = parse_duration)]
    pub retry_max_delay: Duration,

    /// After the gateway rejected the credentials (401): first delay before the Secret is read
    /// again; the delays double up to --credentials-wait-max. No call is made until the
    /// Secret holds a new version, or 30 such delays have passed (the gateway locks an access
    /// key after five failures in a row).
    #[arg(long, env = "TASKRESET_CREDENTIALS_RETRY_DELAY", default_value = "2m", value_parser = parse_duration)]
    pub credentials_retry_delay: Duration,

    /// Longest wait between looks at a missing, ambiguous or rejected credentials Secret.
    #[arg(long, env = "TASKRESET_CREDENTIALS_WAIT_MAX", default_value = "5m", value_parser = parse_duration)]
    pub credentials_wait_max: Duration,

    /// Reconcile only while holding a coordination.k8s.io Lease (for several replicas).
    #[arg(long, env = "TASKRESET_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Name of the leader Lease.
    #[arg(
        long,
        env = "TASKRESET_LEASE_NAME",
        default_value = "taskreset-controller"
    )]
    pub lease_name: String,

    /// Namespace of the leader Lease (default: POD_NAMESPACE, else "default").
    #[arg(long, env = "TASKRESET_LEASE_NAMESPACE", value_parser = parse_namespace)]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease (default: POD_NAME, else the hostname).
    #[arg(long, env = "TASKRESET_LEASE_HOLDER")]
    pub lease_holder: Option<String>,

    /// How long the Lease lasts without renewal.
    #[arg(long, env = "TASKRESET_LEASE_DURATION", default_value = "15s", value_parser = parse_timeout)]
    pub lease_duration: Duration,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "TASKRESET_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log format; levels come from RUST_LOG (default info).
    #[arg(long, env = "TASKRESET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Allow plain http:// endpoints (only for tests and simulators).
    #[arg(long, env = "TASKRESET_INSECURE_ALLOW_HTTP")]
    pub insecure_allow_http: bool,

    /// Extra CA bundle (PEM) trusted for ROMA and IAM endpoints.
    #[arg(long, env = "TASKRESET_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// How long the execution ledger remembers a run (a re-created TaskReset with the same
    /// name and spec within this period is not run again).
    #[arg(long, env = "TASKRESET_LEDGER_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub ledger_retention: Duration,
}

/// A namespace name: a DNS-1123 label (1-63 lowercase letters, digits and '-', starting and
/// ending with a letter or digit). The empty string means "all namespaces" for `--namespace`.
pub(crate) fn parse_namespace(value: &str) -> Result<String, NotANamespace> {
    let label = value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if label {
        Ok(value.to_owned())
    } else {
        Err(NotANamespace)
    }
}

/// A `--namespace` value that is not a namespace name (clap quotes the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a namespace name: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
)]
pub struct NotANamespace;

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--allowed-endpoints`, `--default-endpoint`, `--default-region` or
    /// `--insecure-allow-http` do not make a usable endpoint policy.
    #[error("configuration: {0}")]
    Endpoints(#[source] EndpointError),
    /// `--allowed-iam-endpoints` is not usable.
    #[error("configuration: --allowed-iam-endpoints: {0}")]
    IamEndpoints(#[source] EndpointError),
    /// The ROMA client could not be built (`--ca-file`, TLS set-up).
    #[error("configuration: {0}")]
    Roma(#[from] ClientError),
    /// No Kubernetes client could be built (kubeconfig or in-cluster config).
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    /// The metrics server could not bind.
    #[error("metrics server on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// Leader election could not start.
    #[error(transparent)]
    Leader(#[from] crate::reconciler::LeaderError),
}

impl RunArgs {
    /// The decision policy these flags describe.
    pub fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.max_attempts,
            claim_expiry: self.request_timeout + claim_margin(self.request_timeout),
            retry_base: self.retry_base_delay,
            retry_max: self.retry_max_delay.max(self.retry_base_delay),
            credentials_retry_min: Duration::from_secs(5).min(self.credentials_wait_max),
            credentials_retry_max: self.credentials_wait_max,
            credentials_rejected_retry: self.credentials_retry_delay,
        }
    }

    fn lease(&self) -> Option<LeaseConfig> {
        self.leader_election.then(|| LeaseConfig {
            name: self.lease_name.clone(),
            namespace: self
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".to_owned()),
            holder: self.holder(),
            duration: self.lease_duration,
            grace: (self.lease_duration / 3).max(Duration::from_secs(1)),
        })
    }

    fn holder(&self) -> String {
        self.lease_holder
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("taskreset-controller-{}", std::process::id()))
    }
}

/// Run the controller until SIGTERM/SIGINT; exit 0 after in-flight calls recorded their result.
pub fn execute(args: RunArgs) -> ExitCode {
    telemetry::init_logging(args.log_format, "info");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    runtime.spawn(signal_shutdown(shutdown.clone()));
    match runtime.block_on(start(args, None, shutdown)) {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!(error = %err, "cannot run the controller");
            ExitCode::from(1)
        }
    }
}

async fn signal_shutdown(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    info!("shutdown requested: finishing calls in flight");
    shutdown.cancel();
}

/// Start the controller with `args` (and `client`, or one from the environment) until
/// `shutdown` is cancelled. Used by `run` and by `sandbox`.
pub async fn start(
    args: RunArgs,
    client: Option<kube::Client>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let endpoints = EndpointPolicy::new(
        args.allowed_endpoints.clone(),
        args.default_endpoint.clone(),
        args.default_region.clone(),
        args.insecure_allow_http,
    )
    .map_err(StartError::Endpoints)?;
    let iam_endpoints =
        IamEndpointPolicy::new(args.allowed_iam_endpoints.clone(), args.insecure_allow_http)
            .map_err(StartError::IamEndpoints)?;
    let roma = RomaClient::new(ClientConfig {
        request_timeout: args.request_timeout,
        connect_timeout: args.request_timeout.min(Duration::from_secs(10)),
        iam_timeout: args.iam_timeout,
        ca_file: args.ca_file.clone(),
        insecure_allow_http: args.insecure_allow_http,
        iam_endpoints,
        ..ClientConfig::default()
    })?;
    let client = match client {
        Some(client) => client,
        None => kube::Client::try_default().await?,
    };
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let (bound, server) = telemetry::serve(
        args.metrics_addr,
        Arc::clone(&metrics),
        Arc::clone(&health),
        shutdown.clone(),
    )
    .await
    .map_err(|source| StartError::Metrics {
        addr: args.metrics_addr,
        source,
    })?;
    info!(metrics = %bound, namespace = args.namespace.as_deref().unwrap_or("(all)"), "taskreset-controller starting");
    let default_secret = args
        .default_credentials_secret
        .clone()
        .map(|secret| secret.restricted_to(&args.default_credentials_namespaces));
    match &default_secret {
        Some(secret) if secret.allowed_namespaces.is_none() => warn!(
            secret = %secret,
            "the default credentials Secret serves every namespace: any TaskReset without its own Secret resets with these credentials; restrict it with --default-credentials-namespaces"
        ),
        Some(secret) => {
            info!(secret = %secret, namespaces = %secret.allowed_namespaces.iter().flatten().cloned().collect::<Vec<_>>().join(","), "the default credentials Secret serves only these namespaces")
        }
        None if !args.default_credentials_namespaces.is_empty() => warn!(
            "--default-credentials-namespaces has no effect without --default-credentials-secret"
        ),
        None => {}
    }
    let reporter = Reporter {
        controller: reconciler::FIELD_MANAGER.to_owned(),
        instance: Some(args.holder()),
    };
    let ctx = Arc::new(Context {
        recorder: reconciler::events::Events::new(client.clone(), reporter),
        ledger: crate::ledger::Ledger::new(client.clone(), args.ledger_retention),
        secrets: reconciler::secrets::Secrets::new(client.clone(), args.secret_cache_ttl),
        client,
        roma,
        endpoints,
        policy: args.policy(),
        default_secret,
        limits: Arc::new(Limits::new(
            args.max_concurrent_resets,
            args.max_resets_per_second,
        )),
        metrics,
        stop: shutdown.clone(),
    });
    let config = RunConfig {
        namespace: args.namespace.clone().filter(|ns| !ns.is_empty()),
        lease: args.lease(),
    };
    let result = reconciler::run(ctx, config, health, shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    result.map_err(StartError::from)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::RunArgs;
    use crate::cli::{Cli, Command};

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunArgs,
    }

    /// Issue 15.10: a bad namespace is refused with a message, not a Rust struct dump.
    #[test]
    fn a_bad_namespace_is_refused_in_words() {
        for bad in ["Bad_NS", "-data", "data-", "a.b", &"a".repeat(64)] {
            let flag = format!("--namespace={bad}");
            let err = match Wrapper::try_parse_from(["run", flag.as_str()]) {
                Ok(_) => panic!("{bad:?} accepted"),
                Err(err) => err.to_string(),
            };
            assert!(
                err.contains("not a namespace name") && !err.contains('{'),
                "{bad:?}: {err}"
            );
        }
        for good in ["data", "team-a1", "", "0"] {
            let parsed = Wrapper::try_parse_from(["run", "--namespace", good]);
            assert!(parsed.is_ok(), "{good:?} refused");
        }
    }

    /// Issue 15.9: a 0 timeout is refused when the flags are parsed, with a clear message.
    #[test]
    fn zero_timeouts_are_refused_at_parse_time() {
        for flag in ["--request-timeout", "--iam-timeout", "--lease-duration"] {
            let err = Cli::try_parse_from(["taskreset-controller", "run", flag, "0s"])
                .expect_err(flag)
                .to_string();
            assert!(
                err.contains(flag) && err.contains("must be longer than 0"),
                "{err}"
            );
        }
        let ok = Cli::try_parse_from(["taskreset-controller", "run", "--request-timeout", "5s"])
            .expect("5s");
        let Some(Command::Run(args)) = ok.command else {
            panic!("run");
        };
        assert_eq!(args.request_timeout, std::time::Duration::from_secs(5));
    }
}
