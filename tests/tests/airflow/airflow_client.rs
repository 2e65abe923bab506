//! The Airflow REST client against a fake Airflow (wiremock on 127.0.0.1) serving the real
//! Airflow 3.3.2 and 2.11.2 answers of `tests/fixtures/airflow-samples/`, and injected faults:
//! server errors, 429s, hanging answers, bad JSON, a closed port, expired or invalid tokens.
//!
//! Every test is bounded: short request timeouts, few attempts, millisecond backoff, and no
//! fake answer is delayed by more than 2 s.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::airflow::{
    AirflowClient, AirflowConfig, AirflowError, Credentials, Dag, DagRun, TaskInstance,
    TriggerRequest,
};
use shared::domain::model::AirflowApiVersion::{self, V1, V2};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const BASIC_ADMIN: &str = "Basic YWRtaW46YWRtaW4="; // admin:admin

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A real Airflow answer, copied from the platform's captured samples into
/// `tests/fixtures/airflow-samples/` (see its README).
fn sample(name: &str) -> String {
    let file = format!(
        "{}/fixtures/airflow-samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("sample {file}: {error}"))
}

fn sample_json(name: &str) -> Value {
    serde_json::from_str(&sample(name)).expect("sample is JSON")
}

fn answer(status: u16, body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into().into_bytes(), "application/json")
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn admin() -> Credentials {
    Credentials::Password {
        username: "admin".into(),
        password: "admin".into(),
    }
}

/// Test settings: 2 s timeout, 3 attempts, 5 ms base backoff.
fn config(base_url: &str, version: AirflowApiVersion, credentials: Credentials) -> AirflowConfig {
    // The suite-wide exposure scan looks for every credential a client is given.
    orchestration_tests::exposure::record_airflow_credentials(&credentials);
    AirflowConfig {
        request_timeout: Duration::from_secs(2),
        max_attempts: 3,
        retry_base_delay: Duration::from_millis(5),
        ..AirflowConfig::new(base_url, version, credentials)
    }
}

fn client_with(
    server: &MockServer,
    version: AirflowApiVersion,
    creds: Credentials,
) -> AirflowClient {
    AirflowClient::new(config(&server.uri(), version, creds)).unwrap()
}

/// A client with a static token: no token requests, so `requests_sent` counts API calls only.
fn static_client(server: &MockServer, version: AirflowApiVersion) -> AirflowClient {
    client_with(server, version, Credentials::Token("static-token".into()))
}

/// An unsigned JWT-shaped token expiring in `seconds`, told apart by `tag`.
fn jwt(seconds: i64, tag: &str) -> String {
    let claims = json!({"sub": "admin", "jti": tag, "exp": Utc::now().timestamp() + seconds});
    let token = format!(
        "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.{}.sig-{tag}",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    orchestration_tests::exposure::record_secret("airflow_token", &token);
    token
}

/// `POST /auth/token` with admin:admin answering `token` (201), at most `times` times.
fn token_endpoint(token: &str, times: u64) -> Mock {
    Mock::given(method("POST"))
        .and(path("/auth/token"))
        .and(body_json(json!({"username": "admin", "password": "admin"})))
        .respond_with(answer(201, json!({ "access_token": token }).to_string()))
        .up_to_n_times(times)
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

async fn count(server: &MockServer, request_path: &str) -> usize {
    received(server)
        .await
        .iter()
        .filter(|request| request.url.path() == request_path)
        .count()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A port on 127.0.0.1 with nothing listening.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

// ---------------------------------------------------------------------------------------------
// Decoding the real samples
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v2_dags_sample_decodes_with_stale_dags_included_and_ordered() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/dags"))
        .and(query_param("exclude_stale", "false"))
        .and(query_param("order_by", "dag_id"))
        .and(query_param("limit", "100"))
        .and(query_param("offset", "0"))
        .and(header("authorization", "Bearer static-token"))
        .respond_with(answer(200, sample("dags_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    let page = static_client(&server, V2).dags(0, 100).await.unwrap();

    assert_eq!(page.total_entries, 3);
    let ids: Vec<_> = page.items.iter().map(|dag| dag.dag_id.as_str()).collect();
    assert_eq!(ids, ["probe_etl", "probe_failing", "probe_scheduled"]);
    let etl = &page.items[0];
    assert_eq!(etl.display_name.as_deref(), Some("probe_etl"));
    assert_eq!(
        etl.description.as_deref(),
        Some("Tiny ETL pipeline used by the metadata-sync probe")
    );
    assert_eq!(etl.owners, ["data-team"]);
    assert_eq!(etl.tags, ["etl", "probe"]);
    assert!(etl.is_paused);
    assert!(etl.is_active);
    assert_eq!(
        etl.schedule.as_deref(),
        Some("Never, external triggers only")
    );
    assert_eq!(etl.raw["bundle_name"], "dags-folder");
    let failing = &page.items[1];
    assert_eq!(failing.description, None);
    assert_eq!(failing.owners, ["ops"]);
    let scheduled = &page.items[2];
    assert_eq!(scheduled.schedule.as_deref(), Some("0 0 * * *"));
    assert!(scheduled.tags.is_empty());
    assert_eq!(scheduled.owners, ["airflow"]);
}

#[tokio::test]
async fn v2_dag_details_sample_decodes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/dags/probe_etl"))
        .respond_with(answer(200, sample("dag_details.json")))
        .mount(&server)
        .await;
    let dag = static_client(&server, V2).dag("probe_etl").await.unwrap();
    assert_eq!(dag.dag_id, "probe_etl");
    assert_eq!(dag.tags, ["etl", "probe"]);
    assert_eq!(dag.owners, ["data-team"]);
    assert!(dag.is_active && dag.is_paused);
    // Details-only fields are kept in `raw` for the caller.
    assert_eq!(dag.raw["doc_md"], "Extract, transform, load.");
    assert_eq!(dag.raw["default_args"]["owner"], "data-team");
}

#[tokio::test]
async fn v2_dag_runs_sample_decodes_and_the_query_is_incremental() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/dags/~/dagRuns"))
        .and(query_param("updated_at_gte", "2026-11-28T11:00:00.250Z"))
        .and(query_param("order_by", "id"))
        .and(query_param("limit", "50"))
        .and(query_param("offset", "10"))
        .respond_with(answer(200, sample("dagruns_list_etl.json")))
        .expect(1)
        .mount(&server)
        .await;
    let since = at("2026-11-28T11:00:00.250Z");
    let page = static_client(&server, V2)
        .dag_runs(Some(since), 10, 50)
        .await
        .unwrap();

    assert_eq!(page.total_entries, 1);
    let run = &page.items[0];
    assert_eq!(run.dag_id, "probe_etl");
    assert_eq!(run.dag_run_id, "ci_run_1");
    assert_eq!(run.state, "success");
    assert_eq!(run.run_type, "manual");
    assert_eq!(
        run.logical_date, None,
        "Airflow 3 manual runs have no logical date"
    );
    assert_eq!(run.run_after, Some(at("2026-11-28T11:56:45.101047Z")));
    assert_eq!(run.queued_at, Some(at("2026-11-28T11:56:45.111938Z")));
    assert_eq!(run.start_date, Some(at("2026-11-28T11:56:46.331917Z")));
    assert_eq!(run.end_date, Some(at("2026-11-28T11:56:55.268035Z")));
    assert_eq!(run.note.as_deref(), Some("triggered by probe"));
    assert_eq!(run.conf, Some(json!({"source": "probe"})));
    assert_eq!(run.updated_at, None, "Airflow 3.3 does not send updated_at");
    assert_eq!(run.raw["triggered_by"], "rest_api");
}

#[tokio::test]
async fn one_dag_run_is_read_by_its_encoded_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/dags/probe_etl/dagRuns/ci_run_1"))
        .respond_with(answer(200, sample("dagrun_get.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/api/v2/dags/probe_etl/dagRuns/scheduled__2026-01-01T00%3A00%3A00%2B00%3A00",
        ))
        .respond_with(answer(404, sample("dagrun_get_404.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let run = client.dag_run("probe_etl", "ci_run_1").await.unwrap();
    assert_eq!(
        (run.dag_run_id.as_str(), run.state.as_str()),
        ("ci_run_1", "success")
    );
    assert_eq!(run.end_date, Some(at("2026-11-28T11:56:55.268035Z")));
    let missing = client
        .dag_run("probe_etl", "scheduled__2026-01-01T00:00:00+00:00")
        .await
        .unwrap_err();
    assert_eq!(missing.http_status(), Some(404));
    server.verify().await;
}

#[tokio::test]
async fn v2_all_dag_runs_sample_decodes_every_run() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/dags/~/dagRuns"))
        .and(query_param_is_missing("updated_at_gte"))
        .respond_with(answer(200, sample("dagruns_list_all_final.json")))
        .mount(&server)
        .await;
    let page = static_client(&server, V2)
        .dag_runs(None, 0, 100)
        .await
        .unwrap();
    assert_eq!(page.total_entries, 4);
    let runs: Vec<_> = page
        .items
        .iter()
        .map(|run| {
            (
                run.dag_run_id.as_str(),
                run.state.as_str(),
                run.run_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            (
                "scheduled__2026-11-28T00:00:00+00:00",
                "success",
                "scheduled"
            ),
            ("ci_run_1", "success", "manual"),
            (
                "manual__2026-11-28T11:56:46.026249+00:00",
                "failed",
                "manual"
            ),
            ("manual_while_paused", "success", "manual"),
        ]
    );
    assert_eq!(page.items[0].logical_date, Some(at("2026-11-28T00:00:00Z")));
    assert_eq!(page.items[2].logical_date, Some(at("2026-01-02T00:00:00Z")));
    assert_eq!(page.items[0].conf, Some(json!({})));
}

#[tokio::test]
async fn v2_task_instances_sample_decodes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/dags/~/dagRuns/~/taskInstances"))
        .and(query_param("order_by", "id"))
        .and(query_param("updated_at_gte", "2026-11-28T00:00:00Z"))
        .respond_with(answer(200, sample("taskinstances_list_all_final.json")))
        .expect(1)
        .mount(&server)
        .await;
    let page = static_client(&server, V2)
        .task_instances(Some(at("2026-11-28T00:00:00Z")), 0, 100)
        .await
        .unwrap();

    assert_eq!(page.total_entries, 10);
    assert_eq!(page.items.len(), 10);
    let transform = &page.items[1];
    assert_eq!(
        (transform.dag_id.as_str(), transform.dag_run_id.as_str()),
        ("probe_etl", "ci_run_1")
    );
    assert_eq!(transform.task_id, "transform");
    assert_eq!(transform.operator.as_deref(), Some("PythonOperator"));
    assert_eq!(transform.state.as_deref(), Some("success"));
    assert_eq!((transform.try_number, transform.map_index), (1, -1));
    assert_eq!(
        transform.start_date,
        Some(at("2026-11-28T11:56:53.231631Z"))
    );
    let after_failure = &page.items[5];
    assert_eq!(after_failure.task_id, "after_failure");
    assert_eq!(
        after_failure.dag_run_id,
        "manual__2026-11-28T11:56:46.026249+00:00"
    );
    assert_eq!(after_failure.state.as_deref(), Some("upstream_failed"));
    assert_eq!(after_failure.try_number, 0, "never ran");
    assert_eq!(
        after_failure.task_display_name.as_deref(),
        Some("after_failure")
    );
    assert_eq!(
        after_failure.raw["id"],
        "01a22203-d459-7c27-badf-9d0f3929c651"
    );
}

#[tokio::test]
async fn v1_samples_decode_with_basic_auth_and_airflow_2_parameters() {
    let server = MockServer::start().await;
    let basic = || header("authorization", BASIC_ADMIN);
    Mock::given(method("GET"))
        .and(path("/api/v1/dags"))
        .and(query_param("only_active", "false"))
        .and(query_param("order_by", "dag_id"))
        .and(basic())
        .respond_with(answer(200, sample("v1-airflow-2.11.2/dags_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/dags/probe_etl"))
        .and(basic())
        .respond_with(answer(200, sample("v1-airflow-2.11.2/dag_get.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/dags/~/dagRuns"))
        .and(query_param("order_by", "id"))
        .and(query_param("updated_at_gte", "2026-01-01T00:00:00Z"))
        .and(basic())
        .respond_with(answer(
            200,
            sample("v1-airflow-2.11.2/dagruns_list_all_tilde.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/dags/~/dagRuns/~/taskInstances"))
        .and(query_param_is_missing("order_by"))
        .and(basic())
        .respond_with(answer(
            200,
            sample("v1-airflow-2.11.2/taskinstances_list.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/token"))
        .respond_with(answer(500, "{}"))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_with(&server, V1, admin());
    let since = Some(at("2026-01-01T00:00:00Z"));

    let dags = client.dags(1, 1).await.unwrap();
    assert_eq!(dags.total_entries, 2);
    let failing = &dags.items[0];
    assert_eq!(failing.dag_id, "probe_failing");
    assert!(failing.is_active && failing.is_paused);
    assert_eq!(failing.tags, ["probe"]);
    assert_eq!(failing.owners, ["ops"]);
    assert_eq!(
        failing.schedule.as_deref(),
        Some("Never, external triggers only")
    );

    let etl = client.dag("probe_etl").await.unwrap();
    assert_eq!(etl.tags, ["probe", "etl"]);
    assert_eq!(etl.description.as_deref(), Some("Tiny ETL pipeline"));

    let runs = client.dag_runs(since, 0, 100).await.unwrap();
    assert_eq!(runs.total_entries, 2);
    let run = &runs.items[0];
    assert_eq!(
        (run.dag_id.as_str(), run.dag_run_id.as_str()),
        ("probe_failing", "ci_run_1")
    );
    assert_eq!(
        (run.state.as_str(), run.run_type.as_str()),
        ("failed", "manual")
    );
    assert_eq!(run.logical_date, Some(at("2026-11-28T12:10:29.761111Z")));
    assert_eq!(run.start_date, Some(at("2026-11-28T12:13:58.807867+00:00")));
    assert_eq!(run.queued_at, None, "Airflow 2.11 does not send queued_at");
    assert_eq!((run.run_after, run.updated_at), (None, None));

    let tis = client.task_instances(None, 0, 100).await.unwrap();
    assert_eq!(tis.total_entries, 3);
    let states: Vec<_> = tis
        .items
        .iter()
        .map(|ti| (ti.task_id.as_str(), ti.state.as_deref(), ti.try_number))
        .collect();
    assert_eq!(
        states,
        [
            ("prepare", Some("success"), 1),
            ("explode", Some("failed"), 1),
            ("after_failure", Some("upstream_failed"), 0),
        ]
    );
    assert_eq!(tis.items[0].operator.as_deref(), Some("BashOperator"));
    assert_eq!(
        tis.items[0].end_date,
        Some(at("2026-11-28T12:14:06.692132Z"))
    );
    assert_eq!(client.requests_sent(), 4, "no token request on Airflow 2");
}

#[tokio::test]
async fn unknown_fields_new_enum_values_and_bad_dates_do_not_fail_a_page() {
    let server = MockServer::start().await;
    let mut runs = sample_json("dagruns_list_etl.json");
    let run = &mut runs["dag_runs"][0];
    run["state"] = json!("some_future_state");
    run["run_type"] = json!("something_new");
    run["field_from_airflow_4"] = json!({"nested": [1, 2, 3]});
    run["start_date"] = json!("yesterday-ish");
    run["end_date"] = json!(12345);
    runs["brand_new_envelope_field"] = json!(true);
    let mut tis = sample_json("taskinstances_list_all_final.json");
    tis["task_instances"][0]["state"] = json!("awaiting_input");
    tis["task_instances"][1]["state"] = Value::Null;
    tis["task_instances"][1]["another_new_field"] = json!("x");
    Mock::given(path("/api/v2/dags/~/dagRuns"))
        .respond_with(answer(200, runs.to_string()))
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags/~/dagRuns/~/taskInstances"))
        .respond_with(answer(200, tis.to_string()))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);

    let page = client.dag_runs(None, 0, 10).await.unwrap();
    let run = &page.items[0];
    assert_eq!(run.state, "some_future_state");
    assert_eq!(run.run_type, "something_new");
    assert_eq!(
        run.start_date, None,
        "a malformed date-time reads as absent"
    );
    assert_eq!(run.end_date, None);
    assert_eq!(run.queued_at, Some(at("2026-11-28T11:56:45.111938Z")));
    assert_eq!(run.raw["field_from_airflow_4"]["nested"][2], 3);

    let page = client.task_instances(None, 0, 10).await.unwrap();
    assert_eq!(page.items[0].state.as_deref(), Some("awaiting_input"));
    assert_eq!(page.items[1].state, None, "null = not set yet");
    assert_eq!(page.items.len(), 10);
}

#[tokio::test]
async fn airflow_2_dataset_triggered_runs_read_as_asset_triggered() {
    let server = MockServer::start().await;
    let mut runs = sample_json("v1-airflow-2.11.2/dagruns_list_all_tilde.json");
    runs["dag_runs"][0]["run_type"] = json!("dataset_triggered");
    runs["dag_runs"][1]["run_type"] = json!("Scheduled");
    Mock::given(path("/api/v1/dags/~/dagRuns"))
        .respond_with(answer(200, runs.to_string()))
        .mount(&server)
        .await;
    let page = static_client(&server, V1)
        .dag_runs(None, 0, 10)
        .await
        .unwrap();
    assert_eq!(page.items[0].run_type, "asset_triggered");
    assert_eq!(page.items[1].run_type, "scheduled", "lower-cased");
}

#[test]
fn models_decode_from_values_and_require_only_identifiers() {
    let dag = Dag::from_value(json!({"dag_id": "d", "is_stale": true, "tags": ["t"]})).unwrap();
    assert!(!dag.is_active && !dag.is_paused);
    assert_eq!(dag.tags, ["t"]);
    let v1_cron = json!({"dag_id": "d", "is_active": true,
        "schedule_interval": {"__type": "CronExpression", "value": "@daily"},
        "timetable_description": "At 00:00"});
    assert_eq!(
        Dag::from_value(v1_cron).unwrap().schedule.as_deref(),
        Some("@daily")
    );
    let v1_delta = json!({"dag_id": "d",
        "schedule_interval": {"__type": "TimeDelta", "days": 1, "seconds": 0},
        "timetable_description": "Every 1 day"});
    assert_eq!(
        Dag::from_value(v1_delta).unwrap().schedule.as_deref(),
        Some("Every 1 day")
    );

    let no_run_id = json!({"dag_id": "d", "state": "running", "run_type": "manual"});
    assert!(matches!(
        DagRun::from_value(no_run_id),
        Err(AirflowError::Decode(_))
    ));
    let no_try = json!({"dag_id": "d", "dag_run_id": "r", "task_id": "t"});
    assert!(matches!(
        TaskInstance::from_value(no_try),
        Err(AirflowError::Decode(_))
    ));
    let old = json!({"dag_id": "d", "dag_run_id": "r", "task_id": "t", "try_number": 2});
    assert_eq!(TaskInstance::from_value(old).unwrap().map_index, -1);
}

// ---------------------------------------------------------------------------------------------
// Retries, timeouts and transport faults
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(500, "Internal Server Error"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(502, "<html>Bad Gateway</html>"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(200, sample("dags_list.json")))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let page = client.dags(0, 100).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(client.requests_sent(), 3);
    assert_eq!(count(&server, "/api/v2/dags").await, 3);
}

#[tokio::test]
async fn persistent_server_errors_stop_after_max_attempts() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(503, r#"{"detail": "scheduler restarting"}"#))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let error = client.dags(0, 10).await.unwrap_err();
    assert_eq!(error, AirflowError::status(503, "scheduler restarting"));
    assert!(error.is_retryable());
    assert_eq!(client.requests_sent(), 3, "max_attempts = 3");
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(429, r#"{"detail": "slow down"}"#).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(200, sample("dags_list.json")))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let started = Instant::now();
    client.dags(0, 100).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(client.requests_sent(), 2);
}

#[tokio::test]
async fn a_hanging_answer_times_out_is_retried_then_fails_as_timeout() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(200, sample("dags_list.json")).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let client = AirflowClient::new(AirflowConfig {
        request_timeout: Duration::from_millis(200),
        ..config(&server.uri(), V2, Credentials::Token("t".into()))
    })
    .unwrap();
    let started = Instant::now();
    let error = client.dags(0, 10).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, AirflowError::Timeout(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(client.requests_sent(), 3);
    assert!(
        took >= Duration::from_millis(600),
        "3 × 200 ms, took {took:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn malformed_json_on_200_is_a_decode_error_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(200, r#"{"dags": [{"dag_id": "x", "#))
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags/~/dagRuns"))
        .respond_with(answer(200, r#"{"something_else": []}"#))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let error = client.dags(0, 10).await.unwrap_err();
    assert!(matches!(error, AirflowError::Decode(_)), "{error:?}");
    assert!(!error.is_retryable());
    let error = client.dag_runs(None, 0, 10).await.unwrap_err();
    assert!(
        matches!(&error, AirflowError::Decode(text) if text.contains("dag_runs")),
        "{error:?}"
    );
    assert_eq!(client.requests_sent(), 2);
}

#[tokio::test]
async fn connection_refused_is_unreachable_after_retries() {
    let client = AirflowClient::new(config(
        &closed_port_url(),
        V2,
        Credentials::Token("t".into()),
    ))
    .unwrap();
    let error = client.dags(0, 10).await.unwrap_err();
    assert!(matches!(error, AirflowError::Unreachable(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(client.requests_sent(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_carry_airflows_detail() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/dags/no_such_dag"))
        .respond_with(answer(404, sample("dag_get_404.json")))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/dags/nope"))
        .respond_with(answer(404, sample("v1-airflow-2.11.2/dag_get_404.json")))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let error = client.dag("no_such_dag").await.unwrap_err();
    let expected = sample_json("dag_get_404.json")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(error, AirflowError::status(404, expected));
    assert_eq!(client.requests_sent(), 1);

    let error = static_client(&server, V1).dag("nope").await.unwrap_err();
    assert_eq!(
        error,
        AirflowError::status(404, "The DAG with dag_id: nope was not found")
    );
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn jwt_is_fetched_once_for_many_requests() {
    let server = MockServer::start().await;
    let token = jwt(3600, "a");
    token_endpoint(&token, u64::MAX)
        .expect(1)
        .mount(&server)
        .await;
    for (endpoint, body) in [
        ("/api/v2/dags", "dags_list.json"),
        ("/api/v2/dags/~/dagRuns", "dagruns_list_etl.json"),
        (
            "/api/v2/dags/~/dagRuns/~/taskInstances",
            "taskinstances_list_all_final.json",
        ),
    ] {
        Mock::given(path(endpoint))
            .and(header("authorization", bearer(&token)))
            .respond_with(answer(200, sample(body)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let client = client_with(&server, V2, admin());
    client.dags(0, 100).await.unwrap();
    client.dag_runs(None, 0, 100).await.unwrap();
    client.task_instances(None, 0, 100).await.unwrap();
    assert_eq!(client.requests_sent(), 4, "1 token + 3 API requests");
    server.verify().await;
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() {
    let server = MockServer::start().await;
    let token = jwt(3600, "shared");
    Mock::given(method("POST"))
        .and(path("/auth/token"))
        .respond_with(
            answer(201, json!({ "access_token": token }).to_string())
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags"))
        .and(header("authorization", bearer(&token)))
        .respond_with(answer(200, sample("dags_list.json")))
        .expect(8)
        .mount(&server)
        .await;
    let client = client_with(&server, V2, admin());
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.dags(0, 100).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().items.len(), 3);
    }
    assert_eq!(client.requests_sent(), 9, "clones share the counter");
    server.verify().await;
}

/// Airflow rejects the first token with `status`/`body`; the client gets a second token and
/// retries once with it.
async fn rejected_token_is_replaced_once(status: u16, body: &str) {
    let server = MockServer::start().await;
    let (first, second) = (jwt(3600, "first"), jwt(3600, "second"));
    token_endpoint(&first, 1).mount(&server).await;
    token_endpoint(&second, 1).mount(&server).await;
    Mock::given(path("/api/v2/dags"))
        .and(header("authorization", bearer(&first)))
        .respond_with(answer(status, body))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags"))
        .and(header("authorization", bearer(&second)))
        .respond_with(answer(200, sample("dags_list.json")))
        .expect(2)
        .mount(&server)
        .await;
    let client = client_with(&server, V2, admin());
    assert_eq!(client.dags(0, 100).await.unwrap().items.len(), 3);
    assert_eq!(count(&server, "/auth/token").await, 2);
    assert_eq!(
        client.requests_sent(),
        4,
        "token, rejected call, token, retried call"
    );
    // The new token is cached.
    client.dags(0, 100).await.unwrap();
    assert_eq!(count(&server, "/auth/token").await, 2);
    server.verify().await;
}

#[tokio::test]
async fn expired_token_401_is_refreshed_once_and_retried() {
    rejected_token_is_replaced_once(401, &sample("dags_list_expired_token_401.json")).await;
}

#[tokio::test]
async fn invalid_jwt_403_is_refreshed_once_and_retried() {
    rejected_token_is_replaced_once(403, &sample("dags_list_bad_token_403.json")).await;
}

#[tokio::test]
async fn a_permission_403_is_not_a_token_problem() {
    let server = MockServer::start().await;
    token_endpoint(&jwt(3600, "a"), u64::MAX)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/probe_etl/dagRuns"))
        .respond_with(answer(403, sample("dagrun_trigger_viewer_403.json")))
        .mount(&server)
        .await;
    let client = client_with(&server, V2, admin());
    let error = client
        .trigger("probe_etl", &TriggerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error, AirflowError::status(403, "Forbidden"));
    assert_eq!(count(&server, "/auth/token").await, 1, "no refresh");
    assert_eq!(client.requests_sent(), 2);
}

#[tokio::test]
async fn a_token_rejected_again_after_refresh_is_not_refreshed_twice() {
    let server = MockServer::start().await;
    token_endpoint(&jwt(3600, "a"), u64::MAX)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(401, sample("dags_list_expired_token_401.json")))
        .mount(&server)
        .await;
    let client = client_with(&server, V2, admin());
    let error = client.dags(0, 10).await.unwrap_err();
    assert_eq!(error, AirflowError::status(401, "Token Expired"));
    assert_eq!(count(&server, "/auth/token").await, 2);
    assert_eq!(count(&server, "/api/v2/dags").await, 2);
}

#[tokio::test]
async fn a_token_close_to_expiry_is_replaced_before_use() {
    let server = MockServer::start().await;
    let (short, long) = (jwt(10, "short"), jwt(3600, "long"));
    token_endpoint(&short, 1).mount(&server).await;
    token_endpoint(&long, 1).mount(&server).await;
    for token in [&short, &long] {
        Mock::given(path("/api/v2/dags"))
            .and(header("authorization", bearer(token)))
            .respond_with(answer(200, sample("dags_list.json")))
            .mount(&server)
            .await;
    }
    let client = client_with(&server, V2, admin());
    for _ in 0..3 {
        client.dags(0, 100).await.unwrap();
    }
    let auth_headers: Vec<_> = received(&server)
        .await
        .iter()
        .filter(|request| request.url.path() == "/api/v2/dags")
        .map(|request| {
            request.headers["authorization"]
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // A fresh short-lived token is still used once; the next call refreshes (10 s < 30 s).
    assert_eq!(auth_headers, [bearer(&short), bearer(&long), bearer(&long)]);
    assert_eq!(count(&server, "/auth/token").await, 2);
}

#[tokio::test]
async fn bad_credentials_are_an_auth_error_without_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/token"))
        .and(body_json(
            json!({"username": "admin", "password": "s3cret-pw"}),
        ))
        .respond_with(answer(401, sample("auth_token_bad_password_401.json")))
        .expect(1)
        .mount(&server)
        .await;
    let credentials = Credentials::Password {
        username: "admin".into(),
        password: "s3cret-pw".into(),
    };
    let client = client_with(&server, V2, credentials);
    let error = client.dags(0, 10).await.unwrap_err();
    let AirflowError::Auth(text) = &error else {
        panic!("expected Auth, got {error:?}")
    };
    assert!(
        text.contains("401") && text.contains("Invalid credentials"),
        "{text}"
    );
    assert!(!format!("{error} {error:?} {client:?}").contains("s3cret-pw"));
    assert!(!error.is_retryable());
    assert_eq!(count(&server, "/api/v2/dags").await, 0);
}

#[tokio::test]
async fn static_token_is_a_bearer_header_and_never_refreshed() {
    let server = MockServer::start().await;
    Mock::given(path("/auth/token"))
        .respond_with(answer(201, r#"{"access_token": "x"}"#))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/dags"))
        .and(header("authorization", "Bearer static-token"))
        .respond_with(answer(401, sample("dags_list_expired_token_401.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/dags"))
        .and(header("authorization", "Bearer static-token"))
        .respond_with(answer(200, sample("v1-airflow-2.11.2/dags_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    let error = static_client(&server, V2).dags(0, 10).await.unwrap_err();
    assert_eq!(error.http_status(), Some(401));
    static_client(&server, V1).dags(0, 10).await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn airflow_2_bad_password_is_a_403_status() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/dags"))
        .respond_with(answer(
            403,
            sample("v1-airflow-2.11.2/dags_list_bad_password_403.json"),
        ))
        .mount(&server)
        .await;
    let error = client_with(&server, V1, admin())
        .dags(0, 10)
        .await
        .unwrap_err();
    assert_eq!(error, AirflowError::status(403, "Forbidden"));
}

// ---------------------------------------------------------------------------------------------
// Paths, paging
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn run_ids_are_percent_encoded_in_paths() {
    let server = MockServer::start().await;
    let tries = json!({
        "task_instances": [
            {"dag_id": "probe_failing", "dag_run_id": "manual__2026-11-28T11:56:46.026249+00:00",
             "task_id": "explode", "map_index": -1, "try_number": 1, "state": "failed"},
            {"dag_id": "probe_failing", "dag_run_id": "manual__2026-11-28T11:56:46.026249+00:00",
             "task_id": "explode", "map_index": -1, "try_number": 2, "state": "success"}
        ],
        "total_entries": 2
    });
    Mock::given(method("GET"))
        .respond_with(answer(200, tries.to_string()))
        .mount(&server)
        .await;
    let run_id = "manual__2026-11-28T11:56:46.026249+00:00";

    let got = static_client(&server, V2)
        .tries("probe_failing", run_id, "explode", -1)
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|t| (t.try_number, t.state.as_deref()))
            .collect::<Vec<_>>(),
        [(1, Some("failed")), (2, Some("success"))]
    );
    static_client(&server, V1)
        .tries("probe_failing", run_id, "explode", -1)
        .await
        .unwrap();
    static_client(&server, V1)
        .tries(
            "my dag",
            "scheduled__2026-01-01T00:00:00+00:00",
            "group.task/x",
            3,
        )
        .await
        .unwrap();

    let paths: Vec<_> = received(&server)
        .await
        .iter()
        .map(|request| request.url.path().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/api/v2/dags/probe_failing/dagRuns/manual__2026-11-28T11%3A56%3A46.026249%2B00%3A00/taskInstances/explode/-1/tries",
            "/api/v1/dags/probe_failing/dagRuns/manual__2026-11-28T11%3A56%3A46.026249%2B00%3A00/taskInstances/explode/tries",
            "/api/v1/dags/my%20dag/dagRuns/scheduled__2026-01-01T00%3A00%3A00%2B00%3A00/taskInstances/group.task%2Fx/3/tries",
        ]
    );
}

#[tokio::test]
async fn limit_is_clamped_to_what_airflow_honours() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/dags"))
        .respond_with(answer(200, sample("dags_list_limit_too_big.json")))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    client.dags(0, 1000).await.unwrap();
    client.dags(7, 0).await.unwrap();
    let queries: Vec<_> = received(&server)
        .await
        .iter()
        .map(|request| {
            let pairs: std::collections::HashMap<_, _> = request.url.query_pairs().collect();
            (pairs["limit"].to_string(), pairs["offset"].to_string())
        })
        .collect();
    assert_eq!(
        queries,
        [
            ("100".to_string(), "0".to_string()),
            ("1".to_string(), "7".to_string())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Trigger
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn trigger_sends_a_null_logical_date_to_airflow_3() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/probe_scheduled/dagRuns"))
        .and(body_json(json!({"logical_date": null})))
        .respond_with(answer(200, sample("dagrun_trigger_paused_dag.json")))
        .expect(1)
        .mount(&server)
        .await;
    let run = static_client(&server, V2)
        .trigger("probe_scheduled", &TriggerRequest::default())
        .await
        .unwrap();
    assert_eq!(run.dag_run_id, "manual_while_paused");
    assert_eq!(
        (run.state.as_str(), run.run_type.as_str()),
        ("queued", "manual")
    );
    assert_eq!(run.logical_date, None);
}

#[tokio::test]
async fn trigger_sends_every_given_field() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/probe_etl/dagRuns"))
        .and(body_json(json!({
            "dag_run_id": "ci_run_1",
            "logical_date": null,
            "conf": {"source": "probe"},
            "note": "triggered by probe"
        })))
        .respond_with(answer(200, sample("dagrun_trigger_etl.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/probe_failing/dagRuns"))
        .and(body_json(json!({"logical_date": "2026-01-02T00:00:00Z"})))
        .respond_with(answer(200, sample("dagrun_trigger_failing.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let request = TriggerRequest {
        dag_run_id: Some("ci_run_1".into()),
        logical_date: None,
        conf: Some(serde_json::Map::from_iter([(
            "source".to_string(),
            json!("probe"),
        )])),
        note: Some("triggered by probe".into()),
    };
    let run = client.trigger("probe_etl", &request).await.unwrap();
    assert_eq!(run.dag_run_id, "ci_run_1");
    assert_eq!(run.conf, Some(json!({"source": "probe"})));
    assert_eq!(run.note.as_deref(), Some("triggered by probe"));

    let dated = TriggerRequest {
        logical_date: Some(at("2026-01-02T00:00:00Z")),
        ..TriggerRequest::default()
    };
    let run = client.trigger("probe_failing", &dated).await.unwrap();
    assert_eq!(run.dag_run_id, "manual__2026-11-28T11:56:46.026249+00:00");
    assert_eq!(run.logical_date, Some(at("2026-01-02T00:00:00Z")));
}

#[tokio::test]
async fn trigger_on_airflow_2_leaves_out_unset_fields() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/dags/probe_etl/dagRuns"))
        .and(header("authorization", BASIC_ADMIN))
        .and(body_json(json!({"dag_run_id": "ci_run_1", "conf": {}})))
        .respond_with(answer(200, sample("v1-airflow-2.11.2/dagrun_trigger.json")))
        .expect(1)
        .mount(&server)
        .await;
    let request = TriggerRequest {
        dag_run_id: Some("ci_run_1".into()),
        conf: Some(serde_json::Map::new()),
        ..TriggerRequest::default()
    };
    let run = client_with(&server, V1, admin())
        .trigger("probe_etl", &request)
        .await
        .unwrap();
    assert_eq!(run.logical_date, Some(at("2026-11-28T12:10:28.862527Z")));
    assert_eq!(run.state, "queued");
}

#[tokio::test]
async fn trigger_errors_carry_airflows_detail_and_are_not_retried() {
    let server = MockServer::start().await;
    let cases = [
        ("no_such_dag", 404, "dagrun_trigger_unknown_dag_404.json"),
        ("dup", 409, "dagrun_trigger_duplicate_409.json"),
        ("bad", 422, "dagrun_trigger_bad_date_422.json"),
    ];
    for (dag_id, status, file) in cases {
        Mock::given(method("POST"))
            .and(path(format!("/api/v2/dags/{dag_id}/dagRuns")))
            .respond_with(answer(status, sample(file)))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/api/v1/dags/dup/dagRuns"))
        .respond_with(answer(
            409,
            sample("v1-airflow-2.11.2/dagrun_trigger_duplicate_409.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let trigger = |dag_id: &'static str| {
        let client = client.clone();
        async move {
            client
                .trigger(dag_id, &TriggerRequest::default())
                .await
                .unwrap_err()
        }
    };
    assert_eq!(
        trigger("no_such_dag").await,
        AirflowError::status(404, "Dag with dag_id: 'no_such_dag' not found")
    );
    let duplicate = trigger("dup").await;
    assert_eq!(duplicate.http_status(), Some(409));
    assert!(
        duplicate
            .to_string()
            .contains("Unique constraint violation")
            && duplicate.to_string().contains("x865FHMZ"),
        "{duplicate}"
    );
    // A 422 keeps each entry of Airflow's list with its location (the API answers them).
    assert_eq!(
        trigger("bad").await,
        AirflowError::Status {
            status: 422,
            detail: "body.logical_date: Input should be a valid datetime or date, invalid character in year".into(),
            retry_after: None,
            fields: vec![shared::airflow::AirflowFieldError {
                loc: vec!["body".into(), "logical_date".into()],
                msg: "Input should be a valid datetime or date, invalid character in year".into(),
                kind: "datetime_from_date_parsing".into(),
            }],
        }
    );
    assert_eq!(client.requests_sent(), 3);
    let v1 = static_client(&server, V1)
        .trigger("dup", &TriggerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        v1,
        AirflowError::status(
            409,
            "DAGRun with DAG ID: 'probe_etl' and DAGRun ID: 'ci_run_1' already exists"
        )
    );
    server.verify().await;
}

#[tokio::test]
async fn trigger_is_not_retried_on_500_or_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/probe_etl/dagRuns"))
        .respond_with(answer(500, r#"{"detail": "Internal Server Error"}"#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/slow/dagRuns"))
        .respond_with(
            answer(200, sample("dagrun_trigger_etl.json")).set_delay(Duration::from_secs(2)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = AirflowClient::new(AirflowConfig {
        request_timeout: Duration::from_millis(300),
        ..config(&server.uri(), V2, Credentials::Token("t".into()))
    })
    .unwrap();
    let error = client
        .trigger("probe_etl", &TriggerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.http_status(), Some(500));
    let error = client
        .trigger("slow", &TriggerRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, AirflowError::Timeout(_)), "{error:?}");
    assert_eq!(client.requests_sent(), 2);
    server.verify().await;
}

#[tokio::test]
async fn trigger_is_retried_on_429_and_503() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer(429, "{}"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(answer(503, "Service Unavailable"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/probe_etl/dagRuns"))
        .respond_with(answer(200, sample("dagrun_trigger_etl.json")))
        .mount(&server)
        .await;
    let client = static_client(&server, V2);
    let run = client
        .trigger("probe_etl", &TriggerRequest::default())
        .await
        .unwrap();
    assert_eq!(run.dag_run_id, "ci_run_1");
    assert_eq!(client.requests_sent(), 3);
}

#[tokio::test]
async fn trigger_is_retried_when_the_connection_is_refused() {
    let client = AirflowClient::new(config(
        &closed_port_url(),
        V2,
        Credentials::Token("t".into()),
    ))
    .unwrap();
    let error = client
        .trigger("probe_etl", &TriggerRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, AirflowError::Unreachable(_)), "{error:?}");
    assert_eq!(
        client.requests_sent(),
        3,
        "nothing reached Airflow: safe to retry"
    );
}

#[test]
fn the_client_is_clone_send_and_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<AirflowClient>();
    assert_traits::<AirflowError>();
}
