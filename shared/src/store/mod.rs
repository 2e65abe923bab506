//! The table layer: a deliberately small, DynamoDB-shaped storage port.
//!
//! Everything above this module (repositories, domain services) is written once against the
//! [`Table`] trait. Two adapters implement it:
//!
//! * [`dynamo::DynamoTable`] — Amazon DynamoDB through `aws-sdk-dynamodb` (+ `serde_dynamo`);
//! * [`embedded::EmbeddedTable`] — an on-disk, ACID store built on `redb`, for the local server.
//!
//! The model is DynamoDB's: items are maps of attributes, addressed by a string partition key
//! (`PK`) and a string sort key (`SK`), with one overloaded global secondary index (`GSI1PK` /
//! `GSI1SK`, sparse: only items that carry both attributes are indexed). All key attributes are
//! strings. There is no scan: every read is a get or a query on a key. Both adapters pass the same
//! conformance suite (`tests/tests/store/table_conformance.rs`).

pub mod condition;
#[cfg(any(test, feature = "test-support"))]
pub mod counting;
pub mod dynamo;
pub mod embedded;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

pub use condition::{Condition, Update};

/// One stored item: attribute name → JSON value. Key attributes are strings.
pub type Item = serde_json::Map<String, Value>;

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1_PK: &str = "GSI1PK";
pub const GSI1_SK: &str = "GSI1SK";
/// Name of the one global secondary index (projection: ALL).
pub const GSI1_NAME: &str = "GSI1";

/// Largest number of operations DynamoDB accepts in one `TransactWriteItems`.
pub const MAX_TRANSACTION_OPS: usize = 100;

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// Reads the primary key out of an item, if both attributes are present strings.
    pub fn of(item: &Item) -> Option<Self> {
        Some(Self::new(item.get(PK)?.as_str()?, item.get(SK)?.as_str()?))
    }
}

/// Which key a query runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Primary,
    Gsi1,
}

impl Index {
    pub fn key_names(self) -> (&'static str, &'static str) {
        match self {
            Index::Primary => (PK, SK),
            Index::Gsi1 => (GSI1_PK, GSI1_SK),
        }
    }
}

/// The sort-key part of a key condition (DynamoDB's `KeyConditionExpression` operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Any,
    Equals(String),
    BeginsWith(String),
    /// Inclusive on both ends, as in DynamoDB.
    Between(String, String),
    LessThan(String),
    LessOrEqual(String),
    GreaterThan(String),
    GreaterOrEqual(String),
}

/// Where a query resumes: the key attributes of the last item returned (DynamoDB's
/// `LastEvaluatedKey`). Opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<String, String>);

#[derive(Debug, Clone)]
pub struct Query {
    pub index: Index,
    pub partition: String,
    pub sort: SortKey,
    /// `true` = ascending sort key order.
    pub forward: bool,
    /// At most this many items in one page (DynamoDB may also stop a page at 1 MB).
    pub limit: Option<u32>,
    pub start: Option<Cursor>,
}

impl Query {
    pub fn partition(index: Index, partition: impl Into<String>) -> Self {
        Self {
            index,
            partition: partition.into(),
            sort: SortKey::Any,
            forward: true,
            limit: None,
            start: None,
        }
    }

    pub fn sort(mut self, sort: SortKey) -> Self {
        self.sort = sort;
        self
    }

    pub fn descending(mut self) -> Self {
        self.forward = false;
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    pub items: Vec<Item>,
    /// Present when the query may have more items; pass it back as `Query::start`.
    pub next: Option<Cursor>,
}

/// One page of [`Table::count`].
#[derive(Debug, Clone, Default)]
pub struct CountPage {
    pub count: u64,
    /// Present when more items may match; pass it back as `Query::start`.
    pub next: Option<Cursor>,
}

/// An unconditional write inside [`Table::batch_write`].
#[derive(Debug, Clone)]
pub enum BatchOp {
    Put(Item),
    Delete(Key),
}

/// One operation of an all-or-nothing [`Table::transact_write`].
#[derive(Debug, Clone)]
pub enum TransactOp {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Key,
        update: Update,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    /// Only asserts a condition on an item; writes nothing.
    Check { key: Key, condition: Condition },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write's condition did not hold (nothing was written).
    #[error("the write's condition did not hold")]
    ConditionFailed,
    /// A transaction was cancelled; `index` is the first operation whose condition failed, if known.
    #[error("the transaction was cancelled (operation {index:?} failed its condition)")]
    TransactionCancelled { index: Option<usize> },
    /// The backend asked us to slow down, or a transient fault persisted after retries.
    #[error("the store is throttling or temporarily unavailable: {0}")]
    Unavailable(String),
    /// The request itself is invalid (bad key, item too large, too many operations).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// Anything else from the backend.
    #[error("store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// True when retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage port. Semantics follow DynamoDB; see the module docs.
#[async_trait]
pub trait Table: Send + Sync + 'static {
    /// Strongly consistent read of one item.
    async fn get(&self, key: &Key) -> StoreResult<Option<Item>>;

