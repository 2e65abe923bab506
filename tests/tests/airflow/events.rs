//! Pipeline events detected by the sync against a fake Airflow, on both backends: every
//! transition is stored exactly once across re-syncs, a crash mid-sync and the resumed sync;
//! a running run (and its task tries) that takes longer than usual is reported while it runs
//! (the sync's clock is moved, not waited for); pauses and removed DAGs are reported; and the
//! feed (`GET /events`) filters and pages them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use orchestration_tests::app::{TestApp, body, body as body_of, header};
use orchestration_tests::fake_airflow::{AirflowState, FakeAirflow, Fault};
use orchestration_tests::{Backend, on_both_backends};
use shared::airflow::AirflowClient;
use shared::domain::events::{Event, EventType};
use shared::domain::ids;
use shared::domain::model::Connector;
use shared::domain::sync::{SyncRecord, SyncStatus, SyncTrigger};
use shared::secrets::SecretResolver;
use shared::service::connectors::{AirflowSettings, client_for};
use shared::sync::{SyncOptions, sync_connector};

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
    async fn sync_with(&self, options: SyncOptions) -> SyncRecord {
        let record = sync_connector(&self.app.repo, &self.client, &self.connector, options)
            .await
            .unwrap();
        assert_eq!(record.status, SyncStatus::Succeeded, "{record:?}");
        record
    }

    async fn sync(&self) -> SyncRecord {
        self.sync_with(options()).await
    }

    async fn events(&self) -> Vec<Event> {
        self.app
            .repo
            .list_events(self.connector.space_id, None, Utc::now())
            .await
            .unwrap()
    }

    async fn count(&self, event_type: EventType) -> usize {
        self.events()
            .await
            .iter()
            .filter(|e| e.event_type == event_type)
            .count()
    }

    fn pipeline_id(&self, dag_id: &str) -> uuid::Uuid {
        ids::pipeline_id(self.connector.id, dag_id)
    }
}

const DAGS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Three DAGs with twelve successful runs each (ten minutes long), an hour or more ago.
fn history(state: &mut AirflowState) {
    let base = Utc::now() - Span::hours(30);
    for dag in DAGS {
        state.add_dag(dag, "data-team");
    }
    for i in 0..36 {
        let dag = DAGS[i % 3];
        state.add_run(
            dag,
            &format!("history__{i:04}"),
            "success",
            base + Span::minutes(30 * i as i64),
            &["extract", "load"],
        );
    }
}

/// `count` new runs, every fifth failed, in the last hours; what they should give: the
/// failed runs, and the successes whose previous finished run (of their DAG) failed.
fn new_runs(state: &mut AirflowState, count: usize) -> (usize, usize) {
    let base = Utc::now() - Span::hours(6);
    let mut last: HashMap<&str, &str> = HashMap::new();
    let (mut failed, mut recovered) = (0, 0);
    for i in 0..count {
        let dag = DAGS[i % 3];
        let status = if i % 5 == 0 { "failed" } else { "success" };
        state.add_run(
            dag,
            &format!("new__{i:04}"),
            status,
            base + Span::minutes(i as i64),
            &["extract"],
        );
        if status == "failed" {
            failed += 1;
        } else if last.get(dag) == Some(&"failed") {
            recovered += 1;
        }
        last.insert(dag, status);
    }
    // Updated now: the next (incremental) sync reads them.
    let now = Utc::now();
    for run in state
        .runs
        .iter_mut()
        .filter(|r| r.dag_run_id.starts_with("new__"))
    {
        run.updated_at = now;
    }
    for ti in state
        .task_instances
        .iter_mut()
        .filter(|t| t.dag_run_id.starts_with("new__"))
    {
        ti.updated_at = now;
    }
    (failed, recovered)
}

async fn failures_and_recoveries_are_reported_once(backend: Backend) {
    let s = setup(backend, history).await;
    s.sync().await;
    assert!(
        s.events().await.is_empty(),
        "loading a connector's history reports nothing"
    );
    let (failed, recovered) = s.airflow.with(|state| new_runs(state, 40));
    assert!(failed > 0 && recovered > 0);
    s.sync().await;
    assert_eq!(s.count(EventType::RunFailed).await, failed);
    assert_eq!(s.count(EventType::RunRecovered).await, recovered);
    let events = s.events().await;
    let failure = events
        .iter()
        .find(|e| e.event_type == EventType::RunFailed)
        .unwrap();
    assert!(failure.run_id.is_some() && failure.dag_run_id.is_some());
    assert_eq!(failure.details["status"], "failed");

    // Re-syncs (the overlap window re-reads every new run) report nothing again.
    s.sync().await;
    s.sync().await;
    assert_eq!(s.events().await.len(), events.len());

    // A failed run cleared and failed again is a new transition; its other fields changing
    // (a note) is not.
    let again = Utc::now();
    s.airflow.with(|state| {
        let run = state
            .runs
            .iter_mut()
            .find(|r| r.dag_run_id == "new__0005")
            .unwrap();
        run.state = "running".into();
        run.end_date = None;
        run.updated_at = again;
    });
    s.sync().await;
    s.airflow
        .with(|state| state.finish_run("new__0005", "failed", again + Span::seconds(1)));
    s.sync().await;
    assert_eq!(s.count(EventType::RunFailed).await, failed + 1);
}

