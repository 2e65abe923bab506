//! Exposure capture: what the test suite exposes, for `scripts/scan_exposure.py` to search for
//! the secrets the suite used.
//!
//! When `ORCHESTRATION_EXPOSURE_DIR` is set (`scripts/test` sets it to a fresh folder), each test
//! process appends to its own files in that folder (`<binary>-<pid>.<stream>`, so parallel
//! processes never interleave):
//!
//! - `secrets.jsonl`: every secret the harness creates or sees: the API keys of [`TestApp`] and
//!   their stored hashes, the passwords and tokens connectors present to the fake Airflow, the
//!   tokens it hands out, and whatever a test records with [`record_secret`].
//! - `responses.jsonl`: the status, headers and body of every response the API served to the
//!   tests ([`capture_responses`] wraps the router of [`TestApp`]), and bodies recorded with
//!   [`record_body`] (Lambda responses, a spawned server's answers).
//! - `log.jsonl`: every log line of the process, as JSON, at the most verbose level the
//!   application logs at (TRACE for this project's crates, DEBUG for the libraries it runs on),
//!   through a global `tracing` subscriber installed on first use of the harness. The fake
//!   Airflow's library (wiremock) is left out: it logs the requests it receives, credentials
//!   included, which is the fake's business, not the application's.
//! - `output.log`: output of processes the tests spawn, passed through [`record_output`].
//!
//! Without the variable every function here does nothing, so tests run as usual.
//!
//! [`TestApp`]: crate::app::TestApp

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The folder the capture files go to; unset: no capture.
pub const DIR_VAR: &str = "ORCHESTRATION_EXPOSURE_DIR";

/// Log filter of the capture: everything this project logs, and its libraries down to DEBUG.
pub const LOG_FILTER: &str = "debug,shared=trace,local=trace,orchestration_tests=trace,\
    pipelines_function=trace,runs_function=trace,comments_function=trace,\
    connectors_function=trace,scheduled_sync_function=trace,wiremock=off";

struct Capture {
    log_path: PathBuf,
    secrets: File,
    responses: File,
    output: File,
    /// Secrets already written by this process (the fake sees the same token many times).
    seen: Mutex<HashSet<(String, String)>>,
}

static CAPTURE: OnceLock<Option<Capture>> = OnceLock::new();

fn capture() -> Option<&'static Capture> {
    CAPTURE.get_or_init(open).as_ref()
}

/// Starts the capture of this process, when `ORCHESTRATION_EXPOSURE_DIR` is set. Idempotent;
/// every hook calls it, so the first use of the harness starts it.
pub fn init() {
    let _ = capture();
}

/// Whether this process captures.
pub fn enabled() -> bool {
    capture().is_some()
}

fn open() -> Option<Capture> {
    let dir = PathBuf::from(std::env::var_os(DIR_VAR).filter(|v| !v.is_empty())?);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("{DIR_VAR}={}: cannot create it: {e}", dir.display()));
    // The test binary's name without cargo's hash suffix, then the pid: one set per process.
    let exe = std::env::current_exe().ok();
    let binary = exe
        .as_deref()
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .map(|s| s.rsplit_once('-').map_or(s, |(name, _)| name).to_string())
        .unwrap_or_else(|| "test".into());
    let prefix = format!("{binary}-{}", std::process::id());
    let file = |stream: &str| {
        let path = dir.join(format!("{prefix}.{stream}"));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
    };
    let log_path = dir.join(format!("{prefix}.log.jsonl"));
    let log = Arc::new(file("log.jsonl"));
    // Appended in one write per event (the formatter writes a whole line at once), so lines
    // from the test threads never interleave.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(LOG_FILTER))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(log)
        .try_init()
        .unwrap_or_else(|e| {
            panic!(
                "the exposure capture installs the process's tracing subscriber, but one is \
                 installed already ({e}): use `orchestration_tests::exposure` instead"
            )
        });
    Some(Capture {
        log_path,
        secrets: file("secrets.jsonl"),
        responses: file("responses.jsonl"),
        output: file("output.log"),
        seen: Mutex::new(HashSet::new()),
    })
}

