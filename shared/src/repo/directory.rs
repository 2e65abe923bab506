//! Spaces, users, memberships, API keys, teams and connectors: the platform objects the
//! admin tooling creates and authentication reads.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Repository, from_item, json, to_item};
use crate::domain::api_key;
use crate::domain::model::{ApiKey, Connector, Membership, Role, Space, Team, User};
use crate::error::{Error, Result};
use crate::keys;
use crate::store::{
    Condition, Index, Item, PK, Query, SK, SortKey, StoreError, TransactOp, Update, query_all,
};

/// A freshly created key: the secret is returned once and never stored.
pub struct NewApiKey {
    pub record: ApiKey,
    pub secret: String,
}

/// The item naming a space's slug by its id.
fn space_slug_item(space: &Space) -> Item {
    let key = keys::space_by_id(space.id);
    let mut item = Item::new();
    item.insert(PK.into(), key.pk.into());
    item.insert(SK.into(), key.sk.into());
    item.insert("kind".into(), "space_slug".into());
    item.insert("slug".into(), space.slug.clone().into());
    item
}

impl Repository {
    /// Creates a space (with its slug-by-id item); 409 if the slug is taken.
    pub async fn create_space(&self, slug: &str, name: &str, now: DateTime<Utc>) -> Result<Space> {
        if !api_key::is_valid_slug(slug) {
            return Err(Error::InvalidSlug);
        }
        let space = Space {
            id: Uuid::new_v4(),
            slug: slug.to_string(),
            name: name.to_string(),
            created_at: now,
        };
        let item = to_item(&space, "space", keys::space(slug), None)?;
        // The slug by id, in the same transaction (a fresh id never exists).
        let slug_item = space_slug_item(&space);
        let written = self
            .table
            .transact_write(vec![
                TransactOp::Put {
                    item,
                    condition: Some(Condition::NotExists),
                },
                TransactOp::Put {
                    item: slug_item,
                    condition: Some(Condition::NotExists),
                },
            ])
            .await;
        match written {
            Ok(()) => Ok(space),
            Err(StoreError::TransactionCancelled { index: Some(0) }) => Err(Error::Conflict(
                format!("A space with slug '{slug}' already exists"),
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// A space's slug by its id (spaces are keyed by slug): the `SPACEID#<id>` item written
    /// with the space. `None` for a space created before that item existed, until
    /// `orchestration admin rebuild-listings` writes it ([`Repository::ensure_space_slug`]).
    pub async fn space_slug(&self, space_id: Uuid) -> Result<Option<String>> {
        Ok(self
            .table
            .get(&keys::space_by_id(space_id))
            .await?
            .and_then(|item| item.get("slug")?.as_str().map(str::to_string)))
    }

    /// Writes a space's `SPACEID#<id>` item if it has none (spaces created before it existed);
    /// idempotent. Returns whether it wrote it.
    pub async fn ensure_space_slug(&self, space: &Space) -> Result<bool> {
        match self
            .table
            .put(space_slug_item(space), Some(Condition::NotExists))
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    pub async fn get_space(&self, slug: &str) -> Result<Option<Space>> {
        if !api_key::is_valid_slug(slug) {
            return Ok(None);
        }
        self.table
            .get(&keys::space(slug))
            .await?
            .map(from_item)
            .transpose()
    }

    pub async fn create_user(
        &self,
        full_name: &str,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let user = User {
            id: Uuid::new_v4(),
            full_name: full_name.to_string(),
            email: email.map(str::to_string),
            created_at: now,
        };
        let item = to_item(&user, "user", keys::user(user.id), None)?;
        self.table.put(item, Some(Condition::NotExists)).await?;
        Ok(user)
    }

    /// Creates a user with a given id, or returns it unchanged if it exists (demo bootstrap).
    pub async fn ensure_user(&self, id: Uuid, full_name: &str, now: DateTime<Utc>) -> Result<User> {
        if let Some(user) = self.get_user(id).await? {
            return Ok(user);
        }
        let user = User {
            id,
            full_name: full_name.to_string(),
            email: None,
            created_at: now,
        };
        let item = to_item(&user, "user", keys::user(id), None)?;
        self.table.put(item, None).await?;
        Ok(user)
    }

    pub async fn get_user(&self, user_id: Uuid) -> Result<Option<User>> {
        self.table
            .get(&keys::user(user_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Adds a user to a space, or changes their role.
    pub async fn set_membership(
        &self,
        slug: &str,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Membership> {
        let space = self
            .get_space(slug)
            .await?
            .ok_or(Error::NotFound("Space not found"))?;
        if self.get_user(user_id).await?.is_none() {
            return Err(Error::NotFound("User not found"));
        }
        let membership = Membership {
            space_id: space.id,
            space_slug: space.slug,
            user_id,
            role,
            created_at: now,
        };
        let item = to_item(
            &membership,
            "membership",
            keys::membership(slug, user_id),
            Some(keys::membership_gsi1(user_id, slug)),
        )?;
        self.table.put(item, None).await?;
        Ok(membership)
    }

    pub async fn get_membership(&self, slug: &str, user_id: Uuid) -> Result<Option<Membership>> {
        self.table
            .get(&keys::membership(slug, user_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Issues an API key for a user. `secret` lets an operator choose it (the demo key);
    /// otherwise a random one is generated.
    pub async fn create_api_key(
        &self,
        user_id: Uuid,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
        secret: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<NewApiKey> {
        if self.get_user(user_id).await?.is_none() {
            return Err(Error::NotFound("User not found"));
        }
        let secret = secret.unwrap_or_else(api_key::generate_key);
        if !api_key::is_well_formed(&secret) {
            return Err(Error::MalformedApiKey);
        }
        let record = ApiKey {
            id: Uuid::new_v4(),
            user_id,
            name: name.to_string(),
            display_prefix: api_key::display_prefix(&secret),
            key_hash: api_key::hash_key(&secret),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        let item = to_item(
            &record,
            "api_key",
            keys::api_key(&record.key_hash),
            Some(keys::api_key_gsi1(record.id)),
        )?;
        match self.table.put(item, Some(Condition::NotExists)).await {
            Ok(()) => Ok(NewApiKey { record, secret }),
            Err(StoreError::ConditionFailed) => {
                Err(Error::Conflict("That API key is already registered".into()))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Looks a key up by the hash of its secret.
    pub async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        self.table
            .get(&keys::api_key(key_hash))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Revokes a key by its public id; revoking twice keeps the first time.
    pub async fn revoke_api_key(&self, key_id: Uuid, now: DateTime<Utc>) -> Result<ApiKey> {
        let (pk, sk) = keys::api_key_gsi1(key_id);
        let page = self
            .table
            .query(&Query::partition(Index::Gsi1, pk).sort(SortKey::Equals(sk)))
            .await?;
        let item = page
            .items
            .into_iter()
            .next()
            .ok_or(Error::NotFound("API key not found"))?;
        let record: ApiKey = from_item(item)?;
        if record.revoked_at.is_some() {
            return Ok(record);
        }
        let updated = self
            .table
            .update(
                &keys::api_key(&record.key_hash),
                Update::new().set("revoked_at", json(&now)?),
                Some(Condition::Exists),
            )
            .await?;
        from_item(updated)
    }

    pub async fn create_team(
        &self,
        space_id: Uuid,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Team> {
        let team = Team {
            id: Uuid::new_v4(),
            space_id,
            name: name.to_string(),
            created_at: now,
        };
        self.put_team(&team).await?;
        Ok(team)
    }

    pub async fn put_team(&self, team: &Team) -> Result<()> {
        let item = to_item(team, "team", keys::team(team.space_id, team.id), None)?;
        self.table.put(item, None).await?;
        Ok(())
    }

    pub async fn get_team(&self, space_id: Uuid, team_id: Uuid) -> Result<Option<Team>> {
        self.table
            .get(&keys::team(space_id, team_id))
            .await?
            .map(from_item)
            .transpose()
    }

    pub async fn put_connector(&self, connector: &Connector) -> Result<()> {
        let item = to_item(
            connector,
            "connector",
            keys::connector(connector.space_id, connector.id),
            Some(keys::connector_gsi1(connector.id)),
        )?;
        self.table.put(item, None).await?;
        Ok(())
    }

    pub async fn get_connector(
        &self,
        space_id: Uuid,
        connector_id: Uuid,
    ) -> Result<Option<Connector>> {
        self.table
            .get(&keys::connector(space_id, connector_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Every connector of every space (the scheduled sync), through the index.
    pub async fn list_all_connectors(&self) -> Result<Vec<Connector>> {
        let (pk, _) = keys::connector_gsi1(Uuid::nil());
        let query = Query::partition(Index::Gsi1, pk);
        query_all(self.table(), query)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    pub async fn list_connectors(&self, space_id: Uuid) -> Result<Vec<Connector>> {
        let query = Query::partition(Index::Primary, keys::space_partition(space_id))
            .sort(SortKey::BeginsWith(keys::CONNECTOR_PREFIX.into()));
        query_all(self.table(), query)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }
}
