//! The API Gateway event fixtures of `events/` through the Lambda functions, in process.
//!
//! Each fixture is parsed exactly as the Lambda runtime parses an invocation's payload
//! (`lambda_http::request::LambdaRequest`), then handed to `lambda_http::Adapter` around the
//! function's router: the same adapter `lambda_http::run` puts between the runtime and the
//! router. So a test covers the payload parsing (path, stage, query, headers, body), the
//! router and handlers, and the response conversion back into API Gateway's response JSON.
//! The fixtures carry the key and ids of `orchestration admin load-fixtures`
//! (`local::admin::fixtures`); these tests substitute those of a store they seed themselves.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::cloudwatch_events::CloudWatchEvent;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::{Adapter, Context, LambdaEvent};
use local::admin::fixtures;
use orchestration_tests::Backend;
use orchestration_tests::app::{SPACE, TestApp, run, task_run};
use orchestration_tests::fake_airflow::FakeAirflow;
use serde_json::{Map, Value, json};
use shared::domain::model::RunStatus;
use shared::http::AppState;
use shared::secrets::SecretResolver;
use tower::ServiceExt;
use uuid::Uuid;

/// The key and ids written in the fixtures: those `admin load-fixtures` creates (checked in
/// `fixtures_cover_every_route_once_and_are_consistent`).
pub(crate) const KEY: &str = "orch_fixturefixturefixturefixturefixture00";
const PIPELINE: &str = "ef0c934d-1c36-5a46-96e5-cdc30b47aef7";
const RUN: &str = "eb27060d-fbfa-5b11-b9da-205263330597";
const TASK_RUN: &str = "40bdb311-23d9-5181-84a1-c0ecb1155c2b";
const COMMENT: &str = "44444444-4444-4444-8444-444444444444";
const CONNECTOR: &str = "55555555-5555-4555-8555-555555555555";
const TEAM: &str = "66666666-6666-4666-8666-666666666666";

/// The Lambda functions behind API Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Pipelines,
    Runs,
    Comments,
    Connectors,
}

impl Function {
    pub(crate) const ALL: [Function; 4] = [
        Function::Pipelines,
        Function::Runs,
        Function::Comments,
        Function::Connectors,
    ];

    /// Its folder under `events/` (and its binary's name in template.yaml).
    pub(crate) fn dir(self) -> &'static str {
        match self {
            Function::Pipelines => "pipelines",
            Function::Runs => "runs",
            Function::Comments => "comments",
            Function::Connectors => "connectors",
        }
    }

    /// The router its `main` hands to `lambda_http::run`.
    pub(crate) fn router(self, state: AppState) -> axum::Router {
        match self {
            Function::Pipelines => pipelines_function::router(state),
            Function::Runs => runs_function::router(state),
            Function::Comments => comments_function::router(state),
            Function::Connectors => connectors_function::router(state),
        }
    }
}

/// Every HTTP API (payload v2) fixture: one per route of the contract.
pub(crate) const FIXTURES: [(Function, &str); 20] = [
    (Function::Pipelines, "list-pipelines"),
    (Function::Pipelines, "get-pipeline"),
    (Function::Pipelines, "set-team"),
    (Function::Pipelines, "set-criticality"),
    (Function::Pipelines, "set-freshness"),
    (Function::Pipelines, "watch"),
    (Function::Pipelines, "unwatch"),
    (Function::Pipelines, "trigger"),
    (Function::Pipelines, "list-events"),
    (Function::Runs, "list-runs"),
    (Function::Runs, "get-run"),
    (Function::Comments, "list-run-comments"),
    (Function::Comments, "create-run-comment"),
    (Function::Comments, "list-task-run-comments"),
    (Function::Comments, "create-task-run-comment"),
    (Function::Comments, "put-comment"),
    (Function::Comments, "patch-comment"),
    (Function::Comments, "delete-comment"),
    (Function::Connectors, "sync"),
    (Function::Connectors, "list-syncs"),
];

/// The REST API (payload v1) fixture, behind the named stage `prod`.
const REST_V1_FIXTURE: &str = "pipelines/list-pipelines.rest-v1.json";

