//! Runs and task runs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Repository, from_item};
use crate::domain::model::{Run, TaskRun};
use crate::error::Result;
use crate::keys;
use crate::store::{BatchOp, Index, Query, SortKey, count_all, query_all};

impl Repository {
    /// A run of the space with all its task runs (one query: they share the run's partition);
    /// `None` for a run of another space.
    pub async fn get_run_with_task_runs(
        &self,
        space_id: Uuid,
        run_id: Uuid,
    ) -> Result<Option<(Run, Vec<TaskRun>)>> {
        let items = query_all(
            self.table(),
            Query::partition(Index::Primary, keys::run_partition(run_id)),
        )
        .await?;
        let mut run = None;
        let mut task_runs = Vec::with_capacity(items.len());
        for item in items {
            match item.get("SK").and_then(|sk| sk.as_str()) {
                Some("RUN") => run = Some(from_item::<Run>(item)?),
                Some(sk) if sk.starts_with(keys::TASK_RUN_PREFIX) => {
                    task_runs.push(from_item(item)?)
                }
                _ => {}
            }
        }
        Ok(run
            .filter(|run: &Run| run.space_id == space_id)
            .map(|run| (run, task_runs)))
    }

    /// A run of the space (`None` for a run of another space).
    pub async fn get_run(&self, space_id: Uuid, run_id: Uuid) -> Result<Option<Run>> {
        Ok(self
            .table
            .get(&keys::run(run_id))
            .await?
            .map(from_item::<Run>)
            .transpose()?
            .filter(|run| run.space_id == space_id))
    }

    /// A pipeline's runs, newest first, whose position in time lies in `[from, to]` (either end
    /// open). Position = start, else queued time, else logical date (see `Run::at`). Only runs
    /// of the space: none for another space's pipeline.
    pub async fn list_runs(
        &self,
        space_id: Uuid,
        pipeline_id: Uuid,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<Run>> {
        let runs = query_all(self.table(), runs_query(pipeline_id, from, to))
            .await?
            .into_iter()
            .map(from_item::<Run>)
            .collect::<Result<Vec<_>>>()?;
        Ok(in_space(space_id, runs))
    }

    /// A pipeline's newest (or oldest) `limit` runs, in that order: reads no more than that.
    /// Only runs of the space: none for another space's pipeline.
    pub async fn runs_from_end(
        &self,
        space_id: Uuid,
        pipeline_id: Uuid,
        limit: u32,
        newest_first: bool,
    ) -> Result<Vec<Run>> {
        let mut query = runs_query(pipeline_id, None, None).limit(limit.max(1));
        query.forward = !newest_first;
        let mut runs = Vec::new();
        while (runs.len() as u32) < limit {
            let page = self.table.query(&query).await?;
            for item in page.items {
                runs.push(from_item(item)?);
            }
            // DynamoDB may end a page at 1 MB before the limit.
            match page.next {
                Some(cursor) => {
                    query.start = Some(cursor);
                    query.limit = Some(limit.saturating_sub(runs.len() as u32).max(1));
                }
                None => break,
            }
        }
        runs.truncate(limit as usize);
        Ok(in_space(space_id, runs))
    }

    /// How many runs a pipeline has, counted in its index without reading them (so without
    /// knowing their space: the caller has found the pipeline or its runs in the space).
    pub async fn count_runs(&self, pipeline_id: Uuid) -> Result<u64> {
        Ok(count_all(self.table(), runs_query(pipeline_id, None, None)).await?)
    }

    /// The stored runs of the space among `run_ids` (one batch read per 100).
    pub async fn runs_by_id(&self, space_id: Uuid, run_ids: &[Uuid]) -> Result<HashMap<Uuid, Run>> {
        let keys: Vec<_> = run_ids.iter().map(|id| keys::run(*id)).collect();
        let runs = self
            .table
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(from_item::<Run>)
            .collect::<Result<Vec<_>>>()?;
        Ok(in_space(space_id, runs)
            .into_iter()
            .map(|run| (run.id, run))
            .collect())
    }

    /// The stored task-run tries of the space among `tries` (run id, task id, map index, try
    /// number).
    pub async fn task_runs_by_key(
        &self,
        space_id: Uuid,
        tries: &[(Uuid, &str, i64, u32)],
    ) -> Result<HashMap<Uuid, TaskRun>> {
        let keys: Vec<_> = tries
            .iter()
            .map(|(run_id, task_id, map_index, try_number)| {
                keys::task_run(*run_id, task_id, *map_index, *try_number)
            })
            .collect();
        let task_runs = self
            .table
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(from_item::<TaskRun>)
            .collect::<Result<Vec<_>>>()?;
        Ok(task_runs
            .into_iter()
            .filter(|t| t.space_id == space_id)
            .map(|t| (t.id, t))
            .collect())
    }

    /// Removes task-run tries (Airflow's try-0 placeholders once a task has really run).
    pub async fn delete_task_runs(&self, task_runs: &[&TaskRun]) -> Result<()> {
        let deletes = task_runs
            .iter()
            .map(|t| {
                BatchOp::Delete(keys::task_run(
                    t.run_id,
                    &t.task_id,
                    t.map_index,
                    t.try_number,
                ))
            })
            .collect();
        self.table.batch_write(deletes).await?;
        Ok(())
    }

    /// A task run of the space by its id (through the index), with nothing else; `None` for a
    /// task run of another space.
    pub async fn get_task_run(&self, space_id: Uuid, task_run_id: Uuid) -> Result<Option<TaskRun>> {
        let (pk, sk) = keys::task_run_gsi1(task_run_id);
        let page = self
            .table
            .query(
                &Query::partition(Index::Gsi1, pk)
                    .sort(SortKey::Equals(sk))
                    .limit(1),
            )
            .await?;
        Ok(page
            .items
            .into_iter()
            .next()
            .map(from_item::<TaskRun>)
            .transpose()?
            .filter(|t| t.space_id == space_id))
    }
}

/// The runs that belong to the space (a pipeline's runs all share its space).
fn in_space(space_id: Uuid, mut runs: Vec<Run>) -> Vec<Run> {
    runs.retain(|run| run.space_id == space_id);
    runs
}

/// A pipeline's runs positioned in `[from, to]`, newest first.
fn runs_query(pipeline_id: Uuid, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Query {
    // Sort keys are "<stamp>#<run id>"; '$' sorts right after '#', so "<to>$" bounds every
    // run positioned exactly at `to`.
    let upper = to.map(|to| format!("{}$", keys::stamp(to)));
    let lower = from.map(keys::stamp);
    let sort = match (lower, upper) {
        (Some(low), Some(high)) => SortKey::Between(low, high),
        (Some(low), None) => SortKey::GreaterOrEqual(low),
        (None, Some(high)) => SortKey::LessThan(high),
        (None, None) => SortKey::Any,
    };
    Query::partition(Index::Gsi1, keys::runs_of(pipeline_id))
        .sort(sort)
        .descending()
}
