//! The embedded on-disk adapter, built on `redb` (ACID, copy-on-write B-trees, crash safe).
//!
//! Layout: table `items` maps an encoded primary key to the item's JSON; table `gsi1` maps an
//! encoded index key (`GSI1PK`, `GSI1SK`, then the primary key as a tie-breaker) to the encoded
//! primary key. Every key component is followed by a NUL byte, so byte order of encoded keys is
//! exactly DynamoDB's order of the string components (NUL is rejected inside key values).
//! Each call runs in one redb transaction; writes are serialised by redb, which makes every
//! conditional write and transaction atomic.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{
    BatchOp, Condition, CountPage, Cursor, GSI1_PK, GSI1_SK, Index, Item, Key, MAX_TRANSACTION_OPS,
    PK, Query, QueryPage, SK, SortKey, StoreError, StoreResult, Table, TransactOp, Update,
    key_attr, validate_item_keys, validate_key,
};

const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<&[u8], &[u8]> = TableDefinition::new("gsi1");

/// DynamoDB's item size limit, enforced here too so code that works locally works on AWS.
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// redb's page cache. Its default, 1 GiB, grows with every page read: a sync of 10,000 runs
/// peaked at 122 MiB and the local server at 470 MiB under load. The operating system caches
/// the file anyway, so a second, small cache costs little (docs/BENCHMARKS.md has figures).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct EmbeddedTable {
    db: Arc<Database>,
}

impl EmbeddedTable {
    /// Opens (or creates) the store file. Only one process may hold it open at a time.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                    "{} is already open in another process (stop the local server first)",
                    path.display()
                )),
                other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
            })?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(ITEMS).map_err(db_err)?;
        txn.open_table(GSI1).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs `work` in one write transaction, committing only if it succeeds.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_err)?;
            let result = work(&txn);
            match result {
                Ok(value) => {
                    txn.commit().map_err(db_err)?;
                    Ok(value)
                }
                Err(error) => {
                    txn.abort().map_err(db_err)?;
                    Err(error)
                }
            }
        })
        .await
    }
}

fn db_err(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(error.into().to_string())
}

fn encode(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

fn primary_key(key: &Key) -> Vec<u8> {
    encode(&[&key.pk, &key.sk])
}

fn gsi1_key(item: &Item, key: &Key) -> Option<Vec<u8>> {
    let pk = key_attr(item, GSI1_PK)?;
    let sk = key_attr(item, GSI1_SK)?;
    Some(encode(&[pk, sk, &key.pk, &key.sk]))
}

fn decode_item(bytes: &[u8]) -> StoreResult<Item> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Backend(format!("corrupt item: {e}")))
}

