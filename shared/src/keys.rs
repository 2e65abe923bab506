//! Every key of the single-table design, in one place. `docs/TABLE_DESIGN.md` lists the access
//! patterns that use them; keep the two in step.
//!
//! Timestamps inside sort keys use [`stamp`]: fixed-width UTC with microseconds, so byte order
//! is time order.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::Key;

/// Fixed-width, sortable UTC timestamp (`2026-11-28T13:24:10.123456Z`).
pub fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

// Spaces are addressed by slug in every URL, so the slug partition holds the space and its
// memberships: one GetItem answers "is this user a member of this space, with which role".
pub fn space(slug: &str) -> Key {
    Key::new(format!("SLUG#{slug}"), "SPACE")
}

/// A space's slug by its id (written with the space): what links to a space's objects need
/// where only its id is known (pipeline events).
pub fn space_by_id(space_id: Uuid) -> Key {
    Key::new(format!("SPACEID#{space_id}"), "SPACE")
}

pub fn membership(slug: &str, user_id: Uuid) -> Key {
    Key::new(format!("SLUG#{slug}"), format!("MEMBER#{user_id}"))
}

/// GSI1 of a membership: a user's spaces.
pub fn membership_gsi1(user_id: Uuid, slug: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("MEMBER#{slug}"))
}

pub fn user(user_id: Uuid) -> Key {
    Key::new(format!("USER#{user_id}"), "USER")
}

/// API keys are found by the hash of the presented secret.
pub fn api_key(key_hash: &str) -> Key {
    Key::new(format!("APIKEY#{key_hash}"), "APIKEY")
}

/// GSI1 of an API key: found by its public id (to revoke it).
pub fn api_key_gsi1(key_id: Uuid) -> (String, String) {
    (format!("APIKEYID#{key_id}"), "APIKEY".to_string())
}

// Space-owned objects live in the space's partition, so reading one by id is a GetItem that
// can only find it in the addressed space.
pub fn space_partition(space_id: Uuid) -> String {
    format!("SPACE#{space_id}")
}

pub fn team(space_id: Uuid, team_id: Uuid) -> Key {
    Key::new(space_partition(space_id), format!("TEAM#{team_id}"))
}

pub fn connector(space_id: Uuid, connector_id: Uuid) -> Key {
    Key::new(
        space_partition(space_id),
        format!("CONNECTOR#{connector_id}"),
    )
}

pub const CONNECTOR_PREFIX: &str = "CONNECTOR#";

/// GSI1 of a connector: every connector of every space (for the scheduled sync).
pub fn connector_gsi1(connector_id: Uuid) -> (String, String) {
    ("CONNECTORS".to_string(), connector_id.to_string())
}

pub fn pipeline(space_id: Uuid, pipeline_id: Uuid) -> Key {
    Key::new(space_partition(space_id), format!("PIPELINE#{pipeline_id}"))
}

/// The space's pipeline listing: one small entry per pipeline (the fields the list filters
/// and sorts on, written in the same transaction as the pipeline item they summarise), the
/// watches next to their entry, and the listing version first. One query of this prefix is
/// the whole list's read; Airflow's DAG objects stay in the pipeline items.
pub const LISTING_PREFIX: &str = "LIST#";

/// A pipeline's listing entry (`repo::listing`).
pub fn listing_entry(space_id: Uuid, pipeline_id: Uuid) -> Key {
    Key::new(
        space_partition(space_id),
        format!("{LISTING_PREFIX}{pipeline_id}"),
    )
}

/// The version of a space's pipeline listing: a counter every write to a pipeline or watch
/// item of the space increments after the write (see `repo::listing`). Its sort key is the
/// bare prefix, so it sorts first in the query that lists the space's pipelines and is read
/// before them: a listing cached with this version has seen every write it counted.
pub fn pipeline_listing_version(space_id: Uuid) -> Key {
    Key::new(space_partition(space_id), LISTING_PREFIX)
}

/// The pipeline's run series (summary source), next to its task histories.
pub fn run_series(pipeline_id: Uuid) -> Key {
    Key::new(format!("PIPELINE#{pipeline_id}"), "SERIES")
}

pub fn task_history(pipeline_id: Uuid, task_id: &str) -> Key {
    Key::new(
        format!("PIPELINE#{pipeline_id}"),
        format!("TASKHIST#{task_id}"),
    )
}

/// A run and its task runs share a partition: one query reads a run with all its task runs.
pub fn run_partition(run_id: Uuid) -> String {
    format!("RUN#{run_id}")
}

pub fn run(run_id: Uuid) -> Key {
    Key::new(run_partition(run_id), "RUN")
}

/// GSI1 of a run: a pipeline's runs in time order.
pub fn run_gsi1(pipeline_id: Uuid, at: DateTime<Utc>, run_id: Uuid) -> (String, String) {
    (runs_of(pipeline_id), format!("{}#{run_id}", stamp(at)))
}

