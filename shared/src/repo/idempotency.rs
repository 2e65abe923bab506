//! `Idempotency-Key` records of triggers: a retried request returns the first result.
//! Records expire after a day (DynamoDB TTL removes them; expired ones are ignored anyway).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Repository, from_item, to_item};
use crate::error::Result;
use crate::keys;
use crate::store::{Condition, StoreError};

pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub pipeline_id: Uuid,
    /// Hash of the request body, so a key reused for another request is refused.
    pub request_hash: String,
    /// Set once the run exists.
    pub run_id: Option<Uuid>,
    /// The body of the original answer (201), replayed as it was sent. Absent in records
    /// written before replays kept it: those replay the run as it is now.
    #[serde(default)]
    pub response: Option<serde_json::Value>,
    /// When the key was claimed (a claim left without a run by a crash is taken over later).
    pub claimed_at: DateTime<Utc>,
    /// Epoch seconds (the table's TTL attribute).
    pub expires_at: i64,
}

impl Repository {
    /// Claims the key for this request. `Ok(None)` = claimed; `Ok(Some(record))` = the key is
    /// already claimed (the caller compares and replays).
    pub async fn claim_idempotency_key(
        &self,
        space_id: Uuid,
        user_id: Uuid,
        key_hash: &str,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>> {
        let key = keys::idempotency(space_id, user_id, key_hash);
        let item = to_item(record, "idempotency", key.clone(), None)?;
        let free = Condition::Or(vec![
            Condition::NotExists,
            Condition::LessThan("expires_at".into(), json!(now.timestamp())),
        ]);
        match self.table.put(item, Some(free)).await {
            Ok(()) => Ok(None),
            Err(StoreError::ConditionFailed) => match self.table.get(&key).await? {
                Some(item) => Ok(Some(from_item(item)?)),
                // Expired and removed between the two calls: claim again.
                None => {
                    Box::pin(self.claim_idempotency_key(space_id, user_id, key_hash, record, now))
                        .await
                }
            },
            Err(other) => Err(other.into()),
        }
    }

    pub async fn complete_idempotency_key(
        &self,
        space_id: Uuid,
        user_id: Uuid,
        key_hash: &str,
        record: &IdempotencyRecord,
    ) -> Result<()> {
        let item = to_item(
            record,
            "idempotency",
            keys::idempotency(space_id, user_id, key_hash),
            None,
        )?;
        self.table.put(item, None).await?;
        Ok(())
    }

    /// Frees a key whose request failed before anything happened, so a retry can run.
    pub async fn release_idempotency_key(
        &self,
        space_id: Uuid,
        user_id: Uuid,
        key_hash: &str,
    ) -> Result<()> {
        self.table
            .delete(&keys::idempotency(space_id, user_id, key_hash), None)
            .await?;
        Ok(())
    }
}

pub fn expiry(now: DateTime<Utc>) -> i64 {
    (now + Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp()
}
