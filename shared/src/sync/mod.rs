//! Incremental sync of one Airflow connector into the store.
//!
//! A sync takes the connector's lease (a second concurrent sync gets a conflict), then:
//!
//! 1. reads every DAG and writes the pipelines whose Airflow fields changed; DAGs that are gone
//!    or stale in Airflow become `is_active = false` (nothing is deleted);
//! 2. reads the DAG runs updated since the watermark, in Airflow's `id` order, page by page,
//!    and ingests those that differ from what is stored;
//! 3. reads the task instances updated since the watermark the same way, fetching every try
//!    of those that were retried, and ingests the tries that differ.
//!
//! After every page the checkpoint records how far it got, so a sync stopped by its time
//! budget, an Airflow error or a crash is resumed by the next one without loss; ids are
//! deterministic, so reading an item twice never duplicates it. When a sync completes, the
//! watermark moves to its start minus an overlap window (clock skew and in-flight updates).
//! Platform-owned fields (team, criticality, watches, comments) are never written.

pub mod due;
mod engine;
pub mod mapping;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::airflow::AirflowClient;
use crate::domain::model::Connector;
use crate::domain::sync::{PendingSync, SyncCounts, SyncRecord, SyncStatus, SyncTrigger};
use crate::error::{Error, Result};
use crate::repo::Repository;

/// How far a sync has come, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Clone)]
pub struct SyncOptions {
    pub trigger: SyncTrigger,
    pub triggered_by: Option<Uuid>,
    /// The sync stops (status `partial`) once this much time has passed; the next resumes it.
    pub budget: Duration,
    /// Items per Airflow page (Airflow caps it at 100).
    pub page_size: u32,
    /// How far before a completed sync's start the next one re-reads (clock skew between
    /// Airflow and us, and updates committed while we were reading).
    pub overlap: chrono::Duration,
    /// The lease outlives the budget by this much, so a sync that overruns a little is not
    /// joined by a second one; a crashed sync's lease frees itself after budget + margin.
    pub lease_margin: chrono::Duration,
    pub progress: Option<ProgressFn>,
    /// The sync's clock (the time runs are judged against, e.g. how long a running run has
    /// taken); `None` = the system clock. Tests set it to move time without waiting.
    pub now: Option<chrono::DateTime<Utc>>,
}

impl SyncOptions {
    pub fn new(trigger: SyncTrigger, budget: Duration) -> Self {
        Self {
            trigger,
            triggered_by: None,
            budget,
            page_size: 100,
            overlap: chrono::Duration::minutes(5),
            lease_margin: chrono::Duration::minutes(2),
            progress: None,
            now: None,
        }
    }
}

/// Syncs one connector. `Err(Error::Conflict)` when another sync of it holds the lease; any
/// Airflow failure is recorded in the returned record (status `failed`), not returned as an
/// error. Store failures are errors.
pub async fn sync_connector(
    repo: &Repository,
    client: &AirflowClient,
    connector: &Connector,
    options: SyncOptions,
) -> Result<SyncRecord> {
    let holder = Uuid::new_v4();
    let lease =
        chrono::Duration::from_std(options.budget).unwrap_or_default() + options.lease_margin;
    if !repo
        .acquire_sync_lease(connector.id, holder, Utc::now(), lease)
        .await?
    {
        return Err(Error::Conflict(
            "A sync of this connector is already running".into(),
        ));
    }
    let result = sync_holding_lease(repo, client, connector, options).await;
    if let Err(error) = repo.release_sync_lease(connector.id, holder).await {
        // The lease expires by itself; the next sync just waits for that.
        tracing::warn!(connector_id = %connector.id, %error, "could not release the sync lease");
    }
    result
}

