//! The two sides of the runtime-loop comparison: API Gateway's view of a function's answer,
//! the local server's answer to the same request, and the comparison of the two.
//!
//! Two worlds are compared, each with its own table (same moto server), its own fake Airflow
//! and the same fixture data (`admin load-fixtures`), receiving the same requests in the same
//! order: the Lambda functions under the Runtime API emulator, and the local server's router.
//! Their answers must be equal except for what cannot be, and only that is normalised:
//!
//! - headers `x-request-id` (API Gateway's request id vs a generated one), `date`,
//!   `content-length` (framing), and `x-ratelimit-remaining`/`-reset` (each function process
//!   counts its own blocks of requests, the local server one process's);
//! - ids created by a request (comment, sync record) or by the loader (the space) are random,
//!   and so is what is derived from them (a triggered run's `api__<hash>` Airflow id hashes the
//!   space id, and its run id that): an id may differ only consistently (a one-to-one renaming
//!   across the whole run), and an id seen equal once (fixture and Airflow-derived ids) must
//!   stay equal;
//! - instants taken from the clock (`synced_at`, `created_at`, a sync's start...) may differ by
//!   at most [`CLOCK_TOLERANCE`]: the two worlds run a few milliseconds apart;
//! - `duration_ms` of a scheduled sync's outcome is a wall-clock measure.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde_json::Value;

pub const CLOCK_TOLERANCE: chrono::Duration = chrono::Duration::seconds(120);

/// Headers that legitimately differ between the two worlds (see the module doc).
const VOLATILE_HEADERS: [&str; 5] = [
    "x-request-id",
    "date",
    "content-length",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// Fields whose numbers measure wall-clock time.
const VOLATILE_NUMBERS: [&str; 1] = ["duration_ms"];

/// A response: status, headers (lower case, repeated values joined by ", "), body as JSON
/// (`Null` when empty, a string when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

fn body_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

impl Answer {
    /// API Gateway's view of an HTTP API (payload v2) response posted by a function.
    pub fn from_lambda(response: &[u8]) -> Result<Self, String> {
        let json: Value = serde_json::from_slice(response).map_err(|e| {
            format!(
                "not an API Gateway response ({e}): {}",
                String::from_utf8_lossy(response)
            )
        })?;
        let status = json["statusCode"]
            .as_u64()
            .ok_or_else(|| format!("no statusCode: {json}"))? as u16;
        let mut headers = BTreeMap::new();
        for (name, value) in json["headers"].as_object().into_iter().flatten() {
            headers.insert(
                name.to_ascii_lowercase(),
                value.as_str().unwrap_or_default().to_string(),
            );
        }
        for (name, values) in json["multiValueHeaders"].as_object().into_iter().flatten() {
            let joined: Vec<&str> = values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            headers.insert(name.to_ascii_lowercase(), joined.join(", "));
        }
        if let Some(cookies) = json["cookies"].as_array().filter(|c| !c.is_empty()) {
            let cookies: Vec<&str> = cookies.iter().filter_map(Value::as_str).collect();
            headers.insert("set-cookie".into(), cookies.join(", "));
        }
        let text = json["body"].as_str().unwrap_or("");
        let bytes = if json["isBase64Encoded"] == Value::Bool(true) {
            BASE64
                .decode(text)
                .map_err(|e| format!("base64 body: {e}"))?
        } else {
            text.as_bytes().to_vec()
        };
        Ok(Self {
            status,
            headers,
            body: body_value(&bytes),
        })
    }

    pub async fn from_reqwest(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap_or_default().to_string();
            headers
                .entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value)
                })
                .or_insert(value);
        }
        let bytes = response.bytes().await.expect("local server body");
        Self {
            status,
            headers,
            body: body_value(&bytes),
        }
    }
}

