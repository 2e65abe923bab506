//! `orchestration admin generate`: a benchmark space of N pipelines with up to 90 days of runs
//! and task runs (`scripts/bench`).
//!
//! The DAGs and their schedules are chosen here; the runs are built by the history generator
//! ([`super`]) the demo uses too. Everything is written through the repository write path the
//! Airflow sync uses
//! (`upsert_pipeline_metadata`, `set_pipeline_governance`, `ingest_runs`), so the items are
//! exactly what a sync of the same DAGs would store. The mix is meant to look like a real
//! deployment: most DAGs daily, some hourly, six-hourly, weekly or manual-only; failures at
//! different rates (a few pipelines failing right now), retried tasks, slow runs, paused and
//! removed DAGs, a DAG that never ran, and one DAG whose runs have 50 task runs each.
//!
//! With `--airflow-export`, the same DAGs and each DAG's most recent runs (with their task
//! tries) are also written as JSON, for `bench/airflow_load.py` to load into a real Airflow.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use shared::domain::model::{
    AirflowApiVersion, Connector, ConnectorAuth, Criticality, Pipeline, Provider, Role, SecretRef,
    Team,
};
use shared::repo::{Repository, RunWithTasks};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{
    Dag, EXTRACT_LOAD, INGEST, ML, REPORT, Slot, Task, Unstarted, WAREHOUSE, history_start,
    manual_slot, scheduled_slots, template_tasks,
};

/// The longest history the API summarises (and keeps in a pipeline's run series).
const MAX_DAYS: i64 = 90;
/// Pipelines written at the same time: enough to overlap building runs with store commits.
const CONCURRENCY: usize = 4;
/// Task runs of the wide DAG's runs (the "get run with 50 task runs" benchmark).
const WIDE_TASKS: usize = 50;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Slug of the space to create (it must not exist yet).
    #[arg(long, default_value = "bench")]
    space: String,
    /// Number of pipelines (DAGs).
    #[arg(long, default_value_t = 1000)]
    pipelines: usize,
    /// Days of run history, up to the moment of generating (1-90).
    #[arg(long, default_value_t = 90)]
    days: i64,
    /// Seed of the random mix (same seed, same DAGs and outcomes).
    #[arg(long, default_value_t = 20261128)]
    seed: u64,
    /// Use this admin API key instead of a random one (20+ visible characters).
    #[arg(long, env = "ORCHESTRATION_BENCH_API_KEY")]
    api_key: Option<String>,
    /// Also write the DAGs and each DAG's most recent runs as JSON to this file, for loading
    /// into a real Airflow.
    #[arg(long)]
    airflow_export: Option<PathBuf>,
    /// Runs per DAG in the Airflow export (the most recent ones).
    #[arg(long, default_value_t = 11)]
    airflow_runs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cadence {
    Hourly,
    SixHourly,
    Daily,
    Weekly,
    Manual,
}

impl Cadence {
    fn minutes(self) -> Option<i64> {
        match self {
            Cadence::Hourly => Some(60),
            Cadence::SixHourly => Some(360),
            Cadence::Daily => Some(1440),
            Cadence::Weekly => Some(10080),
            Cadence::Manual => None,
        }
    }

    fn schedule(self, rng: &mut StdRng) -> Option<String> {
        Some(match self {
            Cadence::Hourly => "@hourly".to_string(),
            Cadence::SixHourly => format!("{} */6 * * *", rng.random_range(0..60)),
            Cadence::Daily => format!(
                "{} {} * * *",
                rng.random_range(0..60),
                rng.random_range(0..24)
            ),
            Cadence::Weekly => "@weekly".to_string(),
            Cadence::Manual => return None,
        })
    }
}

#[derive(Debug, Clone)]
struct Spec {
    dag: Dag,
    cadence: Cadence,
    never_ran: bool,
}

