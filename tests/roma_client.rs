//! The ROMA client against real HTTP servers on loopback: the ROMA simulator (which verifies
//! tokens and AK/SK signatures), raw servers for odd answers, and an https front with its own
//! CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod roma_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use roma_support::{RawServer, Reply, TlsFront, closed_port, temp_file, test_pki};
use taskreset_controller::roma::{
    ClientConfig, Credentials, Endpoint, EndpointPolicy, IamEndpointError, IamEndpointPolicy,
    OutcomeClass, ResetOutcome, ResetRequest, RomaClient, classify,
};
use taskreset_simulators::roma::{AuthKind, RomaConfig, RomaHandle, RomaSimulator, Step};
use url::Url;

const TOKEN: &str = "static-token-SECRET-0001";
const AK: &str = "AKTEST0000000001";
const SK: &str = "sk-SECRET-0000000000000000000000002";
const SECURITY_TOKEN: &str = "security-token-SECRET-0003";
const PASSWORD: &str = "password-SECRET-0004";
const ALL_SECRETS: [&str; 4] = [TOKEN, SK, SECURITY_TOKEN, PASSWORD];

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        insecure_allow_http: true,
        ..ClientConfig::default()
    }
}

fn client() -> RomaClient {
    RomaClient::new(config()).expect("client")
}

fn endpoint(url: &str) -> Endpoint {
    EndpointPolicy::new(vec![], None, None, true)
        .expect("policy")
        .trusted(&Url::parse(url).expect("url"))
        .expect("endpoint")
}

fn request(url: &str, task: &str, date_from_ms: Option<i64>) -> ResetRequest {
    ResetRequest {
        endpoint: endpoint(url),
        project_id: "c53626012ba84727b938ca8bf03108ef".into(),
        instance_id: "fae7ff6c-8e07-4cf8-9e67-589cab2f017c".into(),
        task_id: task.into(),
        date_from_ms,
    }
}

fn token() -> Credentials {
    Credentials::Token(TOKEN.into())
}

fn password(sim: &RomaHandle) -> Credentials {
    Credentials::Password {
        username: "alice".into(),
        password: PASSWORD.into(),
        domain_name: "acme".into(),
        iam_endpoint: Some(Url::parse(&sim.url()).unwrap()),
    }
}

async fn simulator() -> RomaHandle {
    let sim = RomaSimulator::start(RomaConfig::default())
        .await
        .expect("simulator");
    sim.add_token(TOKEN);
    sim.add_access_key(AK, SK);
    sim.add_user("acme", "alice", PASSWORD);
    sim
}

/// No secret in what an outcome shows.
fn assert_no_secret(outcome: &ResetOutcome) {
    let shown = format!("{outcome:?} {outcome}");
    for secret in ALL_SECRETS {
        assert!(!shown.contains(secret), "secret leaked: {shown}");
    }
}

#[tokio::test]
async fn a_token_reset_succeeds_and_is_recorded_once() {
    let sim = simulator().await;
    let outcome = client()
        .reset(
            &request(&sim.url(), "task-1", Some(1_630_052_714_000)),
            &token(),
        )
        .await;
    match &outcome {
        ResetOutcome::Succeeded {
            http_status,
            message,
            request_id,
        } => {
            assert_eq!(*http_status, 200);
            assert_eq!(message, "Reset Success");
            assert!(
                request_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with("sim-"))
            );
        }
        other => panic!("expected success, got {other:?}"),
    }
    assert_eq!(classify(&outcome), OutcomeClass::Succeeded);
    let calls = sim.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].task_id, "task-1");
    assert_eq!(calls[0].project_id, "c53626012ba84727b938ca8bf03108ef");
    assert_eq!(calls[0].instance_id, "fae7ff6c-8e07-4cf8-9e67-589cab2f017c");
    assert_eq!(calls[0].date_from, Some(1_630_052_714_000));
    assert_eq!(calls[0].auth, AuthKind::Token);
    assert!(calls[0].executed);
    // Without date_from the body is {} and nothing is sent for it.
    let _ = client()
        .reset(&request(&sim.url(), "task-2", None), &token())
        .await;
    assert_eq!(sim.calls()[1].date_from, None);
}

