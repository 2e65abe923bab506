//! Configuration read from the environment, once, at start-up.

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::dynamo::DynamoTable;
use crate::store::embedded::EmbeddedTable;
use crate::store::{StoreError, Table};

/// Name of the table (DynamoDB backend). Required by the Lambda functions.
pub const TABLE_ENV: &str = "DYNAMODB_TABLE";
/// Folder of the embedded store (local server), default `.data`.
pub const DATA_DIR_ENV: &str = "ORCHESTRATION_DATA_DIR";
pub const DEFAULT_DATA_DIR: &str = ".data";
const EMBEDDED_FILE: &str = "orchestration.redb";

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Amazon DynamoDB (or a DynamoDB-compatible endpoint through `AWS_ENDPOINT_URL_DYNAMODB`).
    DynamoDb { table: String },
    /// The embedded on-disk store in this folder.
    Embedded { data_dir: PathBuf },
}

impl StoreConfig {
    /// DynamoDB when `DYNAMODB_TABLE` is set, else the embedded store in
    /// `ORCHESTRATION_DATA_DIR` (default `.data`).
    pub fn from_env() -> Self {
        match std::env::var(TABLE_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            Some(table) => StoreConfig::DynamoDb { table },
            None => StoreConfig::Embedded {
                data_dir: std::env::var_os(DATA_DIR_ENV)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            },
        }
    }

    /// DynamoDB only, as the Lambda functions require: fails with a clear message otherwise.
    pub fn dynamodb_from_env() -> Result<Self, String> {
        match Self::from_env() {
            config @ StoreConfig::DynamoDb { .. } => Ok(config),
            StoreConfig::Embedded { .. } => Err(format!(
                "{TABLE_ENV} is not set: the functions need the name of their DynamoDB table"
            )),
        }
    }

    pub async fn open(&self) -> Result<Arc<dyn Table>, StoreError> {
        Ok(match self {
            StoreConfig::DynamoDb { table } => {
                Arc::new(DynamoTable::from_env(table.clone()).await?)
            }
            StoreConfig::Embedded { data_dir } => {
                Arc::new(EmbeddedTable::open(&data_dir.join(EMBEDDED_FILE))?)
            }
        })
    }

    pub fn describe(&self) -> String {
        match self {
            StoreConfig::DynamoDb { table } => format!("DynamoDB table {table}"),
            StoreConfig::Embedded { data_dir } => {
                format!(
                    "embedded store in {}",
                    data_dir.join(EMBEDDED_FILE).display()
                )
            }
        }
    }
}

/// Seconds a process reuses a successful authentication (0 turns the cache off).
pub const AUTH_CACHE_ENV: &str = "ORCHESTRATION_AUTH_CACHE_SECONDS";
/// Requests per API key per minute (0 turns rate limiting off).
pub const RATE_LIMIT_ENV: &str = "ORCHESTRATION_RATE_LIMIT_PER_MINUTE";

/// Authentication cache and rate limit settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessConfig {
    pub auth_cache_ttl: std::time::Duration,
    /// `None`: no rate limiting.
    pub rate_limit_per_minute: Option<u32>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            auth_cache_ttl: crate::auth::DEFAULT_AUTH_CACHE_TTL,
            rate_limit_per_minute: Some(crate::auth::rate_limit::DEFAULT_LIMIT_PER_MINUTE),
        }
    }
}

impl AccessConfig {
    /// The defaults, overridden by `ORCHESTRATION_AUTH_CACHE_SECONDS` and
    /// `ORCHESTRATION_RATE_LIMIT_PER_MINUTE`; a value that is not a whole number is an error
    /// (a typo must not silently turn protection off).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AccessConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str| -> Result<Option<u32>, String> {
            match lookup(name) {
                Some(text) if !text.trim().is_empty() => text
                    .trim()
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| format!("{name} must be a whole number, got {text:?}")),
                _ => Ok(None),
            }
        };
        let mut config = Self::default();
        if let Some(seconds) = number(AUTH_CACHE_ENV)? {
            config.auth_cache_ttl = std::time::Duration::from_secs(u64::from(seconds));
        }
        if let Some(limit) = number(RATE_LIMIT_ENV)? {
            config.rate_limit_per_minute = (limit > 0).then_some(limit);
        }
        Ok(config)
    }
}

