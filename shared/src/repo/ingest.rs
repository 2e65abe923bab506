//! The write path for mirrored runs: used by the Airflow sync and the demo loader alike.
//!
//! For one pipeline, runs are merged into the pipeline's run series, each run and task-run try
//! gets its `longer_than_usual` flag against the history *before* it, and the pipeline's
//! latest/last-success/last-failure references move forward. Items are written runs first,
//! summaries last, so an interrupted ingest leaves summaries at worst behind the runs, and
//! re-ingesting the same runs (idempotent: ids are deterministic) brings them level.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::pipelines::{decode_series, series_item};
use super::{Repository, from_item, json, to_item};
use crate::domain::model::{Pipeline, Run, RunRef, RunStatus, TaskRun};
use crate::domain::summary::{RunSample, RunSeries, TaskHistory};
use crate::error::{Error, Result};
use crate::keys;
use crate::store::{BatchOp, Condition, Item, Key, StoreError, Update};

#[derive(Debug, Clone)]
pub struct RunWithTasks {
    pub run: Run,
    pub task_runs: Vec<TaskRun>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub runs: usize,
    pub task_runs: usize,
}

const TASK_HISTORY_ATTR: &str = "history";
const TASK_HISTORY_PREFIX: &str = "TASKHIST#";

impl Repository {
    /// Writes runs of one pipeline (with any task runs given) and brings its summaries up to
    /// date. The pipeline must exist (its metadata is written first by
    /// [`Repository::upsert_pipeline_metadata`]).
    pub async fn ingest_runs(
        &self,
        pipeline: &Pipeline,
        mut runs: Vec<RunWithTasks>,
        now: DateTime<Utc>,
    ) -> Result<IngestReport> {
        if runs.is_empty() {
            return Ok(IngestReport::default());
        }
        runs.sort_by_key(|r| (r.run.at(), r.run.id));
        let pipeline_key = keys::pipeline(pipeline.space_id, pipeline.id);
        let series_key = keys::run_series(pipeline.id);
        let task_ids = runs
            .iter()
            .flat_map(|r| r.task_runs.iter().map(|t| t.task_id.as_str()));
        let mut wanted = vec![pipeline_key.clone(), series_key.clone()];
        wanted.extend(history_keys(pipeline, task_ids));

        let mut current: Option<Pipeline> = None;
        let mut series = RunSeries::default();
        let mut histories = HashMap::new();
        for item in self.table.batch_get(&wanted).await? {
            let Some(key) = Key::of(&item) else { continue };
            if key == pipeline_key {
                current = Some(from_item(item)?);
            } else if key == series_key {
                series = decode_series(&item)?;
            } else if let Some((task_id, history)) = decode_history(&key, &item)? {
                histories.insert(task_id, history);
            }
        }
        let current = current.ok_or(Error::NotFound("Pipeline not found"))?;
        let mut latest = current.latest_run.clone();
        let mut last_success = current.last_success.clone();
        let mut last_failure = current.last_failure.clone();

        let mut writes = Vec::new();
        let mut report = IngestReport::default();
        for RunWithTasks {
            mut run,
            mut task_runs,
        } in runs
        {
            let sample = RunSample::of(&run);
            run.longer_than_usual = series.is_longer_than_usual(&sample);
            series.upsert(sample);
            for task_run in &mut task_runs {
                writes.push(flag_and_record(&mut histories, task_run, run.at())?);
            }
            report.task_runs += task_runs.len();

            let this = run.as_ref();
            advance(&mut latest, &this);
            track_outcome(&mut last_success, &this, RunStatus::Success);
            track_outcome(&mut last_failure, &this, RunStatus::Failed);
            writes.push(BatchOp::Put(to_item(
                &run,
                "run",
                keys::run(run.id),
                Some(keys::run_gsi1(run.pipeline_id, run.at(), run.id)),
            )?));
            report.runs += 1;
        }
        // A success or failure that flipped (a cleared run) falls back to the series.
        for (slot, status) in [
            (&mut last_success, RunStatus::Success),
            (&mut last_failure, RunStatus::Failed),
        ] {
            if slot.is_none() {
                *slot = series.latest_with_status(status).map(|(at, ended)| RunRef {
                    id: uuid::Uuid::nil(),
                    status,
                    at,
                    started_at: Some(at),
                    ended_at: Some(ended),
                });
            }
        }
        series.prune(now);

        self.table.batch_write(writes).await?;
        let mut summaries = vec![BatchOp::Put(series_item(pipeline, &series))];
        summaries.extend(history_items(pipeline, &histories)?);
        self.table.batch_write(summaries).await?;
        let update = Update::new()
            .set_or_remove("latest_run", json(&latest)?)
            .set_or_remove("last_success", json(&last_success)?)
            .set_or_remove("last_failure", json(&last_failure)?);
        match self
            .table
            .update(&pipeline_key, update, Some(Condition::Exists))
            .await
        {
            Ok(_) => Ok(report),
            Err(StoreError::ConditionFailed) => Err(Error::NotFound("Pipeline not found")),
            Err(other) => Err(other.into()),
        }
    }

