//! The write path for mirrored runs: used by the Airflow sync, the trigger and the demo loader.
//!
//! For one pipeline, runs are merged into the pipeline's run series, each run and task-run try
//! gets its `longer_than_usual` flag against the history *before* it, and the pipeline's
//! latest/last-success/last-failure references move forward.
//!
//! Crash safety: runs are written in transactions of at most [`MAX_TRANSACTION_OPS`]
//! operations, each holding a group of runs (with their task runs), the run series as it is
//! once those runs are in, the pipeline's references, and the task histories the group
//! touched. Whenever the process dies, the summaries therefore describe exactly the runs that
//! are stored: a sync that resumes afterwards finds a stored run unchanged and skips it, so it
//! could never repair a series left behind its runs. (Task-run tries the sync reads later are
//! plain batch writes: see [`Repository::ingest_task_runs`].)
//!
//! Concurrency: the series item carries a revision, and each transaction requires the revision
//! it read, so two ingests of one pipeline at once (a trigger during a sync) cannot lose each
//! other's runs from the series: the loser reads again and redoes its (idempotent) work.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::listing::ListingChange;
use super::pipelines::{REVISION_ATTR, decode_series, series_item};
use super::{Repository, from_item, json, to_item};
use crate::domain::events::{self, Event};
use crate::domain::model::{Pipeline, Run, RunRef, RunStatus, TaskRun};
use crate::domain::summary::{RunSample, RunSeries, TaskHistory, run_key};
use crate::error::{Error, Result};
use crate::keys;
use crate::store::{
    BatchOp, Condition, Item, Key, MAX_TRANSACTION_OPS, StoreError, TransactOp, Update,
};

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
/// The series item's revision: every ingest transaction requires the one it read.
const SERIES_REVISION_ATTR: &str = "revision";
/// Tries of an ingest that keeps meeting a concurrent ingest of the same pipeline.
const INGEST_ATTEMPTS: u32 = 5;
/// Operations of a transaction left for the series, the pipeline's references and its
/// listing entry.
const FIXED_OPS: usize = 3;
/// Operations a run's event takes (the event and its outbox entry; a run makes at most one
/// transition per ingest).
const EVENT_OPS: usize = 2;

/// Why one attempt of an ingest stopped.
enum Stop {
    /// The series changed since it was read (or the transaction met another): read again.
    Contended,
    /// This event is stored already (its transition was recorded before): go again without it.
    EventExists(Uuid),
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Failed(error)
    }
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Stop::Failed(error.into())
    }
}

/// A short jittered pause before an ingest reads again.
async fn back_off(attempt: u32) {
    let millis = 5u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(rand::random_range(
        millis / 2..=millis,
    )))
    .await;
}

fn put(item: Item) -> TransactOp {
    TransactOp::Put {
        item,
        condition: None,
    }
}

