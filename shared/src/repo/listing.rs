//! The pipeline list, cached per process and validated against the space's listing version.
//!
//! Listing pipelines needs every pipeline of the space (filters and the order apply to all of
//! them), but only a few fields of each: the space's *listing entries* (`domain::listing`,
//! `LIST#<pipeline>` items, a few hundred bytes each, written in the same transaction as the
//! pipeline item they summarise) are read by one query with the watches and the listing
//! version. The full pipeline items (Airflow's DAG object included) are read only for the
//! requested page, in the same batch read as the page's run series.
//!
//! Each process keeps, per space, the entries it read with the listing version they were read
//! at, and the full pipelines and run series it read with their revision (an entry and its
//! pipeline share one, incremented together, and every write of the run series increments it
//! too, in the same transaction): a list re-reads the entries only when the version moved, and
//! a pipeline or series only when its entry's revision moved. A warm list therefore reads the
//! version item alone.
//!
//! Correctness rests on two orders:
//! - writers write a pipeline or watch item first and increment the version after
//!   ([`Repository::bump_listing_version`]);
//! - readers read the version first (it sorts first in the listing query, and the check on a
//!   cached listing is a strongly consistent read made after the listing was read).
//!
//! A cached listing is therefore at worst missing a write whose increment has not happened yet:
//! milliseconds, or, if the writer died in between, until [`MAX_AGE`] expires the entry.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

pub(crate) use super::listing_changes::ListingChange;
use super::listing_changes::change_slot;
use super::pipelines::{LISTING_ENTRY_KIND, decode_series, pipeline_id_of, revision_of};
use super::{Repository, from_item, to_item};
use crate::domain::listing::ListingEntry;
use crate::domain::model::Pipeline;
use crate::domain::summary::RunSeries;
use crate::error::Result;
use crate::keys;
use crate::store::{
    Condition, Index, Item, Key, Query, SK, SortKey, StoreError, Update, query_all,
};

/// How long a cached listing may be used without being re-read, whatever its version says.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Listing entries cached per process, all spaces together (an entry is a few hundred bytes;
/// the API functions have 256 MB). Past this, the least recently loaded listings are dropped;
/// a single larger space is still cached on its own.
const MAX_CACHED_PIPELINES: usize = 20_000;
/// Full pipelines cached per process (a decoded pipeline is a few KB, Airflow's DAG object
/// included): the pages recently served. Past this the cache is emptied and refills.
const MAX_CACHED_FULL_PIPELINES: usize = 5_000;
/// Decoded run series cached per process, in bytes ([`RunSeries::heap_size`]): a series is a
/// few KB for a daily DAG and up to ~90 KB for one running every few minutes. Past this the
/// cache is emptied and refills.
const MAX_CACHED_SERIES_BYTES: usize = 32 << 20;
const VERSION_ATTR: &str = "version";
/// The sort key of a run series item (`keys::run_series`).
const SERIES_SORT_KEY: &str = "SERIES";
/// The pipeline items' prefix in the space partition (where watches and the listing version
/// also lived before listing entries existed).
const LEGACY_PREFIX: &str = "PIPELINE#";

/// A watch item at its former place (`PIPELINE#<pipeline>#WATCH#<user>`).
fn is_legacy_watch(item: &Item) -> bool {
    let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default();
    sort_key.contains(keys::WATCH_INFIX) || sort_key == LEGACY_PREFIX
}

/// Every pipeline of a space as listing entries, in list order, with the space's watches.
#[derive(Debug, Default)]
pub struct PipelineListing {
    space_id: Uuid,
    version: u64,
    pub entries: Vec<ListingEntry>,
    /// (user, pipeline) pairs.
    watches: HashSet<(Uuid, Uuid)>,
}

impl PipelineListing {
    pub fn is_watched(&self, user_id: Uuid, pipeline_id: Uuid) -> bool {
        self.watches.contains(&(user_id, pipeline_id))
    }

