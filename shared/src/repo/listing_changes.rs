//! What each write to a space's listing changed, remembered in the listing version item so a
//! process holding the listing a few versions back re-reads only that (see `repo::listing`).
//!
//! The write that makes version `v` records its change in the slot `change_<v % 64>` as
//! `<v> E <pipeline>` (a pipeline and its listing entry) or `<v> W <pipeline> <user>` (a
//! watch), right after its increment. A slot that is missing or holds another version (a
//! writer that died in between, or more than 64 writes since) makes the reader query the
//! whole listing instead.

use uuid::Uuid;

use crate::store::Item;

/// Versions whose change a version item remembers (one slot each, reused modulo).
const CHANGE_SLOTS: u64 = 64;

pub(super) fn change_slot(version: u64) -> String {
    format!("change_{}", version % CHANGE_SLOTS)
}

/// What one write to a space's listing changed (recorded with the version it made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListingChange {
    /// A pipeline item and its listing entry.
    Entry(Uuid),
    /// A watch, put or deleted.
    Watch { pipeline_id: Uuid, user_id: Uuid },
}

impl ListingChange {
    /// `<version> E <pipeline>` or `<version> W <pipeline> <user>`.
    pub(super) fn encode(self, version: u64) -> String {
        match self {
            ListingChange::Entry(pipeline) => format!("{version} E {pipeline}"),
            ListingChange::Watch {
                pipeline_id,
                user_id,
            } => format!("{version} W {pipeline_id} {user_id}"),
        }
    }

    /// The change recorded for `version` in its slot, if the slot holds that version's.
    fn decode(version_item: &Item, version: u64) -> Option<Self> {
        let text = version_item.get(&change_slot(version))?.as_str()?;
        let mut parts = text.split(' ');
        if parts.next()?.parse::<u64>().ok()? != version {
            return None;
        }
        let change = match (parts.next()?, parts.next()?.parse().ok()?) {
            ("E", pipeline) => ListingChange::Entry(pipeline),
            ("W", pipeline_id) => ListingChange::Watch {
                pipeline_id,
                user_id: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        Some(change)
    }

    /// Every change from `from` (exclusive) to `to` (inclusive), if the item remembers all.
    pub(super) fn between(version_item: &Item, from: u64, to: u64) -> Option<Vec<Self>> {
        if to <= from || to - from > CHANGE_SLOTS {
            return None;
        }
        (from + 1..=to)
            .map(|version| Self::decode(version_item, version))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item_with(changes: &[(u64, ListingChange)]) -> Item {
        let mut item = Item::new();
        for (version, change) in changes {
            item.insert(change_slot(*version), change.encode(*version).into());
        }
        item
    }

    #[test]
    fn changes_between_versions_are_known_only_when_every_slot_holds_its_version() {
        let (a, b, user) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let watch = ListingChange::Watch {
            pipeline_id: b,
            user_id: user,
        };
        let item = item_with(&[(5, ListingChange::Entry(a)), (6, watch)]);
        assert_eq!(
            ListingChange::between(&item, 4, 6),
            Some(vec![ListingChange::Entry(a), watch])
        );
        assert_eq!(ListingChange::between(&item, 5, 6), Some(vec![watch]));
        // Version 4's change is not recorded (a writer died before its slot), 7 not yet.
        assert_eq!(ListingChange::between(&item, 3, 6), None);
        assert_eq!(ListingChange::between(&item, 5, 7), None);
        // A slot reused by a later version no longer describes the earlier one.
        let reused = item_with(&[(5 + CHANGE_SLOTS, ListingChange::Entry(b))]);
        assert_eq!(ListingChange::between(&reused, 4, 5), None);
        assert_eq!(
            ListingChange::between(&item, 6, 6),
            None,
            "nothing to patch"
        );
        assert_eq!(ListingChange::between(&item, 0, CHANGE_SLOTS + 1), None);
    }
}
