//! Lambda entry point for the EventBridge schedule: configuration and clients once, then the
//! handler under `lambda_runtime`.

use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use scheduled_sync_function::{ScheduledSyncError, Settings, invocation_time, run};
use serde_json::Value;
use shared::config::StoreConfig;
use shared::repo::Repository;
use shared::secrets::SecretResolver;

/// Time kept back from the Lambda deadline to record outcomes and return.
const MARGIN: Duration = Duration::from_secs(15);

/// The table named by the environment (init fails with the reason otherwise).
async fn open_store() -> Result<Repository, String> {
    let config = StoreConfig::dynamodb_from_env()?;
    let table = config.open().await.map_err(|e| e.to_string())?;
    Ok(Repository::new(table))
}

/// Errors as the runtime reports them: the type says whether a retry can help.
#[derive(Debug)]
struct HandlerError(ScheduledSyncError);

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            // A store outage is transient: the next scheduled run retries anyway.
            error_type: "Retryable.StoreUnavailable".into(),
            error_message: error.0.to_string(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let repo = shared::lambda::init(open_store().await).await?;
    let secrets = SecretResolver::new();
    let settings = Settings::default();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (repo, secrets, settings) = (&repo, &secrets, &settings);
        async move {
            let time = invocation_time(
                event.context.deadline,
                SystemTime::now(),
                settings.fallback_run_time,
            );
            let deadline = Instant::now() + time.saturating_sub(MARGIN);
            run(repo, secrets, settings, deadline)
                .await
                .map_err(HandlerError)
        }
    }))
    .await
}
