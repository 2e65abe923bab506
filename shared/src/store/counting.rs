//! A [`Table`] decorator that counts backend requests, for round-trip budgets in tests and
//! benchmarks. A batch or query counts once per call here; the DynamoDB adapter may split a call
//! into several HTTP requests (25-item batches, 1 MB pages), which its own figures report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{
    BatchOp, Condition, Item, Key, Query, QueryPage, StoreResult, Table, TransactOp, Update,
};

pub struct CountingTable {
    inner: Arc<dyn Table>,
    requests: AtomicU64,
}

impl CountingTable {
    pub fn new(inner: Arc<dyn Table>) -> Self {
        Self {
            inner,
            requests: AtomicU64::new(0),
        }
    }

    /// Requests made since the last call, and resets the count.
    pub fn take(&self) -> u64 {
        self.requests.swap(0, Ordering::SeqCst)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Table for CountingTable {
    async fn get(&self, key: &Key) -> StoreResult<Option<Item>> {
        self.count();
        self.inner.get(key).await
    }

    async fn batch_get(&self, keys: &[Key]) -> StoreResult<Vec<Item>> {
        self.count();
        self.inner.batch_get(keys).await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> StoreResult<()> {
        self.count();
        self.inner.put(item, condition).await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item> {
        self.count();
        self.inner.update(key, update, condition).await
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> StoreResult<()> {
        self.count();
        self.inner.delete(key, condition).await
    }

    async fn query(&self, query: &Query) -> StoreResult<QueryPage> {
        self.count();
        self.inner.query(query).await
    }

    async fn batch_write(&self, ops: Vec<BatchOp>) -> StoreResult<()> {
        self.count();
        self.inner.batch_write(ops).await
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> StoreResult<()> {
        self.count();
        self.inner.transact_write(ops).await
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}
