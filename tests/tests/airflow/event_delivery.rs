//! Delivery of pipeline events found by a sync, on both backends: to moto's EventBridge (a
//! custom bus, observed through a rule to an SQS queue) after a failed attempt, and to a
//! webhook whose receiver fails and then times out before it accepts. Nothing is lost or
//! sent twice by a delivery that follows a success, and what failed stays in the outbox.

use std::time::Duration;

use aws_sdk_eventbridge::Client as EventBridge;
use aws_sdk_sqs::Client as Sqs;
use chrono::{Duration as Span, Utc};
use orchestration_tests::app::TestApp;
use orchestration_tests::aws_recorder::{REGION, moto_url};
use orchestration_tests::fake_airflow::{AirflowState, FakeAirflow};
use orchestration_tests::{Backend, on_both_backends};
use serde_json::Value;
use shared::domain::events::{Event, EventType};
use shared::domain::ids;
use shared::domain::model::Criticality;
use shared::domain::sync::{SyncStatus, SyncTrigger};
use shared::publish::{EventBridgePublisher, WebhookPublisher, WebhookSettings, deliver};
use shared::secrets::SecretResolver;
use shared::service::connectors::{AirflowSettings, client_for};
use shared::sync::{SyncOptions, sync_connector};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A synced connector with `failed` failed runs since its first sync (so `failed` events,
/// plus the recoveries that follow some of them), the first DAG owned by the app's team,
/// critical, and watched by the viewer. Returns the app and the number of events.
async fn app_with_events(backend: Backend) -> (TestApp, FakeAirflow, usize) {
    let app = TestApp::spawn(backend).await;
    let airflow = FakeAirflow::start().await;
    airflow.with(|state: &mut AirflowState| {
        state.add_dag("etl", "data-team");
        for i in 0..12 {
            let at = Utc::now() - Span::hours(30) + Span::hours(i);
            state.add_run("etl", &format!("old__{i}"), "success", at, &["load"]);
        }
    });
    let connector = app.connect(&airflow).await;
    let settings = AirflowSettings {
        request_timeout: Duration::from_millis(400),
        max_attempts: 3,
        retry_base_delay: Duration::from_millis(5),
    };
    let client = client_for(&connector, &SecretResolver::new(), settings)
        .await
        .unwrap();
    let sync = async || {
        let options = SyncOptions::new(SyncTrigger::Manual, Duration::from_secs(60));
        let record = sync_connector(&app.repo, &client, &connector, options)
            .await
            .unwrap();
        assert_eq!(record.status, SyncStatus::Succeeded, "{record:?}");
    };
    sync().await;
    let pipeline_id = ids::pipeline_id(connector.id, "etl");
    app.repo
        .set_pipeline_governance(
            app.space.id,
            pipeline_id,
            Some(Some(app.team.id)),
            Some(Some(Criticality::Critical)),
            app.admin_id,
            Utc::now(),
        )
        .await
        .unwrap();
    let pipeline = app
        .repo
        .get_pipeline(app.space.id, pipeline_id)
        .await
        .unwrap()
        .unwrap();
    app.repo
        .put_watch(&pipeline, app.viewer_id, Utc::now())
        .await
        .unwrap();
    // Failed, success (recovered), failed, success (recovered), ...: 12 events.
    let now = Utc::now();
    airflow.with(|state| {
        for i in 0..12 {
            let status = if i % 2 == 0 { "failed" } else { "success" };
            let at = now - Span::hours(2) + Span::minutes(i);
            state.add_run("etl", &format!("new__{i}"), status, at, &["load"]);
            state.runs.last_mut().unwrap().updated_at = now;
        }
    });
    sync().await;
    let pending = app.repo.pending_events(100).await.unwrap().len();
    assert_eq!(pending, 12);
    (app, airflow, pending)
}

async fn aws_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .load()
        .await
}

