//! Compression of responses, and the two unauthenticated routes, as the deployed functions
//! serve them: through `lambda_http`'s adapter with API Gateway HTTP API (v2) events, and
//! through the local server. A compressed body must reach API Gateway base64-encoded (it is
//! binary), and decode to exactly the uncompressed answer.

use std::io::Read;

use base64::Engine;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use orchestration_tests::Backend;
use orchestration_tests::app::{SPACE, TestApp};
use serde_json::{Value, json};
use shared::http::AppState;
use tower::ServiceExt;

/// An API Gateway HTTP API (v2) event for `GET path?query` with these headers.
fn event(route_key: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> LambdaRequest {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "test"},
            "requestId": "compression-test",
            "routeKey": route_key,
            "stage": "$default",
            "time": "12/Mar/2026:10:15:30 +0000",
            "timeEpoch": 1773310530000u64
        },
        "pathParameters": {"slug": SPACE},
        "isBase64Encoded": false
    });
    serde_json::from_value(event).expect("lambda_http parses the v2 event")
}

/// The pipelines function's answer as API Gateway receives it.
async fn invoke(state: &AppState, request: LambdaRequest) -> Value {
    let response = Adapter::from(pipelines_function::router(state.clone()))
        .oneshot(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    serde_json::to_value(&response).unwrap()
}

fn header<'a>(response: &'a Value, name: &str) -> Option<&'a str> {
    response["headers"][name].as_str()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli_decompressor::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a brotli body");
    out
}

async fn seeded() -> (TestApp, AppState) {
    let app = TestApp::spawn(Backend::Embedded).await;
    for n in 0..40 {
        app.add_pipeline(&app.connector, &format!("dag_{n:02}"), |_| {})
            .await;
    }
    let state = AppState::new(app.repo.clone());
    (app, state)
}

const LIST_ROUTE: &str = "GET /api/v1.0/spaces/{slug}/orchestration/pipelines";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_lists_are_gzipped_and_base64_encoded_when_accepted() {
    let (app, state) = seeded().await;
    let path = format!("/api/v1.0/spaces/{SPACE}/orchestration/pipelines");
    let auth = format!("Bearer {}", app.keys.viewer);

    let plain = invoke(
        &state,
        event(LIST_ROUTE, &path, "size=100", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(plain["statusCode"], 200, "{plain}");
    assert_eq!(plain["isBase64Encoded"], false);
    assert_eq!(header(&plain, "content-encoding"), None);
    let expected: Value = serde_json::from_str(plain["body"].as_str().unwrap()).unwrap();
    assert_eq!(expected.as_array().unwrap().len(), 40);

    let compressed = invoke(
        &state,
        event(
            LIST_ROUTE,
            &path,
            "size=100",
            &[("authorization", &auth), ("accept-encoding", "gzip")],
        ),
    )
    .await;
    assert_eq!(compressed["statusCode"], 200);
    assert_eq!(header(&compressed, "content-encoding"), Some("gzip"));
    assert_eq!(
        compressed["isBase64Encoded"], true,
        "binary bodies go base64"
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compressed["body"].as_str().unwrap())
        .unwrap();
    assert!(
        raw.len() * 3 < plain["body"].as_str().unwrap().len(),
        "it is compressed"
    );
    let decoded: Value = serde_json::from_slice(&gunzip(&raw)).unwrap();
    assert_eq!(decoded, expected);
    // Paging headers survive compression.
    assert_eq!(header(&compressed, "x-total-count"), Some("40"));

    // Small answers stay plain whatever the client accepts.
    let small = invoke(
        &state,
        event(
            LIST_ROUTE,
            &path,
            "size=abc",
            &[("authorization", &auth), ("accept-encoding", "gzip, br")],
        ),
    )
    .await;
    assert_eq!(small["statusCode"], 422);
    assert_eq!(header(&small, "content-encoding"), None);
    assert_eq!(small["isBase64Encoded"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_server_answers_in_brotli_when_accepted() {
    let (app, _) = seeded().await;
    let response = app
        .client
        .get(app.url(SPACE, "/pipelines?size=100"))
        .bearer_auth(&app.keys.viewer)
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "br");
    let decoded: Value =
        serde_json::from_slice(&unbrotli(&response.bytes().await.unwrap())).unwrap();
    assert_eq!(decoded.as_array().unwrap().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelines_function_serves_health_and_the_openapi_document_without_a_key() {
    let (_app, state) = seeded().await;
    let health = invoke(
        &state,
        event("GET /api/v1.0/health", "/api/v1.0/health", "", &[]),
    )
    .await;
    assert_eq!(health["statusCode"], 200, "{health}");
    let body: Value = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "ok");

    let document = invoke(
        &state,
        event(
            "GET /api/v1.0/openapi.json",
            "/api/v1.0/openapi.json",
            "",
            &[("accept-encoding", "gzip")],
        ),
    )
    .await;
    assert_eq!(document["statusCode"], 200);
    assert_eq!(header(&document, "content-type"), Some("application/json"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(document["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(gunzip(&raw)).unwrap(),
        local::openapi_text(),
        "the deployed document is the generated one"
    );
}
