//! The HTTP API over loopback: reads, writes, authorization, limits, the OpenAPI document, exposure, admin commands.
//!
//! One test binary per area (linking each test file separately costs minutes on 2 cores).

mod read_api;
mod write_api;
mod authorization_matrix;
mod access_limits;
mod query_limits;
mod runs_paging;
mod compression;
mod local_server_limits;
mod openapi;
mod exposure;
mod admin;
