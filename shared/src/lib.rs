//! Shared library of the Orchestration API: storage, domain, auth and HTTP plumbing used by
//! every Lambda function and by the local server.
//!
//! Layers, from the bottom: [`store`] (the table port and its DynamoDB and embedded adapters),
//! [`repo`] (every read and write, written once over the port), [`domain`] and [`service`]
//! (rules and use cases, free of HTTP and storage details), [`api`] (JSON shapes) and [`http`]
//! (extractors, parameter parsing, the one error-to-HTTP mapping).

pub mod airflow;
pub mod api;
pub mod auth;
pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod keys;
pub mod lambda;
pub mod publish;
pub mod repo;
pub mod secrets;
pub mod service;
pub mod store;
pub mod sync;
pub mod telemetry;

pub use error::{Error, Result};
