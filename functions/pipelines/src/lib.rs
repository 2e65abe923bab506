//! The pipelines endpoint group: list and read pipelines, and the platform-owned fields
//! (`PATCH /pipelines/{id}/team`, `PATCH /pipelines/{id}/criticality`,
//! `PUT`/`DELETE /pipelines/{id}/watch`), and the space's pipeline events (`GET /events`).
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::{pipelines, governance}`. Each handler is declared once: its
//! `#[utoipa::path]` gives both the route (collected by `routes!`) and its operation in the
//! OpenAPI document, and its arguments are the typed inputs of `shared::http::inputs`.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::Utc;
use shared::Result;
use shared::api::{ErrorBody, EventView, PipelineView, RunView, ValidationErrorBody};
use shared::auth::Caller;
use shared::http::extract::{Body, EditorRole, Path, Query};
use shared::http::inputs::{
    CriticalityUpdate, EventListParams, FreshnessUpdate, IdempotencyKey, PipelineDetailParams,
    PipelineListParams, PipelinePath, SpacePath, TeamUpdate, TriggerBody,
};
use shared::http::pagination::{PageResponse, paginated};
use shared::http::{AppState, app_with, meta_routes};
use shared::service::Deadline;
use shared::service::events::{self, EventFilter};
use shared::service::governance;
use shared::service::pipelines::{self, PipelineFilter};
use shared::service::trigger::{self, TriggerInput, Triggered};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This group's endpoints, relative to the API prefix: routes and document in one.
pub fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pipelines))
        .routes(routes!(get_pipeline))
        .routes(routes!(set_team))
        .routes(routes!(set_criticality))
        .routes(routes!(set_freshness))
        .routes(routes!(watch, unwatch))
        .routes(routes!(trigger))
        .routes(routes!(list_events))
}

/// The OpenAPI document of the whole API, as committed (a test keeps it fresh). This
/// function, the API's front door, publishes it with the health route.
const OPENAPI_DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app_with(endpoints(), meta_routes(OPENAPI_DOCUMENT), state)
}

/// List the space's pipelines with their summary metrics.
///
/// Sorted by name (case-insensitive), then DAG id, then id.
#[utoipa::path(
    get,
    path = "/pipelines",
    tag = "pipelines",
    params(SpacePath, PipelineListParams),
    responses(
        (status = 200, description = "One page of pipelines", body = [PipelineView]),
    )
)]
async fn list_pipelines(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PipelineListParams>,
) -> Result<PageResponse<PipelineView>> {
    let filter = PipelineFilter {
        provider: params.provider,
        status: params.status,
        owner: params.owner,
        criticality: params.criticality,
        team_id: params.team_id,
        connector_id: params.connector_id,
        q: params.q,
        watched_only: params.watched_only,
    };
    let page = params.size.page(params.page);
    let paged = pipelines::list(
        &state.repo,
        &caller,
        &filter,
        params.days.0,
        page,
        Utc::now(),
    )
    .await?;
    Ok(paginated(paged, uri))
}

/// One pipeline with its summary metrics.
#[utoipa::path(
    get,
    path = "/pipelines/{pipeline_id}",
    tag = "pipelines",
    params(PipelinePath, PipelineDetailParams),
    responses((status = 200, description = "The pipeline", body = PipelineView))
)]
async fn get_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
    Query(params): Query<PipelineDetailParams>,
) -> Result<Json<PipelineView>> {
    let pipeline = pipelines::get(
        &state.repo,
        &caller,
        path.pipeline_id,
        params.days.0,
        Utc::now(),
    )
    .await?;
    Ok(Json(pipeline))
}

/// Assign the owning team (a team of the space), or clear it with `null`. Editors and admins.
#[utoipa::path(
    patch,
    path = "/pipelines/{pipeline_id}/team",
    tag = "pipelines",
    params(PipelinePath),
    request_body = TeamUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineView),
        (status = 403, description = "The caller is not an editor or admin", body = ErrorBody),
    )
)]
async fn set_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
    _editor: EditorRole,
    Body(update): Body<TeamUpdate>,
) -> Result<Json<PipelineView>> {
    let pipeline = governance::set_team(
        &state.repo,
        &caller,
        path.pipeline_id,
        update.team_id,
        Utc::now(),
    )
    .await?;
    Ok(Json(pipeline))
}

/// Set the criticality, or clear it with `null`. Editors and admins.
#[utoipa::path(
    patch,
    path = "/pipelines/{pipeline_id}/criticality",
    tag = "pipelines",
    params(PipelinePath),
    request_body = CriticalityUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineView),
        (status = 403, description = "The caller is not an editor or admin", body = ErrorBody),
    )
)]
async fn set_criticality(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
    _editor: EditorRole,
    Body(update): Body<CriticalityUpdate>,
) -> Result<Json<PipelineView>> {
    let pipeline = governance::set_criticality(
        &state.repo,
        &caller,
        path.pipeline_id,
        update.criticality,
        Utc::now(),
    )
    .await?;
    Ok(Json(pipeline))
}