#[tokio::test]
async fn the_request_on_the_wire_has_the_documented_shape() {
    let server = RawServer::start(|_| {
        Reply::http(
            200,
            &[("Content-Type", "application/json")],
            r#"{"message": "Reset Success"}"#,
        )
    })
    .await;
    let outcome = client()
        .reset(&request(&server.url(), "task-1", Some(42)), &token())
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::Succeeded);
    let empty = client()
        .reset(&request(&server.url(), "task-2", None), &token())
        .await;
    assert_eq!(classify(&empty), OutcomeClass::Succeeded);
    let requests = server.requests();
    let first = requests[0].to_ascii_lowercase();
    assert!(
        requests[0].starts_with(
            "POST /v2/c53626012ba84727b938ca8bf03108ef/fdi/instances/fae7ff6c-8e07-4cf8-9e67-589cab2f017c/multi-tasks/task-1/reset HTTP/1.1\r\n"
        ),
        "{}",
        requests[0]
    );
    assert!(
        first.contains("\r\ncontent-type: application/json;charset=utf-8\r\n"),
        "{first}"
    );
    assert!(
        first.contains(&format!(
            "\r\nuser-agent: taskreset-controller/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{first}"
    );
    assert!(first.contains(&format!(
        "\r\nx-auth-token: {}\r\n",
        TOKEN.to_ascii_lowercase()
    )));
    assert!(
        requests[0].ends_with("\r\n\r\n{\"date_from\":42}"),
        "{}",
        requests[0]
    );
    assert!(requests[1].ends_with("\r\n\r\n{}"), "{}", requests[1]);
}

#[tokio::test]
async fn every_row_of_the_classification_against_the_simulator() {
    let sim = simulator().await;
    /// Scripted answer, class, HTTP status, error code, structured body.
    type Row = (
        Step,
        OutcomeClass,
        Option<u16>,
        Option<&'static str>,
        Option<bool>,
    );
    let rows: Vec<Row> = vec![
        (
            Step::Succeed,
            OutcomeClass::Succeeded,
            Some(200),
            None,
            None,
        ),
        (
            Step::task_list_empty(),
            OutcomeClass::Rejected,
            Some(400),
            Some("FDI.3150"),
            Some(true),
        ),
        (
            Step::not_scheduled(),
            OutcomeClass::Rejected,
            Some(404),
            Some("FDI.3083"),
            Some(true),
        ),
        (
            Step::fail(403, "FDI.3039", "Project ID mismatch."),
            OutcomeClass::Rejected,
            Some(403),
            Some("FDI.3039"),
            Some(true),
        ),
        (
            Step::server_error(),
            OutcomeClass::Retryable,
            Some(500),
            Some("FDI.3000"),
            Some(true),
        ),
        (
            Step::Throttle,
            OutcomeClass::Retryable,
            Some(429),
            Some("APIGW.0308"),
            Some(true),
        ),
        (
            Step::ServerErrorNoBody,
            OutcomeClass::Ambiguous,
            Some(500),
            Some("500"),
            Some(false),
        ),
        (
            Step::Html { status: 502 },
            OutcomeClass::Ambiguous,
            Some(502),
            Some("502"),
            Some(false),
        ),
        (
            Step::Unauthorized,
            OutcomeClass::CredentialsRejected,
            Some(401),
            Some("APIGW.0301"),
            Some(true),
        ),
        (
            // The SDK's camelCase fallback is not the documented body: ambiguous after sending.
            Step::Raw {
                status: 503,
                content_type: "application/json".into(),
                body: r#"{"errorCode":"SVC.0001","errorMsg":"busy"}"#.into(),
            },
            OutcomeClass::Ambiguous,
            Some(503),
            Some("503"),
            Some(false),
        ),
        (
            Step::Raw {
                status: 500,
                content_type: "text/plain".into(),
                body: "\u{1b}[1mstack trace\u{0}".into(),
            },
            OutcomeClass::Ambiguous,
            Some(500),
            Some("500"),
            Some(false),
        ),
        (
            Step::DropConnection,
            OutcomeClass::Ambiguous,
            None,
            None,
            None,
        ),
        (
            Step::DropAfterExecute,
            OutcomeClass::Ambiguous,
            None,
            None,
            None,
        ),
    ];
    let client = client();
    for (i, (step, class, status, code, structured)) in rows.into_iter().enumerate() {
        let task = format!("row-{i}");
        sim.script(&task, vec![step.clone()]);
        let outcome = client
            .reset(&request(&sim.url(), &task, None), &token())
            .await;
        assert_eq!(classify(&outcome), class, "{step:?} -> {outcome:?}");
        assert_eq!(outcome.http_status(), status, "{step:?}");
        if let ResetOutcome::HttpError {
            error_code,
            structured: s,
            request_id,
            ..
        } = &outcome
        {
            assert_eq!(Some(error_code.as_str()), code, "{step:?}");
            assert_eq!(Some(*s), structured, "{step:?}");
            assert!(
                request_id.is_some(),
                "{step:?}: the simulator sends X-Request-Id"
            );
        }
        assert_no_secret(&outcome);
        // One call per reset: a static token is never retried on 401.
        assert_eq!(
            sim.calls().iter().filter(|c| c.task_id == task).count(),
            1,
            "{step:?}"
        );
    }
    sim.script("html2", vec![Step::Html { status: 502 }]);
    let html = client
        .reset(&request(&sim.url(), "html2", None), &token())
        .await;
    let ResetOutcome::HttpError { error_message, .. } = &html else {
        panic!("{html:?}");
    };
    assert_eq!(error_message, "502 Error");
}

#[tokio::test]
async fn a_service_error_carries_its_message_and_request_id() {
    let sim = simulator().await;
    sim.script("t", vec![Step::task_list_empty()]);
    let outcome = client()
        .reset(&request(&sim.url(), "t", None), &token())
        .await;
    let ResetOutcome::HttpError {
        http_status,
        error_code,
        error_message,
        request_id,
        structured,
    } = outcome
    else {
        panic!("expected an HTTP error");
    };
    assert_eq!(
        (
            http_status,
            error_code.as_str(),
            error_message.as_str(),
            structured
        ),
        (400, "FDI.3150", "The task list is empty.", true)
    );
    assert_eq!(
        request_id.as_deref(),
        Some(sim.calls()[0].request_id.as_str())
    );
}

#[tokio::test]
async fn aksk_signatures_are_verified_on_the_wire() {
    let sim = simulator().await;
    let aksk = Credentials::AccessKey {
        access_key: AK.into(),
        secret_key: SK.into(),
        security_token: None,
    };
    let outcome = client()
        .reset(&request(&sim.url(), "t1", Some(7)), &aksk)
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::Succeeded, "{outcome:?}");
    assert_eq!(sim.calls()[0].auth, AuthKind::AccessKey);
    assert_eq!(sim.calls()[0].date_from, Some(7));

    sim.add_temporary_access_key("AKTEMP0001", "sk-temp-0001", SECURITY_TOKEN);
    let temporary = Credentials::AccessKey {
        access_key: "AKTEMP0001".into(),
        secret_key: "sk-temp-0001".into(),
        security_token: Some(SECURITY_TOKEN.into()),
    };
    let outcome = client()
        .reset(&request(&sim.url(), "t2", None), &temporary)
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::Succeeded, "{outcome:?}");

    let wrong = Credentials::AccessKey {
        access_key: AK.into(),
        secret_key: "sk-wrong".into(),
        security_token: None,
    };
    let outcome = client()
        .reset(&request(&sim.url(), "t3", None), &wrong)
        .await;
    assert_eq!(
        classify(&outcome),
        OutcomeClass::CredentialsRejected,
        "{outcome:?}"
    );
    let ResetOutcome::HttpError { error_code, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(error_code, "APIGW.0301");
    assert_no_secret(&outcome);
    assert_eq!(sim.executed_calls().len(), 2);
    assert_eq!(sim.calls().len(), 3, "no retry after a 401 with AK/SK");
}

