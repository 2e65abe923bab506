//! The Lambda runtime loop end to end, and the functions' IAM policies against what they do.
//!
//! The five built function binaries run as processes under cargo-lambda's Runtime API
//! emulator (`cargo lambda watch --only-lambda-apis`, see `orchestration_tests::lambda_emulator`)
//! on a moto table loaded by `admin load-fixtures`, each behind its own recording proxy to moto
//! (`aws_recorder`). Every route of the contract (the `events/` fixtures, unmodified, as API
//! Gateway's HTTP API sends them: payload v2, path parameters, one base64 body), the API's
//! health and OpenAPI routes, and the schedule event go through the Invoke API; the same
//! requests go to the local server's router over a second table loaded the same way. Statuses,
//! headers and bodies must be equal up to what `api_gateway` normalises (fresh ids, clock
//! instants, request ids, per-process rate-limit counters).
//!
//! The recording of each function across that run is then checked against its policy in
//! template.yaml (`iam`): every operation allowed, every grant used, leading keys included; and
//! the check itself is shown to fail when any one grant is removed or an extra one is added.
//!
//! Needs: the binaries (`lambda_emulator::BUILD_COMMAND`), cargo-lambda in `.tools/venv`, and
//! moto (`AWS_ENDPOINT_URL_DYNAMODB`), as `scripts/test` provides. Missing any of them fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use orchestration_tests::api_gateway::{
    Answer, Comparison, event, events_dir, send_to_local, with_header, with_path,
};
use orchestration_tests::aws_recorder::{
    AwsCall, RecordingProxy, aws_environment, create_secret, moto_url,
};
use orchestration_tests::fake_airflow::{AirflowState, FakeAirflow, Fault};
use orchestration_tests::lambda_emulator::{
    Emulator, FUNCTIONS, FunctionProcess, binary_dir, lambda_environment, log_dir,
};
use orchestration_tests::{iam, sam_template};
use serde_json::Value;
use shared::domain::model::{ConnectorAuth, SecretRef};
use shared::http::AppState;
use shared::repo::Repository;
use shared::secrets::SecretResolver;

/// Longest wait for one invocation (a sync included).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(90);

/// One world's Airflow: DAG `it_etl` (the fixture DAG) with one finished run of its tasks.
async fn airflow() -> FakeAirflow {
    let airflow = FakeAirflow::start().await;
    airflow.with(|state| {
        state.add_dag("it_etl", "data-team");
        state.add_dag("it_failing", "data-team");
        state.add_run(
            "it_etl",
            "scheduled__1",
            "success",
            Utc::now() - chrono::Duration::hours(3),
            &["extract", "transform", "load"],
        );
    });
    airflow
}

/// The two worlds and the run's record.
struct Run {
    emulator: Emulator,
    /// The Lambda world's table (the policies' `Table`).
    table_name: String,
    functions: BTreeMap<&'static str, (FunctionProcess, RecordingProxy)>,
    lambda_airflow: FakeAirflow,
    local_airflow: FakeAirflow,
    local_repo: Repository,
    local_base: String,
    client: reqwest::Client,
    comparison: Comparison,
    _local_server: tokio::task::JoinHandle<()>,
}

impl Run {
    /// The same change to both Airflows.
    fn airflows(&self, change: impl Fn(&mut AirflowState)) {
        self.lambda_airflow.with(&change);
        self.local_airflow.with(&change);
    }

    fn function_log(&self, function: &str) -> String {
        self.functions[function].0.log()
    }

    /// Sends `event` to `function` through the emulator and to the local server; the answers
    /// must match, with the status `expected`.
    async fn both(&mut self, what: &str, function: &str, event: &Value, expected: u16) -> Answer {
        let answer = self.send(what, function, event).await;
        assert_eq!(answer.status, expected, "{what}: {:?}", answer.body);
        answer
    }

    /// The fixture `events/<name>.json`, unmodified, to its function (the folder).
    async fn fixture(&mut self, name: &str, expected: u16) -> Answer {
        let function = name.split('/').next().expect("events/<function>/<name>");
        self.both(name, function, &event(name), expected).await
    }

    /// Like [`Run::both`] for a request that must fail, with whichever error the code chooses
    /// (its mapping of Airflow's errors is tested elsewhere; here the answers must only match).
    async fn both_fail(&mut self, what: &str, function: &str, event: &Value) -> Answer {
        let answer = self.send(what, function, event).await;
        assert!(answer.status >= 400, "{what}: {answer:?}");
        answer
    }

