//! The due-connector loop of the scheduled sync: every Airflow connector that is due is synced,
//! a few at a time, within an overall time budget. A failing connector does not stop the
//! others; each outcome is logged as one structured line. The scheduled-sync function calls
//! [`run`] for each EventBridge event; the local `orchestration sync` command finds the due
//! connectors with [`due_connectors`].
//!
//! Due: never synced, an unfinished sync to resume, or the last sync ended at least
//! `interval` ago.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::model::Connector;
use crate::domain::sync::{SyncRecord, SyncTrigger};
use crate::repo::Repository;
use crate::secrets::SecretResolver;
use crate::service::connectors::client_for;
use crate::sync::{SyncOptions, sync_connector};

/// The target of this loop's log lines: the function crate's, where the loop lived first, so
/// log filters (`RUST_LOG=scheduled_sync_function=...`) and log queries keep working.
const LOG_TARGET: &str = "scheduled_sync_function";

#[derive(Debug, Clone)]
pub struct Settings {
    /// A connector is due when its last sync ended at least this long ago.
    pub interval: chrono::Duration,
    /// Connectors synced at the same time.
    pub concurrency: usize,
    /// Longest any single connector's sync may take.
    pub per_connector_budget: Duration,
    /// Where the run's pipeline events go (after the syncs and the freshness check).
    pub publisher: crate::publish::SharedPublisher,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: chrono::Duration::minutes(15),
            concurrency: 4,
            per_connector_budget: Duration::from_secs(240),
            publisher: Default::default(),
        }
    }
}

