//! Completing the OpenAPI document assembled from every function's annotated handlers: the
//! bearer security scheme, the error responses every operation (or every operation with a
//! body) can give, the pagination headers of every list response and the rate-limit headers
//! of every success and 429 — added once here instead of on each handler.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::openapi::{HeaderBuilder, RefOr};

/// Responses any authenticated operation can give, with the schema of their body.
const COMMON: [(&str, &str, &str); 6] = [
    (
        "401",
        "Missing, malformed, unknown, revoked or expired API key",
        "ErrorBody",
    ),
    (
        "404",
        "Unknown space, a space the caller is not a member of, or an object that is not in the addressed space",
        "ErrorBody",
    ),
    (
        "422",
        "Invalid path or query parameter, or body",
        "ValidationErrorBody",
    ),
    (
        "429",
        "The API key is over its rate limit; retry after `Retry-After` seconds",
        "ErrorBody",
    ),
    (
        "500",
        "Internal error (details are only logged)",
        "ErrorBody",
    ),
    (
        "503",
        "The store is throttling or unavailable; retry after `Retry-After` seconds",
        "ErrorBody",
    ),
];

/// Responses of every operation that takes a body.
const BODY_ERRORS: [(&str, &str, &str); 2] = [
    ("413", "Body too large", "ErrorBody"),
    ("415", "Body is not JSON", "ErrorBody"),
];

/// Headers of every list response (see `http::pagination`).
const PAGINATION_HEADERS: [(&str, &str, Type); 5] = [
    ("X-Total-Count", "Items across all pages", Type::Integer),
    ("X-Page", "This page's number", Type::Integer),
    ("X-Page-Size", "Page size used", Type::Integer),
    ("X-Total-Pages", "Number of pages", Type::Integer),
    (
        "Link",
        "RFC 8288 links: first, prev, next, last",
        Type::String,
    ),
];

/// Headers of every response to an authenticated request (see `auth::rate_limit`).
const RATE_LIMIT_HEADERS: [(&str, &str); 3] = [
    (
        "X-RateLimit-Limit",
        "Requests the API key may make per minute",
    ),
    (
        "X-RateLimit-Remaining",
        "Requests left in the current minute",
    ),
    (
        "X-RateLimit-Reset",
        "Seconds until the current minute's window resets",
    ),
];

/// Adds the rate-limit headers to the successes and the 429 of an operation, and
/// `Retry-After` to its 429.
fn add_rate_limit_headers(operation: &mut Operation) {
    let integer = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .build()
    };
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !(status.starts_with('2') || status == "429") {
            continue;
        }
        for (name, description) in RATE_LIMIT_HEADERS {
            response.headers.entry(name.to_string()).or_insert_with(|| {
                HeaderBuilder::new()
                    .schema(integer())
                    .description(Some(description))
                    .build()
            });
        }
        if status == "429" {
            response
                .headers
                .entry("Retry-After".to_string())
                .or_insert_with(|| {
                    HeaderBuilder::new()
                        .schema(integer())
                        .description(Some("Seconds to wait before retrying"))
                        .build()
                });
        }
    }
}

/// Adds the pagination headers to a 200 response whose body is a JSON array.
fn add_pagination_headers(operation: &mut Operation) {
    let Some(RefOr::T(response)) = operation.responses.responses.get_mut("200") else {
        return;
    };
    let is_list = response
        .content
        .values()
        .any(|content| matches!(content.schema, Some(RefOr::T(Schema::Array(_)))));
    if !is_list {
        return;
    }
    for (name, description, kind) in PAGINATION_HEADERS {
        response.headers.entry(name.to_string()).or_insert_with(|| {
            let schema = match kind {
                Type::Integer => ObjectBuilder::new()
                    .schema_type(kind)
                    .minimum(Some(0))
                    .build(),
                _ => Object::with_type(kind),
            };
            HeaderBuilder::new()
                .schema(schema)
                .description(Some(description))
                .build()
        });
    }
}

fn operations(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds the security scheme, the global bearer requirement and the common error responses.
pub fn complete(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API key: `Authorization: Bearer orch_...`"))
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    for operation in operations(&mut doc) {
        add_pagination_headers(operation);
        let body_errors = if operation.request_body.is_some() {
            &BODY_ERRORS[..]
        } else {
            &[]
        };
        for &(status, description, schema) in COMMON.iter().chain(body_errors) {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| {
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(schema)))
                                .build(),
                        )
                        .build()
                        .into()
                });
        }
        add_rate_limit_headers(operation);
    }
    doc
}
