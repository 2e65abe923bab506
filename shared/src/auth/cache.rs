//! The per-process cache behind [`super::Authenticator`]: successful authentications by
//! (key hash, space slug), kept for a short time to live.
//!
//! Bounded: at most [`MAX_ENTRIES`]; when full, expired entries are dropped first and, if that
//! is not enough, everything (a burst of distinct valid keys is rare, and the cost of a miss
//! is just two reads). A Lambda instance serves one request at a time, so the lock is never
//! contended there; on the local server it is held for a map lookup only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Authenticated;

const MAX_ENTRIES: usize = 10_000;

pub struct CallerCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), Entry>>,
}

struct Entry {
    authenticated: Authenticated,
    stored_at: Instant,
}

impl CallerCache {
    /// A cache keeping entries for `ttl`; a zero `ttl` turns it off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached authentication, unless it is older than the time to live or its key has
    /// expired since.
    pub fn get(&self, key_hash: &str, slug: &str, now: DateTime<Utc>) -> Option<Authenticated> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let id = (key_hash.to_string(), slug.to_string());
        let entry = entries.get(&id)?;
        let fresh = entry.stored_at.elapsed() < self.ttl
            && entry
                .authenticated
                .key_expires_at
                .is_none_or(|expires| expires > now);
        if fresh {
            Some(entry.authenticated.clone())
        } else {
            entries.remove(&id);
            None
        }
    }

    pub fn put(&self, key_hash: String, slug: &str, authenticated: Authenticated) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.stored_at.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let entry = Entry {
            authenticated,
            stored_at: Instant::now(),
        };
        entries.insert((key_hash, slug.to_string()), entry);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as Span;
    use uuid::Uuid;

    use super::*;
    use crate::auth::Caller;
    use crate::domain::model::Role;

    fn authenticated(expires: Option<DateTime<Utc>>) -> Authenticated {
        Authenticated {
            caller: Caller {
                user_id: Uuid::new_v4(),
                space_id: Uuid::new_v4(),
                space_slug: "s".into(),
                role: Role::Viewer,
            },
            key_id: Uuid::new_v4(),
            key_expires_at: expires,
        }
    }

    #[test]
    fn hits_are_per_key_and_space() {
        let cache = CallerCache::new(Duration::from_secs(60));
        let now = Utc::now();
        let entry = authenticated(None);
        cache.put("h".into(), "s", entry.clone());
        assert_eq!(cache.get("h", "s", now), Some(entry));
        assert_eq!(cache.get("h", "other", now), None);
        assert_eq!(cache.get("other", "s", now), None);
    }

    #[test]
    fn an_expired_key_is_not_served_from_the_cache() {
        let cache = CallerCache::new(Duration::from_secs(60));
        let now = Utc::now();
        cache.put("h".into(), "s", authenticated(Some(now + Span::seconds(5))));
        assert!(cache.get("h", "s", now).is_some());
        assert_eq!(cache.get("h", "s", now + Span::seconds(5)), None);
        // And the stale entry is gone for good.
        assert_eq!(cache.get("h", "s", now), None);
    }

    #[test]
    fn entries_age_out_and_zero_ttl_disables() {
        let cache = CallerCache::new(Duration::from_millis(20));
        let now = Utc::now();
        cache.put("h".into(), "s", authenticated(None));
        assert!(cache.get("h", "s", now).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get("h", "s", now), None);

        let off = CallerCache::new(Duration::ZERO);
        off.put("h".into(), "s", authenticated(None));
        assert_eq!(off.get("h", "s", now), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = CallerCache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES + 5 {
            cache.put(format!("h{i}"), "s", authenticated(None));
        }
        let len = cache.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len} entries");
        assert!(
            cache
                .get(&format!("h{}", MAX_ENTRIES + 4), "s", Utc::now())
                .is_some()
        );
    }
}
