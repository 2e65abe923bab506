//! The authorization matrix, on both backends: every implemented endpoint against every kind
//! of caller that must be refused, with the exact status code, the platform's error body, no
//! trace of the other space's data in any answer, and no effect of any refused write. Control
//! rows prove the refusals are not accidental: the same requests succeed for the callers
//! entitled to them.
//!
//! Rows (callers) × columns (endpoints):
//! 1. no `Authorization` header → 401
//! 2. malformed `Authorization` headers (several shapes) → 401
//! 3. an unknown, well-formed key → 401
//! 4. a revoked key → 401
//! 5. an expired key → 401
//! 6. a user who is not a member of the space → 404 `Space not found`
//! 7. a viewer: reads (sync history included), watches and comments; 403 for governance
//!    writes, for triggering, for syncing a connector and for editing or deleting someone
//!    else's comment (control: an editor may govern and trigger, still 403 on comments and on
//!    syncing a connector it neither created nor edits; an editor listed among the
//!    connector's editors may sync it)
//! 8. the ids of another space's objects, with the admin key → 404, byte-for-byte the answer
//!    for an id that exists nowhere
//!
//! and the positive control: the admin (who also wrote the comment) gets a 2xx everywhere.
//!
//! Each space's connector points at its own fake Airflow, so a refused trigger or sync that
//! slipped through would show: a refused request never reaches Airflow, creates no run (in
//! the store or in Airflow) and leaves no sync record.

use chrono::{Duration, Utc};
use orchestration_tests::app::{OTHER_SPACE, SPACE, TestApp, run, task_run};
use orchestration_tests::fake_airflow::FakeAirflow;
use orchestration_tests::{Backend, on_both_backends};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::{Connector, ConnectorAuth, RunStatus, SecretRef};
use shared::service::connectors::AirflowSettings;
use uuid::Uuid;

/// The acme connector's Airflow password: no answer may carry it either.
const ACME_AIRFLOW_PASSWORD: &str = "acme-airflow-password-7d1c";

/// What a caller needs to be allowed on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Any member (viewer and up) reads.
    Read,
    /// Any member (viewer and up) may do it: watch, comment.
    Participate,
    /// Editor and up: team, criticality, trigger.
    Govern,
    /// A space admin, or an editor who created the connector or is one of its editors: sync.
    ConnectorEditor,
    /// Only the comment's author: edits.
    Author,
    /// The comment's author or a space admin: deletes.
    AuthorOrAdmin,
}

/// One column of the matrix: a method, a path template and, for writes, a valid body.
struct Endpoint {
    method: Method,
    /// Relative to the API prefix; `{pipeline_id}`, `{run_id}`, `{task_run_id}`,
    /// `{comment_id}` and `{connector_id}` are filled in from an [`Ids`].
    path: &'static str,
    body: Option<Value>,
    access: Access,
    /// Status of a successful call.
    success: u16,
}

