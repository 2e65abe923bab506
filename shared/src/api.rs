//! The API's JSON response shapes (the contract in `docs/API.md`), built from domain records.
//! Absent values are `null`, never missing keys. What requests carry (path, query, bodies)
//! is declared in `http::inputs`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::model::{
    Comment, CommentTarget, Criticality, Pipeline, PipelineStatus, Provider, Run, RunRef,
    RunStatus, TaskRun,
};
use crate::domain::summary::{RunSeries, WindowStats, window_start};
use crate::domain::sync::{SyncCounts, SyncRecord, SyncStatus, SyncTrigger};
use crate::error::FieldError;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PipelineView {
    pub id: Uuid,
    pub connector_id: Uuid,
    pub provider: Provider,
    pub dag_id: String,
    pub name: String,
    pub description: Option<String>,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
    pub schedule: Option<String>,
    pub is_paused: bool,
    pub is_active: bool,
    pub status: PipelineStatus,
    pub team_id: Option<Uuid>,
    pub criticality: Option<Criticality>,
    /// The freshness interval an editor set (seconds), or null: derived from the schedule.
    pub expected_interval_seconds: Option<u64>,
    /// The interval the freshness check uses: the one set, else 1.5 × a plain interval or
    /// simple cron schedule's period; null when freshness is not checked (docs/EVENTS.md).
    pub freshness_interval_seconds: Option<u64>,
    pub watched: bool,
    pub summary: SummaryView,
    #[schema(value_type = Object)]
    pub provider_metadata: Value,
    pub synced_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SummaryView {
    /// The window, in days, the counts and durations cover.
    pub days: u32,
    pub runs_total: u64,
    pub runs_succeeded: u64,
    pub runs_failed: u64,
    pub success_rate: Option<f64>,
    pub duration_p50: Option<f64>,
    pub duration_p95: Option<f64>,
    pub duration_mean: Option<f64>,
    /// Whether `duration_p50`/`duration_p95` come (partly) from the hourly histograms of a
    /// pipeline with more runs than its series keeps one by one: then each is within 1 %
    /// (relative) of the exact value. Counts, success rate and mean are always exact.
    pub duration_percentiles_approximate: bool,
    pub last_run: Option<LastRunView>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Statuses of the last 10 finished runs in the window, newest first.
    pub recent_statuses: Vec<RunStatus>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastRunView {
    pub id: Uuid,
    pub status: RunStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl PipelineView {
    pub fn new(
        pipeline: Pipeline,
        series: &RunSeries,
        watched: bool,
        days: u32,
        now: DateTime<Utc>,
    ) -> Self {
        let start = window_start(now, days);
        let in_window = |run: &Option<RunRef>| run.clone().filter(|r| r.at >= start);
        let WindowStats {
            runs_total,
            runs_succeeded,
            runs_failed,
            success_rate,
            duration_p50,
            duration_p95,
            duration_mean,
            duration_percentiles_approximate,
            recent_statuses,
        } = series.window(now, days);
        let summary = SummaryView {
            days,
            runs_total,
            runs_succeeded,
            runs_failed,
            success_rate,
            duration_p50,
            duration_p95,
            duration_mean,
            duration_percentiles_approximate,
            last_run: in_window(&pipeline.latest_run).map(|r| LastRunView {
                id: r.id,
                status: r.status,
                started_at: r.started_at,
                ended_at: r.ended_at,
            }),
            last_success_at: in_window(&pipeline.last_success).and_then(|r| r.ended_at),
            last_failure_at: in_window(&pipeline.last_failure).and_then(|r| r.ended_at),
            recent_statuses,
        };
        let status = pipeline.status();
        let freshness_interval_seconds = crate::domain::freshness::effective_interval(&pipeline);
        Self {
            id: pipeline.id,
            connector_id: pipeline.connector_id,
            provider: pipeline.provider,
            dag_id: pipeline.dag_id,
            name: pipeline.name,
            description: pipeline.description,
            owners: pipeline.owners,
            tags: pipeline.tags,
            schedule: pipeline.schedule,
            is_paused: pipeline.is_paused,
            is_active: pipeline.is_active,
            status,
            team_id: pipeline.team_id,
            criticality: pipeline.criticality,
            expected_interval_seconds: pipeline.freshness_interval_seconds,
            freshness_interval_seconds,
            watched,
            summary,
            provider_metadata: pipeline.provider_metadata,
            synced_at: pipeline.synced_at,
            updated_by: pipeline.governance_updated_by,
            updated_at: pipeline.governance_updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub dag_id: String,
    pub dag_run_id: String,
    pub status: RunStatus,
    pub run_type: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds from start to end; null until the run has both.
    pub duration: Option<f64>,
    pub longer_than_usual: bool,
    pub note: Option<String>,
    #[schema(value_type = Object)]
    pub provider_metadata: Value,
    pub synced_at: DateTime<Utc>,
}

impl From<Run> for RunView {
    fn from(run: Run) -> Self {
        let duration = run.duration();
        Self {
            id: run.id,
            pipeline_id: run.pipeline_id,
            dag_id: run.dag_id,
            dag_run_id: run.dag_run_id,
            status: run.status,
            run_type: run.run_type,
            logical_date: run.logical_date,
            queued_at: run.queued_at,
            started_at: run.started_at,
            ended_at: run.ended_at,
            duration,
            longer_than_usual: run.longer_than_usual,
            note: run.note,
            provider_metadata: run.provider_metadata,
            synced_at: run.synced_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetailView {
    #[serde(flatten)]
    pub run: RunView,
    /// Every try of every task instance, ordered by task id, map index, try number.
    pub task_runs: Vec<TaskRunView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskRunView {
    pub id: Uuid,
    pub run_id: Uuid,
    pub task_id: String,
    pub display_name: String,
    pub operator: Option<String>,
    pub status: String,
    pub try_number: u32,
    pub map_index: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub longer_than_usual: bool,
}

impl From<TaskRun> for TaskRunView {
    fn from(task_run: TaskRun) -> Self {
        let duration = task_run.duration();
        Self {
            id: task_run.id,
            run_id: task_run.run_id,
            display_name: task_run
                .display_name
                .unwrap_or_else(|| task_run.task_id.clone()),
            task_id: task_run.task_id,
            operator: task_run.operator,
            status: task_run.status,
            try_number: task_run.try_number,
            map_index: task_run.map_index,
            started_at: task_run.started_at,
            ended_at: task_run.ended_at,
            duration,
            longer_than_usual: task_run.longer_than_usual,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthorView {
    pub id: Uuid,
    pub full_name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommentView {
    pub id: Uuid,
    pub target_type: CommentTarget,
    pub target_id: Uuid,
    pub run_id: Uuid,
    pub pipeline_id: Uuid,
    pub author: AuthorView,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Uuid,
    pub edited: bool,
    /// Incremented by every edit; the response's `ETag` is `"<version>"`.
    pub version: u64,
}

impl From<Comment> for CommentView {
    fn from(comment: Comment) -> Self {
        Self {
            id: comment.id,
            target_type: comment.target_type,
            target_id: comment.target_id,
            run_id: comment.run_id,
            pipeline_id: comment.pipeline_id,
            author: AuthorView {
                id: comment.author_id,
                full_name: comment.author_name,
            },
            content: comment.content,
            created_at: comment.created_at,
            updated_at: comment.updated_at,
            updated_by: comment.updated_by,
            edited: comment.edited,
            version: comment.version,
        }
    }
}

impl CommentView {
    /// The entity tag of this version of the comment.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// The platform's error body: `{"detail": "message"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// A 422 body: every invalid input, each with where it was (`loc`), what is wrong (`msg`) and
/// a machine-readable `type`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

/// One sync of one connector.
///
/// The response of `POST /connectors/{id}/sync` and the items of `GET /connectors/{id}/syncs`,
/// built from the stored [`SyncRecord`]; the schema keeps its published name.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = SyncRecord, description = "One sync of one connector.")]
pub struct SyncView {
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

impl From<SyncRecord> for SyncView {
    fn from(record: SyncRecord) -> Self {
        let SyncRecord {
            id,
            connector_id,
            space_id,
            trigger,
            triggered_by,
            started_at,
            finished_at,
            status,
            counts,
            warnings,
            error,
            airflow_requests,
            pending,
        } = record;
        Self {
            id,
            connector_id,
            space_id,
            trigger,
            triggered_by,
            started_at,
            finished_at,
            status,
            counts,
            warnings,
            error,
            airflow_requests,
            pending,
        }
    }
}

/// One pipeline event (docs/EVENTS.md): a transition the sync or the freshness check
/// detected. The same fields are the `detail` of the events published to EventBridge.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// Deterministic: the same transition always has the same id (deduplicate on it).
    pub id: Uuid,
    /// Version of this schema (also `detail.version` on EventBridge).
    pub version: u32,
    #[serde(rename = "type")]
    pub event_type: crate::domain::events::EventType,
    /// When the transition happened, as far as known (a run's end, a freshness deadline).
    pub occurred_at: DateTime<Utc>,
    /// When the platform noticed it: the feed's order and what `since` filters on.
    pub detected_at: DateTime<Utc>,
    pub space_id: Uuid,
    pub pipeline_id: Uuid,
    /// The pipeline's name and DAG id when the event was detected.
    pub pipeline_name: String,
    pub dag_id: String,
    pub run_id: Option<Uuid>,
    pub dag_run_id: Option<String>,
    pub task_run_id: Option<Uuid>,
    /// What the type adds: the run's status and times, the time elapsed, the deadline...
    #[schema(value_type = Object)]
    pub details: Value,
    pub links: EventLinks,
}

/// Paths of the API objects an event is about.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventLinks {
    pub pipeline: String,
    /// The run (with its task runs), when the event is about one.
    pub run: Option<String>,
}

impl EventView {
    pub fn of(event: crate::domain::events::Event, slug: &str) -> Self {
        let base = format!("/api/v1.0/spaces/{slug}/orchestration");
        Self {
            links: EventLinks {
                pipeline: format!("{base}/pipelines/{}", event.pipeline_id),
                run: event.run_id.map(|run| format!("{base}/runs/{run}")),
            },
            id: event.id,
            version: crate::domain::events::SCHEMA_VERSION,
            event_type: event.event_type,
            occurred_at: event.occurred_at,
            detected_at: event.detected_at,
            space_id: event.space_id,
            pipeline_id: event.pipeline_id,
            pipeline_name: event.pipeline_name,
            dag_id: event.dag_id,
            run_id: event.run_id,
            dag_run_id: event.dag_run_id,
            task_run_id: event.task_run_id,
            details: if event.details.is_null() {
                Value::Object(Default::default())
            } else {
                event.details
            },
        }
    }
}
