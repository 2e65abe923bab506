//! The Airflow-facing endpoints over HTTP against a fake Airflow: connector sync (permissions,
//! records, 202 on a spent budget) and trigger (201, idempotency, Airflow's errors passed
//! through, 502 and 504). On both backends.

use std::time::Duration;

use chrono::Utc;
use orchestration_tests::app::{TestApp, body, header};
use orchestration_tests::fake_airflow::{FakeAirflow, Fault};
use orchestration_tests::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::ids;
use shared::domain::model::{Connector, ConnectorAuth, SecretRef};
use shared::service::connectors::AirflowSettings;

fn fast_airflow(state: &mut shared::http::AppState) {
    state.airflow = AirflowSettings {
        request_timeout: Duration::from_millis(500),
        max_attempts: 2,
        retry_base_delay: Duration::from_millis(5),
    };
}

async fn setup(
    backend: Backend,
    configure: impl FnOnce(&mut shared::http::AppState),
) -> (TestApp, FakeAirflow, Connector) {
    let app = TestApp::spawn_with(backend, |state| {
        fast_airflow(state);
        configure(state);
    })
    .await;
    let (airflow, connector) = app.with_fake_airflow().await;
    (app, airflow, connector)
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    json: Option<Value>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url("acme", path))
        .bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(json) = json {
        request = request.json(&json);
    }
    request.send().await.unwrap()
}

async fn connector_sync_over_http(backend: Backend) {
    let (app, _airflow, connector) = setup(backend, |_| {}).await;
    let sync = format!("/connectors/{}/sync", connector.id);
    // Viewers and editors who neither created nor edit the connector may not sync it.
    assert_eq!(
        send(&app, Method::POST, &sync, &app.keys.viewer, None, &[])
            .await
            .status(),
        403
    );
    assert_eq!(
        send(&app, Method::POST, &sync, &app.keys.editor, None, &[])
            .await
            .status(),
        403
    );
    let (status, record) =
        body(send(&app, Method::POST, &sync, &app.keys.admin, None, &[]).await).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["trigger"], "manual");
    assert_eq!(record["counts"]["pipelines"]["added"], 1);
    assert_eq!(record["counts"]["runs"]["added"], 1);
    assert_eq!(record["counts"]["task_runs"]["added"], 2);
    assert_eq!(record["pending"], false);
    assert!(
        !record.to_string().contains("\"admin\""),
        "no credential in the record"
    );

    // An editor listed among the connector's editors may.
    let editor_id = app
        .repo
        .find_api_key(&shared::auth::hash_key(&app.keys.editor))
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let shared_connector = Connector {
        editors: vec![editor_id],
        ..connector.clone()
    };
    app.repo.put_connector(&shared_connector).await.unwrap();
    assert_eq!(
        send(&app, Method::POST, &sync, &app.keys.editor, None, &[])
            .await
            .status(),
        200
    );

    // The synced data is visible through the read API.
    let pipeline_id = ids::pipeline_id(connector.id, "etl");
    let (_, pipeline) = body(
        app.get(&format!("/pipelines/{pipeline_id}"), Some(&app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(pipeline["dag_id"], "etl");
    assert_eq!(pipeline["status"], "success");
    assert_eq!(pipeline["owners"], json!(["data-team"]));

    // History: newest first, any member, standard pagination.
    let response = app
        .get(
            &format!("/connectors/{}/syncs?size=1", connector.id),
            Some(&app.keys.viewer),
        )
        .await;
    assert_eq!(header(&response, "x-total-count"), "2");
    assert_eq!(header(&response, "x-page-size"), "1");
    let (_, records) = body(response).await;
    assert_eq!(
        records[0]["counts"]["runs"]["added"], 0,
        "the newest (second) sync first"
    );

    // Connectors of other spaces, unknown and malformed ids.
    for id in [
        app.other_connector.id.to_string(),
        uuid::Uuid::new_v4().to_string(),
    ] {
        assert_eq!(
            send(
                &app,
                Method::POST,
                &format!("/connectors/{id}/sync"),
                &app.keys.admin,
                None,
                &[]
            )
            .await
            .status(),
            404
        );
        assert_eq!(
            app.get(&format!("/connectors/{id}/syncs"), Some(&app.keys.admin))
                .await
                .status(),
            404
        );
    }
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/connectors/nope/sync",
            &app.keys.admin,
            None,
            &[]
        )
        .await
        .status(),
        422
    );
}

async fn spent_budget_answers_202_and_the_next_sync_resumes(backend: Backend) {
    let (app, _airflow, connector) =
        setup(backend, |state| state.request_deadline = Duration::ZERO).await;
    let sync = format!("/connectors/{}/sync", connector.id);
    let (status, record) =
        body(send(&app, Method::POST, &sync, &app.keys.admin, None, &[]).await).await;
    assert_eq!(
        (status, &record["status"], &record["pending"]),
        (202, &json!("partial"), &json!(true)),
        "{record}"
    );
}

