//! Delivery of pipeline events: the outbox (`repo::events`) is drained after syncs by a
//! [`Publisher`] — EventBridge on AWS, a webhook locally, or none — at least once: an event
//! leaves the outbox only once its publisher took it, and a failure leaves it there for the
//! next run. Consumers deduplicate by the event id (deterministic, `domain::events`).
//! Delivery never fails a sync: its outcome is logged and returned.

mod envelope;
mod eventbridge;
mod webhook;

use std::sync::Arc;

use async_trait::async_trait;

pub use envelope::{Envelope, envelopes};
pub use eventbridge::EventBridgePublisher;
pub use webhook::{WebhookPublisher, WebhookSettings};

use crate::repo::Repository;

/// Events read from the outbox per round (EventBridge takes 10 per call; a webhook one).
const ROUND: u32 = 50;

/// Where events go. Each entry of the answer says whether that envelope was taken.
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, envelopes: &[Envelope]) -> Vec<Result<(), String>>;

    /// For logs.
    fn name(&self) -> &'static str;

    /// True when events are dropped unseen: the outbox is emptied without building envelopes
    /// (no reads of pipelines, watchers or the space).
    fn discards(&self) -> bool {
        false
    }
}

/// No delivery: events are kept for the feed, and the outbox is emptied.
pub struct NoPublisher;

#[async_trait]
impl Publisher for NoPublisher {
    async fn publish(&self, envelopes: &[Envelope]) -> Vec<Result<(), String>> {
        envelopes.iter().map(|_| Ok(())).collect()
    }

    fn name(&self) -> &'static str {
        "none"
    }

    fn discards(&self) -> bool {
        true
    }
}

/// A publisher to keep in settings and state (`NoPublisher` by default).
#[derive(Clone)]
pub struct SharedPublisher(pub Arc<dyn Publisher>);

impl Default for SharedPublisher {
    fn default() -> Self {
        Self(Arc::new(NoPublisher))
    }
}

impl std::fmt::Debug for SharedPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedPublisher({})", self.0.name())
    }
}

impl SharedPublisher {
    /// [`deliver`], given at most `time` (what is not published by then stays in the outbox).
    pub async fn deliver_within(&self, repo: &Repository, time: std::time::Duration) -> Delivery {
        match tokio::time::timeout(time, deliver(repo, self.0.as_ref(), MAX_PER_DELIVERY)).await {
            Ok(delivery) => delivery,
            Err(_) => Delivery {
                error: Some("out of time: the rest is published by the next delivery".into()),
                ..Delivery::default()
            },
        }
    }
}

/// Events one delivery publishes at most (the rest waits for the next).
pub const MAX_PER_DELIVERY: usize = 1000;

/// What one delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub published: usize,
    /// Events left in the outbox after a failure (retried by the next delivery).
    pub failed: usize,
    pub error: Option<String>,
}

/// Publishes the outbox, oldest first, up to `max` events; stops at the first round with a
/// failure (what failed stays in the outbox). Never an error: a store or publisher failure
/// is in the returned [`Delivery`] and the log.
pub async fn deliver(repo: &Repository, publisher: &dyn Publisher, max: usize) -> Delivery {
    let mut delivery = Delivery::default();
    while delivery.published < max {
        let round = match deliver_round(repo, publisher, &mut delivery).await {
            Ok(round) => round,
            Err(error) => {
                delivery.error = Some(error.to_string());
                break;
            }
        };
        if round == 0 || delivery.failed > 0 {
            break;
        }
    }
    if delivery.published > 0 || delivery.failed > 0 || delivery.error.is_some() {
        tracing::info!(
            publisher = publisher.name(),
            published = delivery.published,
            failed = delivery.failed,
            error = delivery.error.as_deref().unwrap_or(""),
            "pipeline events delivered"
        );
    }
    delivery
}

async fn deliver_round(
    repo: &Repository,
    publisher: &dyn Publisher,
    delivery: &mut Delivery,
) -> crate::Result<usize> {
    let pending = repo.pending_events(ROUND).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let (keys, events): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
    if publisher.discards() {
        delivery.published += keys.len();
        let round = keys.len();
        repo.remove_from_outbox(keys).await?;
        return Ok(round);
    }
    let envelopes = envelopes(repo, events).await?;
    let results = publisher.publish(&envelopes).await;
    let mut done = Vec::new();
    for (key, result) in keys.into_iter().zip(results) {
        match result {
            Ok(()) => done.push(key),
            Err(reason) => {
                delivery.failed += 1;
                delivery.error.get_or_insert(reason);
            }
        }
    }
    delivery.published += done.len();
    let round = done.len();
    repo.remove_from_outbox(done).await?;
    Ok(round)
}

/// The publisher the environment asks for: `ORCHESTRATION_EVENT_BUS` (an EventBridge bus
/// name or ARN), else `ORCHESTRATION_EVENT_WEBHOOK_URL`, else none.
pub async fn from_env() -> Result<Arc<dyn Publisher>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(bus) = var(BUS_ENV) {
        return Ok(Arc::new(EventBridgePublisher::from_env(bus).await?));
    }
    if let Some(url) = var(WEBHOOK_ENV) {
        return Ok(Arc::new(WebhookPublisher::new(&url, Default::default())?));
    }
    Ok(Arc::new(NoPublisher))
}

pub const BUS_ENV: &str = "ORCHESTRATION_EVENT_BUS";
pub const WEBHOOK_ENV: &str = "ORCHESTRATION_EVENT_WEBHOOK_URL";
