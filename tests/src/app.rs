//! The whole API served on a loopback port, over a fresh store, with a seeded space.

pub use crate::Backend;
