//! Crash safety of the local server on the embedded store: the server process is killed with
//! SIGKILL in the middle of a write-heavy load, restarted on the same data folder, and the
//! store must be consistent:
//!
//! * every write that got a 2xx is there with its content (comments and their edits, team and
//!   criticality PATCHes, a sync's record and everything it mirrored); a write cut off by the
//!   kill is there entirely or not at all;
//! * nothing is half-written: both items of every comment agree, the index never points at a
//!   missing item nor misses one, every task run has its run, every run its pipeline;
//! * every pipeline's summaries (run series, latest / last-success / last-failure references)
//!   are exactly what its stored runs say — also for the syncs the kill interrupted;
//! * the restarted server serves normally (reads, and writes continuing the load).
//!
//! Each round: start the server (a child process, see `server_process`), check the state the
//! previous rounds left over HTTP, drive four writer tasks (comment creates and `If-Match`
//! edits, team and criticality PATCHes, each on items it alone writes, so the expected state
//! is exact) and one full sync of a fresh connector against a slow fake Airflow, SIGKILL after
//! a seeded random delay, then open the store in this process and check it item by item.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use orchestration_tests::app::new_connector;
use orchestration_tests::fake_airflow::{AirflowState, FakeAirflow};
use orchestration_tests::mirror::{assert_mirrors_airflow, assert_summaries_match_runs};
use orchestration_tests::server_process::{ServerProcess, child_entry};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use reqwest::Method;
use serde_json::{Map, Value, json};
use shared::config::StoreConfig;
use shared::domain::model::{Connector, ConnectorAuth, Role, SecretRef};
use shared::domain::sync::SyncTrigger;
use shared::repo::Repository;
use shared::secrets::SecretResolver;
use shared::service::connectors::{AirflowSettings, client_for};
use shared::sync::{SyncOptions, sync_connector};
use uuid::Uuid;

/// The store file of a data folder (`shared::config`).
const STORE_FILE: &str = "orchestration.redb";
const ROUNDS: usize = 6;
const WRITERS: usize = 4;
const SEED: u64 = 0x5eed_c0ff_ee00_0007;
const CRITICALITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// SplitMix64: a small seeded generator, so every run of the test kills at the same moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The child process's test: the server itself (see `server_process`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_child() {
    child_entry().await;
}

/// The fake Airflow every connector of the test points at: several DAGs, runs over pages,
/// three tasks each, some retried; pages are slow so a sync lasts long enough to be killed.
fn airflow_data(state: &mut AirflowState) {
    let base = Utc::now() - chrono::Duration::days(3);
    let dags = ["orders", "billing", "reports", "features", "exports"];
    for dag in dags {
        state.add_dag(dag, "data-team");
    }
    for i in 0..140 {
        state.add_run(
            dags[i % dags.len()],
            &format!("scheduled__{i:04}"),
            if i % 9 == 4 { "failed" } else { "success" },
            base + chrono::Duration::minutes(20 * i as i64),
            &["extract", "transform", "load"],
        );
    }
    for i in (0..140).step_by(13) {
        state.retry_task(
            &format!("scheduled__{i:04}"),
            "load",
            base + chrono::Duration::minutes(20 * i as i64 + 3),
        );
    }
    state.set_latency(Some(Duration::from_millis(60)));
}

