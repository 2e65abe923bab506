//! Connector sync against a fake Airflow: a full sync mirrors Airflow exactly, an unchanged
//! re-sync writes nothing, and every fault (5xx, 429, timeouts, garbage, expired tokens, data
//! changing between pages, a crash midway, a concurrent sync) ends, after a clean sync, with
//! the store exactly equal to what Airflow holds. On both storage backends.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use orchestration_tests::app::TestApp;
use orchestration_tests::fake_airflow::{AirflowState, FakeAirflow, FakeTry, Fault};
use orchestration_tests::{Backend, on_both_backends};
use shared::airflow::AirflowClient;
use shared::domain::ids;
use shared::domain::model::Connector;
use shared::domain::sync::{SyncRecord, SyncStatus, SyncTrigger};
use shared::secrets::SecretResolver;
use shared::service::connectors::{AirflowSettings, client_for};
use shared::sync::{SyncOptions, sync_connector};

/// Fast timeouts and retries, so faults resolve within the test's time.
fn settings() -> AirflowSettings {
    AirflowSettings {
        request_timeout: Duration::from_millis(400),
        max_attempts: 3,
        retry_base_delay: Duration::from_millis(5),
    }
}

fn options() -> SyncOptions {
    let mut options = SyncOptions::new(SyncTrigger::Manual, Duration::from_secs(60));
    options.lease_margin = Span::zero();
    options
}

/// (DAG id, run id) and (state, end time) of a run, on either side of the comparison.
type RunKey = (String, String);
type RunState = (String, Option<chrono::DateTime<Utc>>);

struct Setup {
    app: TestApp,
    airflow: FakeAirflow,
    connector: Connector,
    client: AirflowClient,
}

async fn setup(backend: Backend, seed: impl FnOnce(&mut AirflowState)) -> Setup {
    let app = TestApp::spawn(backend).await;
    let airflow = FakeAirflow::start().await;
    airflow.with(seed);
    let connector = app.connect(&airflow).await;
    let client = client_for(&connector, &SecretResolver::new(), settings())
        .await
        .unwrap();
    Setup {
        app,
        airflow,
        connector,
        client,
    }
}

impl Setup {
    async fn sync(&self) -> SyncRecord {
        sync_connector(&self.app.repo, &self.client, &self.connector, options())
            .await
            .unwrap()
    }

    /// Asserts the store holds exactly Airflow's DAGs, runs and task tries, with their states.
    async fn assert_mirrors_airflow(&self) {
        let (dags, runs, tries) = self.airflow.with(|state| {
            let dags: BTreeMap<String, (bool, bool)> = state
                .dags
                .iter()
                .map(|(id, (paused, stale, _))| (id.clone(), (*paused, !*stale)))
                .collect();
            let runs: BTreeMap<RunKey, RunState> = state
                .runs
                .iter()
                .map(|r| {
                    (
                        (r.dag_id.clone(), r.dag_run_id.clone()),
                        (r.state.clone(), r.end_date),
                    )
                })
                .collect();
            let mut tries = BTreeMap::new();
            for ti in &state.task_instances {
                for attempt in &ti.tries {
                    tries.insert(
                        (
                            ti.dag_id.clone(),
                            ti.dag_run_id.clone(),
                            ti.task_id.clone(),
                            attempt.try_number,
                        ),
                        attempt.state.clone().unwrap_or_else(|| "none".into()),
                    );
                }
            }
            (dags, runs, tries)
        });
        let pipelines: BTreeMap<String, (bool, bool)> = self
            .app
            .repo
            .list_pipelines(self.connector.space_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.connector_id == self.connector.id)
            .map(|p| (p.dag_id, (p.is_paused, p.is_active)))
            .collect();
        // Pipelines once seen stay (inactive) when their DAG disappears from Airflow.
        for (dag_id, expected) in &dags {
            assert_eq!(pipelines.get(dag_id), Some(expected), "pipeline {dag_id}");
        }
        let mut stored_runs = BTreeMap::new();
        let mut stored_tries = BTreeMap::new();
        for dag_id in dags.keys() {
            let pipeline_id = ids::pipeline_id(self.connector.id, dag_id);
            for run in self
                .app
                .repo
                .list_runs(self.connector.space_id, pipeline_id, None, None)
                .await
                .unwrap()
            {
                let (_, task_runs) = self
                    .app
                    .repo
                    .get_run_with_task_runs(self.connector.space_id, run.id)
                    .await
                    .unwrap()
                    .unwrap();
                for t in task_runs {
                    stored_tries.insert(
                        (
                            dag_id.clone(),
                            run.dag_run_id.clone(),
                            t.task_id,
                            t.try_number,
                        ),
                        t.status,
                    );
                }
                stored_runs.insert(
                    (dag_id.clone(), run.dag_run_id.clone()),
                    (run.status.as_str().to_string(), run.ended_at),
                );
            }
        }
        assert_eq!(stored_runs, runs, "runs and their states");
        assert_eq!(stored_tries, tries, "every task try and its state");
    }
}

