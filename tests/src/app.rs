//! The whole API served on a loopback port over a fresh store, with two seeded spaces and one
//! key per kind of caller the tests need.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::{
    AirflowApiVersion, Connector, ConnectorAuth, Pipeline, Provider, Role, Run, RunStatus,
    SecretRef, Space, TaskRun, Team,
};
use shared::http::AppState;
use shared::repo::{Repository, RunWithTasks};
use shared::store::counting::CountingTable;
use std::sync::Arc;
use uuid::Uuid;

use crate::fake_airflow::FakeAirflow;
use crate::{Backend, TestTable};

pub const SPACE: &str = "acme";
pub const OTHER_SPACE: &str = "globex";

/// Keys of the seeded callers.
pub struct Keys {
    /// Admin of `acme`.
    pub admin: String,
    /// Editor of `acme`.
    pub editor: String,
    /// Viewer of `acme`.
    pub viewer: String,
    /// Admin of `globex` only.
    pub outsider: String,
    /// A revoked key of the `acme` admin.
    pub revoked: String,
    /// An expired key of the `acme` admin.
    pub expired: String,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub repo: Repository,
    pub space: Space,
    pub other_space: Space,
    pub keys: Keys,
    pub admin_id: Uuid,
    pub viewer_id: Uuid,
    pub connector: Connector,
    pub other_connector: Connector,
    pub team: Team,
    /// Counts the table requests the application makes (every test app is wrapped).
    pub requests: Arc<CountingTable>,
    _table: TestTable,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with the server's state adjusted first (budgets, timeouts).
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut AppState)) -> Self {
        let table = TestTable::new(backend).await;
        let requests = Arc::new(CountingTable::new(table.table.clone()));
        let repo = Repository::new(requests.clone());
        let now = Utc::now();
        let space = repo.create_space(SPACE, "Acme", now).await.unwrap();
        let other_space = repo.create_space(OTHER_SPACE, "Globex", now).await.unwrap();

        let key_for = async |name: &str, slug: &str, role: Role| {
            let user = repo.create_user(name, None, now).await.unwrap();
            repo.set_membership(slug, user.id, role, now).await.unwrap();
            let key = repo
                .create_api_key(user.id, "test", None, None, now)
                .await
                .unwrap();
            (user.id, key.secret)
        };
        let (admin_id, admin) = key_for("Ada Admin", SPACE, Role::Admin).await;
        let (_, editor) = key_for("Eddie Editor", SPACE, Role::Editor).await;
        let (viewer_id, viewer) = key_for("Vera Viewer", SPACE, Role::Viewer).await;
        let (_, outsider) = key_for("Olga Outsider", OTHER_SPACE, Role::Admin).await;
        let revoked_key = repo
            .create_api_key(admin_id, "old", None, None, now)
            .await
            .unwrap();
        repo.revoke_api_key(revoked_key.record.id, now)
            .await
            .unwrap();
        let expired = repo
            .create_api_key(
                admin_id,
                "expired",
                Some(now - Duration::minutes(1)),
                None,
                now,
            )
            .await
            .unwrap()
            .secret;

        let connector = new_connector(space.id, admin_id, "prod");
        let other_connector = new_connector(other_space.id, admin_id, "other");
        repo.put_connector(&connector).await.unwrap();
        repo.put_connector(&other_connector).await.unwrap();
        let team = repo
            .create_team(space.id, "Data Platform", now)
            .await
            .unwrap();

        for key in [
            &admin,
            &editor,
            &viewer,
            &outsider,
            &revoked_key.secret,
            &expired,
        ] {
            crate::exposure::record_api_key(key);
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut state = AppState::new(repo.clone());
        configure(&mut state);
        let router = crate::exposure::capture_responses(local::app(state));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            base,
            client: reqwest::Client::new(),
            repo,
            space,
            other_space,
            keys: Keys {
                admin,
                editor,
                viewer,
                outsider,
                revoked: revoked_key.secret,
                expired,
            },
            admin_id,
            viewer_id,
            connector,
            other_connector,
            team,
            requests,
            _table: table,
            server,
        }
    }

    /// Full URL of a path under `/api/v1.0/spaces/{slug}/orchestration`.
    pub fn url(&self, slug: &str, path: &str) -> String {
        format!("{}/api/v1.0/spaces/{slug}/orchestration{path}", self.base)
    }

    /// GET in the `acme` space with a key (or none).
    pub async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        self.get_in(SPACE, path, key).await
    }

    pub async fn get_in(&self, slug: &str, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(slug, path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("request reaches the server")
    }

    /// Writes a pipeline (metadata) into a space.
    /// The space's connector pointed at `airflow` (password `admin`, stored), written.
    pub async fn connect(&self, airflow: &FakeAirflow) -> Connector {
        let connector = Connector {
            base_url: airflow.url(),
            auth: ConnectorAuth::Password {
                username: "admin".into(),
                password: SecretRef::Stored("admin".into()),
            },
            ..self.connector.clone()
        };
        self.repo.put_connector(&connector).await.unwrap();
        connector
    }

    /// A fake Airflow with DAG `etl` (one successful run two hours ago, tasks `extract` and
    /// `load`), and the space's connector pointed at it ([`TestApp::connect`]).
    pub async fn with_fake_airflow(&self) -> (FakeAirflow, Connector) {
        let airflow = FakeAirflow::start().await;
        airflow.with(|state| {
            state.add_dag("etl", "data-team");
            state.add_run(
                "etl",
                "scheduled__1",
                "success",
                Utc::now() - Duration::hours(2),
                &["extract", "load"],
            );
        });
        let connector = self.connect(&airflow).await;
        (airflow, connector)
    }

    pub async fn add_pipeline(
        &self,
        connector: &Connector,
        dag_id: &str,
        edit: impl FnOnce(&mut Pipeline),
    ) -> Pipeline {
        let mut pipeline = pipeline(connector, dag_id);
        edit(&mut pipeline);
        self.repo.upsert_pipeline_metadata(&pipeline).await.unwrap();
        pipeline
    }

    /// Ingests runs into a pipeline through the sync's write path.
    pub async fn add_runs(&self, pipeline: &Pipeline, runs: Vec<RunWithTasks>) {
        self.repo
            .ingest_runs(pipeline, runs, Utc::now())
            .await
            .unwrap();
    }
}

