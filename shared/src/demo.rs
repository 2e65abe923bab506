//! The demo space: realistic, deterministic data for the local server (`--demo`) and tests.
//!
//! Space `demo` with three teams, two Airflow connectors and 25 pipelines with 30 days of runs
//! and task runs up to the moment of loading: hourly, six-hourly, daily and weekly schedules,
//! a few manual runs, retries, a pipeline that is failing right now, slow runs, a paused DAG,
//! a DAG removed from Airflow, and one that never ran. Everything is written through the same
//! repository write path the Airflow sync uses.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

use crate::domain::ids;
use crate::domain::model::{
    AirflowApiVersion, Connector, ConnectorAuth, Pipeline, Provider, Role, Run, RunStatus,
    SecretRef, TaskRun, Team,
};
use crate::error::{Error, Result};
use crate::repo::{Repository, RunWithTasks};

pub const DEMO_SLUG: &str = "demo";
pub const DEMO_DAYS: i64 = 30;
/// Days of history on a DynamoDB-compatible server unless chosen: moto (the CI engine)
/// copies the whole table for every item of every transaction, so a month of history takes
/// many minutes there (measured: unfinished after 3) and grows it to gigabytes. DynamoDB
/// Local and DynamoDB take the full demo (`--demo-days 30`).
pub const DEMO_DAYS_ON_DYNAMODB: i64 = 3;
/// The most days of history the demo generates.
pub const MAX_DEMO_DAYS: i64 = 90;
/// Environment variable that fixes the demo key (any string of 20+ visible characters).
pub const DEMO_KEY_ENV: &str = "ORCHESTRATION_DEMO_API_KEY";

/// Fixed ids, so loading twice finds the same objects.
fn demo_id(name: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6368_6573_7472_6174_696f_6e2d_6465);
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

pub fn admin_user_id() -> Uuid {
    demo_id("user:admin")
}

pub fn editor_user_id() -> Uuid {
    demo_id("user:editor")
}

pub fn viewer_user_id() -> Uuid {
    demo_id("user:viewer")
}

pub struct DemoOutcome {
    /// True when the data was written now; false when the space already existed.
    pub loaded: bool,
    pub space_id: Uuid,
    /// The admin's API key (shown once).
    pub api_key: String,
    /// Fresh keys of the demo editor and viewer, to act as other users.
    pub editor_key: String,
    pub viewer_key: String,
    pub pipelines: usize,
    pub runs: usize,
    pub task_runs: usize,
    /// (name, id, base URL) of the demo's Airflow connectors.
    pub connectors: Vec<(String, Uuid, String)>,
}

/// How one demo DAG behaves.
struct DagSpec {
    dag_id: &'static str,
    description: &'static str,
    owners: &'static [&'static str],
    tags: &'static [&'static str],
    /// Minutes between scheduled runs; `None` = manual only.
    every_minutes: Option<i64>,
    schedule: Option<&'static str>,
    tasks: &'static [(&'static str, &'static str, i64)],
    failure_rate: f64,
    slow_rate: f64,
    connector: usize,
    paused: bool,
    active: bool,
}

// One row of the demo table below; positional on purpose so each DAG fits on a line.
#[allow(clippy::too_many_arguments)]
const fn dag(
    dag_id: &'static str,
    description: &'static str,
    owners: &'static [&'static str],
    tags: &'static [&'static str],
    every_minutes: Option<i64>,
    schedule: Option<&'static str>,
    tasks: &'static [(&'static str, &'static str, i64)],
    failure_rate: f64,
) -> DagSpec {
    DagSpec {
        dag_id,
        description,
        owners,
        tags,
        every_minutes,
        schedule,
        tasks,
        failure_rate,
        slow_rate: 0.04,
        connector: 0,
        paused: false,
        active: true,
    }
}

