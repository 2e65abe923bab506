//! Comments. Each comment is two items written together in one transaction: the comment by id,
//! and its entry in the target's list. Edits are conditional on the version read, so concurrent
//! edits never silently overwrite each other.

use uuid::Uuid;

use super::{Repository, from_item, to_item};
use crate::domain::model::Comment;
use crate::error::{Error, Result};
use crate::keys;
use crate::store::{Condition, Index, Item, Query, StoreError, TransactOp, query_all};

fn items(comment: &Comment) -> Result<(Item, Item)> {
    let by_id = to_item(comment, "comment", keys::comment(comment.id), None)?;
    let entry = to_item(
        comment,
        "comment_entry",
        keys::comment_entry(comment.target_id, comment.created_at, comment.id),
        None,
    )?;
    Ok((by_id, entry))
}

/// A failed condition on a comment means it changed or disappeared since it was read.
fn changed(error: StoreError) -> Error {
    match error {
        StoreError::TransactionCancelled { .. } | StoreError::ConditionFailed => {
            Error::PreconditionFailed("The comment was changed or deleted since it was read".into())
        }
        other => other.into(),
    }
}

impl Repository {
    pub async fn create_comment(&self, comment: &Comment) -> Result<()> {
        let (by_id, entry) = items(comment)?;
        self.table
            .transact_write(vec![
                TransactOp::Put {
                    item: by_id,
                    condition: Some(Condition::NotExists),
                },
                TransactOp::Put {
                    item: entry,
                    condition: Some(Condition::NotExists),
                },
            ])
            .await
            .map_err(|e| match e {
                StoreError::TransactionCancelled { .. } => {
                    Error::Conflict("Comment already exists".into())
                }
                other => other.into(),
            })
    }

    /// A comment of the space (`None` for a comment of another space).
    pub async fn get_comment(&self, space_id: Uuid, comment_id: Uuid) -> Result<Option<Comment>> {
        Ok(self
            .table
            .get(&keys::comment(comment_id))
            .await?
            .map(from_item::<Comment>)
            .transpose()?
            .filter(|c| c.space_id == space_id))
    }

    /// A target's comments in the space, oldest first (none for another space's target).
    pub async fn list_comments(&self, space_id: Uuid, target_id: Uuid) -> Result<Vec<Comment>> {
        let query = Query::partition(Index::Primary, keys::comments_of(target_id));
        let mut comments = query_all(self.table(), query)
            .await?
            .into_iter()
            .map(from_item::<Comment>)
            .collect::<Result<Vec<_>>>()?;
        comments.retain(|c| c.space_id == space_id);
        Ok(comments)
    }

    /// Replaces a comment if it is still at `expected_version` (412 otherwise).
    pub async fn update_comment(&self, comment: &Comment, expected_version: u64) -> Result<()> {
        let (by_id, entry) = items(comment)?;
        let unchanged = Condition::equals("version", expected_version);
        self.table
            .transact_write(vec![
                TransactOp::Put {
                    item: by_id,
                    condition: Some(unchanged.clone()),
                },
                TransactOp::Put {
                    item: entry,
                    condition: Some(unchanged),
                },
            ])
            .await
            .map_err(changed)
    }

    /// Deletes a comment if it is still at `expected_version` (412 otherwise).
    pub async fn delete_comment(&self, comment: &Comment, expected_version: u64) -> Result<()> {
        let unchanged = Condition::equals("version", expected_version);
        self.table
            .transact_write(vec![
                TransactOp::Delete {
                    key: keys::comment(comment.id),
                    condition: Some(unchanged.clone()),
                },
                TransactOp::Delete {
                    key: keys::comment_entry(comment.target_id, comment.created_at, comment.id),
                    condition: Some(unchanged),
                },
            ])
            .await
            .map_err(changed)
    }
}