/// Groups consecutive runs so that each group's writes (a run, its task runs, at worst one
/// history per task run, and the run's event if it has one) fit in one transaction beside the
/// series and the references. A run with more task runs than that forms a group of its own.
fn groups(runs: Vec<RunWithTasks>, events: &HashMap<Uuid, Event>) -> Vec<Vec<RunWithTasks>> {
    let budget = MAX_TRANSACTION_OPS - FIXED_OPS;
    let mut groups: Vec<Vec<RunWithTasks>> = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for run in runs {
        let event_ops = if events.contains_key(&run.run.id) {
            EVENT_OPS
        } else {
            0
        };
        let needed = 1 + event_ops + 2 * run.task_runs.len();
        if !current.is_empty() && used + needed > budget {
            groups.push(std::mem::take(&mut current));
            used = 0;
        }
        used += needed;
        current.push(run);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

impl Repository {
    /// Writes runs of one pipeline (with any task runs given) and brings its summaries up to
    /// date. The pipeline must exist (its metadata is written first by
    /// [`Repository::upsert_pipeline_metadata`]).
    pub async fn ingest_runs(
        &self,
        pipeline: &Pipeline,
        runs: Vec<RunWithTasks>,
        now: DateTime<Utc>,
    ) -> Result<IngestReport> {
        self.ingest_runs_detecting(pipeline, runs, now, false).await
    }

    /// [`Repository::ingest_runs`], and with `detect`, the runs' transitions (`run_failed`,
    /// `run_recovered`) are stored as events in the transaction of their run's group: exactly
    /// once, whatever crashes or retries (`domain::events`). The sync detects; the trigger
    /// (its run is queued) and loading history (a connector's first sync) do not.
    pub async fn ingest_runs_detecting(
        &self,
        pipeline: &Pipeline,
        mut runs: Vec<RunWithTasks>,
        now: DateTime<Utc>,
        detect: bool,
    ) -> Result<IngestReport> {
        if runs.is_empty() {
            return Ok(IngestReport::default());
        }
        runs.sort_by_key(|r| (r.run.at(), r.run.id));
        let outcome = self
            .ingest_runs_with_retries(pipeline, runs, now, detect)
            .await;
        // Whatever the outcome, some groups may have been committed (each updates the
        // pipeline item's run references): cached listings of the space must be re-read.
        let bumped = self
            .bump_listing_version(pipeline.space_id, Some(ListingChange::Entry(pipeline.id)))
            .await;
        let report = outcome?;
        bumped?;
        Ok(report)
    }

    async fn ingest_runs_with_retries(
        &self,
        pipeline: &Pipeline,
        runs: Vec<RunWithTasks>,
        now: DateTime<Utc>,
        detect: bool,
    ) -> Result<IngestReport> {
        let mut attempt = 1;
        // Events found stored already: not written again (bounded by the runs' count).
        let mut stored_events = HashSet::new();
        loop {
            let detect = detect.then_some(&stored_events);
            match self
                .ingest_runs_once(pipeline, runs.clone(), now, detect)
                .await
            {
                Ok(report) => return Ok(report),
                Err(Stop::Failed(error)) => return Err(error),
                Err(Stop::EventExists(id)) => {
                    stored_events.insert(id);
                }
                Err(Stop::Contended) if attempt < INGEST_ATTEMPTS => {
                    back_off(attempt).await;
                    attempt += 1;
                }
                Err(Stop::Contended) => {
                    return Err(StoreError::Unavailable(
                        "the pipeline's run series kept changing during the ingest".into(),
                    )
                    .into());
                }
            }
        }
    }

    async fn ingest_runs_once(
        &self,
        pipeline: &Pipeline,
        runs: Vec<RunWithTasks>,
        now: DateTime<Utc>,
        detect: Option<&HashSet<Uuid>>,
    ) -> Result<IngestReport, Stop> {
        let pipeline_key = keys::pipeline(pipeline.space_id, pipeline.id);
        let series_key = keys::run_series(pipeline.id);
        let task_ids = runs
            .iter()
            .flat_map(|r| r.task_runs.iter().map(|t| t.task_id.as_str()));
        let mut wanted = vec![pipeline_key.clone(), series_key.clone()];
        wanted.extend(history_keys(pipeline, task_ids));

        let mut current: Option<Pipeline> = None;
        let mut series = RunSeries::default();
        // None: no series item yet; Some(None): one written before revisions existed.
        let mut revision: Option<Option<u64>> = None;
        let mut histories = HashMap::new();
        for item in self.table.batch_get(&wanted).await? {
            let Some(key) = Key::of(&item) else { continue };
            if key == pipeline_key {
                current = Some(from_item(item)?);
            } else if key == series_key {
                series = decode_series(&item)?;
                revision = Some(item.get(SERIES_REVISION_ATTR).and_then(|v| v.as_u64()));
            } else if let Some((task_id, history)) = decode_history(&key, &item)? {
                histories.insert(task_id, history);
            }
        }
        let current = current.ok_or(Error::NotFound("Pipeline not found"))?;
        self.take_back_folded(&mut series, &runs).await?;
        let mut latest = current.latest_run.clone();
        let mut last_success = current.last_success.clone();
        let mut last_failure = current.last_failure.clone();

        let mut report = IngestReport::default();
        // The runs' transitions, against the series as each run finds it (runs go in time
        // order): found before grouping, so a group has room for exactly its events.
        let mut run_events: HashMap<Uuid, Event> = HashMap::new();
        if let Some(stored_events) = detect {
            let mut before = series.clone();
            for RunWithTasks { run, .. } in &runs {
                if let Some(event) = events::run_transition(&current, &before, run, now)
                    // An event older than the retention would be gone at once (old history).
                    && event.occurred_at + self.event_retention > now
                    && !stored_events.contains(&event.id)
                {
                    run_events.insert(run.id, event);
                }
                before.upsert(RunSample::of(run));
            }
        }
        for group in groups(runs, &run_events) {
            let mut writes = Vec::new();
            let mut group_events: Vec<Event> = Vec::new();
            let mut touched = HashSet::new();
            for RunWithTasks {
                mut run,
                mut task_runs,
            } in group
            {
                if let Some(event) = run_events.remove(&run.id) {
                    group_events.push(event);
                }
                let sample = RunSample::of(&run);
                run.longer_than_usual = series.is_longer_than_usual(&sample);
                series.upsert(sample);
                for task_run in &mut task_runs {
                    touched.insert(task_run.task_id.clone());
                    writes.push(flag_and_record(&mut histories, task_run, run.at())?);
                }
                report.task_runs += task_runs.len();

                let this = run.as_ref();
                advance(&mut latest, &this);
                track_outcome(&mut last_success, &this, RunStatus::Success);
                track_outcome(&mut last_failure, &this, RunStatus::Failed);
                writes.push(to_item(
                    &run,
                    "run",
                    keys::run(run.id),
                    Some(keys::run_gsi1(run.pipeline_id, run.at(), run.id)),
                )?);
                report.runs += 1;
            }
            series.prune(now);
            // A success or failure that flipped (a cleared run) falls back to the series.
            let fallback = |slot: &Option<RunRef>, status: RunStatus| {
                slot.clone().or_else(|| {
                    series.latest_with_status(status).map(|(at, ended)| RunRef {
                        id: uuid::Uuid::nil(),
                        status,
                        at,
                        started_at: Some(at),
                        ended_at: Some(ended),
                    })
                })
            };
            let update = Update::new()
                .set_or_remove("latest_run", json(&latest)?)
                .set_or_remove(
                    "last_success",
                    json(&fallback(&last_success, RunStatus::Success))?,
                )
                .set_or_remove(
                    "last_failure",
                    json(&fallback(&last_failure, RunStatus::Failed))?,
                );
            let mut touched: Vec<String> = touched.into_iter().collect();
            touched.sort_unstable();
            let history_writes = touched
                .iter()
                .map(|task_id| history_item(pipeline, task_id, &histories[task_id]))
                .collect::<Result<Vec<_>>>()?;

            let next_revision = revision.flatten().unwrap_or(0) + 1;
            let mut series_write = series_item(pipeline, &series);
            series_write.insert(SERIES_REVISION_ATTR.into(), next_revision.into());
            let series_condition = match revision {
                None => Condition::NotExists,
                Some(None) => Condition::AttributeNotExists(SERIES_REVISION_ATTR.into()),
                Some(Some(read)) => Condition::equals(SERIES_REVISION_ATTR, read),
            };
            // The series and the references first (their positions identify a failed
            // condition), then the runs and task runs; a group too big for one transaction
            // (one run with very many task runs) spills its task runs into the next ones.
            let latest_status = latest.as_ref().map(|run| run.status.as_str());
            let mut ops = vec![
                TransactOp::Put {
                    item: series_write,
                    condition: Some(series_condition),
                },
                TransactOp::Update {
                    key: pipeline_key.clone(),
                    update: update.add(REVISION_ATTR, 1),
                    condition: Some(Condition::Exists),
                },
                TransactOp::Update {
                    key: keys::listing_entry(pipeline.space_id, pipeline.id),
                    update: Update::new()
                        .set_or_remove("latest_status", latest_status)
                        .add(REVISION_ATTR, 1),
                    condition: Some(Condition::Exists),
                },
            ];
            // The events next, in the first transaction of the group with their runs; each
            // event's conditional put is at a known position.
            let mut event_at = Vec::with_capacity(group_events.len());
            for event in &group_events {
                event_at.push((ops.len(), event.id));
                ops.extend(self.event_ops(event)?);
            }
            let room = MAX_TRANSACTION_OPS - ops.len();
            let mut rest = writes.into_iter().chain(history_writes).map(put);
            ops.extend(rest.by_ref().take(room));
            match self.table.transact_write(ops).await {
                Ok(()) => {}
                Err(StoreError::TransactionCancelled { index: Some(index) })
                    if event_at.iter().any(|(at, _)| *at == index) =>
                {
                    let (_, id) = event_at.iter().find(|(at, _)| *at == index).unwrap();
                    return Err(Stop::EventExists(*id));
                }
                Err(StoreError::TransactionCancelled { index: Some(1) }) => {
                    return Err(Stop::Failed(Error::NotFound("Pipeline not found")));
                }
                Err(StoreError::TransactionCancelled { index: Some(2) }) => {
                    return Err(Stop::Failed(Error::internal(format!(
                        "pipeline {} has no listing entry: run `orchestration admin rebuild-listings`",
                        pipeline.id
                    ))));
                }
                Err(StoreError::TransactionCancelled { .. } | StoreError::ConditionFailed) => {
                    return Err(Stop::Contended);
                }
                Err(StoreError::Unavailable(reason)) if reason.contains("conflict") => {
                    return Err(Stop::Contended);
                }
                Err(other) => return Err(other.into()),
            }
            revision = Some(Some(next_revision));
            let spill: Vec<TransactOp> = rest.collect();
            for chunk in spill.chunks(MAX_TRANSACTION_OPS) {
                self.table.transact_write(chunk.to_vec()).await?;
            }
        }
        Ok(report)
    }

    /// Runs that left the series' exact tier are only counted in its hourly aggregates: before
    /// such a run is ingested again (a cleared run, a late status), its stored version is read
    /// and taken back from them, so that it is counted once. Only pipelines with more runs than
    /// the exact tier holds pay this read, and only for runs not in it. The series' revision
    /// condition makes it consistent: a concurrent change of such a run moves the revision.
    async fn take_back_folded(&self, series: &mut RunSeries, runs: &[RunWithTasks]) -> Result<()> {
        if !series.has_folded() {
            return Ok(());
        }
        let wanted: Vec<Key> = runs
            .iter()
            .filter(|r| !series.holds(run_key(r.run.id)))
            .map(|r| keys::run(r.run.id))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        for item in self.table.batch_get(&wanted).await? {
            let stored: Run = from_item(item)?;
            series.remove_folded(&RunSample::of(&stored));
        }
        Ok(())
    }

    /// Writes task-run tries of one pipeline whose runs are stored already (the sync reads task
    /// instances separately from runs), flagging unusual durations against each task's history.
    /// Tries first, histories last: a history is only a baseline for the flags, so one left
    /// short of a try by a crash costs at most a flag, and these, the bulk of a sync's writes,
    /// stay plain batch writes.
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
            writes.push(BatchOp::Put(flag_and_record(&mut histories, task_run, at)?));
        }
        self.table.batch_write(writes).await?;
        let mut task_ids: Vec<&String> = histories.keys().collect();
        task_ids.sort_unstable();
        let history_writes = task_ids
            .into_iter()
            .map(|task_id| history_item(pipeline, task_id, &histories[task_id]).map(BatchOp::Put))
            .collect::<Result<Vec<_>>>()?;
        self.table.batch_write(history_writes).await?;
        Ok(task_runs.len())
    }
}

