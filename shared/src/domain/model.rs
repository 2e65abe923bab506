//! Domain records: what the platform stores about spaces, people and mirrored Airflow objects.
//!
//! These are storage-independent (the repository adds key attributes around them) and
//! HTTP-independent (the API's JSON shapes live in [`crate::api`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A member's role in a space. Ordered: each role may do everything the previous one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub const ALL: [Criticality; 4] = [
        Criticality::Low,
        Criticality::Medium,
        Criticality::High,
        Criticality::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// Status of a DAG run (Airflow's `DagRunState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Success,
        RunStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Success | RunStatus::Failed)
    }
}

/// Status of a pipeline: its latest run's status, or `unknown` when it never ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PipelineStatus {
    Queued,
    Running,
    Success,
    Failed,
    Unknown,
}

impl PipelineStatus {
    pub const ALL: [PipelineStatus; 5] = [
        PipelineStatus::Queued,
        PipelineStatus::Running,
        PipelineStatus::Success,
        PipelineStatus::Failed,
        PipelineStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Unknown => "unknown",
            PipelineStatus::Queued => "queued",
            PipelineStatus::Running => "running",
            PipelineStatus::Success => "success",
            PipelineStatus::Failed => "failed",
        }
    }
}

impl From<RunStatus> for PipelineStatus {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Queued => PipelineStatus::Queued,
            RunStatus::Running => PipelineStatus::Running,
            RunStatus::Success => PipelineStatus::Success,
            RunStatus::Failed => PipelineStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Airflow,
}

impl Provider {
    pub const ALL: [Provider; 1] = [Provider::Airflow];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Airflow => "airflow",
        }
    }
}

/// Airflow run types this API knows (lower case, as Airflow spells them). Airflow 2's
/// `dataset_triggered` is stored as `asset_triggered`.
pub const RUN_TYPES: [&str; 6] = [
    "manual",
    "scheduled",
    "backfill",
    "asset_triggered",
    "asset_materialization",
    "operator_triggered",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub full_name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub space_id: Uuid,
    pub space_slug: String,
    pub user_id: Uuid,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: only a SHA-256 hash of the secret, never the secret itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The first characters of the key, safe to show, so people can tell their keys apart.
    pub display_prefix: String,
    pub key_hash: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: Uuid,
    pub space_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Which Airflow REST API a connector talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AirflowApiVersion {
    /// Airflow 2, `/api/v1`, HTTP basic auth.
    V1,
    /// Airflow 3, `/api/v2`, JWT from `POST /auth/token`.
    V2,
}

/// How a connector authenticates; the secret itself is never stored here, only where to find it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorAuth {
    /// Username + password: basic auth (Airflow 2) or exchanged for a JWT (Airflow 3).
    Password {
        username: String,
        password: SecretRef,
    },
    /// A static bearer token.
    Token { token: SecretRef },
}

/// Where a connector secret lives. Resolved only at sync or trigger time.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", content = "name", rename_all = "snake_case")]
pub enum SecretRef {
    /// An AWS Secrets Manager secret ARN (production).
    SecretsManager(String),
    /// The name of an environment variable of the syncing process (local use).
    Env(String),
    /// The value itself, kept in the embedded store (local use only: the admin command
    /// refuses it on DynamoDB).
    Stored(String),
}

/// Never prints a stored secret's value.
impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::SecretsManager(arn) => write!(f, "SecretsManager({arn})"),
            SecretRef::Env(name) => write!(f, "Env({name})"),
            SecretRef::Stored(_) => write!(f, "Stored(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub id: Uuid,
    pub space_id: Uuid,
    pub name: String,
    pub provider: Provider,
    pub base_url: String,
    pub api_version: AirflowApiVersion,
    pub auth: ConnectorAuth,
    pub created_by: Uuid,
    /// Editors (besides the creator and space admins) allowed to edit and sync it.
    #[serde(default)]
    pub editors: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The latest run of a pipeline, kept on the pipeline so lists need no run queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    pub id: Uuid,
    pub status: RunStatus,
    /// The run's position in time: start, else queued time, else logical date.
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub id: Uuid,
    pub space_id: Uuid,
    pub connector_id: Uuid,
    pub provider: Provider,
    pub dag_id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub schedule: Option<String>,
    pub is_paused: bool,
    pub is_active: bool,
    /// Raw DAG fields as Airflow returned them.
    #[serde(default)]
    pub provider_metadata: Value,
    pub synced_at: DateTime<Utc>,
    // Platform-owned fields: written only by governance endpoints, never by sync.
    #[serde(default)]
    pub team_id: Option<Uuid>,
    #[serde(default)]
    pub criticality: Option<Criticality>,
    #[serde(default)]
    pub governance_updated_by: Option<Uuid>,
    #[serde(default)]
    pub governance_updated_at: Option<DateTime<Utc>>,
    /// Platform-owned: a successful run is expected within this many seconds (`None` =
    /// derived from the schedule, see `domain::freshness`).
    #[serde(default)]
    pub freshness_interval_seconds: Option<u64>,
    // Maintained by ingestion.
    #[serde(default)]
    pub latest_run: Option<RunRef>,
    #[serde(default)]
    pub last_success: Option<RunRef>,
    #[serde(default)]
    pub last_failure: Option<RunRef>,
}

