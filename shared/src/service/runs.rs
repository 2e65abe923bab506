//! Listing a pipeline's runs and reading one run with its task runs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PageRequest, Paged};
use crate::api::{RunDetailView, RunView};
use crate::auth::Caller;
use crate::domain::model::{Run, RunStatus};
use crate::error::{Error, Result};
use crate::repo::Repository;

/// Filters of `GET /pipelines/{id}/runs`. `started_from`/`started_to` bound the start time
/// (inclusive); runs that have not started yet never match a start bound.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub started_from: Option<DateTime<Utc>>,
    pub started_to: Option<DateTime<Utc>>,
    pub status: Option<RunStatus>,
    pub run_type: Option<String>,
}

impl RunFilter {
    pub fn matches(&self, run: &Run) -> bool {
        let bounded = self.started_from.is_some() || self.started_to.is_some();
        let start_ok = match run.started_at {
            Some(start) => {
                self.started_from.is_none_or(|from| start >= from)
                    && self.started_to.is_none_or(|to| start <= to)
            }
            None => !bounded,
        };
        start_ok
            && self.status.is_none_or(|s| s == run.status)
            && self.run_type.as_deref().is_none_or(|t| t == run.run_type)
    }
}

/// Runs newest first (by start, else queued time, else logical date), then by id.
pub async fn list(
    repo: &Repository,
    caller: &Caller,
    pipeline_id: Uuid,
    filter: &RunFilter,
    page: PageRequest,
) -> Result<Paged<RunView>> {
    repo.get_pipeline(caller.space_id, pipeline_id)
        .await?
        .ok_or(Error::NotFound("Pipeline not found"))?;
    // A started run's position is its start, so the start bounds narrow the key range;
    // the filter then drops runs positioned there without having started.
    let runs = repo
        .list_runs(pipeline_id, filter.started_from, filter.started_to)
        .await?;
    let matching: Vec<Run> = runs
        .into_iter()
        .filter(|run| run.space_id == caller.space_id && filter.matches(run))
        .collect();
    let total = matching.len() as u64;
    let items = page
        .slice(matching)
        .into_iter()
        .map(RunView::from)
        .collect();
    Ok(Paged { items, total, page })
}

pub async fn get(repo: &Repository, caller: &Caller, run_id: Uuid) -> Result<RunDetailView> {
    let (run, mut task_runs) = repo
        .get_run_with_task_runs(run_id)
        .await?
        .filter(|(run, _)| run.space_id == caller.space_id)
        .ok_or(Error::NotFound("Run not found"))?;
    task_runs.sort_by(|a, b| {
        (&a.task_id, a.map_index, a.try_number).cmp(&(&b.task_id, b.map_index, b.try_number))
    });
    Ok(RunDetailView {
        run: RunView::from(run),
        task_runs: task_runs.into_iter().map(Into::into).collect(),
    })
}
