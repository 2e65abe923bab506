//! Every input the API takes, declared once: path, query and body structs that are both the
//! OpenAPI document's parameters and schemas and what the extractors (`http::extract`)
//! parse. A field's name is the parameter's name; its type decides how it is read
//! (`http::params::QueryField`, `PathValue`) and what the document says about it.

use axum::extract::FromRequestParts;
use axum::http::header::IF_MATCH;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use super::body::Fields;
use super::extract::FromBody;
use super::params::{
    LARGE_PAGES, MAX_PAGE, MAX_PAGE_SIZE, PageDefaults, QueryField, QueryParams, QueryValue,
    STANDARD_PAGES, path_params, query_params,
};
use crate::domain::events::EventType;
use crate::domain::model::{
    Criticality, PipelineStatus, Provider, RUN_TYPES, RunStatus, normalize_comment,
};
use crate::error::{Error, Result};
use crate::service::PageRequest;
use crate::service::pipelines::{DEFAULT_DAYS, MAX_DAYS};
use crate::service::runs::RunFilter;
use crate::service::trigger::MAX_IDEMPOTENCY_KEY_LEN;

// ---------------------------------------------------------------------------------------
// Path parameters

path_params! {
    /// `{slug}` and `{pipeline_id}`.
    pub struct PipelinePath {
        /// The space's slug
        pub slug: String,
        /// The pipeline's id
        pub pipeline_id: Uuid,
    }
}

path_params! {
    /// `{slug}` and `{run_id}`.
    pub struct RunPath {
        /// The space's slug
        pub slug: String,
        /// The run's id
        pub run_id: Uuid,
    }
}

path_params! {
    /// `{slug}` and `{task_run_id}`.
    pub struct TaskRunPath {
        /// The space's slug
        pub slug: String,
        /// The task run's id
        pub task_run_id: Uuid,
    }
}

path_params! {
    /// `{slug}` and `{comment_id}`.
    pub struct CommentPath {
        /// The space's slug
        pub slug: String,
        /// The comment's id
        pub comment_id: Uuid,
    }
}

path_params! {
    /// `{slug}` and `{connector_id}`.
    pub struct ConnectorPath {
        /// The space's slug
        pub slug: String,
        /// The connector's id
        pub connector_id: Uuid,
    }
}

path_params! {
    /// `{slug}` alone.
    pub struct SpacePath {
        /// The space's slug
        pub slug: String,
    }
}

// ---------------------------------------------------------------------------------------
// Query value types with defaults and bounds (the document's come from the same constants)

fn int32(default: u32, minimum: u32, maximum: u32) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .default(Some(json!(default)))
        .maximum(Some(maximum))
        .minimum(Some(minimum))
        .into()
}

/// A summary window in days: 1 to [`MAX_DAYS`], [`DEFAULT_DAYS`] when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub u32);

impl PartialSchema for Days {
    fn schema() -> RefOr<Schema> {
        int32(DEFAULT_DAYS, 1, MAX_DAYS)
    }
}

impl ToSchema for Days {}

impl QueryField for Days {
    fn read(params: &mut QueryParams, name: &str) -> Self {
        let days = params.integer(name, 1, Some(i64::from(MAX_DAYS)));
        Self(days.map_or(DEFAULT_DAYS, |days| days as u32))
    }
}

/// A page number: from 1 (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageNumber(pub u32);

impl PartialSchema for PageNumber {
    fn schema() -> RefOr<Schema> {
        int32(1, 1, MAX_PAGE)
    }
}

impl ToSchema for PageNumber {}

impl QueryField for PageNumber {
    fn read(params: &mut QueryParams, name: &str) -> Self {
        Self(params.page_number(name))
    }
}

/// A page size of a list whose default and maximum are `DEFAULT` and `MAX`: any `int32` from
/// 1 is accepted, and a size above the maximum is capped to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize<const DEFAULT: u32, const MAX: u32>(pub u32);

impl<const DEFAULT: u32, const MAX: u32> PartialSchema for PageSize<DEFAULT, MAX> {
    fn schema() -> RefOr<Schema> {
        int32(DEFAULT, 1, MAX_PAGE_SIZE)
    }
}

impl<const DEFAULT: u32, const MAX: u32> ToSchema for PageSize<DEFAULT, MAX> {}

impl<const DEFAULT: u32, const MAX: u32> PageSize<DEFAULT, MAX> {
    /// The page requested with this size.
    pub fn page(self, number: PageNumber) -> PageRequest {
        PageRequest {
            page: number.0,
            size: self.0,
        }
    }
}

