//! roma-signer against vectors produced by the official Huawei Cloud SDK's signer
//! (`tools/signer-vectors.py`, committed as `tests/data/signer-vectors.json`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use roma_signer::{
    Authorization, HEADER_PROJECT_ID, HEADER_SDK_DATE, HEADER_SECURITY_TOKEN, Request, sign, verify,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    generator: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    access_key: String,
    secret_key: String,
    security_token: Option<String>,
    project_id: String,
    host: String,
    sdk_date: String,
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: String,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    canonical_request: String,
    string_to_sign: String,
    signed_headers: String,
    signature: String,
    authorization: String,
}

fn vectors() -> File {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/signer-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/data/signer-vectors.json");
    serde_json::from_str(&text).expect("valid vectors file")
}

/// The headers the ROMA client gives the signer: the request's own, the date, and what
/// `BasicCredentials.sign_request` adds (`X-Project-Id`, `X-Security-Token`).
fn request(v: &Vector) -> Request<'_> {
    let mut headers = v.headers.clone();
    headers.push((HEADER_SDK_DATE.to_owned(), v.sdk_date.clone()));
    headers.push((HEADER_PROJECT_ID.to_owned(), v.project_id.clone()));
    if let Some(token) = &v.security_token {
        headers.push((HEADER_SECURITY_TOKEN.to_owned(), token.clone()));
    }
    Request {
        method: &v.method,
        path: &v.path,
        query: v.query.clone(),
        headers,
        body: v.body.as_bytes(),
    }
}

#[test]
fn the_vectors_cover_what_the_issue_asks_for() {
    let file = vectors();
    assert!(file.generator.contains("huaweicloudsdkcore 3.1.219"));
    let has = |pred: &dyn Fn(&Vector) -> bool| file.vectors.iter().any(pred);
    assert!(
        has(&|v| v.query.len() >= 3),
        "a query string with several keys"
    );
    assert!(has(&|v| v.body.is_empty()), "an empty body");
    assert!(
        has(&|v| v.path.contains(' ') || v.path.contains('%')),
        "an encoded path"
    );
    assert!(
        has(&|v| v.security_token.is_some()),
        "temporary credentials"
    );
}

#[test]
fn roma_signer_reproduces_every_sdk_vector() {
    for v in vectors().vectors {
        let req = request(&v);
        let signed = sign(
            &req,
            &v.host,
            &v.access_key,
            &v.secret_key,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(
            signed.canonical_request, v.expected.canonical_request,
            "{}: canonical request",
            v.name
        );
        assert_eq!(
            signed.string_to_sign, v.expected.string_to_sign,
            "{}: string to sign",
            v.name
        );
        assert_eq!(
            signed.signed_headers, v.expected.signed_headers,
            "{}",
            v.name
        );
        assert_eq!(signed.signature, v.expected.signature, "{}", v.name);
        assert_eq!(signed.authorization, v.expected.authorization, "{}", v.name);
    }
}

#[test]
fn the_verifier_accepts_sdk_signatures_and_only_with_the_right_key() {
    for v in vectors().vectors {
        // The headers on the wire: what the signer adds (Host, X-Sdk-Content-Sha256), without
        // our own Authorization; the SDK's Authorization is checked against them.
        let given = request(&v);
        let signed = sign(
            &given,
            &v.host,
            &v.access_key,
            &v.secret_key,
            SystemTime::UNIX_EPOCH,
        )
        .expect("signs");
        let mut req = given.clone();
        req.headers = signed
            .headers
            .into_iter()
            .filter(|(n, _)| n != "Authorization")
            .collect();
        let auth = Authorization::parse(&v.expected.authorization).expect("parses");
        verify(&req, &auth, &v.secret_key).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert!(
            verify(&req, &auth, "not-the-secret-key").is_err(),
            "{}: a wrong key must fail",
            v.name
        );
    }
}