/// The EventBridge scheduled event of the scheduled-sync function.
pub(crate) const SCHEDULE_FIXTURE: &str = "scheduled-sync/schedule.json";

/// The two routes outside the contract (no key), served by the pipelines function.
const META_FIXTURES: [&str; 2] = ["pipelines/health.json", "pipelines/openapi.json"];

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

pub(crate) fn read_fixture(relative: &str) -> String {
    let path = events_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The real key and ids that replace the fixtures' placeholders.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    pub(crate) key: String,
    pub(crate) pipeline: Uuid,
    pub(crate) run: Uuid,
    pub(crate) task_run: Uuid,
    pub(crate) comment: Uuid,
    pub(crate) connector: Uuid,
    pub(crate) team: Uuid,
}

impl Ids {
    /// The placeholders themselves, with a real key.
    pub(crate) fn new(key: &str) -> Self {
        let id = |s: &str| Uuid::parse_str(s).unwrap();
        Self {
            key: key.to_string(),
            pipeline: id(PIPELINE),
            run: id(RUN),
            task_run: id(TASK_RUN),
            comment: id(COMMENT),
            connector: id(CONNECTOR),
            team: id(TEAM),
        }
    }

    pub(crate) fn substitute(&self, text: &str) -> String {
        text.replace(KEY, &self.key)
            .replace(PIPELINE, &self.pipeline.to_string())
            .replace(RUN, &self.run.to_string())
            .replace(TASK_RUN, &self.task_run.to_string())
            .replace(COMMENT, &self.comment.to_string())
            .replace(CONNECTOR, &self.connector.to_string())
            .replace(TEAM, &self.team.to_string())
    }
}

/// What API Gateway receives back from the function.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Header names in lower case; several values of one name joined with ", ".
    headers: Map<String, Value>,
    /// The body as JSON (`Null` when there is none).
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    /// The response as the runtime would post it: API Gateway's response JSON.
    fn from_response(response: Value, origin: &str) -> Self {
        let status = response["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("{origin}: no statusCode in {response}"))
            as u16;
        assert_eq!(
            response["isBase64Encoded"],
            json!(false),
            "{origin}: a JSON answer travels as text: {response}"
        );
        let mut headers = Map::new();
        if let Some(single) = response["headers"].as_object() {
            for (name, value) in single {
                headers.insert(name.to_ascii_lowercase(), value.clone());
            }
        }
        if let Some(multi) = response["multiValueHeaders"].as_object() {
            for (name, values) in multi {
                let joined = values
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                headers.insert(name.to_ascii_lowercase(), Value::String(joined));
            }
        }
        let body = match response["body"].as_str() {
            None | Some("") => Value::Null,
            Some(text) => serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("{origin}: body is not JSON ({e}): {text}")),
        };
        Self {
            status,
            headers,
            body,
        }
    }
}