    pub fn watched_by(&self, user_id: Uuid) -> HashSet<Uuid> {
        self.watches
            .iter()
            .filter(|(user, _)| *user == user_id)
            .map(|(_, pipeline)| *pipeline)
            .collect()
    }

    fn revision(&self, pipeline_id: Uuid) -> Option<u64> {
        self.entries
            .iter()
            .find(|entry| entry.pipeline_id == pipeline_id)
            .map(|entry| entry.rev)
    }
}

/// A listing and, for the pipelines a caller selected from it, the pipelines themselves and
/// their run series.
pub struct SelectedListing<S> {
    pub listing: Arc<PipelineListing>,
    pub selection: S,
    pub pipelines: HashMap<Uuid, Arc<Pipeline>>,
    pub series: HashMap<Uuid, Arc<RunSeries>>,
}

struct Cached {
    listing: Arc<PipelineListing>,
    loaded_at: Instant,
}

/// The per-process cache, shared by clones of a [`Repository`].
#[derive(Default)]
pub(crate) struct ListingCache {
    entries: Mutex<HashMap<Uuid, Cached>>,
    /// Full pipelines by id, with the revision they were read at.
    pipelines: Mutex<HashMap<Uuid, (u64, Arc<Pipeline>)>>,
    /// Run series by pipeline id, with the revision they are current at.
    series: Mutex<SeriesCache>,
}

#[derive(Default)]
struct SeriesCache {
    by_pipeline: HashMap<Uuid, (u64, Arc<RunSeries>)>,
    bytes: usize,
}

impl ListingCache {
    fn get(&self, space_id: Uuid) -> Option<Arc<PipelineListing>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&space_id)
            .filter(|cached| cached.loaded_at.elapsed() < MAX_AGE)
            .map(|cached| cached.listing.clone())
    }

    fn store(&self, space_id: Uuid, listing: Arc<PipelineListing>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = entries.get(&space_id) {
            // Two loads racing: keep the newer one.
            if held.listing.version > listing.version && held.loaded_at.elapsed() < MAX_AGE {
                return;
            }
        }
        entries.remove(&space_id);
        let mut cached: usize = entries.values().map(|c| c.listing.entries.len()).sum();
        while cached + listing.entries.len() > MAX_CACHED_PIPELINES {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.loaded_at)
                .map(|(space, _)| *space)
            else {
                break;
            };
            if let Some(dropped) = entries.remove(&oldest) {
                cached -= dropped.listing.entries.len();
            }
        }
        let loaded_at = Instant::now();
        entries.insert(space_id, Cached { listing, loaded_at });
    }

    /// The cached pipeline, if it is at revision `rev` or later.
    fn pipeline(&self, pipeline_id: Uuid, rev: u64) -> Option<Arc<Pipeline>> {
        let pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        pipelines
            .get(&pipeline_id)
            .filter(|(cached_rev, _)| *cached_rev >= rev)
            .map(|(_, pipeline)| pipeline.clone())
    }

    fn store_pipeline(&self, rev: u64, pipeline: Arc<Pipeline>) {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if pipelines.len() >= MAX_CACHED_FULL_PIPELINES {
            pipelines.clear();
        }
        let newer_held = pipelines
            .get(&pipeline.id)
            .is_some_and(|(held_rev, _)| *held_rev > rev);
        if !newer_held {
            pipelines.insert(pipeline.id, (rev, pipeline));
        }
    }
}

impl ListingCache {
    /// The cached series of a pipeline, if it is current at revision `rev` or later.
    fn series(&self, pipeline_id: Uuid, rev: u64) -> Option<Arc<RunSeries>> {
        let cache = self.series.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .by_pipeline
            .get(&pipeline_id)
            .filter(|(cached_rev, _)| *cached_rev >= rev)
            .map(|(_, series)| series.clone())
    }

