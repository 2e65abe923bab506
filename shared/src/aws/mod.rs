//! The AWS SDK configuration of the DynamoDB and Secrets Manager clients, from the standard
//! environment, checked once at start-up so that a missing setting fails the function's init
//! with its name instead of every request later; every client built on it is timed
//! ([`timing`]).

pub mod timing;

use aws_config::{BehaviorVersion, SdkConfig};

/// The shared SDK configuration. A region is required: without one every call would fail
/// with "missing signing region" (Lambda always sets `AWS_REGION`; emulators and local runs
/// may not).
pub async fn sdk_config() -> Result<SdkConfig, String> {
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    if config.region().is_none() {
        return Err(
            "no AWS region: set AWS_REGION (or a profile with a region) for the AWS SDK".into(),
        );
    }
    Ok(config)
}

/// The endpoint a service's client must use when its `AWS_ENDPOINT_URL_<SERVICE>` variable is
/// set but blank: the global `AWS_ENDPOINT_URL` if that is set, else the service's own.
/// `None` when the variable is unset or not blank (the SDK's own resolution stands).
///
/// The SAM template passes the local-testing endpoint through such a variable, empty in the
/// cloud; the SDK would take the empty value for a URL and panic at the first call.
pub fn blank_endpoint_override(
    service_variable: &str,
    config: &SdkConfig,
) -> Option<Option<String>> {
    let value = std::env::var(service_variable).ok()?;
    value.trim().is_empty().then(|| {
        config
            .endpoint_url()
            .filter(|global| !global.trim().is_empty())
            .map(str::to_string)
    })
}

/// The Secrets Manager client of the connector secrets: `config`, the blank-endpoint rule, and
/// the downstream timing of every call.
pub fn secrets_manager_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let mut builder = aws_sdk_secretsmanager::config::Builder::from(config);
    if let Some(endpoint) = blank_endpoint_override("AWS_ENDPOINT_URL_SECRETS_MANAGER", config) {
        builder.set_endpoint_url(endpoint);
    }
    builder.push_interceptor(aws_sdk_secretsmanager::config::SharedInterceptor::new(
        timing::Timing,
    ));
    aws_sdk_secretsmanager::Client::from_conf(builder.build())
}
