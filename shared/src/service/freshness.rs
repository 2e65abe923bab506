//! The scheduled freshness check: every pipeline of the given spaces with a freshness
//! interval (`domain::freshness`) whose last success is older than it gets one
//! `freshness_breached` event per deadline, whether or not Airflow says anything.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::freshness;
use crate::error::Result;
use crate::repo::Repository;

/// Checks every pipeline of `spaces` (one query of each space's pipeline items per MB, no
/// scan) and stores the breaches not stored yet; returns how many were new.
pub async fn check_spaces(
    repo: &Repository,
    spaces: &BTreeSet<Uuid>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut new = 0;
    for space_id in spaces {
        for pipeline in repo.list_pipelines(*space_id).await? {
            if let Some(event) = freshness::breach(&pipeline, now)
                && repo.record_event(&event).await?
            {
                new += 1;
            }
        }
    }
    Ok(new)
}
