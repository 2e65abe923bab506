//! A [`Table`] decorator that counts backend requests and records which partitions were
//! written, for round-trip budgets and "this wrote nothing" checks in tests and benchmarks.
//! A batch or query counts once per call here; the DynamoDB adapter may split a call into
//! several HTTP requests (25-item batches, 1 MB pages).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{
    BatchOp, Condition, CountPage, Item, Key, PK, Query, QueryPage, StoreResult, Table, TransactOp,
    Update,
};

pub struct CountingTable {
    inner: Arc<dyn Table>,
    requests: AtomicU64,
    /// Requests as DynamoDB would count them: a batch read of more than 100 keys is several.
    dynamodb_requests: AtomicU64,
    /// Bytes of the items read, as DynamoDB sizes items ([`dynamodb_item_size`]).
    bytes_read: AtomicU64,
    /// Partition key of every item written (put, update, delete), in order.
    written: Mutex<Vec<String>>,
}

impl CountingTable {
    pub fn new(inner: Arc<dyn Table>) -> Self {
        Self {
            inner,
            requests: AtomicU64::new(0),
            dynamodb_requests: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            written: Mutex::new(Vec::new()),
        }
    }

    /// Requests made since the last call, and resets the count.
    pub fn take(&self) -> u64 {
        self.requests.swap(0, Ordering::SeqCst)
    }

    /// DynamoDB requests and bytes read since the last call, and resets both.
    pub fn take_read_cost(&self) -> (u64, u64) {
        (
            self.dynamodb_requests.swap(0, Ordering::SeqCst),
            self.bytes_read.swap(0, Ordering::SeqCst),
        )
    }

    /// Partition keys of the items written since the last call (one entry per item write).
    pub fn take_written(&self) -> Vec<String> {
        std::mem::take(&mut self.written.lock().expect("counter lock"))
    }

    fn tally(&self) {
        self.tally_as(1);
    }

    fn tally_as(&self, dynamodb_requests: u64) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.dynamodb_requests
            .fetch_add(dynamodb_requests, Ordering::SeqCst);
    }

    fn read<'a>(&self, items: impl IntoIterator<Item = &'a Item>) {
        let bytes: usize = items.into_iter().map(dynamodb_item_size).sum();
        self.bytes_read.fetch_add(bytes as u64, Ordering::SeqCst);
    }

    fn wrote<'a>(&self, partitions: impl IntoIterator<Item = &'a str>) {
        let mut written = self.written.lock().expect("counter lock");
        written.extend(partitions.into_iter().map(str::to_string));
    }
}

/// An item's size as DynamoDB counts it for capacity and its 400 KB limit, with items mapped
/// as the DynamoDB adapter maps them (serde_dynamo: strings S, numbers N, arrays L, objects M):
/// each attribute's name plus its value, a string its UTF-8 length, a number about one byte per
/// two significant digits plus one, a list or map 3 bytes plus one per element plus the
/// elements, a boolean or null 1 byte.
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>)
pub fn dynamodb_item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + dynamodb_value_size(value))
        .sum()
}

fn dynamodb_value_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::String(text) => text.len(),
        Value::Number(number) => {
            let digits = number
                .to_string()
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>();
            let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
            significant.max(1).div_ceil(2) + 1
        }
        Value::Bool(_) | Value::Null => 1,
        Value::Array(values) => {
            3 + values
                .iter()
                .map(|v| 1 + dynamodb_value_size(v))
                .sum::<usize>()
        }
        Value::Object(map) => {
            3 + map
                .iter()
                .map(|(name, v)| 1 + name.len() + dynamodb_value_size(v))
                .sum::<usize>()
        }
    }
}

fn partition(item: &Item) -> &str {
    item.get(PK).and_then(|v| v.as_str()).unwrap_or_default()
}

#[async_trait]
impl Table for CountingTable {
    async fn get(&self, key: &Key) -> StoreResult<Option<Item>> {
        self.tally();
        let found = self.inner.get(key).await?;
        self.read(found.as_ref());
        Ok(found)
    }

    async fn batch_get(&self, keys: &[Key]) -> StoreResult<Vec<Item>> {
        self.tally_as(keys.len().div_ceil(100).max(1) as u64);
        let found = self.inner.batch_get(keys).await?;
        self.read(&found);
        Ok(found)
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> StoreResult<()> {
        self.tally();
        self.wrote([partition(&item)]);
        self.inner.put(item, condition).await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item> {
        self.tally();
        self.wrote([key.pk.as_str()]);
        self.inner.update(key, update, condition).await
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> StoreResult<()> {
        self.tally();
        self.wrote([key.pk.as_str()]);
        self.inner.delete(key, condition).await
    }

    async fn query(&self, query: &Query) -> StoreResult<QueryPage> {
        self.tally();
        let page = self.inner.query(query).await?;
        self.read(&page.items);
        Ok(page)
    }

    async fn count(&self, query: &Query) -> StoreResult<CountPage> {
        self.tally();
        self.inner.count(query).await
    }

    async fn batch_write(&self, ops: Vec<BatchOp>) -> StoreResult<()> {
        self.tally();
        self.wrote(ops.iter().map(|op| match op {
            BatchOp::Put(item) => partition(item),
            BatchOp::Delete(key) => key.pk.as_str(),
        }));
        self.inner.batch_write(ops).await
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> StoreResult<()> {
        self.tally();
        self.wrote(ops.iter().filter_map(|op| match op {
            TransactOp::Put { item, .. } => Some(partition(item)),
            TransactOp::Update { key, .. } | TransactOp::Delete { key, .. } => {
                Some(key.pk.as_str())
            }
            TransactOp::Check { .. } => None,
        }));
        self.inner.transact_write(ops).await
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::dynamodb_item_size;

    #[test]
    fn item_sizes_follow_dynamodb_rules() {
        let item = |value: serde_json::Value| value.as_object().cloned().expect("an object");
        // Name and string lengths.
        assert_eq!(dynamodb_item_size(&item(json!({"PK": "SPACE#a"}))), 2 + 7);
        // Numbers: one byte per two significant digits, plus one.
        assert_eq!(dynamodb_item_size(&item(json!({"n": 7}))), 1 + 2);
        assert_eq!(dynamodb_item_size(&item(json!({"n": 1_234_567}))), 1 + 5);
        assert_eq!(dynamodb_item_size(&item(json!({"n": 1000}))), 1 + 2);
        // A list: 3 bytes, one per element, the elements.
        assert_eq!(
            dynamodb_item_size(&item(json!({"tags": ["ab", "c"]}))),
            4 + 3 + 3 + 2
        );
        // A map: as a list, with its names; null and booleans one byte.
        assert_eq!(
            dynamodb_item_size(&item(json!({"m": {"a": null, "bc": true}}))),
            1 + 3 + (1 + 1 + 1) + (1 + 2 + 1)
        );
    }
}