    /// Keeps a series read after its entry was seen at revision `rev` (so it is current at
    /// `rev` at least).
    fn store_series(&self, pipeline_id: Uuid, rev: u64, series: Arc<RunSeries>) {
        let mut cache = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if cache
            .by_pipeline
            .get(&pipeline_id)
            .is_some_and(|(held_rev, _)| *held_rev > rev)
        {
            return;
        }
        let size = series.heap_size();
        if cache.bytes + size > MAX_CACHED_SERIES_BYTES {
            cache.by_pipeline.clear();
            cache.bytes = 0;
        }
        if let Some((_, replaced)) = cache.by_pipeline.insert(pipeline_id, (rev, series)) {
            cache.bytes = cache.bytes.saturating_sub(replaced.heap_size());
        }
        cache.bytes += size;
    }
}

/// What the batch reads of one list found for its page.
#[derive(Default)]
struct PageRead {
    pipelines: HashMap<Uuid, Arc<Pipeline>>,
    revisions: HashMap<Uuid, u64>,
    /// Each series with the revision it is known current at.
    series: HashMap<Uuid, (u64, Arc<RunSeries>)>,
}

impl PageRead {
    fn into_selected<S>(self, listing: Arc<PipelineListing>, selection: S) -> SelectedListing<S> {
        SelectedListing {
            listing,
            selection,
            pipelines: self.pipelines,
            series: self
                .series
                .into_iter()
                .map(|(id, (_, series))| (id, series))
                .collect(),
        }
    }
}

/// A listing entry item; the pipeline's id is in its key only (see
/// `upsert_pipeline_metadata`).
fn decode_entry(mut item: Item) -> Result<ListingEntry> {
    let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default();
    let pipeline_id = sort_key
        .strip_prefix(keys::LISTING_PREFIX)
        .unwrap_or_default()
        .to_string();
    item.insert("pipeline_id".into(), pipeline_id.into());
    from_item(item)
}

fn version_of_item(item: &Item) -> u64 {
    item.get(VERSION_ATTR).and_then(Value::as_u64).unwrap_or(0)
}

impl Repository {
    /// The space's listing and, for the pipelines `select` picks from it (a page), the
    /// pipelines and their run series: `select` returns what the caller needs back and the
    /// ids it picked.
    ///
    /// Table requests: one batch read (version, the page's series and any page pipeline not
    /// cached at its current revision) when this process holds the space's current listing;
    /// one query and one batch read when it holds none; when the space changed since, the
    /// batch read, the query, and one more batch read only for what the change touched (a
    /// pipeline written since, or one that moved onto the page). On DynamoDB a batch read of
    /// more than 100 keys is several requests, sent at once.
    pub async fn list_pipelines_selecting<S>(
        &self,
        space_id: Uuid,
        select: impl Fn(&PipelineListing) -> (S, Vec<Uuid>),
    ) -> Result<SelectedListing<S>> {
        let cached = self.listings.get(space_id);
        let (listing, checked) = match cached {
            Some(listing) => (listing, false),
            None => (self.load_listing(space_id).await?, true),
        };
        let (selection, ids) = select(&listing);
        let mut page = PageRead::default();
        let version_item = self
            .read_page(&listing, &ids, (!checked).then_some(space_id), &mut page)
            .await?;
        let Some(version_item) = version_item.filter(|_| !checked) else {
            return Ok(page.into_selected(listing, selection));
        };
        let version = version_of_item(&version_item);
        if version == listing.version {
            return Ok(page.into_selected(listing, selection));
        }

        // The space changed: re-read only what changed when the version item remembers it,
        // else the whole listing.
        let listing = match ListingChange::between(&version_item, listing.version, version) {
            Some(changes) => {
                self.patch_listing(&listing, version, &changes, &mut page)
                    .await?
            }
            None => self.load_listing(space_id).await?,
        };
        let (selection, ids) = select(&listing);
        self.read_page(&listing, &ids, None, &mut page).await?;
        Ok(page.into_selected(listing, selection))
    }

