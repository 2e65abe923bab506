//! HTTP plumbing shared by every function: state, the `Caller` extractor, parameter parsing,
//! pagination headers, error mapping and the common router shell.

mod auth;
pub mod body;
mod error;
pub mod extract;
pub mod inputs;
mod observe;
pub mod openapi;
pub mod pagination;
pub mod params;
mod rate_headers;
pub mod responses;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use utoipa_axum::router::OpenApiRouter;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::auth::rate_limit::RateLimiter;
use crate::config::AccessConfig;
use crate::repo::Repository;
use crate::secrets::SecretResolver;
use crate::service::connectors::AirflowSettings;

/// Prefix of every route of the contract.
pub const API_PREFIX: &str = "/api/v1.0/spaces/{slug}/orchestration";

/// The health route: no key, outside the spaces.
pub const HEALTH_PATH: &str = "/api/v1.0/health";
/// Where the OpenAPI document is published: no key, outside the spaces.
pub const OPENAPI_PATH: &str = "/api/v1.0/openapi.json";

/// Responses smaller than this go uncompressed: below it, compression saves too little to be
/// worth the CPU (a 404 body is 22 bytes; a page of 100 pipelines ~170 KB).
const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// Largest accepted request body (413 above it): room for a 10,000-character comment even
/// when every character is JSON-escaped.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub repo: Repository,
    /// Resolves connector secrets (Secrets Manager client created on first use).
    pub secrets: Arc<SecretResolver>,
    /// How long a request that calls Airflow (sync, trigger) may take in all: a sync stops
    /// and answers 202 by then, a trigger 504 (API Gateway cuts requests at 29 s).
    pub request_deadline: Duration,
    /// Timeouts and retries of calls to Airflow.
    pub airflow: AirflowSettings,
    /// Authentication, with its short per-process cache.
    pub auth: Arc<Authenticator>,
    /// Per-key rate limiting; `None` when turned off.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Where pipeline events found by syncs go (none unless configured).
    pub publisher: crate::publish::SharedPublisher,
}

impl AppState {
    /// State with the default authentication cache and rate limit ([`AccessConfig`]).
    pub fn new(repo: Repository) -> Self {
        Self::with_access(repo, AccessConfig::default())
    }

    pub fn with_access(repo: Repository, access: AccessConfig) -> Self {
        Self {
            repo,
            secrets: Arc::new(SecretResolver::new()),
            request_deadline: crate::config::DEFAULT_REQUEST_DEADLINE,
            airflow: AirflowSettings::default(),
            auth: Arc::new(Authenticator::new(access.auth_cache_ttl)),
            rate_limiter: access
                .rate_limit_per_minute
                .map(|limit| Arc::new(RateLimiter::new(limit))),
            publisher: Default::default(),
        }
    }

    /// Replaces the authentication cache and rate limit settings.
    pub fn set_access(&mut self, access: AccessConfig) {
        let fresh = Self::with_access(self.repo.clone(), access);
        self.auth = fresh.auth;
        self.rate_limiter = fresh.rate_limiter;
    }
}

/// A group's endpoints under [`API_PREFIX`]: the router and its part of the OpenAPI document,
/// both from the same declarations (`#[utoipa::path]` handlers collected with `routes!`).
pub fn split(endpoints: OpenApiRouter<AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .nest(API_PREFIX, endpoints)
        .split_for_parts()
}

/// Wraps a function's endpoints (paths relative to [`API_PREFIX`]) into a complete
/// application: the prefix, platform-format 404/405 answers, the body limit, request ids,
/// logs and metrics (`observe`), and gzip/br compression for clients that accept it (behind
/// API Gateway, `lambda_http` returns a compressed body base64-encoded, as API Gateway
/// requires).
pub fn app(endpoints: OpenApiRouter<AppState>, state: AppState) -> Router {
    app_with(endpoints, Router::new(), state)
}

/// [`app`] with `extra` routes at absolute paths (e.g. [`meta_routes`]), under the same layers.
pub fn app_with(
    endpoints: OpenApiRouter<AppState>,
    extra: Router<AppState>,
    state: AppState,
) -> Router {
    let (routes, _document) = split(endpoints);
    routes
        .merge(extra)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(rate_headers::rate_headers))
        .layer(axum::middleware::from_fn(observe::observe))
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .br(true)
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(COMPRESS_ABOVE_BYTES))),
        )
        .with_state(state)
}

/// `GET` [`HEALTH_PATH`] and [`OPENAPI_PATH`] (serving `openapi_json`, the document's text).
/// Health is shallow on purpose: it says the process serves, and names its store backend
/// without calling it, so a health probe never costs a table read.
pub fn meta_routes(openapi_json: &'static str) -> Router<AppState> {
    Router::new().route(HEALTH_PATH, get(health)).route(
        OPENAPI_PATH,
        get(move || async move { ([(CONTENT_TYPE, "application/json")], openapi_json) }),
    )
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({ "status": "ok", "store": state.repo.table().backend_name() }))
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "detail": "Not Found" })),
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(json!({ "detail": "Method Not Allowed" })),
    )
}

/// State for a Lambda function: DynamoDB (required) from the standard AWS environment.
pub async fn lambda_state() -> Result<AppState, String> {
    let config = crate::config::StoreConfig::dynamodb_from_env()?;
    let access = AccessConfig::from_env()?;
    let request_deadline = crate::config::request_deadline_from_env()?;
    let retention = crate::config::event_retention_from_env()?;
    let table = config.open().await.map_err(|e| e.to_string())?;
    let repo = Repository::new(table).with_event_retention(retention);
    let mut state = AppState::with_access(repo, access);
    state.request_deadline = request_deadline;
    state.publisher = crate::publish::SharedPublisher(crate::publish::from_env().await?);
    Ok(state)
}
