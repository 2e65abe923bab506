//! Concurrent writers on both backends. A test binary of its own: on DynamoDB it points its
//! process at a serialising proxy in front of moto (`serial_proxy`), which must not reach the
//! other tests.
//!
//! Concurrency over HTTP, on both storage backends:
//!
//! * many concurrent comment edits with `If-Match` lose no update: every edit appends a token
//!   to the content it read and retries on 412 with a fresh ETag until it lands; in the end
//!   every token is there exactly once, in the order of the versions the server gave out, and
//!   those versions are exactly 2..=N+1. Edits without `If-Match` also never overwrite
//!   silently (each success has a distinct version, the last one's content is what stays);
//! * concurrent team and criticality PATCHes by different editors end in a state one serial
//!   order of them produces: the team is one that was sent, the criticality too, and the audit
//!   fields name a request whose own field is the final one (the last writer of a serial
//!   order);
//! * concurrent syncs of one connector: exactly one runs (200), every other gets 409 with a
//!   `detail` (docs/API.md, "Connector sync"), one sync record is written, and the lease is
//!   free again afterwards (the in-process version of two syncs is in `sync.rs`);
//! * a sync running while users patch team and criticality (the PATCHes land while the sync
//!   waits for Airflow's DAGs, after it has read the stored pipelines, and again while it
//!   writes runs) never overwrites them, and the Airflow-owned fields it writes stay too.
//!
//! On DynamoDB the tests reach moto through a proxy that gives it DynamoDB's per-call
//! atomicity, which moto lacks under concurrent calls (see `serial_proxy`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use orchestration_tests::app::{self, SPACE, TestApp, body};
use orchestration_tests::fake_airflow::{FakeAirflow, Fault};
use orchestration_tests::serial_proxy::serialize_dynamodb;
use orchestration_tests::{Backend, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::{Connector, Role, RunStatus};
use tokio::sync::Barrier;
use uuid::Uuid;

/// Concurrent editors of one comment.
const EDITORS: usize = 12;
/// Attempts one edit may take before the test gives up (bounds the test).
const MAX_ATTEMPTS: usize = 200;

/// Sends a request, waiting out a rate limit (429 + `Retry-After`) if the server has one: the
/// tests are about concurrency, not about limits.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    json: Option<&Value>,
    headers: &[(&str, String)],
) -> reqwest::Response {
    for _ in 0..20 {
        let mut request = app
            .client
            .request(method.clone(), app.url(SPACE, path))
            .bearer_auth(key);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(json) = json {
            request = request.json(json);
        }
        let response = request.send().await.expect("request reaches the server");
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return response;
        }
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1)
            .min(5);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    panic!("{method} {path}: still rate limited after 20 tries");
}

/// A pipeline with one run to comment on.
async fn pipeline_with_run(app: &TestApp) -> Uuid {
    let pipeline = app.add_pipeline(&app.connector, "orders", |_| {}).await;
    let run = app::run(
        &pipeline,
        "scheduled__1",
        chrono::Duration::hours(1),
        RunStatus::Success,
        Some(60),
    );
    let run_id = run.run.id;
    app.add_runs(&pipeline, vec![run]).await;
    run_id
}

