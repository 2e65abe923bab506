//! Connector syncs on demand and their history.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{Deadline, PageRequest, Paged};
use crate::airflow::{AirflowClient, AirflowConfig, AirflowError, Credentials};
use crate::api::SyncView;
use crate::auth::Caller;
use crate::domain::model::{Connector, ConnectorAuth, Provider, Role};
use crate::domain::sync::{SyncCounts, SyncRecord, SyncStatus, SyncTrigger};
use crate::error::{Error, FieldError, Result};
use crate::repo::Repository;
use crate::secrets::SecretResolver;
use crate::sync::{SyncOptions, sync_connector};

/// Who may edit (and so sync) a connector: a space admin, or an editor who created it or is
/// listed among its editors.
pub fn can_edit(caller: &Caller, connector: &Connector) -> bool {
    caller.role >= Role::Admin
        || (caller.role >= Role::Editor
            && (connector.created_by == caller.user_id
                || connector.editors.contains(&caller.user_id)))
}

/// Timeouts and retries of calls to Airflow (the client's defaults unless changed).
#[derive(Debug, Clone, Copy)]
pub struct AirflowSettings {
    pub request_timeout: Duration,
    pub max_attempts: u32,
    pub retry_base_delay: Duration,
}

impl Default for AirflowSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            retry_base_delay: Duration::from_millis(200),
        }
    }
}

/// A client for the connector's Airflow, with its secret resolved now.
pub async fn client_for(
    connector: &Connector,
    secrets: &SecretResolver,
    settings: AirflowSettings,
) -> Result<AirflowClient, String> {
    let credentials = match &connector.auth {
        ConnectorAuth::Password { username, password } => Credentials::Password {
            username: username.clone(),
            password: secrets.resolve(password).await.map_err(|e| e.to_string())?,
        },
        ConnectorAuth::Token { token } => {
            Credentials::Token(secrets.resolve(token).await.map_err(|e| e.to_string())?)
        }
    };
    let mut config = AirflowConfig::new(
        connector.base_url.clone(),
        connector.api_version,
        credentials,
    );
    config.request_timeout = settings.request_timeout;
    config.max_attempts = settings.max_attempts;
    config.retry_base_delay = settings.retry_base_delay;
    AirflowClient::new(config).map_err(|e| e.to_string())
}

/// Why a request could not get a client for its connector's Airflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientUnavailable {
    /// The secret could not be read, or the settings are invalid: the reason.
    Credentials(String),
    /// The secret store did not answer before the request's Airflow cut-off.
    OutOfTime,
}

/// [`client_for`] within a request's deadline: the secret is resolved before the Airflow
/// cut-off, and every call of the client is bounded by it.
pub async fn client_before(
    connector: &Connector,
    secrets: &SecretResolver,
    settings: AirflowSettings,
    deadline: Deadline,
) -> Result<AirflowClient, ClientUnavailable> {
    match tokio::time::timeout(
        deadline.airflow_budget(),
        client_for(connector, secrets, settings),
    )
    .await
    {
        Ok(Ok(client)) => Ok(client.with_deadline(deadline.airflow_cutoff())),
        Ok(Err(reason)) => Err(ClientUnavailable::Credentials(reason)),
        Err(_) => Err(ClientUnavailable::OutOfTime),
    }
}

/// The connector, if it is in the caller's space (404 otherwise).
pub async fn find(repo: &Repository, caller: &Caller, connector_id: Uuid) -> Result<Connector> {
    repo.get_connector(caller.space_id, connector_id)
        .await?
        .ok_or(Error::NotFound("Connector not found"))
}

/// Syncs a connector now, answering by `deadline`: no Airflow call outlives its cut-off, and a
/// sync that runs out of time keeps its checkpoint (the record says `pending`). A sync that
/// cannot start for want of credentials is recorded as failed like any other.
#[allow(clippy::too_many_arguments)]
pub async fn sync(
    repo: &Repository,
    secrets: &SecretResolver,
    settings: AirflowSettings,
    publisher: &crate::publish::SharedPublisher,
    caller: &Caller,
    connector_id: Uuid,
    deadline: Deadline,
) -> Result<SyncView> {
    let connector = find(repo, caller, connector_id).await?;
    match connector.provider {
        Provider::Airflow => {}
    }
    if !can_edit(caller, &connector) {
        return Err(Error::Forbidden(
            "Syncing a connector needs permission to edit it (a space admin, or an editor who created it or is one of its editors)".into(),
        ));
    }
    let client = match client_before(&connector, secrets, settings, deadline).await {
        Ok(client) => client,
        Err(unavailable) => {
            let reason = match unavailable {
                ClientUnavailable::Credentials(reason) => reason,
                ClientUnavailable::OutOfTime => {
                    "the secret was not resolved before the request's deadline".into()
                }
            };
            return record_failure(
                repo,
                caller,
                &connector,
                format!("connector credentials: {reason}"),
            )
            .await;
        }
    };
    let mut options = SyncOptions::new(SyncTrigger::Manual, deadline.airflow_budget());
    options.triggered_by = Some(caller.user_id);
    let record = sync_connector(repo, &client, &connector, options).await?;
    // The events the sync found, published in the time the request has left (never failing
    // it: what is not published now is published by the next delivery).
    publisher
        .deliver_within(repo, deadline.airflow_budget())
        .await;
    Ok(SyncView::from(record))
}

