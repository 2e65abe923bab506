//! Sync faults end to end: for a realistic Airflow (six DAGs, one paused and one stale with
//! runs; 33 runs, finished, failed, running and queued, over two pages; two tasks per run, a
//! mapped task with three instances in every fifth run, retried tasks — one twice — and a
//! retried mapped instance; 81 task instances over four overlapping pages; 18 requests in all),
//! a fault is injected at every request index of a full sync in turn, and after a clean sync
//! the mirror must equal exactly what Airflow serves: every pipeline, run and task-run try
//! counted and compared field by field, and every pipeline's summaries (run series, latest /
//! last-success / last-failure references) equal to what its stored runs say.
//!
//! Pages are 30 items instead of Airflow's 100 so that several pages of each kind stay cheap
//! (the whole matrix is a few hundred syncs, and the cost of a sync is per item); the paging
//! code is the same at any size.
//!
//! Fault kinds: HTTP 500, a timeout (an answer slower than the client's timeout), a TCP reset
//! before any byte, a body cut short of its `Content-Length`, and a 200 whose body is not
//! JSON. Each is injected for as many consecutive requests as the client makes attempts, so
//! the sync really fails at that index (garbage is not retried at all); separately, a single
//! reset or truncated answer at each index must be absorbed by the client's retries.
//!
//! On the embedded store every (index, kind) pair runs: 18 indexes × 5 kinds = 90 failed syncs
//! each followed by a clean one, and 36 absorbed single faults. On DynamoDB (moto, an order of
//! magnitude slower per request) a sample runs: each kind once, at indexes spread over the
//! phases, and two absorbed single faults. See `docs/SYNC.md` for the guarantees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as Span, Utc};
use futures::StreamExt;
use orchestration_tests::app::new_connector;
use orchestration_tests::fake_airflow::{AirflowState, FakeAirflow, Fault};
use orchestration_tests::mirror::{MirrorCounts, assert_mirrors_airflow};
use orchestration_tests::{Backend, TestTable, on_both_backends};
use shared::airflow::AirflowClient;
use shared::domain::model::{Connector, ConnectorAuth, SecretRef};
use shared::domain::sync::{SyncRecord, SyncStatus, SyncTrigger};
use shared::repo::Repository;
use shared::secrets::SecretResolver;
use shared::service::connectors::{AirflowSettings, client_for};
use shared::store::Table;
use shared::store::embedded::EmbeddedTable;
use shared::sync::{SyncOptions, sync_connector};

/// Attempts the client makes per request (a fault must last this long to fail the sync).
const ATTEMPTS: u32 = 3;
/// The client's timeout; the timeout fault answers later than this.
const TIMEOUT: Duration = Duration::from_millis(300);
/// Scenarios run at once (each has its own store and fake Airflow).
const PARALLEL: usize = 4;

fn settings() -> AirflowSettings {
    AirflowSettings {
        request_timeout: TIMEOUT,
        max_attempts: ATTEMPTS,
        retry_base_delay: Duration::from_millis(2),
    }
}

/// Items per Airflow page (see the module docs).
const PAGE: u32 = 30;

fn options() -> SyncOptions {
    let mut options = SyncOptions::new(SyncTrigger::Manual, Duration::from_secs(60));
    options.page_size = PAGE;
    options
}

const DAGS: [&str; 4] = [
    "ingest_orders",
    "transform_sales",
    "export_reports",
    "ml_features",
];
const RUNS: usize = 30;

/// The realistic Airflow of the module docs.
fn realistic(state: &mut AirflowState) {
    let base = Utc::now() - Span::days(2);
    for dag in DAGS {
        state.add_dag(dag, "data-team");
    }
    state.add_dag("paused_backfill", "ops");
    state.dags.get_mut("paused_backfill").unwrap().0 = true;
    state.add_dag("legacy_cleanup", "ops");
    state.dags.get_mut("legacy_cleanup").unwrap().1 = true;
    for i in 0..RUNS {
        let dag = DAGS[i % DAGS.len()];
        let run_id = format!("scheduled__{i:04}+00:00");
        let state_name = match i {
            29 => "queued",
            27 | 28 => "running",
            _ if i % 4 == 1 => "failed",
            _ => "success",
        };
        let at = base + Span::minutes(15 * i as i64);
        state.add_run(dag, &run_id, state_name, at, &["extract", "load"]);
        if i % 5 == 0 {
            state.add_mapped_task(&run_id, "fan_out", 3, at);
        }
    }
    for i in 0..3 {
        state.add_run(
            "legacy_cleanup",
            &format!("manual__legacy_{i}"),
            "success",
            base - Span::hours(i + 1),
            &["vacuum"],
        );
    }
    for i in (0..RUNS).step_by(7) {
        let at = base + Span::minutes(15 * i as i64 + 5);
        state.retry_task(&format!("scheduled__{i:04}+00:00"), "load", at);
    }
    for i in [3, 12, 26] {
        let at = base + Span::minutes(15 * i as i64 + 6);
        state.retry_task(&format!("scheduled__{i:04}+00:00"), "extract", at);
    }
    // One task retried twice, and one mapped instance retried.
    state.retry_task("scheduled__0014+00:00", "load", base + Span::hours(9));
    state.retry_mapped_task(
        "scheduled__0000+00:00",
        "fan_out",
        1,
        base + Span::minutes(7),
    );
}

