//! `orchestration admin load-fixtures`: the data the API Gateway events of `events/` address.
//!
//! Every id in those fixtures is one of the constants below, so after this command
//! `cargo lambda invoke <function> --data-file events/<function>/<name>.json` answers with real
//! data instead of 404. The pipeline, run and task-run ids are the deterministic ids a sync of
//! the fixture connector would give DAG [`DAG_ID`] (`shared::domain::ids`), so syncing the
//! connector from an Airflow that has that DAG (the test DAG `it_etl` of `scripts/airflow`)
//! updates these items instead of adding a second pipeline beside them.
//!
//! Idempotent: a second run changes nothing that exists, except that it points the connector
//! at the given Airflow and puts the fixture comment back at version 1 (the comment fixtures
//! edit it at versions 1, 2 and 3, then delete it), so the fixtures can be replayed.
//!
//! The fixture key is public (it is in the repository): the command refuses a DynamoDB table
//! that is not on a loopback endpoint unless told `--allow-public-key`.

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use clap::Args;
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::{
    AirflowApiVersion, Comment, CommentTarget, Connector, ConnectorAuth, Pipeline, Provider, Role,
    Run, RunStatus, SecretRef, TaskRun, Team,
};
use shared::repo::{Repository, RunWithTasks};
use shared::store::dynamo::DynamoTable;
use uuid::Uuid;

/// The space of every fixture's path.
pub const SPACE: &str = "acme";
/// The fixtures' bearer key (an admin of [`SPACE`]).
pub const KEY: &str = "orch_fixturefixturefixturefixturefixture00";
/// The key's user: author of the fixture comment.
pub const USER: Uuid = Uuid::from_u128(0x77777777_7777_4777_8777_777777777777);
pub const CONNECTOR: Uuid = Uuid::from_u128(0x55555555_5555_4555_8555_555555555555);
pub const TEAM: Uuid = Uuid::from_u128(0x66666666_6666_4666_8666_666666666666);
pub const COMMENT: Uuid = Uuid::from_u128(0x44444444_4444_4444_8444_444444444444);
/// A DAG of `tests/airflow/dags/`, so a real test Airflow can run the trigger fixture.
pub const DAG_ID: &str = "it_etl";
pub const DAG_RUN_ID: &str = "scheduled__2026-03-11T00:00:00+00:00";
/// The tasks of the fixture run (one try each); the task-run fixtures address the last one.
pub const TASKS: [&str; 3] = ["extract", "transform", "load"];
/// The default Airflow: `AIRFLOW_PORT=28080 scripts/airflow start`.
pub const DEFAULT_AIRFLOW_URL: &str = "http://127.0.0.1:28080";
/// Where the connector's password is read from when no other source is given.
pub const DEFAULT_PASSWORD_ENV: &str = "FIXTURE_AIRFLOW_PASSWORD";

pub fn pipeline_id() -> Uuid {
    ids::pipeline_id(CONNECTOR, DAG_ID)
}

pub fn run_id() -> Uuid {
    ids::run_id(pipeline_id(), DAG_RUN_ID)
}

pub fn task_run_id() -> Uuid {
    ids::task_run_id(run_id(), TASKS[2], -1, 1)
}

#[derive(Debug, Args)]
pub struct LoadFixturesArgs {
    /// Base URL of the Airflow the fixture connector syncs from and triggers on.
    #[arg(long, default_value = DEFAULT_AIRFLOW_URL)]
    pub airflow_url: String,
    #[arg(long, default_value = "admin")]
    pub airflow_username: String,
    /// Secrets Manager ARN holding the Airflow password (what the Lambda functions read).
    #[arg(long)]
    pub password_secret_arn: Option<String>,
    /// Environment variable holding the Airflow password (default FIXTURE_AIRFLOW_PASSWORD).
    #[arg(long)]
    pub password_env: Option<String>,
    /// The password itself, kept in the embedded store (refused on DynamoDB).
    #[arg(long)]
    pub password_stored: Option<String>,
    /// Load into a DynamoDB table that is not on a loopback endpoint (the fixture key is public).
    #[arg(long)]
    pub allow_public_key: bool,
}

impl LoadFixturesArgs {
    fn password(&self) -> anyhow::Result<SecretRef> {
        Ok(
            match (
                &self.password_secret_arn,
                &self.password_env,
                &self.password_stored,
            ) {
                (Some(arn), None, None) => SecretRef::SecretsManager(arn.clone()),
                (None, Some(env), None) => SecretRef::Env(env.clone()),
                (None, None, Some(value)) => SecretRef::Stored(value.clone()),
                (None, None, None) => SecretRef::Env(DEFAULT_PASSWORD_ENV.into()),
                _ => bail!(
                    "give at most one of --password-secret-arn, --password-env, --password-stored"
                ),
            },
        )
    }
}

/// The command: checks where it writes, then [`load`].
pub async fn run(
    repo: &Repository,
    dynamo: Option<&DynamoTable>,
    args: LoadFixturesArgs,
) -> anyhow::Result<Value> {
    if dynamo.is_some() {
        if args.password_stored.is_some() {
            bail!(
                "--password-stored keeps the secret in the table: use --password-secret-arn on DynamoDB"
            );
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_default();
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|prefix| endpoint.starts_with(prefix));
        if !loopback && !args.allow_public_key {
            bail!(
                "the fixture key is public: load-fixtures writes to a DynamoDB table only on a \
                 loopback endpoint (AWS_ENDPOINT_URL_DYNAMODB), or with --allow-public-key"
            );
        }
    }
    let base_url = args.airflow_url.trim_end_matches('/').to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        bail!("--airflow-url must be an http(s) URL");
    }
    let auth = ConnectorAuth::Password {
        username: args.airflow_username.clone(),
        password: args.password()?,
    };
    load(repo, &base_url, auth, Utc::now()).await
}