const DOMAINS: &[&str] = &[
    "orders",
    "payments",
    "clickstream",
    "inventory",
    "crm",
    "ads",
    "finance",
    "marketing",
    "support",
    "search",
    "catalog",
    "shipping",
    "reviews",
    "billing",
    "fx_rates",
    "users",
    "partners",
    "logistics",
    "fraud",
    "pricing",
];
const ACTIVITIES: &[(&str, &str)] = &[
    ("ingest", "Copies new files of {d} from the source bucket"),
    ("sync", "Syncs {d} from the upstream service"),
    ("daily_build", "Builds and tests the {d} warehouse models"),
    ("report", "Renders and sends the {d} report"),
    ("snapshot", "Snapshots {d} for point-in-time analysis"),
    (
        "quality_checks",
        "Freshness and volume checks on {d} tables",
    ),
    ("model_training", "Retrains the {d} model"),
    ("export", "Exports {d} to partners"),
    ("rollup", "Rolls {d} up for the dashboards"),
    ("reconcile", "Reconciles {d} against the ledger"),
];
const OWNERS: &[&str] = &[
    "data-platform",
    "analytics",
    "finance-data",
    "marketing-analytics",
    "ml-team",
    "search",
    "partnerships",
    "legal",
];
const TAGS: &[&str] = &[
    "ingest",
    "warehouse",
    "dbt",
    "reporting",
    "finance",
    "ml",
    "quality",
    "compliance",
    "export",
    "critical",
    "legacy",
    "experimental",
];
const TEMPLATES: &[&[(&str, &str, i64)]] = &[INGEST, EXTRACT_LOAD, WAREHOUSE, REPORT, ML];

/// The DAG of pipeline `index`. The last one is the wide DAG (50 tasks, daily).
fn spec(index: usize, count: usize, rng: &mut StdRng) -> Spec {
    let domain = DOMAINS[index % DOMAINS.len()];
    let (activity, description) = ACTIVITIES[(index / DOMAINS.len()) % ACTIVITIES.len()];
    let mut owners = vec![OWNERS[rng.random_range(0..OWNERS.len())].to_string()];
    if rng.random_bool(0.2) {
        let second = OWNERS[rng.random_range(0..OWNERS.len())].to_string();
        if second != owners[0] {
            owners.push(second);
        }
    }
    let mut tags: Vec<String> = (0..rng.random_range(1..=3))
        .map(|_| TAGS[rng.random_range(0..TAGS.len())].to_string())
        .collect();
    tags.sort();
    tags.dedup();
    let wide = index + 1 == count;
    let cadence = if wide {
        Cadence::Daily
    } else {
        match rng.random_range(0..100) {
            0..4 => Cadence::Hourly,
            4..12 => Cadence::SixHourly,
            12..94 => Cadence::Daily,
            94..97 => Cadence::Weekly,
            _ => Cadence::Manual,
        }
    };
    let tasks = if wide {
        (0..WIDE_TASKS)
            .map(|n| Task {
                id: format!("partition_{n:02}"),
                operator: "PythonOperator",
                seconds: 20 + (n as i64 % 7) * 5,
            })
            .collect()
    } else {
        // Hourly DAGs are small ingests, as they tend to be.
        let template = if cadence == Cadence::Hourly {
            TEMPLATES[0]
        } else {
            TEMPLATES[rng.random_range(0..TEMPLATES.len())]
        };
        template_tasks(template)
    };
    let dag_id = if wide {
        format!("partitioned_backfill_{index:04}")
    } else {
        format!("{domain}_{activity}_{index:04}")
    };
    let roll = rng.random_range(0..1000);
    // The draws in this order: the schedule, the failure rate, the slow rate.
    let schedule = cadence.schedule(rng);
    let failure_rate = match rng.random_range(0..100) {
        0..70 => rng.random_range(0.0..0.03),
        70..95 => rng.random_range(0.03..0.10),
        _ => rng.random_range(0.10..0.30),
    };
    let slow_rate = rng.random_range(0.01..0.06);
    Spec {
        dag: Dag {
            description: description.replace("{d}", &domain.replace('_', " ")),
            dag_id,
            owners,
            tags,
            every_minutes: cadence.minutes(),
            schedule,
            tasks,
            failure_rate,
            slow_rate,
            // One task in a hundred needs a second try; never in the wide DAG, whose runs
            // have exactly one try per task, and whose partitions run eight at a time.
            retry_rate: if wide { 0.0 } else { 0.01 },
            parallel: if wide { 8 } else { 1 },
            failing_now: !wide && (20..35).contains(&roll),
            paused: !wide && (35..55).contains(&roll),
            active: wide || !(55..65).contains(&roll),
        },
        cadence,
        never_ran: !wide && (65..70).contains(&roll),
    }
}

/// What the generator created, printed as JSON (the bench reads the keys and sample ids).
#[derive(Debug, Serialize)]
struct Outcome {
    space: String,
    space_id: Uuid,
    api_key: String,
    viewer_key: String,
    connector_id: Uuid,
    pipelines: usize,
    runs: usize,
    task_runs: usize,
    days: i64,
    elapsed_ms: u64,
    samples: Samples,
}

