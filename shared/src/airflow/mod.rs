//! Client of Apache Airflow's REST API: Airflow 3 (`/api/v2`, JWT from `POST /auth/token`)
//! and Airflow 2 (`/api/v1`, basic auth), or a static bearer token on either.
//!
//! Every call has a timeout and is retried with jittered exponential backoff on 429 (with
//! `Retry-After`), 5xx, connection errors and timeouts; a trigger only where Airflow surely
//! did nothing. Answers are decoded tolerantly ([`models`]): Airflow adds fields and enum
//! values in every minor release. Secrets never appear in errors, logs or `Debug` output.

mod auth;
mod client;
mod error;
mod fields;
pub mod models;
mod request;
mod transport;

pub use client::{AirflowClient, AirflowConfig, Credentials};
pub use error::{AirflowError, AirflowFieldError};
pub use models::{Dag, DagRun, Page, TaskInstance, TriggerRequest};
pub use request::MAX_PAGE_LIMIT;