async fn a_crash_mid_sync_and_the_resumed_sync_report_each_transition_once(backend: Backend) {
    let s = setup(backend, history).await;
    s.sync().await;
    let (failed, recovered) = s.airflow.with(|state| new_runs(state, 160));
    // Requests of the next sync: DAGs, runs page 1, runs page 2 (hangs: the "crash").
    let first = s.airflow.with(|state| state.requests);
    s.airflow
        .with(|state| state.fault_at(first + 2, Fault::Delay(Duration::from_secs(30))));
    let mut crashing = options();
    crashing.budget = Duration::from_secs(5);
    let started = std::time::Instant::now();
    let sync = sync_connector(&s.app.repo, &s.client, &s.connector, crashing.clone());
    let hanging = async {
        while s.airflow.with(|state| state.requests) < first + 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        result = sync => panic!("the sync should hang on page 2, got {result:?}"),
        () = hanging => {}
    }
    let after_crash = s.count(EventType::RunFailed).await;
    assert!(
        after_crash > 0 && after_crash < failed,
        "the crash came mid-way: {after_crash} of {failed} failures stored"
    );
    let lease_over = started + crashing.budget + Duration::from_millis(300);
    tokio::time::sleep(lease_over.saturating_duration_since(std::time::Instant::now())).await;
    let resumed = s.sync().await;
    assert!(resumed.warnings.iter().any(|w| w.contains("resumed")));
    assert_eq!(s.count(EventType::RunFailed).await, failed);
    assert_eq!(s.count(EventType::RunRecovered).await, recovered);
    // Ids are unique, and another sync (re-reading the overlap window) adds nothing.
    let ids: std::collections::HashSet<_> = s.events().await.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), failed + recovered);
    s.sync().await;
    assert_eq!(s.events().await.len(), failed + recovered);
    // The outbox holds each of them once, to be published.
    let pending = s.app.repo.pending_events(1000).await.unwrap();
    assert_eq!(pending.len(), failed + recovered);
}

async fn a_run_running_longer_than_usual_is_reported_while_it_runs(backend: Backend) {
    let s = setup(backend, history).await;
    s.sync().await;
    // A run of alpha (and its task) running for ten minutes now: as long as usual.
    let now = Utc::now();
    s.airflow
        .with(|state| state.add_run("alpha", "slow", "running", now, &["extract"]));
    let started = now - Span::minutes(10);
    let at = |minutes: i64| {
        let mut options = options();
        options.now = Some(started + Span::minutes(minutes));
        options
    };
    s.sync_with(at(11)).await;
    assert!(s.events().await.is_empty(), "not yet longer than usual");
    s.sync_with(at(30)).await;
    let events = s.events().await;
    let run_event = events
        .iter()
        .find(|e| e.event_type == EventType::RunLongerThanUsual)
        .expect("the run is reported while running");
    assert_eq!(run_event.dag_run_id.as_deref(), Some("slow"));
    assert_eq!(run_event.pipeline_id, s.pipeline_id("alpha"));
    assert!(run_event.details["elapsed_seconds"].as_f64().unwrap() >= 1800.0);
    let task_event = events
        .iter()
        .find(|e| e.event_type == EventType::TaskRunLongerThanUsual)
        .expect("its running task try too");
    assert_eq!(task_event.details["task_id"], "extract");
    assert_eq!(events.len(), 2, "{events:?}");
    // Later syncs, while it still runs, report it no more.
    s.sync_with(at(45)).await;
    s.sync_with(at(60)).await;
    assert_eq!(s.events().await.len(), 2);
    // Finished (successfully), no other event.
    s.airflow
        .with(|state| state.finish_run("slow", "success", started + Span::minutes(61)));
    s.sync().await;
    assert_eq!(s.events().await.len(), 2);
}

