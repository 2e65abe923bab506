//! The `Caller` extractor: authenticates the bearer key and checks membership of the space
//! named by the `{slug}` path segment, before any handler runs.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;

use super::AppState;
use crate::auth::{self, Caller};
use crate::error::Error;

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| Error::Unauthenticated("Invalid API key"))
            })
            .transpose()?;
        let key = auth::bearer_token(header)?.to_string();
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::internal(format!("no path parameters: {e}")))?;
        let slug = params
            .iter()
            .find(|(name, _)| *name == "slug")
            .map(|(_, value)| value.to_string())
            .ok_or_else(|| Error::internal("route has no {slug} segment"))?;
        auth::authenticate(&state.repo, &key, &slug, Utc::now()).await
    }
}
