//! Per-request observability: a request id (API Gateway's, when behind it), a tracing span
//! carrying it (and the invocation's X-Ray trace id, in Lambda) so every log line of the request
//! has them, downstream timings included (`crate::aws::timing`, `airflow::transport`), an
//! `x-request-id` response header, one summary log line, and request/latency metrics (EMF, in
//! Lambda).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use serde_json::json;
use tracing::Instrument;

use crate::telemetry::{self, REQUEST};

/// API Gateway's request id when the request came through it, else the caller's
/// `x-request-id` (if sane), else a new one.
fn request_id(request: &Request) -> String {
    let from_gateway =
        request
            .extensions()
            .get::<RequestContext>()
            .and_then(|context| match context {
                RequestContext::ApiGatewayV2(c) => c.request_id.clone(),
                RequestContext::ApiGatewayV1(c) => c.request_id.clone(),
                // Other sources (ALB, ...) when lambda_http grows features: no gateway id.
                #[allow(unreachable_patterns)]
                _ => None,
            });
    from_gateway
        .or_else(|| {
            request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| {
                    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
                })
                .map(str::to_string)
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The invocation's X-Ray trace id (`Root=1-...;Parent=...;Sampled=1`), from the Lambda
/// context lambda_http puts in the request; empty outside Lambda.
fn trace_id(request: &Request) -> String {
    request
        .extensions()
        .get::<lambda_http::Context>()
        .and_then(|context| context.xray_trace_id.clone())
        .unwrap_or_default()
}

pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let trace_id = trace_id(&request);
    let span = tracing::info_span!("request", request_id = %id, %trace_id, %method, %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, latency_ms, "request finished"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    telemetry::emit(
        &REQUEST,
        &[format!("{method} {route}")],
        &[
            1.0,
            latency_ms,
            f64::from(u8::from((400..500).contains(&status))),
            f64::from(u8::from(status >= 500)),
        ],
        &[
            ("Status", json!(status)),
            ("RequestId", json!(id)),
            ("TraceId", json!(trace_id)),
        ],
    );
    response
}
