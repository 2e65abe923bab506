//! Pipelines, their run series and watches.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::listing::ListingChange;
use super::{Repository, from_item, json, to_item};
use crate::domain::events::Event;
use crate::domain::model::{Criticality, Pipeline};
use crate::domain::summary::RunSeries;
use crate::error::{Error, Result};
use crate::keys;
use crate::store::{Condition, Item, Key, StoreError, TransactOp, Update};

/// A pipeline with what its summary is computed from, and whether the caller watches it.
#[derive(Debug, Clone)]
pub struct PipelineWithSeries {
    pub pipeline: Pipeline,
    pub series: RunSeries,
    pub watched: bool,
}

const SERIES_ATTR: &str = "series";
/// `kind` of a listing entry (short: it is read for every pipeline of every uncached list).
pub(crate) const LISTING_ENTRY_KIND: &str = "listing";

/// The revision a pipeline item and its listing entry share (see `domain::listing`).
pub(crate) const REVISION_ATTR: &str = "rev";

/// The revision of a stored pipeline or listing entry (0 before revisions existed).
pub(crate) fn revision_of(item: &Item) -> u64 {
    item.get(REVISION_ATTR).and_then(Value::as_u64).unwrap_or(0)
}

pub(crate) fn series_item(pipeline: &Pipeline, series: &RunSeries) -> Item {
    let key = keys::run_series(pipeline.id);
    let mut item = Item::new();
    item.insert("PK".into(), key.pk.into());
    item.insert("SK".into(), key.sk.into());
    item.insert("kind".into(), "run_series".into());
    item.insert("space_id".into(), pipeline.space_id.to_string().into());
    item.insert("pipeline_id".into(), pipeline.id.to_string().into());
    item.insert(SERIES_ATTR.into(), series.encode().into());
    item
}

pub(crate) fn decode_series(item: &Item) -> Result<RunSeries> {
    let text = item
        .get(SERIES_ATTR)
        .and_then(Value::as_str)
        .unwrap_or_default();
    RunSeries::decode(text).map_err(Error::internal)
}

pub(super) fn pipeline_id_of(item: &Item) -> Option<Uuid> {
    item.get("pipeline_id")?.as_str()?.parse().ok()
}