    /// The cached `listing` brought to `version` by re-reading what `changes` name (one
    /// batch read: the changed entries with their pipelines and run series, and the changed
    /// watches), cached. The series go to `page` for this list at the entries' new revision.
    ///
    /// The process cache keeps those series at the entries' former revision: a batch read is
    /// not a snapshot, so a series read beside its entry may predate the transaction that
    /// wrote the entry's revision; the next list reads it again with the version item (no
    /// extra request) and caches it at the revision it then knows.
    async fn patch_listing(
        &self,
        listing: &PipelineListing,
        version: u64,
        changes: &[ListingChange],
        page: &mut PageRead,
    ) -> Result<Arc<PipelineListing>> {
        let space_id = listing.space_id;
        let mut wanted = Vec::new();
        let mut changed_entries = HashSet::new();
        let mut changed_watches = HashSet::new();
        for change in changes {
            match *change {
                ListingChange::Entry(pipeline_id) => {
                    if changed_entries.insert(pipeline_id) {
                        wanted.push(keys::listing_entry(space_id, pipeline_id));
                        wanted.push(keys::pipeline(space_id, pipeline_id));
                        wanted.push(keys::run_series(pipeline_id));
                    }
                }
                ListingChange::Watch {
                    pipeline_id,
                    user_id,
                } => {
                    if changed_watches.insert((user_id, pipeline_id)) {
                        wanted.push(keys::watch(space_id, user_id, pipeline_id));
                    }
                }
            }
        }
        let mut entries: HashMap<Uuid, ListingEntry> = HashMap::new();
        let mut watched = HashSet::new();
        let mut series_read = Vec::new();
        for item in self.table.batch_get(&wanted).await? {
            let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default();
            if sort_key == SERIES_SORT_KEY {
                if let Some(id) = pipeline_id_of(&item) {
                    series_read.push((id, Arc::new(decode_series(&item)?)));
                }
            } else if sort_key.contains(keys::WATCH_INFIX) {
                let user = item.get("user_id").and_then(Value::as_str);
                if let (Some(user), Some(pipeline)) =
                    (user.and_then(|u| u.parse().ok()), pipeline_id_of(&item))
                {
                    watched.insert((user, pipeline));
                }
            } else if sort_key.starts_with(keys::LISTING_PREFIX) {
                let entry = decode_entry(item)?;
                entries.insert(entry.pipeline_id, entry);
            } else {
                let rev = revision_of(&item);
                self.listings
                    .store_pipeline(rev, Arc::new(from_item::<Pipeline>(item)?));
            }
        }
        for (id, series) in series_read {
            if let Some(former_rev) = listing.revision(id) {
                self.listings.store_series(id, former_rev, series.clone());
            }
            if let Some(entry) = entries.get(&id) {
                page.series.insert(id, (entry.rev, series));
            }
        }
        let mut patched = PipelineListing {
            space_id,
            version,
            entries: listing
                .entries
                .iter()
                .filter(|entry| !changed_entries.contains(&entry.pipeline_id))
                .cloned()
                .collect(),
            watches: listing.watches.clone(),
        };
        patched.entries.extend(entries.into_values());
        patched
            .entries
            .sort_by_cached_key(ListingEntry::list_order_key);
        for watch in changed_watches {
            if watched.contains(&watch) {
                patched.watches.insert(watch);
            } else {
                patched.watches.remove(&watch);
            }
        }
        let patched = Arc::new(patched);
        self.listings.store(space_id, patched.clone());
        Ok(patched)
    }

