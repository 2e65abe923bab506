//! API keys and the membership check, independent of HTTP.
//!
//! Keys are generated and hashed by `domain::api_key` (re-exported here): only their SHA-256
//! hash is stored, and it lets a key be found with one GetItem. The stored hash is compared
//! in constant time after the lookup.
//!
//! [`Authenticator`] puts a short per-process cache in front of the two table reads (key and
//! membership), and [`rate_limit`] meters each key's requests.

mod cache;
pub mod rate_limit;

pub use cache::CallerCache;

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::model::Role;
use crate::error::{Error, Result};
use crate::repo::Repository;

pub use crate::domain::api_key::{
    KEY_PREFIX, MIN_KEY_LEN, display_prefix, generate_key, hash_key, is_valid_slug, is_well_formed,
};

/// The authenticated caller inside the addressed space.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub user_id: Uuid,
    pub space_id: Uuid,
    pub space_slug: String,
    pub role: Role,
}

impl Caller {
    /// Fails with 403 unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<()> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "This action requires the {} role in this space",
                needed.as_str()
            )))
        }
    }
}

/// Pulls the key out of an `Authorization` header value (`Bearer <key>`, scheme
/// case-insensitive).
pub fn bearer_token(header: Option<&str>) -> Result<&str> {
    let header = header.ok_or(Error::Unauthenticated("Not authenticated"))?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(Error::Unauthenticated(
        "Invalid authorization header: expected 'Bearer <key>'",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthenticated(
            "Invalid authorization header: expected 'Bearer <key>'",
        ));
    }
    Ok(token.trim())
}

/// What a valid key may do in the addressed space. Either way the request counts against the
/// key's rate limit: a key is metered on spaces it cannot see too (each such request still
/// costs table reads).
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    Member(Authenticated),
    /// The space does not exist or the key's user is not a member (answered 404).
    Outsider {
        key_id: Uuid,
    },
}

impl Access {
    pub fn key_id(&self) -> Uuid {
        match self {
            Access::Member(authenticated) => authenticated.key_id,
            Access::Outsider { key_id } => *key_id,
        }
    }
}

/// A caller together with the key it presented (rate limits are per key).
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    pub caller: Caller,
    pub key_id: Uuid,
    /// When the key stops working, if it expires (checked even on a cache hit).
    pub key_expires_at: Option<DateTime<Utc>>,
}

/// Authentication with a short-lived cache of successful results.
///
/// A cache hit costs no table request. The price is a bounded delay: revoking a key, or
/// removing or demoting a member, takes effect in every running instance within the cache's
/// time to live ([`DEFAULT_AUTH_CACHE_TTL`], `ORCHESTRATION_AUTH_CACHE_SECONDS`). Expiry is
/// exact: it is known in advance and checked on every hit. Failures are never cached.
pub struct Authenticator {
    cache: CallerCache,
}

/// How long a successful authentication is reused by one process.
pub const DEFAULT_AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl Authenticator {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            cache: CallerCache::new(ttl),
        }
    }

    pub async fn authenticate(
        &self,
        repo: &Repository,
        key: &str,
        slug: &str,
        now: DateTime<Utc>,
    ) -> Result<Access> {
        if !is_well_formed(key) {
            return Err(Error::Unauthenticated("Invalid API key"));
        }
        let hash = hash_key(key);
        if let Some(hit) = self.cache.get(&hash, slug, now) {
            return Ok(Access::Member(hit));
        }
        let access = resolve(repo, &hash, slug, now).await?;
        if let Access::Member(authenticated) = &access {
            self.cache.put(hash, slug, authenticated.clone());
        }
        Ok(access)
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new(DEFAULT_AUTH_CACHE_TTL)
    }
}

/// Resolves the key (by its hash) to its user and checks the user's membership of the space
/// `slug`. 401 for any key problem; an outsider for an unknown space or one the user is not a
/// member of.
async fn resolve(repo: &Repository, hash: &str, slug: &str, now: DateTime<Utc>) -> Result<Access> {
    let stored = repo
        .find_api_key(hash)
        .await?
        .ok_or(Error::Unauthenticated("Invalid API key"))?;
    if !bool::from(stored.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(Error::Unauthenticated("Invalid API key"));
    }
    if stored.revoked_at.is_some_and(|at| at <= now) {
        return Err(Error::Unauthenticated("API key has been revoked"));
    }
    if stored.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::Unauthenticated("API key has expired"));
    }
    let outsider = Access::Outsider { key_id: stored.id };
    if !is_valid_slug(slug) {
        return Ok(outsider);
    }
    let Some(membership) = repo.get_membership(slug, stored.user_id).await? else {
        return Ok(outsider);
    };
    Ok(Access::Member(Authenticated {
        caller: Caller {
            user_id: stored.user_id,
            space_id: membership.space_id,
            space_slug: membership.space_slug,
            role: membership.role,
        },
        key_id: stored.id,
        key_expires_at: stored.expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::{DISPLAY_PREFIX_LEN, KEY_RANDOM_CHARS};

    #[test]
    fn generated_keys_are_recognisable_and_well_formed() {
        let key = generate_key();
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(key.len(), KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        assert!(is_well_formed(&key));
        assert_ne!(key, generate_key());
        assert_eq!(hash_key(&key).len(), 64);
        assert_eq!(display_prefix(&key).len(), DISPLAY_PREFIX_LEN);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), "abc");
        assert!(bearer_token(None).is_err());
        assert!(bearer_token(Some("Basic abc")).is_err());
        assert!(bearer_token(Some("Bearer")).is_err());
    }

    #[test]
    fn slugs() {
        assert!(is_valid_slug("demo"));
        assert!(is_valid_slug("team-42"));
        assert!(!is_valid_slug("Demo"));
        assert!(!is_valid_slug("a#b"));
        assert!(!is_valid_slug(""));
        assert!(!is_valid_slug("-x"));
    }

    #[test]
    fn roles_are_ordered() {
        let caller = Caller {
            user_id: Uuid::nil(),
            space_id: Uuid::nil(),
            space_slug: "s".into(),
            role: Role::Editor,
        };
        assert!(caller.require(Role::Viewer).is_ok());
        assert!(caller.require(Role::Editor).is_ok());
        assert!(matches!(
            caller.require(Role::Admin),
            Err(Error::Forbidden(_))
        ));
    }
}
