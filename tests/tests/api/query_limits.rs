//! Query limits over HTTP (docs/API.md, "Limits"): at most 200 characters for any parameter
//! value (`q`, `owner`, `run_type`, dates...), `size` capped at the list's maximum (never
//! rejected for being large within `int32`; 422 past it), `page` from 1 to 2,147,483,647
//! without overflow, `days` from 1 to 90 wherever it is accepted, `run_type` any lower-case
//! identifier (Airflow 2's `dataset_triggered` meaning `asset_triggered`). Pure validation, so
//! on the embedded store only.

use chrono::Duration;
use orchestration_tests::Backend;
use orchestration_tests::app::{TestApp, body, header, run};
use serde_json::{Value, json};
use shared::airflow::DagRun;
use shared::domain::model::RunStatus;

const HUGE: &str = "99999999999999999999999999999999";

/// The single validation error of a 422 answer: (`loc`, `type`, `msg`).
fn only_error(status: u16, json: &Value) -> (Vec<String>, String, String) {
    assert_eq!(status, 422, "{json}");
    let errors = json["detail"].as_array().expect("a list of errors");
    assert_eq!(errors.len(), 1, "{json}");
    let error = &errors[0];
    (
        error["loc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect(),
        error["type"].as_str().unwrap().to_string(),
        error["msg"].as_str().unwrap().to_string(),
    )
}

struct Fixture {
    app: TestApp,
    pipeline_id: String,
    run_id: String,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn(Backend::Embedded).await;
    let pipeline = app
        .add_pipeline(&app.connector, "nightly_etl", |_| {})
        .await;
    let runs = vec![
        run(
            &pipeline,
            "scheduled__1",
            Duration::hours(3),
            RunStatus::Success,
            Some(60),
        ),
        run(
            &pipeline,
            "scheduled__2",
            Duration::hours(2),
            RunStatus::Failed,
            Some(90),
        ),
    ];
    let run_id = runs[0].run.id.to_string();
    app.add_runs(&pipeline, runs).await;
    Fixture {
        pipeline_id: pipeline.id.to_string(),
        run_id,
        app,
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> (u16, Value) {
        body(self.app.get(path, Some(&self.app.keys.viewer)).await).await
    }
}

#[tokio::test]
async fn text_parameters_are_at_most_200_characters() {
    let f = fixture().await;
    let at_limit = "x".repeat(200);
    let over = "x".repeat(201);

    let (status, json) = f.get(&format!("/pipelines?q={at_limit}")).await;
    assert_eq!(
        (status, json),
        (200, json!([])),
        "200 characters are accepted"
    );
    // Characters, not bytes: 200 two-byte characters are within the limit.
    let (status, _) = f.get(&format!("/pipelines?q={}", "é".repeat(200))).await;
    assert_eq!(status, 200);

    for (path, name) in [
        (format!("/pipelines?q={over}"), "q"),
        (format!("/pipelines?owner={over}"), "owner"),
        (
            format!("/pipelines/{}/runs?run_type={over}", f.pipeline_id),
            "run_type",
        ),
        (
            format!("/pipelines/{}/runs?started_from={over}", f.pipeline_id),
            "started_from",
        ),
    ] {
        let (status, json) = f.get(&path).await;
        let (loc, kind, msg) = only_error(status, &json);
        assert_eq!(loc, ["query", name]);
        assert_eq!(kind, "string_too_long");
        assert_eq!(msg, "String should have at most 200 characters");
    }

    // Every over-long parameter is reported at once.
    let (status, json) = f.get(&format!("/pipelines?q={over}&owner={over}")).await;
    assert_eq!(status, 422);
    let locs: Vec<&Value> = json["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"])
        .collect();
    assert_eq!(locs, [&json!(["query", "owner"]), &json!(["query", "q"])]);
}

#[tokio::test]
async fn page_sizes_above_the_maximum_are_capped_within_int32_and_rejected_past_it() {
    let f = fixture().await;
    let runs = format!("/pipelines/{}/runs", f.pipeline_id);
    let comments = format!("/runs/{}/comments", f.run_id);
    let syncs = format!("/connectors/{}/syncs", f.app.connector.id);
    for (path, size, used) in [
        ("/pipelines", "1000", "1000"),
        ("/pipelines", "1001", "1000"),
        ("/pipelines", "2147483647", "1000"),
        (runs.as_str(), "5000", "1000"),
        (runs.as_str(), "2147483647", "1000"),
        (comments.as_str(), "101", "100"),
        (comments.as_str(), "2147483647", "100"),
        (syncs.as_str(), "500", "100"),
    ] {
        let response = f
            .app
            .get(&format!("{path}?size={size}"), Some(&f.app.keys.viewer))
            .await;
        assert_eq!(response.status(), 200, "{path}?size={size}");
        assert_eq!(header(&response, "x-page-size"), used, "{path}?size={size}");
    }
    // Not an int32 (as the document types `size`): 422, on every list.
    for path in ["/pipelines", &runs, &comments, &syncs] {
        for size in ["2147483648", "35799118772", HUGE] {
            let (status, json) = f.get(&format!("{path}?size={size}")).await;
            let (loc, kind, msg) = only_error(status, &json);
            assert_eq!(loc, ["query", "size"], "{path}?size={size}");
            assert_eq!(kind, "less_than_equal", "{path}?size={size}");
            assert_eq!(msg, "Input should be less than or equal to 2147483647");
        }
    }
    for size in ["0", "-1", &format!("-{HUGE}")] {
        let (status, json) = f.get(&format!("/pipelines?size={size}")).await;
        let (loc, kind, _) = only_error(status, &json);
        assert_eq!(
            (loc, kind.as_str()),
            (vec!["query".into(), "size".into()], "greater_than_equal")
        );
    }
}

#[tokio::test]
async fn run_type_is_any_lower_case_identifier_as_the_sync_stores_it() {
    let f = fixture().await;
    let pipeline = f
        .app
        .add_pipeline(&f.app.connector, "asset_consumer", |_| {})
        .await;
    // Runs as the sync maps them from Airflow: Airflow 2's `dataset_triggered`, and run types
    // this API has never heard of.
    let mut runs = Vec::new();
    for (i, run_type) in [
        "dataset_triggered",
        "asset_materialization",
        "frobnicated_2030",
        "manual",
    ]
    .into_iter()
    .enumerate()
    {
        let started = chrono::Utc::now() - Duration::hours(i as i64 + 1);
        let dag_run = DagRun::from_value(json!({
            "dag_id": pipeline.dag_id,
            "dag_run_id": format!("{run_type}__{i}"),
            "state": "success",
            "run_type": run_type,
            "start_date": started.to_rfc3339(),
            "end_date": (started + Duration::minutes(5)).to_rfc3339(),
        }))
        .unwrap();
        let run = shared::sync::mapping::run(&dag_run, &pipeline, chrono::Utc::now()).unwrap();
        let mut entry = orchestration_tests::app::run(
            &pipeline,
            "unused",
            Duration::hours(1),
            RunStatus::Success,
            Some(1),
        );
        entry.run = run;
        entry.task_runs.clear();
        runs.push(entry);
    }
    f.app.add_runs(&pipeline, runs).await;
    let path = |query: &str| format!("/pipelines/{}/runs?{query}", pipeline.id);
    for (run_type, expected) in [
        ("dataset_triggered", "asset_triggered"),
        ("asset_triggered", "asset_triggered"),
        ("asset_materialization", "asset_materialization"),
        ("frobnicated_2030", "frobnicated_2030"),
        ("manual", "manual"),
    ] {
        let (status, json) = f.get(&path(&format!("run_type={run_type}"))).await;
        assert_eq!(status, 200, "run_type={run_type}: {json}");
        let found: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_type"].as_str().unwrap())
            .collect();
        assert_eq!(found, [expected], "run_type={run_type}");
    }
    // Well-formed but unknown to this pipeline: an empty page, not an error.
    let (status, json) = f.get(&path("run_type=operator_triggered")).await;
    assert_eq!((status, json), (200, json!([])));
    let longest = format!("r{}", "_".repeat(63));
    let (status, _) = f.get(&path(&format!("run_type={longest}"))).await;
    assert_eq!(status, 200, "64 characters");

    // Malformed values are still the platform's 422.
    for bad in [
        "Manual",
        "MANUAL",
        "",
        "1st",
        "_manual",
        "asset-triggered",
        "manual%20",
        "%C3%A9t%C3%A9",
        "manual%00",
        &format!("r{}", "x".repeat(64)),
    ] {
        let (status, json) = f.get(&path(&format!("run_type={bad}"))).await;
        let (loc, kind, msg) = only_error(status, &json);
        assert_eq!(loc, ["query", "run_type"], "run_type={bad}");
        assert_eq!(kind, "string_pattern_mismatch", "run_type={bad}");
        assert_eq!(msg, "String should match pattern '^[a-z][a-z0-9_]{0,63}$'");
    }
}

#[tokio::test]
async fn pages_go_up_to_the_int32_maximum_without_overflow() {
    let f = fixture().await;
    // The last accepted page, with the largest page size: an empty page, sane headers.
    let response = f
        .app
        .get(
            &format!(
                "/pipelines/{}/runs?page=2147483647&size=1000",
                f.pipeline_id
            ),
            Some(&f.app.keys.viewer),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-page"), "2147483647");
    assert_eq!(header(&response, "x-total-count"), "2");
    assert_eq!(header(&response, "x-total-pages"), "1");
    let link = header(&response, "link");
    assert!(link.contains("page=1&size=1000>; rel=\"prev\""), "{link}");
    assert!(!link.contains("rel=\"next\""), "{link}");
    assert_eq!(response.json::<Value>().await.unwrap(), json!([]));

    for page in ["2147483648", "4294967296", HUGE] {
        let (status, json) = f.get(&format!("/pipelines?page={page}")).await;
        let (loc, kind, msg) = only_error(status, &json);
        assert_eq!(loc, ["query", "page"]);
        assert_eq!(kind, "less_than_equal", "page={page}");
        assert_eq!(msg, "Input should be less than or equal to 2147483647");
    }
    for page in ["0", "-5"] {
        let (status, json) = f.get(&format!("/pipelines?page={page}")).await;
        assert_eq!(only_error(status, &json).1, "greater_than_equal");
    }
    let (status, json) = f.get("/pipelines?page=1.5").await;
    assert_eq!(only_error(status, &json).1, "int_parsing");
}

#[tokio::test]
async fn days_is_1_to_90_on_the_list_and_the_detail() {
    let f = fixture().await;
    let detail = format!("/pipelines/{}", f.pipeline_id);
    for path in ["/pipelines", detail.as_str()] {
        for days in ["1", "90"] {
            let (status, json) = f.get(&format!("{path}?days={days}")).await;
            assert_eq!(status, 200, "{path}?days={days}: {json}");
        }
        for (days, kind) in [
            ("0", "greater_than_equal"),
            ("-1", "greater_than_equal"),
            ("91", "less_than_equal"),
            (HUGE, "less_than_equal"),
            ("seven", "int_parsing"),
        ] {
            let (status, json) = f.get(&format!("{path}?days={days}")).await;
            let (loc, found, _) = only_error(status, &json);
            assert_eq!(loc, ["query", "days"], "{path}?days={days}");
            assert_eq!(found, kind, "{path}?days={days}");
        }
    }
    let (_, json) = f.get(&format!("{detail}?days=90")).await;
    assert_eq!(json["summary"]["days"], 90);
    assert_eq!(json["summary"]["runs_total"], 2);
}

#[tokio::test]
async fn the_openapi_document_states_the_limits() {
    let document: Value = serde_json::from_str(&local::openapi_text()).unwrap();
    let declared = |path: &str, name: &str| -> Value {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("no GET {path}"));
        let found = parameters
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} on {path}"));
        found.clone()
    };
    let parameter = |path: &str, name: &str| -> Value { declared(path, name)["schema"].clone() };
    let prefix = "/api/v1.0/spaces/{slug}/orchestration";
    let list = format!("{prefix}/pipelines");
    for name in ["q", "owner"] {
        assert_eq!(parameter(&list, name)["maxLength"], 200, "{name}");
    }
    let days = parameter(&list, "days");
    assert_eq!(
        (days["minimum"].clone(), days["maximum"].clone()),
        (json!(1), json!(90))
    );
    let days = parameter(&format!("{prefix}/pipelines/{{pipeline_id}}"), "days");
    assert_eq!(
        (days["minimum"].clone(), days["maximum"].clone()),
        (json!(1), json!(90))
    );
    for path in [
        list.clone(),
        format!("{prefix}/pipelines/{{pipeline_id}}/runs"),
        format!("{prefix}/runs/{{run_id}}/comments"),
        format!("{prefix}/task-runs/{{task_run_id}}/comments"),
        format!("{prefix}/connectors/{{connector_id}}/syncs"),
    ] {
        let page = parameter(&path, "page");
        assert_eq!(page["maximum"], 2147483647, "{path}");
        assert_eq!(page["default"], 1, "{path}");
        let size = parameter(&path, "size");
        assert_eq!(
            (&size["minimum"], &size["maximum"], &size["format"]),
            (&json!(1), &json!(2147483647), &json!("int32")),
            "{path}: any int32 size is accepted (and capped to the list's maximum)"
        );
        let (default, cap) = if path.ends_with("/pipelines") || path.ends_with("/runs") {
            (100, 1000)
        } else {
            (20, 100)
        };
        assert_eq!(size["default"], default, "{path}");
        let description = declared(&path, "size")["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ");
        assert!(
            description.contains(&format!("capped to {cap}")),
            "{path}: the cap is documented: {description}"
        );
    }
    assert_eq!(parameter(&list, "days")["default"], 7);
    let run_type = &document["components"]["schemas"]["RunTypeFilter"];
    assert_eq!(run_type["type"], "string");
    assert_eq!(run_type["pattern"], "^[a-z][a-z0-9_]{0,63}$");
    assert!(run_type.get("enum").is_none(), "not a closed list");
    for known in shared::domain::model::RUN_TYPES {
        assert!(
            run_type["examples"]
                .as_array()
                .unwrap()
                .contains(&json!(known)),
            "{known} is an example"
        );
    }
}