    /// Reads many items at once; missing keys are simply absent. Order is unspecified.
    /// Any number of keys (adapters chunk as their backend requires).
    async fn batch_get(&self, keys: &[Key]) -> StoreResult<Vec<Item>>;

    /// Creates or replaces an item, if `condition` (evaluated on the current item) holds.
    async fn put(&self, item: Item, condition: Option<Condition>) -> StoreResult<()>;

    /// Updates (or creates) an item in place and returns it as it is after the update.
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item>;

    /// Deletes an item (deleting a missing item is not an error unless the condition says so).
    async fn delete(&self, key: &Key, condition: Option<Condition>) -> StoreResult<()>;

    /// One page of a key-condition query.
    async fn query(&self, query: &Query) -> StoreResult<QueryPage>;

    /// How many items a query matches, without returning them (DynamoDB's `Select: COUNT`), one
    /// page at a time: a page still stops where DynamoDB stops reading (1 MB). `limit` is
    /// ignored.
    async fn count(&self, query: &Query) -> StoreResult<CountPage>;

    /// Unconditional puts and deletes, any number (adapters chunk and retry unprocessed items).
    /// Not atomic as a whole: use [`Table::transact_write`] when it must be.
    async fn batch_write(&self, ops: Vec<BatchOp>) -> StoreResult<()>;

    /// All-or-nothing conditional writes, at most [`MAX_TRANSACTION_OPS`], each key at most once.
    async fn transact_write(&self, ops: Vec<TransactOp>) -> StoreResult<()>;

    /// Name of the backend, for logs and the health endpoint.
    fn backend_name(&self) -> &'static str;
}

/// Runs a query to the end, following cursors.
pub async fn query_all(table: &dyn Table, mut query: Query) -> StoreResult<Vec<Item>> {
    let mut items = Vec::new();
    loop {
        let page = table.query(&query).await?;
        items.extend(page.items);
        match page.next {
            Some(cursor) => query.start = Some(cursor),
            None => return Ok(items),
        }
    }
}

/// Counts a query's items to the end, following cursors.
pub async fn count_all(table: &dyn Table, mut query: Query) -> StoreResult<u64> {
    let mut count = 0;
    loop {
        let page = table.count(&query).await?;
        count += page.count;
        match page.next {
            Some(cursor) => query.start = Some(cursor),
            None => return Ok(count),
        }
    }
}

/// Reads a string key attribute of an item.
pub(crate) fn key_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(Value::as_str)
}

/// Checks that an item to be written carries a usable primary key (and, if it has one of the
/// index attributes, both of them as strings), so both adapters reject the same items.
pub(crate) fn validate_item_keys(item: &Item) -> StoreResult<Key> {
    let key = Key::of(item).ok_or_else(|| {
        StoreError::Invalid("an item needs string PK and SK attributes".to_string())
    })?;
    validate_key(&key)?;
    for name in [GSI1_PK, GSI1_SK] {
        if let Some(value) = item.get(name) {
            match value.as_str() {
                Some(s) if !s.is_empty() && !s.contains('\0') => {}
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "{name} must be a non-empty string without NUL characters"
                    )));
                }
            }
        }
    }
    Ok(key)
}

pub(crate) fn validate_key(key: &Key) -> StoreResult<()> {
    for (name, value) in [(PK, &key.pk), (SK, &key.sk)] {
        if value.is_empty() || value.contains('\0') || value.len() > 1024 {
            return Err(StoreError::Invalid(format!(
                "{name} must be a non-empty string of at most 1024 bytes without NUL characters"
            )));
        }
    }
    Ok(())
}
