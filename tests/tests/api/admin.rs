//! The admin command's operations bootstrap a working space, on both backends: what an
//! operator does on a fresh deployment, then a request with the key it printed.

use orchestration_tests::{Backend, TestTable, on_both_backends};
use serde_json::Value;
use shared::http::AppState;
use shared::repo::Repository;

use clap::Parser;
use local::admin::AdminCommand;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: AdminCommand,
}

async fn admin(repo: &Repository, args: &[&str]) -> Value {
    let cli = Cli::try_parse_from(std::iter::once("admin").chain(args.iter().copied()))
        .expect("valid arguments");
    local::admin::run(repo, None, cli.command)
        .await
        .expect("command succeeds")
}

async fn admin_err(repo: &Repository, args: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("admin").chain(args.iter().copied()))
        .expect("valid arguments");
    local::admin::run(repo, None, cli.command)
        .await
        .expect_err("command fails")
        .to_string()
}

async fn bootstrap_a_space_and_use_the_key(backend: Backend) {
    let table = TestTable::new(backend).await;
    let repo = Repository::new(table.table.clone());
    admin(&repo, &["create-space", "--slug", "acme", "--name", "Acme"]).await;
    assert!(
        admin_err(
            &repo,
            &["create-space", "--slug", "acme", "--name", "Again"]
        )
        .await
        .contains("already exists")
    );
    assert!(
        admin_err(
            &repo,
            &["create-space", "--slug", "Bad Slug", "--name", "x"]
        )
        .await
        .contains("validation")
    );
    let user = admin(
        &repo,
        &["create-user", "--name", "Ada", "--email", "ada@example.com"],
    )
    .await;
    let user_id = user["id"].as_str().unwrap().to_string();
    admin(
        &repo,
        &[
            "set-member",
            "--space",
            "acme",
            "--user",
            &user_id,
            "--role",
            "viewer",
        ],
    )
    .await;
    let key = admin(
        &repo,
        &["create-key", "--user", &user_id, "--expires-in-days", "30"],
    )
    .await;
    let secret = key["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("orch_"));
    assert!(key["expires_at"].is_string());
    let team = admin(&repo, &["create-team", "--space", "acme", "--name", "Data"]).await;
    assert_eq!(team["name"], "Data");
    let connector = admin(
        &repo,
        &[
            "create-connector",
            "--space",
            "acme",
            "--name",
            "prod",
            "--base-url",
            "https://airflow.example.com/",
            "--created-by",
            &user_id,
            "--username",
            "svc",
            "--password-secret-arn",
            "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        ],
    )
    .await;
    assert_eq!(connector["base_url"], "https://airflow.example.com");
    assert_eq!(connector["auth"]["password"]["source"], "secrets_manager");
    assert!(
        admin_err(
            &repo,
            &[
                "create-connector",
                "--space",
                "acme",
                "--name",
                "x",
                "--base-url",
                "https://a",
                "--created-by",
                &user_id
            ]
        )
        .await
        .contains("needs either")
    );

    // The printed key works over HTTP; the stored record holds only its hash.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Without the authentication cache, so the revocation below shows at once (its delay
    // with the cache is tested in access_limits.rs).
    let access = shared::config::AccessConfig {
        auth_cache_ttl: std::time::Duration::ZERO,
        ..Default::default()
    };
    let app = local::app(AppState::with_access(repo.clone(), access));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("{base}/api/v1.0/spaces/acme/orchestration/pipelines");
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let stored = repo
        .find_api_key(&shared::auth::hash_key(&secret))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.key_hash, secret);
    assert!(!serde_json::to_string(&stored).unwrap().contains(&secret));

    let revoked = admin(
        &repo,
        &["revoke-key", "--key-id", key["id"].as_str().unwrap()],
    )
    .await;
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    server.abort();
}

on_both_backends!(bootstrap_a_space_and_use_the_key);

/// The README's "local server on DynamoDB" path loads the demo before serving. On moto (the
/// CI engine, started by scripts/moto_server.py) the default demo for DynamoDB must load in
/// well under a minute: the full month did not finish in three (moto copied the table for
/// every item of every transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_loads_on_moto_within_a_minute() {
    let table = orchestration_tests::dynamo_table().await;
    let repo = Repository::new(std::sync::Arc::new(table));
    let started = std::time::Instant::now();
    let outcome = local::history::demo::load(
        &repo,
        None,
        chrono::Utc::now(),
        local::history::demo::DEMO_DAYS_ON_DYNAMODB,
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(
        outcome.loaded && outcome.pipelines == 25,
        "{}",
        outcome.runs
    );
    assert!(
        outcome.runs > 300 && outcome.task_runs > 1000,
        "{} runs",
        outcome.runs
    );
    assert!(
        elapsed < std::time::Duration::from_secs(60),
        "the demo took {elapsed:?} on moto"
    );
    eprintln!(
        "demo ({} runs, {} task runs) loaded on moto in {elapsed:?}",
        outcome.runs, outcome.task_runs
    );
    // The demo shows a few pipeline events: the last day's failures and recoveries, and a
    // freshness breach of the pipeline expected hourly.
    let events = repo
        .list_events(outcome.space_id, None, chrono::Utc::now())
        .await
        .unwrap();
    let kinds: std::collections::HashSet<_> = events.iter().map(|e| e.event_type).collect();
    use shared::domain::events::EventType;

    assert!(kinds.contains(&EventType::RunFailed), "{kinds:?}");
    assert!(kinds.contains(&EventType::FreshnessBreached), "{kinds:?}");
    assert!(
        events.len() < 100,
        "a few, not the history: {}",
        events.len()
    );
}
