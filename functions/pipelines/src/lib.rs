//! The pipelines endpoint group: `GET /pipelines`, `GET /pipelines/{pipeline_id}`.
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::pipelines`.

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::Utc;
use shared::auth::Caller;
use shared::domain::model::{Criticality, PipelineStatus, Provider};
use shared::http::pagination::paginated;
use shared::http::params::{LARGE_PAGES, PathParams, QueryParams};
use shared::http::{AppState, app};
use shared::service::pipelines::{self, DEFAULT_DAYS, MAX_DAYS, PipelineFilter};
use shared::Result;

/// This group's routes, relative to the API prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines", get(list_pipelines))
        .route("/pipelines/{pipeline_id}", get(get_pipeline))
}

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(routes(), state)
}

fn days(params: &mut QueryParams) -> u32 {
    params
        .integer("days", 1, Some(i64::from(MAX_DAYS)))
        .map_or(DEFAULT_DAYS, |days| days as u32)
}

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