#[tokio::test]
async fn iam_tokens_are_exchanged_once_and_cached() {
    let sim = simulator().await;
    let client = iam_client(&sim.url());
    let creds = password(&sim);
    for task in ["a", "b", "c"] {
        let outcome = client.reset(&request(&sim.url(), task, None), &creds).await;
        assert_eq!(classify(&outcome), OutcomeClass::Succeeded, "{outcome:?}");
    }
    assert_eq!(sim.iam_calls(), 1);
    assert!(sim.calls().iter().all(|c| c.auth == AuthKind::IamToken));
    // A clone shares the cache; a different project needs its own token.
    let clone = client.clone();
    let _ = clone.reset(&request(&sim.url(), "d", None), &creds).await;
    assert_eq!(sim.iam_calls(), 1);
    let mut other_project = request(&sim.url(), "e", None);
    other_project.project_id = "otherproject".into();
    let _ = clone.reset(&other_project, &creds).await;
    assert_eq!(sim.iam_calls(), 2);
    assert!(!format!("{client:?}").contains(PASSWORD));
}

#[tokio::test]
async fn concurrent_callers_share_one_iam_exchange() {
    let sim = simulator().await;
    sim.set_latency(Duration::from_millis(200));
    let client = iam_client(&sim.url());
    let creds = Arc::new(password(&sim));
    let url = sim.url();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, creds, url) = (client.clone(), Arc::clone(&creds), url.clone());
        tasks.push(tokio::spawn(async move {
            client
                .reset(&request(&url, &format!("t{i}"), None), &creds)
                .await
        }));
    }
    for task in tasks {
        let outcome = task.await.unwrap();
        assert_eq!(classify(&outcome), OutcomeClass::Succeeded, "{outcome:?}");
    }
    assert_eq!(sim.iam_calls(), 1);
    assert_eq!(sim.executed_calls().len(), 8);
}

#[tokio::test]
async fn a_401_drops_the_cached_token_and_retries_once() {
    let sim = simulator().await;
    let client = iam_client(&sim.url());
    let creds = password(&sim);
    let first = client.reset(&request(&sim.url(), "t", None), &creds).await;
    assert_eq!(classify(&first), OutcomeClass::Succeeded);
    sim.expire_tokens();
    let second = client.reset(&request(&sim.url(), "t", None), &creds).await;
    assert_eq!(classify(&second), OutcomeClass::Succeeded, "{second:?}");
    assert_eq!(sim.iam_calls(), 2);
    let statuses: Vec<Option<u16>> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(200), Some(401), Some(200)]);

    // Two 401s in a row: one refresh only, then the 401 stands.
    sim.script("u", vec![Step::Unauthorized, Step::Unauthorized]);
    let refused = client.reset(&request(&sim.url(), "u", None), &creds).await;
    assert_eq!(
        classify(&refused),
        OutcomeClass::CredentialsRejected,
        "{refused:?}"
    );
    assert_eq!(sim.calls().iter().filter(|c| c.task_id == "u").count(), 2);
    assert_eq!(sim.iam_calls(), 3);
    assert_no_secret(&refused);
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_they_expire() {
    let sim = RomaSimulator::start(RomaConfig {
        token_ttl: Duration::from_secs(2),
        ..RomaConfig::default()
    })
    .await
    .unwrap();
    sim.add_user("acme", "alice", PASSWORD);
    let client = iam_client(&sim.url());
    let creds = password(&sim);
    let _ = client.reset(&request(&sim.url(), "t", None), &creds).await;
    let _ = client.reset(&request(&sim.url(), "t", None), &creds).await;
    assert_eq!(sim.iam_calls(), 1, "reused while fresh");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = client.reset(&request(&sim.url(), "t", None), &creds).await;
    assert_eq!(classify(&late), OutcomeClass::Succeeded);
    assert_eq!(
        sim.iam_calls(),
        2,
        "refreshed in the last part of its lifetime"
    );
    assert!(
        sim.calls().iter().all(|c| c.status == Some(200)),
        "never sent an expired token"
    );
}