async fn pauses_and_removed_dags_are_reported_once(backend: Backend) {
    let s = setup(backend, history).await;
    s.sync().await;
    let set_paused = |paused: bool| {
        s.airflow
            .with(|state| state.dags.get_mut("alpha").unwrap().0 = paused)
    };
    set_paused(true);
    s.sync().await;
    s.sync().await;
    assert_eq!(s.count(EventType::PipelinePaused).await, 1);
    set_paused(false);
    s.sync().await;
    assert_eq!(s.count(EventType::PipelineUnpaused).await, 1);
    set_paused(true);
    s.sync().await;
    assert_eq!(s.count(EventType::PipelinePaused).await, 2, "paused again");

    let gamma = s.airflow.with(|state| state.dags.remove("gamma").unwrap());
    s.sync().await;
    s.sync().await;
    assert_eq!(s.count(EventType::PipelineInactive).await, 1);
    s.airflow
        .with(|state| state.dags.insert("gamma".into(), gamma));
    s.sync().await;
    assert_eq!(s.count(EventType::PipelineActive).await, 1);
    let inactive = s
        .events()
        .await
        .into_iter()
        .find(|e| e.event_type == EventType::PipelineInactive)
        .unwrap();
    assert_eq!(inactive.pipeline_id, s.pipeline_id("gamma"));
    assert_eq!(inactive.dag_id, "gamma");
    assert_eq!(s.events().await.len(), 5);
}

