//! template.yaml's operations resources against the code and the runbook: every alarm names a
//! section of docs/OPERATIONS.md that exists; every metric of the dashboard and of the alarms
//! is one the code emits (`shared::telemetry::KINDS`, under one of its dimension sets) or one
//! AWS publishes (the documented metric names and dimensions of AWS/Lambda, AWS/ApiGateway
//! for HTTP APIs, AWS/DynamoDB); the HTTP API logs its access in JSON to a log group with
//! retention; the saved Logs Insights queries read the stack's log groups.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use shared::telemetry;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const RUNBOOK: &str = "docs/OPERATIONS.md";

/// Metrics AWS publishes, with the dimension sets it publishes them under (the services'
/// CloudWatch metric pages: Lambda "Types of metrics for Lambda functions", API Gateway
/// "HTTP API metrics and dimensions", DynamoDB "DynamoDB metrics and dimensions").
fn aws_metrics() -> BTreeMap<(&'static str, &'static str), Vec<Vec<&'static str>>> {
    let mut known = BTreeMap::new();
    let lambda_sets = || {
        vec![
            vec!["FunctionName"],
            vec!["FunctionName", "Resource"],
            vec![],
        ]
    };
    for metric in [
        "Invocations",
        "Errors",
        "Throttles",
        "Duration",
        "ConcurrentExecutions",
        "DeadLetterErrors",
        "DestinationDeliveryFailures",
        "ProvisionedConcurrencySpilloverInvocations",
        "RecursiveInvocationsDropped",
        "PostRuntimeExtensionsDuration",
    ] {
        known.insert(("AWS/Lambda", metric), lambda_sets());
    }
    known.insert(
        ("AWS/Lambda", "UnreservedConcurrentExecutions"),
        vec![vec![]],
    );
    known.insert(("AWS/Lambda", "ClaimedAccountConcurrency"), vec![vec![]]);
    for metric in [
        "Count",
        "4xx",
        "5xx",
        "Latency",
        "IntegrationLatency",
        "DataProcessed",
    ] {
        known.insert(
            ("AWS/ApiGateway", metric),
            vec![
                vec!["ApiId"],
                vec!["ApiId", "Stage"],
                vec!["ApiId", "Stage", "Route"],
            ],
        );
    }
    let table_and_index = || {
        vec![
            vec!["TableName"],
            vec!["TableName", "GlobalSecondaryIndexName"],
        ]
    };
    for metric in [
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
        "OnlineIndexConsumedWriteCapacity",
    ] {
        known.insert(("AWS/DynamoDB", metric), table_and_index());
    }
    for metric in [
        "ConditionalCheckFailedRequests",
        "TimeToLiveDeletedItemCount",
    ] {
        known.insert(("AWS/DynamoDB", metric), vec![vec!["TableName"]]);
    }
    for metric in [
        "ThrottledRequests",
        "SystemErrors",
        "SuccessfulRequestLatency",
        "ReturnedItemCount",
        "TransactionConflict",
    ] {
        known.insert(
            ("AWS/DynamoDB", metric),
            vec![vec!["TableName", "Operation"]],
        );
    }
    known.insert(("AWS/DynamoDB", "UserErrors"), vec![vec![]]);
    known
}

/// What the code emits: (metric, sorted dimension set) in the service's namespace.
fn emitted() -> BTreeSet<(String, Vec<String>)> {
    telemetry::KINDS
        .iter()
        .flat_map(|kind| {
            kind.dimension_sets().into_iter().flat_map(move |set| {
                kind.metrics
                    .iter()
                    .map(move |(name, _)| (name.to_string(), sorted(set.iter().copied())))
            })
        })
        .collect()
}

fn sorted<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(str::to_string).collect();
    names.sort();
    names
}

/// One metric the template refers to, and where.
#[derive(Debug)]
struct MetricUse {
    namespace: String,
    name: String,
    dimensions: Vec<String>,
    place: String,
}

