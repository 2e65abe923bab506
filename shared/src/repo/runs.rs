//! Runs and task runs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Repository, from_item};
use crate::domain::model::{Run, TaskRun};
use crate::error::Result;
use crate::keys;
use crate::store::{Index, Query, SortKey, query_all};

impl Repository {
    /// A run with all its task runs (one query: they share the run's partition).
    pub async fn get_run_with_task_runs(
        &self,
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
        Ok(run.map(|run| (run, task_runs)))
    }

    pub async fn get_run(&self, run_id: Uuid) -> Result<Option<Run>> {
        self.table
            .get(&keys::run(run_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// A pipeline's runs, newest first, whose position in time lies in `[from, to]` (either end
    /// open). Position = start, else queued time, else logical date (see `Run::at`).
    pub async fn list_runs(
        &self,
        pipeline_id: Uuid,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<Run>> {
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
        let query = Query::partition(Index::Gsi1, keys::runs_of(pipeline_id))
            .sort(sort)
            .descending();
        query_all(self.table(), query)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// A task run by its id (through the index), with nothing else.
    pub async fn get_task_run(&self, task_run_id: Uuid) -> Result<Option<TaskRun>> {
        let (pk, sk) = keys::task_run_gsi1(task_run_id);
        let page = self
            .table
            .query(
                &Query::partition(Index::Gsi1, pk)
                    .sort(SortKey::Equals(sk))
                    .limit(1),
            )
            .await?;
        page.items.into_iter().next().map(from_item).transpose()
    }
}
