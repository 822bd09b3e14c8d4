//! The simulator's endpoints: the FDI reset call, IAM's `/v3/auth/tokens`, and the `/_sim/`
//! control API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{self, GatewayError};
use super::state::{AuthKind, CallRecord, State, TokenInfo};
use super::step::Step;

/// What a handler decided: an answer, or closing the connection without one.
pub(crate) enum Answer {
    Respond(Response<Body>),
    Drop,
}

/// Route one request.
pub(crate) async fn handle(state: Arc<State>, parts: Parts, body: Bytes) -> Answer {
    let path = parts.uri.path().to_owned();
    if let Some(control) = path.strip_prefix("/_sim/") {
        return Answer::Respond(control_api(&state, &parts.method, control, &body));
    }
    let latency = state.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if path == "/v3/auth/tokens" && parts.method == Method::POST {
        let iam_latency = state.lock().iam_latency;
        if !iam_latency.is_zero() {
            tokio::time::sleep(iam_latency).await;
        }
        return Answer::Respond(iam_tokens(&state, &body));
    }
    if let Some(target) = reset_target(&path)
        && parts.method == Method::POST
    {
        return reset(&state, &parts, &body, target).await;
    }
    let request_id = state.request_id();
    Answer::Respond(gateway_error(
        &GatewayError {
            status: 404,
            code: "APIGW.0101",
            message: "The API does not exist or has not been published in the environment"
                .to_owned(),
        },
        &request_id,
    ))
}

/// (project, instance, task) of `/v2/{p}/fdi/instances/{i}/multi-tasks/{t}/reset`.
fn reset_target(path: &str) -> Option<(String, String, String)> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    match segments.as_slice() {
        [
            "v2",
            project,
            "fdi",
            "instances",
            instance,
            "multi-tasks",
            task,
            "reset",
        ] if !project.is_empty() && !instance.is_empty() && !task.is_empty() => Some((
            percent_decode(project),
            percent_decode(instance),
            percent_decode(task),
        )),
        _ => None,
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn reset(
    state: &State,
    parts: &Parts,
    body: &[u8],
    (project_id, instance_id, task_id): (String, String, String),
) -> Answer {
    let at = state.now();
    let request_id = state.request_id();
    let mut record = CallRecord {
        project_id,
        instance_id,
        task_id,
        date_from: None,
        auth: AuthKind::None,
        at,
        status: None,
        executed: false,
        ambiguous: false,
        request_id: request_id.clone(),
    };
    let (kind, verdict) = auth::authenticate(state, parts, body);
    record.auth = kind;
    if let Err(refusal) = verdict {
        record.status = Some(refusal.status);
        state.record(record);
        return Answer::Respond(gateway_error(&refusal, &request_id));
    }
    match parse_reset_body(body) {
        Ok(date_from) => record.date_from = date_from,
        Err(err) => {
            record.status = Some(400);
            state.record(record);
            let message = err.to_string();
            return Answer::Respond(service_error(400, "FDI.3002", &message, &request_id));
        }
    }
    let mut step = state.next_step(&record.task_id);
    while let Step::Delay(delay, then) = step {
        tokio::time::sleep(delay).await;
        step = *then;
    }
    let answer = match step {
        Step::Succeed => {
            record.executed = true;
            json_response(200, &json!({"message": "Reset Success"}), &request_id)
        }
        Step::Fail {
            status,
            code,
            message,
        } => service_error(status, &code, &message, &request_id),
        Step::ServerErrorNoBody => raw_response(500, "", String::new(), &request_id),
        Step::Html { status } => raw_response(
            status,
            "text/html",
            format!(
                "<html>\r\n<head><title>{status} Error</title></head>\r\n<body>\r\n<center><h1>{status} Error</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            ),
            &request_id,
        ),
        Step::Throttle => gateway_error(
            &GatewayError {
                status: 429,
                code: "APIGW.0308",
                message: "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 minute".to_owned(),
            },
            &request_id,
        ),
        Step::Unauthorized => gateway_error(
            &GatewayError {
                status: 401,
                code: "APIGW.0301",
                message: "Incorrect IAM authentication information: verify aksk signature fail"
                    .to_owned(),
            },
            &request_id,
        ),
        Step::DropConnection => {
            record.ambiguous = true;
            state.record(record);
            return Answer::Drop;
        }
        Step::DropAfterExecute => {
            record.executed = true;
            record.ambiguous = true;
            state.record(record);
            return Answer::Drop;
        }
        Step::Raw {
            status,
            content_type,
            body,
        } => {
            record.executed = (200..300).contains(&status);
            raw_response(status, &content_type, body, &request_id)
        }
        // Unwrapped by the loop above.
        Step::Delay(..) => raw_response(500, "", String::new(), &request_id),
    };
    record.status = Some(answer.status().as_u16());
    state.record(record);
    Answer::Respond(answer)
}

/// Why a reset body is refused (400 `FDI.3002`, with this message).
#[derive(Debug, thiserror::Error)]
enum ResetBodyError {
    #[error("The request body is not valid JSON.")]
    NotJson(#[source] serde_json::Error),
    #[error("The request body must be a JSON object.")]
    NotAnObject,
    #[error("date_from must be a non-negative integer (epoch ms).")]
    DateFrom,
}

/// `date_from` of a reset body: `{}` or `{"date_from": ms}` with ms >= 0.
fn parse_reset_body(body: &[u8]) -> Result<Option<i64>, ResetBodyError> {
    if body.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body).map_err(ResetBodyError::NotJson)?;
    let object = value.as_object().ok_or(ResetBodyError::NotAnObject)?;
    match object.get("date_from") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|ms| *ms >= 0)
            .map(Some)
            .ok_or(ResetBodyError::DateFrom),
    }
}