async fn sync_holding_lease(
    repo: &Repository,
    client: &AirflowClient,
    connector: &Connector,
    options: SyncOptions,
) -> Result<SyncRecord> {
    let now = Utc::now();
    let requests_before = client.requests_sent();
    let mut checkpoint = repo.get_checkpoint(connector.id).await?;
    let mut record = SyncRecord {
        id: Uuid::new_v4(),
        connector_id: connector.id,
        space_id: connector.space_id,
        trigger: options.trigger,
        triggered_by: options.triggered_by,
        started_at: now,
        finished_at: None,
        status: SyncStatus::Running,
        counts: SyncCounts::default(),
        warnings: Vec::new(),
        error: None,
        airflow_requests: 0,
        pending: false,
    };
    let pending = match checkpoint.pending.take() {
        Some(pending) => {
            close_interrupted(repo, connector, &pending, record.id).await?;
            record.warnings.push(format!(
                "resumed sync {} from its checkpoint",
                pending.sync_id
            ));
            PendingSync {
                sync_id: record.id,
                record_started_at: now,
                ..pending
            }
        }
        None => PendingSync {
            sync_id: record.id,
            record_started_at: now,
            started_at: now,
            since: checkpoint.watermark,
            runs_offset: 0,
            runs_complete: false,
            task_instances_offset: 0,
        },
    };
    // The pending state goes in first: a crash from here on is resumed by the next sync.
    checkpoint.pending = Some(pending.clone());
    repo.put_checkpoint(connector.id, &checkpoint).await?;
    repo.put_sync_record(&record).await?;

    let mut engine = engine::Engine::new(
        repo,
        client,
        connector,
        &options,
        pending,
        checkpoint.clone(),
    );
    let outcome = engine.run().await;
    let (pending, counts, warnings) = engine.finish();
    record.counts = counts;
    record.warnings.extend(warnings);
    match outcome {
        Ok(engine::Finish::Complete) => {
            checkpoint.watermark = Some(pending.started_at - options.overlap);
            checkpoint.pending = None;
            record.status = if record.warnings.iter().any(|w| w.starts_with("skipped")) {
                SyncStatus::Partial
            } else {
                SyncStatus::Succeeded
            };
        }
        Ok(engine::Finish::OutOfTime) => {
            checkpoint.pending = Some(pending);
            record.status = SyncStatus::Partial;
            record
                .warnings
                .push("time budget reached: the next sync resumes from here".into());
        }
        Err(engine::Stop::Airflow(error)) => {
            checkpoint.pending = Some(pending);
            record.status = SyncStatus::Failed;
            record.error = Some(format!("Airflow: {error}"));
        }
        Err(engine::Stop::Store(error)) => {
            // Try to leave a trace; the store may be what failed.
            record.status = SyncStatus::Failed;
            record.error = Some("the store failed during the sync".into());
            record.finished_at = Some(Utc::now());
            let _ = repo.put_sync_record(&record).await;
            return Err(error);
        }
    }
    let finished = Utc::now();
    record.pending = checkpoint.pending.is_some();
    checkpoint.last_finished_at = Some(finished);
    repo.put_checkpoint(connector.id, &checkpoint).await?;
    record.finished_at = Some(finished);
    record.airflow_requests = client.requests_sent() - requests_before;
    repo.put_sync_record(&record).await?;
    Ok(record)
}

/// A sync that crashed left its record `running`; the sync resuming its work closes it.
async fn close_interrupted(
    repo: &Repository,
    connector: &Connector,
    pending: &PendingSync,
    resumed_by: Uuid,
) -> Result<()> {
    let stale = repo
        .get_sync_record(
            connector.space_id,
            connector.id,
            pending.record_started_at,
            pending.sync_id,
        )
        .await?;
    if let Some(mut stale) = stale.filter(|r| r.status == SyncStatus::Running) {
        stale.status = SyncStatus::Failed;
        stale.error = Some(format!("interrupted; resumed by sync {resumed_by}"));
        stale.finished_at = Some(Utc::now());
        repo.put_sync_record(&stale).await?;
    }
    Ok(())
}