impl Pipeline {
    /// Order of the pipeline list: name (case-insensitive), then DAG id, then id — a total
    /// order, so pages are stable.
    pub fn list_order_key(&self) -> (String, String, Uuid) {
        (self.name.to_lowercase(), self.dag_id.clone(), self.id)
    }

    pub fn status(&self) -> PipelineStatus {
        self.latest_run
            .as_ref()
            .map_or(PipelineStatus::Unknown, |run| run.status.into())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: Uuid,
    pub space_id: Uuid,
    pub pipeline_id: Uuid,
    pub dag_id: String,
    pub dag_run_id: String,
    pub status: RunStatus,
    pub run_type: String,
    #[serde(default)]
    pub logical_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub queued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub longer_than_usual: bool,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub provider_metadata: Value,
    pub synced_at: DateTime<Utc>,
}

impl Run {
    /// Where the run sits in time: its start, else when it was queued, else its logical date,
    /// else when we first saw it.
    pub fn at(&self) -> DateTime<Utc> {
        self.started_at
            .or(self.queued_at)
            .or(self.logical_date)
            .unwrap_or(self.synced_at)
    }

    /// Seconds from start to end, once both are known.
    pub fn duration(&self) -> Option<f64> {
        duration_seconds(self.started_at, self.ended_at)
    }

    /// Whether `stored` already says everything this run says (ignoring when it was synced and
    /// the flag computed at ingestion), so a sync can skip writing it.
    pub fn same_as(&self, stored: &Run) -> bool {
        let normalise = |run: &Run| Run {
            synced_at: DateTime::<Utc>::MIN_UTC,
            longer_than_usual: false,
            ..run.clone()
        };
        normalise(self) == normalise(stored)
    }

    pub fn as_ref(&self) -> RunRef {
        RunRef {
            id: self.id,
            status: self.status,
            at: self.at(),
            started_at: self.started_at,
            ended_at: self.ended_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    pub id: Uuid,
    pub space_id: Uuid,
    pub pipeline_id: Uuid,
    pub run_id: Uuid,
    pub task_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    /// Airflow's task instance state, lower case (`none` when Airflow has not set one).
    pub status: String,
    pub try_number: u32,
    /// `-1` for unmapped tasks, as in Airflow.
    pub map_index: i64,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub longer_than_usual: bool,
}

impl TaskRun {
    /// Whether `stored` already says everything this try says (ignoring the computed flag).
    pub fn same_as(&self, stored: &TaskRun) -> bool {
        self == &TaskRun {
            longer_than_usual: self.longer_than_usual,
            ..stored.clone()
        }
    }

    pub fn duration(&self) -> Option<f64> {
        duration_seconds(self.started_at, self.ended_at)
    }
}

fn duration_seconds(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    let (start, end) = (start?, end?);
    let micros = (end - start).num_microseconds()?;
    Some((micros.max(0) as f64) / 1_000_000.0)
}

/// What a comment is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommentTarget {
    Run,
    TaskRun,
}

/// A platform annotation on a run or a task run (the platform's shared comment shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: Uuid,
    pub space_id: Uuid,
    pub target_type: CommentTarget,
    pub target_id: Uuid,
    pub run_id: Uuid,
    pub pipeline_id: Uuid,
    pub author_id: Uuid,
    /// The author's name when the comment was written (shown with it).
    pub author_name: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Uuid,
    pub edited: bool,
    /// Incremented by every edit; the `ETag` is derived from it.
    pub version: u64,
}

/// Longest comment, in characters, after trimming.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// Trims comment text and checks it is non-empty and not too long.
pub fn normalize_comment(content: &str) -> Result<String, String> {
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return Err("String should have at least 1 character after trimming".into());
    }
    if trimmed.chars().count() > MAX_COMMENT_CHARS {
        return Err(format!(
            "String should have at most {MAX_COMMENT_CHARS} characters"
        ));
    }
    Ok(trimmed.to_string())
}
