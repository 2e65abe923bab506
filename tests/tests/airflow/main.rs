//! Airflow: the REST client against a fake Airflow, the endpoints that call it, the sync engine, deadlines, and the integration test against a real Airflow 3.
//!
//! One test binary per area (linking each test file separately costs minutes on 2 cores).

mod airflow_client;
mod airflow_endpoints;
mod airflow_integration;
mod deadlines;
mod event_delivery;
mod events;
mod sync;
mod sync_convergence;
