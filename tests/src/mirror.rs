//! Checks of what the store holds against what it must hold: a connector's mirror against the
//! fake Airflow, object by object and field by field, and every pipeline's derived summaries
//! (run series, latest/last-success/last-failure references) against its stored runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use shared::domain::ids;
use shared::domain::model::{Connector, Pipeline, Run, RunRef, RunStatus, TaskRun};
use shared::domain::summary::{HISTORY_DAYS, RunSample};
use shared::repo::Repository;

use crate::fake_airflow::AirflowState;

/// How many objects a check compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorCounts {
    pub pipelines: usize,
    pub runs: usize,
    pub task_runs: usize,
}

/// What a pipeline must look like, from the fake's DAG.
#[derive(Debug, PartialEq)]
struct ExpectedPipeline {
    name: String,
    description: Option<String>,
    owners: Vec<String>,
    tags: Vec<String>,
    schedule: Option<String>,
    is_paused: bool,
    is_active: bool,
    fileloc: Option<String>,
}

/// What a run must look like, from the fake's DAG run (the fake serves `start_date` as the
/// logical date and queue time too).
#[derive(Debug, PartialEq)]
struct ExpectedRun {
    status: String,
    run_type: String,
    logical_date: Option<DateTime<Utc>>,
    queued_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    note: Option<String>,
}