const EXTRACT_LOAD: &[(&str, &str, i64)] = &[
    ("extract", "PythonOperator", 120),
    ("transform", "PythonOperator", 300),
    ("load", "SQLExecuteQueryOperator", 90),
];
const WAREHOUSE: &[(&str, &str, i64)] = &[
    ("wait_for_sources", "ExternalTaskSensor", 60),
    ("stage", "SQLExecuteQueryOperator", 240),
    ("build_models", "BashOperator", 900),
    ("test_models", "BashOperator", 180),
    ("publish", "PythonOperator", 30),
];
const REPORT: &[(&str, &str, i64)] = &[
    ("query", "SQLExecuteQueryOperator", 200),
    ("render", "PythonOperator", 60),
    ("send", "EmailOperator", 5),
];
const INGEST: &[(&str, &str, i64)] = &[
    ("list_files", "S3ListOperator", 10),
    ("copy_files", "PythonOperator", 150),
    ("validate", "PythonOperator", 40),
    ("done", "EmptyOperator", 1),
];
const ML: &[(&str, &str, i64)] = &[
    ("prepare_features", "PythonOperator", 600),
    ("train", "KubernetesPodOperator", 2400),
    ("evaluate", "PythonOperator", 300),
    ("register_model", "PythonOperator", 30),
];

fn specs() -> Vec<DagSpec> {
    let mut specs = vec![
        dag(
            "orders_ingest",
            "Hourly copy of new order files from the shop's bucket",
            &["data-platform"],
            &["ingest", "orders"],
            Some(60),
            Some("@hourly"),
            INGEST,
            0.03,
        ),
        dag(
            "clickstream_ingest",
            "Hourly clickstream export from the tracking service",
            &["data-platform"],
            &["ingest", "web"],
            Some(60),
            Some("@hourly"),
            INGEST,
            0.05,
        ),
        dag(
            "payments_sync",
            "Syncs settled payments from the payment provider every hour",
            &["finance-data"],
            &["finance", "ingest"],
            Some(60),
            Some("0 * * * *"),
            EXTRACT_LOAD,
            0.02,
        ),
        dag(
            "inventory_snapshot",
            "Inventory levels per warehouse, four times a day",
            &["data-platform"],
            &["inventory"],
            Some(360),
            Some("0 */6 * * *"),
            EXTRACT_LOAD,
            0.05,
        ),
        dag(
            "crm_contacts_sync",
            "Contacts and accounts from the CRM",
            &["analytics"],
            &["crm", "ingest"],
            Some(360),
            Some("0 */6 * * *"),
            EXTRACT_LOAD,
            0.08,
        ),
        dag(
            "ads_spend_import",
            "Advertising spend from three ad networks",
            &["marketing-analytics"],
            &["marketing"],
            Some(360),
            Some("30 */6 * * *"),
            INGEST,
            0.10,
        ),
        dag(
            "warehouse_daily_build",
            "Builds and tests the warehouse models",
            &["data-platform", "analytics"],
            &["warehouse", "dbt"],
            Some(1440),
            Some("@daily"),
            WAREHOUSE,
            0.07,
        ),
        dag(
            "finance_ledger_close",
            "Daily ledger close and reconciliation",
            &["finance-data"],
            &["finance", "critical"],
            Some(1440),
            Some("0 2 * * *"),
            WAREHOUSE,
            0.04,
        ),
        dag(
            "revenue_report",
            "Daily revenue report for the leadership team",
            &["analytics"],
            &["reporting", "finance"],
            Some(1440),
            Some("0 6 * * *"),
            REPORT,
            0.03,
        ),
        dag(
            "marketing_attribution",
            "Multi-touch attribution model",
            &["marketing-analytics"],
            &["marketing", "ml"],
            Some(1440),
            Some("0 4 * * *"),
            ML,
            0.06,
        ),
        dag(
            "churn_model_training",
            "Retrains the churn model",
            &["ml-team"],
            &["ml"],
            Some(1440),
            Some("0 3 * * *"),
            ML,
            0.12,
        ),
        dag(
            "customer_360",
            "Customer profile tables joining CRM, orders and support",
            &["analytics"],
            &["warehouse", "customers"],
            Some(1440),
            Some("@daily"),
            WAREHOUSE,
            0.05,
        ),
        dag(
            "support_tickets_sync",
            "Support tickets and satisfaction scores",
            &["analytics"],
            &["support", "ingest"],
            Some(1440),
            Some("15 1 * * *"),
            EXTRACT_LOAD,
            0.04,
        ),
        dag(
            "data_quality_checks",
            "Freshness and volume checks on key tables",
            &["data-platform"],
            &["quality"],
            Some(1440),
            Some("0 7 * * *"),
            REPORT,
            0.15,
        ),
        dag(
            "gdpr_erasure",
            "Applies pending erasure requests",
            &["data-platform", "legal"],
            &["compliance"],
            Some(1440),
            Some("0 0 * * *"),
            EXTRACT_LOAD,
            0.02,
        ),
        dag(
            "weekly_kpi_digest",
            "Weekly KPI digest email",
            &["analytics"],
            &["reporting"],
            Some(10080),
            Some("@weekly"),
            REPORT,
            0.0,
        ),
        dag(
            "backfill_events",
            "Manually triggered backfills of event tables",
            &["data-platform"],
            &["maintenance"],
            None,
            None,
            INGEST,
            0.2,
        ),
        dag(
            "partner_feed_export",
            "Daily product feed for partners",
            &["partnerships"],
            &["export"],
            Some(1440),
            Some("0 5 * * *"),
            EXTRACT_LOAD,
            0.05,
        ),
        dag(
            "fx_rates_import",
            "Foreign exchange rates, daily",
            &["finance-data"],
            &["finance"],
            Some(1440),
            Some("0 0 * * *"),
            INGEST,
            0.01,
        ),
        dag(
            "search_index_refresh",
            "Rebuilds the product search index",
            &["search"],
            &["search"],
            Some(360),
            Some("0 */6 * * *"),
            EXTRACT_LOAD,
            0.05,
        ),
        dag(
            "legacy_billing_export",
            "Billing export on the legacy Airflow",
            &["finance-data"],
            &["finance", "legacy"],
            Some(1440),
            Some("0 1 * * *"),
            EXTRACT_LOAD,
            0.06,
        ),
        dag(
            "legacy_audit_log_archive",
            "Archives audit logs to cold storage",
            &["data-platform"],
            &["legacy", "compliance"],
            Some(1440),
            Some("0 3 * * *"),
            INGEST,
            0.03,
        ),
        dag(
            "legacy_sales_rollup",
            "Sales roll-up used by the old dashboards",
            &["analytics"],
            &["legacy", "reporting"],
            Some(1440),
            Some("0 4 * * *"),
            REPORT,
            0.1,
        ),
        dag(
            "legacy_inventory_reconcile",
            "Removed from Airflow last week",
            &["data-platform"],
            &["legacy"],
            Some(1440),
            Some("0 5 * * *"),
            EXTRACT_LOAD,
            0.05,
        ),
        dag(
            "experimental_recommendations",
            "New recommendations pipeline, not enabled yet",
            &["ml-team"],
            &["ml", "experimental"],
            Some(1440),
            Some("@daily"),
            ML,
            0.0,
        ),
    ];
    for spec in specs.iter_mut().skip(20) {
        spec.connector = 1;
    }
    let find = |specs: &mut Vec<DagSpec>, id: &str| {
        specs
            .iter()
            .position(|s| s.dag_id == id)
            .expect("demo dag exists")
    };
    let slow = find(&mut specs, "warehouse_daily_build");
    specs[slow].slow_rate = 0.2;
    let gone = find(&mut specs, "legacy_inventory_reconcile");
    specs[gone].active = false;
    let new = find(&mut specs, "experimental_recommendations");
    specs[new].paused = true;
    specs[new].every_minutes = None;
    specs
}

