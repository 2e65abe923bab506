//! Sync and trigger answer within the request deadline whatever Airflow does (API Gateway cuts
//! a request at 29 s and its caller then gets a bare 503): an Airflow that accepts and never
//! answers, one that answers a byte a second, one that fails with 5xx and asks for retries.
//! Each answer comes within the deadline plus a second, and nothing is left half-written: the
//! sync's record is closed, its checkpoint lets the next sync resume, its lease is free; a
//! cut trigger stores no run and frees its Idempotency-Key. On both backends.

use std::time::{Duration, Instant};

use orchestration_tests::app::{TestApp, body};
use orchestration_tests::fake_airflow::{FakeAirflow, Fault};
use orchestration_tests::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::Connector;
use shared::service::connectors::AirflowSettings;

/// The request deadline of these tests (production: 25 s). Airflow calls stop 2 s before it.
const DEADLINE: Duration = Duration::from_secs(4);
/// What the issue allows past the deadline.
const SLACK: Duration = Duration::from_secs(1);

/// A server whose per-request timeout and retries alone would take far longer than the
/// deadline: only the deadline can explain a timely answer.
async fn setup(backend: Backend) -> (TestApp, FakeAirflow, Connector) {
    let app = TestApp::spawn_with(backend, |state| {
        state.request_deadline = DEADLINE;
        state.airflow = AirflowSettings {
            request_timeout: Duration::from_secs(20),
            max_attempts: 10,
            retry_base_delay: Duration::from_millis(300),
        };
    })
    .await;
    let (airflow, connector) = app.with_fake_airflow().await;
    (app, airflow, connector)
}

/// Sends and measures: (status, body, wall time).
async fn timed(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Value, Duration) {
    let mut request = app
        .client
        .request(Method::POST, app.url("acme", path))
        .bearer_auth(&app.keys.admin)
        .timeout(Duration::from_secs(60));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let (status, body) = body(response).await;
    (status, body, started.elapsed())
}

fn assert_in_time(elapsed: Duration, what: &str) {
    assert!(
        elapsed <= DEADLINE + SLACK,
        "{what} answered after {elapsed:?}, past the {DEADLINE:?} deadline (+{SLACK:?})"
    );
}

/// A sync cut by the deadline: 202, its record closed and pending; the checkpoint and the
/// free lease let the next sync (Airflow healthy again) finish the work.
async fn sync_is_cut_and_resumed(backend: Backend, fault: Fault) {
    let (app, airflow, connector) = setup(backend).await;
    airflow.with(|state| state.fault_next(std::iter::repeat_n(fault.clone(), 30)));
    let sync = format!("/connectors/{}/sync", connector.id);
    let (status, record, elapsed) = timed(&app, &sync, &[]).await;
    assert_in_time(elapsed, &format!("a sync against {fault:?}"));
    assert_eq!(
        (status, &record["status"], &record["pending"]),
        (202, &json!("partial"), &json!(true)),
        "{record}"
    );
    assert!(record["finished_at"].is_string(), "{record}");

    airflow.with(|state| state.clear_faults());
    let (status, record, _) = timed(&app, &sync, &[]).await;
    assert_eq!(
        (status, &record["status"]),
        (200, &json!("succeeded")),
        "{record}"
    );
    assert_eq!(record["counts"]["runs"]["added"], 1, "{record}");
    let (_, history) = body(
        app.get(
            &format!("/connectors/{}/syncs", connector.id),
            Some(&app.keys.viewer),
        )
        .await,
    )
    .await;
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "partial"], "no record left running");
}

async fn sync_against_a_hanging_airflow(backend: Backend) {
    sync_is_cut_and_resumed(backend, Fault::Hang).await;
}

async fn sync_against_a_dripping_airflow(backend: Backend) {
    sync_is_cut_and_resumed(backend, Fault::Drip).await;
}

/// Retries stop where the deadline would cut them: the sync fails with Airflow's answer.
async fn sync_against_a_failing_airflow(backend: Backend) {
    let (app, airflow, connector) = setup(backend).await;
    airflow.with(|state| state.fault_next(std::iter::repeat_n(Fault::Status(503), 30)));
    let sync = format!("/connectors/{}/sync", connector.id);
    let (status, record, elapsed) = timed(&app, &sync, &[]).await;
    assert_in_time(elapsed, "a sync against 503s");
    assert_eq!(
        (status, &record["status"]),
        (200, &json!("failed")),
        "{record}"
    );
    assert!(
        record["error"].as_str().unwrap().contains("503"),
        "{record}"
    );
}

/// A trigger cut by the deadline: 504, no run stored, the Idempotency-Key free for a retry.
async fn trigger_is_cut(backend: Backend, fault: Fault) {
    let (app, airflow, connector) = setup(backend).await;
    let sync = format!("/connectors/{}/sync", connector.id);
    assert_eq!(timed(&app, &sync, &[]).await.0, 200);
    let pipeline_id = ids::pipeline_id(connector.id, "etl");
    let trigger = format!("/pipelines/{pipeline_id}/trigger");
    let key = [("Idempotency-Key", "deadline-test")];

    airflow.with(|state| state.fault_next(std::iter::repeat_n(fault.clone(), 30)));
    let (status, answer, elapsed) = timed(&app, &trigger, &key).await;
    assert_in_time(elapsed, &format!("a trigger against {fault:?}"));
    assert_eq!(status, 504, "{answer}");
    let (_, runs) = body(
        app.get(
            &format!("/pipelines/{pipeline_id}/runs"),
            Some(&app.keys.viewer),
        )
        .await,
    )
    .await;
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "only the synced run: {runs}"
    );

    airflow.with(|state| state.clear_faults());
    let (status, run, _) = timed(&app, &trigger, &key).await;
    assert!(
        status == 201 || status == 200,
        "the retry with the key: {status} {run}"
    );
    assert_eq!(run["pipeline_id"], json!(pipeline_id), "{run}");
}

async fn trigger_against_a_hanging_airflow(backend: Backend) {
    trigger_is_cut(backend, Fault::Hang).await;
}

async fn trigger_against_a_dripping_airflow(backend: Backend) {
    trigger_is_cut(backend, Fault::Drip).await;
}

/// 429s asking for retries: retried only while they fit before the deadline.
async fn trigger_against_a_throttling_airflow(backend: Backend) {
    let (app, airflow, connector) = setup(backend).await;
    let sync = format!("/connectors/{}/sync", connector.id);
    assert_eq!(timed(&app, &sync, &[]).await.0, 200);
    let trigger = format!(
        "/pipelines/{}/trigger",
        ids::pipeline_id(connector.id, "etl")
    );
    airflow.with(|state| state.fault_next(std::iter::repeat_n(Fault::TooManyRequests(1), 30)));
    let (status, answer, elapsed) = timed(&app, &trigger, &[]).await;
    assert_in_time(elapsed, "a trigger against 429s");
    assert!(!(200..300).contains(&status), "{status} {answer}");
    let sent = airflow.server.received_requests().await.unwrap_or_default();
    let triggers = sent
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/dagRuns"))
        .count();
    assert!(
        (2..=3).contains(&triggers),
        "retried after each 1 s Retry-After while it fit in the 2 s before the cut-off: {triggers} attempts"
    );
}

on_both_backends!(
    sync_against_a_hanging_airflow,
    sync_against_a_dripping_airflow,
    sync_against_a_failing_airflow,
    trigger_against_a_hanging_airflow,
    trigger_against_a_dripping_airflow,
    trigger_against_a_throttling_airflow,
);
