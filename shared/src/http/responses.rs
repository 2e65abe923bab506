//! Typed responses whose status or headers depend on the result: handlers return these (or
//! `Json<T>`, `PageResponse<T>`), never a hand-built `Response`.

use axum::Json;
use axum::http::header::ETAG;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::CommentView;
use crate::service::trigger::Triggered;

/// A trigger's answer: 201 with the new run, or the first answer replayed (201, its body) with
/// `Idempotent-Replayed: true` for a retry with the same `Idempotency-Key`.
impl IntoResponse for Triggered {
    fn into_response(self) -> Response {
        match self {
            Triggered::Created(run) => (StatusCode::CREATED, Json(run)).into_response(),
            Triggered::Replayed(original) => (
                StatusCode::CREATED,
                [("idempotent-replayed", "true")],
                Json(original),
            )
                .into_response(),
        }
    }
}

/// A comment with its version as the `ETag` header (for `If-Match`).
#[derive(Debug)]
pub struct TaggedComment(pub StatusCode, pub CommentView);

impl IntoResponse for TaggedComment {
    fn into_response(self) -> Response {
        let Self(status, comment) = self;
        let etag = HeaderValue::from_str(&comment.etag()).ok();
        let mut response = (status, Json(comment)).into_response();
        if let Some(etag) = etag {
            response.headers_mut().insert(ETAG, etag);
        }
        response
    }
}