/// Loads the demo space, with `days` of history (1 to [`MAX_DEMO_DAYS`]), unless it exists;
/// always returns a usable admin API key (the one in `key`, when given, else a new random one).
pub async fn load(
    repo: &Repository,
    key: Option<String>,
    now: DateTime<Utc>,
    days: i64,
) -> Result<DemoOutcome> {
    let days = days.clamp(1, MAX_DEMO_DAYS);
    let existing = repo.get_space(DEMO_SLUG).await?;
    let (space, loaded) = match existing {
        Some(space) => (space, false),
        None => (repo.create_space(DEMO_SLUG, "Demo", now).await?, true),
    };
    for (id, name, role) in [
        (admin_user_id(), "Ada Admin", Role::Admin),
        (editor_user_id(), "Eddie Editor", Role::Editor),
        (viewer_user_id(), "Vera Viewer", Role::Viewer),
    ] {
        repo.ensure_user(id, name, now).await?;
        repo.set_membership(DEMO_SLUG, id, role, now).await?;
    }
    let api_key = match repo
        .create_api_key(admin_user_id(), "demo", None, key.clone(), now)
        .await
    {
        Ok(created) => created.secret,
        // The chosen key is already registered (an earlier start): it works as it is.
        Err(Error::Conflict(_)) if key.is_some() => key.unwrap_or_default(),
        Err(other) => return Err(other),
    };
    let editor_key = repo
        .create_api_key(editor_user_id(), "demo", None, None, now)
        .await?
        .secret;
    let viewer_key = repo
        .create_api_key(viewer_user_id(), "demo", None, None, now)
        .await?
        .secret;
    let mut outcome = DemoOutcome {
        loaded,
        space_id: space.id,
        api_key,
        editor_key,
        viewer_key,
        pipelines: 0,
        runs: 0,
        task_runs: 0,
        connectors: Vec::new(),
    };
    if loaded {
        write_data(repo, space.id, now, days, &mut outcome).await?;
    }
    outcome.connectors = repo
        .list_connectors(space.id)
        .await?
        .into_iter()
        .map(|c| (c.name, c.id, c.base_url))
        .collect();
    Ok(outcome)
}