struct Scenario {
    repo: Repository,
    connector: Connector,
    airflow: FakeAirflow,
    client: AirflowClient,
    _store: Store,
}

/// The store of one scenario. The embedded one lives in memory-backed storage when the
/// machine has it (`/dev/shm`): these tests are about what the sync writes, not about the
/// disk, and the fsync of every commit would triple their run time (the crash-safety tests
/// use a real disk).
enum Store {
    Shared(#[allow(dead_code)] TestTable),
    Memory(#[allow(dead_code)] tempfile::TempDir),
}

impl Store {
    async fn new(backend: Backend) -> (Self, Arc<dyn Table>) {
        let shm = std::path::Path::new("/dev/shm");
        if backend == Backend::Embedded && shm.is_dir() {
            let dir = tempfile::tempdir_in(shm).expect("temp dir in /dev/shm");
            let table = EmbeddedTable::open(&dir.path().join("store.redb")).expect("open store");
            return (Store::Memory(dir), Arc::new(table));
        }
        let table = TestTable::new(backend).await;
        let handle = table.table.clone();
        (Store::Shared(table), handle)
    }
}

impl Scenario {
    async fn new(backend: Backend) -> Self {
        let (store, table) = Store::new(backend).await;
        let repo = Repository::new(table);
        let space = repo.create_space("acme", "Acme", Utc::now()).await.unwrap();
        let airflow = FakeAirflow::start().await;
        airflow.with(realistic);
        let connector = Connector {
            base_url: airflow.url(),
            auth: ConnectorAuth::Password {
                username: "admin".into(),
                password: SecretRef::Stored("admin".into()),
            },
            ..new_connector(space.id, uuid::Uuid::new_v4(), "prod")
        };
        repo.put_connector(&connector).await.unwrap();
        let client = client_for(&connector, &SecretResolver::new(), settings())
            .await
            .unwrap();
        Self {
            repo,
            connector,
            airflow,
            client,
            _store: store,
        }
    }

    async fn sync(&self) -> SyncRecord {
        sync_connector(&self.repo, &self.client, &self.connector, options())
            .await
            .expect("the sync itself never errors on an Airflow fault")
    }

    async fn assert_mirror(&self, context: &str) -> MirrorCounts {
        let snapshot = self.airflow.with(|state| Snapshot::of(state));
        snapshot.assert(&self.repo, &self.connector, context).await
    }
}

/// A copy of the fake's data, so no lock is held across awaits.
struct Snapshot(AirflowState);

impl Snapshot {
    fn of(state: &AirflowState) -> Self {
        let mut copy = AirflowState::default();
        copy.dags = state.dags.clone();
        copy.runs = state.runs.clone();
        copy.task_instances = state.task_instances.clone();
        Self(copy)
    }

    async fn assert(
        &self,
        repo: &Repository,
        connector: &Connector,
        context: &str,
    ) -> MirrorCounts {
        assert_mirrors_airflow(repo, connector, &self.0, context).await
    }
}

#[derive(Debug, Clone)]
enum Kind {
    ServerError,
    Timeout,
    Reset,
    Truncated,
    Garbage,
}

const KINDS: [Kind; 5] = [
    Kind::ServerError,
    Kind::Timeout,
    Kind::Reset,
    Kind::Truncated,
    Kind::Garbage,
];

impl Kind {
    /// What the sync's error says when this fault outlasted the retries (a garbage token
    /// answer is an authentication failure instead).
    fn symptom(&self) -> &'static str {
        match self {
            Kind::ServerError => "HTTP 500",
            Kind::Timeout => "timed out",
            Kind::Reset => "Connection reset by peer",
            Kind::Truncated => "end of file before message length reached",
            Kind::Garbage => "invalid JSON",
        }
    }

    fn fault(&self) -> Fault {
        match self {
            Kind::ServerError => Fault::Status(500),
            Kind::Timeout => Fault::Delay(TIMEOUT * 3),
            Kind::Reset => Fault::Reset,
            Kind::Truncated => Fault::Truncated,
            Kind::Garbage => Fault::Garbage,
        }
    }
}

/// A fault at `index` that the client's retries cannot absorb; the sync fails there, then a
/// clean sync must converge.
async fn fail_then_converge(backend: Backend, index: usize, kind: Kind) -> MirrorCounts {
    let s = Scenario::new(backend).await;
    let context = format!("{backend:?}, {kind:?} at request {index}");
    s.airflow.with(|state| {
        state.fault_next_at(index, (0..ATTEMPTS).map(|_| kind.fault()));
    });
    let broken = s.sync().await;
    // The fault really is what it claims to be, as the client saw it.
    let error = broken.error.clone().unwrap_or_default();
    assert!(
        error.contains(kind.symptom()) || (index == 0 && matches!(kind, Kind::Garbage)),
        "{context}: {error}"
    );
    assert_eq!(
        broken.status,
        SyncStatus::Failed,
        "{context}: the fault outlasts the retries: {broken:?}"
    );
    assert!(
        broken.pending,
        "{context}: the failed sync keeps its checkpoint"
    );
    // The retries of a garbage answer never happen: its extra faults must not hit the clean sync.
    s.airflow.with(AirflowState::clear_faults);
    let clean = s.sync().await;
    assert_eq!(
        clean.status,
        SyncStatus::Succeeded,
        "{context}: clean sync: {clean:?}"
    );
    assert!(!clean.pending);
    s.assert_mirror(&context).await
}

/// One reset or truncated answer at `index`: the client retries and the one sync succeeds.
async fn absorbed_by_retry(backend: Backend, index: usize, kind: Kind) {
    let s = Scenario::new(backend).await;
    let context = format!("{backend:?}, one {kind:?} at request {index}");
    s.airflow.with(|state| state.fault_at(index, kind.fault()));
    let record = s.sync().await;
    assert_eq!(
        record.status,
        SyncStatus::Succeeded,
        "{context}: {record:?}"
    );
    s.assert_mirror(&context).await;
}

/// The number of requests of a clean full sync, and what it mirrors.
async fn probe(backend: Backend) -> (usize, MirrorCounts) {
    let s = Scenario::new(backend).await;
    let record = s.sync().await;
    assert_eq!(record.status, SyncStatus::Succeeded, "{record:?}");
    let counts = s.assert_mirror(&format!("{backend:?}, clean sync")).await;
    let log = s.airflow.with(|state| state.log.clone());
    // Token, DAGs, two pages of runs, four of task instances, and the tries of the retried
    // instances (those in a page overlap are asked for again).
    let pages = |path: &str| log.iter().filter(|l| l.ends_with(path)).count();
    assert_eq!(pages("/dagRuns"), 2, "{log:#?}");
    assert_eq!(pages("/taskInstances"), 4, "{log:#?}");
    assert_eq!(pages("/tries"), 10, "{log:#?}");
    (log.len(), counts)
}

async fn every_fault_at_every_request_converges(backend: Backend) {
    let started = Instant::now();
    let (requests, counts) = probe(backend).await;
    assert_eq!(
        counts,
        MirrorCounts {
            pipelines: 6,
            runs: 33,
            // 30×2 + 6 mapped runs × 3 + 3 legacy, plus 5 retried loads (one twice), 3
            // retried extracts and one retried mapped instance.
            task_runs: 60 + 18 + 3 + 5 + 1 + 3 + 1,
        }
    );
    let cases: Vec<(usize, Kind)> = match backend {
        Backend::Embedded => (0..requests)
            .flat_map(|index| KINDS.iter().map(move |kind| (index, kind.clone())))
            .collect(),
        // A sample, one per kind, spread over the phases (moto is an order of magnitude slower
        // per request): DAGs, second page of runs, first page of task instances, a tries
        // request, the last request.
        Backend::DynamoDb => vec![
            (1, Kind::ServerError),
            (3, Kind::Reset),
            (4, Kind::Truncated),
            (5, Kind::Garbage),
            (requests - 1, Kind::Timeout),
        ],
    };
    let total = cases.len();
    let mut compared = MirrorCounts::default();
    let mut results = futures::stream::iter(cases)
        .map(|(index, kind)| fail_then_converge(backend, index, kind))
        .buffer_unordered(PARALLEL);
    while let Some(counts) = results.next().await {
        compared.pipelines += counts.pipelines;
        compared.runs += counts.runs;
        compared.task_runs += counts.task_runs;
    }
    eprintln!(
        "{backend:?}: {total} fault scenarios over {requests} request indexes converged in {:?}; \
         compared {} pipelines, {} runs, {} task-run tries in all",
        started.elapsed(),
        compared.pipelines,
        compared.runs,
        compared.task_runs
    );
}

async fn a_single_reset_or_short_body_is_retried(backend: Backend) {
    let started = Instant::now();
    let (requests, _) = probe(backend).await;
    let cases: Vec<(usize, Kind)> = match backend {
        Backend::Embedded => (0..requests)
            .flat_map(|index| [(index, Kind::Reset), (index, Kind::Truncated)])
            .collect(),
        // Retrying is the client's business, whatever the store: two samples.
        Backend::DynamoDb => vec![(3, Kind::Reset), (requests - 1, Kind::Truncated)],
    };
    let total = cases.len();
    futures::stream::iter(cases)
        .map(|(index, kind)| absorbed_by_retry(backend, index, kind))
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "{backend:?}: {total} single network faults absorbed by retries in {:?}",
        started.elapsed()
    );
}

on_both_backends!(
    every_fault_at_every_request_converges,
    a_single_reset_or_short_body_is_retried,
);
