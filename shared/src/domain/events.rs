//! Pipeline events: the transitions of a mirrored pipeline that a data team cares about,
//! detected by the sync and by the scheduled freshness check.
//!
//! Exactly once: an event's id is a UUIDv5 of its pipeline, its type and the identity of the
//! transition (e.g. the run and the end time it failed at), never of when it was noticed. The
//! store writes an event only if no item with its id exists, in the same transaction as the
//! write that records the transition where there is one (a run group's ingest, the pipeline's
//! metadata), so a retried, resumed or re-run sync can notice a transition again but never
//! stores it twice (docs/EVENTS.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::model::{Pipeline, Run, RunStatus, TaskRun};
use crate::domain::summary::{RunSample, RunSeries, TaskHistory, run_key, same_run};
use crate::keys::stamp;

/// Version of the `detail` schema of published events and of the feed's items.
pub const SCHEMA_VERSION: u32 = 1;

/// How long events are kept unless configured (`ORCHESTRATION_EVENT_RETENTION_DAYS`).
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A run ended `failed`.
    RunFailed,
    /// A run ended `success` while the previous finished run of the pipeline had failed.
    RunRecovered,
    /// A run still running has taken longer than the pipeline's runs usually take.
    RunLongerThanUsual,
    /// A task try still running has taken longer than the task's tries usually take.
    TaskRunLongerThanUsual,
    /// The DAG was removed from Airflow or became stale: the pipeline is inactive.
    PipelineInactive,
    /// An inactive pipeline's DAG is back in Airflow.
    PipelineActive,
    PipelinePaused,
    PipelineUnpaused,
    /// No successful run within the pipeline's expected interval.
    FreshnessBreached,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::RunFailed,
        EventType::RunRecovered,
        EventType::RunLongerThanUsual,
        EventType::TaskRunLongerThanUsual,
        EventType::PipelineInactive,
        EventType::PipelineActive,
        EventType::PipelinePaused,
        EventType::PipelineUnpaused,
        EventType::FreshnessBreached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RunFailed => "run_failed",
            EventType::RunRecovered => "run_recovered",
            EventType::RunLongerThanUsual => "run_longer_than_usual",
            EventType::TaskRunLongerThanUsual => "task_run_longer_than_usual",
            EventType::PipelineInactive => "pipeline_inactive",
            EventType::PipelineActive => "pipeline_active",
            EventType::PipelinePaused => "pipeline_paused",
            EventType::PipelineUnpaused => "pipeline_unpaused",
            EventType::FreshnessBreached => "freshness_breached",
        }
    }

    /// EventBridge's `detail-type` of this event type (documented in docs/EVENTS.md).
    pub fn detail_type(self) -> &'static str {
        match self {
            EventType::RunFailed => "Pipeline Run Failed",
            EventType::RunRecovered => "Pipeline Run Recovered",
            EventType::RunLongerThanUsual => "Pipeline Run Longer Than Usual",
            EventType::TaskRunLongerThanUsual => "Pipeline Task Run Longer Than Usual",
            EventType::PipelineInactive => "Pipeline Inactive",
            EventType::PipelineActive => "Pipeline Active",
            EventType::PipelinePaused => "Pipeline Paused",
            EventType::PipelineUnpaused => "Pipeline Unpaused",
            EventType::FreshnessBreached => "Pipeline Freshness Breached",
        }
    }
}

/// One stored event. `details` holds what the type adds (status, durations, the deadline...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    pub space_id: Uuid,
    pub pipeline_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the transition happened (the run's end, the deadline passed...), as far as known.
    pub occurred_at: DateTime<Utc>,
    /// When the platform noticed it (the feed's order).
    pub detected_at: DateTime<Utc>,
    /// The pipeline's name and DAG id when the event was detected.
    pub pipeline_name: String,
    pub dag_id: String,
    #[serde(default)]
    pub run_id: Option<Uuid>,
    #[serde(default)]
    pub dag_run_id: Option<String>,
    #[serde(default)]
    pub task_run_id: Option<Uuid>,
    #[serde(default)]
    pub details: Value,
}

/// The id of an event: v5 in the pipeline's namespace (itself derived from its connector and
/// so its space) of the type and the transition's identity.
pub fn event_id(pipeline_id: Uuid, event_type: EventType, identity: &str) -> Uuid {
    Uuid::new_v5(
        &pipeline_id,
        format!("event/{}/{identity}", event_type.as_str()).as_bytes(),
    )
}

impl Event {
    /// An event of `pipeline` with its deterministic id.
    pub fn new(
        pipeline: &Pipeline,
        event_type: EventType,
        identity: &str,
        occurred_at: DateTime<Utc>,
        detected_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: event_id(pipeline.id, event_type, identity),
            space_id: pipeline.space_id,
            pipeline_id: pipeline.id,
            event_type,
            occurred_at,
            detected_at,
            pipeline_name: pipeline.name.clone(),
            dag_id: pipeline.dag_id.clone(),
            run_id: None,
            dag_run_id: None,
            task_run_id: None,
            details: Value::Null,
        }
    }

    fn for_run(mut self, run: &Run) -> Self {
        self.run_id = Some(run.id);
        self.dag_run_id = Some(run.dag_run_id.clone());
        self
    }
}

