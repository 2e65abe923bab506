//! `orchestration`: the local server (`serve`, optionally with demo data) and admin commands.

/// mimalloc: see the workspace Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use local::admin::{self, AdminCommand};
use local::history::demo;
use shared::config::StoreConfig;
use shared::http::AppState;
use shared::repo::Repository;
use shared::store::dynamo::DynamoTable;

#[derive(Debug, Parser)]
#[command(
    name = "orchestration",
    about = "Orchestration API: local server and admin tooling"
)]
struct Cli {
    /// Folder of the embedded store (ignored when DYNAMODB_TABLE selects DynamoDB).
    #[arg(long, global = true, env = "ORCHESTRATION_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the whole API (every endpoint group) in one process.
    Serve {
        /// Load the demo space first (once per store) and print a demo API key.
        #[arg(long)]
        demo: bool,
        /// Days of demo history (default 30 on the embedded store, 3 on DynamoDB, where moto
        /// cannot take more in reasonable time; see README).
        #[arg(long, env = "ORCHESTRATION_DEMO_DAYS", value_parser = clap::value_parser!(i64).range(1..=demo::MAX_DEMO_DAYS))]
        demo_days: Option<i64>,
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        /// Address to bind; loopback unless you mean to expose it.
        #[arg(long, env = "HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        host: IpAddr,
    },
    /// Load the demo space (once per store) and print a demo API key.
    Demo {
        /// Days of demo history (as for `serve --demo-days`).
        #[arg(long, env = "ORCHESTRATION_DEMO_DAYS", value_parser = clap::value_parser!(i64).range(1..=demo::MAX_DEMO_DAYS))]
        demo_days: Option<i64>,
    },
    /// Print the OpenAPI document (what `scripts/openapi` writes to docs/openapi.json).
    Openapi,
    /// Bootstrap spaces, users, memberships, keys, teams and connectors.
    #[command(subcommand)]
    Admin(Box<AdminCommand>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The per-call timing lines (target `downstream`, shared::aws::timing) are for the Lambda
    // logs; here they would bury the server's lines and the sync's progress bar. RUST_LOG
    // (e.g. `info`) shows them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,downstream=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        print!("{}", local::openapi_text());
        return Ok(());
    }
    let config = match (StoreConfig::from_env(), cli.data_dir) {
        (StoreConfig::Embedded { .. }, Some(data_dir)) => StoreConfig::Embedded { data_dir },
        (config, _) => config,
    };
    let dynamo = match &config {
        StoreConfig::DynamoDb { table } => Some(
            DynamoTable::from_env(table.clone())
                .await
                .context("cannot open the store")?,
        ),
        StoreConfig::Embedded { .. } => None,
    };
    let table = match &dynamo {
        Some(dynamo) => Arc::new(dynamo.clone()) as Arc<dyn shared::store::Table>,
        None => config.open().await.context("cannot open the store")?,
    };
    let retention = shared::config::event_retention_from_env().map_err(anyhow::Error::msg)?;
    let repo = Repository::new(table).with_event_retention(retention);
    tracing::info!(store = %config.describe(), "store ready");

    match cli.command {
        Command::Serve {
            demo,
            demo_days,
            port,
            host,
        } => {
            if demo {
                load_demo(&repo, demo_days_for(&config, demo_days)).await?;
            }
            let access = shared::config::AccessConfig::from_env().map_err(anyhow::Error::msg)?;
            let mut state = AppState::with_access(repo, access);
            state.request_deadline =
                shared::config::request_deadline_from_env().map_err(anyhow::Error::msg)?;
            let publisher = shared::publish::from_env()
                .await
                .map_err(anyhow::Error::msg)?;
            state.publisher = shared::publish::SharedPublisher(publisher);
            local::spawn_event_delivery(state.repo.clone(), state.publisher.clone());
            local::serve(state, SocketAddr::new(host, port)).await?;
        }
        Command::Demo { demo_days } => load_demo(&repo, demo_days_for(&config, demo_days)).await?,
        Command::Openapi => unreachable!("handled before the store is opened"),
        Command::Admin(command) => {
            let output = admin::run(&repo, dynamo.as_ref(), *command).await?;
            if !output.is_null() {
                println!("{}", serde_json::to_string_pretty(&output)?);
            }
        }
    }
    Ok(())
}

/// The demo's days of history: as chosen, else the full month on the embedded store and
/// [`demo::DEMO_DAYS_ON_DYNAMODB`] on DynamoDB.
fn demo_days_for(config: &StoreConfig, chosen: Option<i64>) -> i64 {
    chosen.unwrap_or(match config {
        StoreConfig::Embedded { .. } => demo::DEMO_DAYS,
        StoreConfig::DynamoDb { .. } => demo::DEMO_DAYS_ON_DYNAMODB,
    })
}

async fn load_demo(repo: &Repository, days: i64) -> anyhow::Result<()> {
    let key = std::env::var(demo::DEMO_KEY_ENV)
        .ok()
        .filter(|k| !k.is_empty());
    let started = std::time::Instant::now();
    let outcome = demo::load(repo, key, chrono::Utc::now(), days)
        .await
        .context("loading the demo space failed")?;
    if outcome.loaded {
        tracing::info!(
            days,
            pipelines = outcome.pipelines,
            runs = outcome.runs,
            task_runs = outcome.task_runs,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "demo space loaded"
        );
    } else {
        tracing::info!("demo space already present (delete the data folder to regenerate it)");
    }
    println!("Demo space: {}", demo::DEMO_SLUG);
    println!(
        "Demo API key (admin of space '{}'): {}",
        demo::DEMO_SLUG,
        outcome.api_key
    );
    println!("Editor key (Eddie Editor): {}", outcome.editor_key);
    println!("Viewer key (Vera Viewer): {}", outcome.viewer_key);
    for (name, id, url) in &outcome.connectors {
        println!("Connector '{name}' ({url}): {id}");
    }
    Ok(())
}