impl<const DEFAULT: u32, const MAX: u32> QueryField for PageSize<DEFAULT, MAX> {
    fn read(params: &mut QueryParams, name: &str) -> Self {
        let defaults = PageDefaults {
            size: DEFAULT,
            max: MAX,
        };
        Self(params.page_size(name, defaults))
    }
}

/// Page sizes of pipelines and runs (default 100, at most 1,000).
pub type LargePageSize = PageSize<{ LARGE_PAGES.size }, { LARGE_PAGES.max }>;
/// Page sizes of comments and sync records (default 20, at most 100).
pub type StandardPageSize = PageSize<{ STANDARD_PAGES.size }, { STANDARD_PAGES.max }>;

/// What the `run_type` filter accepts: any lower-case identifier, as Airflow names run types.
pub const RUN_TYPE_PATTERN: &str = "^[a-z][a-z0-9_]{0,63}$";

/// Longest run type the filter accepts (the pattern's bound).
pub const MAX_RUN_TYPE_LEN: usize = 64;

/// The `run_type` filter: Airflow's run type, lower case. The known ones (`manual`,
/// `scheduled`, `backfill`, `asset_triggered`, `asset_materialization`,
/// `operator_triggered`) are examples, not a closed list: any lower-case identifier is
/// accepted, so run types of newer Airflow releases can be filtered on as soon as the sync
/// stores them. Airflow 2's `dataset_triggered` means `asset_triggered` (as stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunTypeFilter(pub String);

impl PartialSchema for RunTypeFilter {
    fn schema() -> RefOr<Schema> {
        let mut examples: Vec<Value> = RUN_TYPES.iter().map(|t| Value::from(*t)).collect();
        examples.push(Value::from("dataset_triggered"));
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Airflow's run type, lower case. Known values are the examples; any lower-case \
                 identifier matching the pattern is accepted (run types of newer Airflow \
                 releases), and Airflow 2's `dataset_triggered` means `asset_triggered`.",
            ))
            .pattern(Some(RUN_TYPE_PATTERN))
            .min_length(Some(1))
            .max_length(Some(MAX_RUN_TYPE_LEN))
            .examples(examples)
            .into()
    }
}

impl ToSchema for RunTypeFilter {}

impl QueryValue for RunTypeFilter {
    fn read_value(params: &mut QueryParams, name: &str) -> Option<Self> {
        params.run_type(name).map(Self)
    }
}

// ---------------------------------------------------------------------------------------
// Query parameters

query_params! {
    /// Query parameters of `GET /pipelines`.
    pub struct PipelineListParams {
        pub provider: Option<Provider>,
        /// The pipeline's status (its latest run's, or `unknown`).
        pub status: Option<PipelineStatus>,
        /// Equal (case-insensitively) to one of the pipeline's owners.
        #[param(max_length = 200)]
        pub owner: Option<String>,
        pub criticality: Option<Criticality>,
        pub team_id: Option<Uuid>,
        pub connector_id: Option<Uuid>,
        /// Case-insensitive text search over name, DAG id, description, owners and tags.
        #[param(max_length = 200)]
        pub q: Option<String>,
        /// Only pipelines the caller watches.
        #[param(default = false, required = false)]
        pub watched_only: bool,
        /// Summary window in days.
        #[param(inline, required = false)]
        pub days: Days,
        /// Page number, from 1.
        #[param(inline, required = false)]
        pub page: PageNumber,
        /// Page size. Any `int32` from 1 is accepted; values above 1000 (the list's maximum)
        /// are capped to 1000, not rejected, and `X-Page-Size` gives the size used.
        #[param(inline, required = false)]
        pub size: LargePageSize,
    }
}

query_params! {
    /// Query parameters of `GET /events`.
    pub struct EventListParams {
        /// Only this pipeline's events.
        pub pipeline_id: Option<Uuid>,
        /// Only events of this type.
        #[param(rename = "type")]
        pub r#type: Option<EventType>,
        /// Only events of pipelines the caller watches.
        #[param(default = false, required = false)]
        pub watched_only: bool,
        /// Events detected at or after this time (RFC 3339, or a date meaning its start in UTC).
        pub since: Option<DateTime<Utc>>,
        /// Page number, from 1.
        #[param(inline, required = false)]
        pub page: PageNumber,
        /// Page size. Any `int32` from 1 is accepted; values above 100 (the list's maximum)
        /// are capped to 100, not rejected, and `X-Page-Size` gives the size used.
        #[param(inline, required = false)]
        pub size: StandardPageSize,
    }
}

query_params! {
    /// Query parameters of `GET /pipelines/{pipeline_id}`.
    pub struct PipelineDetailParams {
        /// Summary window in days.
        #[param(inline, required = false)]
        pub days: Days,
    }
}

