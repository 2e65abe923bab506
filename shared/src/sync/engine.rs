//! The phases of one sync (see the module docs of `sync`): DAGs, then DAG runs, then task
//! instances, each read page by page with the checkpoint saved after every page.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Progress, SyncOptions, mapping};
use crate::airflow::{AirflowClient, AirflowError, DagRun, TaskInstance};
use crate::domain::events;
use crate::domain::model::{Connector, Pipeline, Run, RunStatus, TaskRun};
use crate::domain::sync::{Checkpoint, Counts, PendingSync, SyncCounts};
use crate::error::Error;
use crate::repo::{Repository, RunWithTasks};

/// Task instances re-read at the end of every full page (see `run`).
const TASK_PAGE_OVERLAP: u32 = 10;

pub(super) enum Finish {
    Complete,
    OutOfTime,
}

/// Why a sync stopped early.
pub(super) enum Stop {
    Airflow(AirflowError),
    Store(Error),
}

impl From<AirflowError> for Stop {
    fn from(error: AirflowError) -> Self {
        Stop::Airflow(error)
    }
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Store(error)
    }
}

pub(super) struct Engine<'a> {
    repo: &'a Repository,
    client: &'a AirflowClient,
    connector: &'a Connector,
    options: &'a SyncOptions,
    pending: PendingSync,
    checkpoint: Checkpoint,
    deadline: Instant,
    now: DateTime<Utc>,
    /// The connector's pipelines by DAG id, as of this sync.
    pipelines: HashMap<String, Pipeline>,
    /// Runs running as far as this sync knows (the pipelines' latest runs, then what it
    /// ingests): checked for `run_longer_than_usual` once the runs are read.
    running: HashMap<Uuid, (Uuid, String, DateTime<Utc>)>,
    counts: SyncCounts,
    warnings: Vec<String>,
}

fn count(counts: &mut Counts, stored: Option<bool>) {
    match stored {
        None => counts.added += 1,
        Some(true) => counts.unchanged += 1,
        Some(false) => counts.updated += 1,
    }
}

