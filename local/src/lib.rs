//! The local server: every function's routes mounted in one process, exactly as each Lambda
//! serves its own group, plus the admin operations behind the `orchestration` command.

pub mod admin;
pub mod history;
pub mod server;
pub mod sync;

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use shared::api::{ErrorBody, ValidationErrorBody};
use shared::error::FieldError;
use shared::http::AppState;
use shared::http::inputs::RunTypeFilter;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use server::{ServerLimits, serve_on};

/// Where the local server publishes the OpenAPI document.
pub const OPENAPI_PATH: &str = shared::http::OPENAPI_PATH;

/// All endpoint groups in one router, plus the health route and the OpenAPI document (as
/// the pipelines function serves them), and `GET /health` for local scripts.
pub fn app(state: AppState) -> Router {
    // Generated once per process, from the same handlers as docs/openapi.json.
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(openapi_text);
    let extras = shared::http::meta_routes(document).route("/health", get(health));
    shared::http::app_with(endpoints(), extras, state)
}

/// Every group's endpoints, as each function declares them.
fn endpoints() -> OpenApiRouter<AppState> {
    pipelines_function::endpoints()
        .merge(runs_function::endpoints())
        .merge(comments_function::endpoints())
        .merge(connectors_function::endpoints())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orchestration API",
        version = "1.0.0",
        description = "Airflow DAGs, runs and task runs mirrored into platform spaces, with ownership, criticality, watches and comments. Decisions the contract leaves open: docs/API.md."
    ),
    components(schemas(ErrorBody, ValidationErrorBody, FieldError, RunTypeFilter)),
    tags(
        (name = "pipelines", description = "Pipelines (Airflow DAGs) and their platform-owned fields"),
        (name = "runs", description = "DAG runs and their task runs"),
        (name = "comments", description = "Comments on runs and task runs"),
        (name = "connectors", description = "Airflow connectors: sync on demand, sync history"),
    )
)]
struct BaseDoc;

/// The OpenAPI 3.1 document of every endpoint, from the same declarations as the routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = BaseDoc::openapi();
    doc.merge(shared::http::split(endpoints()).1);
    shared::http::openapi::complete(doc)
}

/// The document as committed in `docs/openapi.json` (pretty, with a final newline).
pub fn openapi_text() -> String {
    let mut text = openapi().to_pretty_json().expect("the document serialises");
    text.push('\n');
    text
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "store": state.repo.table().backend_name() }))
}

/// Serves the API on `addr` until Ctrl-C or SIGTERM, then drains in-flight requests, with the
/// default [`ServerLimits`] (header and body deadlines, bounded request heads).
pub async fn serve(state: AppState, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    serve_on(
        listener,
        app(state),
        ServerLimits::default(),
        shutdown_signal(),
    )
    .await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// How often the local server checks freshness and publishes the outbox (besides after each
/// sync): what the scheduled function does on AWS, for events of triggers, breaches while
/// Airflow is silent, and retries of a webhook that failed.
pub const EVENT_DELIVERY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Every [`EVENT_DELIVERY_EVERY`], for as long as the process runs: the freshness check of
/// every space with a connector, then the outbox's delivery (to the webhook given by
/// `ORCHESTRATION_EVENT_WEBHOOK_URL`; without one, the outbox is just emptied).
pub fn spawn_event_delivery(
    repo: shared::repo::Repository,
    publisher: shared::publish::SharedPublisher,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVENT_DELIVERY_EVERY);
        loop {
            every.tick().await;
            let spaces = match repo.list_all_connectors().await {
                Ok(connectors) => connectors.into_iter().map(|c| c.space_id).collect(),
                Err(error) => {
                    tracing::warn!(%error, "freshness check: could not list connectors");
                    std::collections::BTreeSet::new()
                }
            };
            let now = chrono::Utc::now();
            if let Err(error) = shared::service::freshness::check_spaces(&repo, &spaces, now).await
            {
                tracing::warn!(%error, "freshness check failed");
            }
            publisher.deliver_within(&repo, EVENT_DELIVERY_EVERY).await;
        }
    });
}
