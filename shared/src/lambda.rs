//! The init phase of every Lambda function: its logging ([`init_tracing`]), and a
//! configuration error reported to the Lambda Runtime API (`/runtime/init/error`) before the
//! process exits, as AWS expects of a custom runtime. Without the report, Lambda (and
//! emulators) only see a process that died, and the invocation waiting on it hangs until its
//! timeout instead of failing with the reason.

use std::time::Duration;

use serde_json::json;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Set by Lambda (and emulators) to the Runtime API's `host:port`.
const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";
/// `errorType` of a configuration error, the form Lambda shows (`Runtime.<Reason>`).
const INIT_ERROR_TYPE: &str = "Runtime.ConfigError";

/// The functions' tracing subscriber: `lambda_runtime`'s default (the level from
/// `AWS_LAMBDA_LOG_LEVEL`, which Lambda sets from `ApplicationLogLevel`, else `RUST_LOG`, else
/// INFO; `RUST_LOG`'s directives; JSON lines when `AWS_LAMBDA_LOG_FORMAT` is JSON) with one
/// difference: JSON lines carry an RFC 3339 `timestamp`. Lambda's log-level filtering gives a
/// JSON line without a valid timestamp the level INFO whatever its `level` says, so without
/// one an ERROR line would be dropped at `ApplicationLogLevel` ERROR
/// (docs/OPERATIONS.md, "Metrics and the log level").
pub fn init_tracing() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        json_subscriber(std::io::stdout, env_filter()).init();
    } else {
        // Lambda's text format adds the time itself.
        tracing_subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_env_filter(env_filter())
            .init();
    }
}

/// The JSON subscriber of [`init_tracing`], writing to `writer` (tests capture with it).
pub fn json_subscriber<W>(writer: W, filter: EnvFilter) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

fn env_filter() -> EnvFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let level = level
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
}

/// `result` as is; an error is logged and reported to the Runtime API first, and comes back
/// for `main` to return (the process then exits non-zero).
pub async fn init<T>(result: Result<T, String>) -> Result<T, String> {
    if let Err(message) = &result {
        tracing::error!(error = %message, "function initialisation failed");
        report_init_error(message).await;
    }
    result
}

/// Lambda sets the Runtime API as `host:port`; emulators may give a URL with a path
/// (cargo-lambda: `http://127.0.0.1:9000/.rt/<function>`), as `lambda_runtime` accepts.
fn init_error_url(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api.starts_with("http://") || api.starts_with("https://") {
        format!("{api}/2018-06-01/runtime/init/error")
    } else {
        format!("http://{api}/2018-06-01/runtime/init/error")
    }
}

/// `POST /2018-06-01/runtime/init/error` with the message. Reporting is best effort: a
/// failure to report is logged, the process exits anyway.
async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var(RUNTIME_API_ENV) else {
        return;
    };
    let url = init_error_url(&api);
    let body = json!({ "errorMessage": message, "errorType": INIT_ERROR_TYPE, "stackTrace": [] });
    let sent = reqwest::Client::new()
        .post(&url)
        .timeout(Duration::from_secs(2))
        .header("Lambda-Runtime-Function-Error-Type", INIT_ERROR_TYPE)
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => {}
        Ok(answer) => {
            tracing::error!(
                status = answer.status().as_u16(),
                "the Runtime API refused the init error report"
            );
        }
        Err(error) => tracing::error!(%error, "could not report the init error to the Runtime API"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_api_as_lambda_or_an_emulator_gives_it() {
        assert_eq!(
            init_error_url("127.0.0.1:9001"),
            "http://127.0.0.1:9001/2018-06-01/runtime/init/error"
        );
        assert_eq!(
            init_error_url("http://127.0.0.1:9000/.rt/pipelines/"),
            "http://127.0.0.1:9000/.rt/pipelines/2018-06-01/runtime/init/error"
        );
    }
}