/// The run transition `run` makes against the pipeline's series as it was before `run` was
/// merged into it: `run_failed` when it ended failed (and the series did not already hold it
/// failed with the same timing: a re-run that fails again is a new transition),
/// `run_recovered` when it ended successfully and the previous finished run had failed.
pub fn run_transition(
    pipeline: &Pipeline,
    series: &RunSeries,
    run: &Run,
    now: DateTime<Utc>,
) -> Option<Event> {
    let sample = RunSample::of(run);
    let stored = series
        .samples()
        .iter()
        .find(|s| same_run(s.key, run_key(run.id)));
    let same = |s: &&RunSample| {
        s.at == sample.at && s.status == sample.status && s.duration_us == sample.duration_us
    };
    if stored.is_some_and(|s| same(&s)) {
        return None;
    }
    let ended = run.ended_at.unwrap_or(now);
    // The end time is part of the identity: a cleared run that fails again is another event.
    let identity = format!("{}/{}", run.id, stamp(ended));
    let event_type = match run.status {
        RunStatus::Failed => EventType::RunFailed,
        RunStatus::Success if stored.is_none_or(|s| s.status != RunStatus::Success) => {
            let previous = series
                .samples()
                .iter()
                .rev()
                .filter(|s| s.at < sample.at && !same_run(s.key, sample.key))
                .find(|s| s.status.is_finished())?;
            if previous.status != RunStatus::Failed {
                return None;
            }
            EventType::RunRecovered
        }
        _ => return None,
    };
    let mut event = Event::new(pipeline, event_type, &identity, ended, now).for_run(run);
    event.details = serde_json::json!({
        "status": run.status.as_str(),
        "run_type": run.run_type,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_seconds": run.duration(),
    });
    Some(event)
}

/// The transitions between a stored pipeline and what Airflow says now (paused, unpaused,
/// inactive, active). The identity is the stored pipeline's last metadata write
/// (`synced_at`): every change of Airflow's fields writes it anew, so each transition has its
/// own, and noticing the same one again (a retried sync) gives the same id.
pub fn pipeline_transitions(old: &Pipeline, new: &Pipeline, now: DateTime<Utc>) -> Vec<Event> {
    let identity = stamp(old.synced_at);
    let mut events = Vec::new();
    let mut push = |event_type: EventType| {
        let mut event = Event::new(new, event_type, &identity, now, now);
        event.details = serde_json::json!({
            "is_paused": new.is_paused,
            "is_active": new.is_active,
        });
        events.push(event);
    };
    if old.is_active != new.is_active {
        push(if new.is_active {
            EventType::PipelineActive
        } else {
            EventType::PipelineInactive
        });
    }
    if old.is_paused != new.is_paused {
        push(if new.is_paused {
            EventType::PipelinePaused
        } else {
            EventType::PipelineUnpaused
        });
    }
    events
}