pub fn new_connector(space_id: Uuid, created_by: Uuid, name: &str) -> Connector {
    Connector {
        id: Uuid::new_v4(),
        space_id,
        name: name.to_string(),
        provider: Provider::Airflow,
        base_url: "http://127.0.0.1:9".to_string(),
        api_version: AirflowApiVersion::V2,
        auth: ConnectorAuth::Password {
            username: "admin".into(),
            password: SecretRef::Env("TEST_AIRFLOW_PASSWORD".into()),
        },
        created_by,
        editors: vec![],
        created_at: Utc::now(),
    }
}

pub fn pipeline(connector: &Connector, dag_id: &str) -> Pipeline {
    Pipeline {
        id: ids::pipeline_id(connector.id, dag_id),
        space_id: connector.space_id,
        connector_id: connector.id,
        provider: Provider::Airflow,
        dag_id: dag_id.to_string(),
        name: dag_id.to_string(),
        description: None,
        owners: vec!["airflow".into()],
        tags: vec![],
        schedule: Some("@daily".into()),
        is_paused: false,
        is_active: true,
        provider_metadata: json!({ "dag_id": dag_id, "fileloc": format!("/dags/{dag_id}.py") }),
        synced_at: Utc::now(),
        team_id: None,
        criticality: None,
        governance_updated_by: None,
        governance_updated_at: None,
        freshness_interval_seconds: None,
        latest_run: None,
        last_success: None,
        last_failure: None,
    }
}

/// A run of `pipeline` that started `ago` before now and, if finished, took `seconds`.
pub fn run(
    pipeline: &Pipeline,
    dag_run_id: &str,
    ago: Duration,
    status: RunStatus,
    seconds: Option<i64>,
) -> RunWithTasks {
    run_at(pipeline, dag_run_id, Utc::now() - ago, status, seconds)
}

pub fn run_at(
    pipeline: &Pipeline,
    dag_run_id: &str,
    started: DateTime<Utc>,
    status: RunStatus,
    seconds: Option<i64>,
) -> RunWithTasks {
    let id = ids::run_id(pipeline.id, dag_run_id);
    RunWithTasks {
        run: Run {
            id,
            space_id: pipeline.space_id,
            pipeline_id: pipeline.id,
            dag_id: pipeline.dag_id.clone(),
            dag_run_id: dag_run_id.to_string(),
            status,
            run_type: if dag_run_id.starts_with("manual") {
                "manual"
            } else {
                "scheduled"
            }
            .to_string(),
            logical_date: Some(started - Duration::hours(1)),
            queued_at: Some(started - Duration::seconds(5)),
            started_at: Some(started),
            ended_at: seconds.map(|s| started + Duration::seconds(s)),
            longer_than_usual: false,
            note: None,
            provider_metadata: json!({ "conf": {} }),
            synced_at: Utc::now(),
        },
        task_runs: vec![],
    }
}

/// A task-run try inside a run.
pub fn task_run(
    run: &Run,
    task_id: &str,
    try_number: u32,
    status: &str,
    seconds: Option<i64>,
) -> TaskRun {
    let start = run.started_at.unwrap_or_else(Utc::now);
    TaskRun {
        id: ids::task_run_id(run.id, task_id, -1, try_number),
        space_id: run.space_id,
        pipeline_id: run.pipeline_id,
        run_id: run.id,
        task_id: task_id.to_string(),
        display_name: None,
        operator: Some("PythonOperator".into()),
        status: status.to_string(),
        try_number,
        map_index: -1,
        started_at: Some(start),
        ended_at: seconds.map(|s| start + Duration::seconds(s)),
        longer_than_usual: false,
    }
}

/// Status and JSON body of a response.
pub async fn body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, value)
}

/// A header of a response as a string.
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}
