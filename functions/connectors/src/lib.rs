//! The connectors endpoint group: `POST /connectors/{connector_id}/sync` (sync now) and
//! `GET /connectors/{connector_id}/syncs` (recent sync records).
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::connectors` and `shared::sync`. Each handler's `#[utoipa::path]` is both
//! its route and its operation in the OpenAPI document.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use shared::Result;
use shared::api::{ErrorBody, SyncView};
use shared::auth::Caller;
use shared::http::extract::{Path, Query};
use shared::http::inputs::{ConnectorPath, SyncListParams};
use shared::http::pagination::{PageResponse, paginated};
use shared::http::{AppState, app};
use shared::service::{Deadline, connectors};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This group's endpoints, relative to the API prefix: routes and document in one.
pub fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_now))
        .routes(routes!(list_syncs))
}

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(endpoints(), state)
}

/// Sync the Airflow connector now.
///
/// Needs permission to edit the connector (a space admin, or an editor who created it or is
/// one of its editors). The sync runs within a time budget that fits API Gateway's limit:
/// 200 with the record when it finished (`status` says how), 202 when it stopped early and the
/// next sync (scheduled or manual) resumes from its checkpoint.
#[utoipa::path(
    post,
    path = "/connectors/{connector_id}/sync",
    tag = "connectors",
    params(ConnectorPath),
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
    Path(path): Path<ConnectorPath>,
) -> Result<(StatusCode, Json<SyncView>)> {
    let record = connectors::sync(
        &state.repo,
        &state.secrets,
        state.airflow,
        &state.publisher,
        &caller,
        path.connector_id,
        Deadline::after(state.request_deadline),
    )
    .await?;
    let status = if record.pending && record.error.is_none() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)))
}

/// Recent sync records of the connector, newest first. Any member of the space.
#[utoipa::path(
    get,
    path = "/connectors/{connector_id}/syncs",
    tag = "connectors",
    params(ConnectorPath, SyncListParams),
    responses(
        (status = 200, description = "One page of sync records", body = [SyncView]),
    )
)]
async fn list_syncs(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ConnectorPath>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<SyncListParams>,
) -> Result<PageResponse<SyncView>> {
    let page = params.size.page(params.page);
    let paged = connectors::list_syncs(&state.repo, &caller, path.connector_id, page).await?;
    Ok(paginated(paged, uri))
}
