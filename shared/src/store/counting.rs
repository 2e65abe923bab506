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
    /// Bytes of the items read (their JSON text: close to DynamoDB's item size).
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
        let bytes: usize = items
            .into_iter()
            .map(|item| serde_json::to_string(item).map_or(0, |text| text.len()))
            .sum();
        self.bytes_read.fetch_add(bytes as u64, Ordering::SeqCst);
    }

    fn wrote<'a>(&self, partitions: impl IntoIterator<Item = &'a str>) {
        let mut written = self.written.lock().expect("counter lock");
        written.extend(partitions.into_iter().map(str::to_string));
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
