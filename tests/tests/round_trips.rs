//! Table round trips per request: each read endpoint stays within its budget, and the budget
//! does not grow with the number of pipelines or runs in the space.

use chrono::Duration;
use orchestration_tests::app::{TestApp, run, task_run};
use orchestration_tests::{Backend, on_both_backends};
use shared::domain::model::{Pipeline, RunStatus};

/// Requests one GET makes (after the seeding requests are cleared).
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

async fn read_budgets_do_not_grow_with_the_space(backend: Backend) {
    // Budgets: 2 requests authenticate (key, membership); the rest is the endpoint's own.
    let budgets = [("list", 5), ("detail", 3), ("runs", 4), ("run", 3)];
    let mut measured = Vec::new();
    for (pipelines, runs_each) in [(2, 3), (12, 20)] {
        let app = TestApp::spawn(backend).await;
        let seeded = seed(&app, pipelines, runs_each).await;
        let p = &seeded[0];
        let (run, _) = app
            .repo
            .get_run_with_task_runs(shared::domain::ids::run_id(p.id, "scheduled__0"))
            .await
            .unwrap()
            .unwrap();
        let costs = [
            cost(&app, "/pipelines?days=30").await,
            cost(&app, &format!("/pipelines/{}", p.id)).await,
            cost(&app, &format!("/pipelines/{}/runs", p.id)).await,
            cost(&app, &format!("/runs/{}", run.id)).await,
        ];
        measured.push(costs);
    }
    assert_eq!(
        measured[0], measured[1],
        "request counts do not depend on the number of pipelines or runs"
    );
    for ((name, budget), spent) in budgets.iter().zip(measured[0]) {
        assert!(
            spent <= *budget,
            "{name}: {spent} table requests, budget {budget}"
        );
    }
}

on_both_backends!(read_budgets_do_not_grow_with_the_space);