async fn write_data(
    repo: &Repository,
    space_id: Uuid,
    now: DateTime<Utc>,
    days: i64,
    outcome: &mut DemoOutcome,
) -> Result<()> {
    let teams: Vec<Team> = ["Data Platform", "Analytics", "Finance Data"]
        .into_iter()
        .map(|name| Team {
            id: demo_id(&format!("team:{name}")),
            space_id,
            name: name.to_string(),
            created_at: now,
        })
        .collect();
    for team in &teams {
        repo.put_team(team).await?;
    }
    let connectors = [
        (
            "Airflow production",
            "http://127.0.0.1:28080",
            AirflowApiVersion::V2,
            "admin",
            "DEMO_AIRFLOW_PASSWORD",
        ),
        (
            "Airflow legacy",
            "http://127.0.0.1:28082",
            AirflowApiVersion::V1,
            "admin",
            "DEMO_AIRFLOW_LEGACY_PASSWORD",
        ),
    ]
    .map(|(name, url, version, user, env)| Connector {
        id: demo_id(&format!("connector:{name}")),
        space_id,
        name: name.to_string(),
        provider: Provider::Airflow,
        base_url: url.to_string(),
        api_version: version,
        auth: ConnectorAuth::Password {
            username: user.to_string(),
            password: SecretRef::Env(env.to_string()),
        },
        created_by: admin_user_id(),
        editors: vec![editor_user_id()],
        created_at: now,
    });
    for connector in &connectors {
        repo.put_connector(connector).await?;
    }

    let mut rng = StdRng::seed_from_u64(20261128);
    for (index, spec) in specs().iter().enumerate() {
        let connector = &connectors[spec.connector];
        let mut pipeline = pipeline_of(spec, space_id, connector.id, now);
        repo.upsert_pipeline_metadata(&pipeline).await?;
        // A few pipelines start out governed, as they would in a real space.
        if index % 3 == 0 {
            let team = teams[index % teams.len()].id;
            let criticality = crate::domain::model::Criticality::ALL[index % 4];
            pipeline = repo
                .set_pipeline_governance(
                    space_id,
                    pipeline.id,
                    Some(Some(team)),
                    Some(Some(criticality)),
                    admin_user_id(),
                    now,
                )
                .await?;
        }
        let runs = runs_of(spec, &pipeline, now, days, &mut rng);
        outcome.pipelines += 1;
        outcome.runs += runs.len();
        outcome.task_runs += runs.iter().map(|r| r.task_runs.len()).sum::<usize>();
        repo.ingest_runs(&pipeline, runs, now).await?;
    }
    Ok(())
}

fn pipeline_of(spec: &DagSpec, space_id: Uuid, connector_id: Uuid, now: DateTime<Utc>) -> Pipeline {
    let id = ids::pipeline_id(connector_id, spec.dag_id);
    Pipeline {
        id,
        space_id,
        connector_id,
        provider: Provider::Airflow,
        dag_id: spec.dag_id.to_string(),
        name: spec.dag_id.replace('_', " "),
        description: Some(spec.description.to_string()),
        owners: spec.owners.iter().map(|o| o.to_string()).collect(),
        tags: spec.tags.iter().map(|t| t.to_string()).collect(),
        schedule: spec.schedule.map(str::to_string),
        is_paused: spec.paused,
        is_active: spec.active,
        provider_metadata: json!({
            "dag_id": spec.dag_id,
            "dag_display_name": spec.dag_id,
            "is_paused": spec.paused,
            "is_stale": !spec.active,
            "fileloc": format!("/opt/airflow/dags/{}.py", spec.dag_id),
            "timetable_summary": spec.schedule,
            "max_active_runs": 16,
            "max_active_tasks": 16,
            "has_import_errors": false,
            "bundle_name": "dags-folder",
            "owners": spec.owners,
            "tags": spec.tags.iter().map(|t| json!({"name": t, "dag_id": spec.dag_id})).collect::<Vec<_>>(),
        }),
        synced_at: now,
        team_id: None,
        criticality: None,
        governance_updated_by: None,
        governance_updated_at: None,
        latest_run: None,
        last_success: None,
        last_failure: None,
    }
}

