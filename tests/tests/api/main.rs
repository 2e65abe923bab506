//! The HTTP API over loopback: reads, writes, authorization, limits, the OpenAPI document, exposure, admin commands.
//!
//! One test binary per area (linking each test file separately costs minutes on 2 cores).

mod access_limits;
mod admin;
mod authorization_matrix;
mod compression;
mod exposure;
mod local_server_limits;
mod openapi;
mod query_limits;
mod read_api;
mod runs_paging;
mod write_api;
