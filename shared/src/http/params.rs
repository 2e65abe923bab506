//! Query-string and path parameter parsing with the platform's 422 error format.
//!
//! Every malformed value is reported (all of them at once, each with its `loc`), never ignored
//! or replaced by a default. Unknown parameters are ignored, as the platform's other APIs do.
//!
//! Endpoints do not call this parser by parameter name: they declare a struct with
//! [`query_params!`](crate::http::inputs) or `path_params!`, whose fields are both the
//! parameters of the OpenAPI document (`IntoParams`) and what is parsed, each by its type's
//! [`QueryField`] or [`PathValue`] reader.

use std::num::IntErrorKind;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::http::inputs::{MAX_RUN_TYPE_LEN, RUN_TYPE_PATTERN};
use crate::service::PageRequest;

/// Longest accepted value of any query parameter (`q` included), in characters.
pub const MAX_PARAM_LEN: usize = 200;

/// Highest accepted `page`: the `int32` range the OpenAPI document gives it. Far past any
/// real list's end; offsets are computed saturating, so no page overflows.
pub const MAX_PAGE: u32 = i32::MAX as u32;

/// Highest accepted `size` (the `int32` range); any size above the list's maximum is capped.
pub const MAX_PAGE_SIZE: u32 = i32::MAX as u32;

/// Page-size defaults: "large" lists (pipelines, runs) and "standard" lists (comments).
#[derive(Debug, Clone, Copy)]
pub struct PageDefaults {
    pub size: u32,
    pub max: u32,
}

pub const LARGE_PAGES: PageDefaults = PageDefaults {
    size: 100,
    max: 1000,
};
pub const STANDARD_PAGES: PageDefaults = PageDefaults { size: 20, max: 100 };

pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl QueryParams {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self {
            pairs,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, name: &str, msg: impl Into<String>, kind: &str) {
        self.errors
            .push(FieldError::new(&["query", name], msg, kind));
    }

    /// The raw value of a parameter given at most once (422 when repeated or too long).
    pub fn text(&mut self, name: &str) -> Option<String> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        let first = values.next()?;
        if values.next().is_some() {
            self.error(name, "Parameter may be given only once", "too_many_values");
            return None;
        }
        if first.chars().count() > MAX_PARAM_LEN {
            self.error(
                name,
                format!("String should have at most {MAX_PARAM_LEN} characters"),
                "string_too_long",
            );
            return None;
        }
        Some(first)
    }

    /// A non-empty text value (an empty `q=` means no filter, like an absent one).
    pub fn search(&mut self, name: &str) -> Option<String> {
        self.text(name)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    pub fn uuid(&mut self, name: &str) -> Option<Uuid> {
        let raw = self.text(name)?;
        match Uuid::parse_str(raw.trim()) {
            Ok(id) => Some(id),
            Err(_) => {
                self.error(name, "Input should be a valid UUID", "uuid_parsing");
                None
            }
        }
    }

    /// An integer in `min..=max`. A well-formed integer too large for 64 bits counts as out of
    /// range (so a huge `size` is capped like any size above the maximum, and a huge `page`
    /// or `days` gets the range message), not as unparsable.
    pub fn integer(&mut self, name: &str, min: i64, max: Option<i64>) -> Option<i64> {
        let raw = self.text(name)?;
        let raw = raw.trim();
        let value = match raw.parse::<i64>() {
            Ok(value) => value,
            Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow) => i64::MAX,
            Err(e) if matches!(e.kind(), IntErrorKind::NegOverflow) => i64::MIN,
            Err(_) => {
                self.error(
                    name,
                    "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing",
                );
                return None;
            }
        };
        if value < min {
            self.error(
                name,
                format!("Input should be greater than or equal to {min}"),
                "greater_than_equal",
            );
            return None;
        }
        if let Some(max) = max.filter(|max| value > *max) {
            self.error(
                name,
                format!("Input should be less than or equal to {max}"),
                "less_than_equal",
            );
            return None;
        }
        Some(value)
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        let raw = self.text(name)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => {
                self.error(
                    name,
                    "Input should be a valid boolean, unable to interpret input",
                    "bool_parsing",
                );
                None
            }
        }
    }

    /// One of a fixed set of lower-case values.
    pub fn choice<T: Copy>(&mut self, name: &str, allowed: &[(&str, T)]) -> Option<T> {
        let raw = self.text(name)?;
        if let Some((_, value)) = allowed.iter().find(|(label, _)| *label == raw) {
            return Some(*value);
        }
        let labels: Vec<String> = allowed
            .iter()
            .map(|(label, _)| format!("'{label}'"))
            .collect();
        let expected = match labels.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        self.error(name, format!("Input should be {expected}"), "enum");
        None
    }

    /// An Airflow run type (`api::RUN_TYPE_PATTERN`: a lower-case identifier, known or not),
    /// with Airflow 2's `dataset_triggered` read as `asset_triggered`, the name the sync
    /// stores. Anything else is 422 `string_pattern_mismatch`.
    pub fn run_type(&mut self, name: &str) -> Option<String> {
        let raw = self.text(name)?;
        let mut chars = raw.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && raw.len() <= MAX_RUN_TYPE_LEN;
        if !well_formed {
            self.error(
                name,
                format!("String should match pattern '{RUN_TYPE_PATTERN}'"),
                "string_pattern_mismatch",
            );
            return None;
        }
        Some(if raw == "dataset_triggered" {
            "asset_triggered".to_string()
        } else {
            raw
        })
    }

    /// An RFC 3339 date-time (an offset is required; `Z` or `+hh:mm`), or a plain date
    /// (`2026-11-28`, meaning its first instant in UTC).
    pub fn datetime(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let raw = self.text(name)?;
        let raw = raw.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
            return Some(at.with_timezone(&Utc));
        }
        if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            return date.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
        }
        self.error(
            name,
            "Input should be a valid datetime in RFC 3339 format with a time zone (e.g. 2026-11-28T00:00:00Z) or a date (YYYY-MM-DD)",
            "datetime_parsing",
        );
        None
    }

    /// `page` (from 1) and `size` (from 1), both `int32` as the OpenAPI document says (422
    /// past 2,147,483,647). A size above the list's maximum is capped, not rejected.
    pub fn page(&mut self, defaults: PageDefaults) -> PageRequest {
        PageRequest {
            page: self.page_number("page"),
            size: self.page_size("size", defaults),
        }
    }

    /// A page number: from 1 (the default) to [`MAX_PAGE`].
    pub fn page_number(&mut self, name: &str) -> u32 {
        self.integer(name, 1, Some(i64::from(MAX_PAGE)))
            .map_or(1, |page| page as u32)
    }

    /// A page size: from 1 to [`MAX_PAGE_SIZE`], capped to the list's maximum.
    pub fn page_size(&mut self, name: &str, defaults: PageDefaults) -> u32 {
        self.integer(name, 1, Some(i64::from(MAX_PAGE_SIZE)))
            .map_or(defaults.size, |size| {
                size.min(i64::from(defaults.max)) as u32
            })
    }

    /// One of an enum's values, by its lower-case label.
    pub fn choice_of<T: Copy>(
        &mut self,
        name: &str,
        all: &[T],
        label: fn(T) -> &'static str,
    ) -> Option<T> {
        let allowed: Vec<(&str, T)> = all.iter().map(|value| (label(*value), *value)).collect();
        self.choice(name, &allowed)
    }

    /// Adds a cross-parameter error found by the caller.
    pub fn reject(&mut self, name: &str, msg: impl Into<String>, kind: &str) {
        self.error(name, msg, kind);
    }

    /// Ends parsing: 422 with every error found, if any.
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}

/// How a query struct's field is read, by the field's name: absent values become `None` or
/// the type's default, malformed ones are recorded (the field then takes the same fallback,
/// and the request fails with every error at once).
pub trait QueryField: Sized {
    fn read(params: &mut QueryParams, name: &str) -> Self;
}

/// A single query value; `Option<T>` fields read it (absent is `None`).
pub trait QueryValue: Sized {
    fn read_value(params: &mut QueryParams, name: &str) -> Option<Self>;
}

impl<T: QueryValue> QueryField for Option<T> {
    fn read(params: &mut QueryParams, name: &str) -> Self {
        T::read_value(params, name)
    }
}

/// A flag: absent is `false`.
impl QueryField for bool {
    fn read(params: &mut QueryParams, name: &str) -> Self {
        params.boolean(name).unwrap_or(false)
    }
}

