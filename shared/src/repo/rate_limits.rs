//! Per-key request counters of the rate limiter (see `auth::rate_limit`).

use serde_json::Value;
use uuid::Uuid;

use super::Repository;
use crate::error::{Error, Result};
use crate::keys;
use crate::store::Update;

impl Repository {
    /// Atomically adds `amount` to a key's counter for the window starting at `window_start`
    /// (epoch seconds) and returns the new total. The item expires (DynamoDB TTL) at
    /// `expires_at`, well after the window ends.
    pub async fn reserve_requests(
        &self,
        key_id: Uuid,
        window_start: i64,
        amount: u32,
        expires_at: i64,
    ) -> Result<u64> {
        let update = Update::new()
            .set("kind", "rate_window")
            .set("expires_at", expires_at)
            .add("count", i64::from(amount));
        let item = self
            .table
            .update(&keys::rate_window(key_id, window_start), update, None)
            .await?;
        item.get("count")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::internal("rate window without a count"))
    }
}