/// Set the expected interval between successful runs, in seconds, or `null` to derive it
/// from the schedule (1.5 × a plain interval or simple cron's period; other schedules: not
/// checked). A pipeline with no successful run within it gets a `freshness_breached` event
/// from the scheduled check (docs/EVENTS.md). Editors and admins.
#[utoipa::path(
    patch,
    path = "/pipelines/{pipeline_id}/freshness",
    tag = "pipelines",
    params(PipelinePath),
    request_body = FreshnessUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineView),
        (status = 403, description = "The caller is not an editor or admin", body = ErrorBody),
    )
)]
async fn set_freshness(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
    _editor: EditorRole,
    Body(update): Body<FreshnessUpdate>,
) -> Result<Json<PipelineView>> {
    let pipeline = governance::set_freshness(
        &state.repo,
        &caller,
        path.pipeline_id,
        update.expected_interval_seconds,
        Utc::now(),
    )
    .await?;
    Ok(Json(pipeline))
}

/// Watch the pipeline (the caller). Idempotent.
#[utoipa::path(
    put,
    path = "/pipelines/{pipeline_id}/watch",
    tag = "pipelines",
    params(PipelinePath),
    responses((status = 204, description = "The caller watches the pipeline"))
)]
async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
) -> Result<StatusCode> {
    governance::set_watch(&state.repo, &caller, path.pipeline_id, true, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop watching the pipeline (the caller). Idempotent.
#[utoipa::path(
    delete,
    path = "/pipelines/{pipeline_id}/watch",
    tag = "pipelines",
    params(PipelinePath),
    responses((status = 204, description = "The caller does not watch the pipeline"))
)]
async fn unwatch(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
) -> Result<StatusCode> {
    governance::set_watch(&state.repo, &caller, path.pipeline_id, false, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Trigger a run of the pipeline's DAG in Airflow. Editors and admins.
///
/// The run is stored at once (normally `queued`) and followed by later syncs. Airflow's 4xx
/// about the request passes through (400, 404, 409; its 422 as this API's validation list);
/// Airflow refusing the connector's credentials, failing (5xx), answering garbage or being
/// unreachable is a 502 whose detail names the cause; 429 and 503 keep their code with
/// `Retry-After`; 504 when Airflow does not answer before the request deadline (default
/// 25 s). With an `Idempotency-Key`, a retried request (same caller and pipeline) gets the
/// first answer again (201, `Idempotent-Replayed: true`) instead of starting another run.
#[utoipa::path(
    post,
    path = "/pipelines/{pipeline_id}/trigger",
    tag = "pipelines",
    params(
        PipelinePath,
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request return its first result (kept 24 hours). 1 to 255 visible ASCII characters (spaces allowed inside)", min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$"),
    ),
    request_body(content = Option<TriggerBody>, description = "All fields optional; the body itself too"),
    responses(
        (status = 201, description = "The run, created now; or, for a retry with the same Idempotency-Key (same caller and pipeline), the first answer replayed with `Idempotent-Replayed: true`", body = RunView, headers(("Idempotent-Replayed" = Option<bool>, description = "Present (true) when this answer replays an earlier request's"))),
        (status = 400, description = "Airflow refused the request (its message)", body = ErrorBody),
        (status = 403, description = "The caller is not an editor or admin", body = ErrorBody),
        (status = 404, description = "Unknown pipeline, or Airflow no longer has the DAG (its message)", body = ErrorBody),
        (status = 409, description = "Airflow refused (e.g. duplicate run), or the same Idempotency-Key is in progress", body = ErrorBody),
        (status = 422, description = "Invalid body or Idempotency-Key, or Airflow refused the body (its locations kept)", body = ValidationErrorBody),
        (status = 429, description = "The API key is over its rate limit, or Airflow is throttling; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "Airflow refused the connector's credentials, failed (5xx), answered garbage or could not be reached; the detail names the cause", body = ErrorBody),
        (status = 503, description = "Airflow or the store is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "Airflow did not answer before the request deadline", body = ErrorBody),
    )
)]
async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
    _editor: EditorRole,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    Body(body): Body<TriggerBody>,
) -> Result<Triggered> {
    let input = TriggerInput {
        conf: body.conf,
        logical_date: body.logical_date,
        note: body.note,
    };
    trigger::trigger(
        &state.repo,
        &state.secrets,
        state.airflow,
        &caller,
        path.pipeline_id,
        input,
        idempotency_key.as_deref(),
        Utc::now(),
        Deadline::after(state.request_deadline),
    )
    .await
}

/// The space's pipeline events, newest first (docs/EVENTS.md).
///
/// Transitions detected by the sync and the scheduled freshness check: failed
/// and recovered runs, runs and task tries running longer than usual, pipelines paused,
/// unpaused, inactive or active again, freshness breaches. Each transition is one event with
/// a deterministic id. Events are kept for the configured retention (default 30 days).
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(SpacePath, EventListParams),
    responses(
        (status = 200, description = "One page of events, newest detected first", body = [EventView]),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<EventListParams>,
) -> Result<PageResponse<EventView>> {
    let filter = EventFilter {
        pipeline_id: params.pipeline_id,
        event_type: params.r#type,
        watched_only: params.watched_only,
        since: params.since,
    };
    let page = params.size.page(params.page);
    let paged = events::list(&state.repo, &caller, &filter, page, Utc::now()).await?;
    Ok(paginated(paged, uri))
}
