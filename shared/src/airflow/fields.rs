//! Lenient reading of one JSON object from Airflow.
//!
//! Airflow adds fields and enum values in every minor release, and Airflow 2 and 3 name some
//! fields differently, so the models are read field by field: unknown fields are ignored, a
//! field of an unexpected type counts as absent, and only the identifiers every version sends
//! are required.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::AirflowError;

/// One item of an Airflow answer, named for error messages and warnings.
pub(crate) struct Fields<'a> {
    kind: &'static str,
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(kind: &'static str, value: &'a Value) -> Result<Self, AirflowError> {
        match value {
            Value::Object(object) => Ok(Self { kind, object }),
            other => Err(AirflowError::Decode(format!(
                "expected a {kind} object, got {}",
                type_name(other)
            ))),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|value| !value.is_null())
    }

    /// A string every Airflow version sends (an identifier): missing is a decode error.
    pub(crate) fn required_str(&self, key: &str) -> Result<String, AirflowError> {
        self.str(key)
            .ok_or_else(|| AirflowError::Decode(format!("{} without a string `{key}`", self.kind)))
    }

    pub(crate) fn str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Value::as_str).map(str::to_string)
    }

    /// An enum-like value (state, run type), lower-cased; any value is accepted.
    pub(crate) fn lower_str(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(Value::as_str)
            .map(|text| text.trim().to_ascii_lowercase())
    }

    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    pub(crate) fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// An RFC 3339 date-time; a malformed one is logged and read as absent.
    pub(crate) fn datetime(&self, key: &str) -> Option<DateTime<Utc>> {
        let text = self.get(key)?.as_str()?;
        match DateTime::parse_from_rfc3339(text) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(error) => {
                tracing::warn!(
                    kind = self.kind,
                    field = key,
                    value = text,
                    %error,
                    "Airflow sent a malformed date-time; treated as absent"
                );
                None
            }
        }
    }

    /// A list of strings; non-string entries are skipped.
    pub(crate) fn strings(&self, key: &str) -> Vec<String> {
        self.get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
