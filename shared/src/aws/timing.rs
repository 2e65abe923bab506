//! Downstream timing of every AWS call: an SDK interceptor, registered on the DynamoDB and
//! Secrets Manager clients, logs one line per operation (service, operation, duration,
//! attempts, HTTP status, outcome). The line is written inside the caller's tracing span, so in
//! a request it carries the request id and the invocation's X-Ray trace id
//! (`http::observe`), and a request's trail in Logs Insights shows where its time went.
//!
//! Why log lines and not X-Ray subsegments: exporting subsegments from a Rust function needs
//! OpenTelemetry with an X-Ray exporter, which in Lambda means the ADOT collector layer (an
//! extension process, more cold-start time and memory); docs/OPERATIONS.md has the reasoning.

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// The tracing target of the timing lines (`RUST_LOG=downstream=...`).
pub const LOG_TARGET: &str = "downstream";

/// Times every operation of the client it is registered on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing;

/// When the operation started, kept in the operation's config bag between the two hooks.
#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Timing {
    fn name(&self) -> &'static str {
        "OrchestrationDownstreamTiming"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Started(started)) = cfg.load::<Started>() else {
            return Ok(());
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("unknown", "unknown"), |m| (m.service(), m.name()));
        // `dynamodb`, `secretsmanager`: one spelling with `airflow` in queries.
        let service = service.to_ascii_lowercase().replace(' ', "");
        let attempts = cfg.load::<RequestAttempts>().map_or(0, |a| a.attempts());
        let status = context.response().map_or(0, |r| r.status().as_u16());
        let ok = matches!(context.output_or_error(), Some(Ok(_)));
        tracing::info!(
            target: LOG_TARGET,
            downstream = %service,
            operation,
            duration_ms,
            attempts,
            status,
            outcome = if ok { "ok" } else { "error" },
            "downstream call"
        );
        Ok(())
    }
}
