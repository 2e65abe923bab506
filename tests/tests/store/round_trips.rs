//! Table round trips per request: once the caller's key is cached, every read endpoint makes at
//! most two table requests, and that number does not grow with the number of pipelines or
//! runs in the space. Rate limiting adds one reservation per block of requests, measured on
//! its own below.
//!
//! "No request path scans" holds by construction: the `Table` port has no scan operation,
//! and every query names a partition (see `shared::store::Query::partition`).
//!
//! Counts are calls to the table port (`CountingTable`); a query page or a batch read of at
//! most 100 keys is one DynamoDB request, which is what the read paths below make at the
//! default page sizes.

use std::time::Duration as StdDuration;

use chrono::{Duration, SecondsFormat};
use orchestration_tests::app::{TestApp, run, task_run};
use orchestration_tests::{Backend, on_both_backends};
use serde_json::json;
use shared::config::AccessConfig;
use shared::domain::model::{Pipeline, RunStatus};

/// The read endpoints, with their budget of table requests (authentication cached).
const BUDGETS: [(&str, u64); 13] = [
    ("list pipelines", 2),
    ("list pipelines, filtered", 2),
    ("list pipelines, days=90", 2),
    ("get pipeline", 1),
    ("list runs", 2),
    ("list runs, date range", 2),
    ("list runs, a page of many", 2),
    ("get run", 1),
    ("list run comments", 2),
    ("list task-run comments", 2),
    ("list syncs", 2),
    ("list pipelines (again)", 2),
    // The version check (its item names what changed), then the changed entry with its
    // pipeline; the rest comes from the process's cache.
    ("list pipelines after a change", 2),
];

/// Requests one GET makes (after the requests made before it are cleared).
async fn cost(app: &TestApp, path: &str) -> u64 {
    app.requests.take();
    let response = app.get(path, Some(&app.keys.viewer)).await;
    assert_eq!(response.status(), 200, "{path}");
    app.requests.take()
}

async fn seed(app: &TestApp, pipelines: usize, runs_each: i64) -> Vec<Pipeline> {
    let mut seeded = Vec::new();
    for i in 0..pipelines {
        let p = app
            .add_pipeline(&app.connector, &format!("dag_{i:03}"), |_| {})
            .await;
        let runs = (0..runs_each)
            .map(|r| {
                let mut run = run(
                    &p,
                    &format!("scheduled__{r}"),
                    Duration::hours(r + 1),
                    RunStatus::Success,
                    Some(30),
                );
                let task = task_run(&run.run, "work", 1, "success", Some(20));
                run.task_runs.push(task);
                run
            })
            .collect();
        app.add_runs(&p, runs).await;
        seeded.push(p);
    }
    seeded
}

/// An app with the authentication cache on and rate limiting off (measured separately).
async fn app_without_rate_limit(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |state| {
        state.set_access(AccessConfig {
            auth_cache_ttl: StdDuration::from_secs(300),
            rate_limit_per_minute: None,
        })
    })
    .await
}

