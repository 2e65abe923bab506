//! Building requests: URLs with percent-encoded path segments, paging parameters, the
//! trigger body of each API version.

use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde_json::{Map, Value, json};

use super::error::AirflowError;
use super::models::TriggerRequest;
use crate::domain::model::AirflowApiVersion;

/// Airflow silently caps `limit` at this (`[api] maximum_page_limit`, default 100).
pub const MAX_PAGE_LIMIT: u32 = 100;

/// Everything but RFC 3986's unreserved characters is percent-encoded in a path segment, so
/// run ids such as `scheduled__2026-01-01T00:00:00+00:00` keep their `:` and `+`. `~` stays
/// literal: it is Airflow's "all DAGs / all runs" wildcard.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{base}/api/v1|v2/<encoded segments>?<query>`.
pub(crate) fn api_url(
    base: &str,
    version: AirflowApiVersion,
    path: &[&str],
    query: &[(&str, String)],
) -> Result<Url, AirflowError> {
    let prefix = match version {
        AirflowApiVersion::V1 => "/api/v1",
        AirflowApiVersion::V2 => "/api/v2",
    };
    let mut text = format!("{base}{prefix}");
    for segment in path {
        if segment.is_empty() || *segment == "." || *segment == ".." {
            return Err(AirflowError::Invalid(format!(
                "`{segment}` cannot be a path segment"
            )));
        }
        text.push('/');
        text.extend(utf8_percent_encode(segment, PATH_SEGMENT));
    }
    let mut url = parse_url(&text)?;
    if !query.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(key, value)| (*key, value.as_str())));
    }
    Ok(url)
}

/// `limit` clamped to what Airflow honours (1..=100), and `offset`.
pub(crate) fn paging(offset: u32, limit: u32) -> Vec<(&'static str, String)> {
    vec![
        ("limit", limit.clamp(1, MAX_PAGE_LIMIT).to_string()),
        ("offset", offset.to_string()),
    ]
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Airflow 3 requires `logical_date` (null allowed); Airflow 2 gets only the fields set.
pub(crate) fn trigger_body(version: AirflowApiVersion, request: &TriggerRequest) -> Value {
    let mut body = Map::new();
    if let Some(dag_run_id) = &request.dag_run_id {
        body.insert("dag_run_id".into(), json!(dag_run_id));
    }
    match (request.logical_date, version) {
        (Some(at), _) => {
            body.insert("logical_date".into(), json!(timestamp(at)));
        }
        (None, AirflowApiVersion::V2) => {
            body.insert("logical_date".into(), Value::Null);
        }
        (None, AirflowApiVersion::V1) => {}
    }
    if let Some(conf) = &request.conf {
        body.insert("conf".into(), Value::Object(conf.clone()));
    }
    if let Some(note) = &request.note {
        body.insert("note".into(), json!(note));
    }
    Value::Object(body)
}

/// An http(s) URL without credentials, query or fragment; returned without trailing slash.
pub(crate) fn validate_base_url(base_url: &str) -> Result<String, AirflowError> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let url = parse_url(trimmed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AirflowError::Invalid(
            "the base URL must be http or https".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AirflowError::Invalid(
            "the base URL must not carry credentials".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(AirflowError::Invalid(
            "the base URL must not have a query or fragment".into(),
        ));
    }
    Ok(trimmed.to_string())
}

pub(crate) fn parse_url(text: &str) -> Result<Url, AirflowError> {
    // The text is not echoed: a mistyped base URL could hold a secret.
    Url::parse(text).map_err(|error| AirflowError::Invalid(format!("bad URL: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:9/airflow";

    #[test]
    fn path_segments_are_percent_encoded() {
        let url = api_url(
            BASE,
            AirflowApiVersion::V2,
            &[
                "dags",
                "my dag/x",
                "dagRuns",
                "scheduled__2026-01-01T00:00:00+00:00",
            ],
            &[("updated_at_gte", "2026-01-01T00:00:00+00:00".into())],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/airflow/api/v2/dags/my%20dag%2Fx/dagRuns/\
             scheduled__2026-01-01T00%3A00%3A00%2B00%3A00?updated_at_gte=2026-01-01T00%3A00%3A00%2B00%3A00"
        );
        let all = api_url(BASE, AirflowApiVersion::V1, &["dags", "~", "dagRuns"], &[]).unwrap();
        assert_eq!(all.path(), "/airflow/api/v1/dags/~/dagRuns");
    }

    #[test]
    fn dot_and_empty_segments_are_refused() {
        for bad in ["", ".", ".."] {
            let error = api_url(BASE, AirflowApiVersion::V2, &["dags", bad], &[]).unwrap_err();
            assert!(matches!(error, AirflowError::Invalid(_)), "{bad:?}");
        }
    }

    #[test]
    fn base_url_checks() {
        assert_eq!(
            validate_base_url("http://h:1/x/").unwrap(),
            "http://h:1/x".to_string()
        );
        for bad in ["ftp://h", "http://u:secret@h", "http://h/?a=1", "not a url"] {
            let error = validate_base_url(bad).unwrap_err();
            assert!(!error.to_string().contains("secret"), "{error}");
        }
    }

    #[test]
    fn trigger_bodies_per_version() {
        let empty = TriggerRequest::default();
        assert_eq!(
            trigger_body(AirflowApiVersion::V2, &empty),
            json!({"logical_date": null})
        );
        assert_eq!(trigger_body(AirflowApiVersion::V1, &empty), json!({}));
        let at = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let full = TriggerRequest {
            dag_run_id: Some("r1".into()),
            logical_date: Some(at),
            conf: Some(Map::from_iter([("k".to_string(), json!(1))])),
            note: Some("n".into()),
        };
        assert_eq!(
            trigger_body(AirflowApiVersion::V1, &full),
            json!({"dag_run_id": "r1", "logical_date": "2026-01-02T00:00:00Z", "conf": {"k": 1}, "note": "n"})
        );
    }
}