query_params! {
    /// Query parameters of `GET /pipelines/{pipeline_id}/runs`.
    pub struct RunListParams {
        /// Runs that started at or after this time (RFC 3339, or a date meaning its start in UTC).
        pub started_from: Option<DateTime<Utc>>,
        /// Runs that started at or before this time.
        pub started_to: Option<DateTime<Utc>>,
        pub status: Option<RunStatus>,
        pub run_type: Option<RunTypeFilter>,
        /// Page number, from 1.
        #[param(inline, required = false)]
        pub page: PageNumber,
        /// Page size. Any `int32` from 1 is accepted; values above 1000 (the list's maximum)
        /// are capped to 1000, not rejected, and `X-Page-Size` gives the size used.
        #[param(inline, required = false)]
        pub size: LargePageSize,
    }
    check = RunListParams::check_window;
}

impl RunListParams {
    fn check_window(&self, params: &mut QueryParams) {
        if let (Some(from), Some(to)) = (self.started_from, self.started_to)
            && from > to
        {
            params.reject(
                "started_to",
                "started_to must not be before started_from",
                "value_error",
            );
        }
    }

    /// The filter these parameters select.
    pub fn filter(&self) -> RunFilter {
        RunFilter {
            started_from: self.started_from,
            started_to: self.started_to,
            status: self.status,
            run_type: self.run_type.as_ref().map(|t| t.0.clone()),
        }
    }
}

query_params! {
    /// Pagination of comment lists.
    pub struct CommentListParams {
        /// Page number, from 1.
        #[param(inline, required = false)]
        pub page: PageNumber,
        /// Page size. Any `int32` from 1 is accepted; values above 100 (the list's maximum)
        /// are capped to 100, not rejected, and `X-Page-Size` gives the size used.
        #[param(inline, required = false)]
        pub size: StandardPageSize,
    }
}

query_params! {
    /// Query parameters of `GET /connectors/{connector_id}/syncs`.
    pub struct SyncListParams {
        /// Page number, from 1.
        #[param(inline, required = false)]
        pub page: PageNumber,
        /// Page size. Any `int32` from 1 is accepted; values above 100 (the list's maximum)
        /// are capped to 100, not rejected, and `X-Page-Size` gives the size used.
        #[param(inline, required = false)]
        pub size: StandardPageSize,
    }
}

// ---------------------------------------------------------------------------------------
// Bodies (their schemas are components of the document; `from_fields` reads the same names)

/// Body of `PATCH /pipelines/{pipeline_id}/team`: a team of the space, or `null` to clear.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamUpdate {
    #[schema(required = true)]
    pub team_id: Option<Uuid>,
}

impl FromBody for TeamUpdate {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let team_id = fields.nullable_uuid("team_id")?;
        Some(Self { team_id })
    }
}

/// Body of `PATCH /pipelines/{pipeline_id}/criticality`: a level, or `null` to clear.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CriticalityUpdate {
    #[schema(required = true)]
    pub criticality: Option<Criticality>,
}

impl FromBody for CriticalityUpdate {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let criticality =
            fields.nullable_choice("criticality", &Criticality::ALL, Criticality::as_str)?;
        Some(Self { criticality })
    }
}

/// Body of `PATCH /pipelines/{pipeline_id}/freshness`: the expected interval between
/// successful runs in seconds (60 to 31,622,400), or `null` to derive it from the schedule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreshnessUpdate {
    #[schema(required = true, minimum = 60, maximum = 31622400)]
    pub expected_interval_seconds: Option<u64>,
}

impl FromBody for FreshnessUpdate {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        use crate::domain::freshness::{MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS};
        let expected_interval_seconds = fields.nullable_integer(
            "expected_interval_seconds",
            MIN_INTERVAL_SECONDS,
            MAX_INTERVAL_SECONDS,
        )?;
        Some(Self {
            expected_interval_seconds,
        })
    }
}

/// Body of comment creation and edits: markdown text, trimmed, 1 to 10,000 characters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    #[schema(min_length = 1, max_length = 10000)]
    pub content: String,
}

impl FromBody for CommentBody {
    /// The content is normalized (trimmed) here; too short or too long is a 422 on it.
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let raw = fields.string("content")?;
        match normalize_comment(&raw) {
            Ok(content) => Some(Self { content }),
            Err(msg) => {
                let kind = if raw.trim().is_empty() {
                    "string_too_short"
                } else {
                    "string_too_long"
                };
                fields.reject("content", msg, kind);
                None
            }
        }
    }
}