#[tokio::test]
async fn iam_refusals_and_outages_are_not_resets() {
    let sim = simulator().await;
    let wrong = Credentials::Password {
        username: "alice".into(),
        password: "wrong-PASSWORD-SECRET".into(),
        domain_name: "acme".into(),
        iam_endpoint: Some(Url::parse(&sim.url()).unwrap()),
    };
    let outcome = iam_client(&sim.url())
        .reset(&request(&sim.url(), "t", None), &wrong)
        .await;
    match &outcome {
        ResetOutcome::CredentialsRejected {
            http_status,
            error_code,
            error_message,
            ..
        } => {
            assert_eq!(*http_status, Some(401));
            assert_eq!(error_code, "IamRefused");
            assert_eq!(error_message, "IAM refused the credentials (HTTP 401)");
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{outcome:?}").contains("wrong-PASSWORD-SECRET"));

    let port = closed_port().await;
    let down = Credentials::Password {
        username: "alice".into(),
        password: PASSWORD.into(),
        domain_name: "acme".into(),
        iam_endpoint: Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
    };
    let outcome = iam_client(&format!("http://127.0.0.1:{port}"))
        .reset(&request(&sim.url(), "t", None), &down)
        .await;
    assert!(
        matches!(outcome, ResetOutcome::NotSent { .. }),
        "{outcome:?}"
    );
    assert_eq!(classify(&outcome), OutcomeClass::Retryable);

    let strict = RomaClient::new(ClientConfig {
        insecure_allow_http: false,
        ..config()
    })
    .unwrap();
    // An https ROMA endpoint with a plain http IAM endpoint: refused before anything is sent.
    let outcome = strict
        .reset(&request("https://127.0.0.1:1", "t", None), &password(&sim))
        .await;
    // Issue 13.4: a configuration error, not a refusal of the credentials.
    assert!(
        matches!(&outcome, ResetOutcome::NotSent { reason } if reason.contains("is not https (--insecure-allow-http allows it); no password was sent")),
        "{outcome:?}"
    );
    assert_ne!(classify(&outcome), OutcomeClass::CredentialsRejected);
    assert!(sim.calls().is_empty(), "no reset call without a token");
    // A plain http ROMA endpoint does not make a plain http IAM acceptable: that takes
    // insecure mode (and the IAM allow-list).
    let outcome = strict
        .reset(&request(&sim.url(), "t", None), &password(&sim))
        .await;
    assert!(
        matches!(&outcome, ResetOutcome::NotSent { reason } if reason.contains("is not https")),
        "{outcome:?}"
    );
    assert!(sim.calls().is_empty());
}

#[tokio::test]
async fn connection_refused_is_not_sent_and_a_timeout_is_ambiguous() {
    let port = closed_port().await;
    let outcome = client()
        .reset(
            &request(&format!("http://127.0.0.1:{port}"), "t", None),
            &token(),
        )
        .await;
    assert!(
        matches!(outcome, ResetOutcome::NotSent { .. }),
        "{outcome:?}"
    );
    assert_eq!(classify(&outcome), OutcomeClass::Retryable);

    let sim = simulator().await;
    sim.script(
        "slow",
        vec![Step::delay(Duration::from_millis(1500), Step::Succeed)],
    );
    let impatient = RomaClient::new(ClientConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    })
    .unwrap();
    let started = Instant::now();
    let outcome = impatient
        .reset(&request(&sim.url(), "slow", None), &token())
        .await;
    assert!(started.elapsed() < Duration::from_millis(1400));
    let ResetOutcome::Ambiguous { reason } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("timed out"), "{reason}");
    // It did run on the other side: exactly why it is ambiguous.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sim.executed_calls().len(), 1);
}

