//! Lambda entry point for the EventBridge schedule: configuration and clients once, then the
//! handler under `lambda_runtime`.

/// mimalloc: see the workspace Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use lambda_runtime::{LambdaEvent, service_fn};
use scheduled_sync_function::handle;
use serde_json::Value;
use shared::config::StoreConfig;
use shared::repo::Repository;
use shared::secrets::SecretResolver;
use shared::sync::due::Settings;

/// The table named by the environment (init fails with the reason otherwise).
async fn open_store() -> Result<Repository, String> {
    let config = StoreConfig::dynamodb_from_env()?;
    let retention = shared::config::event_retention_from_env()?;
    let table = config.open().await.map_err(|e| e.to_string())?;
    Ok(Repository::new(table).with_event_retention(retention))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let repo = shared::lambda::init(open_store().await).await?;
    let secrets = SecretResolver::new();
    let publisher = shared::lambda::init(shared::publish::from_env().await).await?;
    let settings = Settings {
        publisher: shared::publish::SharedPublisher(publisher),
        ..Settings::default()
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(&repo, &secrets, &settings, event)
    }))
    .await
}
