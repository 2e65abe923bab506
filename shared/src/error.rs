//! The one error type of the API. Domain and repository code return it; `http::error` maps it
//! to a status code and the platform's body format in one place.

use serde::Serialize;

use crate::store::StoreError;

/// One entry of a 422 body: `{"loc": [...], "msg": "...", "type": "..."}` (the platform's
/// FastAPI/Pydantic-compatible shape).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where: `["query", "size"]`, `["path", "run_id"]`, `["body", "content"]`.
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: loc.iter().map(|part| part.to_string()).collect(),
            msg: msg.into(),
            kind: kind.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, malformed, unknown, revoked or expired credentials (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A member without the needed role (403).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown object, or one outside the addressed space (404). Never says which.
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// Malformed request input, found while reading the request (422 with the entries).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A space slug that breaks the slug rules (`domain::api_key::is_valid_slug`) (422).
    #[error(
        "validation failed: a slug is 1-63 lower-case letters, digits or dashes, not starting with a dash"
    )]
    InvalidSlug,
    /// A chosen API key secret that cannot be a key (`domain::api_key::is_well_formed`) (422).
    #[error(
        "validation failed: an API key is {} to 256 visible ASCII characters",
        crate::domain::api_key::MIN_KEY_LEN
    )]
    MalformedApiKey,
    /// An owning team that does not exist in the space (422).
    #[error("validation failed: no team with this id exists in this space")]
    UnknownTeam,
    /// An `Idempotency-Key` already used for a different request (422).
    #[error("validation failed: this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The upstream (Airflow) rejected the request's content (its 422): its message, and its
    /// entries with Airflow's own locations (none when it sent only a message).
    #[error("validation failed upstream: {detail}")]
    UpstreamRejected {
        detail: String,
        fields: Vec<FieldError>,
    },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("Request body too large")]
    PayloadTooLarge,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("Rate limit exceeded. Retry in {retry_after_seconds} seconds.")]
    TooManyRequests { retry_after_seconds: u64 },
    /// An upstream (Airflow) refused the request with a 4xx about it (400, 404, 409...), or is
    /// busy (429, 503, with the seconds to wait): its status and message pass through.
    #[error("upstream answered {status}: {detail}")]
    Upstream {
        status: u16,
        detail: String,
        retry_after_seconds: Option<u64>,
    },
    /// The upstream failed, could not be reached, refused the connector's credentials or
    /// answered garbage; the message names the cause (never a secret) and is shown (502).
    #[error("{0}")]
    BadGateway(String),
    /// The upstream did not answer in time; the message says what was cut (504).
    #[error("{0}")]
    GatewayTimeout(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an inconsistency; details are logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn validation(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Error::Validation(vec![FieldError::new(loc, msg, kind)])
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        Error::Internal(context.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
