//! Airflow connectors: on-demand sync and sync history (`/connectors/{connector_id}/sync`,
//! `/connectors/{connector_id}/syncs`).
//!
//! The routes land with the Airflow provider issue; until then this group serves none (every
//! path answers the platform's 404), and the router shell is in place for the local server.

use axum::Router;
use shared::http::{AppState, app};

/// This group's routes, relative to the API prefix (none yet).
pub fn routes() -> Router<AppState> {
    Router::new()
}

/// The complete application of this function.
pub fn router(state: AppState) -> Router {
    app(routes(), state)
}