pub fn runs_of(pipeline_id: Uuid) -> String {
    format!("RUNS#{pipeline_id}")
}

pub const TASK_RUN_PREFIX: &str = "TASKRUN#";

pub fn task_run(run_id: Uuid, task_id: &str, map_index: i64, try_number: u32) -> Key {
    // Offsetting map_index by one keeps -1 (unmapped) sortable as a fixed-width number.
    Key::new(
        run_partition(run_id),
        format!(
            "{TASK_RUN_PREFIX}{task_id}#{:010}#{try_number:05}",
            map_index.saturating_add(1).max(0)
        ),
    )
}

/// GSI1 of a task run: found by its id (comments address task runs by id).
pub fn task_run_gsi1(task_run_id: Uuid) -> (String, String) {
    (format!("TASKRUN#{task_run_id}"), "TASKRUN".to_string())
}

/// A user's watch of a pipeline. It sorts right after its pipeline's listing entry, so the
/// query that lists a space's pipelines (`begins_with LIST#`) returns the watches too: the
/// pipeline list costs one query for entries and watches. Watch items are small (keys and a
/// timestamp), so they add little to that query.
pub fn watch(space_id: Uuid, user_id: Uuid, pipeline_id: Uuid) -> Key {
    Key::new(
        space_partition(space_id),
        format!("{LISTING_PREFIX}{pipeline_id}{WATCH_INFIX}{user_id}"),
    )
}

/// Marks a watch's sort key (`LIST#<pipeline>#WATCH#<user>`).
pub const WATCH_INFIX: &str = "#WATCH#";

/// A comment, read and written by id.
pub fn comment(comment_id: Uuid) -> Key {
    Key::new(format!("COMMENT#{comment_id}"), "COMMENT")
}

/// A comment's entry in its target's list (a copy, written in the same transaction), so
/// listing is one strongly consistent query in creation order.
pub fn comment_entry(target_id: Uuid, created_at: DateTime<Utc>, comment_id: Uuid) -> Key {
    Key::new(
        comments_of(target_id),
        format!("{}#{comment_id}", stamp(created_at)),
    )
}

pub fn comments_of(target_id: Uuid) -> String {
    format!("COMMENTS#{target_id}")
}

/// A connector's sync bookkeeping shares one partition: lease, checkpoint, sync records.
pub fn connector_partition(connector_id: Uuid) -> String {
    format!("CONNECTOR#{connector_id}")
}

/// The lease that keeps two syncs of one connector from running at once.
pub fn sync_lease(connector_id: Uuid) -> Key {
    Key::new(connector_partition(connector_id), "LEASE")
}

pub fn sync_checkpoint(connector_id: Uuid) -> Key {
    Key::new(connector_partition(connector_id), "CHECKPOINT")
}

pub const SYNC_RECORD_PREFIX: &str = "SYNC#";

/// A sync record, in time order within the connector's partition.
pub fn sync_record(connector_id: Uuid, started_at: DateTime<Utc>, sync_id: Uuid) -> Key {
    Key::new(
        connector_partition(connector_id),
        format!("{SYNC_RECORD_PREFIX}{}#{sync_id}", stamp(started_at)),
    )
}

/// A trigger's `Idempotency-Key`, per space and caller (the key is stored hashed).
pub fn idempotency(space_id: Uuid, user_id: Uuid, key_hash: &str) -> Key {
    Key::new(
        format!("IDEMPOTENCY#{space_id}#{user_id}"),
        format!("KEY#{key_hash}"),
    )
}

/// A key's request counter for one rate-limit window (removed by the table's TTL).
pub fn rate_window(key_id: Uuid, window_start: i64) -> Key {
    Key::new(format!("RATE#{key_id}"), format!("WINDOW#{window_start}"))
}

/// An event, addressed by its deterministic id: the `attribute_not_exists` condition of its
/// write is what makes it exactly once (see `domain::events`).
pub fn event(event_id: Uuid) -> Key {
    Key::new(format!("EVENT#{event_id}"), "EVENT")
}

/// GSI1 of an event: the space's feed, in the order events were detected.
pub fn event_gsi1(space_id: Uuid, detected_at: DateTime<Utc>, event_id: Uuid) -> (String, String) {
    (
        events_of(space_id),
        format!("{}#{event_id}", stamp(detected_at)),
    )
}

pub fn events_of(space_id: Uuid) -> String {
    format!("EVENTS#{space_id}")
}

/// The events still to publish (EventBridge, webhook): one small partition, in the order
/// they were detected, and within one detection in the order they happened. An entry is
/// written in the same transaction as its event and deleted once published.
pub const OUTBOX_PARTITION: &str = "OUTBOX";

pub fn outbox_entry(detected_at: DateTime<Utc>, occurred_at: DateTime<Utc>, event_id: Uuid) -> Key {
    Key::new(
        OUTBOX_PARTITION,
        format!("{}#{}#{event_id}", stamp(detected_at), stamp(occurred_at)),
    )
}