/// Sends an HTTP API (v2) event's request to the local server at `base`, as API Gateway would
/// have received it from the client: method, raw path and query, headers, body (decoded when
/// base64).
pub async fn send_to_local(client: &reqwest::Client, base: &str, event: &Value) -> Answer {
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .expect("requestContext.http.method");
    let mut url = format!("{base}{}", event["rawPath"].as_str().expect("rawPath"));
    if let Some(query) = event["rawQueryString"].as_str().filter(|q| !q.is_empty()) {
        url = format!("{url}?{query}");
    }
    let mut request = client.request(method.parse().expect("method"), url);
    for (name, value) in event["headers"].as_object().into_iter().flatten() {
        // Connection-level headers belong to API Gateway's hop, not to the request.
        if matches!(name.as_str(), "host" | "content-length") || name.starts_with("x-forwarded-") {
            continue;
        }
        request = request.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    if let Some(body) = event["body"].as_str() {
        let bytes = if event["isBase64Encoded"] == Value::Bool(true) {
            BASE64.decode(body).expect("base64 body of the event")
        } else {
            body.as_bytes().to_vec()
        };
        request = request.body(bytes);
    }
    Answer::from_reqwest(request.send().await.expect("the local server answers")).await
}

/// Compares the answers of the two worlds over a whole run (ids are renamed consistently
/// across requests).
#[derive(Default)]
pub struct Comparison {
    lambda_to_local: HashMap<String, String>,
    local_to_lambda: HashMap<String, String>,
    stable: HashSet<String>,
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok() && text.len() == 36
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A word ending in a hash (`api__<32 hex>`, the Airflow run id a trigger derives from its
/// Idempotency-Key, space and caller): (prefix, hash).
fn hashed(word: &str) -> Option<(&str, &str)> {
    let start = word.len().checked_sub(32)?;
    let (prefix, hash) = word.split_at_checked(start)?;
    hash.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then_some((prefix, hash))
}

/// A string cut into words at spaces, so ids and instants inside messages are compared as such.
fn words(text: &str) -> Vec<&str> {
    text.split(' ').collect()
}

impl Comparison {
    /// Ok, or every difference (path: lambda vs local).
    pub fn compare(&mut self, lambda: &Answer, local: &Answer) -> Result<(), String> {
        let mut differences = Vec::new();
        if lambda.status != local.status {
            differences.push(format!("status: {} vs {}", lambda.status, local.status));
        }
        let names: std::collections::BTreeSet<&String> =
            lambda.headers.keys().chain(local.headers.keys()).collect();
        for name in names {
            if VOLATILE_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let (a, b) = (lambda.headers.get(name), local.headers.get(name));
            if a != b {
                differences.push(format!("header {name}: {a:?} vs {b:?}"));
            }
        }
        self.value("body", &lambda.body, &local.body, &mut differences);
        if differences.is_empty() {
            Ok(())
        } else {
            Err(differences.join("\n"))
        }
    }

    /// Compares two JSON values that are not answers (a scheduled sync's summary).
    pub fn compare_values(&mut self, lambda: &Value, local: &Value) -> Result<(), String> {
        let mut differences = Vec::new();
        self.value("", lambda, local, &mut differences);
        if differences.is_empty() {
            Ok(())
        } else {
            Err(differences.join("\n"))
        }
    }

    fn value(&mut self, path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    let here = format!("{path}.{key}");
                    match (x.get(key), y.get(key)) {
                        (Some(_), Some(_)) if VOLATILE_NUMBERS.contains(&key.as_str()) => {}
                        (Some(p), Some(q)) => self.value(&here, p, q, out),
                        (p, q) => out.push(format!("{here}: {p:?} vs {q:?}")),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (index, (p, q)) in x.iter().zip(y).enumerate() {
                    self.value(&format!("{path}[{index}]"), p, q, out);
                }
            }
            (Value::String(x), Value::String(y)) => {
                let (p, q) = (words(x), words(y));
                let same = p.len() == q.len() && p.iter().zip(&q).all(|(s, t)| self.word(s, t));
                if !same {
                    out.push(format!("{path}: {x:?} vs {y:?}"));
                }
            }
            _ if a == b => {}
            _ => out.push(format!("{path}: {a} vs {b}")),
        }
    }

    /// Two words are the same if equal, two ids renamed consistently, or two instants close.
    fn word(&mut self, a: &str, b: &str) -> bool {
        let trimmed = |s: &str| {
            s.trim_matches(|c: char| ",.;:()'\"".contains(c))
                .to_string()
        };
        let (a, b) = (trimmed(a), trimmed(b));
        if is_uuid(&a) && is_uuid(&b) {
            return self.same_id(&a, &b);
        }
        if a == b {
            return true;
        }
        if let (Some((p, x)), Some((q, y))) = (hashed(&a), hashed(&b))
            && p == q
        {
            return self.same_id(x, y);
        }
        match (instant(&a), instant(&b)) {
            (Some(x), Some(y)) => (x - y).abs() <= CLOCK_TOLERANCE,
            _ => false,
        }
    }

    fn same_id(&mut self, a: &str, b: &str) -> bool {
        if a == b {
            self.stable.insert(a.to_string());
            return !self.lambda_to_local.contains_key(a) && !self.local_to_lambda.contains_key(b);
        }
        if self.stable.contains(a) || self.stable.contains(b) {
            return false;
        }
        let forward = self
            .lambda_to_local
            .entry(a.to_string())
            .or_insert(b.to_string());
        let backward = self
            .local_to_lambda
            .entry(b.to_string())
            .or_insert(a.to_string());
        forward == b && backward == a
    }
}

pub fn events_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

/// The fixture `events/<name>.json`, as it is.
pub fn event(name: &str) -> Value {
    let path = events_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `event` with one header set.
pub fn with_header(event: &Value, name: &str, value: &str) -> Value {
    let mut event = event.clone();
    event["headers"][name] = Value::String(value.to_string());
    event
}

/// `event` turned into a GET of a route without parameters (`path`), as API Gateway sends it.
pub fn with_path(event: &Value, path: &str) -> Value {
    let mut event = event.clone();
    let route = format!("GET {path}");
    event["routeKey"] = route.clone().into();
    event["requestContext"]["routeKey"] = route.into();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = "GET".into();
    event["rawQueryString"] = "".into();
    for field in ["pathParameters", "queryStringParameters", "body"] {
        if let Some(object) = event.as_object_mut() {
            object.remove(field);
        }
    }
    event
}
