//! The single place where errors become HTTP responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::api_key::MIN_KEY_LEN;
use crate::error::{Error, FieldError};
use crate::store::StoreError;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Validation(_)
            | Error::InvalidSlug
            | Error::MalformedApiKey
            | Error::UnknownTeam
            | Error::IdempotencyKeyReused
            | Error::UpstreamRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Error::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Error::Validation(errors) => json!({ "detail": errors }),
            Error::InvalidSlug
            | Error::MalformedApiKey
            | Error::UnknownTeam
            | Error::IdempotencyKeyReused
            | Error::UpstreamRejected { .. } => json!({ "detail": self.field_errors() }),
            Error::Upstream { detail, .. }
            | Error::BadGateway(detail)
            | Error::GatewayTimeout(detail) => json!({ "detail": detail }),
            Error::Store(StoreError::Unavailable(_)) => {
                json!({ "detail": "The service is temporarily unavailable, retry shortly" })
            }
            // Internals go to the log only (below).
            Error::Store(_) | Error::Internal(_) => json!({ "detail": "Internal server error" }),
            other => json!({ "detail": other.to_string() }),
        };
        // Every 5xx leaves its cause in the log, in the request's span (its request id): the
        // body says little on purpose.
        match &self {
            Error::Store(_) | Error::Internal(_) => {
                tracing::error!(status = status.as_u16(), error = %self, "request failed");
            }
            _ if status.is_server_error() => {
                tracing::warn!(status = status.as_u16(), error = %self, "upstream error");
            }
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Error::Unauthenticated(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::TooManyRequests {
                retry_after_seconds,
            }
            | Error::Upstream {
                retry_after_seconds: Some(retry_after_seconds),
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            Error::Store(StoreError::Unavailable(_)) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl Error {
    /// The 422 entries of a domain error: where in the request it lies, in the platform's
    /// `loc`/`msg`/`type` form. Locations are an HTTP matter, so they are chosen here.
    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Error::Validation(errors) => errors.clone(),
            Error::InvalidSlug => vec![FieldError::new(
                &["body", "slug"],
                "a slug is 1-63 lower-case letters, digits or dashes, not starting with a dash",
                "string_pattern_mismatch",
            )],
            Error::MalformedApiKey => vec![FieldError::new(
                &["body", "key"],
                format!("an API key is {MIN_KEY_LEN} to 256 visible ASCII characters"),
                "string_pattern_mismatch",
            )],
            Error::UnknownTeam => vec![FieldError::new(
                &["body", "team_id"],
                "No team with this id exists in this space",
                "value_error",
            )],
            Error::IdempotencyKeyReused => vec![FieldError::new(
                &["header", "idempotency-key"],
                "This Idempotency-Key was used for a different request",
                "value_error",
            )],
            // Airflow's entries keep Airflow's own locations; a bare message is about the body.
            Error::UpstreamRejected { detail, fields } if fields.is_empty() => {
                vec![FieldError::new(&["body"], detail.clone(), "value_error")]
            }
            Error::UpstreamRejected { fields, .. } => fields.clone(),
            _ => Vec::new(),
        }
    }
}