/// What happened to one connector.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorOutcome {
    pub connector_id: Uuid,
    pub space_id: Uuid,
    /// `succeeded`, `partial`, `failed`, or `skipped` (another sync held the lease, or no time left).
    pub outcome: String,
    pub record: Option<SyncRecord>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The run as a whole, returned to the Lambda runtime.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub due: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub outcomes: Vec<ConnectorOutcome>,
    /// New `freshness_breached` events of this run (spaces with a connector).
    pub freshness_breaches: usize,
    /// Pipeline events published (or left for the next run) at the end of the run.
    pub delivery: crate::publish::Delivery,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduledSyncError {
    /// The store could not list connectors; the next schedule retries.
    #[error("could not list connectors: {0}")]
    Store(#[from] crate::Error),
}

/// The connectors that are due now.
pub async fn due_connectors(
    repo: &Repository,
    interval: chrono::Duration,
) -> Result<Vec<Connector>, crate::Error> {
    due_among(repo, repo.list_all_connectors().await?, interval).await
}

/// Those of `connectors` that are due now.
async fn due_among(
    repo: &Repository,
    connectors: Vec<Connector>,
    interval: chrono::Duration,
) -> Result<Vec<Connector>, crate::Error> {
    let now = Utc::now();
    let mut due = Vec::new();
    for connector in connectors {
        let checkpoint = repo.get_checkpoint(connector.id).await?;
        let is_due = checkpoint.pending.is_some()
            || checkpoint
                .last_finished_at
                .is_none_or(|at| now - at >= interval);
        if is_due {
            due.push(connector);
        }
    }
    Ok(due)
}

/// Syncs the given connectors, `settings.concurrency` at a time, stopping before `deadline`.
pub async fn sync_all(
    repo: &Repository,
    secrets: &SecretResolver,
    connectors: Vec<Connector>,
    trigger: SyncTrigger,
    settings: &Settings,
    deadline: Instant,
) -> Summary {
    let due = connectors.len();
    let outcomes: Vec<ConnectorOutcome> = futures::stream::iter(connectors)
        .map(|connector| sync_one(repo, secrets, connector, trigger, settings, deadline))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    let succeeded = outcomes.iter().filter(|o| o.outcome == "succeeded").count();
    let failed = outcomes.iter().filter(|o| o.outcome == "failed").count();
    Summary {
        due,
        succeeded,
        failed,
        outcomes,
        freshness_breaches: 0,
        delivery: Default::default(),
    }
}

async fn sync_one(
    repo: &Repository,
    secrets: &SecretResolver,
    connector: Connector,
    trigger: SyncTrigger,
    settings: &Settings,
    deadline: Instant,
) -> ConnectorOutcome {
    let started = Instant::now();
    let remaining = deadline.saturating_duration_since(started);
    let mut outcome = ConnectorOutcome {
        connector_id: connector.id,
        space_id: connector.space_id,
        outcome: "skipped".into(),
        record: None,
        error: None,
        duration_ms: 0,
    };
    // Less than a few seconds left: leave it to the next run rather than start and stop.
    if remaining < Duration::from_secs(5) {
        outcome.error = Some("no time left in this run".into());
    } else {
        match client_for(&connector, secrets, Default::default()).await {
            Err(reason) => {
                outcome.outcome = "failed".into();
                outcome.error = Some(format!("connector credentials: {reason}"));
            }
            Ok(client) => {
                let budget = remaining.min(settings.per_connector_budget);
                // In-flight Airflow calls end with the budget too: a hanging Airflow cannot
                // hold the run past its deadline.
                let client = client.with_deadline(started + budget);
                let options = SyncOptions::new(trigger, budget);
                match sync_connector(repo, &client, &connector, options).await {
                    Ok(record) => {
                        outcome.outcome = serde_json::to_value(record.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default();
                        outcome.error = record.error.clone();
                        outcome.record = Some(record);
                    }
                    Err(crate::Error::Conflict(message)) => outcome.error = Some(message),
                    Err(error) => {
                        outcome.outcome = "failed".into();
                        outcome.error = Some(error.to_string());
                    }
                }
            }
        }
    }
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    log_outcome(&outcome);
    outcome
}

/// One structured line per connector (JSON in Lambda), and its metrics (EMF): syncs and
/// failures by outcome, duration, items written.
fn log_outcome(outcome: &ConnectorOutcome) {
    let failed = if outcome.outcome == "failed" {
        1.0
    } else {
        0.0
    };
    let written = outcome.record.as_ref().map_or(0, |r| {
        let c = r.counts;
        c.pipelines.added
            + c.pipelines.updated
            + c.runs.added
            + c.runs.updated
            + c.task_runs.added
            + c.task_runs.updated
    });
    // The connector and its space are properties, not dimensions: a dimension value is a
    // billed metric per connector (docs/OPERATIONS.md has the Logs Insights query by connector).
    crate::telemetry::emit(
        &crate::telemetry::CONNECTOR_SYNC,
        std::slice::from_ref(&outcome.outcome),
        &[1.0, failed, outcome.duration_ms as f64, written as f64],
        &[
            ("ConnectorId", serde_json::json!(outcome.connector_id)),
            ("SpaceId", serde_json::json!(outcome.space_id)),
            ("Error", serde_json::json!(outcome.error)),
        ],
    );
    let counts = outcome
        .record
        .as_ref()
        .map(|r| r.counts)
        .unwrap_or_default();
    tracing::info!(
        target: LOG_TARGET,
        connector_id = %outcome.connector_id,
        space_id = %outcome.space_id,
        outcome = %outcome.outcome,
        error = outcome.error.as_deref().unwrap_or(""),
        duration_ms = outcome.duration_ms,
        pipelines_added = counts.pipelines.added,
        pipelines_updated = counts.pipelines.updated,
        runs_added = counts.runs.added,
        runs_updated = counts.runs.updated,
        task_runs_added = counts.task_runs.added,
        task_runs_updated = counts.task_runs.updated,
        airflow_requests = outcome.record.as_ref().map_or(0, |r| r.airflow_requests),
        "connector sync"
    );
}

/// The scheduled run: every due connector, within `deadline`, then the run's heartbeat metric.
pub async fn run(
    repo: &Repository,
    secrets: &SecretResolver,
    settings: &Settings,
    deadline: Instant,
) -> Result<Summary, ScheduledSyncError> {
    let connectors = repo.list_all_connectors().await?;
    let spaces: BTreeSet<Uuid> = connectors.iter().map(|c| c.space_id).collect();
    let due = due_among(repo, connectors, settings.interval).await?;
    let mut summary = sync_all(
        repo,
        secrets,
        due,
        SyncTrigger::Scheduled,
        settings,
        deadline,
    )
    .await;
    // After the syncs (a success they just mirrored is no breach), even when Airflow is
    // silent or unreachable. A store failure here is logged; the next run checks again.
    match crate::service::freshness::check_spaces(repo, &spaces, Utc::now()).await {
        Ok(new) => summary.freshness_breaches = new,
        Err(error) => {
            tracing::warn!(target: LOG_TARGET, %error, "freshness check failed");
        }
    }
    // Publishing never fails the run; what is not published stays for the next one.
    let left = deadline.saturating_duration_since(Instant::now());
    summary.delivery = settings.publisher.deliver_within(repo, left).await;
    // The heartbeat: a run that got this far emits it whatever its connectors' outcomes (they
    // have their own metrics); a run that failed, timed out or never started does not, and the
    // heartbeat alarm treats the missing data as breaching.
    crate::telemetry::emit(
        &crate::telemetry::SYNC_RUN,
        &[],
        &[1.0, summary.due as f64, summary.failed as f64],
        &[("Succeeded", serde_json::json!(summary.succeeded))],
    );
    Ok(summary)
}