fn check(metric: &MetricUse, aws: &BTreeMap<(&str, &str), Vec<Vec<&str>>>) -> Result<(), String> {
    if metric.namespace == telemetry::NAMESPACE {
        let key = (metric.name.clone(), metric.dimensions.clone());
        return if emitted().contains(&key) {
            Ok(())
        } else {
            Err(format!(
                "{}: {metric:?}: the code emits no such metric (telemetry::KINDS)",
                metric.place
            ))
        };
    }
    let sets = aws
        .iter()
        .find(|((ns, name), _)| *ns == metric.namespace && *name == metric.name)
        .map(|(_, sets)| sets)
        .ok_or_else(|| format!("{}: {metric:?}: not a metric AWS documents", metric.place))?;
    if sets
        .iter()
        .any(|set| sorted(set.iter().copied()) == metric.dimensions)
    {
        Ok(())
    } else {
        Err(format!(
            "{}: {metric:?}: AWS publishes it only under {sets:?}",
            metric.place
        ))
    }
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("template.yaml parses (CloudFormation tags included)")
}

/// A plain string, or the string of `!Sub "..."`.
fn text(value: &Yaml) -> Option<&str> {
    match value {
        Yaml::String(s) => Some(s),
        Yaml::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
        _ => None,
    }
}

fn resources_of<'a>(template: &'a Yaml, kind: &str) -> Vec<(String, &'a Yaml)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(id, resource)| (id.as_str().unwrap().to_string(), &resource["Properties"]))
        .collect()
}

