//! The pipeline list, cached per process and validated against the space's listing version.
//!
//! Listing pipelines needs every pipeline item of the space (filters and the order apply to
//! all of them), and decoding a thousand items costs tens of milliseconds and, on DynamoDB,
//! megabytes of reads. So each process keeps the decoded list of the spaces it served, with
//! the value of the space's listing version (`keys::pipeline_listing_version`) it was read
//! at, and re-reads it only when that version moved.
//!
//! Correctness rests on two orders:
//! - writers write a pipeline or watch item first and increment the version after
//!   ([`Repository::bump_listing_version`]);
//! - readers read the version first (it sorts first in the pipelines query, and the check on a
//!   cached listing is a strongly consistent read made after the listing was read).
//!
//! A cached listing is therefore at worst missing a write whose increment has not happened yet:
//! milliseconds, or, if the writer died in between, until [`MAX_AGE`] expires the entry.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::pipelines::{decode_series, pipeline_id_of};
use super::{Repository, from_item};
use crate::domain::model::Pipeline;
use crate::domain::summary::RunSeries;
use crate::error::Result;
use crate::keys;
use crate::store::{Index, Item, Key, Query, SK, SortKey, Update, query_all};

/// How long a cached listing may be used without being re-read, whatever its version says.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Pipelines cached per process, all spaces together (a decoded pipeline is a few KB; the
/// API functions have 256 MB). Past this, the least recently loaded listings are dropped; a
/// single larger space is still cached on its own.
const MAX_CACHED_PIPELINES: usize = 20_000;
const VERSION_ATTR: &str = "version";

/// Every pipeline of a space, in list order, with the space's watches.
#[derive(Debug, Default)]
pub struct PipelineListing {
    version: u64,
    pub pipelines: Vec<Pipeline>,
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
}

/// A listing and the run series of the pipelines a caller selected from it.
pub struct SelectedListing<S> {
    pub listing: Arc<PipelineListing>,
    pub selection: S,
    pub series: HashMap<Uuid, RunSeries>,
}

struct Cached {
    listing: Arc<PipelineListing>,
    loaded_at: Instant,
}

/// The per-process cache, shared by clones of a [`Repository`].
#[derive(Default)]
pub(crate) struct ListingCache {
    entries: Mutex<HashMap<Uuid, Cached>>,
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
        let mut cached: usize = entries.values().map(|c| c.listing.pipelines.len()).sum();
        while cached + listing.pipelines.len() > MAX_CACHED_PIPELINES {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.loaded_at)
                .map(|(space, _)| *space)
            else {
                break;
            };
            if let Some(dropped) = entries.remove(&oldest) {
                cached -= dropped.listing.pipelines.len();
            }
        }
        let loaded_at = Instant::now();
        entries.insert(space_id, Cached { listing, loaded_at });
    }
}

fn version_of(item: &Item) -> u64 {
    item.get(VERSION_ATTR).and_then(Value::as_u64).unwrap_or(0)
}

impl Repository {
    /// The space's pipelines and the run series of the ones `select` picks from them (a page):
    /// `select` returns what the caller needs back and the ids whose series to read.
    ///
    /// Table requests: one batch read (version + series) when this process holds the space's
    /// current listing; one query and one batch read when it holds none; when the space
    /// changed since, the batch read, the query, and one more batch read only if the change
    /// put other pipelines into the selection.
    pub async fn list_pipelines_selecting<S>(
        &self,
        space_id: Uuid,
        select: impl Fn(&PipelineListing) -> (S, Vec<Uuid>),
    ) -> Result<SelectedListing<S>> {
        let Some(cached) = self.listings.get(space_id) else {
            let listing = self.load_listing(space_id).await?;
            let (selection, ids) = select(&listing);
            let series = self.series_for(&ids).await?;
            return Ok(SelectedListing {
                listing,
                selection,
                series,
            });
        };

        let (selection, ids) = select(&cached);
        let version_key = keys::pipeline_listing_version(space_id);
        let mut wanted = vec![version_key.clone()];
        wanted.extend(ids.iter().map(|id| keys::run_series(*id)));
        let mut version = 0;
        let mut series = HashMap::with_capacity(ids.len());
        for item in self.table.batch_get(&wanted).await? {
            if Key::of(&item).as_ref() == Some(&version_key) {
                version = version_of(&item);
            } else if let Some(id) = pipeline_id_of(&item) {
                series.insert(id, decode_series(&item)?);
            }
        }
        if version == cached.version {
            return Ok(SelectedListing {
                listing: cached,
                selection,
                series,
            });
        }

        let listing = self.load_listing(space_id).await?;
        let (selection, new_ids) = select(&listing);
        let read: HashSet<Uuid> = ids.into_iter().collect();
        let missing: Vec<Uuid> = new_ids
            .into_iter()
            .filter(|id| !read.contains(id))
            .collect();
        series.extend(self.series_for(&missing).await?);
        Ok(SelectedListing {
            listing,
            selection,
            series,
        })
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
            .sort(SortKey::BeginsWith(keys::PIPELINE_PREFIX.into()));
        let mut listing = PipelineListing::default();
        for item in query_all(self.table(), query).await? {
            let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default();
            if sort_key == keys::PIPELINE_PREFIX {
                listing.version = version_of(&item);
            } else if sort_key.contains(keys::WATCH_INFIX) {
                let user = item.get("user_id").and_then(Value::as_str);
                if let (Some(user), Some(pipeline)) =
                    (user.and_then(|u| u.parse().ok()), pipeline_id_of(&item))
                {
                    listing.watches.insert((user, pipeline));
                }
            } else {
                listing.pipelines.push(from_item(item)?);
            }
        }
        listing
            .pipelines
            .sort_by_cached_key(Pipeline::list_order_key);
        Ok(listing)
    }

    /// Counts a write to a pipeline or watch item of the space, after the write: every process
    /// holding the space's listing re-reads it on its next list.
    pub(crate) async fn bump_listing_version(&self, space_id: Uuid) -> Result<()> {
        let update = Update::new()
            .set("kind", "pipeline_listing_version")
            .set("space_id", space_id.to_string())
            .add(VERSION_ATTR, 1);
        self.table
            .update(&keys::pipeline_listing_version(space_id), update, None)
            .await?;
        Ok(())
    }
}
