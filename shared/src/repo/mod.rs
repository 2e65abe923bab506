//! Repositories: the application's reads and writes, written once over the [`Table`] port.
//!
//! Records are stored as their serde form plus key attributes (`PK`, `SK`, optional `GSI1PK`
//! / `GSI1SK`) and a `kind` tag; null attributes are left out.

mod comments;
mod directory;
mod events;
mod idempotency;
mod ingest;
mod listing;
mod listing_changes;
mod pipelines;
mod rate_limits;
mod runs;
mod sync_state;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::{GSI1_PK, GSI1_SK, Item, Key, PK, SK, Table};

pub use directory::NewApiKey;
pub use idempotency::{IdempotencyRecord, expiry as idempotency_expiry};
pub use ingest::{IngestReport, RunWithTasks};
pub use listing::{PipelineListing, SelectedListing};
pub use pipelines::PipelineWithSeries;

/// Entry point to every repository operation. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    table: Arc<dyn Table>,
    listings: Arc<listing::ListingCache>,
    /// How long pipeline events are kept (their `expires_at`).
    event_retention: chrono::Duration,
}

impl Repository {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self {
            table,
            listings: Arc::default(),
            event_retention: chrono::Duration::days(crate::domain::events::DEFAULT_RETENTION_DAYS),
        }
    }

    /// The same repository keeping pipeline events for `retention`.
    pub fn with_event_retention(mut self, retention: chrono::Duration) -> Self {
        self.event_retention = retention;
        self
    }

    pub fn event_retention(&self) -> chrono::Duration {
        self.event_retention
    }

    pub fn table(&self) -> &dyn Table {
        self.table.as_ref()
    }
}

/// Serialises a record into an item with its keys.
pub(crate) fn to_item<T: Serialize>(
    record: &T,
    kind: &str,
    key: Key,
    gsi1: Option<(String, String)>,
) -> Result<Item> {
    let Value::Object(fields) = serde_json::to_value(record).map_err(Error::internal)? else {
        return Err(Error::internal(format!(
            "{kind} does not serialise to an object"
        )));
    };
    let mut item: Item = fields.into_iter().filter(|(_, v)| !v.is_null()).collect();
    item.insert(PK.into(), key.pk.into());
    item.insert(SK.into(), key.sk.into());
    if let Some((pk, sk)) = gsi1 {
        item.insert(GSI1_PK.into(), pk.into());
        item.insert(GSI1_SK.into(), sk.into());
    }
    item.insert("kind".into(), kind.into());
    Ok(item)
}

/// Reads a record back from an item (key attributes and unknown attributes are ignored).
pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T> {
    serde_json::from_value(Value::Object(item))
        .map_err(|e| Error::internal(format!("stored item does not decode: {e}")))
}

/// A value as JSON, for update expressions.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(Error::internal)
}
