//! The pipeline list is cached per process (`shared::repo::listing`). Another process — a
//! second Lambda instance, the scheduled sync — writes through its own `Repository`, with its
//! own cache, to the same table: every kind of write it makes must show in this server's very
//! next list.

use chrono::{Duration, Utc};
use orchestration_tests::app::{TestApp, body, run, task_run};
use orchestration_tests::{Backend, on_both_backends};
use serde_json::Value;
use shared::domain::model::{Criticality, Pipeline, RunStatus};
use shared::repo::Repository;

/// The list as this server answers it: (dag id, criticality, status, watched) per pipeline.
async fn listed(app: &TestApp, query: &str) -> Vec<(String, Value, Value, Value)> {
    let (status, list) = body(
        app.get(&format!("/pipelines{query}"), Some(&app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            (
                p["dag_id"].as_str().unwrap().to_string(),
                p["criticality"].clone(),
                p["status"].clone(),
                p["watched"].clone(),
            )
        })
        .collect()
}

/// (`runs_total`, `runs_failed`) of one pipeline's summary in this server's list.
async fn runs_in_summary(app: &TestApp, dag_id: &str) -> (u64, u64) {
    let (status, list) = body(app.get("/pipelines", Some(&app.keys.viewer)).await).await;
    assert_eq!(status, 200, "{list}");
    let pipeline = list
        .as_array()
        .and_then(|items| items.iter().find(|p| p["dag_id"] == dag_id))
        .expect("the pipeline is listed");
    let count = |field: &str| pipeline["summary"][field].as_u64().expect("a count");
    (count("runs_total"), count("runs_failed"))
}

fn dag_ids(list: &[(String, Value, Value, Value)]) -> Vec<&str> {
    list.iter().map(|(dag, ..)| dag.as_str()).collect()
}

async fn writes_by_another_process_show_in_the_next_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.add_pipeline(&app.connector, "alpha", |_| {}).await;
    let b = app.add_pipeline(&app.connector, "bravo", |_| {}).await;
    // This server caches the listing...
    assert_eq!(dag_ids(&listed(&app, "").await), ["alpha", "bravo"]);
    // ...and another process writes with a cache of its own.
    let other = Repository::new(app.requests.clone());
    let now = Utc::now();

    other
        .set_pipeline_governance(
            app.space.id,
            b.id,
            None,
            Some(Some(Criticality::High)),
            app.admin_id,
            now,
        )
        .await
        .unwrap();
    let list = listed(&app, "").await;
    assert_eq!(list[1].1, "high", "governance write: {list:?}");

    other.put_watch(&a, app.viewer_id, now).await.unwrap();
    assert_eq!(listed(&app, "").await[0].3, true, "watch");
    assert_eq!(
        dag_ids(&listed(&app, "?watched_only=true").await),
        ["alpha"]
    );
    other
        .delete_watch(app.space.id, app.viewer_id, a.id)
        .await
        .unwrap();
    assert_eq!(listed(&app, "").await[0].3, false, "unwatch");

    // A sync renames a DAG (the order changes) and adds one.
    let renamed = Pipeline {
        name: "zulu".into(),
        synced_at: now,
        ..a.clone()
    };
    other.upsert_pipeline_metadata(&renamed).await.unwrap();
    let mut charlie = orchestration_tests::app::pipeline(&app.connector, "charlie");
    charlie.synced_at = now;
    other.upsert_pipeline_metadata(&charlie).await.unwrap();
    assert_eq!(
        dag_ids(&listed(&app, "").await),
        ["bravo", "charlie", "alpha"],
        "renamed and added pipelines, in name order"
    );

    // Ingested runs change the pipeline's status.
    let mut failed = run(
        &b,
        "scheduled__1",
        Duration::hours(1),
        RunStatus::Failed,
        Some(30),
    );
    let task = task_run(&failed.run, "work", 1, "failed", Some(20));
    failed.task_runs.push(task);
    other
        .ingest_runs(&b, vec![failed], Utc::now())
        .await
        .unwrap();
    let list = listed(&app, "?status=failed").await;
    assert_eq!(dag_ids(&list), ["bravo"], "ingest: {list:?}");
    assert_eq!(list[0].2, "failed");
    // ...and its summary: this server cached bravo's run series with the revision the list
    // showed, and the ingest moved that revision in the transaction that wrote the series.
    assert_eq!(runs_in_summary(&app, "bravo").await, (1, 1), "ingest");
    let succeeded = run(
        &b,
        "scheduled__2",
        Duration::minutes(30),
        RunStatus::Success,
        Some(30),
    );
    other
        .ingest_runs(&b, vec![succeeded], Utc::now())
        .await
        .unwrap();
    assert_eq!(
        runs_in_summary(&app, "bravo").await,
        (2, 1),
        "second ingest"
    );

    // A sync changes only what the list shows from the pipeline itself, not its listing
    // entry (here its schedule): the page reads that pipeline again, as its revision moved.
    let rescheduled = Pipeline {
        schedule: Some("*/7 * * * *".into()),
        synced_at: now,
        ..b.clone()
    };
    other.upsert_pipeline_metadata(&rescheduled).await.unwrap();
    let (status, list) = body(app.get("/pipelines", Some(&app.keys.viewer)).await).await;
    assert_eq!(status, 200);
    let bravo = list
        .as_array()
        .and_then(|items| items.iter().find(|p| p["dag_id"] == "bravo"))
        .expect("bravo is listed");
    assert_eq!(bravo["schedule"], "*/7 * * * *", "sync metadata: {bravo}");

    // More writes than the version item remembers (64): the next list re-reads everything.
    // The first of them (to bravo) is one only that full re-read can see...
    other
        .set_pipeline_governance(
            app.space.id,
            b.id,
            None,
            Some(Some(Criticality::Critical)),
            app.admin_id,
            now,
        )
        .await
        .unwrap();
    // ...as is bravo's run series, which this server holds from before.
    let third = run(
        &b,
        "scheduled__3",
        Duration::minutes(10),
        RunStatus::Success,
        Some(30),
    );
    other
        .ingest_runs(&b, vec![third], Utc::now())
        .await
        .unwrap();
    for i in 0..69 {
        let level = if i % 2 == 0 {
            Criticality::Medium
        } else {
            Criticality::Low
        };
        other
            .set_pipeline_governance(
                app.space.id,
                a.id,
                None,
                Some(Some(level)),
                app.admin_id,
                now,
            )
            .await
            .unwrap();
    }
    let list = listed(&app, "").await;
    let alpha = list.iter().find(|(dag, ..)| dag == "alpha").unwrap();
    let bravo = list.iter().find(|(dag, ..)| dag == "bravo").unwrap();
    assert_eq!(bravo.1, "critical", "the first of 70 writes: {list:?}");
    assert_eq!(alpha.1, "medium", "after 70 writes: {list:?}");
    assert_eq!(
        runs_in_summary(&app, "bravo").await,
        (3, 1),
        "ingest among 71 writes"
    );
}