impl Repository {
    pub async fn get_pipeline(
        &self,
        space_id: Uuid,
        pipeline_id: Uuid,
    ) -> Result<Option<Pipeline>> {
        self.table
            .get(&keys::pipeline(space_id, pipeline_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// One pipeline with its series and the caller's watch, in a single batch read.
    pub async fn get_pipeline_with_series(
        &self,
        space_id: Uuid,
        user_id: Uuid,
        pipeline_id: Uuid,
    ) -> Result<Option<PipelineWithSeries>> {
        let pipeline_key = keys::pipeline(space_id, pipeline_id);
        let series_key = keys::run_series(pipeline_id);
        let watch_key = keys::watch(space_id, user_id, pipeline_id);
        let items = self
            .table
            .batch_get(&[pipeline_key.clone(), series_key.clone(), watch_key.clone()])
            .await?;
        let mut pipeline = None;
        let mut series = RunSeries::default();
        let mut watched = false;
        for item in items {
            match Key::of(&item) {
                Some(key) if key == pipeline_key => pipeline = Some(from_item::<Pipeline>(item)?),
                Some(key) if key == series_key => series = decode_series(&item)?,
                Some(key) if key == watch_key => watched = true,
                _ => {}
            }
        }
        Ok(pipeline.map(|pipeline| PipelineWithSeries {
            pipeline,
            series,
            watched,
        }))
    }

    /// Run series of the given pipelines (one batch read per 100 pipelines).
    pub async fn series_for(&self, pipeline_ids: &[Uuid]) -> Result<HashMap<Uuid, RunSeries>> {
        let keys: Vec<Key> = pipeline_ids
            .iter()
            .map(|id| keys::run_series(*id))
            .collect();
        let mut found = HashMap::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(found);
        }
        for item in self.table.batch_get(&keys).await? {
            if let Some(id) = pipeline_id_of(&item) {
                found.insert(id, decode_series(&item)?);
            }
        }
        Ok(found)
    }

    /// Creates or refreshes a pipeline's Airflow-owned fields. Platform-owned fields (team,
    /// criticality, governance audit) and ingestion's run references are never written here,
    /// so a sync cannot overwrite what users set, even when both happen at once.
    pub async fn upsert_pipeline_metadata(&self, pipeline: &Pipeline) -> Result<()> {
        self.upsert_pipeline_metadata_with_events(pipeline, Vec::new())
            .await
    }

    /// [`Repository::upsert_pipeline_metadata`] with the events of the change (paused,
    /// inactive...), written in the same transaction, each only if it is not stored yet: a
    /// retried sync that notices the same transition again writes the metadata only.
    pub async fn upsert_pipeline_metadata_with_events(
        &self,
        pipeline: &Pipeline,
        mut events: Vec<Event>,
    ) -> Result<()> {
        let key = keys::pipeline(pipeline.space_id, pipeline.id);
        // The entry holds only what the list filters and sorts on (its key names the space
        // and the pipeline): every byte of it is read by every uncached list of the space.
        let entry = Update::new()
            .set("kind", LISTING_ENTRY_KIND)
            .set("connector_id", pipeline.connector_id.to_string())
            .set("provider", pipeline.provider.as_str())
            .set("dag_id", pipeline.dag_id.clone())
            .set("name", pipeline.name.clone())
            .set_or_remove("description", pipeline.description.clone())
            .set("owners", json(&pipeline.owners)?)
            .set("tags", json(&pipeline.tags)?);
        let update = Update::new()
            .set("kind", "pipeline")
            .set("id", pipeline.id.to_string())
            .set("space_id", pipeline.space_id.to_string())
            .set("connector_id", pipeline.connector_id.to_string())
            .set("provider", pipeline.provider.as_str())
            .set("dag_id", pipeline.dag_id.clone())
            .set("name", pipeline.name.clone())
            .set_or_remove("description", pipeline.description.clone())
            .set("owners", json(&pipeline.owners)?)
            .set("tags", json(&pipeline.tags)?)
            .set_or_remove("schedule", pipeline.schedule.clone())
            .set("is_paused", pipeline.is_paused)
            .set("is_active", pipeline.is_active)
            .set("provider_metadata", pipeline.provider_metadata.clone())
            .set("synced_at", json(&pipeline.synced_at)?);
        let writes = vec![
            TransactOp::Update {
                key,
                update: update.add(REVISION_ATTR, 1),
                condition: None,
            },
            TransactOp::Update {
                key: keys::listing_entry(pipeline.space_id, pipeline.id),
                update: entry.add(REVISION_ATTR, 1),
                condition: None,
            },
        ];
        loop {
            let mut ops = writes.clone();
            for event in &events {
                ops.extend(self.event_ops(event)?);
            }
            match self.table.transact_write(ops).await {
                Ok(()) => break,
                // Only the events' puts have conditions: events[i] is at 2 + 2i.
                Err(StoreError::TransactionCancelled { index: Some(index) })
                    if index >= writes.len() && (index - writes.len()) % 2 == 0 =>
                {
                    events.remove((index - writes.len()) / 2);
                }
                Err(other) => return Err(other.into()),
            }
        }
        self.bump_listing_version(pipeline.space_id, Some(ListingChange::Entry(pipeline.id)))
            .await
    }

    /// Sets the platform-owned governance fields of a pipeline (404 if absent).
    pub async fn set_pipeline_governance(
        &self,
        space_id: Uuid,
        pipeline_id: Uuid,
        team_id: Option<Option<Uuid>>,
        criticality: Option<Option<Criticality>>,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Pipeline> {
        self.set_pipeline_platform_fields(
            space_id,
            pipeline_id,
            team_id,
            criticality,
            None,
            user_id,
            now,
        )
        .await
    }

    /// Sets the platform-owned fields given (`Some`) of a pipeline: team, criticality, the
    /// freshness interval (404 if absent). The freshness interval is not on the listing entry
    /// (the list neither filters nor sorts on it), but the entry's revision moves with the
    /// pipeline's, so cached copies of the pipeline are re-read.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_pipeline_platform_fields(
        &self,
        space_id: Uuid,
        pipeline_id: Uuid,
        team_id: Option<Option<Uuid>>,
        criticality: Option<Option<Criticality>>,
        freshness_interval_seconds: Option<Option<u64>>,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Pipeline> {
        let mut update = Update::new()
            .set("governance_updated_by", user_id.to_string())
            .set("governance_updated_at", json(&now)?);
        let mut entry = Update::new();
        if let Some(team_id) = team_id {
            let team_id = team_id.map(|id| id.to_string());
            update = update.set_or_remove("team_id", team_id.clone());
            entry = entry.set_or_remove("team_id", team_id);
        }
        if let Some(criticality) = criticality {
            let criticality = criticality.map(|c| c.as_str());
            update = update.set_or_remove("criticality", criticality);
            entry = entry.set_or_remove("criticality", criticality);
        }
        if let Some(interval) = freshness_interval_seconds {
            update = update.set_or_remove("freshness_interval_seconds", interval);
        }
        let key = keys::pipeline(space_id, pipeline_id);
        // The pipeline and its listing entry together, or neither (the entry's condition
        // keeps a pipeline without an entry, one written before entries existed, from
        // getting a partial one: `Repository::rebuild_listing` makes it whole).
        let written = self
            .table
            .transact_write(vec![
                TransactOp::Update {
                    key: key.clone(),
                    update: update.add(REVISION_ATTR, 1),
                    condition: Some(Condition::Exists),
                },
                TransactOp::Update {
                    key: keys::listing_entry(space_id, pipeline_id),
                    update: entry.add(REVISION_ATTR, 1),
                    condition: Some(Condition::Exists),
                },
            ])
            .await;
        match written {
            Ok(()) => {}
            Err(StoreError::TransactionCancelled { index: Some(0) }) => {
                return Err(Error::NotFound("Pipeline not found"));
            }
            Err(StoreError::TransactionCancelled { index: Some(1) }) => {
                return Err(Error::internal(format!(
                    "pipeline {pipeline_id} has no listing entry: run `orchestration admin rebuild-listings`"
                )));
            }
            Err(other) => return Err(other.into()),
        }
        self.bump_listing_version(space_id, Some(ListingChange::Entry(pipeline_id)))
            .await?;
        self.get_pipeline(space_id, pipeline_id)
            .await?
            .ok_or(Error::NotFound("Pipeline not found"))
    }

    /// Records that a user watches a pipeline (idempotent).
    pub async fn put_watch(
        &self,
        pipeline: &Pipeline,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<()> {
        #[derive(serde::Serialize)]
        struct Watch {
            space_id: Uuid,
            user_id: Uuid,
            pipeline_id: Uuid,
            created_at: DateTime<Utc>,
        }
        let watch = Watch {
            space_id: pipeline.space_id,
            user_id,
            pipeline_id: pipeline.id,
            created_at: now,
        };
        let item = to_item(
            &watch,
            "watch",
            keys::watch(pipeline.space_id, user_id, pipeline.id),
            None,
        )?;
        self.table.put(item, None).await?;
        let change = ListingChange::Watch {
            pipeline_id: pipeline.id,
            user_id,
        };
        self.bump_listing_version(pipeline.space_id, Some(change))
            .await
    }

    pub async fn delete_watch(
        &self,
        space_id: Uuid,
        user_id: Uuid,
        pipeline_id: Uuid,
    ) -> Result<()> {
        self.table
            .delete(&keys::watch(space_id, user_id, pipeline_id), None)
            .await?;
        let change = ListingChange::Watch {
            pipeline_id,
            user_id,
        };
        self.bump_listing_version(space_id, Some(change)).await
    }
}