fn encode_item(item: &Item) -> StoreResult<Vec<u8>> {
    let bytes = serde_json::to_vec(item).map_err(|e| StoreError::Invalid(e.to_string()))?;
    if bytes.len() > MAX_ITEM_BYTES {
        return Err(StoreError::Invalid(format!(
            "item of {} bytes exceeds the {MAX_ITEM_BYTES}-byte item size limit",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn read_current(txn: &WriteTransaction, key: &Key) -> StoreResult<Option<Item>> {
    let items = txn.open_table(ITEMS).map_err(db_err)?;
    let found = items.get(primary_key(key).as_slice()).map_err(db_err)?;
    found.map(|guard| decode_item(guard.value())).transpose()
}

/// Writes (or, with `None`, deletes) the item under `key`, keeping the index in step.
fn store(
    txn: &WriteTransaction,
    key: &Key,
    old: Option<&Item>,
    new: Option<&Item>,
) -> StoreResult<()> {
    let mut items = txn.open_table(ITEMS).map_err(db_err)?;
    let mut gsi1 = txn.open_table(GSI1).map_err(db_err)?;
    let encoded = primary_key(key);
    if let Some(old_index) = old.and_then(|item| gsi1_key(item, key)) {
        gsi1.remove(old_index.as_slice()).map_err(db_err)?;
    }
    match new {
        Some(item) => {
            let bytes = encode_item(item)?;
            items
                .insert(encoded.as_slice(), bytes.as_slice())
                .map_err(db_err)?;
            if let Some(index) = gsi1_key(item, key) {
                gsi1.insert(index.as_slice(), encoded.as_slice())
                    .map_err(db_err)?;
            }
        }
        None => {
            items.remove(encoded.as_slice()).map_err(db_err)?;
        }
    }
    Ok(())
}

fn check(condition: Option<&Condition>, current: Option<&Item>) -> StoreResult<()> {
    match condition {
        Some(condition) if has_empty_group(condition) => {
            Err(StoreError::Invalid("empty condition group".into()))
        }
        Some(condition) if !condition.holds(current) => Err(StoreError::ConditionFailed),
        _ => Ok(()),
    }
}

/// DynamoDB cannot express an empty AND/OR (the DynamoDB adapter rejects it), so neither do we.
fn has_empty_group(condition: &Condition) -> bool {
    match condition {
        Condition::And(parts) | Condition::Or(parts) => {
            parts.is_empty() || parts.iter().any(has_empty_group)
        }
        _ => false,
    }
}

fn apply_put(
    txn: &WriteTransaction,
    item: &Item,
    condition: Option<&Condition>,
) -> StoreResult<()> {
    let key = validate_item_keys(item)?;
    let current = read_current(txn, &key)?;
    check(condition, current.as_ref())?;
    store(txn, &key, current.as_ref(), Some(item))
}

fn apply_update(
    txn: &WriteTransaction,
    key: &Key,
    update: &Update,
    condition: Option<&Condition>,
) -> StoreResult<Item> {
    validate_key(key)?;
    if update.set.iter().any(|(name, _)| name == PK || name == SK)
        || update.remove.iter().any(|name| name == PK || name == SK)
    {
        return Err(StoreError::Invalid(
            "an update cannot change PK or SK".into(),
        ));
    }
    // DynamoDB rejects empty update expressions and overlapping paths.
    if update.is_empty() {
        return Err(StoreError::Invalid(
            "an update needs at least one action".into(),
        ));
    }
    let mut names = HashSet::new();
    let mut all_names = (update.set.iter().map(|(name, _)| name))
        .chain(&update.remove)
        .chain(update.add.iter().map(|(name, _)| name));
    if let Some(name) = all_names.find(|name| !names.insert(name.as_str())) {
        return Err(StoreError::Invalid(format!(
            "an update names {name} more than once"
        )));
    }
    let current = read_current(txn, key)?;
    check(condition, current.as_ref())?;
    // DynamoDB's ADD only adds to numbers (or a missing attribute).
    if let Some((name, _)) = update.add.iter().find(|(name, _)| {
        current
            .as_ref()
            .and_then(|item| item.get(name))
            .is_some_and(|v| !v.is_number())
    }) {
        return Err(StoreError::Invalid(format!(
            "cannot ADD to the non-numeric attribute {name}"
        )));
    }
    let mut next = current.clone().unwrap_or_default();
    next.insert(PK.into(), key.pk.clone().into());
    next.insert(SK.into(), key.sk.clone().into());
    update.apply(&mut next);
    validate_item_keys(&next)?;
    store(txn, key, current.as_ref(), Some(&next))?;
    Ok(next)
}

fn apply_delete(
    txn: &WriteTransaction,
    key: &Key,
    condition: Option<&Condition>,
) -> StoreResult<()> {
    validate_key(key)?;
    let current = read_current(txn, key)?;
    check(condition, current.as_ref())?;
    if current.is_some() {
        store(txn, key, current.as_ref(), None)?;
    }
    Ok(())
}

/// The byte range of one query, before the cursor is applied.
fn query_range(query: &Query) -> (Vec<u8>, Vec<u8>) {
    let with = |suffix: &[u8], sort: &str| {
        let mut key = encode(&[&query.partition]);
        key.extend_from_slice(sort.as_bytes());
        key.extend_from_slice(suffix);
        key
    };
    let start = encode(&[&query.partition]);
    let mut end = query.partition.as_bytes().to_vec();
    end.push(1);
    match &query.sort {
        SortKey::Any => (start, end),
        SortKey::Equals(x) => (with(b"\0", x), with(b"\x01", x)),
        SortKey::BeginsWith(p) => (with(b"", p), with(b"\xff", p)),
        SortKey::Between(a, b) => (with(b"\0", a), with(b"\x01", b)),
        SortKey::LessThan(x) => (start, with(b"\0", x)),
        SortKey::LessOrEqual(x) => (start, with(b"\x01", x)),
        SortKey::GreaterThan(x) => (with(b"\x01", x), end),
        SortKey::GreaterOrEqual(x) => (with(b"\0", x), end),
    }
}

fn cursor_key(index: Index, cursor: &Cursor) -> StoreResult<Vec<u8>> {
    let get = |name: &str| {
        cursor
            .0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| StoreError::Invalid(format!("cursor lacks {name}")))
    };
    Ok(match index {
        Index::Primary => encode(&[get(PK)?, get(SK)?]),
        Index::Gsi1 => encode(&[get(GSI1_PK)?, get(GSI1_SK)?, get(PK)?, get(SK)?]),
    })
}

fn cursor_of(index: Index, item: &Item) -> Cursor {
    let names: &[&str] = match index {
        Index::Primary => &[PK, SK],
        Index::Gsi1 => &[GSI1_PK, GSI1_SK, PK, SK],
    };
    Cursor(
        names
            .iter()
            .filter_map(|name| Some((name.to_string(), key_attr(item, name)?.to_string())))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The key range a query reads after its cursor, or `None` when that range is empty.
type Bounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn query_bounds(query: &Query) -> StoreResult<Option<Bounds>> {
    let (low, high) = query_range(query);
    let mut lower = Bound::Included(low);
    let mut upper = Bound::Excluded(high);
    let resume = query
        .start
        .as_ref()
        .map(|cursor| cursor_key(query.index, cursor))
        .transpose()?;
    if let Some(resume) = resume {
        if query.forward {
            lower = Bound::Excluded(resume);
        } else {
            upper = Bound::Excluded(resume);
        }
    }
    // An empty or inverted range (e.g. BETWEEN b AND a) matches nothing; redb would panic on it.
    let inverted = match (&lower, &upper) {
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u)) => l >= u,
        _ => false,
    };
    Ok((!inverted).then_some((lower, upper)))
}

fn slices(bounds: &Bounds) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (
        bounds.0.as_ref().map(Vec::as_slice),
        bounds.1.as_ref().map(Vec::as_slice),
    )
}

/// Counts a query's keys in its index without reading the items.
fn run_count(db: &Database, query: &Query) -> StoreResult<u64> {
    let Some(bounds) = query_bounds(query)? else {
        return Ok(0);
    };
    let txn = db.begin_read().map_err(db_err)?;
    let table = txn
        .open_table(match query.index {
            Index::Primary => ITEMS,
            Index::Gsi1 => GSI1,
        })
        .map_err(db_err)?;
    let mut count = 0;
    for entry in table.range::<&[u8]>(slices(&bounds)).map_err(db_err)? {
        entry.map_err(db_err)?;
        count += 1;
    }
    Ok(count)
}

fn run_query(db: &Database, query: &Query) -> StoreResult<QueryPage> {
    let Some(bounds) = query_bounds(query)? else {
        return Ok(QueryPage::default());
    };
    let (lower, upper) = slices(&bounds);
    let limit = query.limit.map_or(usize::MAX, |l| l.max(1) as usize);
    let txn = db.begin_read().map_err(db_err)?;
    let items = txn.open_table(ITEMS).map_err(db_err)?;
    let mut found = Vec::new();
    let mut more = false;
    match query.index {
        Index::Primary => {
            let range = items.range::<&[u8]>((lower, upper)).map_err(db_err)?;
            let iter: Box<dyn Iterator<Item = _>> = if query.forward {
                Box::new(range)
            } else {
                Box::new(range.rev())
            };
            for entry in iter {
                if found.len() == limit {
                    more = true;
                    break;
                }
                let (_, value) = entry.map_err(db_err)?;
                found.push(decode_item(value.value())?);
            }
        }
        Index::Gsi1 => {
            let gsi1 = txn.open_table(GSI1).map_err(db_err)?;
            let range = gsi1.range::<&[u8]>((lower, upper)).map_err(db_err)?;
            let iter: Box<dyn Iterator<Item = _>> = if query.forward {
                Box::new(range)
            } else {
                Box::new(range.rev())
            };
            for entry in iter {
                if found.len() == limit {
                    more = true;
                    break;
                }
                let (_, primary) = entry.map_err(db_err)?;
                let item = items
                    .get(primary.value())
                    .map_err(db_err)?
                    .ok_or_else(|| StoreError::Backend("index entry without item".into()))?;
                found.push(decode_item(item.value())?);
            }
        }
    }
    let next = if more {
        found.last().map(|item| cursor_of(query.index, item))
    } else {
        None
    };
    Ok(QueryPage { items: found, next })
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key) -> StoreResult<Option<Item>> {
        validate_key(key)?;
        let encoded = primary_key(key);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_err)?;
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let found = items.get(encoded.as_slice()).map_err(db_err)?;
            found.map(|guard| decode_item(guard.value())).transpose()
        })
        .await
    }

    async fn batch_get(&self, keys: &[Key]) -> StoreResult<Vec<Item>> {
        for key in keys {
            validate_key(key)?;
        }
        let encoded: Vec<Vec<u8>> = keys.iter().map(primary_key).collect();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_err)?;
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let mut seen = HashSet::new();
            let mut found = Vec::with_capacity(encoded.len());
            for key in &encoded {
                if !seen.insert(key) {
                    continue;
                }
                if let Some(guard) = items.get(key.as_slice()).map_err(db_err)? {
                    found.push(decode_item(guard.value())?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> StoreResult<()> {
        self.write(move |txn| apply_put(txn, &item, condition.as_ref()))
            .await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item> {
        let key = key.clone();
        self.write(move |txn| apply_update(txn, &key, &update, condition.as_ref()))
            .await
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |txn| apply_delete(txn, &key, condition.as_ref()))
            .await
    }

    async fn query(&self, query: &Query) -> StoreResult<QueryPage> {
        if query.partition.is_empty() || query.partition.contains('\0') {
            return Err(StoreError::Invalid("invalid partition key".into()));
        }
        let query = query.clone();
        self.blocking(move |db| run_query(db, &query)).await
    }

    async fn count(&self, query: &Query) -> StoreResult<CountPage> {
        if query.partition.is_empty() || query.partition.contains('\0') {
            return Err(StoreError::Invalid("invalid partition key".into()));
        }
        let query = query.clone();
        let count = self.blocking(move |db| run_count(db, &query)).await?;
        Ok(CountPage { count, next: None })
    }

    async fn batch_write(&self, ops: Vec<BatchOp>) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.write(move |txn| {
            for op in &ops {
                match op {
                    BatchOp::Put(item) => apply_put(txn, item, None)?,
                    BatchOp::Delete(key) => apply_delete(txn, key, None)?,
                }
            }
            Ok(())
        })
        .await
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> StoreResult<()> {
        if ops.len() > MAX_TRANSACTION_OPS {
            return Err(StoreError::Invalid(format!(
                "a transaction holds at most {MAX_TRANSACTION_OPS} operations"
            )));
        }
        let mut keys = HashSet::new();
        for op in &ops {
            let key = match op {
                TransactOp::Put { item, .. } => validate_item_keys(item)?,
                TransactOp::Update { key, .. }
                | TransactOp::Delete { key, .. }
                | TransactOp::Check { key, .. } => {
                    validate_key(key)?;
                    key.clone()
                }
            };
            if !keys.insert(key) {
                return Err(StoreError::Invalid(
                    "a transaction may touch each item only once".into(),
                ));
            }
        }
        self.write(move |txn| {
            // Check every condition first against the state before the transaction, as
            // DynamoDB does, then apply.
            for (index, op) in ops.iter().enumerate() {
                let (key, condition) = match op {
                    TransactOp::Put { item, condition } => {
                        (validate_item_keys(item)?, condition.as_ref())
                    }
                    TransactOp::Update { key, condition, .. }
                    | TransactOp::Delete { key, condition } => (key.clone(), condition.as_ref()),
                    TransactOp::Check { key, condition } => (key.clone(), Some(condition)),
                };
                let current = read_current(txn, &key)?;
                match check(condition, current.as_ref()) {
                    Err(StoreError::ConditionFailed) => {
                        return Err(StoreError::TransactionCancelled { index: Some(index) });
                    }
                    other => other?,
                }
            }
            for op in &ops {
                match op {
                    TransactOp::Put { item, .. } => apply_put(txn, item, None)?,
                    TransactOp::Update { key, update, .. } => {
                        apply_update(txn, key, update, None)?;
                    }
                    TransactOp::Delete { key, .. } => apply_delete(txn, key, None)?,
                    TransactOp::Check { .. } => {}
                }
            }
            Ok(())
        })
        .await
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
    }
}