impl QueryValue for Uuid {
    fn read_value(params: &mut QueryParams, name: &str) -> Option<Self> {
        params.uuid(name)
    }
}

/// Text is a search term: trimmed, and an empty value is no filter.
impl QueryValue for String {
    fn read_value(params: &mut QueryParams, name: &str) -> Option<Self> {
        params.search(name)
    }
}

impl QueryValue for DateTime<Utc> {
    fn read_value(params: &mut QueryParams, name: &str) -> Option<Self> {
        params.datetime(name)
    }
}

/// One of a closed set of lower-case labels (`Type::ALL`, `Type::as_str`).
macro_rules! query_choice {
    ($($ty:ty),+ $(,)?) => {$(
        impl QueryValue for $ty {
            fn read_value(params: &mut QueryParams, name: &str) -> Option<Self> {
                params.choice_of(name, &<$ty>::ALL, <$ty>::as_str)
            }
        }
    )+};
}

use crate::domain::events::EventType;
use crate::domain::model::{Criticality, PipelineStatus, Provider, RunStatus};
query_choice!(Provider, PipelineStatus, Criticality, RunStatus, EventType);

/// A path struct's field, read from the matched route's `{name}` segment.
pub trait PathValue: Sized {
    fn parse(raw: &str, name: &str) -> Result<Self>;
}

impl PathValue for String {
    fn parse(raw: &str, _name: &str) -> Result<Self> {
        Ok(raw.to_string())
    }
}

impl PathValue for Uuid {
    fn parse(raw: &str, name: &str) -> Result<Self> {
        Uuid::parse_str(raw).map_err(|_| {
            Error::validation(
                &["path", name],
                "Input should be a valid UUID",
                "uuid_parsing",
            )
        })
    }
}

/// Declares a struct of query parameters: the struct is the endpoint's `IntoParams` (the
/// document) and the `FromQuery` that the `Query` extractor parses, field by field by name
/// and type. An optional `check` function sees the parsed struct and adds cross-parameter
/// errors.
macro_rules! query_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident : $ty:ty),* $(,)?
        }
        $(check = $check:path;)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, utoipa::IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        impl $crate::http::extract::FromQuery for $name {
            fn from_query(params: &mut $crate::http::params::QueryParams) -> Self {
                let parsed = Self {
                    $($field: <$ty as $crate::http::params::QueryField>::read(
                        params,
                        // A raw identifier (`r#type`) is the parameter without its prefix.
                        stringify!($field).trim_start_matches("r#"),
                    )),*
                };
                $($check(&parsed, params);)?
                parsed
            }
        }
    };
}
pub(crate) use query_params;

