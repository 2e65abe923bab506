//! Sync bookkeeping: the per-connector lease, the checkpoint and the sync records.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{Repository, from_item, to_item};
use crate::domain::sync::{Checkpoint, SyncRecord};
use crate::error::Result;
use crate::keys;
use crate::store::{Condition, Index, Item, Query, SortKey, StoreError};

/// How long sync records are kept (the table's TTL attribute `expires_at`).
pub const SYNC_RECORD_RETENTION_DAYS: i64 = 90;

impl Repository {
    /// Takes the connector's sync lease for `ttl` unless another holder has it. Returns false
    /// when it is held (the caller answers 409). An expired lease (a crashed sync) is taken over.
    pub async fn acquire_sync_lease(
        &self,
        connector_id: Uuid,
        holder: Uuid,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let key = keys::sync_lease(connector_id);
        let until = now + ttl;
        let mut item = Item::new();
        item.insert("PK".into(), key.pk.into());
        item.insert("SK".into(), key.sk.into());
        item.insert("kind".into(), "sync_lease".into());
        item.insert("holder".into(), holder.to_string().into());
        item.insert("lease_until_ms".into(), json!(until.timestamp_millis()));
        // DynamoDB's TTL deletes abandoned leases eventually; the condition does not rely on it.
        item.insert("expires_at".into(), json!(until.timestamp() + 3600));
        let free = Condition::Or(vec![
            Condition::NotExists,
            Condition::LessThan("lease_until_ms".into(), json!(now.timestamp_millis())),
        ]);
        match self.table.put(item, Some(free)).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// Gives the lease back (only if this holder still has it).
    pub async fn release_sync_lease(&self, connector_id: Uuid, holder: Uuid) -> Result<()> {
        let mine = Condition::equals("holder", holder.to_string());
        match self
            .table
            .delete(&keys::sync_lease(connector_id), Some(mine))
            .await
        {
            Ok(()) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    pub async fn get_checkpoint(&self, connector_id: Uuid) -> Result<Checkpoint> {
        match self.table.get(&keys::sync_checkpoint(connector_id)).await? {
            Some(item) => from_item(item),
            None => Ok(Checkpoint::default()),
        }
    }

    pub async fn put_checkpoint(&self, connector_id: Uuid, checkpoint: &Checkpoint) -> Result<()> {
        let item = to_item(
            checkpoint,
            "sync_checkpoint",
            keys::sync_checkpoint(connector_id),
            None,
        )?;
        self.table.put(item, None).await?;
        Ok(())
    }

    /// Writes a sync record; DynamoDB's TTL removes it after [`SYNC_RECORD_RETENTION_DAYS`].
    pub async fn put_sync_record(&self, record: &SyncRecord) -> Result<()> {
        let key = keys::sync_record(record.connector_id, record.started_at, record.id);
        let mut item = to_item(record, "sync_record", key, None)?;
        let expires = record.started_at + Duration::days(SYNC_RECORD_RETENTION_DAYS);
        item.insert("expires_at".into(), json!(expires.timestamp()));
        self.table.put(item, None).await?;
        Ok(())
    }

    /// A sync record of the space (`None` for one of another space).
    pub async fn get_sync_record(
        &self,
        space_id: Uuid,
        connector_id: Uuid,
        started_at: DateTime<Utc>,
        sync_id: Uuid,
    ) -> Result<Option<SyncRecord>> {
        let key = keys::sync_record(connector_id, started_at, sync_id);
        Ok(self
            .table
            .get(&key)
            .await?
            .map(from_item::<SyncRecord>)
            .transpose()?
            .filter(|record| record.space_id == space_id))
    }

    /// A connector's sync records in the space, newest first (none for another space's
    /// connector).
    pub async fn list_sync_records(
        &self,
        space_id: Uuid,
        connector_id: Uuid,
    ) -> Result<Vec<SyncRecord>> {
        let query = Query::partition(Index::Primary, keys::connector_partition(connector_id))
            .sort(SortKey::BeginsWith(keys::SYNC_RECORD_PREFIX.into()))
            .descending();
        let mut records = crate::store::query_all(self.table(), query)
            .await?
            .into_iter()
            .map(from_item::<SyncRecord>)
            .collect::<Result<Vec<_>>>()?;
        records.retain(|record| record.space_id == space_id);
        Ok(records)
    }
}