async fn the_feed_filters_and_pages_newest_first(backend: Backend) {
    let s = setup(backend, history).await;
    s.sync().await;
    let (failed, recovered) = s.airflow.with(|state| new_runs(state, 40));
    s.sync().await;
    let before_pause = Utc::now();
    s.airflow
        .with(|state| state.dags.get_mut("beta").unwrap().0 = true);
    s.sync().await;
    let total = failed + recovered + 1;
    let viewer = Some(s.app.keys.viewer.as_str());

    let response = s.app.get("/events?size=5", viewer).await;
    assert_eq!(header(&response, "x-total-count"), total.to_string());
    assert_eq!(header(&response, "x-page-size"), "5");
    let (status, page) = body(response).await;
    assert_eq!(status, 200);
    let page = page.as_array().unwrap().clone();
    assert_eq!(page.len(), 5);
    assert_eq!(page[0]["type"], "pipeline_paused", "newest first");
    let detected: Vec<DateTime<Utc>> = page
        .iter()
        .map(|e| e["detected_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(detected.windows(2).all(|w| w[0] >= w[1]));
    let first = &page[1];
    assert_eq!(first["version"], 1);
    let pipeline_id = first["pipeline_id"].as_str().unwrap();
    assert_eq!(
        first["links"]["pipeline"],
        format!("/api/v1.0/spaces/acme/orchestration/pipelines/{pipeline_id}")
    );

    let count = async |query: &str| -> usize {
        let response = s
            .app
            .get(&format!("/events?size=100&{query}"), viewer)
            .await;
        let (status, items) = body(response).await;
        assert_eq!(status, 200, "{query}: {items}");
        items.as_array().unwrap().len()
    };
    assert_eq!(count("type=run_failed").await, failed);
    assert_eq!(count("type=run_recovered").await, recovered);
    let since = before_pause.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(
        count(&format!("since={}", since.replace('+', "%2B"))).await,
        1
    );
    let beta = s.pipeline_id("beta");
    let per_dag: BTreeMap<String, usize> =
        s.events()
            .await
            .iter()
            .fold(BTreeMap::new(), |mut counts, e| {
                *counts.entry(e.dag_id.clone()).or_default() += 1;
                counts
            });
    assert_eq!(count(&format!("pipeline_id={beta}")).await, per_dag["beta"]);
    assert_eq!(count("watched_only=true").await, 0);
    let watch = s
        .app
        .client
        .put(s.app.url("acme", &format!("/pipelines/{beta}/watch")))
        .bearer_auth(&s.app.keys.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 204);
    assert_eq!(count("watched_only=true").await, per_dag["beta"]);

    // Bad filters: the platform's 422, every one at once.
    let (status, errors) = body(
        s.app
            .get(
                "/events?type=exploded&since=yesterday&pipeline_id=x",
                viewer,
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(errors["detail"].as_array().unwrap().len(), 3, "{errors}");
    // Another space sees none of them.
    let (status, other) = body(
        s.app
            .get_in("globex", "/events", Some(&s.app.keys.outsider))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(other, serde_json::json!([]));
}

async fn a_freshness_breach_is_reported_once_while_airflow_is_silent(backend: Backend) {
    let s = setup(backend, history).await;
    s.sync().await;
    let alpha = s.pipeline_id("alpha");
    let editor = s.app.keys.editor.clone();
    let patch = async |body: serde_json::Value| {
        let response = s
            .app
            .client
            .patch(s.app.url("acme", &format!("/pipelines/{alpha}/freshness")))
            .bearer_auth(&editor)
            .json(&body)
            .send()
            .await
            .unwrap();
        body_of(response).await
    };
    // Daily in Airflow: derived 1.5 days; the last success (12.5 hours ago) is fresh.
    let (status, pipeline) = patch(serde_json::json!({ "expected_interval_seconds": null })).await;
    assert_eq!(status, 200, "{pipeline}");
    assert_eq!(
        pipeline["expected_interval_seconds"],
        serde_json::Value::Null
    );
    assert_eq!(pipeline["freshness_interval_seconds"], 129_600);
    // The scheduled run: the connector is not due (Airflow is not asked anything), the
    // check still runs.
    let requests = s.airflow.with(|state| state.requests);
    let run = async || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        shared::sync::due::run(
            &s.app.repo,
            &SecretResolver::new(),
            &Default::default(),
            deadline,
        )
        .await
        .unwrap()
    };
    assert_eq!(run().await.freshness_breaches, 0);
    assert!(s.events().await.is_empty());

    let (status, pipeline) = patch(serde_json::json!({ "expected_interval_seconds": 3600 })).await;
    assert_eq!(status, 200, "{pipeline}");
    assert_eq!(pipeline["expected_interval_seconds"], 3600);
    assert_eq!(pipeline["freshness_interval_seconds"], 3600);
    assert_eq!(run().await.freshness_breaches, 1);
    assert_eq!(run().await.freshness_breaches, 0, "one event per deadline");
    assert_eq!(
        s.airflow.with(|state| state.requests),
        requests,
        "Airflow silent"
    );
    let events = s.events().await;
    assert_eq!(events.len(), 1);
    let breach = &events[0];
    assert_eq!(breach.event_type, EventType::FreshnessBreached);
    assert_eq!(breach.pipeline_id, alpha);
    assert_eq!(breach.details["expected_interval_seconds"], 3600);
    assert!(breach.occurred_at < Utc::now() - Span::hours(10));
    // The sync never touches the interval.
    s.sync().await;
    let (_, pipeline) = body_of(
        s.app
            .get(&format!("/pipelines/{alpha}"), Some(&s.app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(pipeline["expected_interval_seconds"], 3600);
    // Paused, it is not checked; a new success moves the deadline.
    s.airflow
        .with(|state| state.dags.get_mut("beta").unwrap().0 = true);
    let beta = s.pipeline_id("beta");
    let to_beta = s
        .app
        .client
        .patch(s.app.url("acme", &format!("/pipelines/{beta}/freshness")))
        .bearer_auth(&editor)
        .json(&serde_json::json!({ "expected_interval_seconds": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(to_beta.status(), 200);
    s.sync().await;
    assert_eq!(run().await.freshness_breaches, 0, "beta is paused");

    // Bad bodies: the platform's 422.
    for bad in [
        serde_json::json!({ "expected_interval_seconds": 59 }),
        serde_json::json!({ "expected_interval_seconds": "1h" }),
        serde_json::json!({}),
    ] {
        let (status, errors) = patch(bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {errors}");
    }
}

/// A page of 100 failures of one pipeline: more events than one ingest transaction holds
/// beside its runs, so the runs go in several groups, each with its own events.
async fn a_page_of_failures_of_one_pipeline_is_reported_whole(backend: Backend) {
    let s = setup(backend, history).await;
    s.sync().await;
    let now = Utc::now();
    s.airflow.with(|state| {
        for i in 0..100 {
            let at = now - Span::hours(3) + Span::minutes(i);
            state.add_run("alpha", &format!("burst__{i:03}"), "failed", at, &[]);
            state.runs.last_mut().unwrap().updated_at = now;
        }
    });
    s.sync().await;
    assert_eq!(s.count(EventType::RunFailed).await, 100);
    let (_, runs) = body_of(
        s.app
            .get(
                &format!(
                    "/pipelines/{}/runs?status=failed&size=1000",
                    s.pipeline_id("alpha")
                ),
                Some(&s.app.keys.viewer),
            )
            .await,
    )
    .await;
    assert_eq!(
        runs.as_array().unwrap().len(),
        100,
        "every run stored with its event"
    );
    s.sync().await;
    assert_eq!(s.events().await.len(), 100);
}

on_both_backends!(
    a_freshness_breach_is_reported_once_while_airflow_is_silent,
    a_page_of_failures_of_one_pipeline_is_reported_whole,
    failures_and_recoveries_are_reported_once,
    a_crash_mid_sync_and_the_resumed_sync_report_each_transition_once,
    a_run_running_longer_than_usual_is_reported_while_it_runs,
    pauses_and_removed_dags_are_reported_once,
    the_feed_filters_and_pages_newest_first,
);
