//! Per-key rate limiting that holds across Lambda instances.
//!
//! Each API key may make `limit` requests per fixed one-minute window (aligned to the epoch
//! minute). The count lives in the table, so every instance sees the same total; to keep the
//! table out of most requests, an instance reserves a *block* of requests at a time with one
//! atomic `ADD` and spends it locally. Consequences, all bounded by the block size:
//!
//! - one table write per block (default `limit / 50`, at most 20) instead of one per request;
//! - a block reserved but not spent before the window ends is lost, so a key spread over many
//!   instances may be limited slightly *before* reaching `limit`, never after;
//! - once the table says a window is used up, the instance answers 429 locally until the
//!   window ends (no table request per rejected call).
//!
//! Only authenticated requests are metered (unknown keys are refused before any write, so a
//! flood of random keys cannot make the table grow); API Gateway's stage throttling bounds the
//! rest.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::repo::Repository;

/// Requests per key per minute unless `ORCHESTRATION_RATE_LIMIT_PER_MINUTE` says otherwise.
pub const DEFAULT_LIMIT_PER_MINUTE: u32 = 600;
const WINDOW_SECONDS: i64 = 60;
/// Counter items outlive their window by this much before the TTL removes them.
const COUNTER_RETENTION_SECONDS: i64 = 3600;
const MAX_BLOCK: u32 = 20;

/// What the limiter decided, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    /// Requests left in this window (an estimate across instances, never above the truth by
    /// more than the blocks other instances hold unspent).
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_seconds: u64,
    /// When the window resets, in Unix seconds (`X-RateLimit-Reset`, the platform convention).
    pub reset_at: i64,
}

pub struct RateLimiter {
    limit: u32,
    block: u32,
    windows: Mutex<HashMap<Uuid, LocalWindow>>,
}

/// This instance's view of one key's current window.
#[derive(Debug, Clone, Copy)]
struct LocalWindow {
    start: i64,
    /// Reserved requests not yet spent here.
    allowance: u32,
    /// The table's total after this instance's last reservation.
    reserved_total: u64,
    /// The table said the window is used up.
    exhausted: bool,
}