    /// Writes task-run tries of one pipeline whose runs are stored already (the sync reads task
    /// instances separately from runs), flagging unusual durations against each task's history.
    pub async fn ingest_task_runs(
        &self,
        pipeline: &Pipeline,
        mut task_runs: Vec<TaskRun>,
    ) -> Result<usize> {
        if task_runs.is_empty() {
            return Ok(0);
        }
        task_runs.sort_by_key(|t| (t.started_at, t.id));
        let wanted = history_keys(pipeline, task_runs.iter().map(|t| t.task_id.as_str()));
        let mut histories = HashMap::new();
        for item in self.table.batch_get(&wanted).await? {
            let Some(key) = Key::of(&item) else { continue };
            if let Some((task_id, history)) = decode_history(&key, &item)? {
                histories.insert(task_id, history);
            }
        }
        let mut writes = Vec::with_capacity(task_runs.len());
        for task_run in &mut task_runs {
            let at = task_run.started_at.unwrap_or_else(Utc::now);
            writes.push(flag_and_record(&mut histories, task_run, at)?);
        }
        self.table.batch_write(writes).await?;
        self.table
            .batch_write(history_items(pipeline, &histories)?)
            .await?;
        Ok(task_runs.len())
    }
}

fn history_keys<'a>(pipeline: &Pipeline, task_ids: impl Iterator<Item = &'a str>) -> Vec<Key> {
    let mut task_ids: Vec<&str> = task_ids.collect();
    task_ids.sort_unstable();
    task_ids.dedup();
    task_ids
        .into_iter()
        .map(|task| keys::task_history(pipeline.id, task))
        .collect()
}

/// Sets a try's `longer_than_usual` against its task's earlier successful tries, records it in
/// the history if it succeeded, and returns its write.
fn flag_and_record(
    histories: &mut HashMap<String, TaskHistory>,
    task_run: &mut TaskRun,
    run_at: DateTime<Utc>,
) -> Result<BatchOp> {
    let history = histories.entry(task_run.task_id.clone()).or_default();
    let at = task_run.started_at.unwrap_or(run_at).timestamp();
    task_run.longer_than_usual = match task_run.duration() {
        Some(seconds) if matches!(task_run.status.as_str(), "success" | "failed") => {
            history.is_longer_than_usual(at, seconds)
        }
        _ => false,
    };
    if let (Some(seconds), "success") = (task_run.duration(), task_run.status.as_str()) {
        history.record_success(at, seconds);
    }
    Ok(BatchOp::Put(to_item(
        &*task_run,
        "task_run",
        keys::task_run(
            task_run.run_id,
            &task_run.task_id,
            task_run.map_index,
            task_run.try_number,
        ),
        Some(keys::task_run_gsi1(task_run.id)),
    )?))
}

fn decode_history(key: &Key, item: &Item) -> Result<Option<(String, TaskHistory)>> {
    let Some(task_id) = key.sk.strip_prefix(TASK_HISTORY_PREFIX) else {
        return Ok(None);
    };
    let history = item
        .get(TASK_HISTORY_ATTR)
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(Error::internal)?
        .unwrap_or_default();
    Ok(Some((task_id.to_string(), history)))
}

fn history_items(
    pipeline: &Pipeline,
    histories: &HashMap<String, TaskHistory>,
) -> Result<Vec<BatchOp>> {
    histories
        .iter()
        .map(|(task_id, history)| {
            let key = keys::task_history(pipeline.id, task_id);
            let mut item = Item::new();
            item.insert("PK".into(), key.pk.into());
            item.insert("SK".into(), key.sk.into());
            item.insert("kind".into(), "task_history".into());
            item.insert(TASK_HISTORY_ATTR.into(), json(history)?);
            Ok(BatchOp::Put(item))
        })
        .collect()
}

/// Moves `slot` to `run` if the run is newer, or refreshes it if it is the same run.
fn advance(slot: &mut Option<RunRef>, run: &RunRef) {
    let newer = match slot {
        None => true,
        Some(current) => current.id == run.id || (run.at, run.id) >= (current.at, current.id),
    };
    if newer {
        *slot = Some(run.clone());
    }
}

/// Keeps the newest run with `status` in `slot`; clears it when that run changed status.
fn track_outcome(slot: &mut Option<RunRef>, run: &RunRef, status: RunStatus) {
    if run.status == status {
        advance(slot, run);
    } else if slot.as_ref().is_some_and(|current| current.id == run.id) {
        *slot = None;
    }
}