/// A run still running at `now` that has taken longer than the pipeline's runs usually take
/// (the `longer_than_usual` rule of finished runs, applied to the time elapsed so far): one
/// event per run start.
pub fn running_run(
    pipeline: &Pipeline,
    series: &RunSeries,
    run_id: Uuid,
    dag_run_id: &str,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Event> {
    let elapsed = (now - started_at).num_microseconds()?;
    let as_if_finished = RunSample {
        key: run_key(run_id),
        at: started_at.timestamp_micros(),
        status: RunStatus::Success,
        duration_us: Some(u64::try_from(elapsed).ok()?),
    };
    if !series.is_longer_than_usual(&as_if_finished) {
        return None;
    }
    let identity = format!("{run_id}/{}", stamp(started_at));
    let mut event = Event::new(pipeline, EventType::RunLongerThanUsual, &identity, now, now);
    event.run_id = Some(run_id);
    event.dag_run_id = Some(dag_run_id.to_string());
    event.details = serde_json::json!({
        "status": "running",
        "started_at": started_at,
        "elapsed_seconds": elapsed as f64 / 1_000_000.0,
    });
    Some(event)
}

/// A task try still running at `now` that has taken longer than the task's successful tries
/// usually take: one event per try.
pub fn running_try(
    pipeline: &Pipeline,
    history: &TaskHistory,
    task_run: &TaskRun,
    now: DateTime<Utc>,
) -> Option<Event> {
    if task_run.status != "running" {
        return None;
    }
    let started = task_run.started_at?;
    let elapsed = (now - started).num_milliseconds() as f64 / 1000.0;
    if elapsed <= 0.0 || !history.is_longer_than_usual(started.timestamp(), elapsed) {
        return None;
    }
    let identity = task_run.id.to_string();
    let mut event = Event::new(
        pipeline,
        EventType::TaskRunLongerThanUsual,
        &identity,
        now,
        now,
    );
    event.run_id = Some(task_run.run_id);
    event.task_run_id = Some(task_run.id);
    event.details = serde_json::json!({
        "status": "running",
        "task_id": task_run.task_id,
        "map_index": task_run.map_index,
        "try_number": task_run.try_number,
        "started_at": started,
        "elapsed_seconds": elapsed,
    });
    Some(event)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::domain::model::Provider;

    fn pipeline() -> Pipeline {
        Pipeline {
            id: Uuid::from_u128(7),
            space_id: Uuid::from_u128(1),
            connector_id: Uuid::from_u128(2),
            provider: Provider::Airflow,
            dag_id: "etl".into(),
            name: "ETL".into(),
            description: None,
            owners: vec![],
            tags: vec![],
            schedule: None,
            is_paused: false,
            is_active: true,
            provider_metadata: Value::Null,
            synced_at: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            team_id: None,
            criticality: None,
            governance_updated_by: None,
            governance_updated_at: None,
            freshness_interval_seconds: None,
            latest_run: None,
            last_success: None,
            last_failure: None,
        }
    }

    fn run(name: &str, hour: u32, status: RunStatus) -> Run {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap();
        Run {
            id: crate::domain::ids::run_id(pipeline().id, name),
            space_id: pipeline().space_id,
            pipeline_id: pipeline().id,
            dag_id: "etl".into(),
            dag_run_id: name.into(),
            status,
            run_type: "scheduled".into(),
            logical_date: None,
            queued_at: None,
            started_at: Some(start),
            ended_at: status.is_finished().then(|| start + Duration::minutes(10)),
            longer_than_usual: false,
            note: None,
            provider_metadata: Value::Null,
            synced_at: start,
        }
    }

    #[test]
    fn a_failure_is_one_event_and_a_failure_again_after_a_clear_another() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
        let mut series = RunSeries::default();
        let failed = run("a", 1, RunStatus::Failed);
        let event = run_transition(&pipeline(), &series, &failed, now).unwrap();
        assert_eq!(event.event_type, EventType::RunFailed);
        assert_eq!(event.occurred_at, failed.ended_at.unwrap());
        // Noticed again (a retried ingest): the same id.
        let later = now + Duration::hours(1);
        assert_eq!(
            run_transition(&pipeline(), &series, &failed, later).map(|e| e.id),
            Some(event.id)
        );
        // Once stored, the same failure (even with another note) is no transition.
        series.upsert(RunSample::of(&failed));
        let noted = Run {
            note: Some("known".into()),
            ..failed.clone()
        };
        assert!(run_transition(&pipeline(), &series, &noted, now).is_none());
        // Cleared and failed again later: another event.
        let again = Run {
            ended_at: Some(failed.ended_at.unwrap() + Duration::hours(2)),
            ..failed.clone()
        };
        let second = run_transition(&pipeline(), &series, &again, now).unwrap();
        assert_ne!(second.id, event.id);
    }

    #[test]
    fn a_success_recovers_only_after_a_failed_finished_run() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
        let mut series = RunSeries::default();
        let ok = run("b", 3, RunStatus::Success);
        assert!(run_transition(&pipeline(), &series, &ok, now).is_none());
        series.upsert(RunSample::of(&run("a", 1, RunStatus::Failed)));
        // A running run in between is not a finished one.
        series.upsert(RunSample::of(&run("r", 2, RunStatus::Running)));
        let event = run_transition(&pipeline(), &series, &ok, now).unwrap();
        assert_eq!(event.event_type, EventType::RunRecovered);
        series.upsert(RunSample::of(&ok));
        assert!(run_transition(&pipeline(), &series, &ok, now).is_none());
        // A success after that success recovers nothing.
        let next = run("c", 5, RunStatus::Success);
        assert!(run_transition(&pipeline(), &series, &next, now).is_none());
    }

    #[test]
    fn pause_and_removal_transitions_are_named_by_the_previous_write() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
        let old = pipeline();
        let paused = Pipeline {
            is_paused: true,
            is_active: false,
            synced_at: now,
            ..old.clone()
        };
        let events = pipeline_transitions(&old, &paused, now);
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [EventType::PipelineInactive, EventType::PipelinePaused]
        );
        assert_eq!(
            pipeline_transitions(&old, &paused, later(now))[0].id,
            events[0].id
        );
        // Unpaused then paused again: the later pause follows another write.
        let again = pipeline_transitions(
            &paused,
            &Pipeline {
                is_paused: false,
                ..paused.clone()
            },
            now,
        );
        assert_eq!(again[0].event_type, EventType::PipelineUnpaused);
        assert!(pipeline_transitions(&old, &old, now).is_empty());
    }

    fn later(now: DateTime<Utc>) -> DateTime<Utc> {
        now + Duration::minutes(5)
    }
}