impl Endpoint {
    fn takes_id(&self) -> bool {
        self.path.contains('{')
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every endpoint implemented today. The sync comes after the trigger and before the sync
/// history; the comment writes come last so that the admin's successful delete happens after
/// its edits.
fn endpoints(team_id: Uuid) -> Vec<Endpoint> {
    let endpoint = |method: Method, path, body: Option<Value>, access, success| Endpoint {
        method,
        path,
        body,
        access,
        success,
    };
    vec![
        endpoint(Method::GET, "/pipelines", None, Access::Read, 200),
        endpoint(
            Method::GET,
            "/pipelines/{pipeline_id}",
            None,
            Access::Read,
            200,
        ),
        endpoint(
            Method::PATCH,
            "/pipelines/{pipeline_id}/team",
            Some(json!({ "team_id": team_id })),
            Access::Govern,
            200,
        ),
        endpoint(
            Method::PATCH,
            "/pipelines/{pipeline_id}/criticality",
            Some(json!({ "criticality": "high" })),
            Access::Govern,
            200,
        ),
        endpoint(
            Method::PATCH,
            "/pipelines/{pipeline_id}/freshness",
            Some(json!({ "expected_interval_seconds": 3600 })),
            Access::Govern,
            200,
        ),
        endpoint(
            Method::PUT,
            "/pipelines/{pipeline_id}/watch",
            None,
            Access::Participate,
            204,
        ),
        endpoint(
            Method::DELETE,
            "/pipelines/{pipeline_id}/watch",
            None,
            Access::Participate,
            204,
        ),
        endpoint(
            Method::POST,
            "/pipelines/{pipeline_id}/trigger",
            Some(json!({ "conf": {}, "logical_date": null, "note": "triggered by the matrix" })),
            Access::Govern,
            201,
        ),
        endpoint(
            Method::GET,
            "/pipelines/{pipeline_id}/runs",
            None,
            Access::Read,
            200,
        ),
        endpoint(Method::GET, "/runs/{run_id}", None, Access::Read, 200),
        endpoint(Method::GET, "/events", None, Access::Read, 200),
        endpoint(
            Method::POST,
            "/connectors/{connector_id}/sync",
            None,
            Access::ConnectorEditor,
            200,
        ),
        endpoint(
            Method::GET,
            "/connectors/{connector_id}/syncs",
            None,
            Access::Read,
            200,
        ),
        endpoint(
            Method::GET,
            "/runs/{run_id}/comments",
            None,
            Access::Read,
            200,
        ),
        endpoint(
            Method::POST,
            "/runs/{run_id}/comments",
            Some(json!({ "content": "a comment on the run" })),
            Access::Participate,
            201,
        ),
        endpoint(
            Method::GET,
            "/task-runs/{task_run_id}/comments",
            None,
            Access::Read,
            200,
        ),
        endpoint(
            Method::POST,
            "/task-runs/{task_run_id}/comments",
            Some(json!({ "content": "a comment on the task run" })),
            Access::Participate,
            201,
        ),
        endpoint(
            Method::PUT,
            "/comments/{comment_id}",
            Some(json!({ "content": "replaced with PUT" })),
            Access::Author,
            200,
        ),
        endpoint(
            Method::PATCH,
            "/comments/{comment_id}",
            Some(json!({ "content": "replaced with PATCH" })),
            Access::Author,
            200,
        ),
        endpoint(
            Method::DELETE,
            "/comments/{comment_id}",
            None,
            Access::AuthorOrAdmin,
            204,
        ),
    ]
}

/// The objects a row addresses.
#[derive(Debug, Clone, Copy)]
struct Ids {
    pipeline: Uuid,
    run: Uuid,
    task_run: Uuid,
    comment: Uuid,
    connector: Uuid,
}

impl Ids {
    fn random() -> Self {
        Self {
            pipeline: Uuid::new_v4(),
            run: Uuid::new_v4(),
            task_run: Uuid::new_v4(),
            comment: Uuid::new_v4(),
            connector: Uuid::new_v4(),
        }
    }

    fn path(&self, template: &str) -> String {
        template
            .replace("{pipeline_id}", &self.pipeline.to_string())
            .replace("{run_id}", &self.run.to_string())
            .replace("{task_run_id}", &self.task_run.to_string())
            .replace("{comment_id}", &self.comment.to_string())
            .replace("{connector_id}", &self.connector.to_string())
    }
}

/// A response, read in full.
struct Answer {
    status: u16,
    text: String,
    www_authenticate: Option<String>,
}

impl Answer {
    fn json(&self, what: &str) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("{what}: not JSON: {:?}", self.text))
    }
}

fn bearer(key: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {key}")).unwrap()
}

async fn send(
    app: &TestApp,
    slug: &str,
    endpoint: &Endpoint,
    ids: &Ids,
    auth: Option<&HeaderValue>,
) -> Answer {
    let mut request = app.client.request(
        endpoint.method.clone(),
        app.url(slug, &ids.path(endpoint.path)),
    );
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    if let Some(body) = &endpoint.body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request reaches the server");
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    Answer {
        status,
        text,
        www_authenticate,
    }
}

/// Strings that identify the other space's data; none may appear in an answer on `acme`.
struct Secrets(Vec<String>);

