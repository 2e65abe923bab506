//! Test harness: fresh stores per test on both backends, and the whole API served on loopback.
//!
//! The DynamoDB backend needs a DynamoDB-compatible server; `scripts/test` starts moto on
//! loopback and exports `AWS_ENDPOINT_URL_DYNAMODB`. Without it the DynamoDB tests fail with a
//! message saying so: they never skip.

use std::sync::Arc;

use shared::store::Table;
use shared::store::dynamo::DynamoTable;
use shared::store::embedded::EmbeddedTable;

pub mod api_gateway;
pub mod app;
pub mod aws_recorder;
pub mod exposure;
pub mod fake_airflow;
pub mod fault_proxy;
pub mod iam;
pub mod lambda_emulator;
pub mod mirror;
pub mod sam_template;
pub mod serial_proxy;
pub mod server_process;

/// The two storage backends every repository and HTTP test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    DynamoDb,
}

/// A fresh, empty table. Keep the returned guard alive for the test's duration.
pub struct TestTable {
    pub table: Arc<dyn Table>,
    _dir: Option<tempfile::TempDir>,
}

impl TestTable {
    pub async fn new(backend: Backend) -> Self {
        exposure::init();
        match backend {
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("temp dir");
                let table = EmbeddedTable::open(&dir.path().join("test.redb"))
                    .expect("open embedded store");
                Self {
                    table: Arc::new(table),
                    _dir: Some(dir),
                }
            }
            Backend::DynamoDb => {
                let table = dynamo_table().await;
                Self {
                    table: Arc::new(table),
                    _dir: None,
                }
            }
        }
    }
}

/// A new table with a unique name on the local DynamoDB-compatible server.
pub async fn dynamo_table() -> DynamoTable {
    exposure::init();
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "DynamoDB tests need a local DynamoDB-compatible server: run them through scripts/test \
         (it starts moto and sets AWS_ENDPOINT_URL_DYNAMODB), got {endpoint:?}"
    );
    // Credentials and region are required by the SDK even against a local server.
    for (name, value) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ] {
        assert!(
            std::env::var(name).is_ok(),
            "{name} must be set for the DynamoDB tests (scripts/test sets {name}={value})"
        );
    }
    let name = format!("test-{}", uuid::Uuid::new_v4());
    let table = DynamoTable::from_env(name)
        .await
        .expect("AWS SDK configuration");
    table.create_table().await.expect("create test table");
    table
}

/// Declares one test per backend from an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Embedded).await;
                }
            )+
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::DynamoDb).await;
                }
            )+
        }
    };
}
