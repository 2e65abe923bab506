//! The comments endpoint group: comments on runs (`/runs/{run_id}/comments`) and task runs
//! (`/task-runs/{task_run_id}/comments`), and edits (`PUT`/`PATCH`/`DELETE /comments/{id}`).
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::comments`.

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chrono::Utc;
use shared::api::{CommentBody, CommentListParams, CommentView, ErrorBody};
use shared::auth::Caller;
use shared::domain::model::{CommentTarget, normalize_comment};
use shared::http::body::JsonBody;
use shared::http::pagination::paginated;
use shared::http::params::{PathParams, QueryParams, STANDARD_PAGES};
use shared::http::{AppState, app};
use shared::service::comments;
use shared::{Error, Result};
use utoipa::OpenApi;
use uuid::Uuid;

/// This group's routes, relative to the API prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/runs/{run_id}/comments",
            get(list_run_comments).post(create_run_comment),
        )
        .route(
            "/task-runs/{task_run_id}/comments",
            get(list_task_run_comments).post(create_task_run_comment),
        )
        .route(
            "/comments/{comment_id}",
            put(update_comment)
                .patch(patch_comment)
                .delete(delete_comment),
        )
}

/// This group's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    list_run_comments,
    create_run_comment,
    list_task_run_comments,
    create_task_run_comment,
    update_comment,
    patch_comment,
    delete_comment
))]
pub struct ApiDoc;

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(routes(), state)
}

/// The comment's text from a `{"content": "..."}` body (trimmed, 1 to 10,000 characters).
fn content(body: JsonBody) -> Result<String> {
    let mut fields = body.required()?;
    let content = fields
        .string("content")
        .and_then(|raw| match normalize_comment(&raw) {
            Ok(content) => Some(content),
            Err(msg) => {
                let kind = if raw.trim().is_empty() {
                    "string_too_short"
                } else {
                    "string_too_long"
                };
                fields.reject("content", msg, kind);
                None
            }
        });
    fields.finish_with(content)
}

fn with_etag(status: StatusCode, comment: CommentView) -> Response {
    let etag = HeaderValue::from_str(&comment.etag()).ok();
    let mut response = (status, Json(comment)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(ETAG, etag);
    }
    response
}

fn if_match(headers: &HeaderMap) -> Result<Option<&str>> {
    headers
        .get(IF_MATCH)
        .map(|value| {
            value.to_str().map_err(|_| {
                Error::validation(
                    &["header", "if-match"],
                    "Invalid If-Match header",
                    "value_error",
                )
            })
        })
        .transpose()
}

async fn list(
    state: AppState,
    caller: Caller,
    kind: CommentTarget,
    target_id: Uuid,
    uri: axum::http::Uri,
) -> Result<Response> {
    let mut params = QueryParams::parse(uri.query());
    let page = params.page(STANDARD_PAGES);
    params.finish()?;
    let paged = comments::list(&state.repo, &caller, kind, target_id, page).await?;
    Ok(paginated(paged, &uri))
}

/// Comments on a run, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1.0/spaces/{slug}/orchestration/runs/{run_id}/comments",
    tag = "comments",
    params(("slug" = String, Path, description = "The space's slug"), ("run_id" = Uuid, Path, description = "The run's id"), CommentListParams),
    responses((status = 200, description = "One page of comments", body = [CommentView]))
)]
async fn list_run_comments(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let run_id = path.uuid("run_id")?;
    list(state, caller, CommentTarget::Run, run_id, uri).await
}

/// Comments on a task run, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1.0/spaces/{slug}/orchestration/task-runs/{task_run_id}/comments",
    tag = "comments",
    params(("slug" = String, Path, description = "The space's slug"), ("task_run_id" = Uuid, Path, description = "The task run's id"), CommentListParams),
    responses((status = 200, description = "One page of comments", body = [CommentView]))
)]
async fn list_task_run_comments(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let task_run_id = path.uuid("task_run_id")?;
    list(state, caller, CommentTarget::TaskRun, task_run_id, uri).await
}

/// Comment on a run. Any member of the space.
#[utoipa::path(
    post,
    path = "/api/v1.0/spaces/{slug}/orchestration/runs/{run_id}/comments",
    tag = "comments",
    params(("slug" = String, Path, description = "The space's slug"), ("run_id" = Uuid, Path, description = "The run's id")),
    request_body = CommentBody,
    responses(
        (status = 201, description = "The new comment", body = CommentView, headers(("ETag" = String, description = "Version of the comment, for If-Match"))),
    )
)]
async fn create_run_comment(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    body: JsonBody,
) -> Result<Response> {
    let run_id = path.uuid("run_id")?;
    let content = content(body)?;
    let comment = comments::create(
        &state.repo,
        &caller,
        CommentTarget::Run,
        run_id,
        content,
        Utc::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::CREATED, comment))
}

/// Comment on a task run. Any member of the space.
#[utoipa::path(
    post,
    path = "/api/v1.0/spaces/{slug}/orchestration/task-runs/{task_run_id}/comments",
    tag = "comments",
    params(("slug" = String, Path, description = "The space's slug"), ("task_run_id" = Uuid, Path, description = "The task run's id")),
    request_body = CommentBody,
    responses(
        (status = 201, description = "The new comment", body = CommentView, headers(("ETag" = String, description = "Version of the comment, for If-Match"))),
    )
)]
async fn create_task_run_comment(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    body: JsonBody,
) -> Result<Response> {
    let task_run_id = path.uuid("task_run_id")?;
    let content = content(body)?;
    let comment = comments::create(
        &state.repo,
        &caller,
        CommentTarget::TaskRun,
        task_run_id,
        content,
        Utc::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::CREATED, comment))
}

/// Edit a comment (its author only). `PATCH` does the same.
#[utoipa::path(
    put,
    path = "/api/v1.0/spaces/{slug}/orchestration/comments/{comment_id}",
    tag = "comments",
    params(("slug" = String, Path, description = "The space's slug"), ("comment_id" = Uuid, Path, description = "The comment's id"), ("If-Match" = Option<String>, Header, description = "Apply only if the comment is still at this ETag")),
    request_body = CommentBody,
    responses(
        (status = 200, description = "The edited comment", body = CommentView, headers(("ETag" = String, description = "Version of the comment, for If-Match"))),
        (status = 403, description = "The caller is not the author", body = ErrorBody),
        (status = 412, description = "If-Match does not match the current version", body = ErrorBody),
    )
)]
async fn update_comment(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    let comment_id = path.uuid("comment_id")?;
    let content = content(body)?;
    let comment = comments::update(
        &state.repo,
        &caller,
        comment_id,
        content,
        if_match(&headers)?,
        Utc::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, comment))
}

/// Edit a comment (its author only); the same as `PUT`.
#[utoipa::path(
    patch,
    path = "/api/v1.0/spaces/{slug}/orchestration/comments/{comment_id}",
    tag = "comments",
    params(("slug" = String, Path, description = "The space's slug"), ("comment_id" = Uuid, Path, description = "The comment's id"), ("If-Match" = Option<String>, Header, description = "Apply only if the comment is still at this ETag")),
    request_body = CommentBody,
    responses(
        (status = 200, description = "The edited comment", body = CommentView, headers(("ETag" = String, description = "Version of the comment, for If-Match"))),
        (status = 403, description = "The caller is not the author", body = ErrorBody),
        (status = 412, description = "If-Match does not match the current version", body = ErrorBody),
    )
)]
async fn patch_comment(
    state: State<AppState>,
    caller: Caller,
    path: PathParams,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    update_comment(state, caller, path, headers, body).await
}

/// Delete a comment (its author, or a space admin).
#[utoipa::path(
    delete,
    path = "/api/v1.0/spaces/{slug}/orchestration/comments/{comment_id}",
    tag = "comments",
    params(("slug" = String, Path, description = "The space's slug"), ("comment_id" = Uuid, Path, description = "The comment's id"), ("If-Match" = Option<String>, Header, description = "Apply only if the comment is still at this ETag")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller is neither the author nor a space admin", body = ErrorBody),
        (status = 412, description = "If-Match does not match the current version", body = ErrorBody),
    )
)]
async fn delete_comment(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let comment_id = path.uuid("comment_id")?;
    comments::delete(&state.repo, &caller, comment_id, if_match(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
