//! The storage port and repositories: the conformance suite of both adapters, round-trip budgets, crash safety, the listing cache, run series.
//!
//! One test binary per area (linking each test file separately costs minutes on 2 cores).

mod crash_safety;
mod listing_cache;
mod round_trips;
mod summary_series;
mod table_conformance;
