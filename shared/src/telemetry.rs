//! Operational signals: a request id on every log line, and CloudWatch metrics in Embedded
//! Metric Format (EMF) — JSON lines on stdout that CloudWatch Logs turns into metrics, with no
//! API call and no extra latency. Metrics are only emitted inside Lambda.
//!
//! Every record this service emits is one of the [`KINDS`]: its metric names, units and
//! dimensions are declared here once, and the template's dashboard and alarms are checked
//! against them (tests/tests/lambda/operations_template.rs). Dimensions are bounded sets
//! (function, route, outcome); unbounded values (connector, space, request and trace ids) are
//! properties of the line, for Logs Insights, never dimensions: each distinct dimension value
//! is a billed custom metric.
//!
//! Each line carries a `level` that Lambda's log-level filtering lets through (see
//! [`metric_level`]) and the RFC 3339 `timestamp` without which Lambda ignores the level: with
//! the JSON log format, Lambda gives a line without them the level INFO and drops it when
//! `ApplicationLogLevel` is WARN or above, and with it the metrics.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// CloudWatch namespace of every metric this service emits.
pub const NAMESPACE: &str = "OrchestrationApi";

/// The dimension every record has first: the Lambda function's name. Every metric is also
/// published under it alone (the function's roll-up).
pub const FUNCTION_DIMENSION: &str = "Function";

/// One kind of record: the extra dimensions it is published under (after
/// [`FUNCTION_DIMENSION`]) and its metrics as (name, CloudWatch unit), in the order
/// [`emit`] takes their values.
#[derive(Debug)]
pub struct RecordKind {
    pub dimensions: &'static [&'static str],
    pub metrics: &'static [(&'static str, &'static str)],
}

impl RecordKind {
    /// The dimension sets of every metric of this kind: all dimensions, and the function alone.
    pub fn dimension_sets(&self) -> Vec<Vec<&'static str>> {
        let mut all = vec![FUNCTION_DIMENSION];
        all.extend(self.dimensions);
        if all.len() > 1 {
            vec![all, vec![FUNCTION_DIMENSION]]
        } else {
            vec![all]
        }
    }
}

/// One answered HTTP request (`http::observe`): by route. `Errors4xx`/`Errors5xx` are 0 or 1
/// so that their sums count and their averages are rates. The status, request id and X-Ray
/// trace id are properties.
pub const REQUEST: RecordKind = RecordKind {
    dimensions: &["Route"],
    metrics: &[
        ("Requests", "Count"),
        ("Latency", "Milliseconds"),
        ("Errors4xx", "Count"),
        ("Errors5xx", "Count"),
    ],
};

/// One connector synced by the scheduled sync (`sync::due`): by outcome (`succeeded`,
/// `partial`, `failed`, `skipped`). The connector and space ids are properties.
pub const CONNECTOR_SYNC: RecordKind = RecordKind {
    dimensions: &["Outcome"],
    metrics: &[
        ("Syncs", "Count"),
        ("SyncFailed", "Count"),
        ("SyncDuration", "Milliseconds"),
        ("ItemsWritten", "Count"),
    ],
};

/// One scheduled run that finished (`sync::due::run`): the heartbeat. Its absence for a few
/// schedule periods means the schedule, the function or the store is broken.
pub const SYNC_RUN: RecordKind = RecordKind {
    dimensions: &[],
    metrics: &[
        ("SyncRunSucceeded", "Count"),
        ("ConnectorsDue", "Count"),
        ("ConnectorsFailed", "Count"),
    ],
};

/// Every kind of record the code emits.
pub const KINDS: [&RecordKind; 3] = [&REQUEST, &CONNECTOR_SYNC, &SYNC_RUN];

/// The Lambda function's name, when running in Lambda.
pub fn function_name() -> Option<String> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok()
}

/// The `level` of metric lines: INFO, or the function's `ApplicationLogLevel` when that is
/// above INFO (Lambda sets it as `AWS_LAMBDA_LOG_LEVEL`), so that Lambda's filter, which keeps
/// lines at that level or above, always keeps them. Metric lines are not diagnostics: a
/// search for errors excludes them with `not ispresent(_aws)`.
pub fn metric_level() -> &'static str {
    static LEVEL: OnceLock<&'static str> = OnceLock::new();
    LEVEL.get_or_init(|| level_for(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref()))
}

fn level_for(application_log_level: Option<&str>) -> &'static str {
    match application_log_level
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("WARN") => "WARN",
        Some("ERROR") => "ERROR",
        Some("FATAL") => "FATAL",
        _ => "INFO",
    }
}