/// What the test knows about the store: acknowledged values, and the one write per writer
/// that may or may not have happened when the server died.
#[derive(Default)]
struct Ledger {
    /// comment id → acknowledged (version, content), and an edit in flight.
    comments: BTreeMap<Uuid, (u64, String, Option<String>)>,
    /// Contents of creates in flight (their ids were never answered).
    pending_creates: Vec<String>,
    /// (pipeline id, "team" | "criticality") → acknowledged value, and a PATCH in flight.
    governance: BTreeMap<(Uuid, &'static str), (Value, Option<Value>)>,
    /// Connectors whose sync answered 200, and those whose sync was cut off.
    synced: Vec<Uuid>,
    interrupted_syncs: Vec<Uuid>,
    acknowledged: usize,
}

struct Fixture {
    airflow: FakeAirflow,
    space_id: Uuid,
    /// One admin key per writer (each writer is the author of its comments).
    keys: Vec<String>,
    teams: Vec<Uuid>,
    /// Connector 0 is synced before the first round; round r syncs connector r + 1.
    connectors: Vec<Connector>,
    /// Runs to comment on, and each writer's own pipelines.
    runs: Vec<Uuid>,
    pipelines: Vec<Vec<Uuid>>,
}

async fn open_repo(data_dir: &Path) -> Repository {
    let table = StoreConfig::Embedded {
        data_dir: data_dir.to_path_buf(),
    }
    .open()
    .await
    .expect("open the store");
    Repository::new(table)
}

/// Seeds the store the way `orchestration admin` does, and syncs the first connector.
async fn seed(data_dir: &Path) -> Fixture {
    let airflow = FakeAirflow::start().await;
    airflow.with(airflow_data);
    let repo = open_repo(data_dir).await;
    let now = Utc::now();
    let space = repo.create_space("acme", "Acme", now).await.unwrap();
    let mut keys = Vec::new();
    let mut first_user = None;
    for w in 0..WRITERS {
        let user = repo
            .create_user(&format!("Writer {w}"), None, now)
            .await
            .unwrap();
        repo.set_membership("acme", user.id, Role::Admin, now)
            .await
            .unwrap();
        keys.push(
            repo.create_api_key(user.id, "crash", None, None, now)
                .await
                .unwrap()
                .secret,
        );
        first_user.get_or_insert(user.id);
    }
    let mut teams = Vec::new();
    for t in 0..3 {
        teams.push(
            repo.create_team(space.id, &format!("Team {t}"), now)
                .await
                .unwrap()
                .id,
        );
    }
    let mut connectors = Vec::new();
    for c in 0..=ROUNDS {
        let connector = Connector {
            base_url: airflow.url(),
            auth: ConnectorAuth::Password {
                username: "admin".into(),
                password: SecretRef::Stored("admin".into()),
            },
            ..new_connector(space.id, first_user.unwrap(), &format!("airflow {c}"))
        };
        repo.put_connector(&connector).await.unwrap();
        connectors.push(connector);
    }
    let client = client_for(
        &connectors[0],
        &SecretResolver::new(),
        AirflowSettings::default(),
    )
    .await
    .unwrap();
    let record = sync_connector(
        &repo,
        &client,
        &connectors[0],
        SyncOptions::new(SyncTrigger::Manual, Duration::from_secs(120)),
    )
    .await
    .unwrap();
    assert_eq!(record.counts.runs.added, 140, "{record:?}");
    let mut runs = Vec::new();
    let mut pipelines = vec![Vec::new(); WRITERS];
    let mut all: Vec<_> = repo
        .list_pipelines(space.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    all.sort();
    for (i, pipeline) in all.iter().enumerate() {
        pipelines[i % WRITERS].push(*pipeline);
        for run in repo.list_runs(*pipeline, None, None).await.unwrap() {
            runs.push(run.id);
        }
    }
    Fixture {
        airflow,
        space_id: space.id,
        keys,
        teams,
        connectors,
        runs,
        pipelines,
    }
}

/// One request; `None` when the server is gone (killed mid-request or before it).
async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
    if_match: Option<u64>,
) -> Option<(u16, Value)> {
    let mut request = client
        .request(
            method,
            format!("{base}/api/v1.0/spaces/acme/orchestration{path}"),
        )
        .bearer_auth(key)
        .timeout(Duration::from_secs(30));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(version) = if_match {
        request = request.header("If-Match", format!("\"{version}\""));
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// One writer's load until the server dies: creates, edits and PATCHes of its own items.
async fn writer(
    base: String,
    fixture: Arc<Fixture>,
    ledger: Arc<Mutex<Ledger>>,
    w: usize,
    round: usize,
    mut rng: Rng,
) -> usize {
    let client = reqwest::Client::new();
    let key = &fixture.keys[w];
    let mut done = 0;
    for n in 0.. {
        let choice = rng.below(10);
        let own: Vec<(Uuid, u64, String)> = ledger
            .lock()
            .unwrap()
            .comments
            .iter()
            .filter(|(_, (_, content, _))| content.starts_with(&format!("w{w} ")))
            .map(|(id, (version, content, _))| (*id, *version, content.clone()))
            .collect();
        let outcome = if choice < 4 || own.is_empty() {
            let run = fixture.runs[rng.below(fixture.runs.len() as u64) as usize];
            let content = format!("w{w} r{round} c{n}");
            ledger.lock().unwrap().pending_creates.push(content.clone());
            let answer = call(
                &client,
                &base,
                Method::POST,
                &format!("/runs/{run}/comments"),
                key,
                Some(json!({ "content": content })),
                None,
            )
            .await;
            answer.map(|(status, body)| {
                let mut ledger = ledger.lock().unwrap();
                ledger.pending_creates.retain(|c| c != &content);
                if status == 201 {
                    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
                    ledger.comments.insert(id, (1, content, None));
                }
                status
            })
        } else if choice < 7 {
            let (id, version, content) = own[rng.below(own.len() as u64) as usize].clone();
            let edited = format!("{} e{round}.{n}", content.split(" e").next().unwrap());
            ledger.lock().unwrap().comments.get_mut(&id).unwrap().2 = Some(edited.clone());
            let answer = call(
                &client,
                &base,
                Method::PATCH,
                &format!("/comments/{id}"),
                key,
                Some(json!({ "content": edited })),
                Some(version),
            )
            .await;
            answer.map(|(status, body)| {
                assert_ne!(status, 412, "only this writer edits comment {id}: {body}");
                let mut ledger = ledger.lock().unwrap();
                if status == 200 {
                    assert_eq!(body["version"], version + 1);
                    ledger.comments.insert(id, (version + 1, edited, None));
                } else {
                    ledger.comments.get_mut(&id).unwrap().2 = None;
                }
                status
            })
        } else {
            let pipelines = &fixture.pipelines[w];
            let pipeline = pipelines[rng.below(pipelines.len() as u64) as usize];
            let (field, value) = if choice == 7 {
                let team = fixture.teams[rng.below(fixture.teams.len() as u64) as usize];
                ("team", json!(team))
            } else {
                ("criticality", json!(CRITICALITIES[rng.below(4) as usize]))
            };
            let attribute = if field == "team" {
                "team_id"
            } else {
                "criticality"
            };
            ledger
                .lock()
                .unwrap()
                .governance
                .entry((pipeline, field))
                .or_insert((Value::Null, None))
                .1 = Some(value.clone());
            let answer = call(
                &client,
                &base,
                Method::PATCH,
                &format!("/pipelines/{pipeline}/{field}"),
                key,
                Some(json!({ attribute: value })),
                None,
            )
            .await;
            answer.map(|(status, body)| {
                let mut ledger = ledger.lock().unwrap();
                let entry = ledger.governance.get_mut(&(pipeline, field)).unwrap();
                if status == 200 {
                    assert_eq!(body[attribute], value);
                    *entry = (value, None);
                } else {
                    entry.1 = None;
                }
                status
            })
        };
        match outcome {
            // The server is gone: this writer's last write is in flight for good.
            None => return done,
            Some(status) if (200..300).contains(&status) => {
                done += 1;
                ledger.lock().unwrap().acknowledged += 1;
            }
            // A rate limit (if the server has one) changed nothing (what was in flight is
            // forgotten above): slow down and go on.
            Some(status) => {
                assert_eq!(status, 429, "writer {w}: unexpected status");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    done
}

/// After a restart: the state the ledger allows, read back. In-flight writes are resolved to
/// what the store holds (they happened entirely or not at all).
fn settle(
    ledger: &mut Ledger,
    comments: &HashMap<Uuid, (u64, String)>,
    governance: &HashMap<(Uuid, &'static str), Value>,
    context: &str,
) {
    for (id, (version, content, pending)) in ledger.comments.iter_mut() {
        let stored = comments
            .get(id)
            .unwrap_or_else(|| panic!("{context}: acknowledged comment {id} is missing"));
        let acknowledged = (*version, content.clone());
        let in_flight = pending.clone().map(|edit| (*version + 1, edit));
        assert!(
            *stored == acknowledged || Some(stored) == in_flight.as_ref(),
            "{context}: comment {id} is {stored:?}, expected {acknowledged:?} or {in_flight:?}"
        );
        (*version, *content) = (stored.0, stored.1.clone());
        *pending = None;
    }
    let known: Vec<&String> = ledger.comments.values().map(|(_, c, _)| c).collect();
    let mut adopted = Vec::new();
    for (id, (version, content)) in comments {
        if ledger.comments.contains_key(id) {
            continue;
        }
        // A comment nobody was told about must be a create cut off by the kill, once.
        assert!(
            ledger.pending_creates.contains(content) && !known.contains(&content),
            "{context}: unexpected comment {id} {content:?}"
        );
        assert_eq!(*version, 1, "{context}: comment {id}");
        adopted.push((*id, content.clone()));
    }
    for (id, content) in adopted {
        ledger.comments.insert(id, (1, content, None));
    }
    ledger.pending_creates.clear();
    for ((pipeline, field), (acknowledged, pending)) in ledger.governance.iter_mut() {
        let stored = governance
            .get(&(*pipeline, *field))
            .cloned()
            .unwrap_or(Value::Null);
        assert!(
            stored == *acknowledged || Some(&stored) == pending.as_ref(),
            "{context}: {field} of {pipeline} is {stored}, expected {acknowledged} or {pending:?}"
        );
        *acknowledged = stored;
        *pending = None;
    }
}

const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<&[u8], &[u8]> = TableDefinition::new("gsi1");

/// The embedded adapter's key encoding: each part followed by a NUL byte.
fn encode(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// Every item of the store file, read with redb directly, with the index checked against it.
fn scan(path: &Path, context: &str) -> Vec<Map<String, Value>> {
    let db = redb::Database::open(path).expect("open the store file");
    let txn = db.begin_read().unwrap();
    let items_table = txn.open_table(ITEMS).unwrap();
    let mut items = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for entry in items_table.iter().unwrap() {
        let (key, value) = entry.unwrap();
        let item: Map<String, Value> =
            serde_json::from_slice(value.value()).expect("every item is whole JSON");
        let (pk, sk) = (item["PK"].as_str().unwrap(), item["SK"].as_str().unwrap());
        assert_eq!(
            key.value(),
            encode(&[pk, sk]).as_slice(),
            "{context}: item key"
        );
        keys.insert(key.value().to_vec());
        items.push(item);
    }
    let index = txn.open_table(GSI1).unwrap();
    let mut indexed = 0;
    for entry in index.iter().unwrap() {
        let (_, primary) = entry.unwrap();
        assert!(
            keys.contains(primary.value()),
            "{context}: the index points at a missing item"
        );
        indexed += 1;
    }
    let mut expected = 0;
    for item in &items {
        if let (Some(Value::String(gpk)), Some(Value::String(gsk))) =
            (item.get("GSI1PK"), item.get("GSI1SK"))
        {
            expected += 1;
            let key = encode(&[
                gpk,
                gsk,
                item["PK"].as_str().unwrap(),
                item["SK"].as_str().unwrap(),
            ]);
            assert!(
                index.get(key.as_slice()).unwrap().is_some(),
                "{context}: an item missing from the index: {:?}",
                item.get("kind")
            );
        }
    }
    assert_eq!(
        indexed, expected,
        "{context}: index entries without their item"
    );
    items
}

/// Item-level consistency of the whole store; returns the comments found.
fn check_items(items: &[Map<String, Value>], context: &str) -> HashMap<Uuid, (u64, String)> {
    fn of_kind<'a>(
        items: &'a [Map<String, Value>],
        kind: &'static str,
    ) -> impl Iterator<Item = &'a Map<String, Value>> {
        items.iter().filter(move |i| i["kind"] == kind)
    }
    let id = |item: &Map<String, Value>, field: &str| -> Uuid {
        item[field].as_str().unwrap().parse().unwrap()
    };
    let mut by_id = HashMap::new();
    for comment in of_kind(items, "comment") {
        by_id.insert(
            id(comment, "id"),
            (
                comment["version"].as_u64().unwrap(),
                comment["content"].as_str().unwrap().to_string(),
            ),
        );
    }
    let mut entries = HashMap::new();
    for entry in of_kind(items, "comment_entry") {
        entries.insert(
            id(entry, "id"),
            (
                entry["version"].as_u64().unwrap(),
                entry["content"].as_str().unwrap().to_string(),
            ),
        );
    }
    assert_eq!(
        by_id, entries,
        "{context}: both items of every comment agree"
    );
    let runs: std::collections::HashSet<Uuid> =
        of_kind(items, "run").map(|r| id(r, "id")).collect();
    let pipelines: std::collections::HashSet<Uuid> =
        of_kind(items, "pipeline").map(|p| id(p, "id")).collect();
    for task_run in of_kind(items, "task_run") {
        assert!(
            runs.contains(&id(task_run, "run_id")),
            "{context}: task run without its run"
        );
    }
    for run in of_kind(items, "run") {
        assert!(
            pipelines.contains(&id(run, "pipeline_id")),
            "{context}: run without its pipeline"
        );
    }
    by_id
}

/// Everything the store must satisfy after a kill, checked offline; settles the ledger.
async fn check_store(
    data_dir: &Path,
    fixture: &Fixture,
    ledger: &mut Ledger,
    context: &str,
) -> (usize, usize) {
    let items = scan(&data_dir.join(STORE_FILE), context);
    let comments = check_items(&items, context);
    let repo = open_repo(data_dir).await;
    let pipelines = repo.list_pipelines(fixture.space_id).await.unwrap();
    let runs_checked = assert_summaries_match_runs(&repo, &pipelines, context).await;
    let mut governance = HashMap::new();
    for pipeline in &pipelines {
        governance.insert(
            (pipeline.id, "team"),
            pipeline.team_id.map_or(Value::Null, |t| json!(t)),
        );
        governance.insert(
            (pipeline.id, "criticality"),
            pipeline
                .criticality
                .map_or(Value::Null, |c| json!(c.as_str())),
        );
    }
    settle(ledger, &comments, &governance, context);
    // A sync that answered 200 left the whole mirror of its connector.
    let state = fixture.airflow.with(|state| {
        let mut copy = AirflowState::default();
        copy.dags = state.dags.clone();
        copy.runs = state.runs.clone();
        copy.task_instances = state.task_instances.clone();
        copy
    });
    for connector_id in &ledger.synced {
        let connector = fixture
            .connectors
            .iter()
            .find(|c| c.id == *connector_id)
            .unwrap();
        assert_mirrors_airflow(&repo, connector, &state, context).await;
    }
    (items.len(), runs_checked)
}

/// After a restart, over HTTP: what the ledger holds is served, and writes work.
async fn check_served(base: &str, fixture: &Fixture, ledger: &Ledger, context: &str) {
    let client = reqwest::Client::new();
    let key = &fixture.keys[0];
    let (status, health) = async {
        let response = client.get(format!("{base}/health")).send().await.unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    }
    .await;
    assert_eq!(
        (status, &health["status"]),
        (200, &json!("ok")),
        "{context}"
    );
    let (status, list) = call(
        &client,
        base,
        Method::GET,
        "/pipelines?size=100",
        key,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{context}: {list}");
    for ((pipeline, field), (value, _)) in &ledger.governance {
        let shown = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == json!(pipeline))
            .unwrap_or_else(|| panic!("{context}: pipeline {pipeline} listed"));
        let attribute = if *field == "team" {
            "team_id"
        } else {
            "criticality"
        };
        assert_eq!(&shown[attribute], value, "{context}: {field} of {pipeline}");
    }
    for connector_id in &ledger.interrupted_syncs {
        // The interrupted sync's lease outlives the kill (budget + margin): 409, not a 5xx.
        let (status, answer) = call(
            &client,
            base,
            Method::POST,
            &format!("/connectors/{connector_id}/sync"),
            key,
            None,
            None,
        )
        .await
        .unwrap();
        assert!(
            status == 409 || status == 200,
            "{context}: sync after an interrupted one: {status} {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_write_load_leaves_a_consistent_store() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let log = dir.path().join("server.log");
    let fixture = Arc::new(seed(&data_dir).await);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = Rng(SEED);
    let mut items_checked = 0;
    let mut runs_checked = 0;
    for round in 0..ROUNDS {
        let context = format!("round {round}");
        let server = ServerProcess::start(&data_dir, "crash_safety::server_child", &log).await;
        if round > 0 {
            // No writer runs now: the ledger is taken out of its lock while it is checked.
            let known = std::mem::take(&mut *ledger.lock().unwrap());
            check_served(&server.base, &fixture, &known, &context).await;
            *ledger.lock().unwrap() = known;
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    server.base.clone(),
                    fixture.clone(),
                    ledger.clone(),
                    w,
                    round,
                    Rng(rng.next()),
                ))
            })
            .collect();
        let sync = {
            let (base, fixture, ledger) = (server.base.clone(), fixture.clone(), ledger.clone());
            let connector = fixture.connectors[round + 1].id;
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let answer = call(
                    &client,
                    &base,
                    Method::POST,
                    &format!("/connectors/{connector}/sync"),
                    &fixture.keys[0],
                    None,
                    None,
                )
                .await;
                let mut ledger = ledger.lock().unwrap();
                match answer {
                    Some((200, record)) => {
                        assert_eq!(record["status"], "succeeded", "{record}");
                        ledger.synced.push(connector);
                        ledger.acknowledged += 1;
                    }
                    Some((status, body)) => panic!("sync: {status} {body}"),
                    None => ledger.interrupted_syncs.push(connector),
                }
            })
        };
        // Even rounds kill at a random moment of the sync (it takes a few seconds against the
        // slow fake Airflow under this load); odd rounds once it has answered, amid the
        // writers' load.
        let delay = if round % 2 == 0 {
            let delay = Duration::from_millis(300 + rng.below(3000));
            tokio::time::sleep(delay).await;
            delay
        } else {
            let since = Instant::now();
            while !sync.is_finished() {
                assert!(
                    since.elapsed() < Duration::from_secs(60),
                    "the sync never answered"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
            since.elapsed()
        };
        server.kill();
        let mut writes = 0;
        for writer in writers {
            writes += writer.await.expect("writer");
        }
        sync.await.expect("sync task");
        let mut ledger_now = std::mem::take(&mut *ledger.lock().unwrap());
        let (items, runs) = check_store(&data_dir, &fixture, &mut ledger_now, &context).await;
        *ledger.lock().unwrap() = ledger_now;
        items_checked += items;
        runs_checked += runs;
        eprintln!(
            "{context}: killed after {delay:?}; {writes} writes acknowledged this round; \
             store consistent ({items} items, {runs} runs against their summaries)"
        );
    }
    // The server still serves, and accepts writes, after the last kill.
    let server = ServerProcess::start(&data_dir, "crash_safety::server_child", &log).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    check_served(&server.base, &fixture, &ledger, "after the last round").await;
    let client = reqwest::Client::new();
    let (status, created) = call(
        &client,
        &server.base,
        Method::POST,
        &format!("/runs/{}/comments", fixture.runs[0]),
        &fixture.keys[0],
        Some(json!({ "content": "after the crashes" })),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{created}");
    drop(server);
    eprintln!(
        "{ROUNDS} SIGKILL rounds in {:?}: {} writes acknowledged and verified ({} comments, {} \
         governance fields, {} completed and {} interrupted syncs); {items_checked} items and \
         {runs_checked} runs checked",
        started.elapsed(),
        ledger.acknowledged,
        ledger.comments.len(),
        ledger.governance.len(),
        ledger.synced.len(),
        ledger.interrupted_syncs.len(),
    );
}