/// This process's log file, when it captures (a test can check its own log lines).
pub fn log_path() -> Option<&'static Path> {
    capture().map(|c| c.log_path.as_path())
}

fn append(mut file: &File, line: &[u8]) {
    // One write per record (O_APPEND): records of concurrent tests never interleave.
    let mut record = Vec::with_capacity(line.len() + 1);
    record.extend_from_slice(line);
    record.push(b'\n');
    file.write_all(&record)
        .unwrap_or_else(|e| panic!("exposure capture: cannot write: {e}"));
}

/// Records a secret the suite uses, under a kind (`api_key`, `connector_password`, ...).
pub fn record_secret(kind: &str, value: &str) {
    record_credential(kind, None, value);
}

/// Records a secret that travels with a user name (basic auth sends `base64(user:secret)`,
/// which the scan looks for too).
pub fn record_credential(kind: &str, username: Option<&str>, value: &str) {
    let Some(capture) = capture() else { return };
    if value.is_empty() {
        return;
    }
    let new = capture
        .seen
        .lock()
        .expect("exposure capture lock")
        .insert((kind.to_string(), value.to_string()));
    if new {
        let record = json!({ "kind": kind, "value": value, "username": username });
        append(&capture.secrets, record.to_string().as_bytes());
    }
}

/// Records an API key and the hash the store keeps of it: neither may ever be exposed.
pub fn record_api_key(key: &str) {
    record_secret("api_key", key);
    record_secret("api_key_hash", &shared::auth::hash_key(key));
}

/// Records a response body from elsewhere than [`capture_responses`] (a Lambda response, a
/// spawned server's answer).
pub fn record_body(source: &str, body: &[u8]) {
    record_response(source, None, &HeaderMap::new(), body);
}

/// Records a response: status, headers and body.
pub fn record_response(source: &str, status: Option<u16>, headers: &HeaderMap, body: &[u8]) {
    let Some(capture) = capture() else { return };
    let headers: Vec<Value> = headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    let record = json!({
        "source": source,
        "status": status,
        "headers": headers,
        "body": String::from_utf8_lossy(body),
    });
    append(&capture.responses, record.to_string().as_bytes());
}

/// Records output of a process the tests spawned (its log lines), line by line.
pub fn record_output(source: &str, output: &[u8]) {
    let Some(capture) = capture() else { return };
    for line in String::from_utf8_lossy(output).lines() {
        append(&capture.output, format!("[{source}] {line}").as_bytes());
    }
}

/// The router with every response it serves recorded (unchanged when the capture is off).
pub fn capture_responses(router: axum::Router) -> axum::Router {
    if !enabled() {
        return router;
    }
    router.layer(axum::middleware::from_fn(record_served))
}

async fn record_served(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    // The API's bodies are small JSON documents, fully built before they are sent.
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            record_response("api", Some(parts.status.as_u16()), &parts.headers, &bytes);
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(error) => {
            record_response(
                "api",
                Some(parts.status.as_u16()),
                &parts.headers,
                format!("<body failed: {error}>").as_bytes(),
            );
            Response::from_parts(parts, Body::empty())
        }
    }
}

/// Records the credentials a request to the fake Airflow carries: a basic-auth password, a
/// bearer token, or the password of a `POST /auth/token`.
pub fn record_airflow_request(headers: &HeaderMap, path: &str, body: &[u8]) {
    if !enabled() {
        return;
    }
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '));
    match authorization {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            record_secret("airflow_token", token.trim());
        }
        Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                record_credential("connector_password", Some(username), password);
            }
        }
        _ => {}
    }
    if !path.ends_with("/auth/token") {
        return;
    }
    let credentials: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(password) = credentials["password"].as_str() {
        record_credential(
            "connector_password",
            credentials["username"].as_str(),
            password,
        );
    }
}

/// Records the credentials an Airflow client is given (tests that build clients directly).
pub fn record_airflow_credentials(credentials: &shared::airflow::Credentials) {
    match credentials {
        shared::airflow::Credentials::Password { username, password } => {
            record_credential("connector_password", Some(username), password);
        }
        shared::airflow::Credentials::Token(token) => record_secret("connector_token", token),
    }
}
