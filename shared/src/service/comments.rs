//! Comments on runs and task runs: who may do what, and optimistic concurrency.
//!
//! Viewers and up may comment; only the author edits; the author or a space admin deletes.
//! Every target and comment is checked against the caller's space (404 otherwise). An
//! `If-Match` that names another version than the stored one is 412; without `If-Match` the
//! write still only applies to the version just read (a concurrent change makes it 412 rather
//! than being lost).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PageRequest, Paged};
use crate::api::CommentView;
use crate::auth::Caller;
use crate::domain::model::{Comment, CommentTarget, Role};
use crate::error::{Error, Result};
use crate::repo::Repository;

/// The run or task run a comment is about, resolved inside the caller's space.
struct Target {
    kind: CommentTarget,
    id: Uuid,
    run_id: Uuid,
    pipeline_id: Uuid,
}

async fn resolve(
    repo: &Repository,
    caller: &Caller,
    kind: CommentTarget,
    id: Uuid,
) -> Result<Target> {
    match kind {
        CommentTarget::Run => {
            let run = repo
                .get_run(caller.space_id, id)
                .await?
                .ok_or(Error::NotFound("Run not found"))?;
            Ok(Target {
                kind,
                id,
                run_id: run.id,
                pipeline_id: run.pipeline_id,
            })
        }
        CommentTarget::TaskRun => {
            let task_run = repo
                .get_task_run(caller.space_id, id)
                .await?
                .ok_or(Error::NotFound("Task run not found"))?;
            Ok(Target {
                kind,
                id,
                run_id: task_run.run_id,
                pipeline_id: task_run.pipeline_id,
            })
        }
    }
}

/// A comment of the caller's space (404 for any other).
async fn find(repo: &Repository, caller: &Caller, comment_id: Uuid) -> Result<Comment> {
    repo.get_comment(caller.space_id, comment_id)
        .await?
        .ok_or(Error::NotFound("Comment not found"))
}

/// Checks an `If-Match` header value against the stored version.
fn check_if_match(if_match: Option<&str>, comment: &Comment) -> Result<()> {
    let Some(if_match) = if_match else {
        return Ok(());
    };
    let current = CommentView::from(comment.clone()).etag();
    let matches = if_match.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag == current || tag.strip_prefix("W/") == Some(current.as_str())
    });
    if matches {
        Ok(())
    } else {
        Err(Error::PreconditionFailed(format!(
            "If-Match does not match the comment's current version ({current})"
        )))
    }
}

pub async fn list(
    repo: &Repository,
    caller: &Caller,
    kind: CommentTarget,
    target_id: Uuid,
    page: PageRequest,
) -> Result<Paged<CommentView>> {
    resolve(repo, caller, kind, target_id).await?;
    let comments = repo.list_comments(caller.space_id, target_id).await?;
    let total = comments.len() as u64;
    let items = page
        .slice(comments)
        .into_iter()
        .map(CommentView::from)
        .collect();
    Ok(Paged { items, total, page })
}

pub async fn create(
    repo: &Repository,
    caller: &Caller,
    kind: CommentTarget,
    target_id: Uuid,
    content: String,
    now: DateTime<Utc>,
) -> Result<CommentView> {
    caller.require(Role::Viewer)?;
    let target = resolve(repo, caller, kind, target_id).await?;
    let author = repo
        .get_user(caller.user_id)
        .await?
        .ok_or_else(|| Error::internal("a member without a user record"))?;
    let comment = Comment {
        id: Uuid::new_v4(),
        space_id: caller.space_id,
        target_type: target.kind,
        target_id: target.id,
        run_id: target.run_id,
        pipeline_id: target.pipeline_id,
        author_id: author.id,
        author_name: author.full_name,
        content,
        created_at: now,
        updated_at: now,
        updated_by: caller.user_id,
        edited: false,
        version: 1,
    };
    repo.create_comment(&comment).await?;
    Ok(comment.into())
}

pub async fn update(
    repo: &Repository,
    caller: &Caller,
    comment_id: Uuid,
    content: String,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CommentView> {
    let current = find(repo, caller, comment_id).await?;
    if current.author_id != caller.user_id {
        return Err(Error::Forbidden(
            "Only the author can edit a comment".into(),
        ));
    }
    check_if_match(if_match, &current)?;
    let updated = Comment {
        content,
        updated_at: now,
        updated_by: caller.user_id,
        edited: true,
        version: current.version + 1,
        ..current.clone()
    };
    repo.update_comment(&updated, current.version).await?;
    Ok(updated.into())
}

pub async fn delete(
    repo: &Repository,
    caller: &Caller,
    comment_id: Uuid,
    if_match: Option<&str>,
) -> Result<()> {
    let current = find(repo, caller, comment_id).await?;
    if current.author_id != caller.user_id && caller.role < Role::Admin {
        return Err(Error::Forbidden(
            "Only the author or a space admin can delete a comment".into(),
        ));
    }
    check_if_match(if_match, &current)?;
    repo.delete_comment(&current, current.version).await
}
