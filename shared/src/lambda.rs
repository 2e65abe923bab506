//! The init phase of every Lambda function: a configuration error is reported to the Lambda
//! Runtime API (`/runtime/init/error`) before the process exits, as AWS expects of a custom
//! runtime. Without the report, Lambda (and emulators) only see a process that died, and the
//! invocation waiting on it hangs until its timeout instead of failing with the reason.

use std::time::Duration;

use serde_json::json;

/// Set by Lambda (and emulators) to the Runtime API's `host:port`.
const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";
/// `errorType` of a configuration error, the form Lambda shows (`Runtime.<Reason>`).
const INIT_ERROR_TYPE: &str = "Runtime.ConfigError";

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