/// Body of `POST /pipelines/{pipeline_id}/trigger` (optional, as is every field).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// The run's `conf` in Airflow.
    #[schema(value_type = Option<Object>)]
    pub conf: Option<Map<String, Value>>,
    /// The run's logical date; null or absent lets Airflow choose.
    pub logical_date: Option<DateTime<Utc>>,
    /// A note on the run, shown in Airflow.
    pub note: Option<String>,
}

impl FromBody for TriggerBody {
    const REQUIRED: bool = false;

    fn from_fields(fields: &mut Fields) -> Option<Self> {
        Some(Self {
            conf: fields.optional_object("conf"),
            logical_date: fields.optional_datetime("logical_date"),
            note: fields.optional_string("note"),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Headers

/// The trigger's `Idempotency-Key` header: 1 to 255 visible ASCII characters, if present.
#[derive(Debug)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        match value.to_str().map(str::trim) {
            Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
                Ok(Self(Some(key.to_string())))
            }
            _ => Err(Error::validation(
                &["header", "idempotency-key"],
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
                ),
                "value_error",
            )),
        }
    }
}

/// The `If-Match` header of comment edits and deletes, if present.
#[derive(Debug)]
pub struct IfMatch(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        parts
            .headers
            .get(IF_MATCH)
            .map(|value| {
                value.to_str().map(str::to_string).map_err(|_| {
                    Error::validation(
                        &["header", "if-match"],
                        "Invalid If-Match header",
                        "value_error",
                    )
                })
            })
            .transpose()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    //! The document and the parser cannot drift: every parameter and body property the
    //! document declares is one the parser reads (and reports errors for, by that name).

    use std::collections::BTreeSet;

    use serde_json::json;
    use utoipa::IntoParams;
    use utoipa::openapi::path::ParameterIn;

    use super::*;
    use crate::http::extract::FromQuery;
    use crate::http::params::MAX_PARAM_LEN;

    fn error_names(result: Result<()>) -> BTreeSet<String> {
        let Err(Error::Validation(errors)) = result else {
            panic!("expected validation errors, got {result:?}");
        };
        errors.iter().map(|e| e.loc[1].clone()).collect()
    }

    /// Every documented query parameter, given a value longer than any parameter may be, is
    /// read and rejected by its own name.
    fn check_query<T: FromQuery + IntoParams>() {
        let documented: BTreeSet<String> = T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(!documented.is_empty());
        let too_long = "x".repeat(MAX_PARAM_LEN + 1);
        let query: Vec<String> = documented
            .iter()
            .map(|n| format!("{n}={too_long}"))
            .collect();
        let mut params = QueryParams::parse(Some(&query.join("&")));
        let _ = T::from_query(&mut params);
        assert_eq!(error_names(params.finish()), documented);
    }

    #[test]
    fn every_documented_query_parameter_is_parsed() {
        check_query::<PipelineListParams>();
        check_query::<PipelineDetailParams>();
        check_query::<RunListParams>();
        check_query::<CommentListParams>();
        check_query::<SyncListParams>();
    }

    /// Every property of a body's schema, given a value of no accepted type, is read and
    /// rejected by its own name.
    fn check_body<T: FromBody + ToSchema>() {
        let RefOr::T(Schema::Object(schema)) = T::schema() else {
            panic!("{} is an object schema", T::name());
        };
        let documented: BTreeSet<String> = schema.properties.keys().cloned().collect();
        assert!(!documented.is_empty());
        let body: Map<String, Value> = documented.iter().map(|n| (n.clone(), json!([1]))).collect();
        let mut fields = Fields::new(body);
        let _ = T::from_fields(&mut fields);
        assert_eq!(error_names(fields.finish()), documented, "{}", T::name());
    }

    #[test]
    fn every_documented_body_property_is_parsed() {
        check_body::<TeamUpdate>();
        check_body::<CriticalityUpdate>();
        check_body::<FreshnessUpdate>();
        check_body::<CommentBody>();
        check_body::<TriggerBody>();
    }

    #[test]
    fn defaults_and_bounds_come_from_the_parser_constants() {
        let mut params = QueryParams::parse(None);
        let parsed = PipelineListParams::from_query(&mut params);
        assert!(params.finish().is_ok());
        assert_eq!(parsed.days, Days(DEFAULT_DAYS));
        assert_eq!(
            parsed.size.page(parsed.page),
            PageRequest { page: 1, size: 100 }
        );
        let mut params = QueryParams::parse(Some("size=5000&days=91"));
        let parsed = CommentListParams::from_query(&mut params);
        assert_eq!(parsed.size, PageSize(100), "capped to the standard maximum");
        let _ = PipelineDetailParams::from_query(&mut params);
        assert_eq!(
            error_names(params.finish()),
            BTreeSet::from(["days".to_string()])
        );
    }
}
