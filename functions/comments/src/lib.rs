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
use shared::api::CommentView;
use shared::auth::Caller;
use shared::domain::model::{CommentTarget, normalize_comment};
use shared::http::body::JsonBody;
use shared::http::pagination::paginated;
use shared::http::params::{PathParams, QueryParams, STANDARD_PAGES};
use shared::http::{AppState, app};
use shared::service::comments;
use shared::{Error, Result};

/// This group's routes, relative to the API prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs/{run_id}/comments", get(list_run_comments).post(create_run_comment))
        .route(
            "/task-runs/{task_run_id}/comments",
            get(list_task_run_comments).post(create_task_run_comment),
        )
        .route("/comments/{comment_id}", put(update_comment).patch(update_comment).delete(delete_comment))
}

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(routes(), state)
}

/// The comment's text from a `{"content": "..."}` body (trimmed, 1 to 10,000 characters).
fn content(body: JsonBody) -> Result<String> {
    let mut fields = body.required()?;
    let content = fields.string("content").and_then(|raw| match normalize_comment(&raw) {
        Ok(content) => Some(content),
        Err(msg) => {
            fields.reject("content", msg, "string_length");
            None
        }
    });
    fields.finish()?;
    content.ok_or_else(|| Error::internal("content checked by finish"))
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
            value
                .to_str()
                .map_err(|_| Error::validation(&["header", "if-match"], "Invalid If-Match header", "value_error"))
        })
        .transpose()
}

async fn list(
    state: AppState,
    caller: Caller,
    kind: CommentTarget,
    target_id: uuid::Uuid,
    uri: axum::http::Uri,
) -> Result<Response> {
    let mut params = QueryParams::parse(uri.query());
    let page = params.page(STANDARD_PAGES);
    params.finish()?;
    let paged = comments::list(&state.repo, &caller, kind, target_id, page).await?;
    Ok(paginated(paged, &uri))
}

async fn list_run_comments(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let run_id = path.uuid("run_id")?;
    list(state, caller, CommentTarget::Run, run_id, uri).await
}

async fn list_task_run_comments(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let task_run_id = path.uuid("task_run_id")?;
    list(state, caller, CommentTarget::TaskRun, task_run_id, uri).await
}

async fn create_run_comment(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    body: JsonBody,
) -> Result<Response> {
    let run_id = path.uuid("run_id")?;
    let content = content(body)?;
    let comment = comments::create(&state.repo, &caller, CommentTarget::Run, run_id, content, Utc::now()).await?;
    Ok(with_etag(StatusCode::CREATED, comment))
}

async fn create_task_run_comment(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    body: JsonBody,
) -> Result<Response> {
    let task_run_id = path.uuid("task_run_id")?;
    let content = content(body)?;
    let comment =
        comments::create(&state.repo, &caller, CommentTarget::TaskRun, task_run_id, content, Utc::now()).await?;
    Ok(with_etag(StatusCode::CREATED, comment))
}

async fn update_comment(
    State(state): State<AppState>,
    caller: Caller,
    path: PathParams,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    let comment_id = path.uuid("comment_id")?;
    let content = content(body)?;
    let comment =
        comments::update(&state.repo, &caller, comment_id, content, if_match(&headers)?, Utc::now()).await?;
    Ok(with_etag(StatusCode::OK, comment))
}

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