impl<'a> Engine<'a> {
    pub(super) fn new(
        repo: &'a Repository,
        client: &'a AirflowClient,
        connector: &'a Connector,
        options: &'a SyncOptions,
        pending: PendingSync,
        checkpoint: Checkpoint,
    ) -> Self {
        Self {
            repo,
            client,
            connector,
            options,
            pending,
            checkpoint,
            deadline: Instant::now() + options.budget,
            now: options.now.unwrap_or_else(Utc::now),
            pipelines: HashMap::new(),
            running: HashMap::new(),
            counts: SyncCounts::default(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn finish(self) -> (PendingSync, SyncCounts, Vec<String>) {
        (self.pending, self.counts, self.warnings)
    }

    /// Whether transitions become events: not while a connector's history is first loaded
    /// (its first sync, resumed or not: every past failure would be reported as news).
    fn detect(&self) -> bool {
        self.pending.since.is_some()
    }

    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn progress(&self, phase: &'static str, done: u64, total: u64) {
        if let Some(report) = &self.options.progress {
            report(Progress { phase, done, total });
        }
    }

    fn warn(&mut self, warning: String) {
        tracing::warn!(connector_id = %self.connector.id, %warning, "sync warning");
        // Keep the record small: the first warnings say enough.
        if self.warnings.len() < 50 {
            self.warnings.push(warning);
        }
    }

    async fn save_progress(&mut self) -> Result<(), Stop> {
        self.checkpoint.pending = Some(self.pending.clone());
        self.repo
            .put_checkpoint(self.connector.id, &self.checkpoint)
            .await?;
        Ok(())
    }

    /// Runs the phases. An Airflow call cut by the client's deadline before Airflow failed is
    /// running out of time, not a failure: the checkpoint of the last whole page stands and
    /// the next sync resumes from it.
    pub(super) async fn run(&mut self) -> Result<Finish, Stop> {
        match self.run_phases().await {
            Err(Stop::Airflow(AirflowError::Deadline(cut))) => {
                tracing::info!(connector_id = %self.connector.id, %cut, "sync stopped at its deadline");
                Ok(Finish::OutOfTime)
            }
            other => other,
        }
    }

    async fn run_phases(&mut self) -> Result<Finish, Stop> {
        self.sync_dags().await?;
        let size = self.options.page_size.clamp(1, 100);
        while !self.pending.runs_complete {
            if self.out_of_time() {
                return Ok(Finish::OutOfTime);
            }
            let page = self
                .client
                .dag_runs(self.pending.since, self.pending.runs_offset, size)
                .await?;
            let read = page.items.len() as u32;
            self.apply_runs(page.items).await?;
            self.pending.runs_offset += read;
            self.pending.runs_complete = read < size;
            self.save_progress().await?;
            self.progress(
                "runs",
                u64::from(self.pending.runs_offset),
                page.total_entries,
            );
        }
        if self.detect() {
            self.check_running_runs().await?;
        }
        loop {
            if self.out_of_time() {
                return Ok(Finish::OutOfTime);
            }
            let page = self
                .client
                .task_instances(self.pending.since, self.pending.task_instances_offset, size)
                .await?;
            let read = page.items.len() as u32;
            self.apply_task_instances(page.items).await?;
            // Airflow 3 gives a task instance a new id when it is retried or cleared, moving it
            // to the end of the `id` order; every such move while we page shifts unread items
            // back by one. Re-reading the tail of each full page absorbs that (re-read items
            // are recognised as unchanged and not written).
            let step = if read == size {
                read - TASK_PAGE_OVERLAP.min(read / 2)
            } else {
                read
            };
            self.pending.task_instances_offset += step;
            self.save_progress().await?;
            self.progress(
                "task instances",
                u64::from(self.pending.task_instances_offset),
                page.total_entries,
            );
            if read < size {
                return Ok(Finish::Complete);
            }
        }
    }

    /// Every DAG, every sync: they are few, and reading them all is how disappeared DAGs are
    /// noticed.
    async fn sync_dags(&mut self) -> Result<(), Stop> {
        let stored: HashMap<String, Pipeline> = self
            .repo
            .list_pipelines(self.connector.space_id)
            .await?
            .into_iter()
            .filter(|p| p.connector_id == self.connector.id)
            .map(|p| (p.dag_id.clone(), p))
            .collect();
        let mut seen = HashSet::new();
        let mut offset = 0;
        loop {
            let page = self.client.dags(offset, 100).await?;
            let read = page.items.len() as u32;
            for dag in &page.items {
                let fresh = mapping::pipeline(dag, self.connector, self.now);
                seen.insert(dag.dag_id.clone());
                let old = stored.get(&dag.dag_id);
                let unchanged = old.map(|old| mapping::same_airflow_fields(old, &fresh));
                count(&mut self.counts.pipelines, unchanged);
                if unchanged != Some(true) {
                    let transitions = old
                        .map(|old| events::pipeline_transitions(old, &fresh, self.now))
                        .unwrap_or_default();
                    self.repo
                        .upsert_pipeline_metadata_with_events(&fresh, transitions)
                        .await?;
                }
                if let Some(latest) = old
                    .and_then(|old| old.latest_run.as_ref())
                    .filter(|run| run.status == RunStatus::Running)
                    && let Some(started) = latest.started_at
                {
                    // The DAG run id is not on the reference: the event names it when the
                    // run is read in this sync (below), else it is left out.
                    self.running
                        .insert(latest.id, (fresh.id, String::new(), started));
                }
                // Keep the stored record when there is one: it carries the platform's fields.
                let current = old.cloned().unwrap_or(fresh);
                self.pipelines.insert(dag.dag_id.clone(), current);
            }
            offset += read;
            self.progress("dags", u64::from(offset), page.total_entries);
            if read < 100 || u64::from(offset) >= page.total_entries {
                break;
            }
        }
        // DAGs Airflow no longer lists at all: kept, marked inactive.
        for (dag_id, old) in stored {
            if seen.contains(&dag_id) {
                continue;
            }
            if old.is_active {
                let gone = Pipeline {
                    is_active: false,
                    synced_at: self.now,
                    ..old.clone()
                };
                let transitions = events::pipeline_transitions(&old, &gone, self.now);
                self.repo
                    .upsert_pipeline_metadata_with_events(&gone, transitions)
                    .await?;
                self.counts.pipelines.updated += 1;
            } else {
                self.counts.pipelines.unchanged += 1;
            }
            self.pipelines.insert(dag_id, old);
        }
        Ok(())
    }

    /// Writes the runs of one page that differ from what is stored.
    async fn apply_runs(&mut self, dag_runs: Vec<DagRun>) -> Result<(), Stop> {
        let mut runs: Vec<Run> = Vec::with_capacity(dag_runs.len());
        for dag_run in &dag_runs {
            let Some(pipeline) = self.pipelines.get(&dag_run.dag_id) else {
                self.warn(format!(
                    "skipped run {} of DAG {} that Airflow does not list",
                    dag_run.dag_run_id, dag_run.dag_id
                ));
                continue;
            };
            match mapping::run(dag_run, pipeline, self.now) {
                Some(run) => runs.push(run),
                None => self.warn(format!(
                    "skipped run {} of DAG {}: unknown state '{}'",
                    dag_run.dag_run_id, dag_run.dag_id, dag_run.state
                )),
            }
        }
        let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
        let stored = self.repo.runs_by_id(self.connector.space_id, &ids).await?;
        let mut changed: HashMap<Uuid, Vec<RunWithTasks>> = HashMap::new();
        for run in runs {
            match (run.status, run.started_at) {
                (RunStatus::Running, Some(started)) => {
                    let seen = (run.pipeline_id, run.dag_run_id.clone(), started);
                    self.running.insert(run.id, seen);
                }
                _ => {
                    self.running.remove(&run.id);
                }
            }
            let unchanged = stored.get(&run.id).map(|old| run.same_as(old));
            count(&mut self.counts.runs, unchanged);
            if unchanged != Some(true) {
                changed
                    .entry(run.pipeline_id)
                    .or_default()
                    .push(RunWithTasks {
                        run,
                        task_runs: Vec::new(),
                    });
            }
        }
        for (pipeline_id, runs) in changed {
            let pipeline = self.pipeline_by_id(pipeline_id);
            self.repo
                .ingest_runs_detecting(&pipeline, runs, self.now, self.detect())
                .await?;
        }
        Ok(())
    }

    /// Runs still running that have taken longer than their pipeline's runs usually take
    /// become `run_longer_than_usual` events (one per run: the id is the run's start), with
    /// one batch read of their pipelines' series.
    async fn check_running_runs(&mut self) -> Result<(), Stop> {
        if self.running.is_empty() {
            return Ok(());
        }
        let mut pipeline_ids: Vec<Uuid> = self.running.values().map(|(p, _, _)| *p).collect();
        pipeline_ids.sort_unstable();
        pipeline_ids.dedup();
        let series = self.repo.series_for(&pipeline_ids).await?;
        let mut found = Vec::new();
        for (run_id, (pipeline_id, dag_run_id, started)) in &self.running {
            let Some(series) = series.get(pipeline_id) else {
                continue;
            };
            let pipeline = self.pipeline_by_id(*pipeline_id);
            if let Some(mut event) =
                events::running_run(&pipeline, series, *run_id, dag_run_id, *started, self.now)
            {
                if dag_run_id.is_empty() {
                    event.dag_run_id = None;
                }
                found.push(event);
            }
        }
        for event in found {
            self.repo.record_event(&event).await?;
        }
        Ok(())
    }

    fn pipeline_by_id(&self, pipeline_id: Uuid) -> Pipeline {
        self.pipelines
            .values()
            .find(|p| p.id == pipeline_id)
            .cloned()
            .expect("runs are only grouped under known pipelines")
    }

    /// Writes the task-instance tries of one page that differ from what is stored. Retried
    /// task instances have their earlier tries fetched too, and so has one whose stored try 0
    /// may have been superseded (below).
    async fn apply_task_instances(&mut self, instances: Vec<TaskInstance>) -> Result<(), Stop> {
        let mut tries: Vec<TaskRun> = Vec::with_capacity(instances.len());
        // Instances whose whole tries list Airflow gave us, by (run, task, map index).
        let mut listed: HashSet<(Uuid, String, i64)> = HashSet::new();
        // First tries (try 1) whose list was not read: a stored try 0 decides whether it is.
        let mut first_tries: HashMap<(Uuid, String, i64), &TaskInstance> = HashMap::new();
        for instance in &instances {
            let Some(pipeline) = self.pipelines.get(&instance.dag_id).cloned() else {
                self.warn(format!(
                    "skipped task {} of DAG {} that Airflow does not list",
                    instance.task_id, instance.dag_id
                ));
                continue;
            };
            let current = mapping::task_run(instance, &pipeline);
            let slot = (current.run_id, current.task_id.clone(), current.map_index);
            tries.push(current);
            if instance.try_number > 1 {
                tries.extend(self.earlier_tries(instance, &pipeline).await?);
                listed.insert(slot);
            } else if instance.try_number == 1 {
                first_tries.insert(slot, instance);
            }
        }

        // A task that ended without running (`upstream_failed`, `skipped`...) is try 0 in
        // Airflow. Run after a clear, it gets try 1, and Airflow 3 keeps the try 0 in the
        // task's tries list while Airflow 2 replaces it. The mirror keeps exactly what Airflow
        // lists: a stored try 0 of a task now at try 1 or later is read back from its tries
        // list (one request, only for such tasks) and removed only if Airflow dropped it.
        let mut superseded: Vec<(Uuid, String, i64)> = tries
            .iter()
            .filter(|t| t.try_number >= 1)
            .map(|t| (t.run_id, t.task_id.clone(), t.map_index))
            .collect();
        superseded.sort();
        superseded.dedup();
        // One read for what is stored of these tries and of those tasks' try 0.
        let mut lookup: Vec<(Uuid, &str, i64, u32)> = tries
            .iter()
            .map(|t| (t.run_id, t.task_id.as_str(), t.map_index, t.try_number))
            .collect();
        lookup.extend(
            superseded
                .iter()
                .map(|(run, task, map)| (*run, task.as_str(), *map, 0)),
        );
        let mut stored = self
            .repo
            .task_runs_by_key(self.connector.space_id, &lookup)
            .await?;
        let stored_try_zero: Vec<TaskRun> = stored
            .values()
            .filter(|t| {
                t.try_number == 0
                    && superseded.contains(&(t.run_id, t.task_id.clone(), t.map_index))
            })
            .cloned()
            .collect();
        let known = tries.len();
        for try_zero in &stored_try_zero {
            let slot = (
                try_zero.run_id,
                try_zero.task_id.clone(),
                try_zero.map_index,
            );
            if let Some(instance) = first_tries.get(&slot) {
                let pipeline = self
                    .pipelines
                    .get(&instance.dag_id)
                    .cloned()
                    .expect("first tries are only kept for known pipelines");
                tries.extend(self.earlier_tries(instance, &pipeline).await?);
                listed.insert(slot);
            }
        }
        // Tries read back just now (rare): what is stored of them too.
        let read_back: Vec<(Uuid, &str, i64, u32)> = tries[known..]
            .iter()
            .filter(|t| !stored.contains_key(&t.id))
            .map(|t| (t.run_id, t.task_id.as_str(), t.map_index, t.try_number))
            .collect();
        if !read_back.is_empty() {
            stored.extend(
                self.repo
                    .task_runs_by_key(self.connector.space_id, &read_back)
                    .await?,
            );
        }
        tries.sort_by_key(|t| t.id);
        tries.dedup_by_key(|t| t.id);
        let listed_try_zero: HashSet<Uuid> = tries
            .iter()
            .filter(|t| t.try_number == 0)
            .map(|t| t.id)
            .collect();
        let obsolete: Vec<&TaskRun> = stored_try_zero
            .iter()
            .filter(|t| {
                listed.contains(&(t.run_id, t.task_id.clone(), t.map_index))
                    && !listed_try_zero.contains(&t.id)
            })
            .collect();
        if !obsolete.is_empty() {
            self.repo.delete_task_runs(&obsolete).await?;
        }

        if self.detect() {
            let mut running: HashMap<Uuid, Vec<TaskRun>> = HashMap::new();
            for task_run in tries.iter().filter(|t| t.status == "running") {
                running
                    .entry(task_run.pipeline_id)
                    .or_default()
                    .push(task_run.clone());
            }
            for (pipeline_id, tries) in running {
                let pipeline = self.pipeline_by_id(pipeline_id);
                self.repo
                    .detect_running_tries(&pipeline, &tries, self.now)
                    .await?;
            }
        }
        let mut changed: HashMap<Uuid, Vec<TaskRun>> = HashMap::new();
        for task_run in tries {
            let unchanged = stored.get(&task_run.id).map(|old| task_run.same_as(old));
            count(&mut self.counts.task_runs, unchanged);
            if unchanged != Some(true) {
                changed
                    .entry(task_run.pipeline_id)
                    .or_default()
                    .push(task_run);
            }
        }
        for (pipeline_id, task_runs) in changed {
            let pipeline = self.pipeline_by_id(pipeline_id);
            self.repo.ingest_task_runs(&pipeline, task_runs).await?;
        }
        Ok(())
    }

    /// The tries Airflow lists for `instance` before its current one (try 0 included when
    /// Airflow keeps it).
    async fn earlier_tries(
        &self,
        instance: &TaskInstance,
        pipeline: &Pipeline,
    ) -> Result<Vec<TaskRun>, Stop> {
        let listed = self
            .client
            .tries(
                &instance.dag_id,
                &instance.dag_run_id,
                &instance.task_id,
                instance.map_index,
            )
            .await?;
        Ok(listed
            .iter()
            .filter(|t| t.try_number < instance.try_number)
            .map(|t| mapping::task_run(t, pipeline))
            .collect())
    }
}
