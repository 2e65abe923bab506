//! Use cases behind the endpoints, independent of HTTP and of the storage backend.

pub mod comments;
pub mod connectors;
pub mod events;
pub mod freshness;
pub mod governance;
pub mod pipelines;
pub mod runs;
pub mod trigger;

use std::time::{Duration, Instant};

/// Kept back from a request's deadline to record what happened (the sync's checkpoint and
/// record, the triggered run) and answer.
pub const WRAP_UP: Duration = Duration::from_secs(2);

/// When a request that calls Airflow (sync, trigger) must have answered, whatever Airflow
/// does: behind API Gateway, a request is cut at 29 s and its caller gets a bare 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    answer_by: Instant,
}

impl Deadline {
    /// `limit` from now.
    pub fn after(limit: Duration) -> Self {
        Self {
            answer_by: Instant::now() + limit,
        }
    }

    /// When calls to Airflow (and to the secret store) stop: [`WRAP_UP`] before the deadline,
    /// or at once when the deadline is shorter than that.
    pub fn airflow_cutoff(&self) -> Instant {
        let now = Instant::now();
        self.answer_by
            .checked_sub(WRAP_UP)
            .filter(|cutoff| *cutoff > now)
            .unwrap_or(now)
    }

    /// Time left before [`Deadline::airflow_cutoff`].
    pub fn airflow_budget(&self) -> Duration {
        self.airflow_cutoff()
            .saturating_duration_since(Instant::now())
    }
}

/// Page-number pagination (the platform convention: `page` from 1, `size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub size: u32,
}

impl PageRequest {
    pub fn offset(&self) -> usize {
        (self.page as usize - 1).saturating_mul(self.size as usize)
    }

    /// The slice of `items` this page covers.
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset())
            .take(self.size as usize)
            .collect()
    }
}

/// One page of a list, with the total across all pages.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: PageRequest,
}

impl<T> Paged<T> {
    pub fn total_pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.page.size))
    }
}
