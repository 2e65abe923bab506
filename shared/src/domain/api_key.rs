//! API keys and space slugs as values: generation, hashing and well-formedness.
//!
//! Keys look like `orch_` + 40 random base62 characters (about 238 bits). Only their SHA-256
//! hash is stored: a fast hash is the right tool for high-entropy random secrets (no
//! dictionary to attack), and it lets a key be found with one GetItem. The repository stores
//! and finds keys by these rules; `auth` authenticates with them.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "orch_";
pub(crate) const KEY_RANDOM_CHARS: usize = 40;
/// Shortest secret accepted as a key (also the floor for `ORCHESTRATION_DEMO_API_KEY`).
pub const MIN_KEY_LEN: usize = 20;
const MAX_KEY_LEN: usize = 256;
pub(crate) const DISPLAY_PREFIX_LEN: usize = 12;

/// A fresh random key: shown once to its owner, never stored.
pub fn generate_key() -> String {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{KEY_PREFIX}{random}")
}

pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// Whether a string can be an API key at all (length and visible ASCII).
pub fn is_well_formed(key: &str) -> bool {
    (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Space slugs: lower-case letters, digits and dashes, 1 to 63 characters.
pub fn is_valid_slug(slug: &str) -> bool {
    (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}
