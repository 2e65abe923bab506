//! The local server: every function's routes mounted in one process, exactly as each Lambda
//! serves its own group, plus the admin operations behind the `orchestration` command.

pub mod admin;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use axum::Json;
use serde_json::{Value, json};
use shared::http::AppState;

/// All endpoint groups in one router, plus `GET /health`.
pub fn app(state: AppState) -> Router {
    let routes = pipelines_function::routes()
        .merge(runs_function::routes())
        .merge(comments_function::routes())
        .merge(connectors_function::routes());
    let health = Router::new().route("/health", get(health)).with_state(state.clone());
    shared::http::app(routes, state).merge(health)
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "store": state.repo.table().backend_name() }))
}

/// Serves the API on `addr` until Ctrl-C or SIGTERM, then drains in-flight requests.
pub async fn serve(state: AppState, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
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
