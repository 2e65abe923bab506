//! The comments endpoint group: comments on runs (`/runs/{run_id}/comments`) and task runs
//! (`/task-runs/{task_run_id}/comments`), and edits (`PUT`/`PATCH`/`DELETE /comments/{id}`).
//!
//! Handlers only translate HTTP to a service call and back; the rules live in
//! `shared::service::comments`. Each handler's `#[utoipa::path]` is both its route and its
//! operation in the OpenAPI document.

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::Utc;
use shared::Result;
use shared::api::{CommentView, ErrorBody};
use shared::auth::Caller;
use shared::domain::model::CommentTarget;
use shared::http::extract::{Body, Path, Query};
use shared::http::inputs::{
    CommentBody, CommentListParams, CommentPath, IfMatch, RunPath, TaskRunPath,
};
use shared::http::pagination::{PageResponse, paginated};
use shared::http::responses::TaggedComment;
use shared::http::{AppState, app};
use shared::service::comments;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// This group's endpoints, relative to the API prefix: routes and document in one.
pub fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_run_comments, create_run_comment))
        .routes(routes!(list_task_run_comments, create_task_run_comment))
        .routes(routes!(update_comment, patch_comment, delete_comment))
}

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(endpoints(), state)
}

/// A target's comments (both list routes).
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    target: CommentTarget,
    target_id: Uuid,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<CommentListParams>,
) -> Result<PageResponse<CommentView>> {
    let page = params.size.page(params.page);
    let paged = comments::list(&state.repo, &caller, target, target_id, page).await?;
    Ok(paginated(paged, uri))
}

/// A new comment on a target (both create routes).
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    target: CommentTarget,
    target_id: Uuid,
    Body(body): Body<CommentBody>,
) -> Result<TaggedComment> {
    let comment = comments::create(
        &state.repo,
        &caller,
        target,
        target_id,
        body.content,
        Utc::now(),
    )
    .await?;
    Ok(TaggedComment(StatusCode::CREATED, comment))
}

/// Comments on a run, oldest first.
#[utoipa::path(
    get,
    path = "/runs/{run_id}/comments",
    tag = "comments",
    params(RunPath, CommentListParams),
    responses((status = 200, description = "One page of comments", body = [CommentView]))
)]
async fn list_run_comments(
    state: State<AppState>,
    caller: Caller,
    Path(path): Path<RunPath>,
    uri: OriginalUri,
    query: Query<CommentListParams>,
) -> Result<PageResponse<CommentView>> {
    list(state, caller, CommentTarget::Run, path.run_id, uri, query).await
}

/// Comments on a task run, oldest first.
#[utoipa::path(
    get,
    path = "/task-runs/{task_run_id}/comments",
    tag = "comments",
    params(TaskRunPath, CommentListParams),
    responses((status = 200, description = "One page of comments", body = [CommentView]))
)]
async fn list_task_run_comments(
    state: State<AppState>,
    caller: Caller,
    Path(path): Path<TaskRunPath>,
    uri: OriginalUri,
    query: Query<CommentListParams>,
) -> Result<PageResponse<CommentView>> {
    list(
        state,
        caller,
        CommentTarget::TaskRun,
        path.task_run_id,
        uri,
        query,
    )
    .await
}

/// Comment on a run. Any member of the space.
#[utoipa::path(
    post,
    path = "/runs/{run_id}/comments",
    tag = "comments",
    params(RunPath),
    request_body = CommentBody,
    responses(
        (status = 201, description = "The new comment", body = CommentView, headers(("ETag" = String, description = "Version of the comment, for If-Match"))),
    )
)]
async fn create_run_comment(
    state: State<AppState>,
    caller: Caller,
    Path(path): Path<RunPath>,
    body: Body<CommentBody>,
) -> Result<TaggedComment> {
    create(state, caller, CommentTarget::Run, path.run_id, body).await
}

/// Comment on a task run. Any member of the space.
#[utoipa::path(
    post,
    path = "/task-runs/{task_run_id}/comments",
    tag = "comments",
    params(TaskRunPath),
    request_body = CommentBody,
    responses(
        (status = 201, description = "The new comment", body = CommentView, headers(("ETag" = String, description = "Version of the comment, for If-Match"))),
    )
)]
async fn create_task_run_comment(
    state: State<AppState>,
    caller: Caller,
    Path(path): Path<TaskRunPath>,
    body: Body<CommentBody>,
) -> Result<TaggedComment> {
    create(
        state,
        caller,
        CommentTarget::TaskRun,
        path.task_run_id,
        body,
    )
    .await
}

/// Edit a comment (its author only). `PATCH` does the same.
#[utoipa::path(
    put,
    path = "/comments/{comment_id}",
    tag = "comments",
    params(CommentPath, ("If-Match" = Option<String>, Header, description = "Apply only if the comment is still at this ETag")),
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
    Path(path): Path<CommentPath>,
    IfMatch(if_match): IfMatch,
    Body(body): Body<CommentBody>,
) -> Result<TaggedComment> {
    let comment = comments::update(
        &state.repo,
        &caller,
        path.comment_id,
        body.content,
        if_match.as_deref(),
        Utc::now(),
    )
    .await?;
    Ok(TaggedComment(StatusCode::OK, comment))
}

/// Edit a comment (its author only); the same as `PUT`.
#[utoipa::path(
    patch,
    path = "/comments/{comment_id}",
    tag = "comments",
    params(CommentPath, ("If-Match" = Option<String>, Header, description = "Apply only if the comment is still at this ETag")),
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
    path: Path<CommentPath>,
    if_match: IfMatch,
    body: Body<CommentBody>,
) -> Result<TaggedComment> {
    update_comment(state, caller, path, if_match, body).await
}

/// Delete a comment (its author, or a space admin).
#[utoipa::path(
    delete,
    path = "/comments/{comment_id}",
    tag = "comments",
    params(CommentPath, ("If-Match" = Option<String>, Header, description = "Apply only if the comment is still at this ETag")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller is neither the author nor a space admin", body = ErrorBody),
        (status = 412, description = "If-Match does not match the current version", body = ErrorBody),
    )
)]
async fn delete_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<CommentPath>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode> {
    comments::delete(&state.repo, &caller, path.comment_id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
