//! Listing and reading pipelines with their summaries.
//!
//! A list costs two table requests whatever the number of runs: one query for the space's
//! pipelines with their watches (paged by the backend only past 1 MB), then one batch read of
//! the run series of the pipelines on the requested page (one per 100 pipelines on the page).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PageRequest, Paged};
use crate::api::PipelineView;
use crate::auth::Caller;
use crate::domain::model::{Criticality, Pipeline, PipelineStatus, Provider};
use crate::error::{Error, Result};
use crate::repo::Repository;

/// Default and bounds of the summary window, in days.
pub const DEFAULT_DAYS: u32 = 7;
pub const MAX_DAYS: u32 = 90;

/// The list filters of `GET /pipelines`; all given filters must match.
#[derive(Debug, Clone, Default)]
pub struct PipelineFilter {
    pub provider: Option<Provider>,
    pub status: Option<PipelineStatus>,
    /// Matches a pipeline having this owner (case-insensitive, whole owner string).
    pub owner: Option<String>,
    pub criticality: Option<Criticality>,
    pub team_id: Option<Uuid>,
    pub connector_id: Option<Uuid>,
    /// Case-insensitive substring of name, DAG id, description, an owner or a tag.
    pub q: Option<String>,
    pub watched_only: bool,
}

impl PipelineFilter {
    pub fn matches(&self, pipeline: &Pipeline, watched: bool) -> bool {
        let contains = |haystack: &str, needle: &str| haystack.to_lowercase().contains(needle);
        self.provider.is_none_or(|p| p == pipeline.provider)
            && self.status.is_none_or(|s| s == pipeline.status())
            && self.owner.as_deref().is_none_or(|owner| {
                let owner = owner.to_lowercase();
                pipeline.owners.iter().any(|o| o.to_lowercase() == owner)
            })
            && self
                .criticality
                .is_none_or(|c| Some(c) == pipeline.criticality)
            && self.team_id.is_none_or(|t| Some(t) == pipeline.team_id)
            && self.connector_id.is_none_or(|c| c == pipeline.connector_id)
            && (!self.watched_only || watched)
            && self.q.as_deref().is_none_or(|q| {
                let q = q.to_lowercase();
                contains(&pipeline.name, &q)
                    || contains(&pipeline.dag_id, &q)
                    || pipeline
                        .description
                        .as_deref()
                        .is_some_and(|d| contains(d, &q))
                    || pipeline.owners.iter().any(|o| contains(o, &q))
                    || pipeline.tags.iter().any(|t| contains(t, &q))
            })
    }
}

/// Sort order of the list: name (case-insensitive), then DAG id, then id — stable across pages.
fn sort_key(pipeline: &Pipeline) -> (String, String, Uuid) {
    (
        pipeline.name.to_lowercase(),
        pipeline.dag_id.clone(),
        pipeline.id,
    )
}

pub async fn list(
    repo: &Repository,
    caller: &Caller,
    filter: &PipelineFilter,
    days: u32,
    page: PageRequest,
    now: DateTime<Utc>,
) -> Result<Paged<PipelineView>> {
    let (pipelines, watched) = repo
        .list_pipelines_watched_by(caller.space_id, caller.user_id)
        .await?;
    let mut matching: Vec<Pipeline> = pipelines
        .into_iter()
        .filter(|p| filter.matches(p, watched.contains(&p.id)))
        .collect();
    matching.sort_by_cached_key(sort_key);
    let total = matching.len() as u64;
    let on_page = page.slice(matching);
    let ids: Vec<Uuid> = on_page.iter().map(|p| p.id).collect();
    let mut series = if ids.is_empty() {
        Default::default()
    } else {
        repo.series_for(&ids).await?
    };
    let items = on_page
        .into_iter()
        .map(|pipeline| {
            let is_watched = watched.contains(&pipeline.id);
            let pipeline_series = series.remove(&pipeline.id).unwrap_or_default();
            PipelineView::new(pipeline, &pipeline_series, is_watched, days, now)
        })
        .collect();
    Ok(Paged { items, total, page })
}

pub async fn get(
    repo: &Repository,
    caller: &Caller,
    pipeline_id: Uuid,
    days: u32,
    now: DateTime<Utc>,
) -> Result<PipelineView> {
    let found = repo
        .get_pipeline_with_series(caller.space_id, caller.user_id, pipeline_id)
        .await?
        .ok_or(Error::NotFound("Pipeline not found"))?;
    Ok(PipelineView::new(
        found.pipeline,
        &found.series,
        found.watched,
        days,
        now,
    ))
}
