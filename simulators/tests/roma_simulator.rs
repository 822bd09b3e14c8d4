//! The ROMA simulator over real HTTP on loopback: the reference SDK vectors, requests signed
//! by roma-signer, tokens, IAM, scripts, the control API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use roma_signer::{HEADER_PROJECT_ID, HEADER_SDK_DATE, HEADER_SECURITY_TOKEN, Request};
use serde_json::{Value, json};
use taskreset_simulators::roma::{AuthKind, RomaConfig, RomaHandle, RomaSimulator, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// The reference inputs of shared/reference/roma-fdi.md (produced by the official SDK).
const AK: &str = "HPUAEXAMPLEAK0000001";
const SK: &str = "ExampleSecretKey0000000000000000000000001";
const REF_DATE: &str = "20210827T083000Z";
const REF_HOST: &str = "roma.cn-north-4.myhuaweicloud.com";
const PROJECT: &str = "c53626012ba84727b938ca8bf03108ef";
const INSTANCE: &str = "ce9dfd5c-b3d1-4c60-a7c8-0d1a1a5c8e2b";
const TASK: &str = "1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6";
const V1_BODY: &str = r#"{"date_from":1630052714000}"#;
const V1_SIGNATURE: &str = "0df3dd5bd779520125b7fe0e6eb8f7287d8ba4ec01c4cb101d4d1bcd6379217f";
const V2_SIGNATURE: &str = "00868ef5f0c42987648da9fe3a3d2ba8a88b2184bfcd17f516a7b80834a8f709";
const V3_BODY: &str = r#"{"date_from": 1630052714000}"#;
const V3_SIGNATURE: &str = "5043be10f7bd07e13c189fb2fca5ef1924530058fb7b6a3752a7892b55e950be";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON body: {}", self.body))
    }
}

/// Send one request over a fresh connection, exactly as given (our own Host header), and
/// read the whole answer. `None` when the server closed the connection without answering.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Option<Answer> {
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        bytes
    };
    let bytes = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("answers in time");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

fn reset_path(project: &str, instance: &str, task: &str) -> String {
    format!("/v2/{project}/fdi/instances/{instance}/multi-tasks/{task}/reset")
}

