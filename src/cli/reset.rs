//! `taskreset-controller reset`: one reset call from the command line, to check credentials
//! and connectivity with the same client the controller uses.
//!
//! Credentials come from the environment (`ROMA_TOKEN`, or `ROMA_ACCESS_KEY`/`ROMA_SECRET_KEY`
//! [/`ROMA_SECURITY_TOKEN`], or `ROMA_USERNAME`/`ROMA_PASSWORD`/`ROMA_DOMAIN_NAME`
//! [/`ROMA_IAM_ENDPOINT`]). Exit codes: 0 success, 2 rejected by the service (401 included),
//! 3 nothing was executed (safe to try again), 4 the outcome is unknown (the reset may have
//! run: check the task before calling again), 64 usage or configuration error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::duration::parse_timeout;
use super::exit::EXIT_USAGE;
use crate::api::{DateFrom, DateFromError, is_valid_id};
use crate::roma::{
    ClientConfig, ClientError, Credentials, CredentialsError, Endpoint, EndpointError,
    EndpointPolicy, IamEndpointPolicy, OutcomeClass, ResetOutcome, ResetRequest, RomaClient,
    classify,
};

/// Exit code: the service (or the gateway, or IAM) refused the reset or the credentials.
pub const EXIT_REJECTED: u8 = 2;
/// Exit code: a failure that provably executed nothing (not sent, throttled, a documented
/// "not executed" 5xx): safe to try again.
pub const EXIT_RETRYABLE: u8 = 3;
/// Exit code: the outcome is unknown (a timeout or a broken connection after sending, an
/// undocumented answer): the reset may have run; check the task before calling again.
pub const EXIT_AMBIGUOUS: u8 = 4;

/// Flags of `taskreset-controller reset`.
#[derive(Debug, Args)]
#[command(
    after_help = "Credentials are read from the environment: ROMA_TOKEN; or ROMA_ACCESS_KEY and \
ROMA_SECRET_KEY (and ROMA_SECURITY_TOKEN); or ROMA_USERNAME, ROMA_PASSWORD and ROMA_DOMAIN_NAME \
(and ROMA_IAM_ENDPOINT).\n\nExit codes:\n  0 success\n  2 rejected by the service, the gateway \
or IAM (401 included): nothing was executed\n  3 nothing was executed (not sent, throttled, a \
documented \"not executed\" error): safe to try again\n  4 the outcome is unknown (timeout or \
broken connection after sending, an undocumented answer): the reset may have run; check the \
task before calling again\n  64 usage or configuration error"
)]
pub struct ResetArgs {
    /// Huawei Cloud project ID.
    #[arg(long, value_name = "ID")]
    pub project_id: String,
    /// ROMA Connect instance ID.
    #[arg(long, value_name = "ID")]
    pub instance_id: String,
    /// ID of the combined (multi-table) FDI task.
    #[arg(long, value_name = "ID")]
    pub task_id: String,
    /// Where the reset starts from: UTC epoch milliseconds or an RFC 3339 timestamp.
    /// Omitted: no date_from is sent.
    #[arg(long, value_name = "MS|RFC3339", allow_negative_numbers = true)]
    pub date_from: Option<String>,
    /// Base URL of the ROMA Connect API (trusted as given: no allow-list applies here).
    #[arg(long, value_name = "URL", conflicts_with = "region")]
    pub endpoint: Option<String>,
    /// Huawei Cloud region: the call goes to https://roma.{region}.myhuaweicloud.com.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Allow plain http:// endpoints (tests and sandboxes only: credentials travel in clear).
    #[arg(long)]
    pub insecure_allow_http: bool,
    /// PEM file of extra CA certificates to trust.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Limit for the whole call, e.g. 30s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Limit for establishing the connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub connect_timeout: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// How the result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One human-readable line.
    Text,
    /// One JSON object.
    Json,
}

