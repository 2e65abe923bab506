//! Operational signals: a request id on every log line, and CloudWatch metrics in Embedded
//! Metric Format (EMF) — JSON lines on stdout that CloudWatch Logs turns into metrics, with no
//! API call and no extra latency. Metrics are only emitted inside Lambda.

use serde_json::{Map, Value, json};

/// CloudWatch namespace of every metric this service emits.
pub const NAMESPACE: &str = "OrchestrationApi";

/// The Lambda function's name, when running in Lambda.
pub fn function_name() -> Option<String> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok()
}

/// One metric value.
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: f64,
    /// A CloudWatch unit: `Count`, `Milliseconds`, ...
    pub unit: &'a str,
}

/// Builds one EMF record: the metrics under the full dimension set and, rolled up, under the
/// first dimension alone (the function), plus extra properties (kept in the log line,
/// searchable, not metrics).
pub fn emf_record(
    timestamp_ms: i64,
    dimensions: &[(&str, String)],
    metrics: &[Metric<'_>],
    properties: &[(&str, Value)],
) -> Value {
    let mut record = Map::new();
    record.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets(dimensions),
                "Metrics": metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (name, value) in dimensions {
        record.insert((*name).into(), Value::String(value.clone()));
    }
    for metric in metrics {
        record.insert(metric.name.into(), json!(metric.value));
    }
    for (name, value) in properties {
        record.insert((*name).into(), value.clone());
    }
    Value::Object(record)
}

fn dimension_sets<'a>(dimensions: &[(&'a str, String)]) -> Vec<Vec<&'a str>> {
    let all: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    match all.first() {
        Some(first) if all.len() > 1 => vec![all.clone(), vec![*first]],
        _ => vec![all],
    }
}

/// Emits an EMF record on stdout when running in Lambda (a no-op elsewhere).
pub fn emit(dimensions: &[(&str, String)], metrics: &[Metric<'_>], properties: &[(&str, Value)]) {
    let Some(function) = function_name() else {
        return;
    };
    let mut all_dimensions = vec![("Function", function)];
    all_dimensions.extend(dimensions.iter().map(|(k, v)| (*k, v.clone())));
    let record = emf_record(
        chrono::Utc::now().timestamp_millis(),
        &all_dimensions,
        metrics,
        properties,
    );
    // One line per record, as CloudWatch expects; stdout is the function's log stream.
    println!("{record}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_records_have_the_documented_shape() {
        let record = emf_record(
            1_700_000_000_000,
            &[
                ("Function", "pipelines".into()),
                ("Route", "GET /pipelines".into()),
            ],
            &[Metric {
                name: "Latency",
                value: 12.5,
                unit: "Milliseconds",
            }],
            &[("RequestId", json!("abc"))],
        );
        assert_eq!(record["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Route"], ["Function"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Latency", "Unit": "Milliseconds"}])
        );
        assert_eq!(record["Route"], "GET /pipelines");
        assert_eq!(record["Latency"], 12.5);
        assert_eq!(record["RequestId"], "abc");
    }
}