#[tokio::test]
async fn bodies_are_read_up_to_the_cap() {
    let sim = simulator().await;
    let padding = "x".repeat(70 * 1024);
    let big = format!(r#"{{"error_code":"FDI.9999","error_msg":"{padding}"}}"#);
    let small = r#"{"error_code":"FDI.9999","error_msg":"short"}"#.to_owned();
    sim.script(
        "t",
        vec![
            Step::Raw {
                status: 500,
                content_type: "application/json".into(),
                body: big,
            },
            Step::Raw {
                status: 500,
                content_type: "application/json".into(),
                body: small,
            },
        ],
    );
    let big = client()
        .reset(&request(&sim.url(), "t", None), &token())
        .await;
    let small = client()
        .reset(&request(&sim.url(), "t", None), &token())
        .await;
    // Cut at 64 KiB the JSON no longer parses: not a service error any more.
    assert!(
        matches!(
            big,
            ResetOutcome::HttpError {
                structured: false,
                ..
            }
        ),
        "{big:?}"
    );
    assert!(
        matches!(
            small,
            ResetOutcome::HttpError {
                structured: true,
                ..
            }
        ),
        "{small:?}"
    );
    let ResetOutcome::HttpError { error_message, .. } = &big else {
        unreachable!()
    };
    assert!(error_message.chars().count() <= 256);

    // A body without end: the client stops at the cap, long before its timeout. A 200 that
    // is not the documented success body says nothing about the reset: ambiguous.
    let endless = RawServer::start(|_| {
        Reply::Endless("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".into())
    })
    .await;
    let started = Instant::now();
    let outcome = client()
        .reset(&request(&endless.url(), "t", None), &token())
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::Ambiguous, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = RawServer::start(|_| Reply::http(200, &[], r#"{"message":"stolen"}"#)).await;
    let target = format!("{}/steal", elsewhere.url());
    let redirecting =
        RawServer::start(move |_| Reply::http(307, &[("Location", &target)], "")).await;
    let outcome = client()
        .reset(&request(&redirecting.url(), "t", None), &token())
        .await;
    assert_eq!(outcome.http_status(), Some(307));
    assert_eq!(classify(&outcome), OutcomeClass::Rejected);
    assert_eq!(
        elsewhere
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn echoed_secrets_never_reach_the_outcome() {
    // A misbehaving proxy that echoes the request, headers and all, in its error page.
    let echo = RawServer::start(|request| {
        let body = format!(
            r#"{{"error_code":"PROXY.{TOKEN}","error_msg":"{}"}}"#,
            request.replace(['\r', '\n', '"'], " ")
        );
        Reply::http(400, &[("X-Request-Id", TOKEN)], &body)
    })
    .await;
    let outcome = client()
        .reset(&request(&echo.url(), "t", None), &token())
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::Rejected);
    assert_no_secret(&outcome);
    assert!(format!("{outcome:?}").contains("[REDACTED]"));

    let sim = simulator().await;
    let echo_iam = RawServer::start(|request| {
        let body = format!(
            r#"{{"error_code":"E","error_msg":"{}"}}"#,
            request.replace(['\r', '\n', '"'], " ")
        );
        Reply::http(403, &[], &body)
    })
    .await;
    let creds = Credentials::Password {
        username: "alice".into(),
        password: PASSWORD.into(),
        domain_name: "acme".into(),
        iam_endpoint: Some(Url::parse(&echo_iam.url()).unwrap()),
    };
    let outcome = iam_client(&echo_iam.url())
        .reset(&request(&sim.url(), "t", None), &creds)
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::CredentialsRejected);
    assert_no_secret(&outcome);
}

#[tokio::test]
async fn https_with_a_custom_ca() {
    let sim = simulator().await;
    let pki = test_pki();
    let front = TlsFront::start(Arc::clone(&pki.server_config), sim.addr()).await;
    let ca_file = temp_file("ca.pem", &pki.ca_pem);

    let trusting = RomaClient::new(ClientConfig {
        ca_file: Some(ca_file.clone()),
        insecure_allow_http: false,
        ..config()
    })
    .unwrap();
    let outcome = trusting
        .reset(&request(&front.url(), "t", None), &token())
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::Succeeded, "{outcome:?}");
    let aksk = Credentials::AccessKey {
        access_key: AK.into(),
        secret_key: SK.into(),
        security_token: None,
    };
    let signed = trusting
        .reset(&request(&front.url(), "t", None), &aksk)
        .await;
    assert_eq!(classify(&signed), OutcomeClass::Succeeded, "{signed:?}");

    // Without the CA the handshake fails before anything is sent.
    let outcome = client()
        .reset(&request(&front.url(), "t", None), &token())
        .await;
    assert!(
        matches!(outcome, ResetOutcome::NotSent { .. }),
        "{outcome:?}"
    );
    assert_eq!(sim.calls().len(), 2);

    let bad = temp_file("bad.pem", "not a certificate");
    assert!(
        RomaClient::new(ClientConfig {
            ca_file: Some(bad.clone()),
            ..config()
        })
        .is_err()
    );
    let missing = std::env::temp_dir().join("taskreset-no-such-ca.pem");
    let err = RomaClient::new(ClientConfig {
        ca_file: Some(missing),
        ..config()
    })
    .unwrap_err();
    assert!(err.to_string().contains("cannot read CA file"), "{err}");
    let _ = std::fs::remove_file(ca_file);
    let _ = std::fs::remove_file(bad);
}

#[tokio::test]
async fn invalid_ids_never_leave_the_process() {
    let sim = simulator().await;
    let mut bad = request(&sim.url(), "t", None);
    bad.task_id = "../../other".into();
    let outcome = client().reset(&bad, &token()).await;
    assert!(
        matches!(&outcome, ResetOutcome::NotSent { reason } if reason.contains("taskId")),
        "{outcome:?}"
    );
    assert!(sim.calls().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Issue 11: hostile and unlucky answers (points 6, 7, 8, 12, 13).

/// A client whose IAM allow-list admits `iam` (a loopback server standing in for IAM).
fn iam_client(iam: &str) -> RomaClient {
    RomaClient::new(ClientConfig {
        iam_endpoints: IamEndpointPolicy::new(vec![iam.to_owned()], true).expect("pattern"),
        ..config()
    })
    .expect("client")
}

/// Password credentials whose IAM endpoint is `iam`.
fn password_at(iam: &str, password: &str) -> Credentials {
    Credentials::Password {
        username: "alice".into(),
        password: password.into(),
        domain_name: "acme".into(),
        iam_endpoint: Some(Url::parse(iam).unwrap()),
    }
}

/// No run of `window` characters of `secret` (nor of its whitespace-collapsed form) in what
/// the outcome shows.
fn assert_no_fragment(outcome: &ResetOutcome, secret: &str, window: usize) {
    let shown = format!("{outcome:?} {outcome}");
    let collapsed: String = secret.split_whitespace().collect::<Vec<_>>().join(" ");
    for form in [secret, collapsed.as_str()] {
        let chars: Vec<char> = form.chars().collect();
        for start in 0..chars.len().saturating_sub(window - 1) {
            let piece: String = chars[start..start + window].iter().collect();
            assert!(
                !shown.contains(&piece),
                "{piece:?} of a secret leaked: {shown}"
            );
        }
    }
}

/// An IAM and ROMA stand-in on one raw server: `iam` answers `POST /v3/auth/tokens`, `roma`
/// every other request.
async fn iam_and_roma(
    iam: impl Fn(&str) -> Reply + Send + Sync + 'static,
    roma: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> RawServer {
    RawServer::start(move |request| {
        if request.starts_with("POST /v3/auth/tokens") {
            iam(request)
        } else {
            roma(request)
        }
    })
    .await
}

fn iam_ok(token: &str) -> Reply {
    Reply::http(
        201,
        &[
            ("X-Subject-Token", token),
            ("Content-Type", "application/json"),
        ],
        r#"{"token":{"expires_at":"2999-01-01T00:00:00.000000Z"}}"#,
    )
}

fn resets(server: &RawServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.contains("/reset HTTP/1.1"))
        .count()
}

#[tokio::test]
async fn only_the_documented_fdi_error_body_is_a_service_error() {
    // (status, body, class): the documented bodies and look-alikes of them.
    let rows: [(u16, &str, OutcomeClass); 14] = [
        (
            500,
            r#"{"error_code":"FDI.3000","error_msg":"Internal server error."}"#,
            OutcomeClass::Retryable,
        ),
        (
            400,
            r#"{"error_code":"FDI.3150","error_msg":"The task list is empty."}"#,
            OutcomeClass::Rejected,
        ),
        (
            404,
            r#"{"error_code":"FDI.3083","error_msg":"One or more scheduled tasks are not configured with scheduled plans."}"#,
            OutcomeClass::Rejected,
        ),
        (
            429,
            r#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 second","request_id":"r1"}"#,
            OutcomeClass::Retryable,
        ),
        (
            200,
            r#"{"message": "Reset Success"}"#,
            OutcomeClass::Succeeded,
        ),
        // A generic proxy's 500: not the service saying it did nothing.
        (
            500,
            r#"{"code":"InternalError","message":"upstream connect error"}"#,
            OutcomeClass::Ambiguous,
        ),
        (
            500,
            r#"{"error":{"code":500,"message":"upstream reset"}}"#,
            OutcomeClass::Ambiguous,
        ),
        (
            503,
            r#"{"errorCode":"SVC.0001","errorMsg":"busy"}"#,
            OutcomeClass::Ambiguous,
        ),
        (
            502,
            r#"{"data":{"error_code":"FDI.3000","error_msg":"nested"}}"#,
            OutcomeClass::Ambiguous,
        ),
        (
            500,
            r#"{"error_code":500,"error_msg":"a number is not a code"}"#,
            OutcomeClass::Ambiguous,
        ),
        (
            500,
            r#"{"error_code":"E","error_msg":"too short to be a code"}"#,
            OutcomeClass::Ambiguous,
        ),
        // A 200 that is not the documented success body did not say the reset was done.
        (
            200,
            r#"{"error_code":"FDI.3150","error_msg":"The task list is empty."}"#,
            OutcomeClass::Ambiguous,
        ),
        (200, "", OutcomeClass::Ambiguous),
        (
            200,
            "<html><body>Welcome to nginx!</body></html>",
            OutcomeClass::Ambiguous,
        ),
    ];
    let client = client();
    for (status, body, class) in rows {
        let server = RawServer::start(move |_| {
            Reply::http(status, &[("Content-Type", "application/json")], body)
        })
        .await;
        let outcome = client
            .reset(&request(&server.url(), "t", None), &token())
            .await;
        assert_eq!(classify(&outcome), class, "{status} {body} -> {outcome:?}");
        assert_eq!(server.requests().len(), 1, "one POST per reset");
        if class == OutcomeClass::Ambiguous && status == 200 {
            assert!(
                outcome.to_string().contains("200"),
                "the status says what came back: {outcome}"
            );
        }
    }
}

#[tokio::test]
async fn redaction_covers_long_tokens_escapes_and_whitespace_in_roma_answers() {
    // A real IAM token is several KB; an ordinary server's "header too long" 400 quotes it.
    let long_token: String = (0..6000)
        .map(|i| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [(i * 7 + i / 62) % 62],
            )
        })
        .collect();
    let quoted = long_token.clone();
    let server = RawServer::start(move |_| {
        Reply::http(
            400,
            &[("Content-Type", "text/plain")],
            &format!("400 Request Header Or Cookie Too Large: X-Auth-Token: {quoted}"),
        )
    })
    .await;
    let outcome = client()
        .reset(
            &request(&server.url(), "t", None),
            &Credentials::Token(long_token.as_str().into()),
        )
        .await;
    assert_no_fragment(&outcome, &long_token, 16);
    let quoted = long_token.clone();
    let json = RawServer::start(move |_| {
        Reply::http(
            400,
            &[("Content-Type", "application/json")],
            &format!(r#"{{"error_code":"APIGW.0400","error_msg":"header too long: {quoted}"}}"#),
        )
    })
    .await;
    let outcome = client()
        .reset(
            &request(&json.url(), "t", None),
            &Credentials::Token(long_token.as_str().into()),
        )
        .await;
    assert_no_fragment(&outcome, &long_token, 16);

    // Escaped forms of a token: JSON (in a non-JSON body and doubly escaped in a JSON one),
    // URL-encoding, and the \u form of every character.
    let odd_token = r#"tok"en\SECRET/0005+%x"#;
    let json_escaped = r#"tok\"en\\SECRET\/0005+%x"#.to_owned();
    let url_encoded = "tok%22en%5CSECRET%2F0005%2B%25x".to_owned();
    let unicode: String = odd_token
        .chars()
        .map(|c| format!("\\u{:04x}", u32::from(c)))
        .collect();
    let bodies = [
        format!("echo: {{\"x-auth-token\": \"{json_escaped}\"}}"),
        format!(
            r#"{{"error_code":"PROXY.0001","error_msg":"headers: {{\"x-auth-token\": \"{}\"}}"}}"#,
            json_escaped.replace('\\', "\\\\").replace('"', "\\\"")
        ),
        format!("GET /login?token={url_encoded}&next=/"),
        format!(
            "GET /login?token={}&next=/",
            url_encoded.to_lowercase().replace("secret", "SECRET")
        ),
        format!(r#"{{"error_code":"PROXY.0001","error_msg":"token {unicode}"}}"#),
    ];
    for body in bodies {
        let server = RawServer::start(move |_| {
            Reply::http(400, &[("Content-Type", "application/json")], &body)
        })
        .await;
        let outcome = client()
            .reset(
                &request(&server.url(), "t", None),
                &Credentials::Token(odd_token.into()),
            )
            .await;
        assert_no_fragment(&outcome, "SECRET/0005", 11);
        assert_no_fragment(&outcome, "SECRET\\/0005", 12);
        assert_no_fragment(&outcome, "SECRET%2F0005", 13);
        assert_no_fragment(&outcome, "SECRET%2f0005", 13);
    }

    // Whitespace: a password with a double space quoted as is, and one with a single space
    // quoted across a line break (the shown text collapses whitespace).
    for (secret, quoted) in [
        ("pass  word-SECRET-0006", "pass  word-SECRET-0006"),
        ("pass word-SECRET-0007", "pass\r\n\tword-SECRET-0007"),
    ] {
        let body = format!("you sent the password {quoted} to the wrong place");
        let server = iam_and_roma(
            |_| iam_ok("iam-token-0001"),
            move |_| Reply::http(400, &[("Content-Type", "text/plain")], &body),
        )
        .await;
        let outcome = iam_client(&server.url())
            .reset(
                &request(&server.url(), "t", None),
                &password_at(&server.url(), secret),
            )
            .await;
        assert_eq!(resets(&server), 1, "{outcome:?}");
        assert_no_fragment(&outcome, secret, 12);
    }
}

#[tokio::test]
async fn iam_answers_are_never_copied_out() {
    let secret = r#"pass  wo"rd\SECRET-0008"#;
    let escaped = r#"pass  wo\"rd\\SECRET-0008"#;
    let body = format!(
        r#"{{"error":{{"code":401,"message":"HOSTILE-TEXT you sent {escaped} and {secret}","title":"Unauthorized"}}}}"#
    );
    let server = iam_and_roma(
        move |_| {
            Reply::http(
                401,
                &[
                    ("Content-Type", "application/json"),
                    ("X-Request-Id", "iam-req-0001"),
                ],
                &body,
            )
        },
        |_| Reply::http(200, &[], r#"{"message":"Reset Success"}"#),
    )
    .await;
    let outcome = iam_client(&server.url())
        .reset(
            &request(&server.url(), "t", None),
            &password_at(&server.url(), secret),
        )
        .await;
    let ResetOutcome::CredentialsRejected {
        http_status,
        error_message,
        request_id,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(*http_status, Some(401));
    assert_eq!(error_message, "IAM refused the credentials (HTTP 401)");
    assert_eq!(request_id.as_deref(), Some("iam-req-0001"));
    assert!(!outcome.to_string().contains("HOSTILE-TEXT"), "{outcome}");
    assert_no_fragment(&outcome, secret, 10);
    assert_eq!(resets(&server), 0);

    // An IAM outage: what happened, not what it said.
    let down = iam_and_roma(
        |_| Reply::http(503, &[], "<html>HOSTILE-TEXT maintenance</html>"),
        |_| Reply::http(200, &[], r#"{"message":"Reset Success"}"#),
    )
    .await;
    let outcome = iam_client(&down.url())
        .reset(
            &request(&down.url(), "t", None),
            &password_at(&down.url(), PASSWORD),
        )
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::Retryable, "{outcome:?}");
    assert!(outcome.to_string().contains("HTTP 503"), "{outcome}");
    assert!(
        !format!("{outcome:?}").contains("HOSTILE-TEXT"),
        "{outcome:?}"
    );

    // The gateway's 401 body is not copied either; its documented code is.
    let roma = RawServer::start(|_| {
        Reply::http(
            401,
            &[("Content-Type", "application/json"), ("X-Request-Id", "gw-1")],
            r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: HOSTILE-TEXT","request_id":"gw-1"}"#,
        )
    })
    .await;
    let outcome = client()
        .reset(&request(&roma.url(), "t", None), &token())
        .await;
    assert_eq!(classify(&outcome), OutcomeClass::CredentialsRejected);
    assert!(
        !format!("{outcome:?}").contains("HOSTILE-TEXT"),
        "{outcome:?}"
    );
    assert!(
        matches!(&outcome, ResetOutcome::HttpError { error_code, .. } if error_code == "APIGW.0301"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_iam_endpoint_outside_the_allow_list_never_gets_the_password() {
    let sim = simulator().await;
    let thief = RawServer::start(|_| iam_ok("stolen-0001")).await;
    let credentials = password_at(&thief.url(), PASSWORD);
    let outcome = client()
        .reset(&request(&sim.url(), "t", None), &credentials)
        .await;
    // Issue 13.4: the allow-list is configuration; nobody rejected the credentials.
    assert!(
        matches!(&outcome, ResetOutcome::NotSent { reason } if reason.ends_with("no password was sent")),
        "{outcome:?}"
    );
    assert_eq!(classify(&outcome), OutcomeClass::Retryable);
    let checked =
        client().check_iam_endpoint(&request(&sim.url(), "t", None).endpoint, &credentials);
    assert!(
        matches!(&checked, Err(IamEndpointError::NotHttps { iam }) if iam == &format!("{}/", thief.url())),
        "{checked:?}"
    );
    assert!(thief.requests().is_empty(), "the password went out");
    assert!(sim.calls().is_empty());
    assert_no_secret(&outcome);

    // User information in an IAM endpoint is refused when the Secret is read.
    let data = |endpoint: &str| {
        [
            ("username", "alice"),
            ("password", PASSWORD),
            ("domainName", "acme"),
            ("iamEndpoint", endpoint),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect::<std::collections::BTreeMap<_, _>>()
    };
    for endpoint in [
        "https://user:pw-SECRET-9@iam.cn-north-4.myhuaweicloud.com",
        "https://user@iam.cn-north-4.myhuaweicloud.com",
        "https://:pw-SECRET-9@iam.myhuaweicloud.com",
    ] {
        let err = Credentials::from_secret_data(&data(endpoint)).expect_err(endpoint);
        assert!(!err.to_string().contains("pw-SECRET-9"), "{err}");
    }
    assert!(
        Credentials::from_secret_data(&data("https://iam.cn-north-4.myhuaweicloud.com")).is_ok()
    );
}

#[tokio::test]
async fn oversized_iam_tokens_are_refused_and_never_quoted() {
    let huge: String = "MIIhuge".chars().cycle().take(64 * 1024).collect();
    let quoted = huge.clone();
    let server = iam_and_roma(
        move |_| iam_ok(&quoted),
        |_| Reply::http(200, &[], r#"{"message":"Reset Success"}"#),
    )
    .await;
    let outcome = iam_client(&server.url())
        .reset(
            &request(&server.url(), "t", None),
            &password_at(&server.url(), PASSWORD),
        )
        .await;
    assert_eq!(
        classify(&outcome),
        OutcomeClass::CredentialsRejected,
        "{outcome:?}"
    );
    assert_eq!(resets(&server), 0, "no reset with an oversized token");
    assert_no_fragment(&outcome, &huge, 16);
    assert!(outcome.to_string().len() < 1024, "{outcome}");
}

#[tokio::test]
async fn a_token_with_a_line_break_is_a_credentials_problem_without_a_request() {
    let data: std::collections::BTreeMap<String, Vec<u8>> = [(
        "token".to_owned(),
        b"first-line-SECRET\nsecond-line-SECRET\n".to_vec(),
    )]
    .into_iter()
    .collect();
    let err = Credentials::from_secret_data(&data).expect_err("a token is one line");
    let text = err.to_string();
    assert!(
        text.contains("token") && text.contains("line break"),
        "{text}"
    );
    assert!(!text.contains("SECRET"), "{text}");

    // Built by hand (not from a Secret): still refused before any request.
    let server =
        RawServer::start(|_| Reply::http(200, &[], r#"{"message":"Reset Success"}"#)).await;
    let outcome = client()
        .reset(
            &request(&server.url(), "t", None),
            &Credentials::Token("first-line-SECRET\nsecond-line-SECRET".into()),
        )
        .await;
    assert_eq!(
        classify(&outcome),
        OutcomeClass::CredentialsRejected,
        "{outcome:?}"
    );
    assert!(!outcome.to_string().contains("SECRET"), "{outcome}");
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}