/// GitHub's anchors of a markdown document's headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// The `Namespace`/`MetricName`/`Dimensions` of a metric (an alarm's, or a `MetricStat`'s).
fn metric_of(metric: &Yaml, place: String) -> MetricUse {
    let dimensions = metric["Dimensions"]
        .as_sequence()
        .map(|dims| {
            dims.iter()
                .map(|d| d["Name"].as_str().unwrap())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    MetricUse {
        namespace: metric["Namespace"].as_str().unwrap().to_string(),
        name: metric["MetricName"].as_str().unwrap().to_string(),
        dimensions: sorted(dimensions),
        place,
    }
}

fn alarm_metrics(id: &str, alarm: &Yaml) -> Vec<MetricUse> {
    if let Some(metrics) = alarm["Metrics"].as_sequence() {
        metrics
            .iter()
            .filter(|m| !m["MetricStat"].is_null())
            .map(|m| metric_of(&m["MetricStat"]["Metric"], format!("alarm {id}")))
            .collect()
    } else {
        vec![metric_of(alarm, format!("alarm {id}"))]
    }
}

/// The dashboard's body as JSON, its `${...}` substitutions replaced by a placeholder.
fn dashboard_body(template: &Yaml) -> Value {
    let dashboards = resources_of(template, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = text(&dashboards[0].1["DashboardBody"]).expect("DashboardBody is a !Sub string");
    let placeholder = regex::Regex::new(r"\$\{[A-Za-z0-9:.]+\}").unwrap();
    let body = placeholder.replace_all(body, "SUBSTITUTED");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("DashboardBody is JSON: {e}\n{body}"))
}

/// Every metric a dashboard widget graphs: explicit metric arrays
/// (`[namespace, name, dimension, value, ..., {options}]`) and SEARCH expressions (their
/// `{namespace,dimension,...}` schema and `MetricName="..."`).
fn dashboard_metrics(body: &Value) -> Vec<MetricUse> {
    let search = regex::Regex::new(
        r#"^SEARCH\('\{([^}]+)\} MetricName="([^"]+)"(?: AND .*)?', '[A-Za-z0-9.]+', \d+\)$"#,
    )
    .unwrap();
    let mut uses = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        if widget["type"] != "metric" {
            continue;
        }
        let title = widget["properties"]["title"].as_str().unwrap_or_default();
        for entry in widget["properties"]["metrics"].as_array().unwrap() {
            let entry = entry.as_array().unwrap();
            let place = format!("dashboard widget {title:?}");
            if let Some(expression) = entry[0].get("expression") {
                let expression = expression.as_str().unwrap();
                let captures = search.captures(expression).unwrap_or_else(|| {
                    panic!("{place}: not a SEARCH this test reads: {expression}")
                });
                let mut schema = captures[1].split(',').map(str::trim);
                let namespace = schema.next().unwrap().to_string();
                uses.push(MetricUse {
                    namespace,
                    name: captures[2].to_string(),
                    dimensions: sorted(schema),
                    place,
                });
                continue;
            }
            let strings: Vec<&str> = entry.iter().filter_map(Value::as_str).collect();
            assert!(
                strings.len() >= 2 && strings.len().is_multiple_of(2),
                "{place}: [namespace, name, dimension, value...] without shorthand: {entry:?}"
            );
            assert!(
                !strings.contains(&"."),
                "{place}: no '.' shorthand: {entry:?}"
            );
            uses.push(MetricUse {
                namespace: strings[0].to_string(),
                name: strings[1].to_string(),
                dimensions: sorted(strings[2..].iter().step_by(2).copied()),
                place,
            });
        }
    }
    uses
}

#[test]
fn every_alarm_names_a_runbook_section_that_exists() {
    let template = template();
    let runbook = std::fs::read_to_string(format!("{ROOT}/{RUNBOOK}")).expect("the runbook");
    let sections = anchors(&runbook);
    let alarms = resources_of(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 20, "{} alarms", alarms.len());
    let reference = regex::Regex::new(r"Runbook: docs/OPERATIONS\.md#([a-z0-9_-]+)").unwrap();
    for (id, alarm) in &alarms {
        let description = text(&alarm["AlarmDescription"])
            .unwrap_or_else(|| panic!("{id}: an AlarmDescription string"));
        let anchor = reference
            .captures(description)
            .unwrap_or_else(|| panic!("{id}: names its runbook section: {description}"))[1]
            .to_string();
        assert!(
            sections.contains(&anchor),
            "{id}: {RUNBOOK} has no section #{anchor} (sections: {sections:?})"
        );
        // Alarms notify when they fire and when they clear (a topic being optional).
        assert!(!alarm["AlarmActions"].is_null(), "{id}: AlarmActions");
    }
    // The heartbeat: no data is a missed run.
    let (_, heartbeat) = alarms
        .iter()
        .find(|(id, _)| id == "SyncHeartbeatAlarm")
        .expect("the sync heartbeat alarm");
    assert_eq!(heartbeat["TreatMissingData"].as_str(), Some("breaching"));
    assert_eq!(heartbeat["MetricName"].as_str(), Some("SyncRunSucceeded"));
}

#[test]
fn every_dashboard_and_alarm_metric_is_emitted_by_the_code_or_published_by_aws() {
    let template = template();
    let aws = aws_metrics();
    let mut uses = dashboard_metrics(&dashboard_body(&template));
    for (id, alarm) in resources_of(&template, "AWS::CloudWatch::Alarm") {
        uses.extend(alarm_metrics(&id, alarm));
    }
    let problems: Vec<String> = uses
        .iter()
        .filter_map(|metric| check(metric, &aws).err())
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // And the other way round: every metric the code emits is on the dashboard.
    let shown: BTreeSet<&str> = uses
        .iter()
        .filter(|m| m.namespace == telemetry::NAMESPACE)
        .map(|m| m.name.as_str())
        .collect();
    for kind in telemetry::KINDS {
        for (name, _) in kind.metrics {
            assert!(
                shown.contains(name),
                "{name} is emitted but not on the dashboard"
            );
        }
    }
}

#[test]
fn the_checks_reject_unknown_metrics() {
    let aws = aws_metrics();
    let use_of = |namespace: &str, name: &str, dimensions: &[&str]| MetricUse {
        namespace: namespace.into(),
        name: name.into(),
        dimensions: sorted(dimensions.iter().copied()),
        place: "test".into(),
    };
    assert!(
        check(
            &use_of("OrchestrationApi", "Latency", &["Function", "Route"]),
            &aws
        )
        .is_ok()
    );
    assert!(check(&use_of("OrchestrationApi", "Latency", &["Route"]), &aws).is_err());
    assert!(
        check(
            &use_of("OrchestrationApi", "Syncs", &["Function", "ConnectorId"]),
            &aws
        )
        .is_err()
    );
    assert!(check(&use_of("AWS/Lambda", "Errors", &["FunctionName"]), &aws).is_ok());
    assert!(check(&use_of("AWS/Lambda", "Failures", &["FunctionName"]), &aws).is_err());
    assert!(
        check(
            &use_of("AWS/DynamoDB", "ThrottledRequests", &["TableName"]),
            &aws
        )
        .is_err()
    );
}

#[test]
fn the_http_api_logs_its_access_in_json_with_retention() {
    let template = template();
    let api = &template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"];
    let format = api["Format"].as_str().expect("an access log format");
    // `$context.x` unquoted are numbers; quoted ones strings.
    let variable = regex::Regex::new(r"\$context\.[A-Za-z.]+").unwrap();
    let sample: Value = serde_json::from_str(&variable.replace_all(format, "1"))
        .unwrap_or_else(|e| panic!("the access log format is JSON: {e}: {format}"));
    for field in [
        "requestId",
        "routeKey",
        "status",
        "latency",
        "integrationLatency",
        "error",
        "integrationError",
    ] {
        assert!(sample.get(field).is_some(), "access logs carry {field}");
    }
    let destination = &api["DestinationArn"];
    let Yaml::Tagged(tagged) = destination else {
        panic!("DestinationArn: !GetAtt <log group>.Arn")
    };
    let group = tagged.value.as_str().unwrap().trim_end_matches(".Arn");
    let resource = &template["Resources"][group];
    assert_eq!(resource["Type"].as_str(), Some("AWS::Logs::LogGroup"));
    assert!(
        !resource["Properties"]["RetentionInDays"].is_null(),
        "{group}: retention"
    );
}

#[test]
fn the_saved_queries_read_the_stacks_log_groups() {
    let template = template();
    let queries = resources_of(&template, "AWS::Logs::QueryDefinition");
    let names: BTreeSet<String> = queries
        .iter()
        .map(|(_, q)| {
            text(&q["Name"])
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(
            [
                "slowest-requests-by-route",
                "errors-by-route",
                "request-trail",
                "sync-failures-by-connector"
            ]
            .map(String::from)
        )
    );
    for (id, query) in &queries {
        for group in query["LogGroupNames"].as_sequence().unwrap() {
            let Yaml::Tagged(reference) = group else {
                panic!("{id}: a !Ref to a log group of the stack")
            };
            let target = &template["Resources"][reference.value.as_str().unwrap()];
            assert_eq!(target["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id}");
        }
    }
}

/// The `!Ref` target of a value, if it is one.
fn reference(value: &Yaml) -> Option<&str> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        _ => None,
    }
}

/// Every function has its throttles alarm, its errors alarm and a duration alarm below its
/// timeout (and not so far below that a healthy function raises it).
#[test]
fn every_function_has_its_errors_throttles_and_duration_alarms() {
    let template = template();
    let default_timeout = template["Globals"]["Function"]["Timeout"].as_u64().unwrap();
    let alarms = resources_of(&template, "AWS::CloudWatch::Alarm");
    let functions = resources_of(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 5);
    for (function, properties) in &functions {
        let timeout_ms = properties["Timeout"].as_u64().unwrap_or(default_timeout) * 1000;
        let on_function = |metric: &str| -> Vec<&Yaml> {
            alarms
                .iter()
                .filter(|(_, alarm)| {
                    alarm["Namespace"].as_str() == Some("AWS/Lambda")
                        && alarm["MetricName"].as_str() == Some(metric)
                        && reference(&alarm["Dimensions"][0]["Value"]) == Some(function.as_str())
                })
                .map(|(_, alarm)| *alarm)
                .collect()
        };
        assert_eq!(
            on_function("Errors").len(),
            1,
            "{function}: an errors alarm"
        );
        assert_eq!(
            on_function("Throttles").len(),
            1,
            "{function}: a throttles alarm"
        );
        let duration = on_function("Duration");
        assert_eq!(duration.len(), 1, "{function}: a duration alarm");
        let threshold = duration[0]["Threshold"].as_u64().unwrap();
        assert!(
            threshold < timeout_ms && threshold * 10 >= timeout_ms * 9,
            "{function}: duration alarm at {threshold} ms for a {timeout_ms} ms timeout"
        );
        assert_eq!(
            duration[0]["Statistic"].as_str(),
            Some("Maximum"),
            "{function}"
        );
    }
}

/// The heartbeat's period is the schedule's rate, as the parameters' defaults come.
#[test]
fn the_heartbeat_period_is_the_schedule_rate() {
    let template = template();
    let parameters = &template["Parameters"];
    let rate = parameters["SyncScheduleRate"]["Default"].as_str().unwrap();
    let captures = regex::Regex::new(r"^rate\((\d+) (minute|minutes|hour|hours)\)$")
        .unwrap()
        .captures(rate)
        .unwrap_or_else(|| panic!("a rate expression: {rate}"));
    let unit = if captures[2].starts_with("minute") {
        60
    } else {
        3600
    };
    let seconds = captures[1].parse::<u64>().unwrap() * unit;
    assert_eq!(
        parameters["SyncHeartbeatPeriodSeconds"]["Default"].as_u64(),
        Some(seconds)
    );
}
