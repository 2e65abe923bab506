//! The EventBridge adapter: `PutEvents` in batches of at most 10 entries (EventBridge's
//! limit), each entry's outcome taken from the answer (a call can partly fail).

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{Envelope, Publisher};

/// The `source` of every event this API publishes (rules match on it).
pub const SOURCE: &str = "orchestration-api";
/// EventBridge's limits: entries per call, and bytes per entry (detail included).
const BATCH: usize = 10;
const MAX_ENTRY_BYTES: usize = 256 * 1024;

pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// A client from the standard AWS environment (`AWS_ENDPOINT_URL_EVENTBRIDGE` too).
    pub async fn from_env(bus: String) -> Result<Self, String> {
        let config = crate::aws::sdk_config().await?;
        let mut builder = aws_sdk_eventbridge::config::Builder::from(&config);
        if let Some(endpoint) =
            crate::aws::blank_endpoint_override("AWS_ENDPOINT_URL_EVENTBRIDGE", &config)
        {
            builder.set_endpoint_url(endpoint);
        }
        // PutEvents calls in the downstream timing lines, as DynamoDB's and Secrets Manager's.
        builder.push_interceptor(aws_sdk_eventbridge::config::SharedInterceptor::new(
            crate::aws::timing::Timing,
        ));
        Ok(Self::new(Client::from_conf(builder.build()), bus))
    }

    async fn put(&self, batch: &[Envelope]) -> Vec<Result<(), String>> {
        let mut results: Vec<Option<Result<(), String>>> = vec![None; batch.len()];
        let mut entries = Vec::new();
        let mut positions = Vec::new();
        for (position, envelope) in batch.iter().enumerate() {
            let detail = envelope.detail.to_string();
            // An entry EventBridge would refuse whatever we do: reported, never retried
            // silently forever (the outbox entry expires with its event).
            if detail.len() + envelope.detail_type.len() + SOURCE.len() > MAX_ENTRY_BYTES {
                results[position] = Some(Err(format!("event {} is over 256 KB", envelope.id)));
                continue;
            }
            entries.push(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(envelope.detail_type)
                    .detail(detail)
                    .build(),
            );
            positions.push(position);
        }
        if !entries.is_empty() {
            match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(answer) => {
                    let answered = answer.entries();
                    for (i, position) in positions.iter().enumerate() {
                        let outcome = match answered.get(i) {
                            Some(entry) if entry.error_code().is_none() => Ok(()),
                            Some(entry) => Err(format!(
                                "{}: {}",
                                entry.error_code().unwrap_or_default(),
                                entry.error_message().unwrap_or_default()
                            )),
                            None => Err("EventBridge did not answer for this entry".into()),
                        };
                        results[*position] = Some(outcome);
                    }
                }
                Err(error) => {
                    let reason = format!(
                        "PutEvents failed: {}",
                        aws_sdk_eventbridge::error::DisplayErrorContext(&error)
                    );
                    for position in positions {
                        results[position] = Some(Err(reason.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not sent".into())))
            .collect()
    }
}

#[async_trait]
impl Publisher for EventBridgePublisher {
    async fn publish(&self, envelopes: &[Envelope]) -> Vec<Result<(), String>> {
        let mut results = Vec::with_capacity(envelopes.len());
        for batch in envelopes.chunks(BATCH) {
            results.extend(self.put(batch).await);
        }
        results
    }

    fn name(&self) -> &'static str {
        "eventbridge"
    }
}
