//! The Airflow REST client: configuration, the read endpoints the sync needs, and trigger.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::auth::{CachedToken, Credential, TokenCache, rejects_token};
use super::error::AirflowError;
use super::models::{
    Dag, DagRun, Page, TaskInstance, TriggerRequest, decode_list, decode_one, decode_page,
};
use super::request::{api_url, paging, parse_url, timestamp, trigger_body, validate_base_url};
use super::transport::{Retry, Transport};
use crate::domain::model::AirflowApiVersion;

/// How the client authenticates. Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Basic auth on Airflow 2 (`/api/v1`); exchanged for a JWT on Airflow 3 (`/api/v2`).
    Password { username: String, password: String },
    /// A static `Authorization: Bearer` token, never refreshed.
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            Credentials::Token(_) => f.write_str("Token(***)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AirflowConfig {
    /// e.g. `http://127.0.0.1:28080`, or with a path prefix when Airflow is served under one.
    pub base_url: String,
    /// V1 = Airflow 2 `/api/v1` with basic auth; V2 = Airflow 3 `/api/v2` with a JWT.
    pub api_version: AirflowApiVersion,
    pub credentials: Credentials,
    /// Per HTTP request, answer body included.
    pub request_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles with each retry, jittered.
    pub retry_base_delay: Duration,
}

impl AirflowConfig {
    /// The defaults: 10 s timeout, 4 attempts, 200 ms base delay.
    pub fn new(
        base_url: impl Into<String>,
        api_version: AirflowApiVersion,
        credentials: Credentials,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            api_version,
            credentials,
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            retry_base_delay: Duration::from_millis(200),
        }
    }
}

/// A client of one Airflow. Cheap to clone (clones share the connection pool, the token and
/// the request counter); `Send + Sync`.
#[derive(Clone)]
pub struct AirflowClient {
    inner: Arc<Inner>,
    /// No call of this client runs past it (see [`AirflowClient::with_deadline`]).
    deadline: Option<Instant>,
}

struct Inner {
    /// `base_url` without its trailing slash.
    base: String,
    api_version: AirflowApiVersion,
    auth: Auth,
    transport: Transport,
}

enum Auth {
    Fixed(Credential),
    Jwt {
        username: String,
        password: String,
        cache: TokenCache,
    },
}

impl fmt::Debug for AirflowClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirflowClient")
            .field("base", &self.inner.base)
            .field("api_version", &self.inner.api_version)
            .finish_non_exhaustive()
    }
}

