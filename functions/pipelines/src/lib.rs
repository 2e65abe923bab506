//! The pipelines endpoint group: list and read pipelines, and the platform-owned fields
//! (`PATCH /pipelines/{id}/team`, `PATCH /pipelines/{id}/criticality`,
//! `PUT`/`DELETE /pipelines/{id}/watch`).
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::{pipelines, governance}`.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use chrono::Utc;
use shared::Result;
use shared::api::{
    CriticalityUpdate, ErrorBody, PipelineDetailParams, PipelineListParams, PipelineView, RunView,
    TeamUpdate, TriggerBody, ValidationErrorBody,
};
use shared::auth::Caller;
use shared::domain::model::{Criticality, PipelineStatus, Provider, Role};
use shared::http::body::JsonBody;
use shared::http::pagination::paginated;
use shared::http::params::{LARGE_PAGES, PathParams, QueryParams};
use shared::http::{AppState, app_with, meta_routes};
use shared::service::Deadline;
use shared::service::governance;
use shared::service::pipelines::{self, DEFAULT_DAYS, MAX_DAYS, PipelineFilter};
use shared::service::trigger::{self, MAX_IDEMPOTENCY_KEY_LEN, TriggerInput, Triggered};
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
        .route("/pipelines/{pipeline_id}/trigger", post(trigger))
}

/// This group's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    list_pipelines,
    get_pipeline,
    set_team,
    set_criticality,
    watch,
    unwatch,
    trigger
))]
pub struct ApiDoc;

/// The OpenAPI document of the whole API, as committed (a test keeps it fresh). This
/// function, the API's front door, publishes it with the health route.
const OPENAPI_DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app_with(routes(), meta_routes(OPENAPI_DOCUMENT), state)
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
        (status = 200, description = "One page of pipelines", body = [PipelineView]),
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

/// Trigger a run of the pipeline's DAG in Airflow. Editors and admins.
///
/// The run is stored at once (normally `queued`) and followed by later syncs. Airflow's 4xx
/// about the request passes through (400, 404, 409; its 422 as this API's validation list);
/// Airflow refusing the connector's credentials, failing (5xx), answering garbage or being
/// unreachable is a 502 whose detail names the cause; 429 and 503 keep their code with
/// `Retry-After`; 504 when Airflow does not answer before the request deadline (default
/// 25 s). With an `Idempotency-Key`, a retried request returns the first run (200) instead of
/// starting another.
#[utoipa::path(
    post,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}/trigger",
    tag = "pipelines",
    params(
        ("slug" = String, Path, description = "The space's slug"),
        ("pipeline_id" = Uuid, Path, description = "The pipeline's id"),
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
    path: PathParams,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    let pipeline_id = path.uuid("pipeline_id")?;
    caller.require(Role::Editor)?;
    let idempotency_key = idempotency_key(&headers)?;
    let mut fields = body.optional();
    let input = TriggerInput {
        conf: fields.optional_object("conf"),
        logical_date: fields.optional_datetime("logical_date"),
        note: fields.optional_string("note"),
    };
    fields.finish()?;
    let triggered = trigger::trigger(
        &state.repo,
        &state.secrets,
        state.airflow,
        &caller,
        pipeline_id,
        input,
        idempotency_key.as_deref(),
        Utc::now(),
        Deadline::after(state.request_deadline),
    )
    .await?;
    // A replay answers as the original did (201, its body), flagged for the client.
    Ok(match triggered {
        Triggered::Created(run) => (StatusCode::CREATED, Json(run)).into_response(),
        Triggered::Replayed(original) => (
            StatusCode::CREATED,
            [("idempotent-replayed", "true")],
            Json(original),
        )
            .into_response(),
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str().map(str::trim) {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
            Ok(Some(key.to_string()))
        }
        _ => Err(shared::Error::validation(
            &["header", "idempotency-key"],
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ),
            "value_error",
        )),
    }
}
