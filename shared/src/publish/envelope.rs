//! What is published for an event: its feed fields plus what routing needs and the event
//! item does not hold — the pipeline's team and criticality and its watchers as they are at
//! publication, and the space's slug for the links (docs/EVENTS.md, schema version 1).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::events::{Event, SCHEMA_VERSION};
use crate::domain::model::Pipeline;
use crate::repo::Repository;

/// One event ready to publish.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    pub id: Uuid,
    /// EventBridge's `detail-type`.
    pub detail_type: &'static str,
    /// EventBridge's `detail`: the versioned schema.
    pub detail: Value,
    /// A one-line summary for chat (the webhook's `text`).
    pub text: String,
}

/// The envelopes of `events`: one batch read of their pipelines, one query per pipeline for
/// its watchers and one per space for its slug.
pub async fn envelopes(repo: &Repository, events: Vec<Event>) -> crate::Result<Vec<Envelope>> {
    let mut pipelines: HashMap<Uuid, Pipeline> = HashMap::new();
    let mut wanted: Vec<(Uuid, Uuid)> =
        events.iter().map(|e| (e.space_id, e.pipeline_id)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    for pipeline in repo.pipelines_by_id(&wanted).await? {
        pipelines.insert(pipeline.id, pipeline);
    }
    let mut watchers: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut slugs: HashMap<Uuid, Option<String>> = HashMap::new();
    let mut teams: HashMap<Uuid, Option<String>> = HashMap::new();
    for (space_id, pipeline_id) in &wanted {
        watchers.insert(*pipeline_id, repo.watchers(*space_id, *pipeline_id).await?);
        if !slugs.contains_key(space_id) {
            slugs.insert(*space_id, repo.space_slug(*space_id).await?);
        }
        if let Some(team_id) = pipelines.get(pipeline_id).and_then(|p| p.team_id)
            && !teams.contains_key(&team_id)
        {
            let team = repo.get_team(*space_id, team_id).await?;
            teams.insert(team_id, team.map(|t| t.name));
        }
    }
    Ok(events
        .into_iter()
        .map(|event| {
            let pipeline = pipelines.get(&event.pipeline_id);
            let slug = slugs.get(&event.space_id).cloned().flatten();
            let team = pipeline.and_then(|p| p.team_id).map(|id| {
                json!({ "id": id, "name": teams.get(&id).cloned().flatten() })
            });
            let base = slug
                .as_ref()
                .map(|slug| format!("/api/v1.0/spaces/{slug}/orchestration"));
            let links = json!({
                "pipeline": base.as_ref().map(|b| format!("{b}/pipelines/{}", event.pipeline_id)),
                "run": base.as_ref().zip(event.run_id).map(|(b, run)| format!("{b}/runs/{run}")),
                "events": base.as_ref().map(|b| format!("{b}/events?pipeline_id={}", event.pipeline_id)),
            });
            let criticality = pipeline.and_then(|p| p.criticality).map(|c| c.as_str());
            let text = format!(
                "[{}] {}: {}{}",
                criticality.unwrap_or("no criticality"),
                event.pipeline_name,
                event.event_type.detail_type(),
                event
                    .dag_run_id
                    .as_ref()
                    .map(|run| format!(" (run {run})"))
                    .unwrap_or_default(),
            );
            let detail = json!({
                "version": SCHEMA_VERSION,
                "id": event.id,
                "type": event.event_type,
                "occurred_at": event.occurred_at,
                "detected_at": event.detected_at,
                "space": { "id": event.space_id, "slug": slug },
                "pipeline": {
                    "id": event.pipeline_id,
                    "name": event.pipeline_name,
                    "dag_id": event.dag_id,
                    "connector_id": pipeline.map(|p| p.connector_id),
                    "team": team,
                    "criticality": criticality,
                },
                "run": event.run_id.map(|id| json!({ "id": id, "dag_run_id": event.dag_run_id })),
                "task_run": event.task_run_id.map(|id| json!({ "id": id })),
                "watchers": watchers.get(&event.pipeline_id).cloned().unwrap_or_default(),
                "details": if event.details.is_null() { json!({}) } else { event.details.clone() },
                "links": links,
            });
            Envelope {
                id: event.id,
                detail_type: event.event_type.detail_type(),
                detail,
                text,
            }
        })
        .collect())
}
