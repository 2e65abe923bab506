//! Lambda entry point: configuration and clients once, then the router under `lambda_http`.

/// mimalloc: see the workspace Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::init_tracing();
    let state = shared::lambda::init(shared::http::lambda_state().await).await?;
    lambda_http::run(runs_function::router(state)).await
}
