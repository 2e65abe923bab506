//! The runs endpoint group: `GET /pipelines/{pipeline_id}/runs`, `GET /runs/{run_id}`.
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::runs`. Each handler's `#[utoipa::path]` is both its route and its
//! operation in the OpenAPI document.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use shared::Result;
use shared::api::{RunDetailView, RunView};
use shared::auth::Caller;
use shared::http::extract::{Path, Query};
use shared::http::inputs::{PipelinePath, RunListParams, RunPath};
use shared::http::pagination::{PageResponse, paginated};
use shared::http::{AppState, app};
use shared::service::runs;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This group's endpoints, relative to the API prefix: routes and document in one.
pub fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
}

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(endpoints(), state)
}

/// A pipeline's runs, newest first (by start, else queue time, else logical date).
#[utoipa::path(
    get,
    path = "/pipelines/{pipeline_id}/runs",
    tag = "runs",
    params(PipelinePath, RunListParams),
    responses(
        (status = 200, description = "One page of runs", body = [RunView]),
    )
)]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<PipelinePath>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<RunListParams>,
) -> Result<PageResponse<RunView>> {
    let page = params.size.page(params.page);
    let paged = runs::list(
        &state.repo,
        &caller,
        path.pipeline_id,
        &params.filter(),
        page,
    )
    .await?;
    Ok(paginated(paged, uri))
}

/// One run with every try of every task instance.
#[utoipa::path(
    get,
    path = "/runs/{run_id}",
    tag = "runs",
    params(RunPath),
    responses((status = 200, description = "The run and its task runs", body = RunDetailView))
)]
async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<RunPath>,
) -> Result<Json<RunDetailView>> {
    Ok(Json(runs::get(&state.repo, &caller, path.run_id).await?))
}
