//! Completing the OpenAPI document assembled from every function's annotated handlers: the
//! bearer security scheme, the error responses every operation (or every operation with a
//! body) can give, the pagination headers of every list response and the rate-limit headers
//! of every success and 429 — added once here instead of on each handler. It also states what
//! the annotations cannot: the servers, every response field as required (absent values are
//! `null`, never missing keys), and an optional body as `required: false` with the object's
//! schema (not `oneOf: [null, ...]`, which client generators mishandle).

use std::collections::BTreeSet;

use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::{ServerBuilder, ServerVariableBuilder};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, Required, ResponseBuilder};
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
        "When the current window resets, in Unix seconds",
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

/// The deployed API (the stack's `ApiUrl` output) and the local server.
fn add_servers(doc: &mut OpenApi) {
    doc.servers = Some(vec![
        ServerBuilder::new()
            .url("https://{api_id}.execute-api.{region}.amazonaws.com")
            .description(Some(
                "The deployed API: the stack's `ApiUrl` output (API Gateway HTTP API, default stage)",
            ))
            .parameter(
                "api_id",
                ServerVariableBuilder::new()
                    .default_value("api-id")
                    .description(Some("The HTTP API's id")),
            )
            .parameter(
                "region",
                ServerVariableBuilder::new()
                    .default_value("us-east-1")
                    .description(Some("The AWS region of the stack")),
            )
            .build(),
        ServerBuilder::new()
            .url("http://127.0.0.1:3000")
            .description(Some("The local server (`scripts/server`, `orchestration serve`)"))
            .build(),
    ]);
}

/// An optional body declared `oneOf: [null, X]` (utoipa's rendering of `Option<X>`) becomes
/// `X` with `required: false`: generated clients then send no body when given none, and
/// JSON `null` (which the server also reads as no body) stays out of the contract.
fn declare_optional_body(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    let mut optional = false;
    for content in body.content.values_mut() {
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let is_null = |item: &RefOr<Schema>| {
            serde_json::to_value(item).is_ok_and(|v| v == serde_json::json!({"type": "null"}))
        };
        if let [a, b] = one_of.items.as_slice()
            && let Some(schema) = match (is_null(a), is_null(b)) {
                (true, false) => Some(b.clone()),
                (false, true) => Some(a.clone()),
                _ => None,
            }
        {
            content.schema = Some(schema);
            optional = true;
        }
    }
    if optional {
        body.required = Some(Required::False);
    }
}

/// Every `$ref`'d component name inside a JSON value.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref")
                && let Some(name) = target.strip_prefix("#/components/schemas/")
            {
                found.push(name.to_string());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// Lists every property of an object schema (and of each `allOf` part) in `required`.
fn require_every_property(schema: &mut Schema) {
    match schema {
        Schema::Object(object) => {
            for name in object.properties.keys() {
                if !object.required.contains(name) {
                    object.required.push(name.clone());
                }
            }
        }
        Schema::AllOf(all_of) => {
            for item in all_of.items.iter_mut() {
                if let RefOr::T(part) = item {
                    require_every_property(part);
                }
            }
        }
        _ => {}
    }
}

/// Response bodies always carry every field (absent values are `null`): each object schema a
/// response reaches lists all its properties as required, so generated clients read nullable
/// fields as `T | None`, not as possibly missing.
fn require_response_fields(doc: &mut OpenApi) {
    let mut pending = Vec::new();
    for operation in operations(doc) {
        for response in operation.responses.responses.values() {
            if let Ok(value) = serde_json::to_value(response) {
                refs(&value, &mut pending);
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(RefOr::T(schema)) = components.schemas.get_mut(&name) {
            require_every_property(schema);
            if let Ok(value) = serde_json::to_value(&*schema) {
                refs(&value, &mut pending);
            }
        }
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
    add_servers(&mut doc);
    for operation in operations(&mut doc) {
        declare_optional_body(operation);
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
    require_response_fields(&mut doc);
    doc
}
