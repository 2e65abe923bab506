//! Downstream timing: a request through a function logs each DynamoDB, Secrets Manager and
//! Airflow call with its duration, inside the request's span, which carries the request id
//! and the invocation's X-Ray trace id. The logs are captured as the functions write them in
//! Lambda (`shared::lambda::json_subscriber`, what `init_tracing` installs with
//! `AWS_LAMBDA_LOG_FORMAT=JSON`). Needs moto (the DynamoDB backend): `scripts/test` starts it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use lambda_http::request::LambdaRequest;
use lambda_http::tracing::instrument::WithSubscriber;
use lambda_http::tracing::{Dispatch, Instrument};
use lambda_http::{Adapter, Context, LambdaEvent};
use orchestration_tests::Backend;
use orchestration_tests::app::TestApp;
use orchestration_tests::aws_recorder::{create_secret, moto_url};
use serde_json::Value;
use shared::http::AppState;
use tower::ServiceExt;

use crate::lambda_events::{Function, Ids, read_fixture};

const TRACE_ID: &str = "Root=1-6752f0a1-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1";

/// The JSON lines written by the futures run with [`Logs::subscriber`].
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Runs `future` with the functions' JSON subscriber (`shared::lambda::init_tracing` with
    /// `AWS_LAMBDA_LOG_FORMAT=JSON`) at INFO, writing here.
    ///
    /// tracing caches per call site whether any subscriber wants it. While at most one
    /// subscriber is registered, a call site first hit on another test's thread (no subscriber
    /// there) is cached as unwanted, even though this one is registered: a second subscriber
    /// that lives as long as the process makes tracing ask every registered subscriber
    /// instead. The cache is also rebuilt inside the capture.
    async fn capture<F: std::future::Future>(&self, future: F) -> F::Output {
        static SECOND: OnceLock<Dispatch> = OnceLock::new();
        SECOND.get_or_init(|| {
            Dispatch::new(
                tracing_subscriber::fmt()
                    .with_max_level(tracing_subscriber::filter::LevelFilter::OFF)
                    .finish(),
            )
        });
        let logs = self.clone();
        let dispatch = Dispatch::new(shared::lambda::json_subscriber(
            move || logs.clone(),
            tracing_subscriber::EnvFilter::new("info"),
        ));
        async {
            lambda_http::tracing::callsite::rebuild_interest_cache();
            future.await
        }
        .with_subscriber(dispatch)
        .await
    }

    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// The `downstream call` lines of `service`.
    fn downstream(&self, service: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| {
                line["fields"]["message"] == "downstream call"
                    && line["fields"]["downstream"] == service
            })
            .collect()
    }
}

/// The span named `name` around a line, with its fields.
fn span<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|span| span["name"] == name)
}

fn assert_timed(line: &Value) {
    let fields = &line["fields"];
    let duration = fields["duration_ms"].as_f64();
    assert!(
        duration.is_some_and(|ms| ms > 0.0 && ms < 60_000.0),
        "a duration in milliseconds: {line}"
    );
    assert_eq!(line["level"], "INFO", "{line}");
    // Without a valid RFC 3339 timestamp Lambda would ignore the level.
    let timestamp = line["timestamp"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "an RFC 3339 timestamp: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_secrets_manager_and_airflow_calls_are_logged_with_durations_and_the_trace_id() {
    let app = TestApp::spawn(Backend::DynamoDb).await;
    let (_airflow, connector) = app.with_fake_airflow().await;
    let state = AppState::new(app.repo.clone());
    let ids = Ids {
        connector: connector.id,
        ..Ids::new(&app.keys.admin)
    };
    let event = ids.substitute(&read_fixture("connectors/sync.json"));
    let request_id = serde_json::from_str::<Value>(&event).unwrap()["requestContext"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let sync = || {
        let request: LambdaRequest = serde_json::from_str(&event).unwrap();
        let mut context = Context::default();
        context.xray_trace_id = Some(TRACE_ID.to_string());
        Adapter::from(Function::Connectors.router(state.clone()))
            .oneshot(LambdaEvent::new(request, context))
    };
    // The captured sync is the second, incremental one (it still reads the connector, takes
    // the lease and asks Airflow): the first runs every call site once, outside the capture.
    sync()
        .await
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    let logs = Logs::default();
    let response = logs
        .capture(sync())
        .await
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    let response = serde_json::to_value(&response).unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");

    // Log bytes per request (docs/OPERATIONS.md, cost model).
    let sizes: Vec<usize> = logs
        .lines()
        .iter()
        .map(|l| l.to_string().len() + 1)
        .collect();
    println!(
        "captured sync request: {} log lines, {} bytes ({} per line on average)",
        sizes.len(),
        sizes.iter().sum::<usize>(),
        sizes.iter().sum::<usize>() / sizes.len().max(1)
    );
    let dynamodb = logs.downstream("dynamodb");
    let airflow = logs.downstream("airflow");
    assert!(!dynamodb.is_empty(), "DynamoDB calls: {:?}", logs.lines());
    assert!(!airflow.is_empty(), "Airflow calls: {:?}", logs.lines());
    for line in dynamodb.iter().chain(&airflow) {
        assert_timed(line);
        let request =
            span(line, "request").unwrap_or_else(|| panic!("in the request span: {line}"));
        assert_eq!(request["trace_id"], TRACE_ID, "{line}");
        assert_eq!(request["request_id"], request_id.as_str(), "{line}");
        assert_eq!(
            request["route"],
            "/api/v1.0/spaces/{slug}/orchestration/connectors/{connector_id}/sync"
        );
    }
    let operations: Vec<&str> = dynamodb
        .iter()
        .map(|line| line["fields"]["operation"].as_str().unwrap())
        .collect();
    assert!(operations.contains(&"GetItem"), "{operations:?}");
    assert!(
        dynamodb
            .iter()
            .all(|l| l["fields"]["status"] == 200 && l["fields"]["attempts"] == 1),
        "{dynamodb:?}"
    );
    // Airflow: method, path template (no DAG id, no query), status.
    let paths: Vec<String> = airflow
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["fields"]["method"].as_str().unwrap(),
                l["fields"]["path"].as_str().unwrap()
            )
        })
        .collect();
    assert!(paths.contains(&"GET /api/v2/dags".to_string()), "{paths:?}");
    assert!(
        paths.iter().all(|p| !p.contains("etl") && !p.contains('?')),
        "identifiers and queries stay out of the logs: {paths:?}"
    );
    assert!(
        airflow.iter().all(|l| l["fields"]["outcome"] == "ok"),
        "{airflow:?}"
    );

    // The Secrets Manager client the connector secrets are read with (moto's) times its calls
    // too.
    let moto = moto_url();
    let arn = create_secret(&moto, "s3cret-value").await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let client = shared::aws::secrets_manager_client(&config);
    let read = || async {
        let request =
            lambda_http::tracing::info_span!("request", request_id = "r-1", trace_id = TRACE_ID);
        client
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .instrument(request)
            .await
            .unwrap()
    };
    read().await;
    let logs = Logs::default();
    let value = logs.capture(read()).await;
    assert_eq!(value.secret_string(), Some("s3cret-value"));
    let lines = logs.downstream("secretsmanager");
    assert_eq!(lines.len(), 1, "{:?}", logs.lines());
    assert_timed(&lines[0]);
    assert_eq!(lines[0]["fields"]["operation"], "GetSecretValue");
    assert_eq!(span(&lines[0], "request").unwrap()["trace_id"], TRACE_ID);
    assert!(
        !lines[0].to_string().contains("s3cret-value"),
        "the value is never logged"
    );
}
