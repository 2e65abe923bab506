//! The events feed of a space (`GET /events`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PageRequest, Paged};
use crate::api::EventView;
use crate::auth::Caller;
use crate::domain::events::EventType;
use crate::error::Result;
use crate::repo::Repository;

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub pipeline_id: Option<Uuid>,
    pub event_type: Option<EventType>,
    pub watched_only: bool,
    pub since: Option<DateTime<Utc>>,
}

/// The space's events, newest detected first (then by id, descending), filtered. Any member.
/// One query of the space's feed (bounded by the retention, or by `since`), plus the
/// caller's watches for `watched_only`.
pub async fn list(
    repo: &Repository,
    caller: &Caller,
    filter: &EventFilter,
    page: PageRequest,
    now: DateTime<Utc>,
) -> Result<Paged<EventView>> {
    let watched = if filter.watched_only {
        Some(
            repo.watched_pipeline_ids(caller.space_id, caller.user_id)
                .await?,
        )
    } else {
        None
    };
    let events: Vec<_> = repo
        .list_events(caller.space_id, filter.since, now)
        .await?
        .into_iter()
        .filter(|e| filter.pipeline_id.is_none_or(|id| id == e.pipeline_id))
        .filter(|e| filter.event_type.is_none_or(|t| t == e.event_type))
        .filter(|e| watched.as_ref().is_none_or(|w| w.contains(&e.pipeline_id)))
        .collect();
    let total = events.len() as u64;
    let items = page
        .slice(events)
        .into_iter()
        .map(|event| EventView::of(event, &caller.space_slug))
        .collect();
    Ok(Paged { items, total, page })
}
