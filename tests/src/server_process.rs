//! The local server in a child process, to be killed with SIGKILL.
//!
//! A test binary cannot name the `orchestration` binary of another package (cargo only sets
//! `CARGO_BIN_EXE_*` for its own package, and a stale `target/debug/orchestration` would test
//! old code), so the child is the test binary itself, re-run on one test, [`child_entry`]'s,
//! with the environment saying where the store is: that test then does what `orchestration
//! serve` does — opens the embedded store of the data folder, reads the access settings from
//! the environment, and runs `local::serve` until it is killed.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shared::config::{AccessConfig, StoreConfig};
use shared::http::AppState;
use shared::repo::Repository;

/// Set in the child: the data folder of its embedded store.
const DATA_DIR_ENV: &str = "ORCHESTRATION_TEST_CHILD_DATA_DIR";
/// Set in the child: the loopback port to serve on.
const PORT_ENV: &str = "ORCHESTRATION_TEST_CHILD_PORT";

/// The body of the child's test: serves until killed when run as a child, returns at once
/// otherwise (in an ordinary test run it is a no-op test).
pub async fn child_entry() {
    let (Ok(data_dir), Ok(port)) = (std::env::var(DATA_DIR_ENV), std::env::var(PORT_ENV)) else {
        return;
    };
    let table = StoreConfig::Embedded {
        data_dir: PathBuf::from(data_dir),
    }
    .open()
    .await
    .expect("the child opens the store");
    let access = AccessConfig::from_env().expect("access settings");
    let state = AppState::with_access(Repository::new(table), access);
    let port: u16 = port.parse().expect("port");
    local::serve(state, SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("serve");
}

/// A running child server.
pub struct ServerProcess {
    child: Child,
    pub base: String,
}

impl ServerProcess {
    /// Starts the server on the store in `data_dir`, re-running the current test binary on the
    /// test named `entry_test` (which must call [`child_entry`]), and waits until it answers.
    pub async fn start(data_dir: &Path, entry_test: &str, log: &Path) -> Self {
        // A free port: bound then released (the child binds it a moment later).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("child log");
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([entry_test, "--exact", "--nocapture", "--test-threads", "1"])
            .env(DATA_DIR_ENV, data_dir)
            .env(PORT_ENV, port.to_string())
            .env("RUST_LOG", "warn")
            // Load tests drive one key hard; limits are tested elsewhere.
            .env(shared::config::RATE_LIMIT_ENV, "0")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("start the server process");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = client
                .get(format!("{}/health", server.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer /health within 30 s; its log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown handler, no flush, no drain.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
