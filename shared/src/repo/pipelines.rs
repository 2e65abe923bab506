//! Pipelines, their run series and watches.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Repository, from_item, json, to_item};
use crate::domain::model::{Criticality, Pipeline};
use crate::domain::summary::RunSeries;
use crate::error::{Error, Result};
use crate::keys;
use crate::store::{Condition, Item, Key, StoreError, Update};

/// A pipeline with what its summary is computed from, and whether the caller watches it.
#[derive(Debug, Clone)]
pub struct PipelineWithSeries {
    pub pipeline: Pipeline,
    pub series: RunSeries,
    pub watched: bool,
}

const SERIES_ATTR: &str = "series";

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

    /// Every pipeline of a space, in list order (one query, paged by the backend only past
    /// 1 MB; never cached).
    pub async fn list_pipelines(&self, space_id: Uuid) -> Result<Vec<Pipeline>> {
        Ok(self.read_listing(space_id).await?.pipelines)
    }

    /// Ids of the pipelines a user watches in a space.
    pub async fn watched_pipeline_ids(
        &self,
        space_id: Uuid,
        user_id: Uuid,
    ) -> Result<HashSet<Uuid>> {
        Ok(self.read_listing(space_id).await?.watched_by(user_id))
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
        let key = keys::pipeline(pipeline.space_id, pipeline.id);
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
        self.table.update(&key, update, None).await?;
        self.bump_listing_version(pipeline.space_id).await
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
        let mut update = Update::new()
            .set("governance_updated_by", user_id.to_string())
            .set("governance_updated_at", json(&now)?);
        if let Some(team_id) = team_id {
            update = update.set_or_remove("team_id", team_id.map(|id| id.to_string()));
        }
        if let Some(criticality) = criticality {
            update = update.set_or_remove("criticality", criticality.map(|c| c.as_str()));
        }
        let key = keys::pipeline(space_id, pipeline_id);
        match self
            .table
            .update(&key, update, Some(Condition::Exists))
            .await
        {
            Ok(item) => {
                self.bump_listing_version(space_id).await?;
                from_item(item)
            }
            Err(StoreError::ConditionFailed) => Err(Error::NotFound("Pipeline not found")),
            Err(other) => Err(other.into()),
        }
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
        self.bump_listing_version(pipeline.space_id).await
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
        self.bump_listing_version(space_id).await
    }
}