/// Seconds a request that calls Airflow (sync, trigger) may take before it answers.
pub const REQUEST_DEADLINE_ENV: &str = "ORCHESTRATION_REQUEST_DEADLINE_SECONDS";
/// The default: well under API Gateway's 29 s, with room for the function's own start.
pub const DEFAULT_REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(25);
/// Accepted values: at least 5 s (a sync needs a few round trips), at most 28 s (API Gateway
/// cuts the request at 29 s and the caller would get its bare 503 instead of ours).
const REQUEST_DEADLINE_RANGE: std::ops::RangeInclusive<u64> = 5..=28;

/// The request deadline from `ORCHESTRATION_REQUEST_DEADLINE_SECONDS` (default 25 s).
pub fn request_deadline_from_env() -> Result<std::time::Duration, String> {
    request_deadline_from_lookup(|name| std::env::var(name).ok())
}

/// Like [`request_deadline_from_env`], reading variables through `lookup`.
pub fn request_deadline_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<std::time::Duration, String> {
    match lookup(REQUEST_DEADLINE_ENV) {
        Some(text) if !text.trim().is_empty() => match text.trim().parse::<u64>() {
            Ok(seconds) if REQUEST_DEADLINE_RANGE.contains(&seconds) => {
                Ok(std::time::Duration::from_secs(seconds))
            }
            _ => Err(format!(
                "{REQUEST_DEADLINE_ENV} must be a whole number of seconds from {} to {}, got {text:?}",
                REQUEST_DEADLINE_RANGE.start(),
                REQUEST_DEADLINE_RANGE.end()
            )),
        },
        _ => Ok(DEFAULT_REQUEST_DEADLINE),
    }
}

/// How long pipeline events are kept, in days (1 to 365; default 30).
pub const EVENT_RETENTION_ENV: &str = "ORCHESTRATION_EVENT_RETENTION_DAYS";

/// The events' retention from [`EVENT_RETENTION_ENV`].
pub fn event_retention_from_env() -> Result<chrono::Duration, String> {
    event_retention_from_lookup(|name| std::env::var(name).ok())
}

pub fn event_retention_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<chrono::Duration, String> {
    match lookup(EVENT_RETENTION_ENV) {
        Some(text) if !text.trim().is_empty() => match text.trim().parse::<i64>() {
            Ok(days) if (1..=365).contains(&days) => Ok(chrono::Duration::days(days)),
            _ => Err(format!(
                "{EVENT_RETENTION_ENV} must be a whole number of days from 1 to 365, got {text:?}"
            )),
        },
        _ => Ok(chrono::Duration::days(
            crate::domain::events::DEFAULT_RETENTION_DAYS,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_retention_is_1_to_365_days() {
        let of = |value: Option<&str>| {
            event_retention_from_lookup(|_| value.map(str::to_string)).map(|d| d.num_days())
        };
        assert_eq!(of(None), Ok(30));
        assert_eq!(of(Some(" ")), Ok(30));
        assert_eq!(of(Some("7")), Ok(7));
        assert!(of(Some("0")).is_err());
        assert!(of(Some("366")).is_err());
        assert!(of(Some("a week")).is_err());
    }

    #[test]
    fn request_deadline_is_bounded_by_api_gateway() {
        let with = |value: &str| {
            let value = value.to_string();
            request_deadline_from_lookup(move |_| Some(value.clone()))
        };
        assert_eq!(
            request_deadline_from_lookup(|_| None),
            Ok(DEFAULT_REQUEST_DEADLINE)
        );
        assert_eq!(with(" 12 "), Ok(std::time::Duration::from_secs(12)));
        for bad in ["4", "29", "-1", "ten", "2.5"] {
            let error = with(bad).unwrap_err();
            assert!(error.contains(REQUEST_DEADLINE_ENV), "{error}");
        }
    }
}
