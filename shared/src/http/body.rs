//! JSON request bodies: size limit (413), `Content-Type: application/json` (415), valid JSON
//! (422 `json_invalid`), and field-by-field validation with platform-format 422s (missing
//! fields, wrong types, unknown fields).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};

/// A JSON object body. An empty body is allowed only where the endpoint says so
/// ([`JsonBody::optional`]).
pub struct JsonBody(Option<Map<String, Value>>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Error::PayloadTooLarge
                } else {
                    Error::validation(&["body"], "Could not read the request body", "body_read")
                }
            })?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        match content_type.as_deref() {
            Some("application/json") => {}
            Some(ct) if ct.starts_with("application/") && ct.ends_with("+json") => {}
            _ => return Err(Error::UnsupportedMediaType),
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::validation(&["body"], format!("JSON decode error: {e}"), "json_invalid")
        })?;
        match value {
            Value::Object(map) => Ok(Self(Some(map))),
            // JSON `null` is no body: where the body is optional (trigger) the document allows
            // `null` for it, and where it is required it is then reported as missing.
            Value::Null => Ok(Self(None)),
            _ => Err(Error::validation(
                &["body"],
                "Input should be a JSON object",
                "model_type",
            )),
        }
    }
}

impl JsonBody {
    /// The object; a missing body is 422 like a missing field.
    pub fn required(self) -> Result<Fields> {
        match self.0 {
            Some(map) => Ok(Fields::new(map)),
            None => Err(Error::validation(&["body"], "Field required", "missing")),
        }
    }

    /// The object, or an empty one when there is no body.
    pub fn optional(self) -> Fields {
        Fields::new(self.0.unwrap_or_default())
    }
}

/// Field-by-field reading of a body object, collecting every error, rejecting unknown fields.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, name: &str, msg: impl Into<String>, kind: &str) {
        self.errors
            .push(FieldError::new(&["body", name], msg, kind));
    }

    /// `Some(value)` when present (JSON `null` included); records `missing` when required.
    fn take(&mut self, name: &str, required: bool) -> Option<Value> {
        let value = self.map.remove(name);
        if value.is_none() && required {
            self.error(name, "Field required", "missing");
        }
        value
    }

    /// A required string.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.take(name, true)? {
            Value::String(s) => Some(s),
            _ => {
                self.error(name, "Input should be a valid string", "string_type");
                None
            }
        }
    }

    /// A required field that may be `null`: `Some(None)` for null.
    pub fn nullable_uuid(&mut self, name: &str) -> Option<Option<Uuid>> {
        match self.take(name, true)? {
            Value::Null => Some(None),
            Value::String(s) => match Uuid::parse_str(&s) {
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    self.error(name, "Input should be a valid UUID", "uuid_parsing");
                    None
                }
            },
            _ => {
                self.error(name, "Input should be a valid UUID", "uuid_type");
                None
            }
        }
    }

    /// A required field that is an integer in `min..=max`, or `null`.
    pub fn nullable_integer(&mut self, name: &str, min: u64, max: u64) -> Option<Option<u64>> {
        match self.take(name, true)? {
            Value::Null => Some(None),
            Value::Number(n) => match n.as_u64().filter(|n| (min..=max).contains(n)) {
                Some(n) => Some(Some(n)),
                None if n.is_u64() || n.is_i64() => {
                    self.error(
                        name,
                        format!("Input should be between {min} and {max}"),
                        "range",
                    );
                    None
                }
                None => {
                    self.error(name, "Input should be a valid integer", "int_type");
                    None
                }
            },
            _ => {
                self.error(name, "Input should be a valid integer or null", "int_type");
                None
            }
        }
    }

    /// A required field that is one of `allowed` labels, or `null`.
    pub fn nullable_choice<T: Copy>(
        &mut self,
        name: &str,
        all: &[T],
        label: fn(T) -> &'static str,
    ) -> Option<Option<T>> {
        match self.take(name, true)? {
            Value::Null => Some(None),
            Value::String(s) => {
                if let Some(value) = all.iter().find(|v| label(**v) == s) {
                    return Some(Some(*value));
                }
                let labels: Vec<String> = all.iter().map(|v| format!("'{}'", label(*v))).collect();
                self.error(
                    name,
                    format!("Input should be {} or null", labels.join(", ")),
                    "enum",
                );
                None
            }
            _ => {
                self.error(
                    name,
                    "Input should be a valid string or null",
                    "string_type",
                );
                None
            }
        }
    }

    /// An optional object (absent or null → `None`).
    pub fn optional_object(&mut self, name: &str) -> Option<Map<String, Value>> {
        match self.take(name, false)? {
            Value::Null => None,
            Value::Object(map) => Some(map),
            _ => {
                self.error(name, "Input should be a valid dictionary", "dict_type");
                None
            }
        }
    }

    /// An optional string (absent or null → `None`).
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.take(name, false)? {
            Value::Null => None,
            Value::String(s) => Some(s),
            _ => {
                self.error(name, "Input should be a valid string", "string_type");
                None
            }
        }
    }

    /// An optional RFC 3339 date-time with an offset (absent or null → `None`).
    pub fn optional_datetime(&mut self, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.take(name, false)? {
            Value::Null => None,
            Value::String(s) => match chrono::DateTime::parse_from_rfc3339(&s) {
                Ok(at) => Some(at.with_timezone(&chrono::Utc)),
                Err(_) => {
                    self.error(
                        name,
                        "Input should be a valid datetime in RFC 3339 format with a time zone",
                        "datetime_parsing",
                    );
                    None
                }
            },
            _ => {
                self.error(
                    name,
                    "Input should be a valid datetime string",
                    "datetime_type",
                );
                None
            }
        }
    }

    /// Adds an error found by the caller's own checks.
    pub fn reject(&mut self, name: &str, msg: impl Into<String>, kind: &str) {
        self.error(name, msg, kind);
    }

    /// Ends reading and returns the one required value read: unknown fields and every error
    /// collected become one 422.
    pub fn finish_with<T>(self, value: Option<T>) -> Result<T> {
        self.finish()?;
        value.ok_or_else(|| Error::internal("a required body field was neither read nor reported"))
    }

    /// Ends reading: unknown fields and every error collected become one 422.
    pub fn finish(mut self) -> Result<()> {
        let extra: Vec<String> = self.map.keys().cloned().collect();
        for name in extra {
            self.error(&name, "Extra inputs are not permitted", "extra_forbidden");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn read(body: &'static str) -> Result<JsonBody> {
        let request = Request::builder()
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        JsonBody::from_request(request, &()).await
    }

    #[tokio::test]
    async fn json_null_is_no_body() {
        let optional = read("null").await.unwrap().optional();
        assert!(optional.finish().is_ok(), "null where a body is optional");
        let Err(Error::Validation(errors)) = read("null").await.unwrap().required() else {
            panic!("null where a body is required is rejected");
        };
        assert_eq!(errors[0].kind, "missing");
        let Err(Error::Validation(errors)) = read("[]").await else {
            panic!("a JSON array is not an object");
        };
        assert_eq!(errors[0].kind, "model_type");
    }
}