async fn measure(backend: Backend, pipelines: usize, runs_each: i64) -> Vec<u64> {
    let app = app_without_rate_limit(backend).await;
    let seeded = seed(&app, pipelines, runs_each).await;
    let p = &seeded[0];
    let (run, task_runs) = app
        .repo
        .get_run_with_task_runs(
            p.space_id,
            shared::domain::ids::run_id(p.id, "scheduled__0"),
        )
        .await
        .unwrap()
        .unwrap();
    let task_run = &task_runs[0];
    for (path, key) in [
        (format!("/runs/{}/comments", run.id), &app.keys.editor),
        (
            format!("/task-runs/{}/comments", task_run.id),
            &app.keys.editor,
        ),
    ] {
        let response = app
            .client
            .post(app.url(orchestration_tests::app::SPACE, &path))
            .bearer_auth(key)
            .json(&json!({ "content": "looks slow" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{path}");
    }
    // The first request of a key in a space fills the authentication cache: 2 more requests.
    app.requests.take();
    let first = app.get("/pipelines", Some(&app.keys.viewer)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        app.requests.take(),
        2 + 2,
        "uncached: key and membership reads, then the list"
    );

    let deep_range = format!(
        "/pipelines/{}/runs?started_from={}&started_to={}",
        p.id,
        (chrono::Utc::now() - Duration::hours(6)).to_rfc3339_opts(SecondsFormat::Secs, true),
        (chrono::Utc::now() - Duration::hours(3)).to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let paths = [
        "/pipelines".to_string(),
        "/pipelines?days=30&q=dag&status=success&watched_only=false".to_string(),
        "/pipelines?days=90&size=100".to_string(),
        format!("/pipelines/{}", p.id),
        format!("/pipelines/{}/runs", p.id),
        deep_range,
        format!("/pipelines/{}/runs?size=1&page=2", p.id),
        format!("/runs/{}", run.id),
        format!("/runs/{}/comments", run.id),
        format!("/task-runs/{}/comments", task_run.id),
        format!("/connectors/{}/syncs", app.connector.id),
        "/pipelines".to_string(),
    ];
    let mut costs = Vec::new();
    for path in &paths {
        costs.push(cost(&app, path).await);
    }
    // A warm list reads the listing version item alone (the page's pipelines and run series
    // are cached at their revision): one DynamoDB read unit, whatever the page holds.
    app.requests.take_read_cost();
    let warm = app.get("/pipelines?size=100", Some(&app.keys.viewer)).await;
    assert_eq!(warm.status(), 200);
    let (_, bytes) = app.requests.take_read_cost();
    assert!(bytes <= 4096, "a warm list read {bytes} bytes");
    // A write moves the space's listing version: the next list sees it in its batch read,
    // with the change it recorded, and re-reads only that pipeline's entry and item.
    let response = app
        .client
        .patch(app.url(
            orchestration_tests::app::SPACE,
            &format!("/pipelines/{}/criticality", p.id),
        ))
        .bearer_auth(&app.keys.editor)
        .json(&json!({ "criticality": "high" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.requests.take();
    let changed = app.get("/pipelines", Some(&app.keys.viewer)).await;
    assert_eq!(changed.status(), 200);
    costs.push(app.requests.take());
    let body: serde_json::Value = changed.json().await.unwrap();
    let listed = body
        .as_array()
        .and_then(|items| items.iter().find(|item| item["id"] == p.id.to_string()))
        .expect("the changed pipeline is listed");
    assert_eq!(listed["criticality"], "high", "the list shows the write");
    costs
}

async fn read_budgets_hold_and_do_not_grow_with_the_space(backend: Backend) {
    let small = measure(backend, 2, 3).await;
    let large = measure(backend, 12, 20).await;
    let report: Vec<String> = BUDGETS
        .iter()
        .zip(&small)
        .map(|((name, _), spent)| format!("{name}: {spent}"))
        .collect();
    println!(
        "table requests per read ({backend:?}): {}",
        report.join(", ")
    );
    assert_eq!(
        small, large,
        "request counts do not depend on the number of pipelines or runs"
    );
    for ((name, budget), spent) in BUDGETS.iter().zip(&small) {
        assert!(
            spent <= budget,
            "{name}: {spent} table requests, budget {budget}"
        );
    }
}

/// With the default limit (600 a minute: blocks of 12), metering costs one table write per 12
/// requests of a key, and the `X-RateLimit-*` headers count down.
async fn rate_limiting_costs_one_write_per_block(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = app.get("/pipelines", Some(&app.keys.viewer)).await;
    let mut remaining = Vec::new();
    app.requests.take();
    app.requests.take_written();
    for _ in 0..48 {
        let response = app.get("/pipelines", Some(&app.keys.viewer)).await;
        assert_eq!(response.status(), 200);
        let value = |name: &str| {
            response.headers()[name]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(value("x-ratelimit-limit"), 600);
        // The window's end in Unix seconds, within the next minute.
        let reset_in = value("x-ratelimit-reset") as i64 - chrono::Utc::now().timestamp();
        assert!((0..=60).contains(&reset_in), "resets in {reset_in} s");
        remaining.push(value("x-ratelimit-remaining"));
    }
    let rate_writes = app
        .requests
        .take_written()
        .iter()
        .filter(|partition| partition.starts_with("RATE#"))
        .count();
    // 48 requests = 4 blocks of 12, give or take the block spanning a minute boundary.
    assert!(
        (4..=5).contains(&rate_writes),
        "{rate_writes} reservations for 48 requests"
    );
    // Listing an empty space is one query; the rest is the limiter's.
    assert_eq!(app.requests.take(), 48 + rate_writes as u64);
    assert!(
        remaining.windows(2).all(|w| w[1] < w[0] || w[1] > 500),
        "remaining counts down (or resets with a new minute): {remaining:?}"
    );
}

on_both_backends!(
    read_budgets_hold_and_do_not_grow_with_the_space,
    rate_limiting_costs_one_write_per_block
);
