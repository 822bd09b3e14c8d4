//! HTTP routing: every request goes through one handler that routes it, applies latency and
//! injected faults to resource requests, answers, and records it in the request log.

use super::discovery;
use super::errors::ApiError;
use super::faults::FaultSettings;
use super::handlers::{self, Ctx, Reply};
use super::request::{Route, parse_query, route};
use super::request_log::RequestRecord;
use super::shared::Shared;
use super::table::negotiate;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(entry).with_state(shared)
}

fn json_response(status: u16, body: &Value, warnings: &[String]) -> (Response, u64) {
    let bytes = body.to_string().into_bytes();
    let len = bytes.len() as u64;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    (response, len)
}

fn error_response(err: &ApiError) -> (Response, u64) {
    let (mut response, len) = json_response(err.code, &err.to_status(), &[]);
    if err.code == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    (response, len)
}

/// `metadata.resourceVersion` of a JSON body, "" when none.
fn body_resource_version(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default, rename = "resourceVersion")]
        resource_version: String,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        metadata: Option<Meta>,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|b| b.metadata)
        .map(|m| m.resource_version)
        .unwrap_or_default()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let time = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = parse_query(&raw_query);
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE).to_string();
    let mut record = RequestRecord {
        seq: 0,
        method: method.clone(),
        path: path.clone(),
        query: raw_query.clone(),
        verb: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        content_type: content_type.clone(),
        precondition: String::new(),
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
        time,
        duration_micros: 0,
        injected: false,
    };
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let err = ApiError::new(
                413,
                "RequestEntityTooLarge",
                "the request body is too large",
            );
            let (response, len) = error_response(&err);
            record.status = 413;
            record.bytes_out = len;
            shared.log.record(record);
            return response;
        }
    };
    record.bytes_in = body.len() as u64;
    if method == "PUT" {
        record.precondition = body_resource_version(&body);
    }
    let routed = route(&method, &path, &query);
    let (response, len) = match routed {
        Route::Resource(req) => {
            record.verb = req.verb.to_string();
            record.resource = super::errors::group_resource(&req.group, &req.plural);
            record.subresource = req.subresource.clone().unwrap_or_default();
            record.namespace = req.namespace.clone().unwrap_or_default();
            record.name = req.name.clone().unwrap_or_default();
            let latency = shared.faults.current_latency();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let injected = shared.faults.sample(
                req.verb,
                &req.plural,
                &req.group,
                req.subresource.as_deref().unwrap_or(""),
            );
            match injected {
                Some(code) => {
                    record.injected = true;
                    error_response(&ApiError::injected(code))
                }
                None => {
                    let ctx = Ctx {
                        shared: &shared,
                        req: &req,
                        query: &query,
                        representation: negotiate(header_str(&parts.headers, header::ACCEPT)),
                        user_agent: header_str(&parts.headers, header::USER_AGENT),
                        content_type: &content_type,
                        body: &body,
                    };
                    match handlers::handle(ctx).await {
                        Ok(Reply::Json {
                            status,
                            body,
                            warnings,
                        }) => json_response(status, &body, &warnings),
                        Ok(Reply::Stream(stream)) => {
                            let mut response = Response::new(stream);
                            response.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("application/json"),
                            );
                            (response, 0)
                        }
                        Err(err) => error_response(&err),
                    }
                }
            }
        }
        other => non_resource(&shared, &method, other, &body),
    };
    record.status = response.status().as_u16();
    record.bytes_out = len;
    record.duration_micros = started.elapsed().as_micros() as u64;
    shared.log.record(record);
    response
}

fn non_resource(shared: &Arc<Shared>, method: &str, route: Route, body: &[u8]) -> (Response, u64) {
    let get_only = |value: Option<Value>| -> (Response, u64) {
        if method != "GET" {
            return error_response(&ApiError::method_not_allowed(method));
        }
        match value {
            Some(v) => json_response(200, &v, &[]),
            None => error_response(&ApiError::no_route()),
        }
    };
    match route {
        Route::Version => get_only(Some(discovery::version())),
        Route::Health => {
            let mut response = Response::new(Body::from("ok"));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            (response, 2)
        }
        Route::LegacyVersions => {
            get_only(Some(discovery::legacy_versions(&shared.addr.to_string())))
        }
        Route::Groups => get_only(Some(discovery::group_list(&shared.store().registry))),
        Route::Group(g) => get_only(discovery::group(&shared.store().registry, &g)),
        Route::GroupVersion(g, v) => {
            get_only(discovery::resource_list(&shared.store().registry, &g, &v))
        }
        // kubectl fetches v2 only as protobuf and only when v3 is missing; v3 is served.
        Route::OpenApiV2 => error_response(&ApiError::no_route()),
        Route::OpenApiV3Root => {
            get_only(Some(discovery::openapi_v3_root(&shared.store().registry)))
        }
        Route::OpenApiV3(g, v) => get_only(discovery::openapi_v3_group_version(
            &shared.store().registry,
            &g,
            &v,
        )),
        Route::Sim(what) => sim(shared, method, &what, body),
        Route::Resource(_) | Route::NotFound => error_response(&ApiError::no_route()),
    }
}

fn sim(shared: &Arc<Shared>, method: &str, what: &str, body: &[u8]) -> (Response, u64) {
    match (method, what) {
        ("GET", "requests") => json_response(200, &json!(shared.log.records()), &[]),
        ("GET", "counters") => json_response(200, &json!(shared.log.counters()), &[]),
        ("POST", "reset") => {
            shared.log.reset();
            json_response(200, &json!({"reset": true}), &[])
        }
        ("GET", "faults") => json_response(200, &json!(shared.faults.settings()), &[]),
        ("POST", "faults") => match serde_json::from_slice::<FaultSettings>(body) {
            Ok(settings) => {
                shared.faults.apply(&settings);
                json_response(200, &json!(shared.faults.settings()), &[])
            }
            Err(e) => error_response(&ApiError::bad_request(format!(
                "invalid fault settings: {e}"
            ))),
        },
        _ => error_response(&ApiError::no_route()),
    }
}