/// Creates (or completes) the fixture data in `repo`; returns the ids the fixtures use.
pub async fn load(
    repo: &Repository,
    airflow_url: &str,
    auth: ConnectorAuth,
    now: DateTime<Utc>,
) -> anyhow::Result<Value> {
    let space = match repo.get_space(SPACE).await? {
        Some(space) => space,
        None => repo.create_space(SPACE, "Acme", now).await?,
    };
    repo.ensure_user(USER, "Fixture Admin", now).await?;
    repo.set_membership(SPACE, USER, Role::Admin, now).await?;
    if repo
        .find_api_key(&shared::auth::hash_key(KEY))
        .await?
        .is_none()
    {
        repo.create_api_key(USER, "fixtures", None, Some(KEY.to_string()), now)
            .await?;
    }
    repo.put_team(&Team {
        id: TEAM,
        space_id: space.id,
        name: "Data Platform".into(),
        created_at: at(0),
    })
    .await?;
    let connector = Connector {
        id: CONNECTOR,
        space_id: space.id,
        name: "Fixture Airflow".into(),
        provider: Provider::Airflow,
        base_url: airflow_url.to_string(),
        api_version: AirflowApiVersion::V2,
        auth,
        created_by: USER,
        editors: Vec::new(),
        created_at: at(0),
    };
    repo.put_connector(&connector).await?;

    let pipeline = pipeline(&connector);
    if repo.get_pipeline(space.id, pipeline.id).await?.is_none() {
        repo.upsert_pipeline_metadata(&pipeline).await?;
    }
    if repo.get_run(space.id, run_id()).await?.is_none() {
        repo.ingest_runs(&pipeline, vec![fixture_run(&pipeline)], now)
            .await
            .context("writing the fixture run")?;
    }
    reset_comment(repo, space.id).await?;

    Ok(json!({
        "space": SPACE,
        "space_id": space.id,
        "user_id": USER,
        "key": KEY,
        "team_id": TEAM,
        "connector_id": CONNECTOR,
        "airflow_url": airflow_url,
        "dag_id": DAG_ID,
        "pipeline_id": pipeline.id,
        "run_id": run_id(),
        "task_run_id": task_run_id(),
        "comment_id": COMMENT,
        "note": "the fixture key is public: use this data for local emulation and tests only",
    }))
}

/// A fixed instant: the fixture run's day, `minutes` after midnight.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn pipeline(connector: &Connector) -> Pipeline {
    Pipeline {
        id: pipeline_id(),
        space_id: connector.space_id,
        connector_id: connector.id,
        provider: Provider::Airflow,
        dag_id: DAG_ID.into(),
        name: DAG_ID.into(),
        description: Some("Tiny ETL pipeline for the integration tests".into()),
        owners: vec!["data-team".into()],
        tags: vec!["etl".into(), "it".into()],
        schedule: None,
        is_paused: false,
        is_active: true,
        provider_metadata: json!({ "dag_id": DAG_ID, "fileloc": "/dags/it_etl.py" }),
        synced_at: at(30),
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

/// The fixture run: its three tasks one after the other, each succeeding at its first try.
fn fixture_run(pipeline: &Pipeline) -> RunWithTasks {
    let run = Run {
        id: run_id(),
        space_id: pipeline.space_id,
        pipeline_id: pipeline.id,
        dag_id: DAG_ID.into(),
        dag_run_id: DAG_RUN_ID.into(),
        status: RunStatus::Success,
        run_type: "scheduled".into(),
        logical_date: Some(at(0)),
        queued_at: Some(at(1)),
        started_at: Some(at(2)),
        ended_at: Some(at(2 + 3 * TASKS.len() as i64)),
        longer_than_usual: false,
        note: None,
        provider_metadata: json!({ "conf": {} }),
        synced_at: at(30),
    };
    let task_runs = TASKS
        .iter()
        .enumerate()
        .map(|(index, task_id)| {
            let start = at(2 + 3 * index as i64);
            TaskRun {
                id: ids::task_run_id(run.id, task_id, -1, 1),
                space_id: run.space_id,
                pipeline_id: run.pipeline_id,
                run_id: run.id,
                task_id: (*task_id).into(),
                display_name: None,
                operator: Some("BashOperator".into()),
                status: "success".into(),
                try_number: 1,
                map_index: -1,
                started_at: Some(start),
                ended_at: Some(start + chrono::Duration::minutes(3)),
                longer_than_usual: false,
            }
        })
        .collect();
    RunWithTasks { run, task_runs }
}

/// The fixture comment on the fixture run, at version 1 (created, or put back).
async fn reset_comment(repo: &Repository, space_id: Uuid) -> anyhow::Result<()> {
    let comment = Comment {
        id: COMMENT,
        space_id,
        target_type: CommentTarget::Run,
        target_id: run_id(),
        run_id: run_id(),
        pipeline_id: pipeline_id(),
        author_id: USER,
        author_name: "Fixture Admin".into(),
        content: "Source table was late.".into(),
        created_at: at(40),
        updated_at: at(40),
        updated_by: USER,
        edited: false,
        version: 1,
    };
    match repo.get_comment(space_id, COMMENT).await? {
        None => repo.create_comment(&comment).await?,
        Some(stored) if stored == comment => {}
        // Same creation time, so the same entry in the run's list: both items are replaced.
        Some(stored) => repo.update_comment(&comment, stored.version).await?,
    }
    Ok(())
}
