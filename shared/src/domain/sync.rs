//! What a connector sync records: its outcome, counts and where the next sync resumes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who started a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncTrigger {
    Manual,
    Scheduled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    /// Under way (or interrupted by a crash, until the next sync marks it failed).
    Running,
    /// Everything Airflow had changed is mirrored.
    Succeeded,
    /// Stopped early (time budget) or finished with warnings; the next sync resumes from the
    /// checkpoint.
    Partial,
    /// Stopped by an error before finishing; the next sync resumes from the checkpoint.
    Failed,
}

/// Objects of one kind a sync looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SyncCounts {
    pub pipelines: Counts,
    pub runs: Counts,
    pub task_runs: Counts,
}

/// One sync of one connector, as stored (the API shows it as `api::SyncView`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub id: Uuid,
    pub connector_id: Uuid,
    pub space_id: Uuid,
    pub trigger: SyncTrigger,
    /// The user who asked for a manual sync.
    pub triggered_by: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: SyncStatus,
    pub counts: SyncCounts,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// HTTP requests sent to Airflow.
    pub airflow_requests: u64,
    /// True when the sync stopped before finishing (time budget or error) and the next sync
    /// resumes from its checkpoint.
    pub pending: bool,
}

/// Where the next sync of a connector starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Everything Airflow changed before this instant is mirrored (the last complete sync's
    /// start, minus the overlap window).
    pub watermark: Option<DateTime<Utc>>,
    /// When the last sync ended, complete or not (the scheduled sync's "is it due").
    pub last_finished_at: Option<DateTime<Utc>>,
    /// An unfinished sync: the next one resumes it instead of starting over.
    pub pending: Option<PendingSync>,
}

/// Progress of an unfinished sync. Runs and task instances are read in Airflow's `id` order
/// (stable: an update never moves an item), so an offset is a safe resume point: items that
/// enter the filtered set later were updated after the sync began and are read by the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingSync {
    /// The sync record currently doing this work (found by id and start).
    pub sync_id: Uuid,
    pub record_started_at: DateTime<Utc>,
    /// When the work began (the watermark moves to this, minus the overlap, on completion).
    pub started_at: DateTime<Utc>,
    /// The `updated_at` lower bound this sync reads with (None: everything).
    pub since: Option<DateTime<Utc>>,
    /// DAG runs read so far.
    pub runs_offset: u32,
    pub runs_complete: bool,
    /// Task instances read so far (once runs are complete).
    pub task_instances_offset: u32,
}