/// Three DAGs, 230 runs (three pages), two tasks per run, a few retried.
fn seed(state: &mut AirflowState) {
    let base = Utc::now() - Span::days(3);
    for dag in ["alpha", "beta", "gamma"] {
        state.add_dag(dag, "data-team");
    }
    for i in 0..230 {
        let dag = ["alpha", "beta", "gamma"][i % 3];
        let status = if i % 7 == 0 { "failed" } else { "success" };
        state.add_run(
            dag,
            &format!("scheduled__{i:04}+00:00"),
            status,
            base + Span::minutes(i as i64),
            &["extract", "load"],
        );
    }
    for i in (0..230).step_by(40) {
        state.retry_task(
            &format!("scheduled__{i:04}+00:00"),
            "load",
            base + Span::minutes(i as i64 + 1),
        );
    }
}

async fn full_sync_then_unchanged_resync_writes_nothing(backend: Backend) {
    let s = setup(backend, seed).await;
    let first = s.sync().await;
    assert_eq!(first.status, SyncStatus::Succeeded, "{first:?}");
    assert_eq!(first.counts.pipelines.added, 3);
    assert_eq!(first.counts.runs.added, 230);
    assert_eq!(
        first.counts.task_runs.added,
        460 + 6,
        "every try of every task"
    );
    s.assert_mirrors_airflow().await;

    s.app.requests.take_written();
    let requests_before = s.airflow.with(|state| state.requests);
    let second = s.sync().await;
    assert_eq!(second.status, SyncStatus::Succeeded);
    for counts in [
        second.counts.pipelines,
        second.counts.runs,
        second.counts.task_runs,
    ] {
        assert_eq!((counts.added, counts.updated), (0, 0), "{second:?}");
    }
    let data_writes: Vec<String> = s
        .app
        .requests
        .take_written()
        .into_iter()
        // The sync's own bookkeeping, and the rate limiter's counter when the request
        // happens to reserve a new block of its key's requests.
        .filter(|pk| !pk.starts_with("CONNECTOR#") && !pk.starts_with("RATE#"))
        .collect();
    assert!(
        data_writes.is_empty(),
        "an unchanged re-sync writes only its own bookkeeping: {data_writes:?}"
    );
    // Incremental: one page each of DAGs, changed runs and changed task instances.
    let requests = s.airflow.with(|state| state.requests) - requests_before;
    assert_eq!(requests, 3, "a re-sync makes only the incremental requests");
    assert_eq!(second.airflow_requests, 3);

    // A change in Airflow is picked up by the next sync, and only it.
    let later = Utc::now();
    s.airflow.with(|state| {
        state.add_run("alpha", "manual__new", "running", later, &["extract"]);
        state.finish_run("scheduled__0229+00:00", "failed", later);
        state.dags.get_mut("gamma").unwrap().0 = true;
        state.dags.get_mut("beta").unwrap().1 = true;
    });
    let third = s.sync().await;
    assert_eq!(third.counts.runs.added, 1);
    assert_eq!(third.counts.runs.updated, 1);
    assert_eq!(
        third.counts.pipelines.updated, 2,
        "paused gamma, stale beta"
    );
    s.assert_mirrors_airflow().await;
}

async fn retried_faults_are_invisible(backend: Backend) {
    let s = setup(backend, seed).await;
    // Each of these is retried by the client within the same sync.
    s.airflow.with(|state| {
        state.fault_at(1, Fault::Status(500));
        state.fault_at(3, Fault::Status(503));
        state.fault_at(5, Fault::TooManyRequests(1));
        state.fault_at(7, Fault::Delay(Duration::from_millis(1500)));
        state.fault_at(9, Fault::ExpiredToken);
    });
    let started = std::time::Instant::now();
    let record = s.sync().await;
    assert_eq!(record.status, SyncStatus::Succeeded, "{record:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(
        s.airflow.with(|state| state.tokens_issued()),
        2,
        "the expired token was replaced once"
    );
    s.assert_mirrors_airflow().await;
}