/// Run the command; the exit code tells the outcome.
pub fn run(args: ResetArgs) -> ExitCode {
    let output = args.output;
    let prepared = match prepare(args) {
        Ok(prepared) => prepared,
        Err(err) => return usage_error(output, &err.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return usage_error(output, &format!("cannot start the runtime: {err}")),
    };
    let (client, request, credentials) = prepared;
    let outcome = runtime.block_on(client.reset(&request, &credentials));
    let class = classify(&outcome);
    let printed = match output {
        OutputFormat::Text => text_line(&request, &outcome, class),
        OutputFormat::Json => json_line(&request, &outcome, class),
    };
    // A closed stdout cannot change the outcome; the exit code still tells it.
    let _ = writeln!(std::io::stdout().lock(), "{printed}");
    ExitCode::from(match class {
        OutcomeClass::Succeeded => 0,
        OutcomeClass::Rejected | OutcomeClass::CredentialsRejected => EXIT_REJECTED,
        OutcomeClass::Retryable => EXIT_RETRYABLE,
        OutcomeClass::Ambiguous => EXIT_AMBIGUOUS,
    })
}

/// Why `reset` cannot make its call: a usage or configuration error (exit 64).
#[derive(Debug, thiserror::Error)]
enum PrepareError {
    #[error("--timeout and --connect-timeout must be longer than 0")]
    ZeroTimeout,
    #[error(
        "{flag} {value:?} must be 1-64 letters, digits, '_' or '-', starting with a letter or digit"
    )]
    InvalidId { flag: &'static str, value: String },
    #[error("--date-from: {0}")]
    DateFrom(#[source] DateFromError),
    #[error(transparent)]
    Policy(EndpointError),
    #[error("--endpoint {text:?} is not an absolute URL: {source}")]
    EndpointUrl {
        text: String,
        #[source]
        source: url::ParseError,
    },
    #[error("--endpoint: {0}")]
    Endpoint(#[source] EndpointError),
    #[error("--region: {0}")]
    Region(#[source] EndpointError),
    #[error("give --endpoint URL or --region REGION")]
    NoEndpoint,
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("ROMA_IAM_ENDPOINT: {0}")]
    IamEndpoint(#[source] EndpointError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn prepare(args: ResetArgs) -> Result<(RomaClient, ResetRequest, Credentials), PrepareError> {
    if args.timeout.is_zero() || args.connect_timeout.is_zero() {
        return Err(PrepareError::ZeroTimeout);
    }
    for (flag, value) in [
        ("--project-id", &args.project_id),
        ("--instance-id", &args.instance_id),
        ("--task-id", &args.task_id),
    ] {
        if !is_valid_id(value) {
            return Err(PrepareError::InvalidId {
                flag,
                value: value.clone(),
            });
        }
    }
    let date_from_ms = args
        .date_from
        .as_deref()
        .map(|text| {
            let date = match text.parse::<i64>() {
                Ok(ms) => DateFrom::EpochMillis(ms),
                Err(_) => DateFrom::Timestamp(text.to_owned()),
            };
            date.epoch_millis().map_err(PrepareError::DateFrom)
        })
        .transpose()?;
    let policy = EndpointPolicy::new(Vec::new(), None, None, args.insecure_allow_http)
        .map_err(PrepareError::Policy)?;
    let endpoint: Endpoint = match (&args.endpoint, &args.region) {
        (Some(text), _) => {
            let url = url::Url::parse(text).map_err(|source| PrepareError::EndpointUrl {
                text: text.clone(),
                source,
            })?;
            policy.trusted(&url).map_err(PrepareError::Endpoint)?
        }
        (None, Some(region)) => policy
            .resolve(None, Some(region))
            .map_err(PrepareError::Region)?,
        (None, None) => return Err(PrepareError::NoEndpoint),
    };
    let credentials = Credentials::from_env()?;
    // ROMA_IAM_ENDPOINT is given by whoever runs the command: trusted like --endpoint.
    let mut iam_endpoints = IamEndpointPolicy::new(Vec::new(), args.insecure_allow_http)
        .map_err(PrepareError::Policy)?;
    if let Credentials::Password {
        iam_endpoint: Some(url),
        ..
    } = &credentials
    {
        iam_endpoints = iam_endpoints
            .trusting(url)
            .map_err(PrepareError::IamEndpoint)?;
    }
    let client = RomaClient::new(ClientConfig {
        request_timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        ca_file: args.ca_file,
        insecure_allow_http: args.insecure_allow_http,
        iam_endpoints,
        ..ClientConfig::default()
    })?;
    let request = ResetRequest {
        endpoint,
        project_id: args.project_id,
        instance_id: args.instance_id,
        task_id: args.task_id,
        date_from_ms,
    };
    Ok((client, request, credentials))
}

fn usage_error(output: OutputFormat, message: &str) -> ExitCode {
    match output {
        OutputFormat::Text => eprintln!("error: {message}"),
        OutputFormat::Json => {
            println!("{}", json!({"result": "usageError", "error": message}));
            eprintln!("error: {message}");
        }
    }
    ExitCode::from(EXIT_USAGE)
}

fn text_line(request: &ResetRequest, outcome: &ResetOutcome, class: OutcomeClass) -> String {
    let request_id = outcome
        .request_id()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default();
    let hint = match class {
        OutcomeClass::Ambiguous => {
            "; the reset may or may not have run: check the task before calling again"
        }
        OutcomeClass::Retryable => "; nothing was executed: safe to try again later",
        OutcomeClass::CredentialsRejected => "; check the ROMA_* credentials",
        OutcomeClass::Succeeded | OutcomeClass::Rejected => "",
    };
    format!(
        "{class}: task {} at {}: {outcome}{request_id}{hint}",
        request.task_id, request.endpoint
    )
}

fn json_line(request: &ResetRequest, outcome: &ResetOutcome, class: OutcomeClass) -> String {
    let mut object = Map::new();
    object.insert("result".into(), json!(class.as_str()));
    object.insert("endpoint".into(), json!(request.endpoint.to_string()));
    object.insert("projectId".into(), json!(request.project_id));
    object.insert("instanceId".into(), json!(request.instance_id));
    object.insert("taskId".into(), json!(request.task_id));
    if let Some(ms) = request.date_from_ms {
        object.insert("dateFrom".into(), json!(ms));
    }
    if let Some(status) = outcome.http_status() {
        object.insert("httpStatus".into(), json!(status));
    }
    match outcome {
        ResetOutcome::Succeeded { message, .. } => {
            object.insert("message".into(), json!(message));
        }
        ResetOutcome::HttpError {
            error_code,
            error_message,
            ..
        }
        | ResetOutcome::CredentialsRejected {
            error_code,
            error_message,
            ..
        } => {
            object.insert("errorCode".into(), json!(error_code));
            object.insert("errorMessage".into(), json!(error_message));
        }
        ResetOutcome::NotSent { reason } | ResetOutcome::Ambiguous { reason } => {
            object.insert("reason".into(), json!(reason));
        }
    }
    if let Some(id) = outcome.request_id() {
        object.insert("requestId".into(), json!(id));
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ResetArgs,
    }

    /// The required flags, for every parse in these tests.
    const BASE: [&str; 7] = [
        "reset",
        "--project-id",
        "p",
        "--instance-id",
        "i",
        "--task-id",
        "t",
    ];

    fn args(extra: &[&str]) -> ResetArgs {
        Wrapper::try_parse_from(BASE.iter().chain(extra))
            .expect("parse")
            .args
    }

    /// Issue 15.9: `--date-from 1630052714` (seconds) is refused, not sent as 1970-01-19.
    #[test]
    fn date_from_in_seconds_is_refused() {
        let Err(err) = prepare(args(&[
            "--region",
            "cn-north-4",
            "--date-from",
            "1630052714",
        ])) else {
            panic!("seconds accepted");
        };
        assert!(
            matches!(
                err,
                PrepareError::DateFrom(DateFromError::LooksLikeSeconds(1_630_052_714))
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("looks like seconds: use milliseconds, e.g. 1630052714000"),
            "{message}"
        );
    }

    /// Issue 15.9: 0 timeouts are refused when the flags are parsed.
    #[test]
    fn zero_timeouts_are_refused() {
        for flag in ["--timeout", "--connect-timeout"] {
            let err = Wrapper::try_parse_from(BASE.iter().chain(&[flag, "0s"]))
                .err()
                .expect("refused")
                .to_string();
            assert!(err.contains("must be longer than 0"), "{err}");
        }
    }
}
