//! The unfiltered runs list reads only up to its page and counts the rest in the index; with
//! any filter it reads the whole range. Both must page the same runs in the same order with
//! the same total.

use chrono::Duration;
use orchestration_tests::app::{TestApp, body, header, run};
use orchestration_tests::{Backend, on_both_backends};
use serde_json::Value;
use shared::domain::model::RunStatus;

async fn page(app: &TestApp, path: &str) -> (Vec<String>, String) {
    let response = app.get(path, Some(&app.keys.viewer)).await;
    let total = header(&response, "x-total-count");
    let (status, list) = body(response).await;
    assert_eq!(status, 200, "{path}: {list}");
    let ids = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["dag_run_id"].as_str().expect("dag_run_id").to_string())
        .collect();
    (ids, total)
}

async fn unfiltered_pages_match_the_filtered_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app.add_pipeline(&app.connector, "hourly", |_| {}).await;
    let runs = (0..23)
        .map(|i| {
            run(
                &p,
                &format!("scheduled__{i:02}"),
                Duration::hours(i + 1),
                RunStatus::Success,
                Some(60),
            )
        })
        .collect();
    app.add_runs(&p, runs).await;
    let empty = app.add_pipeline(&app.connector, "never_ran", |_| {}).await;

    // Every run started within the last 30 hours: this filter keeps them all (full read).
    let from = (chrono::Utc::now() - Duration::hours(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut seen = Vec::new();
    for number in 1..=4 {
        let fast = page(
            &app,
            &format!("/pipelines/{}/runs?size=7&page={number}", p.id),
        )
        .await;
        let full = page(
            &app,
            &format!(
                "/pipelines/{}/runs?size=7&page={number}&started_from={from}",
                p.id
            ),
        )
        .await;
        assert_eq!(fast, full, "page {number}");
        assert_eq!(fast.1, "23", "page {number}");
        seen.extend(fast.0);
    }
    let expected: Vec<String> = (0..23).map(|i| format!("scheduled__{i:02}")).collect();
    assert_eq!(seen, expected, "newest first, every run once");
    // Past the end: empty, with the right total.
    assert_eq!(
        page(&app, &format!("/pipelines/{}/runs?size=7&page=9", p.id)).await,
        (vec![], "23".to_string())
    );
    // A pipeline without runs, and one of another space or none at all.
    assert_eq!(
        page(&app, &format!("/pipelines/{}/runs", empty.id)).await,
        (vec![], "0".to_string())
    );
    let foreign = app
        .add_pipeline(&app.other_connector, "theirs", |_| {})
        .await;
    let theirs = (0..3)
        .map(|i| {
            run(
                &foreign,
                &format!("scheduled__{i}"),
                Duration::hours(i + 1),
                RunStatus::Failed,
                Some(5),
            )
        })
        .collect();
    app.add_runs(&foreign, theirs).await;
    for id in [foreign.id, uuid::Uuid::new_v4()] {
        let response = app
            .get(&format!("/pipelines/{id}/runs"), Some(&app.keys.viewer))
            .await;
        let (status, answer) = body(response).await;
        assert_eq!(status, 404, "{answer}");
        assert!(!answer.to_string().contains("scheduled__"), "{answer}");
        assert_eq!(answer["detail"], Value::from("Pipeline not found"));
    }
}

on_both_backends!(unfiltered_pages_match_the_filtered_path);
