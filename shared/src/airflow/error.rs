//! The client's one error type, and how Airflow's error bodies become its `detail` text.

use std::time::Duration;

use serde_json::Value;

/// The longest `detail` kept from an Airflow error body, in characters.
const MAX_DETAIL_CHARS: usize = 500;

/// What went wrong talking to Airflow. No variant ever carries a password or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AirflowError {
    /// Airflow answered with an error status; `detail` is Airflow's message (its `detail` field
    /// if JSON, else the text), truncated to about 500 characters. `retry_after` is Airflow's
    /// `Retry-After` (seconds or HTTP-date), `fields` the entries of a validation error's
    /// `detail` list (422), each with Airflow's location.
    #[error("Airflow answered HTTP {status}: {detail}")]
    Status {
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
        fields: Vec<AirflowFieldError>,
    },
    /// Connection refused or reset, DNS failure... (after the retries).
    #[error("Airflow unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the request timeout (after the retries).
    #[error("Airflow timed out: {0}")]
    Timeout(String),
    /// The caller's deadline passed before Airflow answered, on the call's first attempt (a
    /// call that had failed before the deadline ends in that failure instead).
    #[error("Airflow did not answer in time: {0}")]
    Deadline(String),
    /// A 2xx answer whose body is not the expected JSON.
    #[error("unexpected Airflow response: {0}")]
    Decode(String),
    /// No token could be obtained (bad credentials: Airflow's status and detail are in the text).
    #[error("Airflow authentication failed: {0}")]
    Auth(String),
    /// A bad configuration or argument (base URL, empty id); nothing was sent.
    #[error("invalid Airflow request: {0}")]
    Invalid(String),
}

/// One entry of a validation error's `detail` list, as Airflow (FastAPI/Pydantic, or
/// Connexion on Airflow 2) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AirflowFieldError {
    /// Airflow's location, e.g. `["body", "logical_date"]` (numbers as text).
    pub loc: Vec<String>,
    pub msg: String,
    /// Pydantic's `type` (`missing`, `datetime_parsing`...), `value_error` when absent.
    pub kind: String,
}

impl AirflowError {
    /// An error status without `Retry-After` or field errors.
    pub fn status(status: u16, detail: impl Into<String>) -> Self {
        AirflowError::Status {
            status,
            detail: detail.into(),
            retry_after: None,
            fields: Vec::new(),
        }
    }

    /// Whether trying again later may succeed: 429, 5xx, unreachable, timeout.
    pub fn is_retryable(&self) -> bool {
        match self {
            AirflowError::Status { status, .. } => *status == 429 || *status >= 500,
            AirflowError::Unreachable(_) | AirflowError::Timeout(_) | AirflowError::Deadline(_) => {
                true
            }
            AirflowError::Decode(_) | AirflowError::Auth(_) | AirflowError::Invalid(_) => false,
        }
    }

    /// The HTTP status Airflow answered with, when it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            AirflowError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Airflow's message from an error body.
///
/// Shapes seen: `{"detail": "text"}` (v2), `{"detail": [{"loc", "msg", ...}]}` (v2 422),
/// `{"detail": {"reason", "message", ...}}` (v2 409), `{"detail", "status", "title", "type"}`
/// with `detail` possibly null (v1). Anything else is kept as text.
pub(crate) fn error_detail(body: &[u8]) -> String {
    let detail = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => match object.get("detail") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(validation_item)
                .collect::<Vec<_>>()
                .join("; "),
            Some(Value::Object(inner)) => object_detail(inner),
            _ => match object.get("title").or_else(|| object.get("message")) {
                Some(Value::String(title)) => title.clone(),
                _ => Value::Object(object).to_string(),
            },
        },
        Ok(other) => other.to_string(),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    truncate(detail)
}

/// The entries of a validation error body's `detail` list (empty for other shapes).
pub(crate) fn field_errors(body: &[u8]) -> Vec<AirflowFieldError> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(Value::Array(items)) = object.get("detail") else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| AirflowFieldError {
            loc: item
                .get("loc")
                .and_then(Value::as_array)
                .map(|parts| parts.iter().map(loc_part).collect())
                .unwrap_or_default(),
            msg: truncate(
                item.get("msg")
                    .and_then(Value::as_str)
                    .map_or_else(|| item.to_string(), str::to_string),
            ),
            kind: item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("value_error")
                .to_string(),
        })
        .take(50)
        .collect()
}

fn loc_part(part: &Value) -> String {
    match part {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `body.logical_date: Field required` from one pydantic error.
fn validation_item(item: &Value) -> String {
    let msg = item.get("msg").and_then(Value::as_str);
    let loc = item
        .get("loc")
        .and_then(Value::as_array)
        .map(|parts| parts.iter().map(loc_part).collect::<Vec<_>>().join("."));
    match (loc, msg) {
        (Some(loc), Some(msg)) => format!("{loc}: {msg}"),
        (None, Some(msg)) => msg.to_string(),
        _ => item.to_string(),
    }
}

/// `Unique constraint violation: Serious error ...` from a v2 409 body.
fn object_detail(inner: &serde_json::Map<String, Value>) -> String {
    let text = |key: &str| inner.get(key).and_then(Value::as_str);
    match (text("reason"), text("message")) {
        (Some(reason), Some(message)) => format!("{reason}: {message}"),
        (Some(one), None) | (None, Some(one)) => one.to_string(),
        (None, None) => Value::Object(inner.clone()).to_string(),
    }
}

fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_DETAIL_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_shapes() {
        assert_eq!(
            error_detail(br#"{"detail": "Token Expired"}"#),
            "Token Expired"
        );
        assert_eq!(
            error_detail(
                br#"{"detail": [{"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required"}]}"#
            ),
            "body.logical_date: Field required"
        );
        assert_eq!(
            error_detail(
                br#"{"detail": {"reason": "Unique constraint violation", "message": "see logs"}}"#
            ),
            "Unique constraint violation: see logs"
        );
        assert_eq!(
            error_detail(br#"{"detail": null, "status": 403, "title": "Forbidden"}"#),
            "Forbidden"
        );
        assert_eq!(error_detail(b"  Bad Gateway\n"), "Bad Gateway");
    }

    #[test]
    fn long_details_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let detail = error_detail(long.as_bytes());
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(detail.ends_with('…'));
    }

    #[test]
    fn retryable_kinds() {
        let status = |status| AirflowError::status(status, "");
        assert!(status(429).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(409).is_retryable());
        assert!(AirflowError::Timeout(String::new()).is_retryable());
        assert!(AirflowError::Unreachable(String::new()).is_retryable());
        assert!(!AirflowError::Auth(String::new()).is_retryable());
        assert!(!AirflowError::Decode(String::new()).is_retryable());
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    #[test]
    fn validation_entries_keep_airflows_locations() {
        let body = br#"{"detail": [{"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required"}, {"loc": ["body", "conf", 0], "msg": "bad"}]}"#;
        assert_eq!(
            field_errors(body),
            vec![
                AirflowFieldError {
                    loc: vec!["body".into(), "logical_date".into()],
                    msg: "Field required".into(),
                    kind: "missing".into()
                },
                AirflowFieldError {
                    loc: vec!["body".into(), "conf".into(), "0".into()],
                    msg: "bad".into(),
                    kind: "value_error".into()
                },
            ]
        );
        assert!(field_errors(br#"{"detail": "text"}"#).is_empty());
        assert!(field_errors(b"not json").is_empty());
    }
}
