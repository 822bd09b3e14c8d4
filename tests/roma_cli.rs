//! `taskreset-controller reset`: the built binary against the ROMA simulator on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod roma_support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use roma_support::{ConnectProxy, TlsFront, closed_port, temp_file, test_pki};
use serde_json::Value;
use taskreset_simulators::roma::{AuthKind, RomaConfig, RomaHandle, RomaSimulator, Step};

const TOKEN: &str = "cli-token-SECRET-0001";
const SK: &str = "cli-sk-SECRET-0002";
const SECURITY_TOKEN: &str = "cli-st-SECRET-0003";
const PASSWORD: &str = "cli-password-SECRET-0004";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run the binary with exactly these environment variables (nothing inherited, so no proxy
/// or stray ROMA_* variable interferes) and check that no secret appears in its output.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_taskreset-controller"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("runs")
    })
    .await
    .unwrap();
    let run = Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for secret in [TOKEN, SK, SECURITY_TOKEN, PASSWORD] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "secret in output: {} {}",
            run.stdout,
            run.stderr
        );
    }
    run
}

async fn simulator() -> RomaHandle {
    let sim = RomaSimulator::start(RomaConfig::default()).await.unwrap();
    sim.add_token(TOKEN);
    sim.add_access_key("CLIAK0001", SK);
    sim.add_temporary_access_key("CLIAKTEMP", SK, SECURITY_TOKEN);
    sim.add_user("acme", "bob", PASSWORD);
    sim
}

fn reset_args<'a>(url: &'a str, task: &'a str) -> Vec<&'a str> {
    vec![
        "reset",
        "--project-id",
        "c53626012ba84727b938ca8bf03108ef",
        "--instance-id",
        "fae7ff6c-8e07-4cf8-9e67-589cab2f017c",
        "--task-id",
        task,
        "--endpoint",
        url,
        "--insecure-allow-http",
    ]
}