impl Secrets {
    fn assert_absent(&self, text: &str, what: &str) {
        let text = text.to_lowercase();
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{what}: the answer reveals {secret:?}: {text}"
            );
        }
    }
}

/// What the Airflow-facing writes of one space can leave behind, outside the space's
/// read API: requests that reached its Airflow, runs in its Airflow, its sync records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AirflowSide {
    requests: usize,
    runs: usize,
    syncs: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Effects {
    acme: AirflowSide,
    globex: AirflowSide,
}

/// The world the matrix runs in: the app, acme's objects, globex's objects, and each space's
/// Airflow.
struct World {
    app: TestApp,
    endpoints: Vec<Endpoint>,
    acme: Ids,
    globex: Ids,
    /// The acme connector as stored (pointing at `airflow`).
    acme_connector: Connector,
    airflow: FakeAirflow,
    globex_airflow: FakeAirflow,
    secrets: Secrets,
    /// Matrix responses asserted so far.
    asserted: usize,
}

impl World {
    /// Sends one matrix request on `acme` and checks its status and that it leaks nothing.
    async fn expect(
        &mut self,
        endpoint: usize,
        ids: Ids,
        auth: Option<&HeaderValue>,
        expected: u16,
        row: &str,
    ) -> Answer {
        let endpoint = &self.endpoints[endpoint];
        let what = format!("{row}: {}", endpoint.name());
        let answer = send(&self.app, SPACE, endpoint, &ids, auth).await;
        assert_eq!(answer.status, expected, "{what}: {}", answer.text);
        self.secrets.assert_absent(&answer.text, &what);
        if expected == 204 {
            assert_eq!(answer.text, "", "{what}: 204 has no body");
        } else {
            answer.json(&what);
        }
        if expected >= 400 {
            let json = answer.json(&what);
            let keys: Vec<&String> = json
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            assert_eq!(
                keys,
                ["detail"],
                "{what}: the error body is {{\"detail\": ...}}: {json}"
            );
            assert!(json["detail"].is_string(), "{what}: {json}");
            if expected == 401 {
                assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"), "{what}");
            }
        }
        self.asserted += 1;
        answer
    }

    /// A whole row of refusals: every endpoint answers `expected` to this caller.
    async fn refused_everywhere(&mut self, auth: Option<&HeaderValue>, expected: u16, row: &str) {
        let acme = self.acme;
        for i in 0..self.endpoints.len() {
            let answer = self.expect(i, acme, auth, expected, row).await;
            if expected == 404 {
                assert_eq!(
                    answer.json(row),
                    json!({ "detail": "Space not found" }),
                    "{row}"
                );
            }
        }
    }

    /// What the owner of a space sees of its objects: governance fields, the owner's watch,
    /// and both comment lists.
    async fn snapshot(&self, slug: &str, key: &str, ids: &Ids) -> Value {
        let get = async |path: String| {
            let response = self.app.get_in(slug, &path, Some(key)).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_eq!(status, 200, "snapshot {slug}{path}: {text}");
            serde_json::from_str::<Value>(&text).unwrap()
        };
        let pipeline = get(format!("/pipelines/{}", ids.pipeline)).await;
        json!({
            "pipeline": {
                "team_id": pipeline["team_id"],
                "criticality": pipeline["criticality"],
                "updated_at": pipeline["updated_at"],
                "updated_by": pipeline["updated_by"],
                "watched": pipeline["watched"],
            },
            "runs": get(format!("/pipelines/{}/runs", ids.pipeline)).await,
            "run": get(format!("/runs/{}", ids.run)).await,
            "run_comments": get(format!("/runs/{}/comments?size=100", ids.run)).await,
            "task_run_comments": get(format!("/task-runs/{}/comments?size=100", ids.task_run)).await,
        })
    }

    async fn acme_snapshot(&self) -> Value {
        self.snapshot(SPACE, &self.app.keys.admin, &self.acme).await
    }

    async fn globex_snapshot(&self) -> Value {
        self.snapshot(OTHER_SPACE, &self.app.keys.outsider, &self.globex)
            .await
    }

