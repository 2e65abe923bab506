//! A pipeline's listing entry: the few fields the pipeline list filters and sorts on, kept
//! apart from the pipeline itself (whose `provider_metadata` is Airflow's whole DAG object),
//! so a list reads a few hundred bytes per pipeline instead of kilobytes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{Criticality, Pipeline, PipelineStatus, Provider, RunStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingEntry {
    pub pipeline_id: Uuid,
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
    /// The latest run's status (the pipeline's status); absent before its first run.
    #[serde(default)]
    pub latest_status: Option<RunStatus>,
    #[serde(default)]
    pub team_id: Option<Uuid>,
    #[serde(default)]
    pub criticality: Option<Criticality>,
    /// The pipeline item's revision: both are incremented in the same transaction by every
    /// write of the pipeline, so a pipeline read at this revision is current.
    #[serde(default)]
    pub rev: u64,
}

impl ListingEntry {
    /// The entry of a pipeline as stored at revision `rev`.
    pub fn of(pipeline: &Pipeline, rev: u64) -> Self {
        Self {
            pipeline_id: pipeline.id,
            connector_id: pipeline.connector_id,
            provider: pipeline.provider,
            dag_id: pipeline.dag_id.clone(),
            name: pipeline.name.clone(),
            description: pipeline.description.clone(),
            owners: pipeline.owners.clone(),
            tags: pipeline.tags.clone(),
            latest_status: pipeline.latest_run.as_ref().map(|run| run.status),
            team_id: pipeline.team_id,
            criticality: pipeline.criticality,
            rev,
        }
    }

    /// The pipeline's status, as [`Pipeline::status`].
    pub fn status(&self) -> PipelineStatus {
        self.latest_status
            .map_or(PipelineStatus::Unknown, PipelineStatus::from)
    }

    /// The list order, as [`Pipeline::list_order_key`].
    pub fn list_order_key(&self) -> (String, String, Uuid) {
        (
            self.name.to_lowercase(),
            self.dag_id.clone(),
            self.pipeline_id,
        )
    }
}