/// What a task-run try must look like.
#[derive(Debug, PartialEq)]
struct ExpectedTry {
    id: uuid::Uuid,
    status: String,
    display_name: Option<String>,
    operator: Option<String>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

type TryKey = (String, String, String, i64, u32);

/// Asserts that the connector's mirror is exactly the fake Airflow's state: the same number of
/// pipelines, runs and task-run tries, each with the fields the fake serves, and consistent
/// summaries. Returns the counts compared.
pub async fn assert_mirrors_airflow(
    repo: &Repository,
    connector: &Connector,
    airflow: &AirflowState,
    context: &str,
) -> MirrorCounts {
    let expected_pipelines: BTreeMap<String, ExpectedPipeline> = airflow
        .dags
        .iter()
        .map(|(dag_id, (paused, stale, owner))| {
            (
                dag_id.clone(),
                ExpectedPipeline {
                    name: dag_id.clone(),
                    description: Some(format!("{dag_id} description")),
                    owners: vec![owner.clone()],
                    tags: vec!["fake".into()],
                    schedule: Some("@daily".into()),
                    is_paused: *paused,
                    is_active: !*stale,
                    fileloc: Some(format!("/dags/{dag_id}.py")),
                },
            )
        })
        .collect();
    let mut expected_runs = BTreeMap::new();
    for run in &airflow.runs {
        expected_runs.insert(
            (run.dag_id.clone(), run.dag_run_id.clone()),
            ExpectedRun {
                status: run.state.clone(),
                run_type: run.run_type.clone(),
                logical_date: run.start_date,
                queued_at: run.start_date,
                started_at: run.start_date,
                ended_at: run.end_date,
                note: None,
            },
        );
    }
    let mut expected_tries: BTreeMap<TryKey, ExpectedTry> = BTreeMap::new();
    for ti in &airflow.task_instances {
        let pipeline_id = ids::pipeline_id(connector.id, &ti.dag_id);
        let run_id = ids::run_id(pipeline_id, &ti.dag_run_id);
        for attempt in &ti.tries {
            expected_tries.insert(
                (
                    ti.dag_id.clone(),
                    ti.dag_run_id.clone(),
                    ti.task_id.clone(),
                    ti.map_index,
                    attempt.try_number,
                ),
                ExpectedTry {
                    id: ids::task_run_id(run_id, &ti.task_id, ti.map_index, attempt.try_number),
                    status: attempt.state.clone().unwrap_or_else(|| "none".into()),
                    display_name: Some(ti.task_id.clone()),
                    operator: Some("BashOperator".into()),
                    started_at: attempt.start_date,
                    ended_at: attempt.end_date,
                },
            );
        }
    }

    let pipelines: Vec<Pipeline> = repo
        .list_pipelines(connector.space_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.connector_id == connector.id)
        .collect();
    let stored_pipelines: BTreeMap<String, ExpectedPipeline> = pipelines
        .iter()
        .map(|p| {
            assert_eq!(
                p.id,
                ids::pipeline_id(connector.id, &p.dag_id),
                "{context}: pipeline id"
            );
            (
                p.dag_id.clone(),
                ExpectedPipeline {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    owners: p.owners.clone(),
                    tags: p.tags.clone(),
                    schedule: p.schedule.clone(),
                    is_paused: p.is_paused,
                    is_active: p.is_active,
                    fileloc: p.provider_metadata["fileloc"].as_str().map(str::to_string),
                },
            )
        })
        .collect();
    assert_eq!(
        stored_pipelines, expected_pipelines,
        "{context}: pipelines, field by field"
    );

    let mut stored_runs = BTreeMap::new();
    let mut stored_tries: BTreeMap<TryKey, ExpectedTry> = BTreeMap::new();
    for pipeline in &pipelines {
        let runs = repo
            .list_runs(pipeline.space_id, pipeline.id, None, None)
            .await
            .unwrap();
        for run in &runs {
            assert_eq!(
                run.id,
                ids::run_id(pipeline.id, &run.dag_run_id),
                "{context}: run id"
            );
            assert_eq!(
                (run.space_id, run.dag_id.as_str()),
                (pipeline.space_id, pipeline.dag_id.as_str())
            );
            let (_, task_runs) = repo
                .get_run_with_task_runs(pipeline.space_id, run.id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{context}: run {} listed but not stored", run.id));
            for t in task_runs {
                assert_eq!(
                    (t.run_id, t.pipeline_id, t.space_id),
                    (run.id, pipeline.id, pipeline.space_id),
                    "{context}: task run {} belongs to its run",
                    t.id
                );
                let key = (
                    pipeline.dag_id.clone(),
                    run.dag_run_id.clone(),
                    t.task_id.clone(),
                    t.map_index,
                    t.try_number,
                );
                let previous = stored_tries.insert(key, stored_try(&t));
                assert!(previous.is_none(), "{context}: duplicate try {}", t.id);
            }
            stored_runs.insert(
                (pipeline.dag_id.clone(), run.dag_run_id.clone()),
                ExpectedRun {
                    status: run.status.as_str().to_string(),
                    run_type: run.run_type.clone(),
                    logical_date: run.logical_date,
                    queued_at: run.queued_at,
                    started_at: run.started_at,
                    ended_at: run.ended_at,
                    note: run.note.clone(),
                },
            );
        }
    }
    assert_eq!(
        stored_runs.len(),
        expected_runs.len(),
        "{context}: number of runs"
    );
    assert_eq!(
        stored_runs, expected_runs,
        "{context}: runs, field by field"
    );
    assert_eq!(
        stored_tries.len(),
        expected_tries.len(),
        "{context}: number of task-run tries"
    );
    assert_eq!(
        stored_tries, expected_tries,
        "{context}: task-run tries, field by field"
    );
    assert_summaries_match_runs(repo, &pipelines, context).await;
    MirrorCounts {
        pipelines: stored_pipelines.len(),
        runs: stored_runs.len(),
        task_runs: stored_tries.len(),
    }
}

fn stored_try(t: &TaskRun) -> ExpectedTry {
    ExpectedTry {
        id: t.id,
        status: t.status.clone(),
        display_name: t.display_name.clone(),
        operator: t.operator.clone(),
        started_at: t.started_at,
        ended_at: t.ended_at,
    }
}

/// Asserts that each pipeline's run series holds exactly one sample per stored run of the
/// history window, equal to what the run says, and that its latest / last-success /
/// last-failure references are the newest such runs. Returns the number of runs checked.
pub async fn assert_summaries_match_runs(
    repo: &Repository,
    pipelines: &[Pipeline],
    context: &str,
) -> usize {
    let ids: Vec<uuid::Uuid> = pipelines.iter().map(|p| p.id).collect();
    let mut series = repo.series_for(&ids).await.unwrap();
    let horizon = Utc::now() - chrono::Duration::days(HISTORY_DAYS);
    let mut checked = 0;
    for listed in pipelines {
        // The references as stored now (the listed copy may be older).
        let pipeline = repo
            .get_pipeline(listed.space_id, listed.id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{context}: pipeline {} vanished", listed.id));
        let runs: Vec<Run> = repo
            .list_runs(pipeline.space_id, pipeline.id, None, None)
            .await
            .unwrap();
        checked += runs.len();
        let mut expected: Vec<RunSample> = runs
            .iter()
            .filter(|r| r.at() >= horizon)
            .map(RunSample::of)
            .collect();
        expected.sort_by_key(|s| (s.at, s.key));
        let stored = series
            .remove(&pipeline.id)
            .map(|s| s.samples().to_vec())
            .unwrap_or_default();
        assert_eq!(
            stored,
            expected,
            "{context}: the run series of pipeline {} ({}) matches its {} runs",
            pipeline.id,
            pipeline.dag_id,
            runs.len()
        );
        let newest = |status: Option<RunStatus>| {
            runs.iter()
                .filter(|r| status.is_none_or(|s| r.status == s))
                .max_by_key(|r| (r.at(), r.id))
                .map(Run::as_ref)
        };
        assert_ref(
            &pipeline.latest_run,
            newest(None),
            context,
            &pipeline,
            "latest run",
        );
        assert_ref(
            &pipeline.last_success,
            newest(Some(RunStatus::Success)),
            context,
            &pipeline,
            "last success",
        );
        assert_ref(
            &pipeline.last_failure,
            newest(Some(RunStatus::Failed)),
            context,
            &pipeline,
            "last failure",
        );
    }
    checked
}

fn assert_ref(
    stored: &Option<RunRef>,
    expected: Option<RunRef>,
    context: &str,
    pipeline: &Pipeline,
    what: &str,
) {
    let comparable = |r: &RunRef| (r.id, r.status, r.at, r.started_at, r.ended_at);
    assert_eq!(
        stored.as_ref().map(comparable),
        expected.as_ref().map(comparable),
        "{context}: {what} of pipeline {} ({})",
        pipeline.id,
        pipeline.dag_id
    );
}