    async fn send(&mut self, what: &str, function: &str, event: &Value) -> Answer {
        let (status, body) = self
            .emulator
            .invoke(function, &event.to_string(), INVOKE_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", self.function_log(function)));
        assert_eq!(
            status,
            200,
            "{what}: the function failed the invocation: {}\n{}",
            String::from_utf8_lossy(&body),
            self.function_log(function)
        );
        let lambda = Answer::from_lambda(&body).unwrap_or_else(|e| panic!("{what}: {e}"));
        let local = send_to_local(&self.client, &self.local_base, event).await;
        println!(
            "{what}: {function} -> {} (local {})",
            lambda.status, local.status
        );
        if let Err(differences) = self.comparison.compare(&lambda, &local) {
            panic!(
                "{what}: the function and the local server differ:\n{differences}\n\
                 lambda: {lambda:#?}\nlocal: {local:#?}\nfunction log:\n{}",
                self.function_log(function)
            );
        }
        self.functions.get_mut(function).unwrap().0.assert_running();
        lambda
    }

    /// The schedule event to `scheduled-sync`, and the same scheduled run in the local world.
    async fn schedule(&mut self, what: &str) -> Value {
        let payload =
            std::fs::read_to_string(events_dir().join("scheduled-sync/schedule.json")).unwrap();
        let (status, body) = self
            .emulator
            .invoke("scheduled-sync", &payload, INVOKE_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let log = self.function_log("scheduled-sync");
        assert_eq!(
            status,
            200,
            "{what}: {}\n{log}",
            String::from_utf8_lossy(&body)
        );
        let lambda: Value = serde_json::from_slice(&body).expect("the summary is JSON");
        let settings = shared::sync::due::Settings::default();
        let local = shared::sync::due::run(
            &self.local_repo,
            &SecretResolver::new(),
            &settings,
            Instant::now() + settings.per_connector_budget,
        )
        .await
        .expect("the local scheduled run");
        let local = serde_json::to_value(&local).unwrap();
        println!("{what}: scheduled-sync -> {lambda}");
        if let Err(differences) = self.comparison.compare_values(&lambda, &local) {
            panic!(
                "{what}: summaries differ:\n{differences}\nlambda: {lambda:#}\nlocal: {local:#}\n{log}"
            );
        }
        lambda
    }
}

async fn start() -> Run {
    let moto = moto_url();
    let bin_dir = binary_dir();
    let logs = log_dir(env!("CARGO_TARGET_TMPDIR"), "runtime-loop");
    let emulator = Emulator::start(&logs, "runtime-loop").await;

    // Two tables on the same moto, each with the fixture data and its own fake Airflow.
    let lambda_table = orchestration_tests::dynamo_table().await;
    let local_table = orchestration_tests::dynamo_table().await;
    let (lambda_airflow, local_airflow) = (airflow().await, airflow().await);
    let secret_arn = create_secret(&moto, "admin").await;
    // The stack's pipeline events bus (template.yaml `EventBus`, named after the stack).
    create_event_bus(
        &moto,
        &format!("{}-pipeline-events", lambda_table.table_name()),
    )
    .await;
    let lambda_repo = Repository::new(Arc::new(lambda_table.clone()));
    let loaded = local::admin::run(
        &lambda_repo,
        Some(&lambda_table),
        local::admin::AdminCommand::LoadFixtures(local::admin::fixtures::LoadFixturesArgs {
            airflow_url: lambda_airflow.url(),
            airflow_username: "admin".into(),
            password_secret_arn: Some(secret_arn),
            password_env: None,
            password_stored: None,
            allow_public_key: false,
        }),
    )
    .await
    .expect("admin load-fixtures");
    println!("fixtures: {loaded}");
    // The local world keeps the password in the table: where it lives shows in no answer.
    let local_repo = Repository::new(Arc::new(local_table));
    let stored = ConnectorAuth::Password {
        username: "admin".into(),
        password: SecretRef::Stored("admin".into()),
    };
    local::admin::fixtures::load(&local_repo, &local_airflow.url(), stored, Utc::now())
        .await
        .expect("fixtures in the local world");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local_base = format!("http://{}", listener.local_addr().unwrap());
    let router = local::app(AppState::new(local_repo.clone()));
    let local_server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });

    let template = sam_template::load_template();
    let mut functions = BTreeMap::new();
    for function in FUNCTIONS {
        let proxy = RecordingProxy::start(&moto).await;
        let mut environment = lambda_environment(&emulator, function);
        environment.extend(sam_template::function_environment(
            &template,
            lambda_table.table_name(),
            function,
        ));
        environment.extend(aws_environment(&proxy.url()));
        let process = FunctionProcess::start(&bin_dir, function, &environment, &logs, function);
        functions.insert(function, (process, proxy));
    }
    Run {
        emulator,
        table_name: lambda_table.table_name().to_string(),
        functions,
        lambda_airflow,
        local_airflow,
        local_repo,
        local_base,
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(INVOKE_TIMEOUT)
            .build()
            .unwrap(),
        comparison: Comparison::default(),
        _local_server: local_server,
    }
}

