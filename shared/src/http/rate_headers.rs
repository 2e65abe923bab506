//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (when the window
//! resets, in Unix seconds: the platform convention) on every response to a metered request,
//! 429s included (those also carry `Retry-After` in seconds).
//!
//! The `Caller` extractor meters the request after authenticating it; it leaves the outcome
//! in a slot this middleware put into the request, and the middleware copies it onto the
//! response.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::rate_limit::RateStatus;

/// Where the extractor leaves the rate-limit status of the request.
#[derive(Clone, Default)]
pub(crate) struct RateSlot(Arc<Mutex<Option<RateStatus>>>);

impl RateSlot {
    pub(crate) fn fill(&self, status: RateStatus) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }
}

pub(crate) async fn rate_headers(mut request: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let status = *slot.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(status) = status {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(status.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(status.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(status.reset_at));
    }
    response
}
