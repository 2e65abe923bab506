//! The webhook adapter (local server): each event is POSTed as a Slack-compatible JSON
//! payload (`text`, plus the whole `event`), with a timeout per attempt and a bounded number
//! of attempts with a growing pause; an event whose attempts all fail stays in the outbox.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Envelope, Publisher};

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub timeout: Duration,
    pub attempts: u32,
    /// The pause before the second attempt (doubled each time).
    pub backoff: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

pub struct WebhookPublisher {
    client: reqwest::Client,
    url: reqwest::Url,
    settings: WebhookSettings,
}

impl WebhookPublisher {
    pub fn new(url: &str, settings: WebhookSettings) -> Result<Self, String> {
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| format!("the event webhook URL is not an http(s) URL: {url:?}"))?;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url,
            settings,
        })
    }

    async fn post(&self, envelope: &Envelope) -> Result<(), String> {
        let payload = json!({ "text": envelope.text, "event": envelope.detail });
        let mut pause = self.settings.backoff;
        let mut last = String::new();
        for attempt in 1..=self.settings.attempts.max(1) {
            if attempt > 1 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            match self
                .client
                .post(self.url.clone())
                .json(&payload)
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = format!("the webhook answered {}", response.status()),
                Err(error) if error.is_timeout() => last = "the webhook timed out".into(),
                Err(error) => last = format!("the webhook could not be reached: {error}"),
            }
        }
        Err(last)
    }
}

#[async_trait]
impl Publisher for WebhookPublisher {
    async fn publish(&self, envelopes: &[Envelope]) -> Vec<Result<(), String>> {
        let mut results = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let result = self.post(envelope).await;
            let failed = result.is_err();
            results.push(result);
            // The receiver is down: the rest waits for the next delivery, in order.
            if failed {
                results.extend(
                    envelopes[results.len()..]
                        .iter()
                        .map(|_| Err("not sent: an earlier event failed".to_string())),
                );
                break;
            }
        }
        results
    }

    fn name(&self) -> &'static str {
        "webhook"
    }
}