    /// Reads what `ids` still need (pipelines and series not held at the listing's revision)
    /// in one batch read, with the space's listing version item when `version_of` names the
    /// space: returns that item (an empty one if the space has none yet).
    async fn read_page(
        &self,
        listing: &PipelineListing,
        ids: &[Uuid],
        version_of: Option<Uuid>,
        page: &mut PageRead,
    ) -> Result<Option<Item>> {
        let mut wanted: Vec<Key> = version_of
            .map(keys::pipeline_listing_version)
            .into_iter()
            .collect();
        for &id in ids {
            let Some(rev) = listing.revision(id) else {
                continue;
            };
            // A pipeline read at or after the entry's revision is current.
            let read_current = page.revisions.get(&id).is_some_and(|read| *read >= rev);
            if !read_current {
                match self.listings.pipeline(id, rev) {
                    Some(pipeline) => {
                        page.revisions.insert(id, rev);
                        page.pipelines.insert(id, pipeline);
                    }
                    None => wanted.push(keys::pipeline(listing.space_id, id)),
                }
            }
            // A series this list read or took from the cache for an older listing (before it
            // saw the space change) is read again if the entry's revision moved since.
            let series_current = page.series.get(&id).is_some_and(|(read, _)| *read >= rev);
            if !series_current {
                match self.listings.series(id, rev) {
                    Some(series) => {
                        page.series.insert(id, (rev, series));
                    }
                    None => wanted.push(keys::run_series(id)),
                }
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let mut version = None;
        for item in self.table.batch_get(&wanted).await? {
            let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default();
            if sort_key == keys::LISTING_PREFIX {
                version = Some(item);
            } else if sort_key == SERIES_SORT_KEY {
                if let Some(id) = pipeline_id_of(&item) {
                    let series = Arc::new(decode_series(&item)?);
                    // Read after the listing showed the entry at this revision: the series
                    // is at least that current (they are written in one transaction).
                    let rev = listing.revision(id).unwrap_or(0);
                    self.listings.store_series(id, rev, series.clone());
                    page.series.insert(id, (rev, series));
                }
            } else {
                let rev = revision_of(&item);
                let pipeline: Arc<Pipeline> = Arc::new(from_item(item)?);
                self.listings.store_pipeline(rev, pipeline.clone());
                page.revisions.insert(pipeline.id, rev);
                page.pipelines.insert(pipeline.id, pipeline);
            }
        }
        if version_of.is_some() && version.is_none() {
            version = Some(Item::new());
        }
        Ok(version)
    }

    /// Reads the space's listing and caches it.
    async fn load_listing(&self, space_id: Uuid) -> Result<Arc<PipelineListing>> {
        let listing = Arc::new(self.read_listing(space_id).await?);
        self.listings.store(space_id, listing.clone());
        Ok(listing)
    }

    /// Reads the space's listing: one query, paged by the backend only past 1 MB.
    pub(crate) async fn read_listing(&self, space_id: Uuid) -> Result<PipelineListing> {
        let query = Query::partition(Index::Primary, keys::space_partition(space_id))
            .sort(SortKey::BeginsWith(keys::LISTING_PREFIX.into()));
        let mut listing = PipelineListing::default();
        for item in query_all(self.table(), query).await? {
            let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default();
            if sort_key == keys::LISTING_PREFIX {
                listing.version = version_of_item(&item);
            } else if sort_key.contains(keys::WATCH_INFIX) {
                let user = item.get("user_id").and_then(Value::as_str);
                if let (Some(user), Some(pipeline)) =
                    (user.and_then(|u| u.parse().ok()), pipeline_id_of(&item))
                {
                    listing.watches.insert((user, pipeline));
                }
            } else if sort_key.starts_with(keys::LISTING_PREFIX) {
                listing.entries.push(decode_entry(item)?);
            }
        }
        listing.space_id = space_id;
        listing
            .entries
            .sort_by_cached_key(ListingEntry::list_order_key);
        Ok(listing)
    }

    /// Every pipeline of a space (full items, Airflow's DAG objects included), in list order:
    /// one query per MB, never cached. For the sync and for tools, not for the API's lists.
    pub async fn list_pipelines(&self, space_id: Uuid) -> Result<Vec<Pipeline>> {
        let mut pipelines: Vec<Pipeline> = self
            .pipeline_items(space_id)
            .await?
            .into_iter()
            .filter(|item| !is_legacy_watch(item))
            .map(from_item)
            .collect::<Result<_>>()?;
        pipelines.sort_by_cached_key(Pipeline::list_order_key);
        Ok(pipelines)
    }

    /// Ids of the pipelines a user watches in a space.
    pub async fn watched_pipeline_ids(
        &self,
        space_id: Uuid,
        user_id: Uuid,
    ) -> Result<HashSet<Uuid>> {
        Ok(self.read_listing(space_id).await?.watched_by(user_id))
    }

    async fn pipeline_items(&self, space_id: Uuid) -> Result<Vec<Item>> {
        let query = Query::partition(Index::Primary, keys::space_partition(space_id))
            .sort(SortKey::BeginsWith(LEGACY_PREFIX.into()));
        Ok(query_all(self.table(), query).await?)
    }

    /// Writes the listing entry of every pipeline of the space that has none (pipelines
    /// stored before listing entries existed), moves watches from their former place
    /// (`PIPELINE#<pipeline>#WATCH#<user>`) and removes the former listing version. Idempotent;
    /// run once per space after upgrading (`orchestration admin rebuild-listings`). Returns
    /// the entries written and the watches moved.
    pub async fn rebuild_listing(&self, space_id: Uuid) -> Result<(usize, usize)> {
        let (mut entries, mut watches) = (0, 0);
        for item in self.pipeline_items(space_id).await? {
            let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default();
            if sort_key == LEGACY_PREFIX {
                let key = Key::new(keys::space_partition(space_id), LEGACY_PREFIX);
                self.table.delete(&key, None).await?;
            } else if is_legacy_watch(&item) {
                let (Some(user), Some(pipeline)) = (
                    item.get("user_id")
                        .and_then(Value::as_str)
                        .and_then(|u| u.parse().ok()),
                    pipeline_id_of(&item),
                ) else {
                    continue;
                };
                let mut moved = item.clone();
                let key = keys::watch(space_id, user, pipeline);
                moved.insert("PK".into(), key.pk.into());
                moved.insert(SK.into(), key.sk.into());
                self.table.put(moved, None).await?;
                if let Some(old) = Key::of(&item) {
                    self.table.delete(&old, None).await?;
                }
                watches += 1;
            } else {
                let rev = revision_of(&item);
                let pipeline: Pipeline = from_item(item)?;
                let entry = ListingEntry::of(&pipeline, rev);
                let mut entry_item = to_item(
                    &entry,
                    LISTING_ENTRY_KIND,
                    keys::listing_entry(space_id, pipeline.id),
                    None,
                )?;
                entry_item.remove("pipeline_id");
                match self.table.put(entry_item, Some(Condition::NotExists)).await {
                    Ok(()) => entries += 1,
                    Err(StoreError::ConditionFailed) => {}
                    Err(other) => return Err(other.into()),
                }
            }
        }
        self.bump_listing_version(space_id, None).await?;
        Ok((entries, watches))
    }

    /// Counts a write to a pipeline or watch item of the space, after the write: every process
    /// holding the space's listing re-reads it on its next list. The change is recorded in
    /// the version item's slot for the new version (`change_<version % 64>`), so a process
    /// holding the listing a few versions back re-reads only what changed; without a change
    /// (or with the slot missing, e.g. the writer died in between) it re-reads everything.
    pub(crate) async fn bump_listing_version(
        &self,
        space_id: Uuid,
        change: Option<ListingChange>,
    ) -> Result<()> {
        let key = keys::pipeline_listing_version(space_id);
        let update = Update::new()
            .set("kind", "pipeline_listing_version")
            .set("space_id", space_id.to_string())
            .add(VERSION_ATTR, 1);
        let item = self.table.update(&key, update, None).await?;
        if let Some(change) = change {
            let version = version_of_item(&item);
            let slot = Update::new().set(&change_slot(version), change.encode(version));
            self.table.update(&key, slot, None).await?;
        }
        Ok(())
    }
}
