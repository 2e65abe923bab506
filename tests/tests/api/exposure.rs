//! Secrets and data exposure.
//!
//! The suite-wide guarantee is checked after `cargo test` by `scripts/scan_exposure.py`, over
//! what every test process captured (`orchestration_tests::exposure`): no response and no log
//! line holds a secret the suite used. These tests add what that scan builds on:
//!
//! - the scanner finds each planted form of a leak, never prints the secret, and fails on an
//!   empty capture (so it cannot pass by default);
//! - connector secrets that could not be told from ordinary text elsewhere in the suite
//!   (`admin`) are replaced here by unmistakable ones, taken through every path that handles
//!   them: syncs and triggers, succeeding and failing in every way the fake Airflow can fail,
//!   with a password (JWT exchange), a static token and basic auth (Airflow 2), on both
//!   backends; no response holds them, nor (when capturing) a log line;
//! - API keys and their hashes are never returned, whatever the key's state or the request;
//! - API keys are compared in constant time (a check of the source: timing cannot be measured
//!   reliably in a test);
//! - the admin command prints a new key once and never its hash, nor a stored connector secret.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use local::admin::AdminCommand;
use orchestration_tests::app::{SPACE, TestApp, new_connector};
use orchestration_tests::exposure;
use orchestration_tests::fake_airflow::{FakeAirflow, Fault};
use orchestration_tests::{Backend, TestTable, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use shared::auth::hash_key;
use shared::domain::ids;
use shared::domain::model::{AirflowApiVersion, Connector, ConnectorAuth, SecretRef};
use shared::repo::Repository;
use shared::service::connectors::AirflowSettings;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// An unmistakable secret, recorded for the suite-wide scan.
fn secret(kind: &str, username: Option<&str>) -> String {
    let value = format!("{kind}-{}", uuid::Uuid::new_v4().simple());
    exposure::record_credential(kind, username, &value);
    value
}

/// Every response a test received, as text: status, headers and body.
#[derive(Default)]
struct Seen {
    responses: Vec<String>,
}

impl Seen {
    async fn send(
        &mut self,
        app: &TestApp,
        method: Method,
        path: &str,
        authorization: Option<&str>,
    ) -> (u16, Value) {
        let mut request = app.client.request(method.clone(), app.url(SPACE, path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let mut text = format!("{method} {path} -> {status}\n");
        for (name, value) in response.headers() {
            text.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        let body = response.text().await.unwrap();
        text.push_str(&body);
        self.responses.push(text);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn as_key(
        &mut self,
        app: &TestApp,
        method: Method,
        path: &str,
        key: &str,
    ) -> (u16, Value) {
        self.send(app, method, path, Some(&format!("Bearer {key}")))
            .await
    }

    /// Asserts that no response holds any of `secrets` (nor the `key_hash` field).
    fn assert_clean(&self, secrets: &[(&str, String)]) {
        assert!(!self.responses.is_empty());
        for response in &self.responses {
            for (what, secret) in secrets {
                assert!(
                    !response.contains(secret.as_str()),
                    "a response holds the {what}:\n{}",
                    response.replace(secret.as_str(), "<REDACTED>")
                );
            }
            assert!(!response.contains("key_hash"), "{response}");
        }
    }
}

/// The forms a password can leak in: itself, and the basic-auth header of `user:password`.
fn password_forms(
    what: &'static str,
    username: &str,
    password: &str,
) -> Vec<(&'static str, String)> {
    vec![
        (what, password.to_string()),
        (what, STANDARD.encode(format!("{username}:{password}"))),
    ]
}

/// Asserts that this process's captured log lines hold none of `secrets` (when capturing).
fn assert_logs_clean(secrets: &[(&str, String)]) {
    let Some(path) = exposure::log_path() else {
        return;
    };
    let log = std::fs::read_to_string(path).expect("the capture's log file");
    assert!(!log.is_empty(), "the capture recorded no log line");
    for (number, line) in log.lines().enumerate() {
        for (what, secret) in secrets {
            assert!(
                !line.contains(secret.as_str()),
                "{}:{}: a log line holds the {what}",
                path.display(),
                number + 1
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connector secrets through syncs and triggers, succeeding and failing
// ---------------------------------------------------------------------------------------------

/// Every failure the fake Airflow can answer with.
fn faults() -> Vec<Fault> {
    vec![
        Fault::Status(401),
        Fault::Status(403),
        Fault::Status(500),
        Fault::TooManyRequests(0),
        Fault::Garbage,
        Fault::ExpiredToken,
        // Beyond the 300 ms request timeout.
        Fault::Delay(Duration::from_millis(600)),
    ]
}

async fn connector_secrets_are_never_exposed(backend: Backend) {
    let app = TestApp::spawn_with(backend, |state| {
        state.airflow = AirflowSettings {
            request_timeout: Duration::from_millis(300),
            max_attempts: 2,
            retry_base_delay: Duration::from_millis(5),
        };
    })
    .await;
    let airflow = FakeAirflow::start().await;
    airflow.with(|state| {
        state.add_dag("etl", "data-team");
        state.add_run(
            "etl",
            "scheduled__1",
            "success",
            chrono::Utc::now() - chrono::Duration::hours(2),
            &["extract"],
        );
    });

    let username = format!("svc-{}", uuid::Uuid::new_v4().simple());
    let password = secret("connector_password", Some(&username));
    let token = secret("connector_token", None);
    let basic_password = secret("connector_password", Some(&username));
    let connector = |name: &str, api_version, auth| Connector {
        base_url: airflow.url(),
        api_version,
        auth,
        ..new_connector(app.space.id, app.admin_id, name)
    };
    let with_password = connector(
        "password",
        AirflowApiVersion::V2,
        ConnectorAuth::Password {
            username: username.clone(),
            password: SecretRef::Stored(password.clone()),
        },
    );
    // The fake accepts only the tokens it issued: a static token is refused (401).
    let with_token = connector(
        "token",
        AirflowApiVersion::V2,
        ConnectorAuth::Token {
            token: SecretRef::Stored(token.clone()),
        },
    );
    // Airflow 2: basic auth on every request; the fake serves only /api/v2 (401 or 404).
    let with_basic = connector(
        "basic",
        AirflowApiVersion::V1,
        ConnectorAuth::Password {
            username: username.clone(),
            password: SecretRef::Stored(basic_password.clone()),
        },
    );
    let mut seen = Seen::default();
    let admin = app.keys.admin.clone();
    for connector in [&with_password, &with_token, &with_basic] {
        app.repo.put_connector(connector).await.unwrap();
        app.add_pipeline(connector, "etl", |_| {}).await;
        let sync = format!("/connectors/{}/sync", connector.id);
        let trigger = format!(
            "/pipelines/{}/trigger",
            ids::pipeline_id(connector.id, "etl")
        );
        seen.as_key(&app, Method::POST, &sync, &admin).await;
        seen.as_key(&app, Method::POST, &trigger, &admin).await;
        for fault in faults() {
            // Enough faulted requests in a row to outlast the retry, token requests included.
            let next = airflow.with(|state| state.requests);
            airflow.with(|state| state.fault_next_at(next, vec![fault.clone(); 3]));
            seen.as_key(&app, Method::POST, &sync, &admin).await;
            let next = airflow.with(|state| state.requests);
            airflow.with(|state| state.fault_next_at(next, vec![fault.clone(); 3]));
            seen.as_key(&app, Method::POST, &trigger, &admin).await;
        }
        let syncs = format!("/connectors/{}/syncs", connector.id);
        let (status, records) = seen.as_key(&app, Method::GET, &syncs, &admin).await;
        assert_eq!(status, 200, "{records}");
        assert_eq!(
            records.as_array().map(Vec::len),
            Some(1 + faults().len()),
            "every sync left a record: {records}"
        );
    }
    // The password connector did sync; the others failed on authentication.
    let (_, records) = seen
        .as_key(
            &app,
            Method::GET,
            &format!("/connectors/{}/syncs", with_password.id),
            &admin,
        )
        .await;
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "succeeded"),
        "{records}"
    );
    seen.as_key(&app, Method::GET, "/pipelines", &admin).await;

    let mut secrets = password_forms("connector password", &username, &password);
    secrets.extend(password_forms(
        "basic-auth password",
        &username,
        &basic_password,
    ));
    secrets.push(("connector token", token.clone()));
    seen.assert_clean(&secrets);
    assert_logs_clean(&secrets);
}

// ---------------------------------------------------------------------------------------------
// API keys and their hashes
// ---------------------------------------------------------------------------------------------

async fn keys_and_their_hashes_are_never_returned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let keys = &app.keys;
    let all = [
        ("admin key", &keys.admin),
        ("editor key", &keys.editor),
        ("viewer key", &keys.viewer),
        ("outsider key", &keys.outsider),
        ("revoked key", &keys.revoked),
        ("expired key", &keys.expired),
    ];
    let pipeline = app.add_pipeline(&app.connector, "etl", |_| {}).await;
    let paths = [
        (Method::GET, "/pipelines".to_string()),
        (Method::GET, format!("/pipelines/{}", pipeline.id)),
        (Method::GET, format!("/pipelines/{}", uuid::Uuid::new_v4())),
        (Method::GET, format!("/pipelines/{}/runs", pipeline.id)),
        (Method::PUT, format!("/pipelines/{}/watch", pipeline.id)),
        (
            Method::GET,
            format!("/connectors/{}/syncs", app.connector.id),
        ),
        (
            Method::POST,
            format!("/connectors/{}/sync", app.connector.id),
        ),
        (Method::GET, "/no-such-route".to_string()),
    ];
    let mut seen = Seen::default();
    let mut statuses = std::collections::BTreeSet::new();
    for (_, key) in all {
        // The key as it should be sent, and as it should not: every answer is clean.
        let variants = [
            format!("Bearer {key}"),
            format!("bearer {key}"),
            format!("Basic {}", STANDARD.encode(format!("user:{key}"))),
            format!("Bearer {key}x"),
            format!("Bearer {}", &key[..key.len() - 1]),
            key.to_string(),
        ];
        for (method, path) in &paths {
            for authorization in &variants {
                let (status, _) = seen
                    .send(&app, method.clone(), path, Some(authorization))
                    .await;
                statuses.insert(status);
            }
        }
    }
    // Authenticated, refused, not found, failed upstream: every kind of answer was seen.
    for status in [200, 401, 403, 404] {
        assert!(statuses.contains(&status), "{statuses:?}");
    }
    let mut secrets: Vec<(&str, String)> = Vec::new();
    for (what, key) in all {
        secrets.push((what, key.to_string()));
        secrets.push(("key hash", hash_key(key)));
    }
    seen.assert_clean(&secrets);
    assert_logs_clean(&secrets);
}

on_both_backends!(
    connector_secrets_are_never_exposed,
    keys_and_their_hashes_are_never_returned
);

/// Keys are looked up by their SHA-256 hash, then the stored hash is compared with
/// `subtle::ConstantTimeEq`; no code compares a key or a key hash with `==`. (A timing
/// measurement would be too noisy to fail reliably; the source is what guarantees it.)
#[test]
fn api_keys_are_compared_in_constant_time() {
    let mut files = Vec::new();
    let mut folders = vec![workspace().join("shared/src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 20, "found the shared sources: {files:?}");
    let mut constant_time = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let compares = code.contains("==") || code.contains("!=");
            let on_key = ["key_hash", "hash_key(", ".secret", "api_key"]
                .iter()
                .any(|name| code.contains(name));
            assert!(
                !(compares && on_key),
                "{}:{}: a key or key hash compared with ==/!= (use subtle::ConstantTimeEq): {line}",
                path.display(),
                number + 1
            );
            if code.contains("key_hash.as_bytes().ct_eq(") {
                constant_time.push(format!("{}:{}", path.display(), number + 1));
            }
        }
    }
    assert!(
        !constant_time.is_empty(),
        "the stored key hash is compared with subtle's ct_eq somewhere in shared/src/auth"
    );
    assert!(
        constant_time.iter().all(|at| at.contains("/auth")),
        "{constant_time:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The admin command's output
// ---------------------------------------------------------------------------------------------

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: AdminCommand,
}

async fn admin(repo: &Repository, args: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("admin").chain(args.iter().copied()))
        .expect("valid arguments");
    let output = local::admin::run(repo, None, cli.command)
        .await
        .expect("command succeeds");
    // What `orchestration admin` prints.
    serde_json::to_string_pretty(&output).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_prints_a_new_key_once_and_never_a_hash_or_a_stored_secret() {
    let table = TestTable::new(Backend::Embedded).await;
    let repo = Repository::new(table.table.clone());
    admin(&repo, &["create-space", "--slug", "acme", "--name", "Acme"]).await;
    let user: Value =
        serde_json::from_str(&admin(&repo, &["create-user", "--name", "Ada"]).await).unwrap();
    let user_id = user["id"].as_str().unwrap().to_string();

    let printed = admin(&repo, &["create-key", "--user", &user_id]).await;
    let created: Value = serde_json::from_str(&printed).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    exposure::record_api_key(&key);
    assert_eq!(
        printed.matches(&key).count(),
        1,
        "printed once: {created:#}"
    );
    assert!(!printed.contains(&hash_key(&key)));
    assert!(!printed.contains("hash"), "{printed}");

    let revoked = admin(
        &repo,
        &["revoke-key", "--key-id", created["id"].as_str().unwrap()],
    )
    .await;
    assert!(!revoked.contains(&key) && !revoked.contains(&hash_key(&key)));
    assert!(!revoked.contains("hash"), "{revoked}");

    let password = secret("connector_password", Some("svc"));
    let printed = admin(
        &repo,
        &[
            "create-connector",
            "--space",
            "acme",
            "--name",
            "local",
            "--base-url",
            "http://127.0.0.1:8080",
            "--created-by",
            &user_id,
            "--username",
            "svc",
            "--password-stored",
            &password,
        ],
    )
    .await;
    assert!(
        !printed.contains(&password),
        "the stored password is printed"
    );
    let connector: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        connector["auth"],
        json!({ "kind": "password", "username": "svc", "password": { "source": "stored" } })
    );
    // The secret itself is kept (it is what the sync uses).
    let id = connector["id"].as_str().unwrap().parse().unwrap();
    let space = repo.get_space("acme").await.unwrap().unwrap();
    let stored = repo.get_connector(space.id, id).await.unwrap().unwrap();
    assert_eq!(
        stored.auth,
        ConnectorAuth::Password {
            username: "svc".into(),
            password: SecretRef::Stored(password.clone())
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The scanner itself
// ---------------------------------------------------------------------------------------------

fn scan(folder: &Path) -> (i32, String) {
    let output = Command::new("python3")
        .arg(workspace().join("scripts/scan_exposure.py"))
        .arg(folder)
        .output()
        .expect("python3 runs scripts/scan_exposure.py (install Python 3)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn write_lines(path: PathBuf, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_scan_finds_each_planted_leak_without_printing_it_and_fails_on_no_capture() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path();

    // Nothing captured: a failure, not a pass.
    let (code, text) = scan(&capture.join("missing"));
    assert_eq!(code, 1, "{text}");
    let (code, text) = scan(capture);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no secrets were recorded"), "{text}");

    let key = format!("orch_{}", "K3y".repeat(13) + "k");
    let password = "pl4nted \"password\" value".to_string();
    let token = "planted-token-0123456789".to_string();
    let unrecorded_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl";
    let record = |kind: &str, value: &str, username: Option<&str>| {
        json!({ "kind": kind, "value": value, "username": username }).to_string()
    };
    write_lines(
        capture.join("planted-1.secrets.jsonl"),
        &[
            record("api_key", &key, None),
            record("api_key_hash", &hash_key(&key), None),
            record("connector_password", &password, Some("svc")),
            record("airflow_token", &token, None),
            record("connector_password", "admin", Some("admin")),
        ],
    );
    let response = |body: String| {
        json!({ "source": "api", "status": 200, "headers": [["content-type", "application/json"]], "body": body })
            .to_string()
    };
    let clean = response(json!({ "detail": "Invalid API key", "role": "admin" }).to_string());
    let clean_log =
        json!({ "level": "INFO", "fields": { "message": "request finished" } }).to_string();
    write_lines(
        capture.join("planted-1.responses.jsonl"),
        std::slice::from_ref(&clean),
    );
    write_lines(
        capture.join("planted-1.log.jsonl"),
        std::slice::from_ref(&clean_log),
    );

    // A clean capture passes, with its counts.
    let (code, text) = scan(capture);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 API responses"), "{text}");
    assert!(text.contains("1 log lines"), "{text}");
    assert!(text.contains("secrets: 5 distinct"), "{text}");
    assert!(text.contains("not searched: 1 shorter"), "{text}");
    assert!(text.contains("hits: 0"), "{text}");

    // Each leak, planted in its own line.
    let basic = STANDARD.encode(format!("svc:{password}"));
    let responses = [
        response(json!({ "detail": format!("bad key {key}") }).to_string()),
        response(json!({ "key_hash": "x" }).to_string()),
        response(json!({ "detail": password }).to_string()),
        json!({ "source": "api", "status": 200, "headers": [["x-echo", format!("Bearer {token}")]], "body": "" })
            .to_string(),
    ];
    let logs = [
        json!({ "fields": { "message": "auth", "header": format!("Basic {basic}") } }).to_string(),
        json!({ "fields": { "hash": hash_key(&key) } }).to_string(),
        json!({ "fields": { "token": unrecorded_jwt } }).to_string(),
        json!({ "fields": { "key": format!("orch_{}", "u".repeat(40)) } }).to_string(),
        json!({ "fields": { "url": format!("http://a/?p={}", urlencode(&password)) } }).to_string(),
    ];
    let mut all_responses = vec![clean];
    all_responses.extend(responses.iter().cloned());
    let mut all_logs = vec![clean_log];
    all_logs.extend(logs.iter().cloned());
    write_lines(capture.join("planted-1.responses.jsonl"), &all_responses);
    write_lines(capture.join("planted-1.log.jsonl"), &all_logs);
    write_lines(
        capture.join("planted-1.output.log"),
        &[format!("[server] listening, demo key {key}")],
    );
    let (code, text) = scan(capture);
    assert_eq!(code, 1, "{text}");
    for line in 2..=5 {
        assert!(
            text.contains(&format!("planted-1.responses.jsonl:{line}:")),
            "{text}"
        );
    }
    for line in 2..=6 {
        assert!(
            text.contains(&format!("planted-1.log.jsonl:{line}:")),
            "{text}"
        );
    }
    assert!(text.contains("planted-1.output.log:1:"), "{text}");
    assert!(
        !text.contains("responses.jsonl:1:") && !text.contains("log.jsonl:1:"),
        "{text}"
    );
    for (what, shown) in [
        ("key", key.as_str()),
        ("password", password.as_str()),
        ("token", token.as_str()),
        ("basic credentials", basic.as_str()),
        ("hash", hash_key(&key).as_str()),
        ("JWT", unrecorded_jwt),
    ] {
        assert!(
            !text.contains(shown),
            "the scan printed the {what}:\n{text}"
        );
    }
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
