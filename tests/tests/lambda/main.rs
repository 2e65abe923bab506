//! The deployed form: API Gateway events through lambda_http, the function binaries under the Runtime API emulator, IAM policies against the calls, template routes, the operations resources (alarms, dashboard) and the metrics and timing lines they rely on.
//!
//! One test binary per area (linking each test file separately costs minutes on 2 cores).

mod downstream_timing;
mod iam_policies;
mod lambda_events;
mod lambda_runtime_init;
mod lambda_runtime_loop;
mod operations_template;
mod telemetry_emf;
mod template_routes;
