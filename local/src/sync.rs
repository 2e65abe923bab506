//! `orchestration sync`: the scheduled sync's logic on demand, with a progress bar per
//! connector, so a local server can show a real Airflow's data.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use shared::domain::model::Connector;
use shared::domain::sync::SyncTrigger;
use shared::repo::Repository;
use shared::secrets::SecretResolver;
use shared::service::connectors::client_for;
use shared::sync::due::{Settings, due_connectors};
use shared::sync::{Progress, SyncOptions, sync_connector};
use uuid::Uuid;

pub async fn run(
    repo: &Repository,
    space: Option<String>,
    connector: Option<Uuid>,
    budget: Duration,
) -> anyhow::Result<()> {
    let connectors: Vec<Connector> = match (&space, connector) {
        (Some(slug), _) => {
            let space = repo
                .get_space(slug)
                .await?
                .with_context(|| format!("no space '{slug}'"))?;
            let all = repo.list_connectors(space.id).await?;
            match connector {
                Some(id) => all.into_iter().filter(|c| c.id == id).collect(),
                None => all,
            }
        }
        (None, Some(id)) => repo
            .list_all_connectors()
            .await?
            .into_iter()
            .filter(|c| c.id == id)
            .collect(),
        (None, None) => due_connectors(repo, Settings::default().interval).await?,
    };
    if connectors.is_empty() {
        if space.is_some() || connector.is_some() {
            bail!("no such connector");
        }
        println!("no connector is due");
        return Ok(());
    }
    let secrets = SecretResolver::new();
    let mut failures = 0;
    for connector in connectors {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} {msg:>15} [{bar:30}] {pos}/{len} ({elapsed})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(connector.name.clone());
        let client = match client_for(&connector, &secrets, Default::default()).await {
            Ok(client) => client,
            Err(reason) => {
                bar.abandon_with_message(format!("credentials: {reason}"));
                failures += 1;
                continue;
            }
        };
        let mut options = SyncOptions::new(SyncTrigger::Manual, budget);
        let progress_bar = bar.clone();
        options.progress = Some(std::sync::Arc::new(move |p: Progress| {
            progress_bar.set_message(p.phase);
            progress_bar.set_length(p.total.max(p.done));
            progress_bar.set_position(p.done);
        }));
        let started = Instant::now();
        match sync_connector(repo, &client, &connector, options).await {
            Ok(record) => {
                bar.finish_and_clear();
                println!("{}", serde_json::to_string_pretty(&record)?);
                if record.error.is_some() {
                    failures += 1;
                }
            }
            Err(error) => {
                bar.abandon_with_message(error.to_string());
                failures += 1;
            }
        }
        tracing::info!(connector_id = %connector.id, elapsed_ms = started.elapsed().as_millis() as u64, "sync done");
    }
    if failures > 0 {
        bail!("{failures} connector sync(s) failed");
    }
    Ok(())
}
