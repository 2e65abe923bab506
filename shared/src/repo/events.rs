//! Pipeline events: the feed of a space and the outbox of events still to publish.
//!
//! An event item (`EVENT#<id>` / `EVENT`, GSI1 `EVENTS#<space>` / `<detected>#<id>`) is
//! written only if none with its id exists, together with its outbox entry
//! (`OUTBOX` / `<detected>#<id>`), in the transaction of the write that records its
//! transition where there is one (see `domain::events`). Both carry `expires_at` (the
//! table's TTL) at detection + the retention.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Repository, from_item, to_item};
use crate::domain::events::Event;
use crate::error::Result;
use crate::keys;
use crate::store::{
    BatchOp, Condition, Index, Item, Key, Query, SortKey, StoreError, TransactOp, query_all,
};

const EXPIRES_ATTR: &str = "expires_at";

impl Repository {
    /// The two writes that store an event exactly once: the event (only if absent) and its
    /// outbox entry. The event's condition comes first, so a cancelled transaction names it.
    pub(crate) fn event_ops(&self, event: &Event) -> Result<[TransactOp; 2]> {
        let expires = (event.detected_at + self.event_retention).timestamp();
        let mut item = to_item(
            event,
            "event",
            keys::event(event.id),
            Some(keys::event_gsi1(
                event.space_id,
                event.detected_at,
                event.id,
            )),
        )?;
        item.insert(EXPIRES_ATTR.into(), json!(expires));
        let mut entry = to_item(
            event,
            "outbox",
            keys::outbox_entry(event.detected_at, event.occurred_at, event.id),
            None,
        )?;
        entry.insert(EXPIRES_ATTR.into(), json!(expires));
        Ok([
            TransactOp::Put {
                item,
                condition: Some(Condition::NotExists),
            },
            TransactOp::Put {
                item: entry,
                condition: None,
            },
        ])
    }

    /// Stores an event that no other write records (a running run's or try's duration, a
    /// freshness breach): `false` when it was stored before.
    pub async fn record_event(&self, event: &Event) -> Result<bool> {
        match self
            .table
            .transact_write(self.event_ops(event)?.into())
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::TransactionCancelled { index: Some(0) }) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// An event by id (whatever its space: ids are only known to the space's readers).
    pub async fn get_event(&self, event_id: uuid::Uuid) -> Result<Option<Event>> {
        self.table
            .get(&keys::event(event_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// The space's events detected at or after `since` (all kept ones without it), newest
    /// first: one query of the space's feed in GSI1 (per MB), never a scan. Expired events
    /// that the table's TTL has not removed yet are left out.
    pub async fn list_events(
        &self,
        space_id: uuid::Uuid,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>> {
        let mut query = Query::partition(Index::Gsi1, keys::events_of(space_id)).descending();
        if let Some(since) = since {
            query = query.sort(SortKey::GreaterOrEqual(keys::stamp(since)));
        }
        let now = now.timestamp();
        query_all(self.table(), query)
            .await?
            .into_iter()
            .filter(|item| not_expired(item, now))
            .map(from_item::<Event>)
            .filter(|event| event.as_ref().map_or(true, |e| e.space_id == space_id))
            .collect()
    }

    /// Up to `limit` events still to publish, oldest first, with their outbox keys. Entries
    /// past their retention (which the table's TTL removes eventually, the embedded store
    /// never) are removed here instead of being published, so they cannot hold up the rest.
    pub async fn pending_events(&self, limit: u32) -> Result<Vec<(Key, Event)>> {
        let query = Query::partition(Index::Primary, keys::OUTBOX_PARTITION).limit(limit.max(1));
        let now = Utc::now().timestamp();
        loop {
            let page = self.table.query(&query).await?;
            let (live, expired): (Vec<Item>, Vec<Item>) = page
                .items
                .into_iter()
                .partition(|item| not_expired(item, now));
            if expired.is_empty() || !live.is_empty() {
                self.remove_from_outbox(expired.iter().filter_map(Key::of).collect())
                    .await?;
                return live
                    .into_iter()
                    .filter_map(|item| Key::of(&item).map(|key| (key, item)))
                    .map(|(key, item)| Ok((key, from_item(item)?)))
                    .collect();
            }
            // A page of expired entries only: removed, then the next page.
            self.remove_from_outbox(expired.iter().filter_map(Key::of).collect())
                .await?;
        }
    }

    /// Removes published events from the outbox.
    pub async fn remove_from_outbox(&self, keys: Vec<Key>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.table
            .batch_write(keys.into_iter().map(BatchOp::Delete).collect())
            .await?;
        Ok(())
    }
}

impl Repository {
    /// Pipelines by (space, id), one batch read; those of another space are left out.
    pub async fn pipelines_by_id(
        &self,
        wanted: &[(uuid::Uuid, uuid::Uuid)],
    ) -> Result<Vec<crate::domain::model::Pipeline>> {
        let keys: Vec<Key> = wanted
            .iter()
            .map(|(space, pipeline)| keys::pipeline(*space, *pipeline))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.table
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// The users watching a pipeline (one query of its watch items, which sort right after
    /// its listing entry).
    pub async fn watchers(
        &self,
        space_id: uuid::Uuid,
        pipeline_id: uuid::Uuid,
    ) -> Result<Vec<uuid::Uuid>> {
        let watch = keys::watch(space_id, uuid::Uuid::nil(), pipeline_id);
        let prefix = watch.sk.trim_end_matches(&uuid::Uuid::nil().to_string());
        let query = Query::partition(Index::Primary, watch.pk.clone())
            .sort(SortKey::BeginsWith(prefix.to_string()));
        Ok(query_all(self.table(), query)
            .await?
            .iter()
            .filter_map(|item| item.get("SK")?.as_str()?.strip_prefix(prefix)?.parse().ok())
            .collect())
    }
}

fn not_expired(item: &Item, now: i64) -> bool {
    item.get(EXPIRES_ATTR)
        .and_then(serde_json::Value::as_i64)
        .is_none_or(|at| at > now)
}