impl RateLimiter {
    /// A limiter allowing `limit` requests per key per minute (at least 1).
    pub fn new(limit: u32) -> Self {
        Self {
            block: (limit / 50).clamp(1, MAX_BLOCK),
            limit: limit.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one request of `key_id`. `Ok` with the status to report, or 429
    /// ([`Error::TooManyRequests`]) with the same status when the key is over its limit.
    pub async fn check(
        &self,
        repo: &Repository,
        key_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<RateStatus, (Error, Option<RateStatus>)> {
        let start = now.timestamp().div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS;
        let reset_seconds = (start + WINDOW_SECONDS - now.timestamp()).max(1) as u64;
        // Spend from the local allowance when there is one.
        if let Some(window) = self.spend_local(key_id, start) {
            return self.decide(window, reset_seconds);
        }
        let total = repo
            .reserve_requests(
                key_id,
                start,
                self.block,
                start + WINDOW_SECONDS + COUNTER_RETENTION_SECONDS,
            )
            .await
            .map_err(|e| (e, None))?;
        let before = total.saturating_sub(u64::from(self.block));
        let granted = u64::from(self.limit)
            .saturating_sub(before)
            .min(u64::from(self.block)) as u32;
        let window = {
            let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            windows.retain(|_, w| w.start >= start);
            let window = windows.entry(key_id).or_insert(LocalWindow {
                start,
                allowance: 0,
                reserved_total: 0,
                exhausted: false,
            });
            if window.start != start {
                *window = LocalWindow {
                    start,
                    allowance: 0,
                    reserved_total: 0,
                    exhausted: false,
                };
            }
            window.reserved_total = window.reserved_total.max(total);
            if granted == 0 {
                window.exhausted = true;
            } else {
                // One of the granted requests is this one.
                window.allowance += granted - 1;
            }
            *window
        };
        if granted == 0 {
            let status = self.status(window, reset_seconds);
            return Err((
                Error::TooManyRequests {
                    retry_after_seconds: reset_seconds,
                },
                Some(status),
            ));
        }
        Ok(self.status(window, reset_seconds))
    }

    /// Takes one request from the local allowance, or reports the window exhausted. `None`
    /// when a reservation is needed.
    fn spend_local(&self, key_id: Uuid, start: i64) -> Option<LocalWindow> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.get_mut(&key_id).filter(|w| w.start == start)?;
        if window.exhausted {
            return Some(*window);
        }
        if window.allowance == 0 {
            return None;
        }
        window.allowance -= 1;
        Some(*window)
    }

    fn decide(
        &self,
        window: LocalWindow,
        reset_seconds: u64,
    ) -> Result<RateStatus, (Error, Option<RateStatus>)> {
        let status = self.status(window, reset_seconds);
        if window.exhausted {
            Err((
                Error::TooManyRequests {
                    retry_after_seconds: reset_seconds,
                },
                Some(status),
            ))
        } else {
            Ok(status)
        }
    }

    fn status(&self, window: LocalWindow, reset_seconds: u64) -> RateStatus {
        let used = window
            .reserved_total
            .saturating_sub(u64::from(window.allowance));
        RateStatus {
            limit: self.limit,
            remaining: if window.exhausted {
                0
            } else {
                u64::from(self.limit).saturating_sub(used) as u32
            },
            reset_seconds,
            reset_at: window.start + WINDOW_SECONDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::counting::CountingTable;
    use crate::store::embedded::EmbeddedTable;

    fn repo() -> (Repository, Arc<CountingTable>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let table = EmbeddedTable::open(&dir.path().join("t.redb")).unwrap();
        let counting = Arc::new(CountingTable::new(Arc::new(table)));
        (Repository::new(counting.clone()), counting, dir)
    }

    /// `seconds` into a window (1,800,000,000 is a whole minute since the epoch).
    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[tokio::test]
    async fn allows_exactly_the_limit_per_window_with_one_write_per_block() {
        let (repo, counting, _dir) = repo();
        let limiter = RateLimiter::new(100); // block of 2
        let key = Uuid::new_v4();
        counting.take();
        for i in 0..100u32 {
            let status = limiter.check(&repo, key, at(1)).await.unwrap();
            assert_eq!(status.limit, 100);
            assert_eq!(status.remaining, 100 - i - 1, "request {i}");
            assert_eq!(status.reset_seconds, 59);
        }
        assert_eq!(counting.take(), 50, "one reservation per block of 2");
        let (error, status) = limiter.check(&repo, key, at(2)).await.unwrap_err();
        assert!(matches!(
            error,
            Error::TooManyRequests {
                retry_after_seconds: 58
            }
        ));
        assert_eq!(status.unwrap().remaining, 0);
        counting.take();
        // Rejections are local once the window is known to be used up.
        assert!(limiter.check(&repo, key, at(3)).await.is_err());
        assert_eq!(counting.take(), 0);
        // A new window starts afresh; other keys were never affected.
        assert!(limiter.check(&repo, key, at(61)).await.is_ok());
        assert!(limiter.check(&repo, Uuid::new_v4(), at(3)).await.is_ok());
    }

    #[tokio::test]
    async fn instances_share_the_limit_through_the_table() {
        let (repo, _counting, _dir) = repo();
        let instances: Vec<_> = (0..3).map(|_| RateLimiter::new(60)).collect();
        let key = Uuid::new_v4();
        let mut allowed = 0;
        for round in 0..40 {
            for limiter in &instances {
                if limiter.check(&repo, key, at(10 + round / 10)).await.is_ok() {
                    allowed += 1;
                }
            }
        }
        // Never more than the limit; at most one unspent block per instance less.
        assert!(allowed <= 60, "{allowed} allowed");
        assert!(allowed >= 60 - 3, "{allowed} allowed");
    }
}