    /// Requests and runs in each space's Airflow, and each connector's sync records.
    async fn effects(&self) -> Effects {
        let side = async |airflow: &FakeAirflow, space: Uuid, connector: Uuid| AirflowSide {
            requests: airflow.with(|s| s.requests),
            runs: airflow.with(|s| s.runs.len()),
            syncs: self
                .app
                .repo
                .list_sync_records(space, connector)
                .await
                .unwrap()
                .into_iter()
                .map(|record| record.id)
                .collect(),
        };
        Effects {
            acme: side(&self.airflow, self.app.space.id, self.acme.connector).await,
            globex: side(
                &self.globex_airflow,
                self.app.other_space.id,
                self.globex.connector,
            )
            .await,
        }
    }

    /// Pipelines watched by the acme admin (in both spaces) and by the viewer.
    async fn watches(&self) -> Value {
        let app = &self.app;
        let sorted = |set: std::collections::HashSet<Uuid>| {
            let mut ids: Vec<String> = set.into_iter().map(|id| id.to_string()).collect();
            ids.sort();
            ids
        };
        json!({
            "admin_in_acme": sorted(app.repo.watched_pipeline_ids(app.space.id, app.admin_id).await.unwrap()),
            "admin_in_globex": sorted(app.repo.watched_pipeline_ids(app.other_space.id, app.admin_id).await.unwrap()),
            "viewer_in_acme": sorted(app.repo.watched_pipeline_ids(app.space.id, app.viewer_id).await.unwrap()),
        })
    }
}

/// A snapshot without the comments of the given ids (created by an allowed write).
fn without_comments(mut snapshot: Value, created: &[String]) -> Value {
    for list in ["run_comments", "task_run_comments"] {
        if let Some(comments) = snapshot[list].as_array_mut() {
            comments.retain(|c| !created.iter().any(|id| c["id"] == id.as_str()));
        }
    }
    snapshot
}

fn comment_count(snapshot: &Value) -> usize {
    ["run_comments", "task_run_comments"]
        .iter()
        .map(|list| snapshot[list].as_array().unwrap().len())
        .sum()
}

