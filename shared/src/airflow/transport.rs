//! One HTTP call to Airflow with its timeout and retries (jittered exponential backoff,
//! `Retry-After` honoured), counting every request sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::auth::Credential;
use super::error::{AirflowError, error_detail, field_errors};

/// The longest wait a `Retry-After` header can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Which failures may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads (and token requests): 429, 5xx, connection errors, timeouts.
    Idempotent,
    /// A trigger may have created the run even if no answer came back: only failures where
    /// Airflow surely did nothing (connection not established, 429, 503).
    NonIdempotent,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    max_attempts: u32,
    base_delay: Duration,
    requests: AtomicU64,
}

/// A complete answer, whatever its status.
struct Reply {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Transport {
    pub(crate) fn new(
        timeout: Duration,
        max_attempts: u32,
        base_delay: Duration,
    ) -> Result<Self, AirflowError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("orchestration-api/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| AirflowError::Invalid(format!("HTTP client: {error}")))?;
        Ok(Self {
            http,
            max_attempts: max_attempts.max(1),
            base_delay,
            requests: AtomicU64::new(0),
        })
    }

    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends until a 2xx answer (its body is returned), a failure that must not be retried,
    /// `max_attempts` attempts, or `deadline`.
    ///
    /// The deadline bounds everything: an attempt in flight is cut when it passes (whatever
    /// Airflow does: hang after accepting, drip bytes), and no retry starts whose backoff
    /// would end past it. Cut before any attempt failed, the call ends in
    /// [`AirflowError::Deadline`] (the caller ran out of time, Airflow may be fine); after a
    /// failed attempt, in that attempt's error (Airflow is failing).
    pub(crate) async fn send(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        credential: Option<&Credential>,
        retry: Retry,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, AirflowError> {
        let mut attempt = 1;
        let mut last_error = None;
        loop {
            let remaining = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            let reply = match remaining {
                None => self.once(method, url, body, credential).await,
                Some(remaining) if remaining.is_zero() => {
                    return Err(cut_at_deadline(method, url, last_error));
                }
                Some(remaining) => {
                    match tokio::time::timeout(remaining, self.once(method, url, body, credential))
                        .await
                    {
                        Ok(reply) => reply,
                        Err(_) => return Err(cut_at_deadline(method, url, last_error)),
                    }
                }
            };
            let (error, retry_after) = match reply {
                Ok(reply) if reply.status.is_success() => return Ok(reply.body),
                Ok(reply) => {
                    let status = reply.status.as_u16();
                    let error = AirflowError::Status {
                        status,
                        detail: error_detail(&reply.body),
                        retry_after: reply.retry_after,
                        fields: field_errors(&reply.body),
                    };
                    let retryable = match status {
                        429 | 503 => true,
                        500.. => retry == Retry::Idempotent,
                        _ => false,
                    };
                    if !retryable {
                        return Err(error);
                    }
                    (error, reply.retry_after)
                }
                Err(error) => {
                    // A request that timed out may have reached Airflow even when reqwest also
                    // flags the connection: only a connection that surely failed is safe to
                    // retry for a non-idempotent request.
                    let never_sent = error.is_connect() && !error.is_timeout();
                    let retryable = never_sent || retry == Retry::Idempotent;
                    let error = transport_error(method, url, &error);
                    if !retryable {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            if attempt >= self.max_attempts {
                return Err(error);
            }
            let delay = retry_after
                .map(|asked| asked.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| backoff(self.base_delay, attempt));
            if deadline.is_some_and(|at| Instant::now() + delay >= at) {
                // The retry could not finish in time: this failure is the answer.
                return Err(error);
            }
            tracing::debug!(
                %method,
                path = url.path(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                %error,
                "retrying Airflow request"
            );
            tokio::time::sleep(delay).await;
            last_error = Some(error);
            attempt += 1;
        }
    }

    async fn once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        credential: Option<&Credential>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(credential) = credential {
            request = credential.apply(request);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let reply = async {
            let response = request.send().await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_retry_after);
            let body = response.bytes().await?.to_vec();
            Ok(Reply {
                status,
                retry_after,
                body,
            })
        }
        .await;
        log_timing(method, url, &reply, started);
        reply
    }
}

/// One line per HTTP request sent to Airflow (retries and token requests included), in the
/// caller's span (a request's id and X-Ray trace id): method, path template, status, duration.
/// An attempt cut by the caller's deadline logs nothing here; the call's error says so.
fn log_timing(method: &Method, url: &Url, reply: &Result<Reply, reqwest::Error>, started: Instant) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status, outcome) = match reply {
        Ok(reply) if reply.status.is_success() => (reply.status.as_u16(), "ok"),
        Ok(reply) => (reply.status.as_u16(), "error"),
        Err(error) if error.is_timeout() => (0, "timeout"),
        Err(_) => (0, "unreachable"),
    };
    tracing::info!(
        target: crate::aws::timing::LOG_TARGET,
        downstream = "airflow",
        %method,
        path = %path_template(url),
        duration_ms,
        status,
        outcome,
        "downstream call"
    );
}

/// The path of an Airflow URL with its identifiers replaced: `/api/v2/dags/{id}/dagRuns`.
/// Airflow's REST paths alternate collection and identifier after `api/<version>`; the
/// identifiers (DAG and run ids, which may name customers) and the query (filters, cursors)
/// stay out of the logs. Paths outside the REST API (`/auth/token`) are fixed strings; the
/// base URL's own path prefix is kept.
pub(crate) fn path_template(url: &Url) -> String {
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let api = segments
        .windows(2)
        .position(|pair| pair[0] == "api" && pair[1].starts_with('v'));
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    match api {
        None => out.extend(&segments),
        Some(at) => {
            out.extend(&segments[..at + 2]);
            for (index, segment) in segments[at + 2..].iter().enumerate() {
                out.push(if index % 2 == 1 { "{id}" } else { segment });
            }
        }
    }
    format!("/{}", out.join("/"))
}

/// The error of a call whose deadline passed: the last failed attempt's, if there was one.
fn cut_at_deadline(method: &Method, url: &Url, last_error: Option<AirflowError>) -> AirflowError {
    last_error.unwrap_or_else(|| {
        AirflowError::Deadline(format!(
            "{method} {}: no answer before the request's deadline",
            url.path()
        ))
    })
}

/// `Retry-After` as seconds or as an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`; a date past
/// is zero). Not capped: the caller caps its own waits, and passes Airflow's value on.
fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_at(value, chrono::Utc::now())
}

fn parse_retry_after_at(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// `base * 2^(attempt-1)`, capped, with "equal jitter": uniformly between half and all of it.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponential = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF);
    exponential.mul_f64(rand::random_range(0.5..=1.0))
}

/// `Timeout` or `Unreachable`, with the method, path and cause (never headers or body).
fn transport_error(method: &Method, url: &Url, error: &reqwest::Error) -> AirflowError {
    // reqwest's own message repeats the URL; the path is said once, first.
    let top = error.to_string();
    let top = top.split(" for url (").next().unwrap_or_default();
    let mut text = format!("{method} {}: {top}", url.path());
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    if error.is_timeout() {
        AirflowError::Timeout(text)
    } else {
        AirflowError::Unreachable(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates_keep_no_identifier_and_no_query() {
        let template = |url: &str| path_template(&Url::parse(url).unwrap());
        assert_eq!(
            template("https://af.example/api/v2/dags/customer_x/dagRuns/run%201?limit=5"),
            "/api/v2/dags/{id}/dagRuns/{id}"
        );
        assert_eq!(
            template("https://af.example/airflow/api/v1/dags/~/dagRuns/~/taskInstances"),
            "/airflow/api/v1/dags/{id}/dagRuns/{id}/taskInstances"
        );
        assert_eq!(template("https://af.example/api/v2/dags"), "/api/v2/dags");
        assert_eq!(template("https://af.example/auth/token"), "/auth/token");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .to_utc();
        let parse = |value| parse_retry_after_at(value, now);
        assert_eq!(parse("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse("Wed, 21 Oct 2015 07:28:42 GMT"),
            Some(Duration::from_secs(42))
        );
        assert_eq!(parse("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("-3"), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let base = Duration::from_millis(200);
        for _ in 0..50 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_millis(100) && first <= base);
            let third = backoff(base, 3);
            assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
            assert!(backoff(base, 40) <= MAX_BACKOFF);
        }
    }
}
