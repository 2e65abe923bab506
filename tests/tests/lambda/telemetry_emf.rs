//! Every metric line the functions emit, checked against the CloudWatch Embedded Metric Format
//! specification (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
//! the real code paths (every route's fixture through its function, error answers, the
//! scheduled sync with a healthy and a failing connector) run under `telemetry::capture`, which
//! returns the lines exactly as they would be written to stdout.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_http::{Context, LambdaEvent};
use local::admin::fixtures;
use orchestration_tests::Backend;
use orchestration_tests::app::TestApp;
use orchestration_tests::fake_airflow::FakeAirflow;
use serde_json::Value;
use shared::http::AppState;
use shared::secrets::SecretResolver;
use shared::telemetry;

use crate::lambda_events::{
    FIXTURES, Function, Ids, KEY, SCHEDULE_FIXTURE, invoke, read_fixture, send,
};

/// The units CloudWatch accepts (the `StandardUnit` list).
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The levels Lambda's log-level filtering knows; a metric line must carry one of those that
/// pass at INFO (the template's `ApplicationLogLevel`).
const LAMBDA_LEVELS: [&str; 4] = ["INFO", "WARN", "ERROR", "FATAL"];

/// One (namespace, metric, dimension set) a line publishes.
type Published = (String, String, Vec<String>);

/// Validates one stdout line as an EMF log event; returns what it publishes.
fn validate_emf(line: &str) -> Result<Vec<Published>, String> {
    if line.contains('\n') {
        return Err("an EMF event is one line".into());
    }
    if line.len() > 1_048_576 {
        return Err("larger than a CloudWatch Logs event (1 MB)".into());
    }
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let root = root.as_object().ok_or("the root is not an object")?;
    let aws = root["_aws"].as_object().ok_or("no _aws object")?;
    let timestamp = &aws["Timestamp"];
    if !(timestamp.is_i64() || timestamp.is_u64()) {
        return Err(format!("Timestamp is not an integer: {timestamp}"));
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let age = now_ms - timestamp.as_i64().unwrap_or_default();
    if !(0..=60_000).contains(&age) {
        return Err(format!("Timestamp is not now in milliseconds: {timestamp}"));
    }
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .ok_or("CloudWatchMetrics is not an array")?;
    if directives.is_empty() {
        return Err("no metric directive".into());
    }
    let mut published = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"]
            .as_str()
            .filter(|n| !n.trim().is_empty() && n.len() <= 255)
            .ok_or("Namespace is not a non-empty string of at most 255 characters")?;
        let dimension_sets = directive["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        let mut sets = Vec::new();
        for set in dimension_sets {
            let names = set.as_array().ok_or("a dimension set is not an array")?;
            if names.len() > 30 {
                return Err("a dimension set has more than 30 dimensions".into());
            }
            let mut set_names = Vec::new();
            for name in names {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                let value = root
                    .get(name)
                    .ok_or(format!("dimension {name} is not a root member"))?;
                let value = value
                    .as_str()
                    .ok_or(format!("dimension {name} is not a string: {value}"))?;
                if value.trim().is_empty() || value.len() > 1024 || !value.is_ascii() {
                    return Err(format!("dimension {name} has an invalid value {value:?}"));
                }
                set_names.push(name.to_string());
            }
            sets.push(set_names);
        }
        let metrics = directive["Metrics"]
            .as_array()
            .ok_or("Metrics is not an array")?;
        if metrics.is_empty() || metrics.len() > 100 {
            return Err(format!(
                "{} metrics in a directive (1 to 100)",
                metrics.len()
            ));
        }
        let mut names = BTreeSet::new();
        for metric in metrics {
            let name = metric["Name"]
                .as_str()
                .filter(|n| !n.is_empty() && n.len() <= 1024)
                .ok_or("a metric Name is not a non-empty string")?;
            if !names.insert(name) {
                return Err(format!("metric {name} is defined twice"));
            }
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().unwrap_or_default();
                if !UNITS.contains(&unit) {
                    return Err(format!(
                        "metric {name} has unit {unit:?}, not a CloudWatch unit"
                    ));
                }
            }
            if let Some(resolution) = metric.get("StorageResolution")
                && resolution != 1
                && resolution != 60
            {
                return Err(format!("metric {name}: StorageResolution {resolution}"));
            }
            let value = root
                .get(name)
                .ok_or(format!("metric {name} is not a root member"))?;
            let numeric = match value {
                Value::Number(_) => true,
                Value::Array(values) => values.len() <= 100 && values.iter().all(Value::is_number),
                _ => false,
            };
            if !numeric {
                return Err(format!("metric {name} is not a number or numbers: {value}"));
            }
            for set in &sets {
                published.push((namespace.to_string(), name.to_string(), set.clone()));
            }
        }
    }
    // Lambda's log-level filtering reads `level` only next to a valid RFC 3339 `timestamp`.
    let instant = root
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .ok_or("no RFC 3339 timestamp: Lambda would treat the line as INFO")?;
    if instant.timestamp_millis() != timestamp.as_i64().unwrap_or_default() {
        return Err(format!(
            "timestamp {instant} is not the metrics' {timestamp}"
        ));
    }
    let level = root
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !LAMBDA_LEVELS.contains(&level) {
        return Err(format!(
            "level {level:?}: Lambda's log-level filtering would treat the line as INFO or drop it"
        ));
    }
    Ok(published)
}

