//! Lambda entry point for the EventBridge schedule: configuration and clients once, then the
//! handler under `lambda_runtime`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use scheduled_sync_function::{ScheduledSyncError, Settings, run};
use serde_json::Value;
use shared::config::StoreConfig;
use shared::repo::Repository;
use shared::secrets::SecretResolver;

/// Time kept back from the Lambda deadline to record outcomes and return.
const MARGIN: Duration = Duration::from_secs(15);

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
    let config = StoreConfig::dynamodb_from_env()?;
    let repo = Repository::new(config.open().await?);
    let secrets = SecretResolver::new();
    let settings = Settings::default();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (repo, secrets, settings) = (&repo, &secrets, &settings);
        async move {
            let deadline = instant_of(event.context.deadline)
                .checked_sub(MARGIN)
                .unwrap_or_else(Instant::now);
            run(repo, secrets, settings, deadline)
                .await
                .map_err(HandlerError)
        }
    }))
    .await
}

/// The Lambda deadline (epoch milliseconds) as an `Instant`.
fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