async fn a_fault_at_any_request_converges_after_a_clean_sync(backend: Backend) {
    // Small data so a full sync is a handful of requests; each index gets a fault that
    // outlasts the client's retries (garbage is not retried at all).
    let small = |state: &mut AirflowState| {
        let base = Utc::now() - Span::hours(5);
        state.add_dag("one", "ops");
        state.add_dag("two", "ops");
        for i in 0..4 {
            state.add_run(
                ["one", "two"][i % 2],
                &format!("r{i}"),
                "success",
                base + Span::minutes(i as i64),
                &["a", "b"],
            );
        }
        state.retry_task("r1", "b", base + Span::minutes(30));
    };
    let probe = setup(backend, small).await;
    probe.sync().await;
    let full_sync_requests = probe.airflow.with(|state| state.requests);
    assert!(
        full_sync_requests >= 5,
        "token, DAGs, runs, task instances, tries"
    );

    for index in 0..full_sync_requests {
        for fault in [Fault::Garbage, Fault::Status(500)] {
            let s = setup(backend, small).await;
            s.airflow.with(|state| match fault {
                Fault::Status(code) => state.fault_next_at(
                    index,
                    [
                        Fault::Status(code),
                        Fault::Status(code),
                        Fault::Status(code),
                    ],
                ),
                ref other => state.fault_at(index, other.clone()),
            });
            let broken = s.sync().await;
            assert_ne!(broken.status, SyncStatus::Running, "index {index}");
            let clean = s.sync().await;
            assert_eq!(
                clean.status,
                SyncStatus::Succeeded,
                "index {index} {fault:?}: {clean:?}"
            );
            s.assert_mirrors_airflow().await;
        }
    }
}

async fn data_changing_between_pages_is_not_lost(backend: Backend) {
    let s = setup(backend, seed).await;
    // Between the first and second page of runs, Airflow updates an early run, adds new ones
    // and finishes a late one.
    s.airflow.with(|state| {
        state.on_request(|index, state| {
            if index == 3 {
                let now = Utc::now();
                state.finish_run("scheduled__0001+00:00", "failed", now);
                state.add_run("alpha", "manual__during", "success", now, &["extract"]);
                state.retry_task("scheduled__0200+00:00", "extract", now);
            }
        });
    });
    s.sync().await;
    // Whatever the first sync saw, the next one (incremental) completes the picture.
    let next = s.sync().await;
    assert_eq!(next.status, SyncStatus::Succeeded);
    s.assert_mirrors_airflow().await;
}

async fn a_crash_midway_is_resumed(backend: Backend) {
    let s = setup(backend, seed).await;
    // Requests: token, DAGs, runs page 1, runs page 2 (hangs), ... The process "dies" while
    // waiting for page 2 (the future is dropped).
    s.airflow
        .with(|state| state.fault_at(3, Fault::Delay(Duration::from_secs(30))));
    let mut options = options();
    // The lease lasts as long as the budget (no margin here): long enough for the first page
    // on any backend, short enough to wait out.
    options.budget = Duration::from_secs(5);
    let started = std::time::Instant::now();
    let sync = sync_connector(&s.app.repo, &s.client, &s.connector, options.clone());
    let hanging = async {
        while s.airflow.with(|state| state.requests) < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        result = sync => panic!("the sync should hang on page 2, got {result:?}"),
        () = hanging => {} // the sync future is dropped here: the "crash"
    }
    let checkpoint = s.app.repo.get_checkpoint(s.connector.id).await.unwrap();
    let pending = checkpoint
        .pending
        .clone()
        .expect("the crashed sync left its checkpoint");
    assert_eq!(
        pending.runs_offset, 100,
        "the first page of runs was recorded"
    );

    // While its lease lasts, a new sync is refused; after it, the next one resumes.
    let early = sync_connector(&s.app.repo, &s.client, &s.connector, options.clone()).await;
    assert!(
        matches!(early, Err(shared::Error::Conflict(_))),
        "{early:?}"
    );
    let lease_over = started + options.budget + Duration::from_millis(300);
    tokio::time::sleep(lease_over.saturating_duration_since(std::time::Instant::now())).await;
    let resumed = s.sync().await;
    assert_eq!(resumed.status, SyncStatus::Succeeded, "{resumed:?}");
    assert_eq!(
        resumed.counts.runs.added, 130,
        "only the runs after the checkpoint were new"
    );
    assert!(resumed.warnings.iter().any(|w| w.contains("resumed")));
    let records = s
        .app
        .repo
        .list_sync_records(s.connector.space_id, s.connector.id)
        .await
        .unwrap();
    let crashed_record = records.iter().find(|r| r.id == pending.sync_id).unwrap();
    assert_eq!(crashed_record.status, SyncStatus::Failed);
    assert!(
        crashed_record
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("interrupted")
    );
    s.assert_mirrors_airflow().await;
}