fn runs_of(
    spec: &DagSpec,
    pipeline: &Pipeline,
    now: DateTime<Utc>,
    days: i64,
    rng: &mut StdRng,
) -> Vec<RunWithTasks> {
    // Align the first slot to the schedule (daily DAGs at midnight, hourly on the hour).
    let grid = Duration::minutes(spec.every_minutes.unwrap_or(60).min(1440));
    let start = (now - Duration::days(days))
        .duration_trunc(grid)
        .unwrap_or(now);
    // A removed DAG stopped a week ago (half the history, when that is shorter).
    let end = if spec.active {
        now
    } else {
        now - Duration::hours((7 * 24).min(days * 12))
    };
    let mut slots: Vec<(DateTime<Utc>, &str)> = Vec::new();
    if let Some(every) = spec.every_minutes {
        let mut at = start;
        while at + Duration::minutes(every) <= end {
            slots.push((at, "scheduled"));
            at += Duration::minutes(every);
        }
    }
    if spec.every_minutes != Some(60) && !spec.paused {
        // A couple of manual runs per pipeline.
        for _ in 0..rng.random_range(1..=3) {
            let at =
                start + Duration::minutes(rng.random_range(0..(end - start).num_minutes().max(1)));
            slots.push((at, "manual"));
        }
    }
    slots.sort();
    let count = slots.len();
    // The data quality DAG is failing right now: its last three runs failed.
    let failing_now = spec.dag_id == "data_quality_checks";
    slots
        .into_iter()
        .enumerate()
        .map(|(index, (logical, run_type))| {
            let from_end = count - index;
            let outcome = if (failing_now && from_end <= 3) || rng.random_bool(spec.failure_rate) {
                Outcome::Failed
            } else {
                Outcome::Success
            };
            let slow = rng.random_bool(spec.slow_rate);
            build_run(spec, pipeline, logical, run_type, outcome, slow, now, rng)
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Success,
    Failed,
}

#[allow(clippy::too_many_arguments)]
fn build_run(
    spec: &DagSpec,
    pipeline: &Pipeline,
    logical: DateTime<Utc>,
    run_type: &str,
    outcome: Outcome,
    slow: bool,
    now: DateTime<Utc>,
    rng: &mut StdRng,
) -> RunWithTasks {
    let interval = Duration::minutes(spec.every_minutes.unwrap_or(60));
    // Scheduled runs start once their data interval has ended; manual runs right away.
    let queued = if run_type == "scheduled" {
        logical + interval
    } else {
        logical
    } + Duration::seconds(rng.random_range(1..20));
    let started = queued + Duration::seconds(rng.random_range(1..15));
    let prefix = if run_type == "scheduled" {
        "scheduled"
    } else {
        "manual"
    };
    let dag_run_id = format!("{prefix}__{}", logical.format("%Y-%m-%dT%H:%M:%S+00:00"));
    let run_id = ids::run_id(pipeline.id, &dag_run_id);
    let factor = if slow {
        rng.random_range(2.5..4.0)
    } else {
        1.0
    };
    let failing_task = (outcome == Outcome::Failed).then(|| rng.random_range(0..spec.tasks.len()));

    let mut task_runs = Vec::new();
    let mut cursor = started;
    let mut still_running = false;
    let mut failed = false;
    for (position, (task_id, operator, base_seconds)) in spec.tasks.iter().enumerate() {
        if failed {
            task_runs.push(task_run(
                pipeline,
                run_id,
                task_id,
                operator,
                "upstream_failed",
                1,
                None,
                None,
            ));
            continue;
        }
        // The failing task is retried once; a few others need a second try too.
        let tries = if failing_task == Some(position) || rng.random_bool(0.03) {
            2
        } else {
            1
        };
        for try_number in 1..=tries {
            let seconds = (*base_seconds as f64 * factor * rng.random_range(0.85..1.15)).max(1.0);
            let begin = cursor + Duration::seconds(rng.random_range(1..5));
            let finish = begin + Duration::milliseconds((seconds * 1000.0) as i64);
            if finish > now {
                // Still in flight at load time.
                task_runs.push(task_run(
                    pipeline,
                    run_id,
                    task_id,
                    operator,
                    "running",
                    try_number,
                    Some(begin),
                    None,
                ));
                still_running = true;
                break;
            }
            let last_try = try_number == tries;
            let status = match (failing_task == Some(position), last_try) {
                (true, true) => "failed",
                (_, false) => "up_for_retry",
                (false, true) => "success",
            };
            task_runs.push(task_run(
                pipeline,
                run_id,
                task_id,
                operator,
                status,
                try_number,
                Some(begin),
                Some(finish),
            ));
            cursor = finish
                + if last_try {
                    Duration::zero()
                } else {
                    Duration::seconds(60)
                };
        }
        if still_running {
            break;
        }
        if failing_task == Some(position) {
            failed = true;
        }
    }
    let (status, ended) = run_outcome(still_running, failed, cursor + Duration::seconds(1));
    let run = mirrored_run(
        pipeline,
        MirroredRun {
            run_id,
            dag_run_id,
            run_type,
            logical,
            interval,
            queued,
            started,
            status,
            ended_at: ended,
        },
        now,
    );
    RunWithTasks { run, task_runs }
}

/// A generated run's status and end: running (no end), failed or succeeded at `finished_at`.
pub fn run_outcome(
    still_running: bool,
    failed: bool,
    finished_at: DateTime<Utc>,
) -> (RunStatus, Option<DateTime<Utc>>) {
    if still_running {
        (RunStatus::Running, None)
    } else if failed {
        (RunStatus::Failed, Some(finished_at))
    } else {
        (RunStatus::Success, Some(finished_at))
    }
}

/// What differs between the runs [`mirrored_run`] builds.
pub struct MirroredRun<'a> {
    pub run_id: Uuid,
    pub dag_run_id: String,
    pub run_type: &'a str,
    pub logical: DateTime<Utc>,
    /// The data interval: `logical` to `logical + interval`.
    pub interval: Duration,
    pub queued: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub status: RunStatus,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A run as a sync of Airflow stores it, with the DAG-run fields Airflow reports (the demo's
/// and the benchmark generator's runs).
pub fn mirrored_run(pipeline: &Pipeline, run: MirroredRun<'_>, now: DateTime<Utc>) -> Run {
    let MirroredRun {
        run_id,
        dag_run_id,
        run_type,
        logical,
        interval,
        queued,
        started,
        status,
        ended_at,
    } = run;
    Run {
        id: run_id,
        space_id: pipeline.space_id,
        pipeline_id: pipeline.id,
        dag_id: pipeline.dag_id.clone(),
        dag_run_id,
        status,
        run_type: run_type.to_string(),
        logical_date: Some(logical),
        queued_at: Some(queued),
        started_at: Some(started),
        ended_at,
        longer_than_usual: false,
        note: None,
        provider_metadata: json!({
            "conf": {},
            "data_interval_start": logical,
            "data_interval_end": logical + interval,
            "run_after": queued,
            "triggered_by": if run_type == "scheduled" { "timetable" } else { "rest_api" },
        }),
        synced_at: now,
    }
}

/// One try of an unmapped task as a sync stores it (demo and benchmark data).
#[allow(clippy::too_many_arguments)]
pub fn task_run(
    pipeline: &Pipeline,
    run_id: Uuid,
    task_id: &str,
    operator: &str,
    status: &str,
    try_number: u32,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
) -> TaskRun {
    TaskRun {
        id: ids::task_run_id(run_id, task_id, -1, try_number),
        space_id: pipeline.space_id,
        pipeline_id: pipeline.id,
        run_id,
        task_id: task_id.to_string(),
        display_name: Some(task_id.replace('_', " ")),
        operator: Some(operator.to_string()),
        status: status.to_string(),
        try_number,
        map_index: -1,
        started_at,
        ended_at,
        longer_than_usual: false,
    }
}
