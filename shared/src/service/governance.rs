//! Platform-owned pipeline fields: owning team, criticality, and watches. Sync never writes
//! these (it updates only Airflow-owned attributes), and each write records who and when.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::api::PipelineView;
use crate::auth::Caller;
use crate::domain::model::{Criticality, Role};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::service::pipelines::{self, DEFAULT_DAYS};

/// Assigns (or, with `None`, clears) the owning team. The team must exist in the space.
pub async fn set_team(
    repo: &Repository,
    caller: &Caller,
    pipeline_id: Uuid,
    team_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<PipelineView> {
    caller.require(Role::Editor)?;
    // The pipeline first: an unknown pipeline is 404 whatever the body says.
    repo.get_pipeline(caller.space_id, pipeline_id)
        .await?
        .ok_or(Error::NotFound("Pipeline not found"))?;
    if let Some(team_id) = team_id
        && repo.get_team(caller.space_id, team_id).await?.is_none()
    {
        return Err(Error::UnknownTeam);
    }
    repo.set_pipeline_governance(
        caller.space_id,
        pipeline_id,
        Some(team_id),
        None,
        caller.user_id,
        now,
    )
    .await?;
    pipelines::get(repo, caller, pipeline_id, DEFAULT_DAYS, now).await
}

/// Sets (or, with `None`, clears) the criticality.
pub async fn set_criticality(
    repo: &Repository,
    caller: &Caller,
    pipeline_id: Uuid,
    criticality: Option<Criticality>,
    now: DateTime<Utc>,
) -> Result<PipelineView> {
    caller.require(Role::Editor)?;
    repo.set_pipeline_governance(
        caller.space_id,
        pipeline_id,
        None,
        Some(criticality),
        caller.user_id,
        now,
    )
    .await?;
    pipelines::get(repo, caller, pipeline_id, DEFAULT_DAYS, now).await
}

/// Sets the expected interval between successful runs (seconds), or with `None` lets it be
/// derived from the schedule (`domain::freshness`).
pub async fn set_freshness(
    repo: &Repository,
    caller: &Caller,
    pipeline_id: Uuid,
    interval_seconds: Option<u64>,
    now: DateTime<Utc>,
) -> Result<PipelineView> {
    caller.require(Role::Editor)?;
    repo.set_pipeline_platform_fields(
        caller.space_id,
        pipeline_id,
        None,
        None,
        Some(interval_seconds),
        caller.user_id,
        now,
    )
    .await?;
    pipelines::get(repo, caller, pipeline_id, DEFAULT_DAYS, now).await
}

/// The caller watches (`true`) or stops watching a pipeline; idempotent.
pub async fn set_watch(
    repo: &Repository,
    caller: &Caller,
    pipeline_id: Uuid,
    watch: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let pipeline = repo
        .get_pipeline(caller.space_id, pipeline_id)
        .await?
        .ok_or(Error::NotFound("Pipeline not found"))?;
    if watch {
        repo.put_watch(&pipeline, caller.user_id, now).await
    } else {
        repo.delete_watch(caller.space_id, caller.user_id, pipeline_id)
            .await
    }
}