/// Ids the benchmarks address.
#[derive(Debug, Default, Serialize)]
struct Samples {
    /// Daily pipelines (90 runs over 90 days), a few of each.
    daily_pipeline_ids: Vec<Uuid>,
    hourly_pipeline_ids: Vec<Uuid>,
    /// Latest runs of a few daily pipelines.
    recent_run_ids: Vec<Uuid>,
    wide_pipeline_id: Option<Uuid>,
    /// The latest finished run of the wide DAG (50 task runs).
    wide_run_id: Option<Uuid>,
    team_ids: Vec<Uuid>,
    /// A window deep in the history for run listings (`started_from`/`started_to`).
    deep_from: Option<DateTime<Utc>>,
    deep_to: Option<DateTime<Utc>>,
}

/// Result of writing one pipeline.
struct Written {
    index: usize,
    pipeline_id: Uuid,
    cadence: Cadence,
    runs: usize,
    task_runs: usize,
    latest_finished: Option<Uuid>,
    wide_task_runs: usize,
    export_runs: Vec<Value>,
}

pub async fn run(repo: &Repository, args: GenerateArgs) -> anyhow::Result<Value> {
    if !(1..=MAX_DAYS).contains(&args.days) {
        bail!("--days must be 1 to {MAX_DAYS}");
    }
    if args.pipelines == 0 {
        bail!("--pipelines must be at least 1");
    }
    let started = Instant::now();
    let now = Utc::now();
    if repo.get_space(&args.space).await?.is_some() {
        bail!(
            "space '{}' exists already: generate into a fresh data folder (or another --space)",
            args.space
        );
    }
    let space = repo.create_space(&args.space, "Benchmark", now).await?;
    let admin = repo.create_user("Bench Admin", None, now).await?;
    let viewer = repo.create_user("Bench Viewer", None, now).await?;
    repo.set_membership(&args.space, admin.id, Role::Admin, now)
        .await?;
    repo.set_membership(&args.space, viewer.id, Role::Viewer, now)
        .await?;
    let api_key = repo
        .create_api_key(admin.id, "bench", None, args.api_key.clone(), now)
        .await
        .context("creating the admin key")?
        .secret;
    let viewer_key = repo
        .create_api_key(viewer.id, "bench", None, None, now)
        .await?
        .secret;
    let teams: Vec<Team> = [
        "Data Platform",
        "Analytics",
        "Finance Data",
        "Marketing",
        "ML",
    ]
    .into_iter()
    .map(|name| Team {
        id: Uuid::new_v4(),
        space_id: space.id,
        name: name.to_string(),
        created_at: now,
    })
    .collect();
    for team in &teams {
        repo.put_team(team).await?;
    }
    // A connector the pipelines belong to; the bench never syncs it.
    let connector = Connector {
        id: Uuid::new_v4(),
        space_id: space.id,
        name: "Airflow (generated)".into(),
        provider: Provider::Airflow,
        base_url: "http://127.0.0.1:9".into(),
        api_version: AirflowApiVersion::V2,
        auth: ConnectorAuth::Password {
            username: "admin".into(),
            password: SecretRef::Env("BENCH_AIRFLOW_PASSWORD".into()),
        },
        created_by: admin.id,
        editors: Vec::new(),
        created_at: now,
    };
    repo.put_connector(&connector).await?;

    let mut rng = StdRng::seed_from_u64(args.seed);
    let specs: Vec<Spec> = (0..args.pipelines)
        .map(|index| spec(index, args.pipelines, &mut rng))
        .collect();
    let export_dags: Vec<Value> = specs.iter().map(export_dag).collect();

    let context = GenContext {
        space_id: space.id,
        connector_id: connector.id,
        admin_id: admin.id,
        team_ids: teams.iter().map(|t| t.id).collect(),
        days: args.days,
        now,
        export_runs: args.airflow_export.as_ref().map(|_| args.airflow_runs),
    };
    let mut outcome = Outcome {
        space: args.space.clone(),
        space_id: space.id,
        api_key,
        viewer_key,
        connector_id: connector.id,
        pipelines: 0,
        runs: 0,
        task_runs: 0,
        days: args.days,
        elapsed_ms: 0,
        samples: Samples {
            team_ids: context.team_ids.clone(),
            ..Samples::default()
        },
    };
    let mut written: Vec<Written> = Vec::with_capacity(specs.len());
    let mut pending = JoinSet::new();
    for (index, spec) in specs.into_iter().enumerate() {
        if pending.len() >= CONCURRENCY {
            written.push(next(&mut pending).await?);
        }
        let repo = repo.clone();
        let context = context.clone();
        let seed = args.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        pending.spawn(async move { write_pipeline(&repo, &context, index, spec, seed).await });
    }
    while !pending.is_empty() {
        written.push(next(&mut pending).await?);
    }
    written.sort_by_key(|w| w.index);

    let mut export_runs = Vec::new();
    for w in &mut written {
        outcome.pipelines += 1;
        outcome.runs += w.runs;
        outcome.task_runs += w.task_runs;
        export_runs.append(&mut w.export_runs);
        let samples = &mut outcome.samples;
        match w.cadence {
            Cadence::Daily
                if w.wide_task_runs == 0
                    && w.runs >= args.days as usize
                    && samples.daily_pipeline_ids.len() < 20 =>
            {
                samples.daily_pipeline_ids.push(w.pipeline_id);
                samples.recent_run_ids.extend(w.latest_finished);
            }
            Cadence::Hourly if w.runs > 0 && samples.hourly_pipeline_ids.len() < 5 => {
                samples.hourly_pipeline_ids.push(w.pipeline_id);
            }
            _ => {}
        }
        if w.wide_task_runs > 0 {
            samples.wide_pipeline_id = Some(w.pipeline_id);
            samples.wide_run_id = w.latest_finished;
        }
    }
    // Five days, starting 80 days back (or as deep as the history goes).
    let back = (args.days * 8 / 9).max(1);
    outcome.samples.deep_from = Some(now - Duration::days(back));
    outcome.samples.deep_to = Some(now - Duration::days(back) + Duration::days(5));

    if let Some(path) = &args.airflow_export {
        let export = json!({ "generated_at": now, "dags": export_dags, "runs": export_runs });
        let text = serde_json::to_vec(&export)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    outcome.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(serde_json::to_value(outcome)?)
}

async fn next(pending: &mut JoinSet<anyhow::Result<Written>>) -> anyhow::Result<Written> {
    pending
        .join_next()
        .await
        .expect("a task is pending")
        .context("a generator task panicked")?
}

/// What every pipeline's task needs (cheap to clone).
#[derive(Clone)]
struct GenContext {
    space_id: Uuid,
    connector_id: Uuid,
    admin_id: Uuid,
    team_ids: Vec<Uuid>,
    days: i64,
    now: DateTime<Utc>,
    /// Most recent runs per DAG to export for Airflow (None: no export).
    export_runs: Option<usize>,
}

async fn write_pipeline(
    repo: &Repository,
    context: &GenContext,
    index: usize,
    spec: Spec,
    seed: u64,
) -> anyhow::Result<Written> {
    let mut rng = StdRng::seed_from_u64(seed);
    let pipeline = pipeline_of(&spec, context);
    repo.upsert_pipeline_metadata(&pipeline).await?;
    // A third of the pipelines are governed (team and criticality), as in a real space.
    if index.is_multiple_of(3) {
        let team = context.team_ids[index % context.team_ids.len()];
        let criticality = Criticality::ALL[index % Criticality::ALL.len()];
        repo.set_pipeline_governance(
            context.space_id,
            pipeline.id,
            Some(Some(team)),
            Some(Some(criticality)),
            context.admin_id,
            context.now,
        )
        .await?;
    }
    let runs = if spec.never_ran {
        Vec::new()
    } else {
        runs_of(&spec, &pipeline, context, &mut rng)
    };
    let export_runs = match context.export_runs {
        Some(count) => runs
            .iter()
            .skip(runs.len().saturating_sub(count))
            .map(export_run)
            .collect(),
        None => Vec::new(),
    };
    let latest_finished = runs
        .iter()
        .rev()
        .find(|r| r.run.status.is_finished())
        .map(|r| r.run.id);
    let written = Written {
        index,
        pipeline_id: pipeline.id,
        cadence: spec.cadence,
        runs: runs.len(),
        task_runs: runs.iter().map(|r| r.task_runs.len()).sum(),
        latest_finished,
        wide_task_runs: if spec.dag.tasks.len() == WIDE_TASKS {
            WIDE_TASKS
        } else {
            0
        },
        export_runs,
    };
    repo.ingest_runs(&pipeline, runs, context.now).await?;
    Ok(written)
}

fn pipeline_of(spec: &Spec, context: &GenContext) -> Pipeline {
    let dag = &spec.dag;
    // The fields a sync would take from Airflow's DAG object (see `sync::mapping`).
    let metadata = json!({
        "description": dag.description,
        "fileloc": "/opt/airflow/dags/generated.py",
        "relative_fileloc": "generated.py",
        "timetable_description": dag.schedule,
        "max_consecutive_failed_dag_runs": 0,
        "has_task_concurrency_limits": false,
        "bundle_version": null,
        "file_token": "generated",
    });
    super::pipeline(
        dag,
        dag.dag_id.clone(),
        context.space_id,
        context.connector_id,
        metadata,
        context.now,
    )
}

fn runs_of(
    spec: &Spec,
    pipeline: &Pipeline,
    context: &GenContext,
    rng: &mut StdRng,
) -> Vec<RunWithTasks> {
    let (dag, now) = (&spec.dag, context.now);
    let start = history_start(now, context.days, dag.every_minutes);
    // A removed DAG stopped a week ago; a paused one three weeks ago.
    let end = if !dag.active {
        now - Duration::days(7)
    } else if dag.paused {
        now - Duration::days(21)
    } else {
        now
    };
    let mut slots: Vec<Slot> = Vec::new();
    if let Some(every) = dag.every_minutes {
        // Spread the start minute like the cron schedules do.
        let first = start + Duration::minutes(rng.random_range(0..every.min(60)));
        scheduled_slots(&mut slots, first, every, end);
    }
    if end > start && spec.cadence != Cadence::Hourly {
        let manual = if spec.cadence == Cadence::Manual {
            rng.random_range(5..=20)
        } else {
            rng.random_range(0..=3)
        };
        for _ in 0..manual {
            slots.push(manual_slot(start, end, rng));
        }
    }
    slots.sort();
    // Two manual runs in the same minute would share a run id.
    slots.dedup_by_key(|slot| slot.0);
    super::runs(dag, pipeline, slots, Unstarted::Listed, now, rng)
}

fn export_dag(spec: &Spec) -> Value {
    let Dag {
        dag_id,
        description,
        owners,
        tags,
        schedule,
        paused,
        tasks,
        ..
    } = &spec.dag;
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| json!({"task_id": t.id, "operator": t.operator}))
        .collect();
    json!({
        "dag_id": dag_id,
        "description": description,
        "owners": owners,
        "tags": tags,
        "schedule": schedule,
        "is_paused": paused,
        "tasks": tasks,
    })
}

