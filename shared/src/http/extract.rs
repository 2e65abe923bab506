//! The extractors of typed inputs: `Path<T>`, `Query<T>` and `Body<T>` parse the structs
//! declared in `http::inputs` (the same structs the OpenAPI document describes), and answer
//! the platform's 422 with every error found, never a default for a malformed value.
//!
//! Axum runs extractors in argument order, the body last. Handlers therefore list them as
//! `Caller` (401, 404, 429), `Path` (422), a role check such as [`EditorRole`] (403), then
//! `Query` or `Body` (422): a viewer learns nothing about a body from validation errors.

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;

use super::AppState;
use super::body::{Fields, JsonBody};
use super::params::{PathValue, QueryParams};
use crate::auth::Caller;
use crate::domain::model::Role;
use crate::error::{Error, Result};

/// A struct of query parameters (declared with `query_params!`).
pub trait FromQuery: Sized {
    /// Reads every field; errors are recorded in `params`, which the extractor then checks.
    fn from_query(params: &mut QueryParams) -> Self;
}

/// The request's query string parsed into `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: FromQuery> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let mut params = QueryParams::parse(parts.uri.query());
        let value = T::from_query(&mut params);
        params.finish()?;
        Ok(Self(value))
    }
}

/// The matched route's path segments, by name.
pub struct PathSegments(Vec<(String, String)>);

impl PathSegments {
    /// The `{name}` segment parsed as `T` (422 with the segment's `loc` when malformed).
    pub fn parse<T: PathValue>(&self, name: &str) -> Result<T> {
        let raw = self
            .0
            .iter()
            .find(|(segment, _)| segment == name)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| Error::internal(format!("route has no {{{name}}} segment")))?;
        T::parse(raw, name)
    }
}

/// A struct of path parameters (declared with `path_params!`).
pub trait FromPath: Sized {
    fn from_path(segments: &PathSegments) -> Result<Self>;
}

/// The route's path parameters parsed into `T`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: FromPath> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                Error::validation(
                    &["path"],
                    "Path parameters must be valid UTF-8",
                    "value_error",
                )
            })?;
        let segments = PathSegments(
            raw.iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        );
        T::from_path(&segments).map(Self)
    }
}

/// A JSON body object read into `T`, field by field (every error at once, unknown fields
/// rejected).
pub trait FromBody: Sized {
    /// Whether the request must have a body; without one, an optional body reads as `{}`.
    const REQUIRED: bool = true;

    /// Reads every field; `None` when an error was recorded in `fields`.
    fn from_fields(fields: &mut Fields) -> Option<Self>;
}

/// The request body parsed into `T` (413, 415, or 422 in the platform's format).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: FromBody> FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let json = JsonBody::from_request(request, state).await?;
        let mut fields = if T::REQUIRED {
            json.required()?
        } else {
            json.optional()
        };
        let value = T::from_fields(&mut fields);
        fields.finish_with(value).map(Self)
    }
}

/// Requires the authenticated caller (extracted before it) to be an editor or an admin of
/// the space: 403 otherwise.
#[derive(Debug)]
pub struct EditorRole;

impl FromRequestParts<AppState> for EditorRole {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .ok_or_else(|| Error::internal("EditorRole extracted before Caller"))?;
        caller.require(Role::Editor)?;
        Ok(Self)
    }
}
