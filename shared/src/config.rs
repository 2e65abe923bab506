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
            StoreConfig::DynamoDb { table } => Arc::new(DynamoTable::from_env(table.clone()).await),
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