fn export_run(run: &RunWithTasks) -> Value {
    let r = &run.run;
    json!({
        "dag_id": r.dag_id,
        "run_id": r.dag_run_id,
        "run_type": r.run_type,
        "state": r.status.as_str(),
        "logical_date": r.logical_date,
        "queued_at": r.queued_at,
        "start_date": r.started_at,
        "end_date": r.ended_at,
        "data_interval_start": r.provider_metadata.get("data_interval_start"),
        "data_interval_end": r.provider_metadata.get("data_interval_end"),
        "run_after": r.provider_metadata.get("run_after"),
        "task_instances": run.task_runs.iter().map(|t| json!({
            "task_id": t.task_id,
            "operator": t.operator,
            "state": t.status,
            "try_number": t.try_number,
            "start_date": t.started_at,
            "end_date": t.ended_at,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs of `count` generated DAGs, as `run` builds them for `seed`.
    fn history(count: usize, days: i64, seed: u64, now: DateTime<Utc>) -> Vec<RunWithTasks> {
        let mut rng = StdRng::seed_from_u64(seed);
        let specs: Vec<Spec> = (0..count).map(|i| spec(i, count, &mut rng)).collect();
        let context = GenContext {
            space_id: Uuid::from_u128(1),
            connector_id: Uuid::from_u128(2),
            admin_id: Uuid::from_u128(3),
            team_ids: vec![Uuid::from_u128(4)],
            days,
            now,
            export_runs: None,
        };
        specs
            .iter()
            .enumerate()
            .filter(|(_, spec)| !spec.never_ran)
            .flat_map(|(index, spec)| {
                let seed = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rng = StdRng::seed_from_u64(seed);
                runs_of(spec, &pipeline_of(spec, &context), &context, &mut rng)
            })
            .collect()
    }

    /// Same seed, same history; the counts are the ones of the generator before the demo's
    /// and this one's run construction were merged.
    #[test]
    fn the_generated_history_is_deterministic() {
        let now: DateTime<Utc> = "2026-11-28T12:34:56.789Z".parse().unwrap();
        let first = history(120, 10, 20261128, now);
        let again = history(120, 10, 20261128, now);
        let runs = |h: &[RunWithTasks]| h.iter().map(|r| r.run.clone()).collect::<Vec<_>>();
        assert!(runs(&first) == runs(&again));
        let task_runs = first.iter().map(|r| r.task_runs.len()).sum::<usize>();
        assert_eq!((first.len(), task_runs), (3090, 12663));
        // The wide DAG (the last) has 50 task runs per finished run, one try each.
        let wide = first.last().unwrap();
        assert!(wide.run.dag_id.starts_with("partitioned_backfill_"));
        assert_eq!(wide.task_runs.len(), WIDE_TASKS);
    }
}
