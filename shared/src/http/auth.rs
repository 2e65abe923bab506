//! The `Caller` extractor: authenticates the bearer key, checks membership of the space named
//! by the `{slug}` path segment and meters the key's rate limit, before any handler runs.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;

use super::AppState;
use super::rate_headers::RateSlot;
use crate::auth::{self, Caller};
use crate::error::Error;

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // Two keys in one request are ambiguous; API Gateway joins repeated headers into one
        // comma-separated value, which no key matches: refuse both forms alike.
        if parts.headers.get_all(AUTHORIZATION).iter().count() > 1 {
            return Err(Error::Unauthenticated(
                "Send exactly one Authorization header",
            ));
        }
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
        let now = Utc::now();
        let access = state
            .auth
            .authenticate(&state.repo, &key, &slug, now)
            .await?;
        // Metered before the membership answer: a key pays for requests to spaces it cannot
        // see as well.
        if let Some(limiter) = &state.rate_limiter {
            let slot = parts.extensions.get::<RateSlot>().cloned();
            let outcome = limiter.check(&state.repo, access.key_id(), now).await;
            let (result, status) = match outcome {
                Ok(status) => (Ok(()), Some(status)),
                Err((error, status)) => (Err(error), status),
            };
            if let (Some(slot), Some(status)) = (slot, status) {
                slot.fill(status);
            }
            result?;
        }
        match access {
            auth::Access::Member(authenticated) => {
                // Kept for the role extractors that follow (`extract::EditorRole`).
                parts.extensions.insert(authenticated.caller.clone());
                Ok(authenticated.caller)
            }
            auth::Access::Outsider { .. } => Err(Error::NotFound("Space not found")),
        }
    }
}
