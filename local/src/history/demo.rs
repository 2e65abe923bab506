//! The demo space: realistic, deterministic data for the local server (`--demo`) and tests.
//!
//! Space `demo` with three teams, two Airflow connectors and 25 pipelines with 30 days of runs
//! and task runs up to the moment of loading: hourly, six-hourly, daily and weekly schedules,
//! a few manual runs, retries, a pipeline that is failing right now, slow runs, a paused DAG,
//! a DAG removed from Airflow, and one that never ran. Everything is written through the same
//! repository write path the Airflow sync uses ([`super`]: the history generator).

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use shared::domain::model::{
    AirflowApiVersion, Connector, ConnectorAuth, Criticality, Pipeline, Provider, Role, SecretRef,
    Team,
};
use shared::error::{Error, Result};
use shared::repo::{Repository, RunWithTasks};
use uuid::Uuid;

use super::{
    Dag, EXTRACT_LOAD, INGEST, ML, REPORT, Slot, Unstarted, WAREHOUSE, history_start, manual_slot,
    scheduled_slots, template_tasks,
};

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

/// Seed of the demo's random mix: the same history (relative to the moment of loading) every time.
const SEED: u64 = 20261128;

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

/// How one demo DAG behaves, and which of the two connectors it belongs to.
struct DagSpec {
    dag: Dag,
    connector: usize,
}

// One row of the demo table below; positional on purpose so each DAG fits on a line.
#[allow(clippy::too_many_arguments)]
fn dag(
    dag_id: &str,
    description: &str,
    owners: &[&str],
    tags: &[&str],
    every_minutes: Option<i64>,
    schedule: Option<&str>,
    template: &[(&str, &'static str, i64)],
    failure_rate: f64,
) -> DagSpec {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    DagSpec {
        dag: Dag {
            dag_id: dag_id.to_string(),
            description: description.to_string(),
            owners: strings(owners),
            tags: strings(tags),
            every_minutes,
            schedule: schedule.map(str::to_string),
            tasks: template_tasks(template),
            failure_rate,
            slow_rate: 0.04,
            retry_rate: 0.03,
            parallel: 1,
            failing_now: false,
            paused: false,
            active: true,
        },
        connector: 0,
    }
}

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
    fn find<'a>(specs: &'a mut [DagSpec], id: &str) -> &'a mut Dag {
        let spec = specs.iter_mut().find(|s| s.dag.dag_id == id);
        &mut spec.expect("demo dag exists").dag
    }
    find(&mut specs, "warehouse_daily_build").slow_rate = 0.2;
    find(&mut specs, "legacy_inventory_reconcile").active = false;
    let new = find(&mut specs, "experimental_recommendations");
    new.paused = true;
    new.every_minutes = None;
    // The data quality DAG is failing right now: its last three runs failed.
    find(&mut specs, "data_quality_checks").failing_now = true;
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

    let mut rng = StdRng::seed_from_u64(SEED);
    for (index, spec) in specs().iter().enumerate() {
        let connector = &connectors[spec.connector];
        let mut pipeline = pipeline_of(spec, space_id, connector.id, now);
        repo.upsert_pipeline_metadata(&pipeline).await?;
        // A few pipelines start out governed, as they would in a real space.
        if index % 3 == 0 {
            let team = teams[index % teams.len()].id;
            let criticality = Criticality::ALL[index % 4];
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
        // The history as a connector's first sync loads it (no events), then the last day
        // as later syncs see it: its failures and recoveries are the demo's events.
        let recent = now - chrono::Duration::days(1);
        let (last_day, history): (Vec<_>, Vec<_>) =
            runs.into_iter().partition(|r| r.run.at() >= recent);
        repo.ingest_runs(&pipeline, history, now).await?;
        repo.ingest_runs_detecting(&pipeline, last_day, now, true)
            .await?;
        // One pipeline expected every minute (the shortest interval), which its daily
        // schedule cannot meet: the freshness check below reports it.
        if spec.dag.dag_id == FRESHNESS_DEMO_DAG {
            repo.set_pipeline_platform_fields(
                space_id,
                pipeline.id,
                None,
                None,
                Some(Some(shared::domain::freshness::MIN_INTERVAL_SECONDS)),
                admin_user_id(),
                now,
            )
            .await?;
        }
    }
    let spaces = std::collections::BTreeSet::from([space_id]);
    shared::service::freshness::check_spaces(repo, &spaces, now).await?;
    Ok(())
}

/// The demo pipeline with a freshness interval its schedule cannot meet.
const FRESHNESS_DEMO_DAG: &str = "finance_ledger_close";

fn pipeline_of(spec: &DagSpec, space_id: Uuid, connector_id: Uuid, now: DateTime<Utc>) -> Pipeline {
    let dag = &spec.dag;
    let metadata = json!({ "fileloc": format!("/opt/airflow/dags/{}.py", dag.dag_id) });
    super::pipeline(
        dag,
        dag.dag_id.replace('_', " "),
        space_id,
        connector_id,
        metadata,
        now,
    )
}

fn runs_of(
    spec: &DagSpec,
    pipeline: &Pipeline,
    now: DateTime<Utc>,
    days: i64,
    rng: &mut StdRng,
) -> Vec<RunWithTasks> {
    let dag = &spec.dag;
    let start = history_start(now, days, dag.every_minutes);
    // A removed DAG stopped a week ago (half the history, when that is shorter).
    let end = if dag.active {
        now
    } else {
        now - Duration::hours((7 * 24).min(days * 12))
    };
    let mut slots: Vec<Slot> = Vec::new();
    if let Some(every) = dag.every_minutes {
        scheduled_slots(&mut slots, start, every, end);
    }
    if dag.every_minutes != Some(60) && !dag.paused {
        // A couple of manual runs per pipeline.
        for _ in 0..rng.random_range(1..=3) {
            slots.push(manual_slot(start, end, rng));
        }
    }
    slots.sort();
    super::runs(dag, pipeline, slots, Unstarted::Omitted, now, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(now: DateTime<Utc>, days: i64) -> Vec<RunWithTasks> {
        let mut rng = StdRng::seed_from_u64(SEED);
        specs()
            .iter()
            .flat_map(|spec| {
                let connector = demo_id(&format!("connector:{}", spec.connector));
                let pipeline = pipeline_of(spec, demo_id("space"), connector, now);
                runs_of(spec, &pipeline, now, days, &mut rng)
            })
            .collect()
    }

    /// The demo's history depends only on the moment of loading and the days; these counts
    /// are the ones of the generator before it moved here (README: "30 days of runs").
    #[test]
    fn the_demo_history_is_deterministic() {
        let now: DateTime<Utc> = "2026-11-28T12:34:56.789Z".parse().unwrap();
        let first = history(now, DEMO_DAYS);
        let again = history(now, DEMO_DAYS);
        let runs = |h: &[RunWithTasks]| h.iter().map(|r| r.run.clone()).collect::<Vec<_>>();
        let tasks = |h: &[RunWithTasks]| {
            h.iter()
                .flat_map(|r| r.task_runs.clone())
                .collect::<Vec<_>>()
        };
        assert!(runs(&first) == runs(&again) && tasks(&first) == tasks(&again));
        assert_eq!((first.len(), tasks(&first).len()), (3130, 11715));
        let short = history(now, DEMO_DAYS_ON_DYNAMODB);
        assert_eq!(
            (
                short.len(),
                short.iter().map(|r| r.task_runs.len()).sum::<usize>()
            ),
            (350, 1315)
        );
    }
}
