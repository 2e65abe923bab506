//! The connectors endpoint group: `POST /connectors/{connector_id}/sync` (sync now) and
//! `GET /connectors/{connector_id}/syncs` (recent sync records).
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::connectors` and `shared::sync`.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shared::Result;
use shared::api::{ErrorBody, SyncListParams, SyncView};
use shared::auth::Caller;
use shared::http::pagination::paginated;
use shared::http::params::{PathParams, QueryParams, STANDARD_PAGES};
use shared::http::{AppState, app};
use shared::service::{Deadline, connectors};
use utoipa::OpenApi;

/// This group's routes, relative to the API prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connectors/{connector_id}/sync", post(sync_now))
        .route("/connectors/{connector_id}/syncs", get(list_syncs))
}

/// This group's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(sync_now, list_syncs))]
pub struct ApiDoc;

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(routes(), state)
}

/// Sync the Airflow connector now.
///
/// Needs permission to edit the connector (a space admin, or an editor who created it or is
/// one of its editors). The sync runs within a time budget that fits API Gateway's limit:
/// 200 with the record when it finished (`status` says how), 202 when it stopped early and the
/// next sync (scheduled or manual) resumes from its checkpoint.
#[utoipa::path(
    post,
    path = "/api/v1.0/spaces/{slug}/orchestration/connectors/{connector_id}/sync",
    tag = "connectors",
    params(
        ("slug" = String, Path, description = "The space's slug"),
        ("connector_id" = Uuid, Path, description = "The connector's id"),
    ),
    responses(
        (status = 200, description = "The sync finished (succeeded, partial or failed)", body = SyncView),
        (status = 202, description = "The sync stopped at its time budget; the next sync resumes it", body = SyncView),
        (status = 403, description = "The caller may not edit this connector", body = ErrorBody),
        (status = 409, description = "A sync of this connector is already running", body = ErrorBody),
    )
)]
async fn sync_now(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> Result<Response> {
    let connector_id = path.uuid("connector_id")?;
    let record = connectors::sync(
        &state.repo,
        &state.secrets,
        state.airflow,
        &caller,
        connector_id,
        Deadline::after(state.request_deadline),
    )
    .await?;
    let status = if record.pending && record.error.is_none() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)).into_response())
}

/// Recent sync records of the connector, newest first. Any member of the space.
#[utoipa::path(
    get,
    path = "/api/v1.0/spaces/{slug}/orchestration/connectors/{connector_id}/syncs",
    tag = "connectors",
    params(
        ("slug" = String, Path, description = "The space's slug"),
        ("connector_id" = Uuid, Path, description = "The connector's id"),
        SyncListParams,
    ),
    responses(
        (status = 200, description = "One page of sync records", body = [SyncView]),
    )
)]
async fn list_syncs(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let connector_id = path.uuid("connector_id")?;
    let mut params = QueryParams::parse(uri.query());
    let page = params.page(STANDARD_PAGES);
    params.finish()?;
    let paged = connectors::list_syncs(&state.repo, &caller, connector_id, page).await?;
    Ok(paginated(paged, &uri))
}