async fn two_syncs_of_one_connector_never_overlap(backend: Backend) {
    let s = setup(backend, seed).await;
    s.airflow
        .with(|state| state.fault_at(2, Fault::Delay(Duration::from_millis(300))));
    let (a, b) = tokio::join!(
        sync_connector(&s.app.repo, &s.client, &s.connector, options()),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sync_connector(&s.app.repo, &s.client, &s.connector, options()).await
        }
    );
    assert_eq!(a.unwrap().status, SyncStatus::Succeeded);
    assert!(matches!(b, Err(shared::Error::Conflict(_))), "{b:?}");
    // The lease is released: the next sync runs.
    assert_eq!(s.sync().await.status, SyncStatus::Succeeded);
    s.assert_mirrors_airflow().await;
}

async fn time_budget_stops_and_the_next_sync_finishes(backend: Backend) {
    let s = setup(backend, seed).await;
    let mut tight = options();
    tight.budget = Duration::ZERO;
    let stopped = sync_connector(&s.app.repo, &s.client, &s.connector, tight)
        .await
        .unwrap();
    assert_eq!(stopped.status, SyncStatus::Partial);
    assert!(stopped.pending);
    let done = s.sync().await;
    assert_eq!(done.status, SyncStatus::Succeeded);
    assert!(!done.pending);
    s.assert_mirrors_airflow().await;
}

/// A task that ended without running is try 0 in Airflow. Cleared and run, it gets try 1:
/// Airflow 3 keeps the try 0 in its tries list, Airflow 2 replaces it. The mirror follows
/// exactly what Airflow lists, both ways.
async fn a_superseded_try_zero_is_kept_exactly_when_airflow_lists_it(backend: Backend) {
    let at = Utc::now() - Span::hours(1);
    let setup = setup(backend, |state| {
        state.add_dag("etl", "data-team");
        state.add_run("etl", "run_1", "failed", at, &["extract", "load", "report"]);
        for ti in state
            .task_instances
            .iter_mut()
            .filter(|t| t.task_id != "extract")
        {
            ti.tries = vec![FakeTry {
                try_number: 0,
                state: Some("upstream_failed".into()),
                start_date: None,
                end_date: None,
            }];
        }
    })
    .await;
    setup.sync().await;
    setup.assert_mirrors_airflow().await;

    let later = Utc::now();
    setup.airflow.with(|state| {
        for ti in state.task_instances.iter_mut() {
            let run = FakeTry {
                try_number: 1,
                state: Some("success".into()),
                start_date: Some(later - Span::minutes(1)),
                end_date: Some(later),
            };
            match ti.task_id.as_str() {
                // Airflow 3: the try 0 stays listed beside the new try 1.
                "load" => ti.tries.push(run),
                // Airflow 2: try 1 replaces it.
                "report" => ti.tries = vec![run],
                _ => continue,
            }
            ti.updated_at = later;
        }
    });
    setup.sync().await;
    setup.assert_mirrors_airflow().await;
    // An unchanged re-sync keeps it so (and writes nothing).
    setup.sync().await;
    setup.assert_mirrors_airflow().await;
}

on_both_backends!(
    a_superseded_try_zero_is_kept_exactly_when_airflow_lists_it,
    full_sync_then_unchanged_resync_writes_nothing,
    retried_faults_are_invisible,
    a_fault_at_any_request_converges_after_a_clean_sync,
    data_changing_between_pages_is_not_lost,
    a_crash_midway_is_resumed,
    two_syncs_of_one_connector_never_overlap,
    time_budget_stops_and_the_next_sync_finishes,
);