/// Parses `event` as the runtime does, runs it through `function`, returns API Gateway's view.
pub(crate) async fn invoke(
    function: Function,
    state: &AppState,
    event: &str,
    what: &str,
) -> Answer {
    let request: LambdaRequest = serde_json::from_str(event)
        .unwrap_or_else(|e| panic!("{what}: lambda_http cannot parse the event: {e}"));
    let origin = match request.request_origin() {
        RequestOrigin::ApiGatewayV2 => "API Gateway HTTP API (v2)",
        RequestOrigin::ApiGatewayV1 => "API Gateway REST API (v1)",
        other => panic!("{what}: parsed as {other:?}, not an API Gateway event"),
    };
    let response = Adapter::from(function.router(state.clone()))
        .oneshot(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    let response = serde_json::to_value(&response).unwrap();
    // API Gateway's response (status, headers, body) for the suite-wide exposure scan.
    orchestration_tests::exposure::record_body("lambda", response.to_string().as_bytes());
    Answer::from_response(response, &format!("{what} ({origin})"))
}

/// Runs the HTTP API fixture `function/name` (placeholders replaced by `ids`) through `function`.
pub(crate) async fn send(function: Function, name: &str, state: &AppState, ids: &Ids) -> Answer {
    let what = format!("events/{}/{name}.json", function.dir());
    let event = ids.substitute(&read_fixture(&format!("{}/{name}.json", function.dir())));
    let answer = invoke(function, state, &event, &what).await;
    println!("{what} -> {}", answer.status);
    answer
}

/// A fake Airflow with DAG `etl` (one finished run), and the seeded `acme` connector pointed
/// at it with a stored password.
fn ids_of(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The fixtures themselves
// ---------------------------------------------------------------------------------------------

/// Every operation of docs/openapi.json has exactly one fixture, and every fixture file is
/// exercised here; each fixture is a consistent HTTP API v2 event of its route.
#[test]
fn fixtures_cover_every_route_once_and_are_consistent() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    documented.sort();

    // The key and ids are those of the fixture data (`scripts/admin load-fixtures`).
    assert_eq!(KEY, fixtures::KEY);
    assert_eq!(PIPELINE, fixtures::pipeline_id().to_string());
    assert_eq!(RUN, fixtures::run_id().to_string());
    assert_eq!(TASK_RUN, fixtures::task_run_id().to_string());
    assert_eq!(COMMENT, fixtures::COMMENT.to_string());
    assert_eq!(CONNECTOR, fixtures::CONNECTOR.to_string());
    assert_eq!(TEAM, fixtures::TEAM.to_string());

    let mut route_keys = Vec::new();
    let mut base64_bodies = 0;
    for (function, name) in FIXTURES {
        let what = format!("events/{}/{name}.json", function.dir());
        let event: Value =
            serde_json::from_str(&read_fixture(&format!("{}/{name}.json", function.dir())))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        let route_key = event["routeKey"].as_str().unwrap().to_string();
        let (method, template) = route_key.split_once(' ').unwrap();
        let context = &event["requestContext"];
        assert_eq!(event["version"], "2.0", "{what}");
        assert_eq!(context["routeKey"], event["routeKey"], "{what}");
        assert_eq!(context["http"]["method"], method, "{what}");
        assert_eq!(context["http"]["path"], event["rawPath"], "{what}");
        assert_eq!(context["stage"], "$default", "{what}");
        assert!(context["requestId"].is_string(), "{what}");
        assert!(context["domainName"].is_string(), "{what}");
        assert_eq!(
            event["headers"]["authorization"],
            format!("Bearer {KEY}"),
            "{what}"
        );
        // rawPath is the route's template with the path parameters filled in.
        let mut filled = template.to_string();
        for (name, value) in event["pathParameters"].as_object().unwrap() {
            filled = filled.replace(&format!("{{{name}}}"), value.as_str().unwrap());
        }
        assert_eq!(filled, event["rawPath"].as_str().unwrap(), "{what}");
        assert!(!filled.contains('{'), "{what}: every path parameter given");
        // The query string parameters are those of rawQueryString.
        let raw_query = event["rawQueryString"].as_str().unwrap();
        let parameters: Map<String, Value> = raw_query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_string(), json!(v))
            })
            .collect();
        assert_eq!(
            event
                .get("queryStringParameters")
                .cloned()
                .unwrap_or_else(|| json!({})),
            Value::Object(parameters),
            "{what}"
        );
        // A body is JSON, declared as such, with its length; API Gateway may pass it base64.
        if let Some(body) = event.get("body").and_then(Value::as_str) {
            let body = match event["isBase64Encoded"].as_bool() {
                Some(true) => {
                    base64_bodies += 1;
                    String::from_utf8(BASE64.decode(body).expect("base64 body")).unwrap()
                }
                Some(false) => body.to_string(),
                None => panic!("{what}: isBase64Encoded is a boolean"),
            };
            serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                event["headers"]["content-type"], "application/json",
                "{what}"
            );
            assert_eq!(
                event["headers"]["content-length"],
                body.len().to_string(),
                "{what}"
            );
        }
        route_keys.push(route_key);
    }
    assert_eq!(
        base64_bodies, 1,
        "one POST fixture carries its body base64-encoded"
    );
    route_keys.sort();
    assert_eq!(
        route_keys, documented,
        "one fixture per documented operation"
    );

    // No fixture file that is not exercised.
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let dir = entry.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            on_disk.push(format!(
                "{}/{}",
                dir.file_name().unwrap().to_str().unwrap(),
                file.file_name().unwrap().to_str().unwrap()
            ));
        }
    }
    on_disk.sort();
    let mut known: Vec<String> = FIXTURES
        .iter()
        .map(|(function, name)| format!("{}/{name}.json", function.dir()))
        .chain([REST_V1_FIXTURE.to_string(), SCHEDULE_FIXTURE.to_string()])
        .chain(META_FIXTURES.map(String::from))
        .collect();
    known.sort();
    assert_eq!(on_disk, known, "every file of events/ is tested");
}

