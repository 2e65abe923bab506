//! The scheduled (EventBridge) sync's Lambda handler: the invocation's time from the runtime's
//! deadline, then the due-connector loop ([`shared::sync::due`]), whose summary is the
//! function's response.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::repo::Repository;
use shared::secrets::SecretResolver;
use shared::sync::due::{ScheduledSyncError, Settings, Summary, run};

/// Time a run takes when the runtime's deadline cannot be trusted (see [`invocation_time`]):
/// the template's `Timeout` (300 s).
pub const FALLBACK_RUN_TIME: Duration = Duration::from_secs(300);

/// Time kept back from the Lambda deadline to record outcomes and return.
pub const MARGIN: Duration = Duration::from_secs(15);

/// Errors as the runtime reports them: the type says whether a retry can help.
#[derive(Debug)]
pub struct HandlerError(pub ScheduledSyncError);

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            // A store outage is transient: the next scheduled run retries anyway.
            error_type: "Retryable.StoreUnavailable".into(),
            error_message: error.0.to_string(),
        }
    }
}

/// One scheduled event (any JSON payload): every due connector, within the invocation's time
/// less [`MARGIN`].
pub async fn handle(
    repo: &Repository,
    secrets: &SecretResolver,
    settings: &Settings,
    event: LambdaEvent<Value>,
) -> Result<Summary, HandlerError> {
    let time = invocation_time(event.context.deadline, SystemTime::now(), FALLBACK_RUN_TIME);
    let deadline = Instant::now() + time.saturating_sub(MARGIN);
    run(repo, secrets, settings, deadline)
        .await
        .map_err(HandlerError)
}

/// Time the runtime gives one invocation, from its deadline (`Lambda-Runtime-Deadline-Ms`,
/// epoch milliseconds). A deadline that is not a plausible epoch time in the next 15 minutes
/// (Lambda's longest timeout) is not trusted: emulators send other things (cargo-lambda's
/// sends a relative 600000) and a run given no time would never sync. Then `fallback`.
pub fn invocation_time(deadline_epoch_ms: u64, now: SystemTime, fallback: Duration) -> Duration {
    const LONGEST_LAMBDA_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_epoch_ms);
    match deadline.duration_since(now) {
        Ok(left) if left <= LONGEST_LAMBDA_TIMEOUT + Duration::from_secs(5) => left,
        _ => {
            tracing::warn!(
                deadline_epoch_ms,
                fallback_seconds = fallback.as_secs(),
                "implausible invocation deadline from the runtime; using the configured run time"
            );
            fallback
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_time_trusts_only_plausible_epoch_deadlines() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now_ms = 1_800_000_000_000;
        let fallback = Duration::from_secs(300);
        assert_eq!(
            invocation_time(now_ms + 299_500, now, fallback),
            Duration::from_millis(299_500)
        );
        // cargo-lambda's emulator: a relative 600000.
        assert_eq!(invocation_time(600_000, now, fallback), fallback);
        // Already past, or further than Lambda's longest timeout.
        assert_eq!(invocation_time(now_ms - 1, now, fallback), fallback);
        assert_eq!(invocation_time(now_ms + 3_600_000, now, fallback), fallback);
    }
}