/// The comment as listed on its run: (version, content).
async fn read_comment(app: &TestApp, run_id: Uuid, comment_id: &str) -> (u64, String) {
    let (status, list) = body(
        send(
            app,
            Method::GET,
            &format!("/runs/{run_id}/comments?size=100"),
            &app.keys.admin,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let comment = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == comment_id)
        .unwrap_or_else(|| panic!("comment {comment_id} listed: {list}"));
    (
        comment["version"].as_u64().unwrap(),
        comment["content"].as_str().unwrap().to_string(),
    )
}

async fn concurrent_if_match_edits_lose_no_update(backend: Backend) {
    serialize_dynamodb();
    let app = Arc::new(TestApp::spawn(backend).await);
    let run_id = pipeline_with_run(&app).await;
    let (status, created) = body(
        send(
            &app,
            Method::POST,
            &format!("/runs/{run_id}/comments"),
            &app.keys.admin,
            Some(&json!({ "content": "base" })),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let comment_id = created["id"].as_str().unwrap().to_string();

    // Every editor appends its own token to what it read, with If-Match on what it read; a 412
    // means someone else got there first: read again and retry.
    let barrier = Arc::new(Barrier::new(EDITORS));
    let edits = (0..EDITORS).map(|editor| {
        let (app, barrier, comment_id) = (app.clone(), barrier.clone(), comment_id.clone());
        async move {
            barrier.wait().await;
            let token = format!(" +e{editor:02}");
            let mut conflicts = 0;
            for _ in 0..MAX_ATTEMPTS {
                let (version, content) = read_comment(&app, run_id, &comment_id).await;
                // Both verbs mean the same; use both.
                let method = if editor % 2 == 0 {
                    Method::PATCH
                } else {
                    Method::PUT
                };
                let response = send(
                    &app,
                    method,
                    &format!("/comments/{comment_id}"),
                    &app.keys.admin,
                    Some(&json!({ "content": format!("{content}{token}") })),
                    &[("If-Match", format!("\"{version}\""))],
                )
                .await;
                let etag = response
                    .headers()
                    .get("etag")
                    .map(|v| v.to_str().unwrap().to_string());
                let (status, answer) = body(response).await;
                match status {
                    200 => {
                        let landed = answer["version"].as_u64().unwrap();
                        assert_eq!(landed, version + 1, "an edit moves the version by one");
                        assert_eq!(etag, Some(format!("\"{landed}\"")));
                        assert_eq!(answer["content"], format!("{content}{token}"));
                        return (token, landed, conflicts);
                    }
                    412 => {
                        assert!(answer["detail"].is_string(), "{answer}");
                        conflicts += 1;
                    }
                    other => panic!("edit by {editor}: {other} {answer}"),
                }
            }
            panic!("edit by {editor} did not land in {MAX_ATTEMPTS} attempts");
        }
    });
    let landed: Vec<(String, u64, usize)> = join_all(edits).await;
    let conflicts: usize = landed.iter().map(|(_, _, c)| c).sum();
    let versions: BTreeMap<u64, String> = landed
        .iter()
        .map(|(token, version, _)| (*version, token.clone()))
        .collect();
    assert_eq!(
        versions.keys().copied().collect::<Vec<_>>(),
        (2..=EDITORS as u64 + 1).collect::<Vec<_>>(),
        "each successful edit got its own version"
    );
    // The content is the base plus every token once, in the order of the versions: no edit
    // was lost or applied to a stale read.
    let expected: String = std::iter::once("base".to_string())
        .chain(versions.values().cloned())
        .collect();
    let (version, content) = read_comment(&app, run_id, &comment_id).await;
    assert_eq!(version, EDITORS as u64 + 1);
    assert_eq!(content, expected);
    // Both items of the comment (by id, and in its run's list) agree.
    let stored = app
        .repo
        .get_comment(app.space.id, comment_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.version, stored.content.as_str()),
        (version, &*content)
    );

    // Without If-Match, an edit still applies only to the version the server read: racing
    // edits each either land with their own version or get 412, never overwrite silently.
    let barrier = Arc::new(Barrier::new(EDITORS));
    let blind = (0..EDITORS).map(|editor| {
        let (app, barrier, comment_id) = (app.clone(), barrier.clone(), comment_id.clone());
        async move {
            barrier.wait().await;
            let text = format!("blind {editor}");
            let (status, answer) = body(
                send(
                    &app,
                    Method::PATCH,
                    &format!("/comments/{comment_id}"),
                    &app.keys.admin,
                    Some(&json!({ "content": text })),
                    &[],
                )
                .await,
            )
            .await;
            match status {
                200 => Some((answer["version"].as_u64().unwrap(), text)),
                412 => None,
                other => panic!("blind edit: {other} {answer}"),
            }
        }
    });
    let succeeded: Vec<(u64, String)> = join_all(blind).await.into_iter().flatten().collect();
    assert!(!succeeded.is_empty(), "at least one blind edit lands");
    let distinct: HashSet<u64> = succeeded.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        distinct.len(),
        succeeded.len(),
        "no two edits share a version"
    );
    let (last_version, last_text) = succeeded.iter().max().unwrap().clone();
    assert_eq!(
        read_comment(&app, run_id, &comment_id).await,
        (last_version, last_text),
        "the newest successful edit is what is stored"
    );
    assert_eq!(
        last_version,
        EDITORS as u64 + 1 + succeeded.len() as u64,
        "every successful edit moved the version by one"
    );
    eprintln!(
        "{backend:?}: {EDITORS} concurrent If-Match edits landed after {conflicts} 412s; \
         {} of {EDITORS} blind edits landed, the rest 412",
        succeeded.len()
    );
}

/// Editors who each send one governance PATCH per round.
const PATCHERS: usize = 8;
const ROUNDS: usize = 6;
const CRITICALITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// An editor of `acme` with a key: (user id, key).
async fn editor(app: &TestApp, name: &str) -> (Uuid, String) {
    let now = Utc::now();
    let user = app.repo.create_user(name, None, now).await.unwrap();
    app.repo
        .set_membership(SPACE, user.id, Role::Editor, now)
        .await
        .unwrap();
    let key = app
        .repo
        .create_api_key(user.id, "test", None, None, now)
        .await
        .unwrap();
    (user.id, key.secret)
}

async fn concurrent_governance_patches_end_in_a_serial_order(backend: Backend) {
    serialize_dynamodb();
    let app = Arc::new(TestApp::spawn(backend).await);
    let pipeline = app.add_pipeline(&app.connector, "orders", |_| {}).await;
    let mut editors = Vec::new();
    let mut teams = Vec::new();
    for i in 0..PATCHERS {
        editors.push(editor(&app, &format!("Editor {i}")).await);
        teams.push(
            app.repo
                .create_team(app.space.id, &format!("Team {i}"), Utc::now())
                .await
                .unwrap()
                .id,
        );
    }
    let mut last_writers = BTreeSet::new();
    for round in 0..ROUNDS {
        // Half the editors set the team, half the criticality; each sends a value of its own
        // (rotating with the round), so the final state says which request wrote it.
        let requests: Vec<(Uuid, &str, Value)> = editors
            .iter()
            .enumerate()
            .map(|(i, (user, _))| {
                if i % 2 == 0 {
                    let team = teams[(i + round) % PATCHERS];
                    (*user, "team", json!({ "team_id": team }))
                } else {
                    let value = CRITICALITIES[(i / 2 + round) % CRITICALITIES.len()];
                    (*user, "criticality", json!({ "criticality": value }))
                }
            })
            .collect();
        let barrier = Arc::new(Barrier::new(PATCHERS));
        let sends = requests
            .iter()
            .zip(&editors)
            .map(|((_, field, value), (_, key))| {
                let (app, barrier) = (app.clone(), barrier.clone());
                let path = format!("/pipelines/{}/{field}", pipeline.id);
                async move {
                    barrier.wait().await;
                    let (status, answer) =
                        body(send(&app, Method::PATCH, &path, key, Some(value), &[]).await).await;
                    assert_eq!(status, 200, "{answer}");
                }
            });
        join_all(sends).await;

        let (status, state) = body(
            send(
                &app,
                Method::GET,
                &format!("/pipelines/{}", pipeline.id),
                &app.keys.viewer,
                None,
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        let team = &state["team_id"];
        let criticality = &state["criticality"];
        let sent = |field: &str| -> Vec<&Value> {
            requests
                .iter()
                .filter(|(_, f, _)| *f == field)
                .map(|(_, _, body)| &body[field])
                .collect()
        };
        let teams_sent: Vec<&Value> = requests
            .iter()
            .filter(|(_, f, _)| *f == "team")
            .map(|(_, _, b)| &b["team_id"])
            .collect();
        let criticalities_sent = sent("criticality");
        assert!(teams_sent.contains(&team), "round {round}: team {team}");
        assert!(
            criticalities_sent.contains(&criticality),
            "round {round}: criticality {criticality}"
        );
        // The audit names the last writer of a serial order, whose own field must be final.
        let updated_by: Uuid = state["updated_by"].as_str().unwrap().parse().unwrap();
        let (_, field, value) = requests
            .iter()
            .find(|(user, _, _)| *user == updated_by)
            .unwrap_or_else(|| panic!("round {round}: updated_by {updated_by} sent nothing"));
        match *field {
            "team" => assert_eq!(team, &value["team_id"], "round {round}"),
            _ => assert_eq!(criticality, &value["criticality"], "round {round}"),
        }
        last_writers.insert(updated_by);
    }
    eprintln!(
        "{backend:?}: {ROUNDS} rounds of {PATCHERS} concurrent PATCHes, each ending in a serial \
         order ({} distinct last writers)",
        last_writers.len()
    );
}

/// A fake Airflow with a few DAGs and runs, and the test app's connector pointed at it.
async fn with_airflow(backend: Backend) -> (Arc<TestApp>, FakeAirflow, Connector) {
    let app = TestApp::spawn(backend).await;
    let airflow = FakeAirflow::start().await;
    airflow.with(|state| {
        let base = Utc::now() - chrono::Duration::days(1);
        for dag in ["orders", "billing", "reports"] {
            state.add_dag(dag, "data-team");
        }
        for i in 0..30 {
            state.add_run(
                ["orders", "billing", "reports"][i % 3],
                &format!("scheduled__{i:03}"),
                if i % 5 == 0 { "failed" } else { "success" },
                base + chrono::Duration::minutes(10 * i as i64),
                &["extract", "load"],
            );
        }
    });
    let connector = app.connect(&airflow).await;
    (Arc::new(app), airflow, connector)
}

/// Concurrent sync calls at once.
const SYNCS: usize = 4;

async fn concurrent_syncs_of_one_connector_run_exactly_once(backend: Backend) {
    serialize_dynamodb();
    let (app, airflow, connector) = with_airflow(backend).await;
    // Slow pages keep the first sync holding the lease while the others arrive.
    airflow.with(|state| state.set_latency(Some(Duration::from_millis(150))));
    let path = format!("/connectors/{}/sync", connector.id);
    let barrier = Arc::new(Barrier::new(SYNCS));
    let calls = (0..SYNCS).map(|_| {
        let (app, barrier, path) = (app.clone(), barrier.clone(), path.clone());
        async move {
            barrier.wait().await;
            body(send(&app, Method::POST, &path, &app.keys.admin, None, &[]).await).await
        }
    });
    let answers = join_all(calls).await;
    let ran: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| matches!(status, 200 | 202))
        .map(|(_, record)| record)
        .collect();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 409)
        .map(|(_, answer)| answer)
        .collect();
    assert_eq!(ran.len(), 1, "exactly one sync runs: {answers:?}");
    assert_eq!(refused.len(), SYNCS - 1, "the others get 409: {answers:?}");
    for answer in &refused {
        assert!(answer["detail"].is_string(), "{answer}");
    }
    assert_eq!(ran[0]["status"], "succeeded", "{}", ran[0]);
    assert_eq!(ran[0]["counts"]["runs"]["added"], 30);
    // Only the sync that ran left a record; Airflow saw one sync's requests.
    let records = app
        .repo
        .list_sync_records(connector.space_id, connector.id)
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        airflow.with(|state| state.tokens_issued()),
        1,
        "the refused syncs never called Airflow"
    );
    // The lease is released: the next sync runs.
    let (status, record) =
        body(send(&app, Method::POST, &path, &app.keys.admin, None, &[]).await).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["counts"]["runs"]["added"], 0);
}