/// What the code declares it emits: every metric of every kind under each of its dimension sets.
fn declared() -> BTreeSet<Published> {
    telemetry::KINDS
        .iter()
        .flat_map(|kind| {
            kind.dimension_sets().into_iter().flat_map(move |set| {
                kind.metrics.iter().map(move |(name, _)| {
                    (
                        telemetry::NAMESPACE.to_string(),
                        name.to_string(),
                        set.iter().map(|d| d.to_string()).collect(),
                    )
                })
            })
        })
        .collect()
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn the_validator_rejects_what_cloudwatch_rejects() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let at = chrono::DateTime::from_timestamp_millis(now as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let good = format!(
        r#"{{"_aws":{{"Timestamp":{now},"CloudWatchMetrics":[{{"Namespace":"N","Dimensions":[["D"]],"Metrics":[{{"Name":"M","Unit":"Count"}}]}}]}},"D":"x","M":1,"level":"INFO","timestamp":"{at}"}}"#
    );
    assert!(validate_emf(&good).is_ok(), "{:?}", validate_emf(&good));
    for (broken, why) in [
        (
            good.replace(r#""D":"x""#, r#""D":5"#),
            "a dimension value that is not a string",
        ),
        (
            good.replace(r#""M":1"#, r#""M":"1""#),
            "a metric value that is not a number",
        ),
        (
            good.replace(r#""Unit":"Count""#, r#""Unit":"Requests""#),
            "an unknown unit",
        ),
        (
            good.replace(&now.to_string(), &format!("{now}.5")),
            "a timestamp that is not an integer",
        ),
        (
            good.replace(&now.to_string(), &(now / 1000).to_string()),
            "a timestamp in seconds",
        ),
        (good.replace(r#","level":"INFO""#, ""), "no level"),
        (good.replace(&at, "yesterday"), "no RFC 3339 timestamp"),
        (
            good.replace(r#"[["D"]]"#, r#"[["E"]]"#),
            "a dimension that is not a root member",
        ),
        (
            good.replace(
                r#""Metrics":[{"Name":"M","Unit":"Count"}]"#,
                r#""Metrics":[]"#,
            ),
            "no metric",
        ),
    ] {
        assert!(validate_emf(&broken).is_err(), "accepted {why}: {broken}");
    }
}

/// Every metric line of every route, of error answers and of the scheduled sync is valid EMF,
/// and together they publish exactly what `telemetry::KINDS` declares (what the template's
/// dashboard and alarms are checked against).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_line_the_functions_emit_is_valid_emf() {
    // Every route, with the data of `admin load-fixtures` (as every_fixture_finds_the_data...).
    let table = orchestration_tests::TestTable::new(Backend::Embedded).await;
    let repo = shared::repo::Repository::new(table.table.clone());
    let airflow = FakeAirflow::start().await;
    airflow.with(|state| state.add_dag(fixtures::DAG_ID, "data-team"));
    let args = fixtures::LoadFixturesArgs {
        airflow_url: airflow.url(),
        airflow_username: "admin".into(),
        password_secret_arn: None,
        password_env: None,
        password_stored: Some("admin".into()),
        allow_public_key: false,
    };
    local::admin::run(&repo, None, local::admin::AdminCommand::LoadFixtures(args))
        .await
        .expect("admin load-fixtures");
    let state = AppState::new(repo.clone());
    let ids = Ids::new(KEY);
    let mut lines = Vec::new();
    for (function, name) in FIXTURES {
        let (answer, emitted) =
            telemetry::capture(function.dir(), send(function, name, &state, &ids)).await;
        assert_eq!(emitted.len(), 1, "{name}: one request line per request");
        let record: Value = serde_json::from_str(&emitted[0]).unwrap();
        assert_eq!(record["Status"], answer.status, "{name}");
        assert_eq!(record["Function"], function.dir(), "{name}");
        lines.extend(emitted);
    }
    // An unknown key (401) and a route of another function (404, `unmatched`).
    let wrong = Ids::new("orch_unknownunknownunknownunknownunknown00");
    let (answer, emitted) = telemetry::capture(
        "pipelines",
        send(Function::Pipelines, "list-pipelines", &state, &wrong),
    )
    .await;
    assert_eq!(answer.status, 401);
    let record = &parse(&emitted)[0];
    assert_eq!(
        (&record["Errors4xx"], &record["Errors5xx"]),
        (&1.0.into(), &0.0.into())
    );
    lines.extend(emitted);
    let other = ids.substitute(&read_fixture("pipelines/list-pipelines.json"));
    let (answer, emitted) = telemetry::capture(
        "runs",
        invoke(Function::Runs, &state, &other, "another's route"),
    )
    .await;
    assert_eq!(answer.status, 404);
    assert!(
        parse(&emitted)[0]["Route"]
            .as_str()
            .unwrap()
            .ends_with(" unmatched")
    );
    lines.extend(emitted);

    // The scheduled sync: a healthy connector (fake Airflow) and failing ones (TestApp's
    // default connectors point at a closed port).
    let app = TestApp::spawn(Backend::Embedded).await;
    let (_airflow, connector) = app.with_fake_airflow().await;
    let mut context = Context::default();
    context.deadline = (SystemTime::now() + Duration::from_secs(60))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = LambdaEvent::<Value>::new(
        serde_json::from_str(&read_fixture(SCHEDULE_FIXTURE)).unwrap(),
        context,
    );
    let (summary, emitted) = telemetry::capture(
        "scheduled-sync",
        scheduled_sync_function::handle(
            &app.repo,
            &SecretResolver::new(),
            &shared::sync::due::Settings::default(),
            event,
        ),
    )
    .await;
    let summary = summary.unwrap();
    let records = parse(&emitted);
    let syncs: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("Syncs").is_some())
        .collect();
    assert_eq!(syncs.len(), summary.due, "one line per connector");
    let ours = syncs
        .iter()
        .find(|r| r["ConnectorId"] == connector.id.to_string())
        .expect("the connector's line names it");
    assert_eq!(
        (&ours["Outcome"], &ours["SyncFailed"]),
        (&"succeeded".into(), &0.0.into())
    );
    assert!(ours["ItemsWritten"].as_f64().unwrap() >= 4.0, "{ours}");
    let failed = syncs
        .iter()
        .find(|r| r["Outcome"] == "failed")
        .expect("a failing connector");
    assert_eq!(failed["SyncFailed"], 1.0);
    assert!(
        failed["Error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    for record in &syncs {
        let dimensions = record["_aws"]["CloudWatchMetrics"][0]["Dimensions"].to_string();
        assert!(
            !dimensions.contains("ConnectorId") && !dimensions.contains("SpaceId"),
            "connector and space are properties, not dimensions: {dimensions}"
        );
    }
    let heartbeat: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("SyncRunSucceeded").is_some())
        .collect();
    assert_eq!(heartbeat.len(), 1, "one heartbeat per run");
    assert_eq!(heartbeat[0]["ConnectorsDue"], summary.due as f64);
    assert_eq!(heartbeat[0]["ConnectorsFailed"], summary.failed as f64);
    lines.extend(emitted);

    let request_line = lines.iter().find(|l| l.contains("\"Requests\"")).unwrap();
    println!("a request's metric line: {} bytes", request_line.len() + 1);
    let mut published = BTreeSet::new();
    for line in &lines {
        let what = validate_emf(line).unwrap_or_else(|e| panic!("invalid EMF ({e}): {line}"));
        published.extend(what);
    }
    assert_eq!(
        published,
        declared(),
        "the lines publish exactly the metrics telemetry::KINDS declares"
    );
}
