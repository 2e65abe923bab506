//! Domain model and rules, independent of HTTP and of storage.

pub mod api_key;
pub mod events;
pub mod freshness;
pub mod ids;
pub mod listing;
pub mod model;
pub mod summary;
pub mod sync;
