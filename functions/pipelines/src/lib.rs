//! The pipelines endpoint group: list and read pipelines, and the platform-owned fields
//! (`PATCH /pipelines/{id}/team`, `PATCH /pipelines/{id}/criticality`,
//! `PUT`/`DELETE /pipelines/{id}/watch`).
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::{pipelines, governance}`.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use chrono::Utc;
use shared::Result;
use shared::api::{
    CriticalityUpdate, ErrorBody, PipelineDetailParams, PipelineListParams, PipelineView,
    TeamUpdate,
};
use shared::auth::Caller;
use shared::domain::model::{Criticality, PipelineStatus, Provider, Role};
use shared::http::body::JsonBody;
use shared::http::pagination::paginated;
use shared::http::params::{LARGE_PAGES, PathParams, QueryParams};
use shared::http::{AppState, app};
use shared::service::governance;
use shared::service::pipelines::{self, DEFAULT_DAYS, MAX_DAYS, PipelineFilter};
use utoipa::OpenApi;

/// This group's routes, relative to the API prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines", get(list_pipelines))
        .route("/pipelines/{pipeline_id}", get(get_pipeline))
        .route("/pipelines/{pipeline_id}/team", patch(set_team))
        .route(
            "/pipelines/{pipeline_id}/criticality",
            patch(set_criticality),
        )
        .route("/pipelines/{pipeline_id}/watch", put(watch).delete(unwatch))
}

/// This group's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    list_pipelines,
    get_pipeline,
    set_team,
    set_criticality,
    watch,
    unwatch
))]
pub struct ApiDoc;

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(routes(), state)
}

fn days(params: &mut QueryParams) -> u32 {
    params
        .integer("days", 1, Some(i64::from(MAX_DAYS)))
        .map_or(DEFAULT_DAYS, |days| days as u32)
}

/// List the space's pipelines with their summary metrics.
///
/// Sorted by name (case-insensitive), then DAG id, then id.
#[utoipa::path(
    get,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines",
    tag = "pipelines",
    params(("slug" = String, Path, description = "The space's slug"), PipelineListParams),
    responses(
        (status = 200, description = "One page of pipelines", body = [PipelineView], headers(
                ("X-Total-Count" = u64, description = "Items across all pages"),
                ("X-Page" = u32, description = "This page's number"),
                ("X-Page-Size" = u32, description = "Page size used"),
                ("X-Total-Pages" = u64, description = "Number of pages"),
                ("Link" = String, description = "RFC 8288 links: first, prev, next, last"),
            )),
    )
)]
async fn list_pipelines(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let mut params = QueryParams::parse(uri.query());
    let filter = PipelineFilter {
        provider: params.choice_of("provider", &Provider::ALL, Provider::as_str),
        status: params.choice_of("status", &PipelineStatus::ALL, PipelineStatus::as_str),
        owner: params.search("owner"),
        criticality: params.choice_of("criticality", &Criticality::ALL, Criticality::as_str),
        team_id: params.uuid("team_id"),
        connector_id: params.uuid("connector_id"),
        q: params.search("q"),
        watched_only: params.boolean("watched_only").unwrap_or(false),
    };
    let days = days(&mut params);
    let page = params.page(LARGE_PAGES);
    params.finish()?;
    let paged = pipelines::list(&state.repo, &caller, &filter, days, page, Utc::now()).await?;
    Ok(paginated(paged, &uri))
}

/// One pipeline with its summary metrics.
#[utoipa::path(
    get,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}",
    tag = "pipelines",
    params(("slug" = String, Path, description = "The space's slug"), ("pipeline_id" = Uuid, Path, description = "The pipeline's id"), PipelineDetailParams),
    responses((status = 200, description = "The pipeline", body = PipelineView))
)]
async fn get_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let pipeline_id = path.uuid("pipeline_id")?;
    let mut params = QueryParams::parse(uri.query());
    let days = days(&mut params);
    params.finish()?;
    let pipeline = pipelines::get(&state.repo, &caller, pipeline_id, days, Utc::now()).await?;
    Ok(Json(pipeline).into_response())
}

/// Assign the owning team (a team of the space), or clear it with `null`. Editors and admins.
#[utoipa::path(
    patch,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}/team",
    tag = "pipelines",
    params(("slug" = String, Path, description = "The space's slug"), ("pipeline_id" = Uuid, Path, description = "The pipeline's id")),
    request_body = TeamUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineView),
        (status = 403, description = "The caller is not an editor or admin", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
async fn set_team(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    body: JsonBody,
) -> Result<Response> {
    let pipeline_id = path.uuid("pipeline_id")?;
    // Role before body: a viewer learns nothing from validation errors.
    caller.require(Role::Editor)?;
    let mut fields = body.required()?;
    let team_id = fields.nullable_uuid("team_id");
    let team_id = fields.finish_with(team_id)?;
    let pipeline =
        governance::set_team(&state.repo, &caller, pipeline_id, team_id, Utc::now()).await?;
    Ok(Json(pipeline).into_response())
}

/// Set the criticality, or clear it with `null`. Editors and admins.
#[utoipa::path(
    patch,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}/criticality",
    tag = "pipelines",
    params(("slug" = String, Path, description = "The space's slug"), ("pipeline_id" = Uuid, Path, description = "The pipeline's id")),
    request_body = CriticalityUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineView),
        (status = 403, description = "The caller is not an editor or admin", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
async fn set_criticality(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    body: JsonBody,
) -> Result<Response> {
    let pipeline_id = path.uuid("pipeline_id")?;
    // Role before body: a viewer learns nothing from validation errors.
    caller.require(Role::Editor)?;
    let mut fields = body.required()?;
    let criticality = fields.nullable_choice("criticality", &Criticality::ALL, Criticality::as_str);
    let criticality = fields.finish_with(criticality)?;
    let pipeline =
        governance::set_criticality(&state.repo, &caller, pipeline_id, criticality, Utc::now())
            .await?;
    Ok(Json(pipeline).into_response())
}

/// Watch the pipeline (the caller). Idempotent.
#[utoipa::path(
    put,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}/watch",
    tag = "pipelines",
    params(("slug" = String, Path, description = "The space's slug"), ("pipeline_id" = Uuid, Path, description = "The pipeline's id")),
    responses((status = 204, description = "The caller watches the pipeline"))
)]
async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> Result<StatusCode> {
    let pipeline_id = path.uuid("pipeline_id")?;
    governance::set_watch(&state.repo, &caller, pipeline_id, true, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop watching the pipeline (the caller). Idempotent.
#[utoipa::path(
    delete,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}/watch",
    tag = "pipelines",
    params(("slug" = String, Path, description = "The space's slug"), ("pipeline_id" = Uuid, Path, description = "The pipeline's id")),
    responses((status = 204, description = "The caller does not watch the pipeline"))
)]
async fn unwatch(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> Result<StatusCode> {
    let pipeline_id = path.uuid("pipeline_id")?;
    governance::set_watch(&state.repo, &caller, pipeline_id, false, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