/// A bus with a rule that sends every event of this API to a new queue.
async fn bus_to_queue(moto: &str) -> (String, String) {
    let config = aws_config(moto).await;
    let events = EventBridge::new(&config);
    let sqs = Sqs::new(&config);
    let name = format!("orchestration-test-{}", uuid::Uuid::new_v4());
    events.create_event_bus().name(&name).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = format!("arn:aws:sqs:{REGION}:123456789012:{name}");
    events
        .put_rule()
        .name(&name)
        .event_bus_name(&name)
        .event_pattern(r#"{"source": ["orchestration-api"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&name)
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (name, queue_url)
}

async fn received(moto: &str, queue_url: &str) -> Vec<Value> {
    let sqs = Sqs::new(&aws_config(moto).await);
    let mut messages = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let batch = batch.messages.unwrap_or_default();
        if batch.is_empty() {
            return messages;
        }
        for message in batch {
            messages.push(serde_json::from_str(message.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

async fn eventbridge_gets_every_event_once_after_a_failure(backend: Backend) {
    let (app, _airflow, count) = app_with_events(backend).await;
    let moto = moto_url();
    let (bus, queue_url) = bus_to_queue(&moto).await;

    // EventBridge unreachable: nothing leaves the outbox, and the delivery says so.
    let unreachable = EventBridge::new(&aws_config("http://127.0.0.1:9").await);
    let failing = EventBridgePublisher::new(unreachable, bus.clone());
    let delivery = deliver(&app.repo, &failing, 1000).await;
    assert_eq!(delivery.published, 0);
    assert_eq!(delivery.failed, count);
    assert!(delivery.error.unwrap().contains("PutEvents failed"));
    assert_eq!(app.repo.pending_events(100).await.unwrap().len(), count);

    // A bus that does not exist: refused by EventBridge, kept too.
    let client = EventBridge::new(&aws_config(&moto).await);
    let wrong = EventBridgePublisher::new(client.clone(), format!("{bus}-missing"));
    assert_eq!(deliver(&app.repo, &wrong, 1000).await.published, 0);
    assert_eq!(app.repo.pending_events(100).await.unwrap().len(), count);

    // The next delivery publishes them all (in batches of 10) and empties the outbox.
    let publisher = EventBridgePublisher::new(client, bus);
    let delivery = deliver(&app.repo, &publisher, 1000).await;
    assert_eq!(
        (delivery.published, delivery.failed),
        (count, 0),
        "{delivery:?}"
    );
    assert!(app.repo.pending_events(100).await.unwrap().is_empty());
    assert_eq!(deliver(&app.repo, &publisher, 1000).await.published, 0);

    let messages = received(&moto, &queue_url).await;
    assert_eq!(messages.len(), count, "each event once");
    let stored = app
        .repo
        .list_events(app.space.id, None, Utc::now())
        .await
        .unwrap();
    let failed = messages
        .iter()
        .find(|m| m["detail-type"] == "Pipeline Run Failed")
        .expect("a failure was published");
    assert_eq!(failed["source"], "orchestration-api");
    let detail = &failed["detail"];
    assert_eq!(detail["version"], 1);
    assert_eq!(detail["type"], "run_failed");
    assert!(stored.iter().any(|e| e.id.to_string() == detail["id"]));
    assert_eq!(detail["space"]["slug"], "acme");
    assert_eq!(detail["pipeline"]["criticality"], "critical");
    assert_eq!(detail["pipeline"]["team"]["id"], app.team.id.to_string());
    assert_eq!(detail["pipeline"]["team"]["name"], "Data Platform");
    assert_eq!(detail["watchers"], serde_json::json!([app.viewer_id]));
    assert!(
        detail["links"]["run"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1.0/spaces/acme/orchestration/runs/")
    );
    assert!(
        messages
            .iter()
            .any(|m| m["detail-type"] == "Pipeline Run Recovered")
    );
}

async fn a_failing_webhook_keeps_events_until_it_accepts_them(backend: Backend) {
    let (app, _airflow, count) = app_with_events(backend).await;
    let receiver = MockServer::start().await;
    let settings = WebhookSettings {
        timeout: Duration::from_millis(300),
        attempts: 3,
        backoff: Duration::from_millis(10),
    };
    let publisher = WebhookPublisher::new(&format!("{}/hook", receiver.uri()), settings).unwrap();

    // Failing: every attempt (3) of the first event gets a 500; the rest is not sent.
    let failing = Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount_as_scoped(&receiver)
        .await;
    let delivery = deliver(&app.repo, &publisher, 1000).await;
    assert_eq!(delivery.published, 0);
    assert!(delivery.error.unwrap().contains("500"));
    drop(failing);
    assert_eq!(app.repo.pending_events(100).await.unwrap().len(), count);

    // Hanging past the timeout: failed as well.
    let slow = Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount_as_scoped(&receiver)
        .await;
    let delivery = deliver(&app.repo, &publisher, 1000).await;
    assert_eq!(delivery.published, 0);
    assert!(delivery.error.unwrap().contains("timed out"));
    drop(slow);

    // Accepting: every event once, oldest first, Slack-compatible.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let before = receiver.received_requests().await.unwrap().len();
    let delivery = deliver(&app.repo, &publisher, 1000).await;
    assert_eq!((delivery.published, delivery.failed), (count, 0));
    assert_eq!(deliver(&app.repo, &publisher, 1000).await.published, 0);
    let requests = receiver.received_requests().await.unwrap();
    let accepted: Vec<Value> = requests[before..]
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(accepted.len(), count);
    let ids: std::collections::HashSet<&str> = accepted
        .iter()
        .map(|b| b["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), count);
    let first = &accepted[0];
    assert_eq!(first["event"]["type"], "run_failed");
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .starts_with("[critical] etl: Pipeline Run Failed (run new__0)"),
        "{first}"
    );
}

/// Past the retention, events leave the feed and the outbox whether or not the table's TTL
/// (which the embedded store does not have) removed them.
async fn expired_events_leave_the_feed_and_the_outbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pipeline = app.add_pipeline(&app.connector, "etl", |_| {}).await;
    // Long enough for the checks before the wait on a loaded machine (2 cores running the
    // other tests), short enough for a test.
    let short = app.repo.clone().with_event_retention(Span::seconds(4));
    let now = Utc::now();
    let event = Event::new(&pipeline, EventType::PipelinePaused, "test", now, now);
    assert!(short.record_event(&event).await.unwrap());
    assert!(!short.record_event(&event).await.unwrap(), "stored once");
    let feed = async || {
        short
            .list_events(app.space.id, None, Utc::now())
            .await
            .unwrap()
    };
    assert_eq!(feed().await.len(), 1);
    assert_eq!(short.pending_events(10).await.unwrap().len(), 1);
    let expired_at = now + Span::seconds(4) + Span::milliseconds(100);
    let wait = (expired_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    assert!(feed().await.is_empty());
    assert!(short.pending_events(10).await.unwrap().is_empty());
    let outbox = shared::store::Query::partition(shared::store::Index::Primary, "OUTBOX");
    let left = shared::store::query_all(app.repo.table(), outbox)
        .await
        .unwrap();
    assert!(left.is_empty(), "removed, not only hidden: {left:?}");
}

/// Events name their space by slug in their links: found by the space's id for any space
/// (the item written with it), whatever its members and connectors; a slug taken twice
/// leaves neither the second space nor its slug item; an older space gets the item from the
/// upgrade command (`ensure_space_slug`, run by `admin rebuild-listings`).
async fn a_space_slug_is_found_by_its_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = Utc::now();
    let lonely = app
        .repo
        .create_space("no-members", "No members", now)
        .await
        .unwrap();
    assert_eq!(
        app.repo.space_slug(lonely.id).await.unwrap().as_deref(),
        Some("no-members"),
        "a space without members or connectors"
    );
    let taken = app.repo.create_space("no-members", "Again", now).await;
    assert!(
        matches!(taken, Err(shared::error::Error::Conflict(_))),
        "{taken:?}"
    );
    let spaces = shared::store::Query::partition(shared::store::Index::Primary, "SLUG#no-members");
    let items = shared::store::query_all(app.repo.table(), spaces)
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "one space item: {items:?}");

    // A space of an older table has no such item until the upgrade command writes it.
    app.repo
        .table()
        .delete(&shared::keys::space_by_id(lonely.id), None)
        .await
        .unwrap();
    assert_eq!(app.repo.space_slug(lonely.id).await.unwrap(), None);
    assert!(app.repo.ensure_space_slug(&lonely).await.unwrap());
    assert!(
        !app.repo.ensure_space_slug(&lonely).await.unwrap(),
        "idempotent"
    );
    assert_eq!(
        app.repo.space_slug(lonely.id).await.unwrap().as_deref(),
        Some("no-members")
    );
}

on_both_backends!(
    a_space_slug_is_found_by_its_id,
    eventbridge_gets_every_event_once_after_a_failure,
    expired_events_leave_the_feed_and_the_outbox,
    a_failing_webhook_keeps_events_until_it_accepts_them,
);