/// A space stored before listing entries existed (watches and the listing version under
/// `PIPELINE#`, no `LIST#` items) lists nothing until `rebuild_listing`, then everything, its
/// watches included; rebuilding again changes nothing.
async fn a_listing_stored_before_entries_is_rebuilt(backend: Backend) {
    use shared::keys;
    use shared::store::{Key, Table};

    let app = TestApp::spawn(backend).await;
    let alpha = app.add_pipeline(&app.connector, "alpha", |_| {}).await;
    let bravo = app.add_pipeline(&app.connector, "bravo", |_| {}).await;
    app.repo
        .put_watch(&alpha, app.viewer_id, Utc::now())
        .await
        .unwrap();
    let table: &dyn Table = app.requests.as_ref();
    // The former layout: no entries, the watch at its former place.
    for pipeline in [&alpha, &bravo] {
        let entry = keys::listing_entry(app.space.id, pipeline.id);
        table.delete(&entry, None).await.unwrap();
    }
    let watch_key = keys::watch(app.space.id, app.viewer_id, alpha.id);
    let mut watch = table.get(&watch_key).await.unwrap().expect("the watch");
    let former = Key::new(
        keys::space_partition(app.space.id),
        format!("PIPELINE#{}#WATCH#{}", alpha.id, app.viewer_id),
    );
    watch.insert("SK".into(), former.sk.clone().into());
    table.put(watch, None).await.unwrap();
    table.delete(&watch_key, None).await.unwrap();

    let fresh = Repository::new(app.requests.clone());
    assert!(
        fresh
            .watched_pipeline_ids(app.space.id, app.viewer_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(fresh.rebuild_listing(app.space.id).await.unwrap(), (2, 1));
    assert_eq!(fresh.rebuild_listing(app.space.id).await.unwrap(), (0, 0));
    assert!(
        table.get(&former).await.unwrap().is_none(),
        "the former watch is gone"
    );
    let list = listed(&app, "").await;
    assert_eq!(dag_ids(&list), ["alpha", "bravo"]);
    assert_eq!(list[0].3, Value::Bool(true), "alpha is watched: {list:?}");
    assert_eq!(list[1].3, Value::Bool(false));
}

on_both_backends!(
    writes_by_another_process_show_in_the_next_list,
    a_listing_stored_before_entries_is_rebuilt
);
