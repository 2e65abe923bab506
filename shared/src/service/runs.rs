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
    fn is_empty(&self) -> bool {
        self.started_from.is_none()
            && self.started_to.is_none()
            && self.status.is_none()
            && self.run_type.is_none()
    }

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
    if filter.is_empty() {
        return list_unfiltered(repo, caller, pipeline_id, page).await;
    }
    repo.get_pipeline(caller.space_id, pipeline_id)
        .await?
        .ok_or(Error::NotFound("Pipeline not found"))?;
    // A started run's position is its start, so the start bounds narrow the key range;
    // the filter then drops runs positioned there without having started.
    let runs = repo
        .list_runs(
            caller.space_id,
            pipeline_id,
            filter.started_from,
            filter.started_to,
        )
        .await?;
    let matching: Vec<Run> = runs.into_iter().filter(|run| filter.matches(run)).collect();
    let total = matching.len() as u64;
    let items = page
        .slice(matching)
        .into_iter()
        .map(RunView::from)
        .collect();
    Ok(Paged { items, total, page })
}

/// Without filters, the total is counted in the index and a page reads only the runs between
/// it and the nearer end of the history, so the cost does not grow with the pipeline's
/// history on the first and last pages (and at most half of it in the middle).
async fn list_unfiltered(
    repo: &Repository,
    caller: &Caller,
    pipeline_id: Uuid,
    page: PageRequest,
) -> Result<Paged<RunView>> {
    let offset = page.offset() as u64;
    let size = u64::from(page.size);
    let (runs, total) = if offset == 0 {
        // The first page: no count needed when it is not full.
        let runs = repo
            .runs_from_end(caller.space_id, pipeline_id, page.size, true)
            .await?;
        let total = if runs.len() < page.size as usize {
            runs.len() as u64
        } else {
            repo.count_runs(pipeline_id).await?
        };
        (runs, total)
    } else {
        let total = repo.count_runs(pipeline_id).await?;
        let runs = if offset >= total {
            Vec::new()
        } else if offset + size <= total - offset {
            let mut runs = repo
                .runs_from_end(caller.space_id, pipeline_id, clamp_u32(offset + size), true)
                .await?;
            runs.drain(..(offset as usize).min(runs.len()));
            runs
        } else {
            // Nearer the oldest end: read from there (positions counted from the end).
            let mut runs = repo
                .runs_from_end(
                    caller.space_id,
                    pipeline_id,
                    clamp_u32(total - offset),
                    false,
                )
                .await?;
            runs.drain(..(total - offset).saturating_sub(size) as usize);
            runs.reverse();
            runs
        };
        (runs, total)
    };
    // The repository reads only the caller's space's runs: any run proves the pipeline is the
    // caller's. Without runs, the pipeline itself must be found in the caller's space.
    if runs.is_empty() {
        repo.get_pipeline(caller.space_id, pipeline_id)
            .await?
            .ok_or(Error::NotFound("Pipeline not found"))?;
    }
    let items = runs
        .into_iter()
        .take(page.size as usize)
        .map(RunView::from)
        .collect();
    Ok(Paged { items, total, page })
}

pub async fn get(repo: &Repository, caller: &Caller, run_id: Uuid) -> Result<RunDetailView> {
    let (run, mut task_runs) = repo
        .get_run_with_task_runs(caller.space_id, run_id)
        .await?
        .ok_or(Error::NotFound("Run not found"))?;
    task_runs.sort_by(|a, b| {
        (&a.task_id, a.map_index, a.try_number).cmp(&(&b.task_id, b.map_index, b.try_number))
    });
    Ok(RunDetailView {
        run: RunView::from(run),
        task_runs: task_runs.into_iter().map(Into::into).collect(),
    })
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