/// Health and the OpenAPI document through the pipelines function, without a key; the
/// document (asked for gzip) comes base64-encoded and is the committed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_and_openapi_fixtures_answer_without_a_key() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let state = AppState::new(app.repo.clone());
    for fixture in META_FIXTURES {
        let event = read_fixture(fixture);
        let request: LambdaRequest = serde_json::from_str(&event).unwrap();
        let response = Adapter::from(Function::Pipelines.router(state.clone()))
            .oneshot(LambdaEvent::new(request, Context::default()))
            .await
            .unwrap_or_else(|e: std::convert::Infallible| match e {});
        let response = serde_json::to_value(&response).unwrap();
        assert_eq!(response["statusCode"], 200, "{fixture}: {response}");
        let body = if response["isBase64Encoded"] == true {
            use std::io::Read;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(response["body"].as_str().unwrap())
                .unwrap();
            let mut text = String::new();
            flate2::read::GzDecoder::new(raw.as_slice())
                .read_to_string(&mut text)
                .unwrap();
            text
        } else {
            response["body"].as_str().unwrap().to_string()
        };
        let body: Value = serde_json::from_str(&body).unwrap();
        if fixture.ends_with("health.json") {
            assert_eq!(body["status"], "ok");
        } else {
            assert_eq!(body["openapi"], "3.1.0", "the document");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Each function with its own fixtures
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_function_serves_its_fixtures() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (airflow, connector) = app.with_fake_airflow().await;
    let pipeline = app.add_pipeline(&connector, "etl", |_| {}).await;
    app.add_runs(
        &pipeline,
        vec![run(
            &pipeline,
            "scheduled__1",
            chrono::Duration::hours(2),
            RunStatus::Success,
            Some(600),
        )],
    )
    .await;
    let state = AppState::new(app.repo.clone());
    let ids = Ids {
        pipeline: pipeline.id,
        connector: connector.id,
        team: app.team.id,
        ..Ids::new(&app.keys.admin)
    };
    let pipelines = async |name: &str| send(Function::Pipelines, name, &state, &ids).await;

    let list = pipelines("list-pipelines").await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(ids_of(&list.body), [pipeline.id.to_string()]);
    assert_eq!(list.body[0]["dag_id"], "etl");
    assert_eq!(list.body[0]["summary"]["days"], 30, "?days=30 was read");
    assert_eq!(list.body[0]["summary"]["runs_total"], 1);
    assert_eq!(list.header("x-total-count"), Some("1"));
    assert_eq!(list.header("x-page-size"), Some("10"), "?size=10 was read");
    assert!(
        list.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json"))
    );

    let events = pipelines("list-events").await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    assert_eq!(
        events.body,
        serde_json::json!([]),
        "a synced failure would be one"
    );
    assert_eq!(
        events.header("x-page-size"),
        Some("10"),
        "?size=10 was read"
    );

    let get = pipelines("get-pipeline").await;
    assert_eq!(get.status, 200, "{:?}", get.body);
    assert_eq!(get.body["id"], pipeline.id.to_string());
    assert_eq!(get.body["summary"]["days"], 7, "?days=7 was read");
    assert_eq!(get.body["watched"], false);

    let team = pipelines("set-team").await;
    assert_eq!(team.status, 200, "{:?}", team.body);
    assert_eq!(team.body["team_id"], app.team.id.to_string());

    let criticality = pipelines("set-criticality").await;
    assert_eq!(criticality.status, 200, "{:?}", criticality.body);
    assert_eq!(criticality.body["criticality"], "high");

    let freshness = pipelines("set-freshness").await;
    assert_eq!(freshness.status, 200, "{:?}", freshness.body);
    assert_eq!(freshness.body["expected_interval_seconds"], 86400);

    let watch = pipelines("watch").await;
    assert_eq!((watch.status, &watch.body), (204, &Value::Null));
    let after = pipelines("get-pipeline").await;
    assert_eq!(after.body["watched"], true);
    assert_eq!(after.body["team_id"], app.team.id.to_string());
    assert_eq!(after.body["criticality"], "high");

    let unwatch = pipelines("unwatch").await;
    assert_eq!((unwatch.status, &unwatch.body), (204, &Value::Null));
    assert_eq!(pipelines("get-pipeline").await.body["watched"], false);

    let trigger = pipelines("trigger").await;
    assert_eq!(trigger.status, 201, "{:?}", trigger.body);
    assert_eq!(trigger.body["pipeline_id"], pipeline.id.to_string());
    assert_eq!(trigger.body["status"], "queued");
    assert_eq!(trigger.body["run_type"], "manual");
    let in_airflow = airflow.with(|state| state.runs.len());
    assert_eq!(in_airflow, 2, "the seeded run and the triggered one");
    // The fixture's Idempotency-Key: the same event again replays the first answer.
    let again = pipelines("trigger").await;
    assert_eq!(
        (again.status, &again.body["id"]),
        (201, &trigger.body["id"])
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // The new run is visible through the runs function.
    let runs = send(Function::Runs, "list-runs", &state, &ids).await;
    assert_eq!(runs.status, 200, "{:?}", runs.body);
    assert!(
        ids_of(&runs.body).contains(&trigger.body["id"].as_str().unwrap()),
        "{:?}",
        runs.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_function_serves_its_fixtures() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let pipeline = app.add_pipeline(&app.connector, "etl", |_| {}).await;
    let mut older = run(
        &pipeline,
        "scheduled__1",
        chrono::Duration::hours(26),
        RunStatus::Failed,
        Some(300),
    );
    older.task_runs = vec![task_run(&older.run, "extract", 1, "failed", Some(300))];
    let mut latest = run(
        &pipeline,
        "scheduled__2",
        chrono::Duration::hours(2),
        RunStatus::Success,
        Some(600),
    );
    latest.task_runs = vec![
        task_run(&latest.run, "extract", 1, "failed", Some(60)),
        task_run(&latest.run, "extract", 2, "success", Some(400)),
        task_run(&latest.run, "load", 1, "success", Some(200)),
    ];
    let (older_id, latest_id) = (older.run.id, latest.run.id);
    app.add_runs(&pipeline, vec![older, latest]).await;
    let state = AppState::new(app.repo.clone());
    let ids = Ids {
        pipeline: pipeline.id,
        run: latest_id,
        ..Ids::new(&app.keys.viewer)
    };

    let list = send(Function::Runs, "list-runs", &state, &ids).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(
        ids_of(&list.body),
        [latest_id.to_string(), older_id.to_string()],
        "newest first"
    );
    assert_eq!(list.header("x-total-count"), Some("2"));
    assert_eq!(list.header("x-page-size"), Some("25"), "?size=25 was read");

    let get = send(Function::Runs, "get-run", &state, &ids).await;
    assert_eq!(get.status, 200, "{:?}", get.body);
    assert_eq!(get.body["id"], latest_id.to_string());
    assert_eq!(get.body["status"], "success");
    assert_eq!(
        get.body["task_runs"].as_array().unwrap().len(),
        3,
        "every try of every task: {:?}",
        get.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_function_serves_its_fixtures() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let pipeline = app.add_pipeline(&app.connector, "etl", |_| {}).await;
    let mut seeded = run(
        &pipeline,
        "scheduled__1",
        chrono::Duration::hours(2),
        RunStatus::Failed,
        Some(600),
    );
    let task = task_run(&seeded.run, "load", 1, "failed", Some(120));
    seeded.task_runs = vec![task.clone()];
    let run_id = seeded.run.id;
    app.add_runs(&pipeline, vec![seeded]).await;
    let state = AppState::new(app.repo.clone());
    let mut ids = Ids {
        pipeline: pipeline.id,
        run: run_id,
        task_run: task.id,
        ..Ids::new(&app.keys.admin)
    };

    let empty = send(Function::Comments, "list-run-comments", &state, &ids).await;
    assert_eq!((empty.status, &empty.body), (200, &json!([])));

    let created = send(Function::Comments, "create-run-comment", &state, &ids).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["target_type"], "run");
    assert_eq!(created.body["target_id"], run_id.to_string());
    assert_eq!(
        created.body["content"],
        "Source table was **late** by 2 hours."
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    ids.comment = Uuid::parse_str(created.body["id"].as_str().unwrap()).unwrap();

    let listed = send(Function::Comments, "list-run-comments", &state, &ids).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(ids_of(&listed.body), [ids.comment.to_string()]);
    assert_eq!(listed.header("x-total-count"), Some("1"));

    let on_task = send(Function::Comments, "create-task-run-comment", &state, &ids).await;
    assert_eq!(on_task.status, 201, "{:?}", on_task.body);
    assert_eq!(on_task.body["target_type"], "task_run");
    assert_eq!(on_task.body["target_id"], task.id.to_string());
    assert_eq!(on_task.body["run_id"], run_id.to_string());
    let task_list = send(Function::Comments, "list-task-run-comments", &state, &ids).await;
    assert_eq!(task_list.status, 200, "{:?}", task_list.body);
    assert_eq!(
        ids_of(&task_list.body),
        [on_task.body["id"].as_str().unwrap()]
    );

    // The fixtures edit one comment in sequence: PUT at "1", PATCH at "2", DELETE at "3".
    let put = send(Function::Comments, "put-comment", &state, &ids).await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(put.body["content"], "Source table was late by 2h 10m.");
    assert_eq!(put.body["edited"], true);
    assert_eq!(put.header("etag"), Some("\"2\""));

    let patch = send(Function::Comments, "patch-comment", &state, &ids).await;
    assert_eq!(patch.status, 200, "{:?}", patch.body);
    assert_eq!(
        patch.body["content"],
        "Source table was late by 2h 10m (upstream incident)."
    );
    assert_eq!(patch.header("etag"), Some("\"3\""));
    let listed = send(Function::Comments, "list-run-comments", &state, &ids).await;
    assert_eq!(
        listed.body[0]["content"],
        "Source table was late by 2h 10m (upstream incident)."
    );

    // A stale If-Match: the PUT fixture (at "1") is refused now.
    let stale = send(Function::Comments, "put-comment", &state, &ids).await;
    assert_eq!(stale.status, 412, "{:?}", stale.body);

    let delete = send(Function::Comments, "delete-comment", &state, &ids).await;
    assert_eq!((delete.status, &delete.body), (204, &Value::Null));
    let after = send(Function::Comments, "list-run-comments", &state, &ids).await;
    assert_eq!((after.status, &after.body), (200, &json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_function_serves_its_fixtures() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (_airflow, connector) = app.with_fake_airflow().await;
    let state = AppState::new(app.repo.clone());
    let ids = Ids {
        connector: connector.id,
        ..Ids::new(&app.keys.admin)
    };

    let none = send(Function::Connectors, "list-syncs", &state, &ids).await;
    assert_eq!((none.status, &none.body), (200, &json!([])));

    let sync = send(Function::Connectors, "sync", &state, &ids).await;
    assert_eq!(sync.status, 200, "{:?}", sync.body);
    assert_eq!(sync.body["connector_id"], connector.id.to_string());
    assert_eq!(sync.body["status"], "succeeded");
    assert_eq!(sync.body["trigger"], "manual");
    assert_eq!(sync.body["pending"], false);
    assert_eq!(sync.body["counts"]["pipelines"]["added"], 1);
    assert_eq!(sync.body["counts"]["runs"]["added"], 1);
    assert_eq!(sync.body["counts"]["task_runs"]["added"], 2);

    let history = send(Function::Connectors, "list-syncs", &state, &ids).await;
    assert_eq!(history.status, 200, "{:?}", history.body);
    assert_eq!(ids_of(&history.body), [sync.body["id"].as_str().unwrap()]);
    assert_eq!(
        history.header("x-page-size"),
        Some("10"),
        "?size=10 was read"
    );

    // The synced DAG is served by the pipelines function.
    let pipelines = send(Function::Pipelines, "list-pipelines", &state, &ids).await;
    assert_eq!(pipelines.status, 200, "{:?}", pipelines.body);
    assert_eq!(pipelines.body[0]["dag_id"], "etl");
}

/// Each function serves only its own group: another group's route is the platform's 404, while
/// its own routes are routed (401 for the fixtures' placeholder key, before any lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_answers_404_for_the_routes_of_the_others() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let state = AppState::new(app.repo.clone());
    for (owner, name) in FIXTURES {
        let what = format!("events/{}/{name}.json", owner.dir());
        let event = read_fixture(&format!("{}/{name}.json", owner.dir()));
        for function in Function::ALL {
            let answer = invoke(function, &state, &event, &what).await;
            if function == owner {
                assert_eq!(
                    answer.status, 401,
                    "{what} in its own function: {:?}",
                    answer.body
                );
            } else {
                assert_eq!(
                    (answer.status, &answer.body),
                    (404, &json!({"detail": "Not Found"})),
                    "{what} sent to the {} function",
                    function.dir()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// REST API (payload v1) behind a named stage
// ---------------------------------------------------------------------------------------------

const IGNORE_STAGE: &str = "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH";

/// Behind a REST API stage (`prod`), API Gateway sends the path without the stage and
/// lambda_http puts `/prod` in front of it, so the functions need
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` there (an HTTP API's `$default` stage needs nothing).
/// lambda_http reads that variable from the process environment on every request; setting it
/// here would race the other tests' threads, so the test runs itself again in a child process
/// with the variable set, and checks the unset case in this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_v1_event_behind_a_named_stage() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let pipeline = app.add_pipeline(&app.connector, "etl", |_| {}).await;
    let state = AppState::new(app.repo.clone());
    let ids = Ids::new(&app.keys.viewer);
    let event = ids.substitute(&read_fixture(REST_V1_FIXTURE));
    let request: LambdaRequest = serde_json::from_str(&event).unwrap();
    assert!(
        matches!(request.request_origin(), RequestOrigin::ApiGatewayV1),
        "parsed as a REST API event"
    );
    let request: lambda_http::Request = request.into();

    if std::env::var_os(IGNORE_STAGE).is_some() {
        assert_eq!(
            request.uri().path(),
            format!("/api/v1.0/spaces/{SPACE}/orchestration/pipelines")
        );
        let answer = invoke(Function::Pipelines, &state, &event, REST_V1_FIXTURE).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(ids_of(&answer.body), [pipeline.id.to_string()]);
        assert_eq!(answer.body[0]["summary"]["days"], 30, "?days=30 was read");
        // REST API responses carry their headers as multiValueHeaders.
        assert_eq!(answer.header("x-total-count"), Some("1"));
        assert_eq!(answer.header("x-page-size"), Some("10"));
        return;
    }

    // Without the variable the stage lands in the path and nothing matches.
    assert_eq!(
        request.uri().path(),
        format!("/prod/api/v1.0/spaces/{SPACE}/orchestration/pipelines")
    );
    let answer = invoke(Function::Pipelines, &state, &event, REST_V1_FIXTURE).await;
    assert_eq!(
        (answer.status, &answer.body),
        (404, &json!({"detail": "Not Found"}))
    );

    // With it, in a process of its own.
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "lambda_events::rest_api_v1_event_behind_a_named_stage",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IGNORE_STAGE, "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "with {IGNORE_STAGE} set:\n{stdout}\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// The scheduled sync
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_event_syncs_the_due_connectors() {
    // The fixture is EventBridge's scheduled event; the function takes any JSON payload.
    let text = read_fixture(SCHEDULE_FIXTURE);
    let event: CloudWatchEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(event.source.as_deref(), Some("aws.events"));
    assert_eq!(event.detail_type.as_deref(), Some("Scheduled Event"));
    assert_eq!(event.resources.len(), 1);
    // The runtime's deadline: a minute from now, in epoch milliseconds.
    let event = || {
        let mut context = Context::default();
        context.deadline = (SystemTime::now() + Duration::from_secs(60))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        LambdaEvent::<Value>::new(serde_json::from_str(&text).unwrap(), context)
    };

    let app = TestApp::spawn(Backend::Embedded).await;
    let (_airflow, connector) = app.with_fake_airflow().await;
    let secrets = SecretResolver::new();
    let settings = shared::sync::due::Settings::default();

    let summary = scheduled_sync_function::handle(&app.repo, &secrets, &settings, event())
        .await
        .unwrap();
    let outcome = summary
        .outcomes
        .iter()
        .find(|o| o.connector_id == connector.id)
        .unwrap_or_else(|| panic!("the never-synced connector is due: {summary:?}"));
    assert_eq!(outcome.outcome, "succeeded", "{outcome:?}");
    assert_eq!(outcome.space_id, app.space.id);
    let record = serde_json::to_value(outcome.record.as_ref().unwrap()).unwrap();
    assert_eq!(record["trigger"], "scheduled");
    assert_eq!(record["counts"]["pipelines"]["added"], 1);
    assert_eq!(record["counts"]["runs"]["added"], 1);
    assert!(summary.succeeded >= 1 && summary.due == summary.outcomes.len());
    // The summary is what the function returns to the runtime: it serialises.
    let returned = serde_json::to_value(&summary).unwrap();
    assert!(returned["outcomes"].is_array());

    // Synced a moment ago: not due at the next schedule.
    let next = scheduled_sync_function::handle(&app.repo, &secrets, &settings, event())
        .await
        .unwrap();
    assert!(
        next.outcomes.iter().all(|o| o.connector_id != connector.id),
        "{next:?}"
    );

    // The synced DAG is served by the pipelines function.
    let state = AppState::new(app.repo.clone());
    let ids = Ids::new(&app.keys.viewer);
    let pipelines = send(Function::Pipelines, "list-pipelines", &state, &ids).await;
    assert_eq!(pipelines.status, 200, "{:?}", pipelines.body);
    assert_eq!(pipelines.body[0]["dag_id"], "etl");
}

// ---------------------------------------------------------------------------------------------
// The fixtures as they are, against the data of `admin load-fixtures`
// ---------------------------------------------------------------------------------------------

/// What `cargo lambda invoke <function> --data-file events/...` answers after
/// `scripts/admin load-fixtures`: every fixture, unmodified and in the order of `FIXTURES`,
/// finds its data (the comment fixtures edit the fixture comment at versions 1, 2, 3, then
/// delete it); loading again is idempotent and puts the comment back, so they replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_finds_the_data_of_admin_load_fixtures() {
    let table = orchestration_tests::TestTable::new(Backend::Embedded).await;
    let repo = shared::repo::Repository::new(table.table.clone());
    let airflow = FakeAirflow::start().await;
    airflow.with(|state| state.add_dag(fixtures::DAG_ID, "data-team"));
    let load = async || {
        let args = fixtures::LoadFixturesArgs {
            airflow_url: airflow.url(),
            airflow_username: "admin".into(),
            password_secret_arn: None,
            password_env: None,
            password_stored: Some("admin".into()),
            allow_public_key: false,
        };
        let command = local::admin::AdminCommand::LoadFixtures(args);
        local::admin::run(&repo, None, command)
            .await
            .expect("admin load-fixtures")
    };
    let loaded = load().await;
    assert_eq!(loaded, load().await, "loading twice changes nothing");
    assert_eq!(loaded["pipeline_id"], PIPELINE);

    let state = AppState::new(repo.clone());
    let ids = Ids::new(KEY);
    let expected = [
        200, 200, 200, 200, 200, 204, 204, 201, 200, 200, 200, 200, 201, 200, 201, 200, 200, 204,
        200, 200,
    ];
    for ((function, name), status) in FIXTURES.into_iter().zip(expected) {
        let answer = send(function, name, &state, &ids).await;
        assert_eq!(answer.status, status, "{name}: {:?}", answer.body);
    }

    // The comment was deleted by its fixture: a reload puts it back at version 1.
    let again = send(Function::Comments, "put-comment", &state, &ids).await;
    assert_eq!(again.status, 404, "{:?}", again.body);
    load().await;
    let replayed = send(Function::Comments, "put-comment", &state, &ids).await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.body);
    assert_eq!(replayed.header("etag"), Some("\"2\""));
}