impl AirflowClient {
    pub fn new(config: AirflowConfig) -> Result<Self, AirflowError> {
        let base = validate_base_url(&config.base_url)?;
        let auth = match (config.credentials, config.api_version) {
            (Credentials::Token(token), _) => Auth::Fixed(Credential::Static(token)),
            (Credentials::Password { username, password }, AirflowApiVersion::V1) => {
                Auth::Fixed(Credential::Basic { username, password })
            }
            (Credentials::Password { username, password }, AirflowApiVersion::V2) => Auth::Jwt {
                username,
                password,
                cache: TokenCache::new(),
            },
        };
        let transport = Transport::new(
            config.request_timeout,
            config.max_attempts,
            config.retry_base_delay,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                base,
                api_version: config.api_version,
                auth,
                transport,
            }),
            deadline: None,
        })
    }

    /// This client, sharing its connections and token, with every call bounded by `deadline`:
    /// an attempt in flight is cut when it passes and no retry starts that would end after it
    /// (a request served behind API Gateway must answer within 29 s, whatever Airflow does).
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            deadline: Some(deadline),
        }
    }

    /// One page of DAGs, stale/inactive ones included (v2 `exclude_stale=false`, v1
    /// `only_active=false`), ordered by `dag_id`.
    pub async fn dags(&self, offset: u32, limit: u32) -> Result<Page<Dag>, AirflowError> {
        let include_inactive = match self.inner.api_version {
            AirflowApiVersion::V1 => ("only_active", "false".to_string()),
            AirflowApiVersion::V2 => ("exclude_stale", "false".to_string()),
        };
        let query = [
            paging(offset, limit).as_slice(),
            &[("order_by", "dag_id".to_string()), include_inactive],
        ]
        .concat();
        let body = self.get(&["dags"], &query).await?;
        decode_page(&body, "dags", offset, Dag::from_value)
    }

    /// One DAG (`GET /dags/{dag_id}`).
    pub async fn dag(&self, dag_id: &str) -> Result<Dag, AirflowError> {
        let body = self.get(&["dags", dag_id], &[]).await?;
        decode_one(&body, Dag::from_value)
    }

    /// One DAG run (`GET /dags/{dag_id}/dagRuns/{dag_run_id}`), e.g. to read back a run whose
    /// trigger answered 409 because an earlier attempt had created it.
    pub async fn dag_run(&self, dag_id: &str, dag_run_id: &str) -> Result<DagRun, AirflowError> {
        let body = self
            .get(&["dags", dag_id, "dagRuns", dag_run_id], &[])
            .await?;
        decode_one(&body, DagRun::from_value)
    }

    /// One page of DAG runs of all DAGs (`~`) with `updated_at >= since` (when given), ordered
    /// by Airflow's run `id`.
    ///
    /// Ordered by `id`, not `updated_at`: a run's id never changes and new runs get larger
    /// ones, so offset paging neither skips nor repeats runs while Airflow keeps updating
    /// them; ordered by `updated_at`, a run updated mid-sync would jump to the end and shift
    /// an unread run onto an already-read page.
    pub async fn dag_runs(
        &self,
        since: Option<DateTime<Utc>>,
        offset: u32,
        limit: u32,
    ) -> Result<Page<DagRun>, AirflowError> {
        let mut query = paging(offset, limit);
        query.push(("order_by", "id".to_string()));
        query.extend(since.map(|since| ("updated_at_gte", timestamp(since))));
        let body = self.get(&["dags", "~", "dagRuns"], &query).await?;
        decode_page(&body, "dag_runs", offset, DagRun::from_value)
    }

    /// One page of task instances of all runs (`~/~`) with `updated_at >= since` (when
    /// given). Airflow 3: ordered by the task instance `id`. Airflow 2 cannot order task
    /// instances by a unique key: its default order (`map_index`) is used.
    pub async fn task_instances(
        &self,
        since: Option<DateTime<Utc>>,
        offset: u32,
        limit: u32,
    ) -> Result<Page<TaskInstance>, AirflowError> {
        let mut query = paging(offset, limit);
        if self.inner.api_version == AirflowApiVersion::V2 {
            query.push(("order_by", "id".to_string()));
        }
        query.extend(since.map(|since| ("updated_at_gte", timestamp(since))));
        let path = ["dags", "~", "dagRuns", "~", "taskInstances"];
        let body = self.get(&path, &query).await?;
        decode_page(&body, "task_instances", offset, TaskInstance::from_value)
    }

    /// Every try of one task instance, oldest first as Airflow lists them
    /// (`.../taskInstances/{task_id}/{map_index}/tries`; Airflow 2 unmapped: `.../tries`).
    pub async fn tries(
        &self,
        dag_id: &str,
        dag_run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<Vec<TaskInstance>, AirflowError> {
        let map_index_text = map_index.to_string();
        let mut path = vec![
            "dags",
            dag_id,
            "dagRuns",
            dag_run_id,
            "taskInstances",
            task_id,
        ];
        if self.inner.api_version == AirflowApiVersion::V2 || map_index >= 0 {
            path.push(&map_index_text);
        }
        path.push("tries");
        let body = self.get(&path, &[]).await?;
        let (tries, _) = decode_list(&body, "task_instances", TaskInstance::from_value)?;
        Ok(tries)
    }

    /// Triggers a DAG run. Retried only when Airflow surely did not act on it (connection
    /// not established, 429, 503): after a timeout or another 5xx the run may exist, and the
    /// caller decides (e.g. by triggering with its own `dag_run_id` and reading a 409).
    pub async fn trigger(
        &self,
        dag_id: &str,
        request: &TriggerRequest,
    ) -> Result<DagRun, AirflowError> {
        let url = self.url(&["dags", dag_id, "dagRuns"], &[])?;
        let body = trigger_body(self.inner.api_version, request);
        let answer = self
            .call(Method::POST, &url, Some(&body), Retry::NonIdempotent)
            .await?;
        decode_one(&answer, DagRun::from_value)
    }

    /// HTTP requests sent so far by this client and its clones (retries and token requests
    /// included).
    pub fn requests_sent(&self) -> u64 {
        self.inner.transport.requests_sent()
    }

    async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Vec<u8>, AirflowError> {
        let url = self.url(path, query)?;
        self.call(Method::GET, &url, None, Retry::Idempotent).await
    }

    /// Sends with the current credential; a JWT that Airflow rejects is replaced once and
    /// the request sent once more.
    async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<Vec<u8>, AirflowError> {
        let transport = &self.inner.transport;
        let (username, password, cache) = match &self.inner.auth {
            Auth::Fixed(credential) => {
                return transport
                    .send(&method, url, body, Some(credential), retry, self.deadline)
                    .await;
            }
            Auth::Jwt {
                username,
                password,
                cache,
            } => (username, password, cache),
        };
        let token = cache
            .current(|| self.fetch_token(username, password))
            .await?;
        let answer = transport
            .send(
                &method,
                url,
                body,
                Some(&Credential::Jwt(token.clone())),
                retry,
                self.deadline,
            )
            .await;
        match answer {
            Err(AirflowError::Status { status, detail, .. }) if rejects_token(status, &detail) => {
                tracing::debug!(status, %detail, "Airflow rejected the JWT; getting a new one");
                let token = cache
                    .replace(&token, || self.fetch_token(username, password))
                    .await?;
                transport
                    .send(
                        &method,
                        url,
                        body,
                        Some(&Credential::Jwt(token)),
                        retry,
                        self.deadline,
                    )
                    .await
            }
            other => other,
        }
    }

    /// `{base}/api/v1|v2/<encoded path>?<query>`.
    fn url(&self, path: &[&str], query: &[(&str, String)]) -> Result<Url, AirflowError> {
        api_url(&self.inner.base, self.inner.api_version, path, query)
    }

    /// `POST {base}/auth/token` (Airflow 3). A 4xx answer (bad credentials: 401) is `Auth`;
    /// 429, 5xx and transport failures keep their retryable kinds.
    async fn fetch_token(
        &self,
        username: &str,
        password: &str,
    ) -> Result<CachedToken, AirflowError> {
        let url = parse_url(&format!("{}/auth/token", self.inner.base))?;
        let body = json!({ "username": username, "password": password });
        let answer = self
            .inner
            .transport
            .send(
                &Method::POST,
                &url,
                Some(&body),
                None,
                Retry::Idempotent,
                self.deadline,
            )
            .await
            .map_err(|error| match error {
                AirflowError::Status { status, detail, .. } if status < 500 && status != 429 => {
                    AirflowError::Auth(format!("POST /auth/token answered HTTP {status}: {detail}"))
                }
                other => other,
            })?;
        let token = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|value| value.get("access_token")?.as_str().map(str::to_string))
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                AirflowError::Auth("POST /auth/token answered without an access_token".into())
            })?;
        Ok(CachedToken::new(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_secrets() {
        let password = Credentials::Password {
            username: "admin".into(),
            password: "hunter2".into(),
        };
        let config = AirflowConfig::new("http://h", AirflowApiVersion::V2, password);
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Token("tok-123".into())).contains("tok-123"));
    }
}