/// An EventBridge bus in moto.
async fn create_event_bus(moto: &str, name: &str) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto)
        .region(aws_config::Region::new(
            orchestration_tests::aws_recorder::REGION,
        ))
        .load()
        .await;
    aws_sdk_eventbridge::Client::new(&config)
        .create_event_bus()
        .name(name)
        .send()
        .await
        .expect("create the events bus in moto");
}

/// The whole run's bound (it takes seconds; a wait nothing else bounds cannot hang the suite).
const RUN_BOUND: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_the_schedule_through_the_runtime_api_match_the_local_server() {
    tokio::time::timeout(RUN_BOUND, runtime_loop())
        .await
        .unwrap_or_else(|_| panic!("the runtime loop did not finish within {RUN_BOUND:?}"));
}

async fn runtime_loop() {
    let started = Instant::now();
    let mut run = start().await;

    // The pipelines group, and the API's own routes (served by the pipelines function).
    run.fixture("pipelines/list-pipelines", 200).await;
    run.fixture("pipelines/get-pipeline", 200).await;
    run.fixture("pipelines/set-team", 200).await;
    run.fixture("pipelines/set-criticality", 200).await;
    run.fixture("pipelines/set-freshness", 200).await;
    run.fixture("pipelines/list-events", 200).await;
    run.fixture("pipelines/watch", 204).await;
    let watched = run.fixture("pipelines/get-pipeline", 200).await;
    assert_eq!(watched.body["watched"], true);
    run.fixture("pipelines/unwatch", 204).await;
    let triggered = run.fixture("pipelines/trigger", 201).await;
    // The same Idempotency-Key: the first answer, replayed.
    let replayed = run.fixture("pipelines/trigger", 201).await;
    assert_eq!(replayed.body["id"], triggered.body["id"]);
    // Airflow refusing: the claimed Idempotency-Key is released (a DeleteItem).
    run.airflows(|state| state.fault_next([Fault::Status(403)]));
    let refused = with_header(&event("pipelines/trigger"), "idempotency-key", "refused");
    run.both_fail("trigger refused by Airflow", "pipelines", &refused)
        .await;
    for path in ["/api/v1.0/health", "/api/v1.0/openapi.json"] {
        let get = with_path(&event("pipelines/list-pipelines"), path);
        run.both(path, "pipelines", &get, 200).await;
    }

    // The runs group.
    run.fixture("runs/list-runs", 200).await;
    run.fixture("runs/get-run", 200).await;

    // The comments group: the fixture comment is edited at versions 1, 2, 3, then deleted.
    run.fixture("comments/list-run-comments", 200).await;
    run.fixture("comments/create-run-comment", 201).await;
    run.fixture("comments/list-task-run-comments", 200).await;
    let base64 = event("comments/create-task-run-comment");
    assert_eq!(base64["isBase64Encoded"], true, "the base64-encoded POST");
    run.fixture("comments/create-task-run-comment", 201).await;
    run.fixture("comments/put-comment", 200).await;
    run.fixture("comments/patch-comment", 200).await;
    run.fixture("comments/delete-comment", 204).await;

    // Syncs: scheduled (never synced: due), manual with new runs (a retried task), manual
    // refused by Airflow (left pending), then the scheduled run resuming it.
    run.fixture("connectors/list-syncs", 200).await;
    let first = run.schedule("scheduled sync").await;
    assert_eq!(first["outcomes"][0]["outcome"], "succeeded", "{first}");
    let new_run = |state: &mut AirflowState, id: &str| {
        let tasks = ["extract", "transform", "load"];
        state.add_run("it_etl", id, "failed", Utc::now(), &tasks);
        state.retry_task(id, "transform", Utc::now());
    };
    run.airflows(|state| new_run(state, "scheduled__2"));
    let manual = run.fixture("connectors/sync", 200).await;
    assert_eq!(manual.body["status"], "succeeded", "{:?}", manual.body);
    run.airflows(|state| {
        new_run(state, "scheduled__3");
        state.fault_next([Fault::Status(403)]);
    });
    let failed = run.fixture("connectors/sync", 200).await;
    assert_eq!(failed.body["pending"], true, "{:?}", failed.body);
    let resumed = run.schedule("scheduled sync resuming").await;
    assert_eq!(resumed["outcomes"][0]["outcome"], "succeeded", "{resumed}");
    run.fixture("connectors/list-syncs", 200).await;
    run.fixture("pipelines/list-pipelines", 200).await;
    run.fixture("runs/list-runs", 200).await;
    println!("runtime loop: {:.1} s", started.elapsed().as_secs_f64());

    // What each function did, against its policy.
    let calls: BTreeMap<&str, Vec<AwsCall>> = run
        .functions
        .iter()
        .map(|(name, (_, proxy))| (*name, proxy.calls()))
        .collect();
    println!("{}", iam::describe_operations(&calls));
    iam::assert_policies(&run.table_name, &calls);
    println!("total: {:.1} s", started.elapsed().as_secs_f64());
}