async fn unreachable_airflow_is_a_failed_sync_record(backend: Backend) {
    let (app, _airflow, connector) = setup(backend, |_| {}).await;
    let down = Connector {
        base_url: "http://127.0.0.1:9".into(),
        ..connector.clone()
    };
    app.repo.put_connector(&down).await.unwrap();
    let (status, record) = body(
        send(
            &app,
            Method::POST,
            &format!("/connectors/{}/sync", connector.id),
            &app.keys.admin,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(record["status"], "failed");
    assert!(
        record["error"].as_str().unwrap().contains("Airflow"),
        "{record}"
    );
    let missing_secret = Connector {
        auth: ConnectorAuth::Password {
            username: "admin".into(),
            password: SecretRef::Env("ORCHESTRATION_TEST_UNSET_VARIABLE".into()),
        },
        ..connector
    };
    app.repo.put_connector(&missing_secret).await.unwrap();
    let (status, record) = body(
        send(
            &app,
            Method::POST,
            &format!("/connectors/{}/sync", missing_secret.id),
            &app.keys.admin,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!((status, record["status"].as_str()), (200, Some("failed")));
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("ORCHESTRATION_TEST_UNSET_VARIABLE")
    );
}

async fn trigger_creates_the_run_at_once(backend: Backend) {
    let (app, airflow, connector) = setup(backend, |_| {}).await;
    let sync = format!("/connectors/{}/sync", connector.id);
    send(&app, Method::POST, &sync, &app.keys.admin, None, &[]).await;
    let pipeline_id = ids::pipeline_id(connector.id, "etl");
    let trigger = format!("/pipelines/{pipeline_id}/trigger");

    assert_eq!(
        send(&app, Method::POST, &trigger, &app.keys.viewer, None, &[])
            .await
            .status(),
        403
    );
    let (status, run) =
        body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "queued");
    assert_eq!(run["run_type"], "manual");
    let (status, stored) = body(
        app.get(
            &format!("/runs/{}", run["id"].as_str().unwrap()),
            Some(&app.keys.viewer),
        )
        .await,
    )
    .await;
    assert_eq!((status, &stored["status"]), (200, &json!("queued")));

    // With an Idempotency-Key and a body: a retry returns the first run; another body is refused.
    let request = json!({"conf": {"source": "api"}, "logical_date": "2026-01-02T00:00:00Z", "note": "by the test"});
    let key = [("Idempotency-Key", "retry-me-1")];
    let (status, first) = body(
        send(
            &app,
            Method::POST,
            &trigger,
            &app.keys.editor,
            Some(request.clone()),
            &key,
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = body(
        send(
            &app,
            Method::POST,
            &trigger,
            &app.keys.editor,
            Some(request.clone()),
            &key,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, &again),
        (201, &first),
        "the original answer, replayed"
    );
    let replayed = send(
        &app,
        Method::POST,
        &trigger,
        &app.keys.editor,
        Some(request.clone()),
        &key,
    )
    .await;
    assert_eq!(header(&replayed, "idempotent-replayed"), "true");

    // The same key from another caller (the admin), or for another pipeline, is another
    // request: its own run, never the editor's run and conf.
    let (status, admins) = body(
        send(
            &app,
            Method::POST,
            &trigger,
            &app.keys.admin,
            Some(json!({"note": "the admin's"})),
            &key,
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{admins}");
    assert_ne!(admins["id"], first["id"]);
    assert_ne!(admins["dag_run_id"], first["dag_run_id"]);
    let other = json!({"note": "something else"});
    assert_eq!(
        send(
            &app,
            Method::POST,
            &trigger,
            &app.keys.editor,
            Some(other),
            &key
        )
        .await
        .status(),
        422
    );
    let runs_in_airflow = airflow.with(|state| state.runs.len());
    assert_eq!(
        runs_in_airflow, 4,
        "the seeded run, two triggered by the editor, one by the admin"
    );

    // The run moves on in Airflow; a sync brings the change.
    let dag_run_id = first["dag_run_id"].as_str().unwrap().to_string();
    airflow.with(|state| state.finish_run(&dag_run_id, "success", Utc::now()));
    send(&app, Method::POST, &sync, &app.keys.admin, None, &[]).await;
    let (_, after) = body(
        app.get(
            &format!("/runs/{}", first["id"].as_str().unwrap()),
            Some(&app.keys.viewer),
        )
        .await,
    )
    .await;
    assert_eq!(after["status"], "success");

    // Bad bodies.
    for bad in [
        json!({"conf": "x"}),
        json!({"logical_date": "tomorrow"}),
        json!({"unknown": 1}),
    ] {
        assert_eq!(
            send(
                &app,
                Method::POST,
                &trigger,
                &app.keys.editor,
                Some(bad.clone()),
                &[]
            )
            .await
            .status(),
            422,
            "{bad}"
        );
    }
}

async fn trigger_passes_airflow_errors_through(backend: Backend) {
    let (app, airflow, connector) = setup(backend, |_| {}).await;
    send(
        &app,
        Method::POST,
        &format!("/connectors/{}/sync", connector.id),
        &app.keys.admin,
        None,
        &[],
    )
    .await;
    let trigger = format!(
        "/pipelines/{}/trigger",
        ids::pipeline_id(connector.id, "etl")
    );

    // The DAG is gone from Airflow: Airflow's 404 and message.
    airflow.with(|state| state.dags.clear());
    let (status, json) =
        body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await).await;
    assert_eq!(status, 404);
    assert!(json["detail"].as_str().unwrap().contains("etl"), "{json}");
    airflow.with(|state| state.add_dag("etl", "data-team"));

    // Airflow too slow: 504. Airflow refusing: its status.
    airflow.with(|state| state.fault_next([Fault::Delay(Duration::from_secs(3))]));
    let runs_before = airflow.with(|state| state.runs.len());
    let (status, json) =
        body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await).await;
    assert_eq!(
        status,
        504,
        "{json} {:?}",
        airflow.with(|state| state.log.clone())
    );
    // The slow request did create a run in Airflow; it was not sent a second time.
    assert_eq!(airflow.with(|state| state.runs.len()), runs_before + 1);
    airflow.with(|state| state.fault_next([Fault::Status(400)]));
    assert_eq!(
        body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await)
            .await
            .0,
        400
    );

    // Airflow unreachable: 502.
    let down = Connector {
        base_url: "http://127.0.0.1:9".into(),
        ..connector
    };
    app.repo.put_connector(&down).await.unwrap();
    let (status, json) =
        body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await).await;
    assert_eq!(status, 502, "{json}");
    // A failed trigger leaves no run behind, and a key used with it can be used again.
    let pipeline_runs = app
        .get(
            &format!("/pipelines/{}/runs", ids::pipeline_id(down.id, "etl")),
            Some(&app.keys.viewer),
        )
        .await;
    assert_eq!(header(&pipeline_runs, "x-total-count"), "1");
}

/// What a client sees when Airflow misbehaves on a trigger (docs/API.md, "Trigger"): 401 and
/// 403 stay the caller's own codes, so Airflow refusing the connector's credentials is a 502
/// that says so; Airflow's 422 is the platform's list with Airflow's locations; 429 and 503
/// keep their code with a `Retry-After` (Airflow's, else one computed); Airflow's 5xx is a
/// 502; every 502 names its cause and never a secret.
async fn trigger_answers_for_each_airflow_failure(backend: Backend) {
    let (app, airflow, connector) = setup(backend, |_| {}).await;
    let sync = format!("/connectors/{}/sync", connector.id);
    send(&app, Method::POST, &sync, &app.keys.admin, None, &[]).await;
    let trigger = format!(
        "/pipelines/{}/trigger",
        ids::pipeline_id(connector.id, "etl")
    );
    let attempt = |faults: Vec<Fault>| {
        airflow.with(|state| {
            state.clear_faults();
            state.fault_next(faults);
        });
        async { body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await).await }
    };

    for refused in [401, 403] {
        // 401 twice: the client fetches a new token once before believing it.
        let (status, json) = attempt(vec![Fault::Status(refused); 2]).await;
        assert_eq!(status, 502, "Airflow's {refused}: {json}");
        let detail = json["detail"].as_str().unwrap();
        assert!(
            detail.contains("refused the connector's credentials"),
            "{detail}"
        );
        assert!(detail.contains(&refused.to_string()), "{detail}");
    }

    let (status, json) = attempt(vec![Fault::Status(422)]).await;
    assert_eq!(status, 422, "{json}");
    assert_eq!(
        json["detail"],
        json!([{"loc": ["body"], "msg": "injected failure", "type": "value_error"}]),
        "a string detail becomes one entry at the body"
    );

    // max_attempts is 2 here: two 429s exhaust the retries.
    let (status, json) = attempt(vec![Fault::TooManyRequests(1); 2]).await;
    assert_eq!(status, 429, "{json}");
    let response = {
        airflow
            .with(|state| state.fault_next([Fault::TooManyRequests(0), Fault::TooManyRequests(7)]));
        send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await
    };
    // The last answer's Retry-After goes on to the client.
    assert_eq!(header(&response, "retry-after"), "7");
    let response = {
        airflow.with(|state| state.fault_next(vec![Fault::Status(503); 2]));
        send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await
    };
    assert_eq!(response.status(), 503);
    assert_eq!(
        header(&response, "retry-after"),
        shared::service::connectors::DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS.to_string(),
        "computed when Airflow gives none"
    );

    // A 500 is not retried for a trigger (the run may exist): one answer, a 502.
    let (status, json) = attempt(vec![Fault::Status(500)]).await;
    assert_eq!(status, 502, "{json}");
    assert!(
        json["detail"].as_str().unwrap().contains("HTTP 500"),
        "{json}"
    );

    let (status, json) = attempt(vec![Fault::Garbage]).await;
    assert_eq!(status, 502, "{json}");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("invalid response"),
        "{json}"
    );

    airflow.with(|state| state.clear_faults());
    let unset = Connector {
        auth: ConnectorAuth::Password {
            username: "admin".into(),
            password: SecretRef::Env("ORCHESTRATION_TEST_UNSET_SECRET".into()),
        },
        ..connector.clone()
    };
    app.repo.put_connector(&unset).await.unwrap();
    let (status, json) =
        body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await).await;
    assert_eq!(status, 502, "{json}");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("ORCHESTRATION_TEST_UNSET_SECRET is not set"),
        "{json}"
    );

    let down = Connector {
        base_url: "http://127.0.0.1:9".into(),
        ..connector
    };
    app.repo.put_connector(&down).await.unwrap();
    let (status, json) =
        body(send(&app, Method::POST, &trigger, &app.keys.editor, None, &[]).await).await;
    assert_eq!(status, 502, "{json}");
    let detail = json["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Airflow could not be reached: "),
        "{detail}"
    );
    assert!(!detail.contains("admin"), "no credential in {detail}");
}

