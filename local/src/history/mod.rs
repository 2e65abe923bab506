//! Generated run history: pipelines with runs and task runs as a sync of Airflow stores them,
//! written through the same repository write path the sync uses.
//!
//! Two front ends choose the DAGs and their schedules: [`demo`], the demo space of the local
//! server (`serve --demo`, `orchestration demo`), and [`generate`], the benchmark space of
//! `orchestration admin generate`. Everything below — a DAG's pipeline, its run slots, and each
//! run with its task tries, retries, slow runs and the run still in flight — is built here once.

pub mod demo;
pub mod generate;

use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::{Pipeline, Provider, Run, RunStatus, TaskRun};
use shared::repo::RunWithTasks;
use uuid::Uuid;

/// One task of a DAG: its id, operator, and how long it usually takes.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub id: String,
    pub operator: &'static str,
    pub seconds: i64,
}

/// The tasks of a template table (id, operator, usual seconds).
pub(crate) fn template_tasks(template: &[(&str, &'static str, i64)]) -> Vec<Task> {
    template
        .iter()
        .map(|(id, operator, seconds)| Task {
            id: (*id).to_string(),
            operator,
            seconds: *seconds,
        })
        .collect()
}

// The task templates (id, operator, usual seconds) of the generated DAGs.
pub(crate) const EXTRACT_LOAD: &[(&str, &str, i64)] = &[
    ("extract", "PythonOperator", 120),
    ("transform", "PythonOperator", 300),
    ("load", "SQLExecuteQueryOperator", 90),
];
pub(crate) const WAREHOUSE: &[(&str, &str, i64)] = &[
    ("wait_for_sources", "ExternalTaskSensor", 60),
    ("stage", "SQLExecuteQueryOperator", 240),
    ("build_models", "BashOperator", 900),
    ("test_models", "BashOperator", 180),
    ("publish", "PythonOperator", 30),
];
pub(crate) const REPORT: &[(&str, &str, i64)] = &[
    ("query", "SQLExecuteQueryOperator", 200),
    ("render", "PythonOperator", 60),
    ("send", "EmailOperator", 5),
];
pub(crate) const INGEST: &[(&str, &str, i64)] = &[
    ("list_files", "S3ListOperator", 10),
    ("copy_files", "PythonOperator", 150),
    ("validate", "PythonOperator", 40),
    ("done", "EmptyOperator", 1),
];
pub(crate) const ML: &[(&str, &str, i64)] = &[
    ("prepare_features", "PythonOperator", 600),
    ("train", "KubernetesPodOperator", 2400),
    ("evaluate", "PythonOperator", 300),
    ("register_model", "PythonOperator", 30),
];

/// One generated DAG and how its runs behave.
#[derive(Debug, Clone)]
pub(crate) struct Dag {
    pub dag_id: String,
    pub description: String,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
    /// Minutes between scheduled runs; `None` = manual only.
    pub every_minutes: Option<i64>,
    pub schedule: Option<String>,
    pub tasks: Vec<Task>,
    pub failure_rate: f64,
    pub slow_rate: f64,
    /// Chance that a task that does not fail needs a second try (0: never).
    pub retry_rate: f64,
    /// Tasks that run side by side (1: one after the other).
    pub parallel: usize,
    /// The last three runs fail (a pipeline that is broken right now).
    pub failing_now: bool,
    pub paused: bool,
    /// False: removed from Airflow (stale), no runs since.
    pub active: bool,
}

/// What the front ends' runs differ in: whether the tasks after the one still running are
/// listed (`scheduled`, try 0), as Airflow lists them once the run is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unstarted {
    Omitted,
    Listed,
}

/// The pipeline of `dag` as a sync stores it: Airflow's fields, the DAG object's common
/// metadata plus `metadata` (the front end's own fields), no platform-owned fields.
pub(crate) fn pipeline(
    dag: &Dag,
    name: String,
    space_id: Uuid,
    connector_id: Uuid,
    metadata: Value,
    now: DateTime<Utc>,
) -> Pipeline {
    let mut provider_metadata = json!({
        "dag_id": dag.dag_id,
        "dag_display_name": dag.dag_id,
        "is_paused": dag.paused,
        "is_stale": !dag.active,
        "timetable_summary": dag.schedule,
        "max_active_runs": 16,
        "max_active_tasks": 16,
        "has_import_errors": false,
        "bundle_name": "dags-folder",
        "owners": dag.owners,
        "tags": dag.tags.iter().map(|t| json!({"name": t, "dag_id": dag.dag_id})).collect::<Vec<_>>(),
    });
    if let (Some(common), Value::Object(extra)) = (provider_metadata.as_object_mut(), metadata) {
        common.extend(extra);
    }
    Pipeline {
        id: ids::pipeline_id(connector_id, &dag.dag_id),
        space_id,
        connector_id,
        provider: Provider::Airflow,
        dag_id: dag.dag_id.clone(),
        name,
        description: Some(dag.description.clone()),
        owners: dag.owners.clone(),
        tags: dag.tags.clone(),
        schedule: dag.schedule.clone(),
        is_paused: dag.paused,
        is_active: dag.active,
        provider_metadata,
        synced_at: now,
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

/// A run slot: logical date and run type (`scheduled` or `manual`).
pub(crate) type Slot = (DateTime<Utc>, &'static str);

/// Where `days` of history start, aligned to the schedule (daily DAGs at midnight, hourly
/// ones on the hour).
pub(crate) fn history_start(
    now: DateTime<Utc>,
    days: i64,
    every_minutes: Option<i64>,
) -> DateTime<Utc> {
    let grid = Duration::minutes(every_minutes.unwrap_or(60).min(1440));
    (now - Duration::days(days))
        .duration_trunc(grid)
        .unwrap_or(now)
}

/// The scheduled slots from `first`, every `every` minutes, whose data interval ends by `end`.
pub(crate) fn scheduled_slots(
    slots: &mut Vec<Slot>,
    first: DateTime<Utc>,
    every: i64,
    end: DateTime<Utc>,
) {
    let mut at = first;
    while at + Duration::minutes(every) <= end {
        slots.push((at, "scheduled"));
        at += Duration::minutes(every);
    }
}

/// A manual run at a random minute between `start` and `end`.
pub(crate) fn manual_slot(start: DateTime<Utc>, end: DateTime<Utc>, rng: &mut StdRng) -> Slot {
    let minutes = rng.random_range(0..(end - start).num_minutes().max(1));
    (start + Duration::minutes(minutes), "manual")
}

/// The runs of `dag` at the (sorted) `slots`: failed at the DAG's rate (and the last three
/// when it is failing now), slow at its rate.
pub(crate) fn runs(
    dag: &Dag,
    pipeline: &Pipeline,
    slots: Vec<Slot>,
    unstarted: Unstarted,
    now: DateTime<Utc>,
    rng: &mut StdRng,
) -> Vec<RunWithTasks> {
    let count = slots.len();
    slots
        .into_iter()
        .enumerate()
        .map(|(position, (logical, run_type))| {
            let from_end = count - position;
            let failed = (dag.failing_now && from_end <= 3) || rng.random_bool(dag.failure_rate);
            let slow = rng.random_bool(dag.slow_rate);
            let run = RunPlan {
                logical,
                run_type,
                failed,
                slow,
                unstarted,
            };
            build_run(dag, pipeline, run, now, rng)
        })
        .collect()
}

/// What is decided about one run before its tasks are.
struct RunPlan {
    logical: DateTime<Utc>,
    run_type: &'static str,
    failed: bool,
    slow: bool,
    unstarted: Unstarted,
}

/// One run and its task tries: the failing task (if any) is retried once and fails, the tasks
/// after it are `upstream_failed`; a try that would end after `now` is still running.
fn build_run(
    dag: &Dag,
    pipeline: &Pipeline,
    plan: RunPlan,
    now: DateTime<Utc>,
    rng: &mut StdRng,
) -> RunWithTasks {
    let RunPlan {
        logical,
        run_type,
        failed: outcome_failed,
        slow,
        unstarted,
    } = plan;
    let interval = Duration::minutes(dag.every_minutes.unwrap_or(60));
    // Scheduled runs start once their data interval has ended; manual runs right away.
    let queued = if run_type == "scheduled" {
        logical + interval
    } else {
        logical
    } + Duration::seconds(rng.random_range(1..20));
    let started = queued + Duration::seconds(rng.random_range(1..15));
    let dag_run_id = format!("{run_type}__{}", logical.format("%Y-%m-%dT%H:%M:%S+00:00"));
    let run_id = ids::run_id(pipeline.id, &dag_run_id);
    let factor = if slow {
        rng.random_range(2.5..4.0)
    } else {
        1.0
    };
    let failing_task = outcome_failed.then(|| rng.random_range(0..dag.tasks.len()));
    let parallel = dag.parallel.max(1);

    let mut task_runs = Vec::new();
    let mut cursor = started;
    let mut still_running = false;
    let mut failed = false;
    for (position, task) in dag.tasks.iter().enumerate() {
        let try_of = |status: &str, try_number, started_at, ended_at| {
            task_run(
                pipeline, run_id, task, status, try_number, started_at, ended_at,
            )
        };
        if failed {
            task_runs.push(try_of("upstream_failed", 1, None, None));
            continue;
        }
        // The failing task is retried once; a few others need a second try too.
        let tries = if failing_task == Some(position)
            || (dag.retry_rate > 0.0 && rng.random_bool(dag.retry_rate))
        {
            2
        } else {
            1
        };
        for try_number in 1..=tries {
            let seconds = (task.seconds as f64 * factor * rng.random_range(0.85..1.15)).max(1.0);
            let begin = cursor + Duration::seconds(rng.random_range(1..5));
            let finish = begin + Duration::milliseconds((seconds * 1000.0) as i64);
            if finish > now {
                // Still in flight now.
                task_runs.push(try_of("running", try_number, Some(begin), None));
                still_running = true;
                break;
            }
            let last_try = try_number == tries;
            let status = match (failing_task == Some(position), last_try) {
                (true, true) => "failed",
                (_, false) => "up_for_retry",
                (false, true) => "success",
            };
            task_runs.push(try_of(status, try_number, Some(begin), Some(finish)));
            // Side-by-side tasks start together, the next group after the group's last.
            if position % parallel == parallel - 1 {
                cursor = finish
                    + if last_try {
                        Duration::zero()
                    } else {
                        Duration::seconds(60)
                    };
            }
        }
        if still_running {
            if unstarted == Unstarted::Listed {
                // Tasks after the running one have not started yet.
                for later in &dag.tasks[position + 1..] {
                    task_runs.push(task_run(
                        pipeline,
                        run_id,
                        later,
                        "scheduled",
                        0,
                        None,
                        None,
                    ));
                }
            }
            break;
        }
        if failing_task == Some(position) {
            failed = true;
        }
    }
    let finished_at = task_runs
        .iter()
        .filter_map(|t| t.ended_at)
        .max()
        .unwrap_or(cursor)
        + Duration::seconds(1);
    let (status, ended_at) = if still_running {
        (RunStatus::Running, None)
    } else if failed {
        (RunStatus::Failed, Some(finished_at))
    } else {
        (RunStatus::Success, Some(finished_at))
    };
    let run = Run {
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
        // The DAG-run fields Airflow reports.
        provider_metadata: json!({
            "conf": {},
            "data_interval_start": logical,
            "data_interval_end": logical + interval,
            "run_after": queued,
            "triggered_by": if run_type == "scheduled" { "timetable" } else { "rest_api" },
        }),
        synced_at: now,
    };
    RunWithTasks { run, task_runs }
}

/// One try of an unmapped task as a sync stores it.
fn task_run(
    pipeline: &Pipeline,
    run_id: Uuid,
    task: &Task,
    status: &str,
    try_number: u32,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
) -> TaskRun {
    TaskRun {
        id: ids::task_run_id(run_id, &task.id, -1, try_number),
        space_id: pipeline.space_id,
        pipeline_id: pipeline.id,
        run_id,
        task_id: task.id.clone(),
        display_name: Some(task.id.replace('_', " ")),
        operator: Some(task.operator.to_string()),
        status: status.to_string(),
        try_number,
        map_index: -1,
        started_at,
        ended_at,
        longer_than_usual: false,
    }
}