/// Builds one EMF record of `kind`: `dimension_values` in the order of `kind.dimensions`
/// (after the function), `values` in the order of `kind.metrics`, plus properties (kept in the
/// log line, searchable, not metrics).
pub fn emf_record(
    timestamp_ms: i64,
    kind: &RecordKind,
    function: &str,
    dimension_values: &[String],
    values: &[f64],
    properties: &[(&str, Value)],
) -> Value {
    debug_assert_eq!(dimension_values.len(), kind.dimensions.len());
    debug_assert_eq!(values.len(), kind.metrics.len());
    let mut record = Map::new();
    record.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": kind.dimension_sets(),
                "Metrics": kind.metrics.iter().map(|(name, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }]
        }),
    );
    record.insert("level".into(), json!(metric_level()));
    // Lambda honours `level` only on a line with a valid RFC 3339 `timestamp` (without one
    // it assigns INFO): the record's own instant.
    let instant = chrono::DateTime::from_timestamp_millis(timestamp_ms).unwrap_or_default();
    record.insert(
        "timestamp".into(),
        json!(instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    record.insert(FUNCTION_DIMENSION.into(), json!(function));
    for (name, value) in kind.dimensions.iter().zip(dimension_values) {
        record.insert((*name).into(), json!(value));
    }
    for ((name, _), value) in kind.metrics.iter().zip(values) {
        // A non-finite value would make the line invalid EMF (and JSON null): count it as 0.
        let value = if value.is_finite() { *value } else { 0.0 };
        record.insert((*name).into(), json!(value));
    }
    for (name, value) in properties {
        record.entry(*name).or_insert_with(|| value.clone());
    }
    Value::Object(record)
}

/// Emits an EMF record on stdout when running in Lambda (a no-op elsewhere, unless a test
/// captures it: [`capture`]).
pub fn emit(
    kind: &RecordKind,
    dimension_values: &[String],
    values: &[f64],
    properties: &[(&str, Value)],
) {
    #[cfg(feature = "test-support")]
    if let Ok(Some(())) = CAPTURED.try_with(|captured| {
        let record = emf_record(
            chrono::Utc::now().timestamp_millis(),
            kind,
            &captured.function,
            dimension_values,
            values,
            properties,
        );
        captured.lines.lock().unwrap().push(record.to_string());
        Some(())
    }) {
        return;
    }
    let Some(function) = function_name() else {
        return;
    };
    let record = emf_record(
        chrono::Utc::now().timestamp_millis(),
        kind,
        &function,
        dimension_values,
        values,
        properties,
    );
    // One line per record, as CloudWatch expects; stdout is the function's log stream.
    println!("{record}");
}

#[cfg(feature = "test-support")]
struct Captured {
    function: String,
    lines: std::sync::Mutex<Vec<String>>,
}

#[cfg(feature = "test-support")]
tokio::task_local! {
    static CAPTURED: Captured;
}

/// Runs `future` as if in the Lambda function `function`, returning the metric lines it
/// emitted (exactly as they would be written to stdout) instead of writing them. Only what
/// runs in the future's own task is captured.
#[cfg(feature = "test-support")]
pub async fn capture<F: std::future::Future>(
    function: &str,
    future: F,
) -> (F::Output, Vec<String>) {
    let captured = Captured {
        function: function.to_string(),
        lines: Default::default(),
    };
    CAPTURED
        .scope(captured, async {
            let output = future.await;
            let lines = CAPTURED.with(|c| std::mem::take(&mut *c.lines.lock().unwrap()));
            (output, lines)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_records_have_the_documented_shape() {
        let record = emf_record(
            1_700_000_000_000,
            &REQUEST,
            "pipelines",
            &["GET /pipelines".into()],
            &[1.0, 12.5, 0.0, f64::NAN],
            &[("RequestId", json!("abc")), ("Route", json!("not this"))],
        );
        assert_eq!(record["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(record["timestamp"], "2023-11-14T22:13:20.000Z");
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Route"], ["Function"]])
        );
        assert_eq!(
            directive["Metrics"][1],
            json!({"Name": "Latency", "Unit": "Milliseconds"})
        );
        assert_eq!(record["Function"], "pipelines");
        assert_eq!(
            record["Route"], "GET /pipelines",
            "a property never replaces a dimension"
        );
        assert_eq!(record["Latency"], 12.5);
        assert_eq!(record["Errors5xx"], 0.0);
        assert_eq!(record["RequestId"], "abc");
    }

    #[test]
    fn metric_lines_pass_every_application_log_level() {
        assert_eq!(level_for(None), "INFO");
        assert_eq!(level_for(Some("DEBUG")), "INFO");
        assert_eq!(level_for(Some("trace")), "INFO");
        assert_eq!(level_for(Some("INFO")), "INFO");
        assert_eq!(level_for(Some("WARN")), "WARN");
        assert_eq!(level_for(Some("error")), "ERROR");
        assert_eq!(level_for(Some("FATAL")), "FATAL");
    }

    #[test]
    fn a_kind_without_extra_dimensions_has_one_dimension_set() {
        assert_eq!(SYNC_RUN.dimension_sets(), vec![vec!["Function"]]);
    }
}