async fn post_comment(app: &TestApp, slug: &str, key: &str, path: &str, content: &str) -> Uuid {
    let response = app
        .client
        .post(app.url(slug, path))
        .bearer_auth(key)
        .json(&json!({ "content": content }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "seeding {slug}{path}: {text}");
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn owner_write(app: &TestApp, method: Method, path: &str, body: Option<Value>) {
    let mut request = app
        .client
        .request(method, app.url(OTHER_SPACE, path))
        .bearer_auth(&app.keys.outsider);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "seeding globex {path}: {}",
        response.status()
    );
}

/// Syncs a connector through the API with its space's admin key and checks the sync
/// succeeded.
async fn seed_sync(app: &TestApp, slug: &str, key: &str, connector_id: Uuid) {
    let path = format!("/connectors/{connector_id}/sync");
    let response = app
        .client
        .post(app.url(slug, &path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "seeding {slug}{path}: {text}");
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        record["status"], "succeeded",
        "seeding {slug}{path}: {record}"
    );
}

/// A connector pointing at a fake Airflow, with a stored password.
async fn point_at(
    app: &TestApp,
    connector: &Connector,
    airflow: &FakeAirflow,
    username: &str,
    password: &str,
) -> Connector {
    let connector = Connector {
        base_url: airflow.url(),
        auth: ConnectorAuth::Password {
            username: username.into(),
            password: SecretRef::Stored(password.into()),
        },
        ..connector.clone()
    };
    app.repo.put_connector(&connector).await.unwrap();
    connector
}

/// Seeds acme (a pipeline, a run with a task run, comments by the admin, its Airflow with the
/// pipeline's DAG and one synced run and sync record) and globex (the same, with distinctive
/// names, governed, watched, commented on and synced by its own admin, with its own Airflow).
async fn world(backend: Backend) -> World {
    // Short Airflow timeouts: a bug reaching an Airflow that does not answer fails fast.
    let app = TestApp::spawn_with(backend, |state| {
        state.airflow = AirflowSettings {
            request_timeout: std::time::Duration::from_millis(500),
            max_attempts: 2,
            retry_base_delay: std::time::Duration::from_millis(5),
        };
    })
    .await;

    let airflow = FakeAirflow::start().await;
    airflow.with(|s| {
        s.add_dag("acme_dag", "acme-data-team");
        s.add_run(
            "acme_dag",
            "scheduled__acme_airflow_1",
            "success",
            Utc::now() - Duration::hours(1),
            &["extract"],
        );
    });
    let acme_connector = point_at(
        &app,
        &app.connector,
        &airflow,
        "admin",
        ACME_AIRFLOW_PASSWORD,
    )
    .await;
    let pipeline = app.add_pipeline(&acme_connector, "acme_dag", |_| {}).await;
    let mut acme_run = run(
        &pipeline,
        "scheduled__acme_1",
        Duration::hours(2),
        RunStatus::Success,
        Some(30),
    );
    let acme_task = task_run(&acme_run.run, "extract", 1, "success", Some(10));
    let (run_id, task_run_id) = (acme_run.run.id, acme_task.id);
    acme_run.task_runs.push(acme_task);
    app.add_runs(&pipeline, vec![acme_run]).await;
    let admin = app.keys.admin.clone();
    let comment = post_comment(
        &app,
        SPACE,
        &admin,
        &format!("/runs/{run_id}/comments"),
        "the admin's note",
    )
    .await;
    post_comment(
        &app,
        SPACE,
        &admin,
        &format!("/task-runs/{task_run_id}/comments"),
        "the admin's task note",
    )
    .await;
    seed_sync(&app, SPACE, &admin, acme_connector.id).await;
    let acme = Ids {
        pipeline: pipeline.id,
        run: run_id,
        task_run: task_run_id,
        comment,
        connector: acme_connector.id,
    };

    let globex_airflow = FakeAirflow::start().await;
    globex_airflow.with(|s| {
        s.add_dag("globex_secret_dag", "globex-secret-owner");
        s.add_run(
            "globex_secret_dag",
            "scheduled__globex_secret_airflow_run",
            "failed",
            Utc::now() - Duration::hours(1),
            &["globex_secret_airflow_task"],
        );
    });
    let globex_connector = point_at(
        &app,
        &app.other_connector,
        &globex_airflow,
        "globex-secret-user",
        "globex-secret-password",
    )
    .await;

    let theirs = app
        .add_pipeline(&globex_connector, "globex_secret_dag", |p| {
            p.name = "Globex Secret Pipeline".into();
            p.description = Some("globex-secret-description".into());
            p.owners = vec!["globex-secret-owner".into()];
            p.tags = vec!["globex-secret-tag".into()];
        })
        .await;
    let mut their_run = run(
        &theirs,
        "scheduled__globex_secret_run",
        Duration::hours(3),
        RunStatus::Failed,
        Some(40),
    );
    let their_task = task_run(&their_run.run, "globex_secret_task", 1, "failed", Some(20));
    let (their_run_id, their_task_run_id) = (their_run.run.id, their_task.id);
    their_run.task_runs.push(their_task);
    app.add_runs(&theirs, vec![their_run]).await;
    let their_team = app
        .repo
        .create_team(app.other_space.id, "Globex Secret Team", Utc::now())
        .await
        .unwrap();
    let p = format!("/pipelines/{}", theirs.id);
    owner_write(
        &app,
        Method::PATCH,
        &format!("{p}/team"),
        Some(json!({ "team_id": their_team.id })),
    )
    .await;
    owner_write(
        &app,
        Method::PATCH,
        &format!("{p}/criticality"),
        Some(json!({ "criticality": "critical" })),
    )
    .await;
    owner_write(&app, Method::PUT, &format!("{p}/watch"), None).await;
    let outsider = app.keys.outsider.clone();
    let their_comment = post_comment(
        &app,
        OTHER_SPACE,
        &outsider,
        &format!("/runs/{their_run_id}/comments"),
        "globex-secret-comment",
    )
    .await;
    let their_task_comment = post_comment(
        &app,
        OTHER_SPACE,
        &outsider,
        &format!("/task-runs/{their_task_run_id}/comments"),
        "globex-secret-task-comment",
    )
    .await;
    seed_sync(&app, OTHER_SPACE, &outsider, globex_connector.id).await;
    let their_airflow_run = ids::run_id(theirs.id, "scheduled__globex_secret_airflow_run");
    let their_syncs = app
        .repo
        .list_sync_records(app.other_space.id, globex_connector.id)
        .await
        .unwrap();
    assert_eq!(their_syncs.len(), 1);
    let globex = Ids {
        pipeline: theirs.id,
        run: their_run_id,
        task_run: their_task_run_id,
        comment: their_comment,
        connector: globex_connector.id,
    };

    let mut secrets = vec![
        "globex".to_string(),
        "secret".to_string(),
        "olga".to_string(),
        "outsider".to_string(),
        ACME_AIRFLOW_PASSWORD.to_string(),
    ];
    for id in [
        app.other_space.id,
        app.other_connector.id,
        their_team.id,
        theirs.id,
        their_run_id,
        their_task_run_id,
        their_comment,
        their_task_comment,
        their_airflow_run,
        ids::task_run_id(their_airflow_run, "globex_secret_airflow_task", -1, 1),
        their_syncs[0].id,
    ] {
        secrets.push(id.to_string());
        secrets.push(id.simple().to_string());
    }
    let endpoints = endpoints(app.team.id);
    World {
        app,
        endpoints,
        acme,
        globex,
        acme_connector,
        airflow,
        globex_airflow,
        secrets: Secrets(secrets),
        asserted: 0,
    }
}

/// Rows 1-6: callers that are refused before any object is looked at. Nothing changes.
async fn unauthenticated_and_non_members_are_refused_everywhere(backend: Backend) {
    let mut world = world(backend).await;
    let acme_before = world.acme_snapshot().await;
    let globex_before = world.globex_snapshot().await;
    let watches_before = world.watches().await;
    let effects_before = world.effects().await;
    let admin = world.app.keys.admin.clone();

    // 1. No Authorization header.
    world.refused_everywhere(None, 401, "no header").await;

    // 2. Malformed headers, several of them carrying a valid key.
    let malformed = [
        HeaderValue::from_static("Basic xyz"),
        HeaderValue::from_static("Bearer"),
        HeaderValue::from_static("Bearer not-a-key"),
        HeaderValue::from_str(&admin).unwrap(),
        HeaderValue::from_str(&format!("Token {admin}")).unwrap(),
        HeaderValue::from_str(&format!("Basic {admin}")).unwrap(),
        HeaderValue::from_str(&format!("Bearer {admin} {admin}")).unwrap(),
        HeaderValue::from_bytes(b"Bearer orch_\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9")
            .unwrap(),
    ];
    for header in &malformed {
        let row = format!("malformed header {header:?}");
        world.refused_everywhere(Some(header), 401, &row).await;
    }

    // 3. An unknown key of the right shape.
    let unknown = format!(
        "orch_{}{}",
        Uuid::new_v4().simple(),
        &Uuid::new_v4().simple().to_string()[..8]
    );
    assert_eq!(unknown.len(), 45);
    world
        .refused_everywhere(Some(&bearer(&unknown)), 401, "unknown key")
        .await;

    // 4, 5. Revoked and expired keys of the acme admin.
    let revoked = bearer(&world.app.keys.revoked);
    world
        .refused_everywhere(Some(&revoked), 401, "revoked key")
        .await;
    let expired = bearer(&world.app.keys.expired);
    world
        .refused_everywhere(Some(&expired), 401, "expired key")
        .await;

    // 6. A valid key of a user who is not a member of acme (admin of globex).
    let outsider = bearer(&world.app.keys.outsider);
    world
        .refused_everywhere(Some(&outsider), 404, "not a member")
        .await;

    // The refused writes changed nothing, in either space: no run in the store or in
    // Airflow (no request even reached it), no sync record.
    assert_eq!(world.acme_snapshot().await, acme_before);
    assert_eq!(world.globex_snapshot().await, globex_before);
    assert_eq!(world.watches().await, watches_before);
    assert_eq!(world.effects().await, effects_before);

    let columns = world.endpoints.len();
    assert_eq!(world.asserted, columns * (5 + malformed.len()));
    eprintln!(
        "{backend:?}: rows 1-6 asserted {} responses ({columns} endpoints x {} callers)",
        world.asserted,
        5 + malformed.len()
    );
}

/// Row 7 (viewer) with its control row (editor), row 8 (another space's ids) and the admin's
/// positive control.
async fn roles_foreign_ids_and_the_positive_control(backend: Backend) {
    let mut world = world(backend).await;
    let acme = world.acme;
    let columns = world.endpoints.len();
    let acme_before = world.acme_snapshot().await;
    let globex_before = world.globex_snapshot().await;
    let watches_before = world.watches().await;
    let effects_before = world.effects().await;
    let admins_comment = |snapshot: &Value| {
        snapshot["run_comments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == acme.comment.to_string())
            .cloned()
    };
    let original_comment = admins_comment(&acme_before).expect("the admin's comment is listed");
    assert_eq!(original_comment["content"], "the admin's note");

    // 7. A viewer reads, watches and comments; governance, trigger, sync and someone else's
    // comment: 403.
    let viewer = bearer(&world.app.keys.viewer);
    let mut created = Vec::new();
    for i in 0..columns {
        let endpoint = &world.endpoints[i];
        let expected = match endpoint.access {
            Access::Read | Access::Participate => endpoint.success,
            Access::Govern | Access::ConnectorEditor | Access::Author | Access::AuthorOrAdmin => {
                403
            }
        };
        let answer = world
            .expect(i, acme, Some(&viewer), expected, "viewer")
            .await;
        if answer.status == 201 {
            created.push(answer.json("viewer")["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        created.len(),
        2,
        "the viewer commented on the run and on the task run"
    );
    // The refused writes changed nothing (no run triggered, in the store or in Airflow; no
    // sync; Airflow never called); the allowed ones added the viewer's two comments (and the
    // watch was undone by the unwatch).
    let after = world.acme_snapshot().await;
    assert_eq!(comment_count(&after), comment_count(&acme_before) + 2);
    assert_eq!(without_comments(after, &created), acme_before);
    assert_eq!(world.watches().await, watches_before);
    assert_eq!(world.effects().await, effects_before);

    // Control for row 7: an editor may change team and criticality and trigger, but is still
    // refused on a comment someone else wrote and on syncing a connector it neither created
    // nor edits.
    let editor = bearer(&world.app.keys.editor);
    for i in 0..columns {
        let endpoint = &world.endpoints[i];
        let expected = match endpoint.access {
            Access::Read | Access::Participate | Access::Govern => endpoint.success,
            Access::ConnectorEditor | Access::Author | Access::AuthorOrAdmin => 403,
        };
        world
            .expect(i, acme, Some(&editor), expected, "editor")
            .await;
    }
    // The editor's trigger made one run, in Airflow and in the store; its sync was refused.
    let effects_after_editor = world.effects().await;
    assert_eq!(effects_after_editor.acme.runs, effects_before.acme.runs + 1);
    assert_eq!(effects_after_editor.acme.syncs, effects_before.acme.syncs);
    assert_eq!(effects_after_editor.globex, effects_before.globex);
    // An editor listed among the connector's editors may sync it.
    let editor_id = world
        .app
        .repo
        .find_api_key(&shared::auth::hash_key(&world.app.keys.editor))
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let shared_connector = Connector {
        editors: vec![editor_id],
        ..world.acme_connector.clone()
    };
    world
        .app
        .repo
        .put_connector(&shared_connector)
        .await
        .unwrap();
    let sync = world
        .endpoints
        .iter()
        .position(|e| e.access == Access::ConnectorEditor)
        .unwrap();
    let answer = world
        .expect(
            sync,
            acme,
            Some(&editor),
            200,
            "editor among the connector's editors",
        )
        .await;
    assert_eq!(answer.json("editor's sync")["status"], "succeeded");
    let effects_after_editor = world.effects().await;
    assert_eq!(
        effects_after_editor.acme.syncs.len(),
        effects_before.acme.syncs.len() + 1
    );
    let after_editor = world.acme_snapshot().await;
    assert_eq!(
        after_editor["runs"].as_array().unwrap().len(),
        acme_before["runs"].as_array().unwrap().len() + 1,
        "the editor's triggered run is stored"
    );
    assert_eq!(
        after_editor["pipeline"]["team_id"],
        world.app.team.id.to_string()
    );
    assert_eq!(after_editor["pipeline"]["criticality"], "high");
    assert_eq!(
        admins_comment(&after_editor),
        Some(original_comment.clone()),
        "the editor's edits were refused"
    );
    assert_eq!(
        comment_count(&after_editor),
        comment_count(&acme_before) + 4
    );

    // 8. Another space's ids on acme paths with the acme admin's key: 404, exactly as for ids
    // that exist nowhere, on every endpoint that takes an id.
    let admin = bearer(&world.app.keys.admin);
    let (globex, unknown) = (world.globex, Ids::random());
    let mut foreign_columns = 0;
    for i in 0..columns {
        if !world.endpoints[i].takes_id() {
            continue;
        }
        foreign_columns += 1;
        let foreign = world
            .expect(i, globex, Some(&admin), 404, "another space's id")
            .await;
        let nowhere = world
            .expect(i, unknown, Some(&admin), 404, "an unknown id")
            .await;
        assert_eq!(
            foreign.json("foreign"),
            nowhere.json("unknown"),
            "{}: another space's object answers like one that does not exist",
            world.endpoints[i].name()
        );
    }
    // Nothing changed in either space, and the admin watches nothing: no run, no sync record,
    // no request to either Airflow.
    assert_eq!(world.globex_snapshot().await, globex_before);
    assert_eq!(world.acme_snapshot().await, after_editor);
    assert_eq!(world.watches().await, watches_before);
    assert_eq!(world.effects().await, effects_after_editor);

    // Positive control: the acme admin, author of the comment, succeeds everywhere; the
    // trigger made a run of acme's pipeline and the sync succeeded.
    for i in 0..columns {
        let success = world.endpoints[i].success;
        let answer = world.expect(i, acme, Some(&admin), success, "admin").await;
        let endpoint = &world.endpoints[i];
        if endpoint.path.ends_with("/trigger") {
            let run = answer.json("admin's trigger");
            assert_eq!(run["pipeline_id"], acme.pipeline.to_string(), "{run}");
            assert_eq!(run["status"], "queued", "{run}");
        } else if endpoint.path.ends_with("/sync") {
            let record = answer.json("admin's sync");
            assert_eq!(
                record["connector_id"],
                acme.connector.to_string(),
                "{record}"
            );
            assert_eq!(record["status"], "succeeded", "{record}");
        } else if endpoint.path.ends_with("/syncs") {
            let records = answer.json("admin's sync history");
            assert_eq!(
                records.as_array().unwrap().len(),
                effects_after_editor.acme.syncs.len() + 1,
                "{records}"
            );
        }
    }
    let effects_after_admin = world.effects().await;
    assert_eq!(
        effects_after_admin.acme.runs,
        effects_after_editor.acme.runs + 1
    );
    assert_eq!(
        effects_after_admin.acme.syncs.len(),
        effects_after_editor.acme.syncs.len() + 1
    );
    assert_eq!(effects_after_admin.globex, effects_before.globex);
    let after_admin = world.acme_snapshot().await;
    assert_eq!(
        admins_comment(&after_admin),
        None,
        "the admin deleted its own comment"
    );
    assert_eq!(
        after_admin["pipeline"]["updated_by"],
        world.app.admin_id.to_string()
    );
    assert_eq!(world.globex_snapshot().await, globex_before);

    assert_eq!(world.asserted, 3 * columns + 2 * foreign_columns + 1);
    eprintln!(
        "{backend:?}: rows 7-8 and controls asserted {} responses (viewer, editor, admin: {columns} each; \
         foreign and unknown ids: {foreign_columns} each; the connector's editor's sync: 1)",
        world.asserted
    );
}

on_both_backends!(
    unauthenticated_and_non_members_are_refused_everywhere,
    roles_foreign_ids_and_the_positive_control
);