fn h(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// The headers of the reference vectors, with the SDK's signature.
fn reference_headers(signature: &str, security_token: Option<&str>) -> Vec<(String, String)> {
    let mut signed = "content-type;host;x-project-id;x-sdk-date".to_owned();
    let mut headers = vec![
        h("Content-Type", "application/json;charset=UTF-8"),
        h("Host", REF_HOST),
        h(HEADER_PROJECT_ID, PROJECT),
        h(HEADER_SDK_DATE, REF_DATE),
    ];
    if let Some(token) = security_token {
        signed.push_str(";x-security-token");
        headers.push(h(HEADER_SECURITY_TOKEN, token));
    }
    headers.push(h(
        "Authorization",
        &format!("SDK-HMAC-SHA256 Access={AK}, SignedHeaders={signed}, Signature={signature}"),
    ));
    headers
}

async fn start(config: RomaConfig) -> RomaHandle {
    RomaSimulator::start(config)
        .await
        .expect("simulator starts")
}

fn reference_time() -> SystemTime {
    roma_signer::parse_sdk_date(REF_DATE).expect("date")
}

#[tokio::test]
async fn the_reference_vectors_of_the_official_sdk_are_accepted() {
    let sim = start(RomaConfig::default()).await;
    sim.freeze_clock(Some(reference_time()));
    let path = reset_path(PROJECT, INSTANCE, TASK);

    sim.add_access_key(AK, SK);
    let v1 = raw(
        sim.addr(),
        "POST",
        &path,
        &reference_headers(V1_SIGNATURE, None),
        V1_BODY,
    )
    .await
    .expect("answer");
    assert_eq!(v1.status, 200, "{}", v1.body);
    assert_eq!(v1.json(), json!({"message": "Reset Success"}));
    let v3 = raw(
        sim.addr(),
        "POST",
        &path,
        &reference_headers(V3_SIGNATURE, None),
        V3_BODY,
    )
    .await
    .expect("answer");
    assert_eq!(v3.status, 200, "{}", v3.body);

    sim.add_temporary_access_key(AK, SK, "ExampleSecurityToken0001");
    let v2 = raw(
        sim.addr(),
        "POST",
        &path,
        &reference_headers(V2_SIGNATURE, Some("ExampleSecurityToken0001")),
        V1_BODY,
    )
    .await
    .expect("answer");
    assert_eq!(v2.status, 200, "{}", v2.body);

    let calls = sim.calls();
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(
            (
                call.project_id.as_str(),
                call.instance_id.as_str(),
                call.task_id.as_str()
            ),
            (PROJECT, INSTANCE, TASK)
        );
        assert_eq!(call.date_from, Some(1_630_052_714_000));
        assert_eq!(call.auth, AuthKind::AccessKey);
        assert!(call.executed && !call.ambiguous);
        assert_eq!(call.status, Some(200));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn changed_requests_wrong_keys_and_stale_dates_are_refused() {
    let sim = start(RomaConfig::default()).await;
    sim.freeze_clock(Some(reference_time()));
    sim.add_access_key(AK, SK);
    let path = reset_path(PROJECT, INSTANCE, TASK);
    let headers = reference_headers(V1_SIGNATURE, None);

    let tampered = raw(
        sim.addr(),
        "POST",
        &path,
        &headers,
        r#"{"date_from":1630052714001}"#,
    )
    .await
    .expect("answer");
    assert_eq!(tampered.status, 401);
    assert_eq!(tampered.json()["error_code"], "APIGW.0301");
    assert!(tampered.json()["request_id"].is_string());

    let other_task = reset_path(PROJECT, INSTANCE, "another-task");
    let moved = raw(sim.addr(), "POST", &other_task, &headers, V1_BODY)
        .await
        .expect("answer");
    assert_eq!(moved.status, 401);

    // Temporary credentials without their security token.
    sim.add_temporary_access_key(AK, SK, "ExampleSecurityToken0001");
    let no_token = raw(sim.addr(), "POST", &path, &headers, V1_BODY)
        .await
        .expect("answer");
    assert_eq!(no_token.status, 401);
    sim.add_access_key(AK, SK);

    // 16 minutes later the same signature has expired.
    sim.freeze_clock(Some(reference_time() + Duration::from_secs(16 * 60)));
    let stale = raw(sim.addr(), "POST", &path, &headers, V1_BODY)
        .await
        .expect("answer");
    assert_eq!(stale.status, 401);
    assert_eq!(stale.json()["error_code"], "APIGW.0303");
    // 14 minutes early is still fine.
    sim.freeze_clock(Some(reference_time() - Duration::from_secs(14 * 60)));
    let early = raw(sim.addr(), "POST", &path, &headers, V1_BODY)
        .await
        .expect("answer");
    assert_eq!(early.status, 200, "{}", early.body);

    let unknown = reference_headers(V1_SIGNATURE, None)
        .into_iter()
        .map(|(n, v)| (n, v.replace(AK, "UNKNOWNAK")))
        .collect::<Vec<_>>();
    let refused = raw(sim.addr(), "POST", &path, &unknown, V1_BODY)
        .await
        .expect("answer");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error_code"], "APIGW.0301");

    let executed = sim.executed_calls();
    assert_eq!(executed.len(), 1, "only the good request executed");
    assert!(
        sim.calls()
            .iter()
            .filter(|c| !c.executed)
            .all(|c| c.status == Some(401))
    );
}

/// Sign a reset for the simulator at the current time with roma-signer.
fn signed_headers(sim: &RomaHandle, path: &str, body: &str, sk: &str) -> Vec<(String, String)> {
    let request = Request {
        method: "POST",
        path,
        query: vec![],
        headers: vec![
            h("Content-Type", "application/json;charset=UTF-8"),
            h(HEADER_PROJECT_ID, "p1"),
        ],
        body: body.as_bytes(),
    };
    let host = sim.addr().to_string();
    roma_signer::sign(&request, &host, "AK-OURS", sk, SystemTime::now())
        .expect("signs")
        .headers
}

#[tokio::test]
async fn requests_signed_by_roma_signer_are_verified_and_failures_lock_the_key() {
    let sim = start(RomaConfig {
        lock_duration: Duration::from_millis(400),
        ..RomaConfig::default()
    })
    .await;
    sim.add_access_key("AK-OURS", "sk-ours-0001");
    let path = reset_path("p1", "i1", "t1");
    let good = signed_headers(&sim, &path, "{}", "sk-ours-0001");
    let ok = raw(sim.addr(), "POST", &path, &good, "{}")
        .await
        .expect("answer");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.header("x-request-id").is_some_and(|id| !id.is_empty()));

    for _ in 0..5 {
        let bad = signed_headers(&sim, &path, "{}", "wrong-secret");
        let refused = raw(sim.addr(), "POST", &path, &bad, "{}")
            .await
            .expect("answer");
        assert_eq!(refused.status, 401);
    }
    // Locked: even a correct signature is refused now.
    let good = signed_headers(&sim, &path, "{}", "sk-ours-0001");
    let locked = raw(sim.addr(), "POST", &path, &good, "{}")
        .await
        .expect("answer");
    assert_eq!(locked.status, 401);
    assert!(
        locked.json()["error_msg"]
            .as_str()
            .unwrap()
            .contains("locked")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let good = signed_headers(&sim, &path, "{}", "sk-ours-0001");
    let unlocked = raw(sim.addr(), "POST", &path, &good, "{}")
        .await
        .expect("answer");
    assert_eq!(unlocked.status, 200, "{}", unlocked.body);
    assert_eq!(sim.executed_calls().len(), 2);
}

#[tokio::test]
async fn tokens_are_checked_and_can_expire() {
    let sim = start(RomaConfig::default()).await;
    sim.add_token("static-token-1");
    let path = reset_path("p1", "i1", "t1");
    let with = |token: &str| {
        vec![
            h("X-Auth-Token", token),
            h("Content-Type", "application/json"),
        ]
    };

    let ok = raw(
        sim.addr(),
        "POST",
        &path,
        &with("static-token-1"),
        r#"{"date_from":0}"#,
    )
    .await
    .expect("answer");
    assert_eq!(ok.status, 200);
    let unknown = raw(sim.addr(), "POST", &path, &with("nope"), "{}")
        .await
        .expect("answer");
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json()["error_code"], "APIGW.0301");
    let none = raw(sim.addr(), "POST", &path, &[], "{}")
        .await
        .expect("answer");
    assert_eq!(none.status, 401);

    sim.expire_tokens();
    let expired = raw(sim.addr(), "POST", &path, &with("static-token-1"), "{}")
        .await
        .expect("answer");
    assert_eq!(expired.status, 401);
    assert!(
        expired.json()["error_msg"]
            .as_str()
            .unwrap()
            .contains("token expires")
    );

    let calls = sim.calls();
    assert_eq!(calls[0].date_from, Some(0));
    assert_eq!(calls[0].auth, AuthKind::Token);
    assert_eq!(calls[2].auth, AuthKind::None);
    assert_eq!(sim.executed_calls().len(), 1);
}

fn iam_body(user: &str, password: &str, domain: &str, project: &str) -> String {
    json!({"auth": {
        "identity": {"methods": ["password"],
                     "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"id": project}}}})
    .to_string()
}

#[tokio::test]
async fn iam_issues_tokens_that_the_reset_endpoint_accepts_until_they_expire() {
    let sim = start(RomaConfig {
        token_ttl: Duration::from_millis(800),
        ..RomaConfig::default()
    })
    .await;
    sim.add_user("acme", "alice", "correct horse");
    let json_type = [h("Content-Type", "application/json;charset=utf8")];
    let issued = raw(
        sim.addr(),
        "POST",
        "/v3/auth/tokens?nocatalog=true",
        &json_type,
        &iam_body("alice", "correct horse", "acme", "p1"),
    )
    .await
    .expect("answer");
    assert_eq!(issued.status, 201, "{}", issued.body);
    let token = issued
        .header("x-subject-token")
        .expect("X-Subject-Token")
        .to_owned();
    let expires_at: jiff::Timestamp = issued.json()["token"]["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    let lifetime = SystemTime::from(expires_at)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(lifetime <= Duration::from_millis(800));

    let path = reset_path("p1", "i1", "t1");
    let ok = raw(
        sim.addr(),
        "POST",
        &path,
        &[h("X-Auth-Token", &token)],
        "{}",
    )
    .await
    .expect("answer");
    assert_eq!(ok.status, 200);
    assert_eq!(sim.calls()[0].auth, AuthKind::IamToken);

    let wrong = raw(
        sim.addr(),
        "POST",
        "/v3/auth/tokens",
        &json_type,
        &iam_body("alice", "wrong", "acme", "p1"),
    )
    .await
    .expect("answer");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["code"], 401);
    assert!(wrong.header("x-subject-token").is_none());
    let garbage = raw(sim.addr(), "POST", "/v3/auth/tokens", &json_type, "{")
        .await
        .expect("answer");
    assert_eq!(garbage.status, 400);
    assert_eq!(sim.iam_calls(), 3);

    tokio::time::sleep(Duration::from_millis(900)).await;
    let late = raw(
        sim.addr(),
        "POST",
        &path,
        &[h("X-Auth-Token", &token)],
        "{}",
    )
    .await
    .expect("answer");
    assert_eq!(late.status, 401);
    assert!(
        late.json()["error_msg"]
            .as_str()
            .unwrap()
            .contains("token expires")
    );
}

#[tokio::test]
async fn scripts_answer_per_task_then_the_default_answers() {
    let sim = start(RomaConfig::default()).await;
    sim.add_token("t");
    sim.script(
        "t1",
        vec![
            Step::task_list_empty(),
            Step::not_scheduled(),
            Step::server_error(),
            Step::ServerErrorNoBody,
            Step::Html { status: 502 },
            Step::Throttle,
            Step::Unauthorized,
            Step::Raw {
                status: 503,
                content_type: "text/plain".into(),
                body: "garbage \u{1}".into(),
            },
        ],
    );
    let path = reset_path("p1", "i1", "t1");
    let auth = [h("X-Auth-Token", "t")];
    let mut seen = Vec::new();
    for _ in 0..9 {
        let answer = raw(sim.addr(), "POST", &path, &auth, "{}")
            .await
            .expect("answer");
        seen.push((answer.status, answer.body.clone()));
    }
    let status: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert_eq!(status, [400, 404, 500, 500, 502, 429, 401, 503, 200]);
    let body = |i: usize| serde_json::from_str::<Value>(&seen[i].1).unwrap();
    assert_eq!(
        body(0),
        json!({"error_code": "FDI.3150", "error_msg": "The task list is empty."})
    );
    assert_eq!(body(1)["error_code"], "FDI.3083");
    assert_eq!(seen[3].1, "");
    assert!(seen[4].1.contains("<html>"));
    assert_eq!(body(5)["error_code"], "APIGW.0308");
    assert_eq!(body(6)["error_code"], "APIGW.0301");
    assert_eq!(seen[7].1, "garbage \u{1}");
    // Another task is untouched by t1's script.
    let other = raw(
        sim.addr(),
        "POST",
        &reset_path("p1", "i1", "t2"),
        &auth,
        "{}",
    )
    .await
    .expect("answer");
    assert_eq!(other.status, 200);
    sim.set_default(Step::Throttle);
    let throttled = raw(sim.addr(), "POST", &path, &auth, "{}")
        .await
        .expect("answer");
    assert_eq!(throttled.status, 429);
    assert_eq!(sim.executed_calls().len(), 2);
}

#[tokio::test]
async fn delays_and_dropped_connections() {
    let sim = start(RomaConfig::default()).await;
    sim.add_token("t");
    let auth = [h("X-Auth-Token", "t")];
    sim.script(
        "t1",
        vec![
            Step::delay(Duration::from_millis(300), Step::Succeed),
            Step::DropConnection,
            Step::DropAfterExecute,
        ],
    );
    let path = reset_path("p1", "i1", "t1");
    let started = Instant::now();
    let slow = raw(sim.addr(), "POST", &path, &auth, "{}")
        .await
        .expect("answer");
    assert_eq!(slow.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        raw(sim.addr(), "POST", &path, &auth, "{}").await.is_none(),
        "dropped"
    );
    assert!(
        raw(sim.addr(), "POST", &path, &auth, "{}").await.is_none(),
        "dropped"
    );
    let calls = sim.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls[0].executed && !calls[0].ambiguous);
    assert!(!calls[1].executed && calls[1].ambiguous && calls[1].status.is_none());
    assert!(calls[2].executed && calls[2].ambiguous && calls[2].status.is_none());

    sim.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    let late = raw(sim.addr(), "POST", &path, &auth, "{}")
        .await
        .expect("answer");
    assert_eq!(late.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn the_control_api_scripts_and_reports_over_http() {
    let sim = start(RomaConfig::default()).await;
    let post = |path: &'static str, body: Value| {
        let addr = sim.addr();
        async move {
            raw(
                addr,
                "POST",
                path,
                &[h("Content-Type", "application/json")],
                &body.to_string(),
            )
            .await
            .expect("answer")
        }
    };
    assert_eq!(
        post("/_sim/tokens", json!({"token": "ctl-token"}))
            .await
            .status,
        200
    );
    let scripted = post(
        "/_sim/script",
        json!({"taskId": "t9", "steps": [{"kind": "fail", "status": 400, "code": "FDI.3021", "message": "The task does not exist."}]}),
    )
    .await;
    assert_eq!(scripted.status, 200, "{}", scripted.body);
    assert_eq!(
        post(
            "/_sim/script",
            json!({"taskId": "t9", "steps": [{"kind": "nope"}]})
        )
        .await
        .status,
        400
    );

    let path = reset_path("p9", "i9", "t9");
    let auth = [h("X-Auth-Token", "ctl-token")];
    let answer = raw(sim.addr(), "POST", &path, &auth, r#"{"date_from": 5}"#)
        .await
        .expect("answer");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error_code"], "FDI.3021");

    let calls = raw(sim.addr(), "GET", "/_sim/calls", &[], "")
        .await
        .expect("answer");
    assert_eq!(calls.status, 200);
    let calls = calls.json();
    assert_eq!(calls[0]["taskId"], "t9");
    assert_eq!(calls[0]["dateFrom"], 5);
    assert_eq!(calls[0]["auth"], "token");
    assert_eq!(calls[0]["status"], 400);
    assert_eq!(calls[0]["executed"], false);
    assert!(calls[0]["at"].as_u64().unwrap() > 1_600_000_000_000);

    assert_eq!(post("/_sim/expire-tokens", json!({})).await.status, 200);
    let expired = raw(sim.addr(), "POST", &path, &auth, "{}")
        .await
        .expect("answer");
    assert_eq!(expired.status, 401);
}

#[tokio::test]
async fn unknown_apis_and_bad_bodies_get_gateway_and_service_errors() {
    let sim = start(RomaConfig::default()).await;
    sim.add_token("t");
    let auth = [h("X-Auth-Token", "t")];
    let missing = raw(
        sim.addr(),
        "POST",
        "/v2/p/fdi/instances/i/tasks/t/reset",
        &auth,
        "{}",
    )
    .await
    .expect("answer");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error_code"], "APIGW.0101");
    let get = raw(sim.addr(), "GET", &reset_path("p", "i", "t"), &auth, "")
        .await
        .expect("answer");
    assert_eq!(get.status, 404);
    let bad = raw(
        sim.addr(),
        "POST",
        &reset_path("p", "i", "t"),
        &auth,
        r#"{"date_from":-5}"#,
    )
    .await
    .expect("answer");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error_code"], "FDI.3002");
    assert!(sim.executed_calls().is_empty());
}