/// Declares a struct of path parameters: the endpoint's `IntoParams` and what the `Path`
/// extractor parses, each field from the `{field}` segment of the route.
macro_rules! path_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, utoipa::IntoParams)]
        #[into_params(parameter_in = Path)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        impl $crate::http::extract::FromPath for $name {
            fn from_path(segments: &$crate::http::extract::PathSegments) -> $crate::Result<Self> {
                Ok(Self {
                    $($field: segments.parse::<$ty>(stringify!($field))?),*
                })
            }
        }
    };
}
pub(crate) use path_params;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_error() {
        let mut params =
            QueryParams::parse(Some("size=abc&days=0&team_id=nope&watched_only=maybe"));
        let _ = params.page(LARGE_PAGES);
        let _ = params.integer("days", 1, Some(90));
        let _ = params.uuid("team_id");
        let _ = params.boolean("watched_only");
        let Err(Error::Validation(errors)) = params.finish() else {
            panic!("expected validation errors");
        };
        let kinds: Vec<&str> = errors.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "int_parsing",
                "greater_than_equal",
                "uuid_parsing",
                "bool_parsing"
            ]
        );
        assert_eq!(errors[0].loc, ["query", "size"]);
    }

    #[test]
    fn run_types_are_any_lower_case_identifier() {
        let mut params = QueryParams::parse(Some(
            "a=manual&b=dataset_triggered&c=asset_materialization&d=future_type_2",
        ));
        assert_eq!(params.run_type("a").as_deref(), Some("manual"));
        assert_eq!(params.run_type("b").as_deref(), Some("asset_triggered"));
        assert_eq!(
            params.run_type("c").as_deref(),
            Some("asset_materialization")
        );
        assert_eq!(params.run_type("d").as_deref(), Some("future_type_2"));
        assert!(params.finish().is_ok());
        let longest = format!("x{}", "_".repeat(63));
        let mut params = QueryParams::parse(Some(&format!("a={longest}")));
        assert_eq!(params.run_type("a"), Some(longest));
        for bad in [
            "Manual",
            "",
            "1st",
            "_x",
            "with-dash",
            "x%20y",
            "\u{e9}t\u{e9}",
        ] {
            let mut params = QueryParams::parse(Some(&format!("run_type={bad}")));
            assert_eq!(params.run_type("run_type"), None, "{bad}");
            let Err(Error::Validation(errors)) = params.finish() else {
                panic!("{bad} is rejected");
            };
            assert_eq!(errors[0].kind, "string_pattern_mismatch", "{bad}");
            assert_eq!(
                errors[0].msg,
                "String should match pattern '^[a-z][a-z0-9_]{0,63}$'"
            );
        }
        let mut params = QueryParams::parse(Some(&format!("run_type=x{}", "y".repeat(64))));
        assert_eq!(params.run_type("run_type"), None, "65 characters");
        assert!(params.finish().is_err());
    }

    #[test]
    fn page_size_is_capped_not_rejected() {
        let mut params = QueryParams::parse(Some("page=3&size=2147483647"));
        let page = params.page(LARGE_PAGES);
        assert!(params.finish().is_ok());
        assert_eq!(
            page,
            PageRequest {
                page: 3,
                size: 1000
            }
        );
    }

    #[test]
    fn integers_too_large_for_64_bits_are_out_of_range_not_unparsable() {
        let huge = "99999999999999999999999";
        let mut params = QueryParams::parse(Some(&format!("size={huge}&page=-{huge}")));
        let page = params.page(LARGE_PAGES);
        assert_eq!(page.size, 100, "a size past int32 is not used");
        let Err(Error::Validation(errors)) = params.finish() else {
            panic!("a huge negative page and a huge size are rejected");
        };
        assert_eq!(errors[0].kind, "greater_than_equal");
        assert_eq!(errors[1].loc, ["query", "size"]);
        assert_eq!(errors[1].kind, "less_than_equal");

        let mut params = QueryParams::parse(Some(&format!("page={huge}")));
        let _ = params.page(LARGE_PAGES);
        let Err(Error::Validation(errors)) = params.finish() else {
            panic!("a huge page is rejected");
        };
        assert_eq!(errors[0].kind, "less_than_equal");
        assert_eq!(
            errors[0].msg,
            "Input should be less than or equal to 2147483647"
        );
    }

    #[test]
    fn the_highest_page_is_accepted() {
        let mut params = QueryParams::parse(Some("page=2147483647&size=1000"));
        let page = params.page(LARGE_PAGES);
        assert!(params.finish().is_ok());
        assert_eq!(page.page, MAX_PAGE);
        assert_eq!(page.offset(), (MAX_PAGE as usize - 1) * 1000);
    }

    #[test]
    fn enum_errors_list_the_allowed_values() {
        let mut params = QueryParams::parse(Some("criticality=urgent"));
        let _ = params.choice("criticality", &[("low", 1), ("high", 2)]);
        let Err(Error::Validation(errors)) = params.finish() else {
            panic!()
        };
        assert_eq!(errors[0].msg, "Input should be 'low' or 'high'");
    }

    #[test]
    fn dates_and_datetimes() {
        let mut params = QueryParams::parse(Some(
            "a=2026-11-28T10:00:00%2B01:00&b=2026-11-28&c=yesterday",
        ));
        assert_eq!(
            params.datetime("a").unwrap().to_rfc3339(),
            "2026-11-28T09:00:00+00:00"
        );
        assert_eq!(
            params.datetime("b").unwrap().to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
        assert!(params.datetime("c").is_none());
        assert!(params.finish().is_err());
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        let mut params = QueryParams::parse(Some("status=success&status=failed"));
        assert!(params.text("status").is_none());
        assert!(params.finish().is_err());
    }
}