async fn a_sync_never_overwrites_what_users_patch(backend: Backend) {
    serialize_dynamodb();
    let (app, airflow, connector) = with_airflow(backend).await;
    let path = format!("/connectors/{}/sync", connector.id);
    let (status, first) =
        body(send(&app, Method::POST, &path, &app.keys.admin, None, &[]).await).await;
    assert_eq!(status, 200, "{first}");
    let pipelines: Vec<Uuid> = ["orders", "billing", "reports"]
        .iter()
        .map(|dag| ids::pipeline_id(connector.id, dag))
        .collect();
    let teams = [
        app.team.id,
        app.repo
            .create_team(app.space.id, "Analytics", Utc::now())
            .await
            .unwrap()
            .id,
    ];

    // Airflow changes every DAG and adds runs, so the next sync rewrites each pipeline's
    // Airflow fields and its run references.
    let later = Utc::now() - chrono::Duration::minutes(5);
    airflow.with(|state| {
        for (_, dag) in state.dags.iter_mut() {
            dag.0 = true;
            dag.2 = "new-owner".into();
        }
        for i in 0..9 {
            state.add_run(
                ["orders", "billing", "reports"][i % 3],
                &format!("manual__{i}"),
                "success",
                later + chrono::Duration::seconds(i as i64),
                &["extract"],
            );
        }
        // The DAGs answer of the next sync (after its token) is slow, long enough for six
        // PATCHes through the one-call-at-a-time proxy on moto, and so are its pages.
        let next = state.requests;
        state.fault_at(next + 1, Fault::Delay(Duration::from_millis(4000)));
        state.set_latency(Some(Duration::from_millis(300)));
    });
    let sync = {
        let (app, path) = (app.clone(), path.clone());
        tokio::spawn(async move {
            body(send(&app, Method::POST, &path, &app.keys.admin, None, &[]).await).await
        })
    };

    let patch_all = async |wave: usize| {
        for (i, pipeline) in pipelines.iter().enumerate() {
            let team = json!({ "team_id": teams[(i + wave) % 2] });
            let criticality = json!({ "criticality": CRITICALITIES[(i + wave) % 4] });
            for (field, value) in [("team", team), ("criticality", criticality)] {
                let (status, answer) = body(
                    send(
                        &app,
                        Method::PATCH,
                        &format!("/pipelines/{pipeline}/{field}"),
                        &app.keys.editor,
                        Some(&value),
                        &[],
                    )
                    .await,
                )
                .await;
                assert_eq!(status, 200, "{answer}");
            }
        }
    };
    let requests_seen =
        |path: &str| airflow.with(|s| s.log.iter().filter(|l| l.ends_with(path)).count());
    let wait_for = async |what: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while requests_seen(what) < count {
            assert!(Instant::now() < deadline, "the sync never asked for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // Wave 1 lands while the sync waits for the DAGs (it has read the stored pipelines).
    wait_for("/api/v2/dags", 2).await;
    patch_all(1).await;
    assert_eq!(
        requests_seen("/dagRuns"),
        1,
        "wave 1 landed before the sync had the DAGs answer"
    );
    // Wave 2 lands while it reads and writes runs.
    wait_for("/dagRuns", 2).await;
    patch_all(2).await;

    let (status, record) = sync.await.unwrap();
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["counts"]["pipelines"]["updated"], 3, "{record}");
    assert_eq!(record["counts"]["runs"]["added"], 9, "{record}");
    let editor_id = app
        .repo
        .find_api_key(&shared::auth::hash_key(&app.keys.editor))
        .await
        .unwrap()
        .unwrap()
        .user_id;
    for (i, pipeline) in pipelines.iter().enumerate() {
        let (_, view) = body(
            send(
                &app,
                Method::GET,
                &format!("/pipelines/{pipeline}"),
                &app.keys.viewer,
                None,
                &[],
            )
            .await,
        )
        .await;
        // The users' last values stay...
        assert_eq!(view["team_id"], json!(teams[(i + 2) % 2]), "{view}");
        assert_eq!(view["criticality"], CRITICALITIES[(i + 2) % 4], "{view}");
        assert_eq!(view["updated_by"], json!(editor_id), "{view}");
        // ...next to what the sync wrote.
        assert_eq!(view["is_paused"], true, "{view}");
        assert_eq!(view["owners"], json!(["new-owner"]), "{view}");
        assert!(
            view["summary"]["last_run"].is_object(),
            "the run references moved: {view}"
        );
    }
}

on_both_backends!(
    concurrent_if_match_edits_lose_no_update,
    concurrent_governance_patches_end_in_a_serial_order,
    concurrent_syncs_of_one_connector_run_exactly_once,
    a_sync_never_overwrites_what_users_patch,
);
