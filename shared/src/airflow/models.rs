//! What the client reads from Airflow 2 (`/api/v1`) and Airflow 3 (`/api/v2`), in one shape.
//!
//! Decoding is tolerant (see [`super::fields`]): states and run types stay lower-case strings
//! so a new value never fails a page, and each item keeps its full JSON object in `raw`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::AirflowError;
use super::fields::Fields;

/// One page of a list endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items matching the query on the server. When Airflow leaves it out (3.2+ under cursor
    /// pagination) it is `offset + items.len()`, a lower bound.
    pub total_entries: u64,
}

/// A DAG as listed by `GET /dags`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dag {
    pub dag_id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owners: Vec<String>,
    /// Tag names (v2 sends `[{name, dag_id, ...}]`, v1 `[{name}]`).
    pub tags: Vec<String>,
    pub is_paused: bool,
    /// v2: `!is_stale`; v1: `is_active`. A DAG whose file is gone is inactive.
    pub is_active: bool,
    /// v2: `timetable_summary` (a cron expression...), else `timetable_description`;
    /// v1: the `schedule_interval` cron value, else `timetable_description`.
    pub schedule: Option<String>,
    pub raw: Value,
}

/// A DAG run.
#[derive(Debug, Clone, PartialEq)]
pub struct DagRun {
    pub dag_id: String,
    pub dag_run_id: String,
    /// `queued`, `running`, `success`, `failed`, or any value a later Airflow adds.
    pub state: String,
    /// `manual`, `scheduled`, `backfill`, `asset_triggered` (Airflow 2's `dataset_triggered`
    /// is renamed to it), `asset_materialization`, `operator_triggered`, or a later value.
    pub run_type: String,
    /// Null in Airflow 3 for runs triggered without one.
    pub logical_date: Option<DateTime<Utc>>,
    /// Airflow 3 only: when the run may start; always set there (v1: None).
    pub run_after: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// Neither Airflow 2.11 nor 3.3 sends it (they only filter and sort on it): None today.
    pub updated_at: Option<DateTime<Utc>>,
    pub conf: Option<Value>,
    pub raw: Value,
}

/// One try of a task instance.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInstance {
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    pub task_display_name: Option<String>,
    /// The operator class name, e.g. `BashOperator`.
    pub operator: Option<String>,
    /// Lower-case state; None while the scheduler has not set one.
    pub state: Option<String>,
    /// 0 for a task that never ran.
    pub try_number: u32,
    /// -1 for an unmapped task.
    pub map_index: i64,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub raw: Value,
}

/// The body of a trigger (`POST /dags/{dag_id}/dagRuns`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerRequest {
    /// Airflow generates `manual__<time>` when None.
    pub dag_run_id: Option<String>,
    /// Sent as `null` to Airflow 3 when None (the field is required there); left out for
    /// Airflow 2, which then uses the current time.
    pub logical_date: Option<DateTime<Utc>>,
    pub conf: Option<Map<String, Value>>,
    pub note: Option<String>,
}

impl Dag {
    pub fn from_value(raw: Value) -> Result<Self, AirflowError> {
        let f = Fields::new("DAG", &raw)?;
        let is_active = match (f.bool("is_stale"), f.bool("is_active")) {
            (Some(is_stale), _) => !is_stale,
            (None, Some(is_active)) => is_active,
            (None, None) => true,
        };
        let dag = Dag {
            dag_id: f.required_str("dag_id")?,
            display_name: f.str("dag_display_name"),
            description: f.str("description"),
            owners: f.strings("owners"),
            tags: tag_names(f.get("tags")),
            is_paused: f.bool("is_paused").unwrap_or(false),
            is_active,
            schedule: schedule(&f),
            raw: Value::Null,
        };
        Ok(Dag { raw, ..dag })
    }
}

