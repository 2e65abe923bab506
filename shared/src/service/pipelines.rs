//! Listing and reading pipelines with their summaries.
//!
//! A list filters and orders the space's listing entries (per-process cache, see
//! `repo::listing`), then reads the pipelines on the requested page and their run series:
//! one batch read (with the listing's version check) once the process has listed the space.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PageRequest, Paged};
use crate::api::PipelineView;
use crate::auth::Caller;
use crate::domain::listing::ListingEntry;
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
    pub fn matches(&self, pipeline: &ListingEntry, watched: bool) -> bool {
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

pub async fn list(
    repo: &Repository,
    caller: &Caller,
    filter: &PipelineFilter,
    days: u32,
    page: PageRequest,
    now: DateTime<Utc>,
) -> Result<Paged<PipelineView>> {
    // The listing holds the space's pipelines in list order: filter, then cut the page. The
    // selection is made on the listing returned with it, so its positions index that listing.
    let found = repo
        .list_pipelines_selecting(caller.space_id, |listing| {
            let matching: Vec<usize> = (0..listing.entries.len())
                .filter(|&i| {
                    let entry = &listing.entries[i];
                    filter.matches(entry, listing.is_watched(caller.user_id, entry.pipeline_id))
                })
                .collect();
            let total = matching.len() as u64;
            let on_page = page.slice(matching);
            let ids = on_page
                .iter()
                .map(|&i| listing.entries[i].pipeline_id)
                .collect();
            ((total, on_page), ids)
        })
        .await?;
    let (total, on_page) = found.selection;
    let mut series = found.series;
    let mut items = Vec::with_capacity(on_page.len());
    for i in on_page {
        let id = found.listing.entries[i].pipeline_id;
        // An entry is written in the same transaction as its pipeline: one without is a bug.
        let pipeline = found
            .pipelines
            .get(&id)
            .ok_or_else(|| Error::internal(format!("listing entry {id} has no pipeline item")))?;
        let is_watched = found.listing.is_watched(caller.user_id, id);
        let pipeline_series = series.remove(&id).unwrap_or_default();
        items.push(PipelineView::new(
            Pipeline::clone(pipeline),
            &pipeline_series,
            is_watched,
            days,
            now,
        ));
    }
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
