//! Triggering an Airflow DAG run from the platform.
//!
//! The run is created in Airflow and written to the store at once (status as Airflow answers,
//! normally `queued`); later syncs follow it. With an `Idempotency-Key`, a retried request
//! returns the first request's run instead of starting another: the key is claimed before
//! Airflow is called, and the Airflow run id is derived from it, so even a retry after a crash
//! between the two finds the run Airflow already has.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::airflow::{AirflowError, TriggerRequest};
use crate::api::RunView;
use crate::auth::Caller;
use crate::domain::model::Role;
use crate::error::{Error, Result};
use crate::repo::{IdempotencyRecord, Repository, RunWithTasks, idempotency_expiry};
use crate::secrets::SecretResolver;
use crate::service::Deadline;
use crate::service::connectors::{
    AirflowSettings, ClientUnavailable, airflow_error, client_before,
};
use crate::sync::mapping;

/// The optional body of `POST /pipelines/{id}/trigger`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerInput {
    pub conf: Option<Map<String, Value>>,
    /// Airflow 3 needs it in the body; absent means `null` (Airflow picks the run's time).
    pub logical_date: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

impl TriggerInput {
    fn fingerprint(&self, pipeline_id: Uuid) -> String {
        let canonical = json!({
            "pipeline_id": pipeline_id,
            "conf": self.conf,
            "logical_date": self.logical_date,
            "note": self.note,
        });
        hex(&Sha256::digest(canonical.to_string().as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A claimed key with no run after this long belongs to a request that died midway.
const ABANDONED_CLAIM: chrono::Duration = chrono::Duration::seconds(60);

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What a trigger answers (201 either way).
#[derive(Debug, Clone)]
pub enum Triggered {
    /// The run, created now.
    Created(Box<RunView>),
    /// A retry with the same `Idempotency-Key`: the original answer's body, as it was sent.
    Replayed(Value),
}

/// The hash an `Idempotency-Key` is stored and sent to Airflow under: scoped to the space,
/// the user and the pipeline, so the same key from another caller (or for another pipeline)
/// is another request, never a replay of someone else's run and `conf`. The Airflow run id is
/// derived from it too, so two spaces sharing one Airflow cannot meet there either.
pub fn idempotency_key_hash(space_id: Uuid, user_id: Uuid, pipeline_id: Uuid, key: &str) -> String {
    let scope = format!("{space_id}\n{user_id}\n{pipeline_id}\n");
    hex(&Sha256::digest([scope.as_bytes(), key.as_bytes()].concat()))
}

/// Triggers the pipeline's DAG: the run created now, or, for a retry with the same
/// `Idempotency-Key` (same space, user and pipeline), the first answer replayed. Airflow gets
/// until `deadline`'s cut-off to answer (504 after it, the key freed for a retry).
#[allow(clippy::too_many_arguments)]
pub async fn trigger(
    repo: &Repository,
    secrets: &SecretResolver,
    settings: AirflowSettings,
    caller: &Caller,
    pipeline_id: Uuid,
    input: TriggerInput,
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> Result<Triggered> {
    caller.require(Role::Editor)?;
    let pipeline = repo
        .get_pipeline(caller.space_id, pipeline_id)
        .await?
        .ok_or(Error::NotFound("Pipeline not found"))?;
    let connector = repo
        .get_connector(caller.space_id, pipeline.connector_id)
        .await?
        .ok_or_else(|| Error::internal("pipeline without its connector"))?;

    let fingerprint = input.fingerprint(pipeline_id);
    let claim = match idempotency_key {
        Some(key) => {
            let key_hash = idempotency_key_hash(caller.space_id, caller.user_id, pipeline_id, key);
            let record = IdempotencyRecord {
                pipeline_id,
                request_hash: fingerprint.clone(),
                run_id: None,
                response: None,
                claimed_at: now,
                expires_at: idempotency_expiry(now),
            };
            let earlier = repo
                .claim_idempotency_key(caller.space_id, caller.user_id, &key_hash, &record, now)
                .await?;
            match earlier {
                // A claim without a run, older than any request can take: its request died
                // midway. Taking it over is safe: the Airflow run id is the same, so a run it
                // did create is found rather than duplicated.
                Some(earlier)
                    if earlier.run_id.is_none()
                        && earlier.request_hash == fingerprint
                        && now - earlier.claimed_at > ABANDONED_CLAIM => {}
                Some(earlier) => {
                    return replay(repo, caller, &earlier, &fingerprint)
                        .await
                        .map(Triggered::Replayed);
                }
                None => {}
            }
            Some((key_hash, record))
        }
        None => None,
    };

    let key_hash = claim.as_ref().map(|(hash, _)| hash.as_str());
    let result = call_airflow(
        repo, secrets, settings, &connector, &pipeline, &input, key_hash, now, deadline,
    )
    .await;
    match (result, claim) {
        (Ok(run), Some((key_hash, mut record))) => {
            record.run_id = Some(run.id);
            record.response = Some(serde_json::to_value(&run).map_err(Error::internal)?);
            repo.complete_idempotency_key(caller.space_id, caller.user_id, &key_hash, &record)
                .await?;
            Ok(Triggered::Created(Box::new(run)))
        }
        (Ok(run), None) => Ok(Triggered::Created(Box::new(run))),
        (Err(error), Some((key_hash, _))) => {
            // Free the key so the client can retry: the retry sends the same Airflow run id,
            // so a run this attempt created after all (a timeout) is found, not duplicated.
            repo.release_idempotency_key(caller.space_id, caller.user_id, &key_hash)
                .await?;
            Err(error)
        }
        (Err(error), None) => Err(error),
    }
}

async fn replay(
    repo: &Repository,
    caller: &Caller,
    earlier: &IdempotencyRecord,
    fingerprint: &str,
) -> Result<Value> {
    if earlier.request_hash != fingerprint {
        return Err(Error::IdempotencyKeyReused);
    }
    let run_id = earlier.run_id.ok_or_else(|| {
        Error::Conflict("A request with this Idempotency-Key is still being processed".into())
    })?;
    if let Some(original) = &earlier.response {
        return Ok(original.clone());
    }
    let run = repo
        .get_run(caller.space_id, run_id)
        .await?
        .map(RunView::from)
        .ok_or_else(|| Error::internal("idempotency record points at a missing run"))?;
    serde_json::to_value(run).map_err(Error::internal)
}

#[allow(clippy::too_many_arguments)]
async fn call_airflow(
    repo: &Repository,
    secrets: &SecretResolver,
    settings: AirflowSettings,
    connector: &crate::domain::model::Connector,
    pipeline: &crate::domain::model::Pipeline,
    input: &TriggerInput,
    key_hash: Option<&str>,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> Result<RunView> {
    let client = client_before(connector, secrets, settings, deadline)
        .await
        .map_err(|unavailable| match unavailable {
            ClientUnavailable::Credentials(reason) => {
                Error::BadGateway(format!("connector credentials: {reason}"))
            }
            ClientUnavailable::OutOfTime => {
                Error::GatewayTimeout("the connector's secret was not resolved in time".into())
            }
        })?;
    // With an idempotency key the run id is fixed, so Airflow itself refuses a duplicate.
    let dag_run_id = key_hash.map(|hash| format!("api__{}", &hash[..32]));
    let request = TriggerRequest {
        dag_run_id: dag_run_id.clone(),
        logical_date: input.logical_date,
        conf: input.conf.clone(),
        note: input.note.clone(),
    };
    let dag_run = match client.trigger(&pipeline.dag_id, &request).await {
        Ok(dag_run) => dag_run,
        // Created by an earlier attempt that crashed before recording it: fetch it.
        Err(AirflowError::Status { status: 409, .. }) if dag_run_id.is_some() => client
            .dag_run(&pipeline.dag_id, dag_run_id.as_deref().unwrap_or_default())
            .await
            .map_err(airflow_error)?,
        Err(error) => return Err(airflow_error(error)),
    };
    let run = mapping::run(&dag_run, pipeline, now).ok_or_else(|| {
        Error::BadGateway(format!(
            "Airflow answered with an unknown run state '{}'",
            dag_run.state
        ))
    })?;
    // Not detecting: Airflow answers a trigger with the new run queued, which is no
    // transition; its failure or success is detected by the sync that reads it.
    repo.ingest_runs(
        pipeline,
        vec![RunWithTasks {
            run: run.clone(),
            task_runs: Vec::new(),
        }],
        now,
    )
    .await?;
    Ok(RunView::from(run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_scoped_to_space_user_and_pipeline() {
        let (space, user, pipeline) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let hash = idempotency_key_hash(space, user, pipeline, "retry-1");
        assert_eq!(hash, idempotency_key_hash(space, user, pipeline, "retry-1"));
        for other in [
            idempotency_key_hash(Uuid::new_v4(), user, pipeline, "retry-1"),
            idempotency_key_hash(space, Uuid::new_v4(), pipeline, "retry-1"),
            idempotency_key_hash(space, user, Uuid::new_v4(), "retry-1"),
            idempotency_key_hash(space, user, pipeline, "retry-2"),
        ] {
            // Also the Airflow run id (`api__` + the first 32 characters) differs.
            assert_ne!(other[..32], hash[..32]);
        }
    }
}
