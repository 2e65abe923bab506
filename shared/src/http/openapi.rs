//! Completing the OpenAPI document assembled from every function's annotated handlers: the
//! bearer security scheme, the error responses every operation (or every operation with a
//! body) can give, and the pagination
//! headers of every list response — added once here instead of on each handler.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::openapi::{HeaderBuilder, RefOr};

/// Responses any authenticated operation can give, with the schema of their body.
const COMMON: [(&str, &str, &str); 5] = [
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
    }
    doc
}
