//! Admin operations for bootstrapping a deployment (against either backend): spaces, users,
//! memberships, API keys, teams, connectors. Each prints the created object as JSON.
//! `load-fixtures` creates the data the API Gateway events of `events/` address ([`fixtures`]).

pub mod fixtures;

use anyhow::{Context, bail};
use chrono::{Duration, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use shared::domain::model::{
    AirflowApiVersion, Connector, ConnectorAuth, Provider, Role, SecretRef,
};
use shared::repo::Repository;
use shared::store::dynamo::DynamoTable;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the DynamoDB table with its index (DynamoDB backend only; idempotent).
    CreateTable,
    /// Write the listing entries of a space's pipelines stored before entries existed, and
    /// move its watches to their new place (once per space after upgrading; idempotent).
    RebuildListings {
        /// The space's slug (repeat the option for several spaces).
        #[arg(long = "space", required = true)]
        spaces: Vec<String>,
    },
    /// Create a space.
    CreateSpace {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Create a user.
    CreateUser {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Add a user to a space, or change their role.
    SetMember {
        #[arg(long)]
        space: String,
        #[arg(long)]
        user: Uuid,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Issue an API key for a user (the key is printed once and never stored).
    CreateKey {
        #[arg(long)]
        user: Uuid,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until the key expires (no expiry when omitted).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke an API key by its id.
    RevokeKey {
        #[arg(long)]
        key_id: Uuid,
    },
    /// Create a team in a space.
    CreateTeam {
        #[arg(long)]
        space: String,
        #[arg(long)]
        name: String,
    },
    /// Register an Airflow connector in a space.
    CreateConnector(ConnectorArgs),
    /// Sync Airflow connectors now, with a progress bar: one (--connector), those of a space
    /// (--space), or every connector that is due (neither).
    Sync {
        #[arg(long)]
        space: Option<String>,
        #[arg(long)]
        connector: Option<Uuid>,
        /// Longest the sync of one connector may take before it stops (the next one resumes).
        #[arg(long, default_value_t = 600)]
        budget_seconds: u64,
    },
    /// Generate a benchmark space: N pipelines with days of runs and task runs (scripts/bench).
    Generate(crate::history::generate::GenerateArgs),
    /// Create (idempotently) the space, user, key, team, connector, pipeline, run, task runs
    /// and comment with the ids of the `events/` fixtures (local emulation and tests only).
    LoadFixtures(fixtures::LoadFixturesArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Editor,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ApiVersionArg {
    /// Airflow 2 (`/api/v1`, basic auth).
    V1,
    /// Airflow 3 (`/api/v2`, JWT).
    V2,
}

#[derive(Debug, Args)]
pub struct ConnectorArgs {
    #[arg(long)]
    space: String,
    #[arg(long)]
    name: String,
    /// Airflow's base URL, e.g. https://airflow.example.com
    #[arg(long)]
    base_url: String,
    #[arg(long, value_enum, default_value = "v2")]
    api_version: ApiVersionArg,
    /// The user who creates (and may edit) the connector.
    #[arg(long)]
    created_by: Uuid,
    /// Airflow username (with a password reference below).
    #[arg(long)]
    username: Option<String>,
    /// Environment variable holding the password (local use).
    #[arg(long)]
    password_env: Option<String>,
    /// Secrets Manager ARN holding the password (production).
    #[arg(long)]
    password_secret_arn: Option<String>,
    /// The password itself, kept in the embedded store (local use only; refused on DynamoDB).
    #[arg(long)]
    password_stored: Option<String>,
    /// Environment variable holding a static bearer token.
    #[arg(long)]
    token_env: Option<String>,
    /// Secrets Manager ARN holding a static bearer token.
    #[arg(long)]
    token_secret_arn: Option<String>,
}

impl ConnectorArgs {
    fn auth(&self) -> anyhow::Result<ConnectorAuth> {
        let password = match (
            &self.password_env,
            &self.password_secret_arn,
            &self.password_stored,
        ) {
            (Some(env), None, None) => Some(SecretRef::Env(env.clone())),
            (None, Some(arn), None) => Some(SecretRef::SecretsManager(arn.clone())),
            (None, None, Some(value)) => Some(SecretRef::Stored(value.clone())),
            (None, None, None) => None,
            _ => bail!("give one of --password-env, --password-secret-arn, --password-stored"),
        };
        let token = match (&self.token_env, &self.token_secret_arn) {
            (Some(env), None) => Some(SecretRef::Env(env.clone())),
            (None, Some(arn)) => Some(SecretRef::SecretsManager(arn.clone())),
            (None, None) => None,
            _ => bail!("give either --token-env or --token-secret-arn, not both"),
        };
        match (&self.username, password, token) {
            (Some(username), Some(password), None) => Ok(ConnectorAuth::Password {
                username: username.clone(),
                password,
            }),
            (None, None, Some(token)) => Ok(ConnectorAuth::Token { token }),
            _ => bail!(
                "a connector needs either --username with a password reference, or a token reference"
            ),
        }
    }
}

/// A connector as printed: a secret kept in the store (`--password-stored`) shows where it
/// lives, never its value (the output ends up in terminals, shell logs and CI logs).
fn printable(connector: &Connector) -> Value {
    let mut value = json!(connector);
    if let Some(auth) = value.get_mut("auth").and_then(Value::as_object_mut) {
        for secret in auth.values_mut() {
            if secret["source"] == "stored" {
                *secret = json!({ "source": "stored" });
            }
        }
    }
    value
}

/// Runs one admin command and returns what it created, as JSON (`null`: nothing to print).
pub async fn run(
    repo: &Repository,
    dynamo: Option<&DynamoTable>,
    command: AdminCommand,
) -> anyhow::Result<Value> {
    let now = Utc::now();
    Ok(match command {
        AdminCommand::CreateTable => {
            let table =
                dynamo.context("create-table needs the DynamoDB backend (set DYNAMODB_TABLE)")?;
            table.create_table().await?;
            json!({ "table": table.table_name(), "status": "ready" })
        }
        AdminCommand::CreateSpace { slug, name } => {
            json!(repo.create_space(&slug, &name, now).await?)
        }
        AdminCommand::CreateUser { name, email } => {
            json!(repo.create_user(&name, email.as_deref(), now).await?)
        }
        AdminCommand::SetMember { space, user, role } => {
            json!(repo.set_membership(&space, user, role.into(), now).await?)
        }
        AdminCommand::CreateKey {
            user,
            name,
            expires_in_days,
        } => {
            let expires_at = expires_in_days.map(|days| now + Duration::days(i64::from(days)));
            let created = repo
                .create_api_key(user, &name, expires_at, None, now)
                .await?;
            json!({
                "id": created.record.id,
                "user_id": created.record.user_id,
                "name": created.record.name,
                "prefix": created.record.display_prefix,
                "expires_at": created.record.expires_at,
                "key": created.secret,
                "note": "store this key now: it is shown only once",
            })
        }
        AdminCommand::RevokeKey { key_id } => {
            let revoked = repo.revoke_api_key(key_id, now).await?;
            json!({ "id": revoked.id, "prefix": revoked.display_prefix, "revoked_at": revoked.revoked_at })
        }
        AdminCommand::RebuildListings { spaces } => {
            let mut rebuilt = Vec::new();
            for slug in spaces {
                let space = repo
                    .get_space(&slug)
                    .await?
                    .with_context(|| format!("no such space: {slug}"))?;
                let (entries, watches) = repo.rebuild_listing(space.id).await?;
                // The space's slug by id (events' links), also missing from older tables.
                let slug_written = repo.ensure_space_slug(&space).await?;
                rebuilt.push(json!({
                    "space": slug,
                    "entries_written": entries,
                    "watches_moved": watches,
                    "slug_item_written": slug_written,
                }));
            }
            json!(rebuilt)
        }
        AdminCommand::CreateTeam { space, name } => {
            let space = repo.get_space(&space).await?.context("no such space")?;
            json!(repo.create_team(space.id, &name, now).await?)
        }
        AdminCommand::Sync {
            space,
            connector,
            budget_seconds,
        } => {
            let budget = std::time::Duration::from_secs(budget_seconds);
            // Prints each sync record itself (with progress bars on the way).
            crate::sync::run(repo, space, connector, budget).await?;
            Value::Null
        }
        AdminCommand::Generate(args) => crate::history::generate::run(repo, args).await?,
        AdminCommand::LoadFixtures(args) => fixtures::run(repo, dynamo, args).await?,
        AdminCommand::CreateConnector(args) => {
            if args.password_stored.is_some() && dynamo.is_some() {
                bail!(
                    "--password-stored keeps the secret in the table: use --password-secret-arn on DynamoDB"
                );
            }
            let space = repo
                .get_space(&args.space)
                .await?
                .context("no such space")?;
            let base_url = args.base_url.trim_end_matches('/').to_string();
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                bail!("--base-url must be an http(s) URL");
            }
            let connector = Connector {
                id: Uuid::new_v4(),
                space_id: space.id,
                name: args.name.clone(),
                provider: Provider::Airflow,
                base_url,
                api_version: match args.api_version {
                    ApiVersionArg::V1 => AirflowApiVersion::V1,
                    ApiVersionArg::V2 => AirflowApiVersion::V2,
                },
                auth: args.auth()?,
                created_by: args.created_by,
                editors: Vec::new(),
                created_at: now,
            };
            repo.put_connector(&connector).await?;
            printable(&connector)
        }
    })
}