/// `POST /v3/auth/tokens`: password authentication scoped to a project.
fn iam_tokens(state: &State, body: &[u8]) -> Response<Body> {
    state.lock().iam_calls += 1;
    let request_id = state.request_id();
    let iam_error = |status: u16, message: &str| {
        let title = if status == 401 {
            "Unauthorized"
        } else {
            "Bad Request"
        };
        json_response(
            status,
            &json!({"error": {"code": status, "message": message, "title": title}}),
            &request_id,
        )
    };
    let Ok(request) = serde_json::from_slice::<IamRequest>(body) else {
        return iam_error(400, "The request body is invalid.");
    };
    let identity = request.auth.identity;
    if !identity.methods.iter().any(|m| m == "password") {
        return iam_error(400, "Only the password method is supported here.");
    }
    let Some(password) = identity.password else {
        return iam_error(400, "identity.password is missing.");
    };
    let Some(project) = request
        .auth
        .scope
        .and_then(|s| s.project)
        .and_then(|p| p.id)
    else {
        return iam_error(400, "A project scope (scope.project.id) is required.");
    };
    let user = password.user;
    let known = state
        .lock()
        .users
        .get(&(user.domain.name.clone(), user.name.clone()))
        .cloned();
    if known.as_deref() != Some(user.password.as_str()) {
        return iam_error(401, "The username or password is wrong.");
    }
    let now = state.now();
    let expires_at = now + state.config.token_ttl;
    let token = {
        let mut inner = state.lock();
        let seed = format!("{}:{}:{:?}", inner.next_id, project, now);
        inner.next_id += 1;
        let token = format!("MIIsim{}", roma_signer::sha256_hex(seed.as_bytes()));
        inner.tokens.insert(
            token.clone(),
            TokenInfo {
                issued_by_iam: true,
                expires_at: Some(expires_at),
                expired: false,
            },
        );
        token
    };
    let mut response = json_response(
        201,
        &json!({"token": {
            "expires_at": auth::rfc3339(expires_at),
            "issued_at": auth::rfc3339(now),
            "methods": ["password"],
            "project": {"id": project, "name": "sim-project"},
            "user": {"name": user.name, "domain": {"name": user.domain.name}},
        }}),
        &request_id,
    );
    if let Ok(value) = HeaderValue::from_str(&token) {
        response.headers_mut().insert("x-subject-token", value);
    }
    response
}

#[derive(Deserialize)]
struct IamRequest {
    auth: IamAuth,
}
#[derive(Deserialize)]
struct IamAuth {
    identity: IamIdentity,
    scope: Option<IamScope>,
}
#[derive(Deserialize)]
struct IamIdentity {
    methods: Vec<String>,
    password: Option<IamPassword>,
}
#[derive(Deserialize)]
struct IamPassword {
    user: IamUser,
}
#[derive(Deserialize)]
struct IamUser {
    name: String,
    password: String,
    domain: IamName,
}
#[derive(Deserialize)]
struct IamName {
    name: String,
}
#[derive(Deserialize)]
struct IamScope {
    project: Option<IamProject>,
}
#[derive(Deserialize)]
struct IamProject {
    id: Option<String>,
}

