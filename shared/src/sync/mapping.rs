//! Airflow objects → platform records. Ids are deterministic (see `domain::ids`), so mapping
//! the same Airflow object twice gives the same record.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::airflow::{Dag, DagRun, TaskInstance};
use crate::domain::ids;
use crate::domain::model::{Connector, Pipeline, Provider, Run, RunStatus, TaskRun};

/// DAG fields that change without the DAG changing (parsing bookkeeping, next schedule):
/// left out of the stored metadata so an idle DAG is not rewritten by every sync.
const VOLATILE_DAG_FIELDS: &[&str] = &[
    "last_expired",
    "last_parse_duration",
    "last_parsed_time",
    "last_pickled",
    "file_token",
    "next_dagrun",
    "next_dagrun_create_after",
    "next_dagrun_data_interval_start",
    "next_dagrun_data_interval_end",
    "next_dagrun_logical_date",
    "next_dagrun_run_after",
];

/// DAG run fields that move while nothing a user sees changes.
const VOLATILE_RUN_FIELDS: &[&str] = &["last_scheduling_decision", "updated_at"];

fn without(raw: &Value, volatile: &[&str]) -> Value {
    match raw {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !volatile.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The pipeline a DAG is, with no platform-owned fields (the sync never writes those).
pub fn pipeline(dag: &Dag, connector: &Connector, now: DateTime<Utc>) -> Pipeline {
    Pipeline {
        id: ids::pipeline_id(connector.id, &dag.dag_id),
        space_id: connector.space_id,
        connector_id: connector.id,
        provider: Provider::Airflow,
        dag_id: dag.dag_id.clone(),
        name: dag
            .display_name
            .clone()
            .unwrap_or_else(|| dag.dag_id.clone()),
        description: dag.description.clone(),
        owners: dag.owners.clone(),
        tags: dag.tags.clone(),
        schedule: dag.schedule.clone(),
        is_paused: dag.is_paused,
        is_active: dag.is_active,
        provider_metadata: without(&dag.raw, VOLATILE_DAG_FIELDS),
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

/// Whether the Airflow-owned fields of two pipelines agree (so no write is needed).
pub fn same_airflow_fields(a: &Pipeline, b: &Pipeline) -> bool {
    a.dag_id == b.dag_id
        && a.name == b.name
        && a.description == b.description
        && a.owners == b.owners
        && a.tags == b.tags
        && a.schedule == b.schedule
        && a.is_paused == b.is_paused
        && a.is_active == b.is_active
        && a.provider_metadata == b.provider_metadata
}

/// Airflow's DAG run state as a run status; `None` for a state this API does not know yet.
pub fn run_status(state: &str) -> Option<RunStatus> {
    RunStatus::ALL.into_iter().find(|s| s.as_str() == state)
}

/// The run a DAG run is, or `None` when its state is unknown (reported as a warning).
pub fn run(dag_run: &DagRun, pipeline: &Pipeline, now: DateTime<Utc>) -> Option<Run> {
    Some(Run {
        id: ids::run_id(pipeline.id, &dag_run.dag_run_id),
        space_id: pipeline.space_id,
        pipeline_id: pipeline.id,
        dag_id: dag_run.dag_id.clone(),
        dag_run_id: dag_run.dag_run_id.clone(),
        status: run_status(&dag_run.state)?,
        run_type: dag_run.run_type.clone(),
        logical_date: dag_run.logical_date,
        queued_at: dag_run.queued_at,
        started_at: dag_run.start_date,
        ended_at: dag_run.end_date,
        longer_than_usual: false,
        note: dag_run.note.clone(),
        provider_metadata: without(&dag_run.raw, VOLATILE_RUN_FIELDS),
        synced_at: now,
    })
}

/// One try of a task instance.
pub fn task_run(ti: &TaskInstance, pipeline: &Pipeline) -> TaskRun {
    let run_id = ids::run_id(pipeline.id, &ti.dag_run_id);
    TaskRun {
        id: ids::task_run_id(run_id, &ti.task_id, ti.map_index, ti.try_number),
        space_id: pipeline.space_id,
        pipeline_id: pipeline.id,
        run_id,
        task_id: ti.task_id.clone(),
        display_name: ti.task_display_name.clone(),
        operator: ti.operator.clone(),
        // Airflow leaves the state null until the scheduler sets one.
        status: ti.state.clone().unwrap_or_else(|| "none".to_string()),
        try_number: ti.try_number,
        map_index: ti.map_index,
        started_at: ti.start_date,
        ended_at: ti.end_date,
        longer_than_usual: false,
    }
}