fn with<'a>(mut args: Vec<&'a str>, more: &[&'a str]) -> Vec<&'a str> {
    args.extend_from_slice(more);
    args
}

#[tokio::test]
async fn a_token_reset_succeeds() {
    let sim = simulator().await;
    let url = sim.url();
    let out = run(
        &with(reset_args(&url, "t1"), &["--date-from", "1630052714000"]),
        &[("ROMA_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("succeeded: task t1 at "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("HTTP 200: Reset Success"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("(request id sim-"), "{}", out.stdout);
    let calls = sim.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].date_from, Some(1_630_052_714_000));
    assert_eq!(calls[0].auth, AuthKind::Token);
}

#[tokio::test]
async fn rfc3339_dates_and_json_output() {
    let sim = simulator().await;
    let url = sim.url();
    let out = run(
        &with(
            reset_args(&url, "t1"),
            &[
                "--date-from",
                "2021-08-27T16:25:14+08:00",
                "--output",
                "json",
            ],
        ),
        &[("ROMA_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let json: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(json["result"], "succeeded");
    assert_eq!(json["httpStatus"], 200);
    assert_eq!(json["message"], "Reset Success");
    assert_eq!(json["dateFrom"], 1_630_052_714_000_i64);
    assert_eq!(json["taskId"], "t1");
    assert!(json["requestId"].as_str().unwrap().starts_with("sim-"));
    assert_eq!(sim.calls()[0].date_from, Some(1_630_052_714_000));
}

#[tokio::test]
async fn service_refusals_exit_2_and_name_status_code_and_message() {
    let sim = simulator().await;
    sim.script("t1", vec![Step::task_list_empty()]);
    let url = sim.url();
    let out = run(&reset_args(&url, "t1"), &[("ROMA_TOKEN", TOKEN)]).await;
    assert_eq!(out.code, 2, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("rejected: ")
            && out
                .stdout
                .contains("HTTP 400 FDI.3150: The task list is empty."),
        "{}",
        out.stdout
    );

    sim.script("t2", vec![Step::not_scheduled()]);
    let out = run(
        &with(reset_args(&url, "t2"), &["--output", "json"]),
        &[("ROMA_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(out.code, 2);
    let json: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["result"], "rejected");
    assert_eq!(json["httpStatus"], 404);
    assert_eq!(json["errorCode"], "FDI.3083");

    // An unknown token: the gateway's 401 is a refusal too.
    let out = run(&reset_args(&url, "t3"), &[("ROMA_TOKEN", "not-known")]).await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stdout.contains("HTTP 401 APIGW.0301"), "{}", out.stdout);
}

#[tokio::test]
async fn retryable_failures_exit_3_and_ambiguous_ones_exit_4() {
    let sim = simulator().await;
    let url = sim.url();
    sim.script("t1", vec![Step::Throttle]);
    let out = run(&reset_args(&url, "t1"), &[("ROMA_TOKEN", TOKEN)]).await;
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stdout.starts_with("retryable: ") && out.stdout.contains("HTTP 429 APIGW.0308"));

    sim.script("t2", vec![Step::DropAfterExecute]);
    let out = run(&reset_args(&url, "t2"), &[("ROMA_TOKEN", TOKEN)]).await;
    assert_eq!(out.code, 4, "{}", out.stdout);
    assert!(out.stdout.starts_with("ambiguous: ") && out.stdout.contains("may or may not"));

    sim.script(
        "t3",
        vec![Step::delay(Duration::from_secs(2), Step::Succeed)],
    );
    let out = run(
        &with(
            reset_args(&url, "t3"),
            &["--timeout", "300ms", "--output", "json"],
        ),
        &[("ROMA_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(out.code, 4, "{}", out.stdout);
    let json: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["result"], "ambiguous");
    assert!(json["reason"].as_str().unwrap().contains("timed out"));

    let port = roma_support::closed_port().await;
    let closed = format!("http://127.0.0.1:{port}");
    let out = run(&reset_args(&closed, "t4"), &[("ROMA_TOKEN", TOKEN)]).await;
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stdout.starts_with("retryable: ") && out.stdout.contains("not sent"));
}

#[tokio::test]
async fn access_keys_and_passwords_from_the_environment() {
    let sim = simulator().await;
    let url = sim.url();
    let out = run(
        &reset_args(&url, "t1"),
        &[("ROMA_ACCESS_KEY", "CLIAK0001"), ("ROMA_SECRET_KEY", SK)],
    )
    .await;
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let out = run(
        &reset_args(&url, "t2"),
        &[
            ("ROMA_ACCESS_KEY", "CLIAKTEMP"),
            ("ROMA_SECRET_KEY", SK),
            ("ROMA_SECURITY_TOKEN", SECURITY_TOKEN),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let out = run(
        &reset_args(&url, "t3"),
        &[
            ("ROMA_USERNAME", "bob"),
            ("ROMA_PASSWORD", PASSWORD),
            ("ROMA_DOMAIN_NAME", "acme"),
            ("ROMA_IAM_ENDPOINT", &url),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let out = run(
        &reset_args(&url, "t4"),
        &[
            ("ROMA_USERNAME", "bob"),
            ("ROMA_PASSWORD", "wrong-password"),
            ("ROMA_DOMAIN_NAME", "acme"),
            ("ROMA_IAM_ENDPOINT", &url),
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stdout.starts_with("credentials_rejected: "),
        "{}",
        out.stdout
    );
    let auths: Vec<AuthKind> = sim.calls().iter().map(|c| c.auth).collect();
    assert_eq!(
        auths,
        [AuthKind::AccessKey, AuthKind::AccessKey, AuthKind::IamToken]
    );
    assert_eq!(sim.iam_calls(), 2);
}

#[tokio::test]
async fn an_https_endpoint_with_a_ca_file() {
    let sim = simulator().await;
    let pki = test_pki();
    let front = TlsFront::start(Arc::clone(&pki.server_config), sim.addr()).await;
    let ca = temp_file("cli-ca.pem", &pki.ca_pem);
    let url = front.url();
    let ca_path = ca.to_string_lossy().into_owned();
    let args = [
        "reset",
        "--project-id",
        "p1",
        "--instance-id",
        "i1",
        "--task-id",
        "t1",
        "--endpoint",
        &url,
        "--ca-file",
        &ca_path,
    ];
    let out = run(&args, &[("ROMA_TOKEN", TOKEN)]).await;
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let without_ca = &args[..args.len() - 2];
    let out = run(without_ca, &[("ROMA_TOKEN", TOKEN)]).await;
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert_eq!(sim.calls().len(), 1);
    let _ = std::fs::remove_file(ca);
}

#[tokio::test]
async fn usage_and_configuration_errors_exit_64() {
    let sim = simulator().await;
    let url = sim.url();
    let token = [("ROMA_TOKEN", TOKEN)];
    /// Arguments, environment, what stderr must say.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["reset", "--project-id", "p"],
            token.to_vec(),
            "--instance-id",
        ),
        (reset_args(&url, "t1"), vec![], "no credentials"),
        (
            reset_args(&url, "t1"),
            vec![("ROMA_ACCESS_KEY", "AK")],
            "missing ROMA_SECRET_KEY",
        ),
        (reset_args(&url, "../x"), token.to_vec(), "--task-id"),
        (
            with(reset_args(&url, "t1"), &["--date-from", "yesterday"]),
            token.to_vec(),
            "--date-from",
        ),
        (
            with(reset_args(&url, "t1"), &["--date-from", "-5"]),
            token.to_vec(),
            "negative",
        ),
        (
            with(reset_args(&url, "t1"), &["--region", "cn-north-4"]),
            token.to_vec(),
            "cannot be used with",
        ),
        (
            with(reset_args(&url, "t1"), &["--timeout", "soon"]),
            token.to_vec(),
            "--timeout",
        ),
        (
            vec![
                "reset",
                "--project-id",
                "p",
                "--instance-id",
                "i",
                "--task-id",
                "t",
            ],
            token.to_vec(),
            "--endpoint URL or --region",
        ),
        (
            vec![
                "reset",
                "--project-id",
                "p",
                "--instance-id",
                "i",
                "--task-id",
                "t",
                "--endpoint",
                &url,
            ],
            token.to_vec(),
            "plain http: only https is allowed unless --insecure-allow-http",
        ),
        (
            vec![
                "reset",
                "--project-id",
                "p",
                "--instance-id",
                "i",
                "--task-id",
                "t",
                "--region",
                "North",
            ],
            token.to_vec(),
            "region",
        ),
        (
            with(
                reset_args(&url, "t1"),
                &["--ca-file", "/nonexistent/ca.pem"],
            ),
            token.to_vec(),
            "CA file",
        ),
    ];
    for (args, env, expected) in cases {
        let out = run(&args, &env).await;
        assert_eq!(out.code, 64, "{args:?}: {} {}", out.stdout, out.stderr);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
    }
    assert!(sim.calls().is_empty(), "no call on a usage error");
    let help = run(&["reset", "--help"], &[]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("ROMA_ACCESS_KEY") && help.stdout.contains("Exit codes"));
    assert!(
        help.stdout.contains("3 nothing was executed")
            && help.stdout.contains("4 the outcome is unknown"),
        "{}",
        help.stdout
    );
}

/// `run` with a kubeconfig and `HTTPS_PROXY` set (issue 11.13): the controller starts and
/// reaches the API server through the proxy (kubectl's behaviour), instead of refusing to
/// start because kube's proxy support was compiled out.
#[tokio::test]
async fn run_starts_behind_an_https_proxy() {
    use kube::CustomResourceExt;
    use taskreset_simulators::kube_api::{KubeApiConfig, KubeApiServer};
    let kube = KubeApiServer::start(KubeApiConfig::default())
        .await
        .unwrap();
    let client = kube.client().await;
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(client);
    crds.create(
        &kube::api::PostParams::default(),
        &taskreset_controller::api::TaskReset::crd(),
    )
    .await
    .unwrap();
    let kubeconfig = temp_file("kubeconfig", &kube.kubeconfig_yaml("default"));
    let proxy = ConnectProxy::start().await;
    let port = closed_port().await;
    let metrics = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_taskreset-controller"))
        .args(["run", "--metrics-addr", &metrics])
        .env_clear()
        .env("KUBECONFIG", &kubeconfig)
        .env("HTTPS_PROXY", proxy.url())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let started = std::time::Instant::now();
    let mut exited = None;
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        if !proxy.targets().is_empty() && started.elapsed() > Duration::from_secs(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still_running = exited.is_none();
    if still_running {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("output");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(&kubeconfig);
    assert!(still_running, "the controller exited ({exited:?}): {log}");
    let api = kube.url();
    let authority = api
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    assert!(
        proxy
            .targets()
            .iter()
            .any(|t| authority.starts_with(t.as_str())),
        "the API server was not reached through the proxy ({:?}, {api}): {log}",
        proxy.targets()
    );
}

/// Issue 15.10: what the CLI prints for odd answers says each thing once, and names no
/// request URL (the endpoint is printed once, without the path).
#[tokio::test]
async fn odd_answers_read_cleanly() {
    let sim = simulator().await;
    let url = sim.url();
    let token = [("ROMA_TOKEN", TOKEN)];
    for (task, step, expected) in [
        ("m1", Step::ServerErrorNoBody, "HTTP 500 with an empty body"),
        ("m2", Step::Html { status: 404 }, "HTTP 404 Error"),
        (
            "m3",
            Step::DropAfterExecute,
            "connection closed before the answer",
        ),
        (
            "m4",
            Step::Unauthorized,
            "HTTP 401 APIGW.0301: the gateway refused",
        ),
    ] {
        sim.script(task, vec![step]);
        let out = run(&reset_args(&url, task), &token).await;
        assert!(out.stdout.contains(expected), "{task}: {}", out.stdout);
        for garbled in ["500 500", "401 401", "404 Error 404", "/v2/", "for url"] {
            assert!(!out.stdout.contains(garbled), "{task}: {}", out.stdout);
        }
    }
    let port = roma_support::closed_port().await;
    let closed = format!("http://127.0.0.1:{port}");
    let out = run(&reset_args(&closed, "m5"), &token).await;
    assert!(
        out.stdout.contains("not sent: could not connect"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("/v2/") && !out.stdout.contains("for url"),
        "{}",
        out.stdout
    );
}