async fn record_failure(
    repo: &Repository,
    caller: &Caller,
    connector: &Connector,
    error: String,
) -> Result<SyncView> {
    let now = Utc::now();
    let record = SyncRecord {
        id: Uuid::new_v4(),
        connector_id: connector.id,
        space_id: connector.space_id,
        trigger: SyncTrigger::Manual,
        triggered_by: Some(caller.user_id),
        started_at: now,
        finished_at: Some(now),
        status: SyncStatus::Failed,
        counts: SyncCounts::default(),
        warnings: Vec::new(),
        error: Some(error),
        airflow_requests: 0,
        pending: false,
    };
    repo.put_sync_record(&record).await?;
    Ok(record.into())
}

/// A connector's sync records, newest first (any member of the space).
pub async fn list_syncs(
    repo: &Repository,
    caller: &Caller,
    connector_id: Uuid,
    page: PageRequest,
) -> Result<Paged<SyncView>> {
    find(repo, caller, connector_id).await?;
    let records = repo
        .list_sync_records(caller.space_id, connector_id)
        .await?;
    let total = records.len() as u64;
    Ok(Paged {
        items: page
            .slice(records)
            .into_iter()
            .map(SyncView::from)
            .collect(),
        total,
        page,
    })
}

/// `Retry-After` given to the caller when Airflow answered 429 or 503 without one.
pub const DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS: u64 = 10;

/// How an Airflow failure reaches the API's caller (docs/API.md, "Trigger"): Airflow's 4xx
/// about the request passes through, except 401/403 (the caller's own key and role own those
/// codes: Airflow refusing the connector's credentials is a 502) and 422 (the platform's
/// validation list, with Airflow's locations); 429 and 503 keep their code with a
/// `Retry-After`; Airflow's 5xx and every other failure is a 502 naming the cause; no answer
/// in time a 504.
pub fn airflow_error(error: AirflowError) -> Error {
    match error {
        AirflowError::Status {
            status: status @ (401 | 403),
            detail,
            ..
        } => Error::BadGateway(format!(
            "Airflow refused the connector's credentials (HTTP {status}): {detail}"
        )),
        AirflowError::Status {
            status: 422,
            detail,
            fields,
            ..
        } => Error::UpstreamRejected {
            detail,
            fields: fields
                .into_iter()
                .map(|field| FieldError {
                    loc: field.loc,
                    msg: field.msg,
                    kind: field.kind,
                })
                .collect(),
        },
        AirflowError::Status {
            status: status @ (429 | 503),
            detail,
            retry_after,
            ..
        } => Error::Upstream {
            status,
            detail,
            retry_after_seconds: Some(retry_after.map_or(
                DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS,
                // Whole seconds, rounded up: never earlier than Airflow asked.
                |wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            )),
        },
        AirflowError::Status {
            status: status @ 500..,
            detail,
            ..
        } => Error::BadGateway(format!("Airflow failed (HTTP {status}): {detail}")),
        AirflowError::Status { status, detail, .. } => Error::Upstream {
            status,
            detail,
            retry_after_seconds: None,
        },
        AirflowError::Timeout(detail) | AirflowError::Deadline(detail) => {
            Error::GatewayTimeout(format!("Airflow did not answer in time: {detail}"))
        }
        AirflowError::Unreachable(detail) => {
            Error::BadGateway(format!("Airflow could not be reached: {detail}"))
        }
        AirflowError::Auth(detail) => Error::BadGateway(format!(
            "Airflow refused the connector's credentials: {detail}"
        )),
        AirflowError::Decode(detail) => Error::BadGateway(format!(
            "Airflow answered with an invalid response: {detail}"
        )),
        AirflowError::Invalid(detail) => Error::BadGateway(format!(
            "The connector's Airflow settings are invalid: {detail}"
        )),
    }
}