impl DagRun {
    pub fn from_value(raw: Value) -> Result<Self, AirflowError> {
        let f = Fields::new("DAG run", &raw)?;
        let run_type = f
            .lower_str("run_type")
            .ok_or_else(|| AirflowError::Decode("DAG run without a string `run_type`".into()))?;
        let run = DagRun {
            dag_id: f.required_str("dag_id")?,
            dag_run_id: f.required_str("dag_run_id")?,
            state: f
                .lower_str("state")
                .ok_or_else(|| AirflowError::Decode("DAG run without a string `state`".into()))?,
            run_type: normalize_run_type(run_type),
            logical_date: f.datetime("logical_date"),
            run_after: f.datetime("run_after"),
            queued_at: f.datetime("queued_at"),
            start_date: f.datetime("start_date"),
            end_date: f.datetime("end_date"),
            note: f.str("note"),
            updated_at: f.datetime("updated_at"),
            conf: f.get("conf").cloned(),
            raw: Value::Null,
        };
        Ok(DagRun { raw, ..run })
    }
}

impl TaskInstance {
    pub fn from_value(raw: Value) -> Result<Self, AirflowError> {
        let f = Fields::new("task instance", &raw)?;
        let try_number = f
            .i64("try_number")
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                AirflowError::Decode("task instance without a valid `try_number`".into())
            })?;
        let ti = TaskInstance {
            dag_id: f.required_str("dag_id")?,
            dag_run_id: f.required_str("dag_run_id")?,
            task_id: f.required_str("task_id")?,
            task_display_name: f.str("task_display_name"),
            operator: f.str("operator"),
            state: f.lower_str("state"),
            try_number,
            // Airflow before 2.3 had no mapped tasks and no `map_index`.
            map_index: f.i64("map_index").unwrap_or(-1),
            start_date: f.datetime("start_date"),
            end_date: f.datetime("end_date"),
            raw: Value::Null,
        };
        Ok(TaskInstance { raw, ..ti })
    }
}

/// Airflow 2.x called asset-triggered runs `dataset_triggered`.
fn normalize_run_type(run_type: String) -> String {
    if run_type == "dataset_triggered" {
        "asset_triggered".to_string()
    } else {
        run_type
    }
}

fn tag_names(tags: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(tags)) = tags else {
        return Vec::new();
    };
    tags.iter()
        .filter_map(|tag| match tag {
            Value::Object(tag) => tag.get("name").and_then(Value::as_str),
            Value::String(name) => Some(name.as_str()),
            _ => None,
        })
        .map(str::to_string)
        .collect()
}

/// v2 `timetable_summary`; v1 `schedule_interval` `{"__type": "CronExpression", "value"}`;
/// else the human `timetable_description` (also for v1 time deltas).
fn schedule(f: &Fields<'_>) -> Option<String> {
    let v1_cron = f
        .get("schedule_interval")
        .and_then(|interval| interval.get("value"))
        .and_then(Value::as_str)
        .map(str::to_string);
    f.str("timetable_summary")
        .or(v1_cron)
        .or_else(|| f.str("timetable_description"))
}

/// Decodes a list answer `{"<key>": [...], "total_entries": n, ...}`.
pub(crate) fn decode_page<T>(
    body: &[u8],
    key: &str,
    offset: u32,
    decode: fn(Value) -> Result<T, AirflowError>,
) -> Result<Page<T>, AirflowError> {
    let (items, total) = decode_list(body, key, decode)?;
    let total_entries = total.unwrap_or(u64::from(offset) + items.len() as u64);
    Ok(Page {
        items,
        total_entries,
    })
}

/// The items of a list answer and its `total_entries` if given.
pub(crate) fn decode_list<T>(
    body: &[u8],
    key: &str,
    decode: fn(Value) -> Result<T, AirflowError>,
) -> Result<(Vec<T>, Option<u64>), AirflowError> {
    let mut object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(AirflowError::Decode("expected a JSON object".into())),
        Err(error) => return Err(AirflowError::Decode(format!("invalid JSON: {error}"))),
    };
    let total = object.get("total_entries").and_then(Value::as_u64);
    let Some(Value::Array(items)) = object.remove(key) else {
        return Err(AirflowError::Decode(format!(
            "no `{key}` array in the answer"
        )));
    };
    let items = items.into_iter().map(decode).collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Decodes a single-object answer.
pub(crate) fn decode_one<T>(
    body: &[u8],
    decode: fn(Value) -> Result<T, AirflowError>,
) -> Result<T, AirflowError> {
    let value = serde_json::from_slice::<Value>(body)
        .map_err(|error| AirflowError::Decode(format!("invalid JSON: {error}")))?;
    decode(value)
}