/// `/_sim/...`: script and inspect the simulator from another process.
fn control_api(state: &State, method: &Method, path: &str, body: &[u8]) -> Response<Body> {
    let bad = |err: serde_json::Error| {
        json_response(400, &json!({"error": format!("invalid body: {err}")}), "")
    };
    let ok = || json_response(200, &json!({"ok": true}), "");
    fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, serde_json::Error> {
        serde_json::from_slice(body)
    }
    match (method.as_str(), path) {
        ("GET", "calls") => json_response(200, &json!(state.lock().calls), ""),
        ("GET", "iam-calls") => json_response(200, &json!({"count": state.lock().iam_calls}), ""),
        ("POST", "script") => match parse::<ScriptBody>(body) {
            Ok(s) => {
                state
                    .lock()
                    .scripts
                    .insert(s.task_id, s.steps.into_iter().collect());
                ok()
            }
            Err(e) => bad(e),
        },
        ("POST", "default") => match parse::<DefaultBody>(body) {
            Ok(d) => {
                state.lock().default_step = d.step;
                ok()
            }
            Err(e) => bad(e),
        },
        ("POST", "latency") => match parse::<LatencyBody>(body) {
            Ok(l) => {
                state.lock().latency = Duration::from_millis(l.ms);
                ok()
            }
            Err(e) => bad(e),
        },
        ("POST", "tokens") => match parse::<TokenBody>(body) {
            Ok(t) => {
                state.add_token(&t.token);
                ok()
            }
            Err(e) => bad(e),
        },
        ("POST", "access-keys") => match parse::<AccessKeyBody>(body) {
            Ok(k) => {
                state.add_access_key(&k.access_key, &k.secret_key, k.security_token);
                ok()
            }
            Err(e) => bad(e),
        },
        ("POST", "users") => match parse::<UserBody>(body) {
            Ok(u) => {
                state.lock().users.insert((u.domain, u.user), u.password);
                ok()
            }
            Err(e) => bad(e),
        },
        ("POST", "expire-tokens") => {
            state.expire_tokens();
            ok()
        }
        _ => json_response(404, &json!({"error": "no such control endpoint"}), ""),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptBody {
    task_id: String,
    steps: Vec<Step>,
}
#[derive(Deserialize)]
struct DefaultBody {
    step: Step,
}
#[derive(Deserialize)]
struct LatencyBody {
    ms: u64,
}
#[derive(Deserialize)]
struct TokenBody {
    token: String,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessKeyBody {
    access_key: String,
    secret_key: String,
    security_token: Option<String>,
}
#[derive(Deserialize)]
struct UserBody {
    domain: String,
    user: String,
    password: String,
}

fn gateway_error(error: &GatewayError, request_id: &str) -> Response<Body> {
    json_response(
        error.status,
        &json!({"error_code": error.code, "error_msg": error.message, "request_id": request_id}),
        request_id,
    )
}

fn service_error(status: u16, code: &str, message: &str, request_id: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"error_code": code, "error_msg": message}),
        request_id,
    )
}

fn json_response(status: u16, body: &Value, request_id: &str) -> Response<Body> {
    raw_response(
        status,
        "application/json;charset=UTF-8",
        body.to_string(),
        request_id,
    )
}

fn raw_response(status: u16, content_type: &str, body: String, request_id: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if !content_type.is_empty()
        && let Ok(value) = HeaderValue::from_str(content_type)
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if !request_id.is_empty()
        && let Ok(value) = HeaderValue::from_str(request_id)
    {
        headers.insert("x-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_paths_are_recognised_and_decoded() {
        assert_eq!(
            reset_target("/v2/p/fdi/instances/i/multi-tasks/t%2Dx/reset"),
            Some(("p".into(), "i".into(), "t-x".into()))
        );
        assert_eq!(
            reset_target("/v2/p/fdi/instances/i/multi-tasks/t/reset/"),
            None
        );
        assert_eq!(
            reset_target("/v2/p/fdi/instances//multi-tasks/t/reset"),
            None
        );
        assert_eq!(
            reset_target("/v1/p/fdi/instances/i/multi-tasks/t/reset"),
            None
        );
    }

    #[test]
    fn reset_bodies_are_checked() {
        assert_eq!(parse_reset_body(b"").ok(), Some(None));
        assert_eq!(parse_reset_body(b"{}").ok(), Some(None));
        assert_eq!(
            parse_reset_body(br#"{"date_from": 1630052714000}"#).ok(),
            Some(Some(1_630_052_714_000))
        );
        let refused = |body: &[u8]| parse_reset_body(body).err();
        assert!(matches!(
            refused(br#"{"date_from": -1}"#),
            Some(ResetBodyError::DateFrom)
        ));
        assert!(matches!(
            refused(br#"{"date_from": "x"}"#),
            Some(ResetBodyError::DateFrom)
        ));
        assert!(matches!(refused(b"[1]"), Some(ResetBodyError::NotAnObject)));
        assert!(matches!(refused(b"{"), Some(ResetBodyError::NotJson(_))));
    }
}
