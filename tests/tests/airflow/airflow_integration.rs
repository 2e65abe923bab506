//! Against a real Airflow 3 (started by `scripts/airflow start`, which `scripts/test` runs):
//! sync through the HTTP endpoint, trigger DAGs through the API, see the runs finish after a
//! re-sync with exactly Airflow's runs, task tries and states (a task cleared after it ended
//! without running keeps its try 0 beside the new try, as Airflow lists it); an unchanged re-sync writes
//! nothing; a DAG removed from Airflow becomes inactive and triggering it passes Airflow's 404
//! through. Without `AIRFLOW_URL` this test fails (it never skips).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orchestration_tests::Backend;
use orchestration_tests::app::{TestApp, body};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::{Connector, ConnectorAuth, SecretRef};

const TRIGGERED: [&str; 4] = ["it_etl", "it_failing", "it_retries", "it_mapped"];

struct Airflow {
    url: String,
    client: reqwest::Client,
    token: String,
}

impl Airflow {
    async fn connect() -> Self {
        let url = std::env::var("AIRFLOW_URL").expect(
            "AIRFLOW_URL is not set: run through scripts/test, or `scripts/airflow start` then `eval \"$(scripts/airflow env)\"`",
        );
        let client = reqwest::Client::new();
        let username = std::env::var("AIRFLOW_USERNAME").unwrap_or_else(|_| "admin".into());
        let password = std::env::var("AIRFLOW_PASSWORD").unwrap_or_else(|_| "admin".into());
        let token: Value = client
            .post(format!("{url}/auth/token"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("Airflow answers")
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().expect("a JWT").to_string();
        Self { url, client, token }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}/api/v2{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Every DAG run of the test DAGs: (dag_id, run_id) → state.
    async fn runs(&self) -> BTreeMap<(String, String), String> {
        let listed = self
            .call(
                Method::GET,
                "/dags/~/dagRuns?limit=100&dag_id_pattern=it_",
                None,
            )
            .await;
        listed["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (
                        r["dag_id"].as_str().unwrap().into(),
                        r["dag_run_id"].as_str().unwrap().into(),
                    ),
                    r["state"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    /// Every try of every task instance of the test DAGs: (dag, run, task, map_index, try) → state.
    async fn tries(&self) -> BTreeMap<(String, String, String, i64, u64), String> {
        let listed = self
            .call(
                Method::GET,
                "/dags/~/dagRuns/~/taskInstances?limit=100&dag_id_pattern=it_",
                None,
            )
            .await;
        let mut tries = BTreeMap::new();
        for ti in listed["task_instances"].as_array().unwrap() {
            let (dag, run, task) = (
                ti["dag_id"].as_str().unwrap(),
                ti["dag_run_id"].as_str().unwrap(),
                ti["task_id"].as_str().unwrap(),
            );
            let map_index = ti["map_index"].as_i64().unwrap();
            let path = format!(
                "/dags/{dag}/dagRuns/{}/taskInstances/{task}/{map_index}/tries",
                urlencode(run)
            );
            for attempt in self.call(Method::GET, &path, None).await["task_instances"]
                .as_array()
                .unwrap()
            {
                tries.insert(
                    (
                        dag.into(),
                        run.into(),
                        task.into(),
                        map_index,
                        attempt["try_number"].as_u64().unwrap(),
                    ),
                    attempt["state"].as_str().unwrap_or("none").into(),
                );
            }
        }
        tries
    }
}

fn urlencode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn send(app: &TestApp, method: Method, path: &str, key: &str) -> (u16, Value) {
    body(
        app.client
            .request(method, app.url("acme", path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_trigger_and_resync_against_a_real_airflow() {
    let airflow = Airflow::connect().await;
    let app = TestApp::spawn(Backend::Embedded).await;
    let connector = Connector {
        base_url: airflow.url.clone(),
        auth: ConnectorAuth::Password {
            username: std::env::var("AIRFLOW_USERNAME").unwrap_or_else(|_| "admin".into()),
            password: SecretRef::Stored(
                std::env::var("AIRFLOW_PASSWORD").unwrap_or_else(|_| "admin".into()),
            ),
        },
        ..app.connector.clone()
    };
    app.repo.put_connector(&connector).await.unwrap();
    let sync_path = format!("/connectors/{}/sync", connector.id);

    // First sync: every test DAG becomes a pipeline (paused, as new DAGs start in Airflow).
    let (status, record) = send(&app, Method::POST, &sync_path, &app.keys.admin).await;
    assert_eq!(
        (status, record["status"].as_str()),
        (200, Some("succeeded")),
        "{record}"
    );
    let (_, pipelines) = body(app.get("/pipelines?q=it_", Some(&app.keys.viewer)).await).await;
    let dag_ids: Vec<&str> = pipelines
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["dag_id"].as_str().unwrap())
        .collect();
    for dag in TRIGGERED.iter().chain(["it_removable"].iter()) {
        assert!(dag_ids.contains(dag), "{dag} in {dag_ids:?}");
    }
    let etl = pipelines
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["dag_id"] == "it_etl")
        .unwrap();
    assert_eq!(etl["owners"], json!(["data-team"]));
    assert_eq!(etl["is_paused"], true);

    // Unpause in Airflow, trigger through this API (one at a time: SQLite).
    let mut triggered = BTreeMap::new();
    let mut triggered_runs = BTreeMap::new();
    for dag in TRIGGERED {
        airflow
            .call(
                Method::PATCH,
                &format!("/dags/{dag}"),
                Some(json!({"is_paused": false})),
            )
            .await;
        let pipeline_id = ids::pipeline_id(connector.id, dag);
        let (status, run) = send(
            &app,
            Method::POST,
            &format!("/pipelines/{pipeline_id}/trigger"),
            &app.keys.editor,
        )
        .await;
        assert_eq!(status, 201, "{dag}: {run}");
        assert!(
            matches!(run["status"].as_str(), Some("queued" | "running")),
            "{run}"
        );
        triggered.insert(dag, run["id"].as_str().unwrap().to_string());
        triggered_runs.insert(dag, run["dag_run_id"].as_str().unwrap().to_string());
    }

    // Wait (bounded) until Airflow has finished them all.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let runs = airflow.runs().await;
        let open = runs
            .values()
            .filter(|s| !matches!(s.as_str(), "success" | "failed"))
            .count();
        if open == 0 && runs.len() >= TRIGGERED.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Airflow did not finish the runs in time: {runs:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // it_failing failed and its last task never ran: `after_failure` is try 0,
    // upstream_failed. The mirror holds that try 0 now.
    let (status, record) = send(&app, Method::POST, &sync_path, &app.keys.admin).await;
    assert_eq!(status, 200, "{record}");
    let failing_run = triggered_runs["it_failing"].clone();
    assert_eq!(
        airflow.runs().await[&("it_failing".to_string(), failing_run.clone())],
        "failed"
    );
    // The failed run is one pipeline event (issue 17), and only one.
    let failures = async || {
        let (status, events) = body(
            app.get("/events?type=run_failed", Some(&app.keys.viewer))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{events}");
        events.as_array().unwrap().clone()
    };
    let failed_events = failures().await;
    assert_eq!(failed_events.len(), 1, "{failed_events:?}");
    assert_eq!(failed_events[0]["dag_id"], "it_failing");
    assert_eq!(failed_events[0]["dag_run_id"], failing_run.as_str());
    assert_eq!(failed_events[0]["details"]["status"], "failed");
    // Then the failure is fixed in Airflow and the task cleared: it runs as try 1, and
    // Airflow 3 keeps the try 0 in its tries list. The mirror must keep it too.
    let run_path = format!("/dags/it_failing/dagRuns/{}", urlencode(&failing_run));
    airflow
        .call(
            Method::PATCH,
            &format!("{run_path}/taskInstances/explode"),
            Some(json!({"new_state": "success"})),
        )
        .await;
    airflow
        .call(
            Method::POST,
            "/dags/it_failing/clearTaskInstances",
            Some(json!({
                "dry_run": false,
                "dag_run_id": failing_run,
                "task_ids": ["after_failure"],
                "only_failed": false,
                "reset_dag_runs": true,
            })),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let runs = airflow.runs().await;
        let state = runs
            .get(&("it_failing".to_string(), failing_run.clone()))
            .cloned()
            .unwrap_or_default();
        if state == "success" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleared it_failing run did not finish in time: {state}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Re-sync: the API shows exactly Airflow's runs, task tries and states.
    let (status, record) = send(&app, Method::POST, &sync_path, &app.keys.admin).await;
    assert_eq!(
        (status, record["status"].as_str()),
        (200, Some("succeeded")),
        "{record}"
    );
    let expected_runs = airflow.runs().await;
    let expected_tries = airflow.tries().await;
    let mut stored_runs = BTreeMap::new();
    let mut stored_tries = BTreeMap::new();
    for dag in TRIGGERED.iter().chain(["it_removable"].iter()) {
        let pipeline_id = ids::pipeline_id(connector.id, dag);
        let (_, runs) = body(
            app.get(
                &format!("/pipelines/{pipeline_id}/runs"),
                Some(&app.keys.viewer),
            )
            .await,
        )
        .await;
        for run in runs.as_array().unwrap() {
            let dag_run_id = run["dag_run_id"].as_str().unwrap().to_string();
            stored_runs.insert(
                (dag.to_string(), dag_run_id.clone()),
                run["status"].as_str().unwrap().to_string(),
            );
            let (_, detail) = body(
                app.get(
                    &format!("/runs/{}", run["id"].as_str().unwrap()),
                    Some(&app.keys.viewer),
                )
                .await,
            )
            .await;
            for t in detail["task_runs"].as_array().unwrap() {
                stored_tries.insert(
                    (
                        dag.to_string(),
                        dag_run_id.clone(),
                        t["task_id"].as_str().unwrap().to_string(),
                        t["map_index"].as_i64().unwrap(),
                        t["try_number"].as_u64().unwrap(),
                    ),
                    t["status"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    assert_eq!(stored_runs, expected_runs, "runs and states");
    assert_eq!(stored_tries, expected_tries, "every task try and its state");
    let statuses: BTreeMap<&str, &str> = TRIGGERED
        .iter()
        .map(|dag| {
            (
                *dag,
                expected_runs
                    .iter()
                    .find(|((d, _), _)| d == dag)
                    .map(|(_, s)| s.as_str())
                    .unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(statuses["it_etl"], "success");
    assert_eq!(statuses["it_failing"], "success", "fixed and cleared");
    let after_failure = |attempt: u64| {
        (
            "it_failing".to_string(),
            failing_run.clone(),
            "after_failure".to_string(),
            -1,
            attempt,
        )
    };
    assert_eq!(
        expected_tries.get(&after_failure(1)).map(String::as_str),
        Some("success"),
        "the cleared task ran"
    );
    assert_eq!(
        expected_tries.get(&after_failure(0)).map(String::as_str),
        Some("upstream_failed"),
        "Airflow 3 lists the try 0 beside it (and so does the mirror, compared above)"
    );
    assert_eq!(statuses["it_retries"], "success");
    assert!(
        expected_tries
            .keys()
            .any(|(d, _, _, _, attempt)| d == "it_retries" && *attempt == 2),
        "a retried task has two tries"
    );
    assert!(
        expected_tries
            .keys()
            .any(|(d, _, _, map, _)| d == "it_mapped" && *map == 2),
        "mapped task instances"
    );
    let (_, etl_run) = body(
        app.get(
            &format!("/runs/{}", triggered["it_etl"]),
            Some(&app.keys.viewer),
        )
        .await,
    )
    .await;
    assert_eq!(
        etl_run["status"], "success",
        "the triggered run went from queued to success"
    );

    // An unchanged re-sync writes nothing but its own bookkeeping.
    app.requests.take_written();
    let (_, record) = send(&app, Method::POST, &sync_path, &app.keys.admin).await;
    for kind in ["pipelines", "runs", "task_runs"] {
        assert_eq!(record["counts"][kind]["added"], 0, "{record}");
        assert_eq!(record["counts"][kind]["updated"], 0, "{record}");
    }
    let data_writes: Vec<String> = app
        .requests
        .take_written()
        .into_iter()
        // The sync's own bookkeeping, and the rate limiter's counter when the request
        // happens to reserve a new block of its key's requests.
        .filter(|pk| !pk.starts_with("CONNECTOR#") && !pk.starts_with("RATE#"))
        .collect();
    assert!(data_writes.is_empty(), "{data_writes:?}");
    // However often it is synced, the failure stays one event.
    assert_eq!(failures().await.len(), 1);

    // A DAG removed from Airflow: inactive after a sync, and triggering it is Airflow's 404.
    let folder =
        std::env::var("AIRFLOW_DAGS_FOLDER").expect("AIRFLOW_DAGS_FOLDER (scripts/airflow env)");
    let removable = std::path::Path::new(&folder).join("it_removable.py");
    let saved = std::fs::read(&removable).expect("it_removable.py in the dags folder");
    std::fs::remove_file(&removable).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let dag = airflow.call(Method::GET, "/dags/it_removable", None).await;
        if dag["is_stale"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Airflow did not mark the removed DAG stale"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    send(&app, Method::POST, &sync_path, &app.keys.admin).await;
    let removed_id = ids::pipeline_id(connector.id, "it_removable");
    let (_, removed) = body(
        app.get(&format!("/pipelines/{removed_id}"), Some(&app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(removed["is_active"], false, "{removed}");
    let (status, error) = send(
        &app,
        Method::POST,
        &format!("/pipelines/{removed_id}/trigger"),
        &app.keys.editor,
    )
    .await;
    assert_eq!(status, 404, "{error}");
    assert!(error["detail"].is_string());
    std::fs::write(&removable, saved).unwrap();
}
