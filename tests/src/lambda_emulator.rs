//! The five function binaries under cargo-lambda's Lambda Runtime API emulator, as users run
//! them: `cargo lambda watch --only-lambda-apis` serves the Runtime API and the Invoke API, and
//! each function binary is started by hand with the variables it prints
//! (`AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:<port>/.rt/<function>`, `AWS_LAMBDA_FUNCTION_NAME`, ...).
//! An invocation is `POST /2015-03-31/functions/<function>/invocations` with the event as body;
//! the answer is what the function posted to `.../response` (200) or `.../error` (500).
//!
//! What cargo-lambda 1.9.2 does differently from Lambda, and what the tests do about it
//! (read in its `crates/cargo-lambda-watch` sources, and seen on this machine):
//! - `Lambda-Runtime-Deadline-Ms` is a constant 600000, not an epoch time: code must not trust
//!   an implausible deadline (the scheduled sync falls back to its own budget);
//! - an `init/error` answers the oldest pending invocation of the *first function the emulator
//!   has seen* (and waits for one if that function has none): init failures are therefore
//!   checked with one emulator per function, with the invocation pending before the function
//!   starts;
//! - invocations wait without limit: every wait here is bounded by the client instead.
//!
//! Every server binds 127.0.0.1; processes started here are killed when their handle drops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The function binaries, as named in template.yaml's `BuildProperties.Binary`.
pub const FUNCTIONS: [&str; 5] = [
    "pipelines",
    "runs",
    "comments",
    "connectors",
    "scheduled-sync",
];

/// What `scripts/test` runs before these tests (the binaries are taken from target/debug).
pub const BUILD_COMMAND: &str = "cargo build --bins -p pipelines-function -p runs-function \
     -p comments-function -p connectors-function -p scheduled-sync-function";

/// Folder of the built function binaries (default: the workspace's target/debug).
pub const BIN_DIR_ENV: &str = "ORCHESTRATION_LAMBDA_BIN_DIR";
/// The cargo-lambda executable (default: the tools venv's).
pub const CARGO_LAMBDA_ENV: &str = "ORCHESTRATION_CARGO_LAMBDA";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .canonicalize()
        .expect("workspace root")
}

/// The folder holding all five binaries; fails (never skips) when one is missing.
pub fn binary_dir() -> PathBuf {
    let dir = std::env::var_os(BIN_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug"));
    let missing: Vec<&str> = FUNCTIONS
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the Lambda function binaries {missing:?} are not in {} ({BIN_DIR_ENV}): build them \
         first with `{BUILD_COMMAND}`",
        dir.display()
    );
    // A binary older than the code would test old code (cargo relinks on any source change,
    // so right after the build command every binary is newer than every source).
    let root = workspace_root();
    let newest_source = ["shared", "functions"]
        .iter()
        .filter_map(|folder| newest(&root.join(folder)))
        .chain(newest(&root.join("Cargo.lock")))
        .max();
    for name in FUNCTIONS {
        let built = modified(&dir.join(name));
        if let (Some(built), Some((source_time, source))) = (built, &newest_source) {
            assert!(
                built >= *source_time,
                "{} is older than {}: rebuild with `{BUILD_COMMAND}`",
                dir.join(name).display(),
                source.display()
            );
        }
    }
    dir
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The most recently modified `.rs`/`.toml`/`.lock` file under `path` (or `path` itself).
fn newest(path: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    if path.is_file() {
        return modified(path).map(|t| (t, path.to_path_buf()));
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            p.is_dir()
                || p.extension()
                    .is_some_and(|e| e == "rs" || e == "toml" || e == "lock")
        })
        .filter_map(|p| newest(&p))
        .max()
}

fn cargo_lambda() -> PathBuf {
    let path = std::env::var_os(CARGO_LAMBDA_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/venv/bin/cargo-lambda"));
    assert!(
        path.is_file(),
        "cargo-lambda not found at {} ({CARGO_LAMBDA_ENV}): scripts/test installs it into \
         .tools/venv (pip install cargo-lambda)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
        .port()
}

fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `cargo lambda watch --only-lambda-apis` on a loopback port.
pub struct Emulator {
    child: Child,
    port: u16,
    log: PathBuf,
    client: reqwest::Client,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// Starts the emulator (its log goes to `dir`) and waits until it accepts connections.
    pub async fn start(dir: &Path, name: &str) -> Self {
        let port = free_port();
        let log = dir.join(format!("cargo-lambda-{name}.log"));
        let child = Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            // It reads the workspace's metadata to know the function names.
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .expect("start cargo lambda watch");
        let mut emulator = Self {
            child,
            port,
            log,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("invoke client"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = emulator.child.try_wait() {
                panic!("cargo lambda watch exited ({status}):\n{}", emulator.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cargo lambda watch did not listen on 127.0.0.1:{port} within 60 s:\n{}",
                emulator.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        emulator
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// `AWS_LAMBDA_RUNTIME_API` of a function: its own path under the emulator's `/.rt`.
    pub fn runtime_api(&self, function: &str) -> String {
        format!("http://127.0.0.1:{}/.rt/{function}", self.port)
    }

    /// Invokes `function` with `payload`: (status, body), or why there was none in `timeout`.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &str,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.port
        );
        let answer = self
            .client
            .post(url)
            .body(payload.to_string())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| match e.is_timeout() {
                true => format!("invoking {function}: no answer within {timeout:?}"),
                false => format!("invoking {function}: {e}"),
            })?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| format!("reading {function}'s answer: {e}"))?;
        Ok((status, body.to_vec()))
    }
}

/// A function binary polling the emulator, started as Lambda starts `bootstrap`: with only
/// the environment it is given (the parent's is not inherited).
pub struct FunctionProcess {
    child: Child,
    pub name: String,
    log: PathBuf,
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The variables Lambda (and cargo-lambda's printout) gives a function, JSON logs as
/// template.yaml configures them.
pub fn lambda_environment(emulator: &Emulator, function: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api(function)),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl FunctionProcess {
    pub fn start(
        bin_dir: &Path,
        function: &str,
        environment: &[(String, String)],
        log_dir: &Path,
        label: &str,
    ) -> Self {
        let log = log_dir.join(format!("{label}.log"));
        let child = Command::new(bin_dir.join(function))
            .env_clear()
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {function}: {e}"));
        Self {
            child,
            name: function.to_string(),
            log,
        }
    }

    /// Everything it printed so far (JSON log lines).
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Its exit status if it exits within `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if started.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if it has exited (a crash between invocations).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

/// A fresh folder for one test's logs under `base` (the test's `CARGO_TARGET_TMPDIR`), kept
/// for reading after a failure.
pub fn log_dir(base: &str, test: &str) -> PathBuf {
    let dir = PathBuf::from(base)
        .join("lambda")
        .join(format!("{test}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("log folder");
    println!("logs of {test}: {}", dir.display());
    dir
}