/// A request that died after claiming its Idempotency-Key and after Airflow created the run:
/// the retry, a minute later, takes the claim over and returns that run (no duplicate).
async fn an_abandoned_idempotent_trigger_is_completed_by_its_retry(backend: Backend) {
    use sha2::Digest;
    let (app, airflow, connector) = setup(backend, |_| {}).await;
    send(
        &app,
        Method::POST,
        &format!("/connectors/{}/sync", connector.id),
        &app.keys.admin,
        None,
        &[],
    )
    .await;
    let pipeline_id = ids::pipeline_id(connector.id, "etl");
    let key = "crashed-request-7";
    let editor = app
        .repo
        .find_api_key(&shared::auth::hash_key(&app.keys.editor))
        .await
        .unwrap()
        .unwrap();
    let key_hash = shared::service::trigger::idempotency_key_hash(
        app.space.id,
        editor.user_id,
        pipeline_id,
        key,
    );
    let request_body = json!({"note": "retried"});
    // What the dead request left: its claim (no run yet), and the run in Airflow.
    let fingerprint = {
        let canonical = json!({"pipeline_id": pipeline_id, "conf": null, "logical_date": null, "note": "retried"});
        sha2::Sha256::digest(canonical.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let long_ago = Utc::now() - chrono::Duration::minutes(2);
    let claim = shared::repo::IdempotencyRecord {
        pipeline_id,
        request_hash: fingerprint,
        run_id: None,
        response: None,
        claimed_at: long_ago,
        expires_at: (Utc::now() + chrono::Duration::hours(1)).timestamp(),
    };
    app.repo
        .claim_idempotency_key(app.space.id, editor.user_id, &key_hash, &claim, long_ago)
        .await
        .unwrap();
    let dag_run_id = format!("api__{}", &key_hash[..32]);
    airflow.with(|state| state.add_run("etl", &dag_run_id, "running", Utc::now(), &["extract"]));
    let runs_before = airflow.with(|state| state.runs.len());

    let (status, run) = body(
        send(
            &app,
            Method::POST,
            &format!("/pipelines/{pipeline_id}/trigger"),
            &app.keys.editor,
            Some(request_body),
            &[("Idempotency-Key", key)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["dag_run_id"], dag_run_id, "the run Airflow already had");
    assert_eq!(run["status"], "running");
    assert_eq!(
        airflow.with(|state| state.runs.len()),
        runs_before,
        "no second run in Airflow"
    );
}

on_both_backends!(
    an_abandoned_idempotent_trigger_is_completed_by_its_retry,
    trigger_answers_for_each_airflow_failure,
    connector_sync_over_http,
    spent_budget_answers_202_and_the_next_sync_resumes,
    unreachable_airflow_is_a_failed_sync_record,
    trigger_creates_the_run_at_once,
    trigger_passes_airflow_errors_through,
);