impl Repository {
    /// Tries of one pipeline still running at `now` for longer than their task's successful
    /// tries usually take become `task_run_longer_than_usual` events, one per try (the id is
    /// the try's), whether or not the try changed since the last sync. One batch read of the
    /// tasks' histories.
    pub async fn detect_running_tries(
        &self,
        pipeline: &Pipeline,
        tries: &[TaskRun],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let running: Vec<&TaskRun> = tries.iter().filter(|t| t.status == "running").collect();
        if running.is_empty() {
            return Ok(0);
        }
        let wanted = history_keys(pipeline, running.iter().map(|t| t.task_id.as_str()));
        let mut histories = HashMap::new();
        for item in self.table.batch_get(&wanted).await? {
            let Some(key) = Key::of(&item) else { continue };
            if let Some((task_id, history)) = decode_history(&key, &item)? {
                histories.insert(task_id, history);
            }
        }
        let mut recorded = 0;
        for task_run in running {
            let history = histories.get(&task_run.task_id);
            if let Some(event) =
                history.and_then(|h| events::running_try(pipeline, h, task_run, now))
                && self.record_event(&event).await?
            {
                recorded += 1;
            }
        }
        Ok(recorded)
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
/// the history if it succeeded, and returns its item.
fn flag_and_record(
    histories: &mut HashMap<String, TaskHistory>,
    task_run: &mut TaskRun,
    run_at: DateTime<Utc>,
) -> Result<Item> {
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
    to_item(
        &*task_run,
        "task_run",
        keys::task_run(
            task_run.run_id,
            &task_run.task_id,
            task_run.map_index,
            task_run.try_number,
        ),
        Some(keys::task_run_gsi1(task_run.id)),
    )
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

fn history_item(pipeline: &Pipeline, task_id: &str, history: &TaskHistory) -> Result<Item> {
    let key = keys::task_history(pipeline.id, task_id);
    let mut item = Item::new();
    item.insert("PK".into(), key.pk.into());
    item.insert("SK".into(), key.sk.into());
    item.insert("kind".into(), "task_history".into());
    item.insert(TASK_HISTORY_ATTR.into(), json(history)?);
    Ok(item)
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
