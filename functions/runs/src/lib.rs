//! The runs endpoint group: `GET /pipelines/{pipeline_id}/runs`, `GET /runs/{run_id}`.
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::runs`.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shared::Result;
use shared::api::{RunDetailView, RunListParams, RunView};
use shared::auth::Caller;
use shared::domain::model::RunStatus;
use shared::http::pagination::paginated;
use shared::http::params::{LARGE_PAGES, PathParams, QueryParams};
use shared::http::{AppState, app};
use shared::service::runs::{self, RunFilter};
use utoipa::OpenApi;

/// This group's routes, relative to the API prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines/{pipeline_id}/runs", get(list_runs))
        .route("/runs/{run_id}", get(get_run))
}

/// This group's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list_runs, get_run))]
pub struct ApiDoc;

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(routes(), state)
}

/// A pipeline's runs, newest first (by start, else queue time, else logical date).
#[utoipa::path(
    get,
    path = "/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}/runs",
    tag = "runs",
    params(("slug" = String, Path, description = "The space's slug"), ("pipeline_id" = Uuid, Path, description = "The pipeline's id"), RunListParams),
    responses(
        (status = 200, description = "One page of runs", body = [RunView]),
    )
)]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let pipeline_id = path.uuid("pipeline_id")?;
    let mut params = QueryParams::parse(uri.query());
    let filter = RunFilter {
        started_from: params.datetime("started_from"),
        started_to: params.datetime("started_to"),
        status: params.choice_of("status", &RunStatus::ALL, RunStatus::as_str),
        run_type: params.run_type("run_type"),
    };
    if let (Some(from), Some(to)) = (filter.started_from, filter.started_to)
        && from > to
    {
        params.reject(
            "started_to",
            "started_to must not be before started_from",
            "value_error",
        );
    }
    let page = params.page(LARGE_PAGES);
    params.finish()?;
    let paged = runs::list(&state.repo, &caller, pipeline_id, &filter, page).await?;
    Ok(paginated(paged, &uri))
}

/// One run with every try of every task instance.
#[utoipa::path(
    get,
    path = "/api/v1.0/spaces/{slug}/orchestration/runs/{run_id}",
    tag = "runs",
    params(("slug" = String, Path, description = "The space's slug"), ("run_id" = Uuid, Path, description = "The run's id")),
    responses((status = 200, description = "The run and its task runs", body = RunDetailView))
)]
async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> Result<Response> {
    let run_id = path.uuid("run_id")?;
    let run = runs::get(&state.repo, &caller, run_id).await?;
    Ok(Json(run).into_response())
}
