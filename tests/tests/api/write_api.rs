//! Black-box tests of the governance writes and comments over HTTP, on both backends.

use chrono::Duration;
use orchestration_tests::app::{TestApp, body, header, run, task_run};
use orchestration_tests::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::model::RunStatus;

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    json: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url("acme", path))
        .bearer_auth(key);
    if let Some(json) = json {
        request = request.json(&json);
    }
    request.send().await.unwrap()
}

async fn team_criticality_and_watch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app.add_pipeline(&app.connector, "governed", |_| {}).await;
    let editor = app.keys.editor.clone();
    let team_path = format!("/pipelines/{}/team", p.id);

    let (status, json) = body(
        send(
            &app,
            Method::PATCH,
            &team_path,
            &editor,
            Some(json!({"team_id": app.team.id})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["team_id"], app.team.id.to_string());
    assert_eq!(json["dag_id"], "governed");
    assert!(json["summary"].is_object());
    assert!(json["updated_at"].is_string());
    assert!(json["updated_by"].is_string());

    // Persisted, and visible to the list filter.
    let (_, list) = body(
        app.get(
            &format!("/pipelines?team_id={}", app.team.id),
            Some(&app.keys.viewer),
        )
        .await,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, json) = body(
        send(
            &app,
            Method::PATCH,
            &team_path,
            &editor,
            Some(json!({"team_id": null})),
        )
        .await,
    )
    .await;
    assert_eq!((status, &json["team_id"]), (200, &Value::Null));

    // A team of another space (or none at all) cannot be assigned.
    let foreign = app
        .repo
        .create_team(app.other_space.id, "Theirs", chrono::Utc::now())
        .await
        .unwrap();
    for team in [foreign.id, uuid::Uuid::new_v4()] {
        let (status, json) = body(
            send(
                &app,
                Method::PATCH,
                &team_path,
                &editor,
                Some(json!({"team_id": team})),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{json}");
        assert_eq!(json["detail"][0]["loc"], json!(["body", "team_id"]));
        assert!(!json.to_string().contains("Theirs"));
    }

    let crit_path = format!("/pipelines/{}/criticality", p.id);
    let (status, json) = body(
        send(
            &app,
            Method::PATCH,
            &crit_path,
            &editor,
            Some(json!({"criticality": "critical"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, json["criticality"].as_str()),
        (200, Some("critical"))
    );
    let (status, json) = body(
        send(
            &app,
            Method::PATCH,
            &crit_path,
            &editor,
            Some(json!({"criticality": null})),
        )
        .await,
    )
    .await;
    assert_eq!((status, &json["criticality"]), (200, &Value::Null));

    // Bad bodies.
    for (bad, kind) in [
        (json!({"criticality": "urgent"}), "enum"),
        (json!({}), "missing"),
        (json!({"criticality": "low", "extra": 1}), "extra_forbidden"),
        (json!({"criticality": 3}), "string_type"),
    ] {
        let (status, json) =
            body(send(&app, Method::PATCH, &crit_path, &editor, Some(bad.clone())).await).await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(json["detail"][0]["type"], kind, "{bad}");
    }
    let not_json = app
        .client
        .patch(app.url("acme", &crit_path))
        .bearer_auth(&editor)
        .header("content-type", "text/plain")
        .body("{\"criticality\":\"low\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(body(not_json).await.0, 415);
    let broken = app
        .client
        .patch(app.url("acme", &crit_path))
        .bearer_auth(&editor)
        .header("content-type", "application/json")
        .body("{\"criticality\":")
        .send()
        .await
        .unwrap();
    let (status, json) = body(broken).await;
    assert_eq!(
        (status, json["detail"][0]["type"].as_str()),
        (422, Some("json_invalid"))
    );
    let huge = app
        .client
        .patch(app.url("acme", &crit_path))
        .bearer_auth(&editor)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"criticality\":\"{}\"}}",
            "x".repeat(300 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(body(huge).await.0, 413);

    // Viewers may not change governance fields; nothing changes.
    let (status, _) = body(
        send(
            &app,
            Method::PATCH,
            &crit_path,
            &app.keys.viewer,
            Some(json!({"criticality": "low"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);
    let (_, detail) = body(
        app.get(&format!("/pipelines/{}", p.id), Some(&editor))
            .await,
    )
    .await;
    assert_eq!(detail["criticality"], Value::Null);

    // Watch / unwatch, idempotent, per caller.
    let watch_path = format!("/pipelines/{}/watch", p.id);
    for _ in 0..2 {
        assert_eq!(
            send(&app, Method::PUT, &watch_path, &app.keys.viewer, None)
                .await
                .status(),
            204
        );
    }
    let (_, mine) = body(
        app.get("/pipelines?watched_only=true", Some(&app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(mine[0]["watched"], true);
    let (_, theirs) = body(app.get("/pipelines?watched_only=true", Some(&editor)).await).await;
    assert_eq!(theirs, json!([]));
    for _ in 0..2 {
        assert_eq!(
            send(&app, Method::DELETE, &watch_path, &app.keys.viewer, None)
                .await
                .status(),
            204
        );
    }
    let (_, mine) = body(
        app.get("/pipelines?watched_only=true", Some(&app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(mine, json!([]));
    let missing = format!("/pipelines/{}/watch", uuid::Uuid::new_v4());
    assert_eq!(
        send(&app, Method::PUT, &missing, &app.keys.viewer, None)
            .await
            .status(),
        404
    );

    // A sync refreshing Airflow's fields leaves the platform's alone.
    send(
        &app,
        Method::PATCH,
        &crit_path,
        &editor,
        Some(json!({"criticality": "high"})),
    )
    .await;
    let mut resynced = p.clone();
    resynced.description = Some("changed in Airflow".into());
    app.repo.upsert_pipeline_metadata(&resynced).await.unwrap();
    let (_, detail) = body(
        app.get(&format!("/pipelines/{}", p.id), Some(&editor))
            .await,
    )
    .await;
    assert_eq!(detail["criticality"], "high");
    assert_eq!(detail["description"], "changed in Airflow");
}

async fn comments_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app.add_pipeline(&app.connector, "commented", |_| {}).await;
    let mut r = run(
        &p,
        "scheduled__1",
        Duration::hours(1),
        RunStatus::Failed,
        Some(20),
    );
    let t = task_run(&r.run, "load", 1, "failed", Some(10));
    let (run_id, task_run_id) = (r.run.id, t.id);
    r.task_runs.push(t);
    app.add_runs(&p, vec![r]).await;
    let viewer = app.keys.viewer.clone();

    let run_comments = format!("/runs/{run_id}/comments");
    let response = send(
        &app,
        Method::POST,
        &run_comments,
        &viewer,
        Some(json!({"content": "  Looks like the **source** was late.  "})),
    )
    .await;
    let etag = header(&response, "etag");
    let (status, created) = body(response).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["content"], "Looks like the **source** was late.",
        "trimmed"
    );
    assert_eq!(created["target_type"], "run");
    assert_eq!(created["target_id"], run_id.to_string());
    assert_eq!(created["run_id"], run_id.to_string());
    assert_eq!(created["author"]["full_name"], "Vera Viewer");
    assert_eq!(created["author"]["id"], app.viewer_id.to_string());
    assert_eq!(created["edited"], false);
    assert_eq!(created["created_at"], created["updated_at"]);
    assert_eq!(etag, "\"1\"");
    let comment_id = created["id"].as_str().unwrap().to_string();

    let task_comments = format!("/task-runs/{task_run_id}/comments");
    let (status, on_task) = body(
        send(
            &app,
            Method::POST,
            &task_comments,
            &app.keys.editor,
            Some(json!({"content": "retry me"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(on_task["target_type"], "task_run");
    assert_eq!(on_task["run_id"], run_id.to_string());

    // Lists: oldest first, standard pagination.
    for i in 0..3 {
        send(
            &app,
            Method::POST,
            &run_comments,
            &app.keys.admin,
            Some(json!({"content": format!("note {i}")})),
        )
        .await;
    }
    let response = app
        .get(&format!("{run_comments}?size=2"), Some(&viewer))
        .await;
    assert_eq!(header(&response, "x-total-count"), "4");
    assert_eq!(header(&response, "x-page-size"), "2");
    assert_eq!(header(&response, "x-total-pages"), "2");
    let (_, page) = body(response).await;
    assert_eq!(page[0]["id"], comment_id);
    assert_eq!(page[1]["content"], "note 0");
    let response = app
        .get(&format!("{run_comments}?size=500"), Some(&viewer))
        .await;
    assert_eq!(
        header(&response, "x-page-size"),
        "100",
        "comments cap at 100"
    );
    let response = app.get(&task_comments, Some(&viewer)).await;
    assert_eq!(
        header(&response, "x-page-size"),
        "20",
        "comments default to 20"
    );
    assert_eq!(body(response).await.1.as_array().unwrap().len(), 1);

    // Edits: author only, both verbs, with optimistic concurrency.
    let path = format!("/comments/{comment_id}");
    let (status, _) = body(
        send(
            &app,
            Method::PATCH,
            &path,
            &app.keys.admin,
            Some(json!({"content": "hijack"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "not even an admin edits another's comment");
    let response = app
        .client
        .put(app.url("acme", &path))
        .bearer_auth(&viewer)
        .header("if-match", &etag)
        .json(&json!({"content": "Source was late by 2h."}))
        .send()
        .await
        .unwrap();
    let new_etag = header(&response, "etag");
    let (status, edited) = body(response).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["edited"], true);
    assert_eq!(edited["content"], "Source was late by 2h.");
    assert_ne!(edited["updated_at"], edited["created_at"]);
    assert_eq!(new_etag, "\"2\"");
    let stale = app
        .client
        .patch(app.url("acme", &path))
        .bearer_auth(&viewer)
        .header("if-match", &etag)
        .json(&json!({"content": "stale write"}))
        .send()
        .await
        .unwrap();
    assert_eq!(body(stale).await.0, 412);
    let (_, listed) = body(app.get(&run_comments, Some(&viewer)).await).await;
    assert_eq!(
        listed[0]["content"], "Source was late by 2h.",
        "the list shows the edit, not the stale write"
    );

    for bad in [
        json!({"content": "   "}),
        json!({"content": "x".repeat(10_001)}),
        json!({"text": "hi"}),
        json!({"content": 5}),
    ] {
        let (status, _) =
            body(send(&app, Method::PATCH, &path, &viewer, Some(bad.clone())).await).await;
        assert_eq!(status, 422, "{bad}");
    }
    let (status, _) = body(
        send(
            &app,
            Method::POST,
            &run_comments,
            &viewer,
            Some(json!({"content": "x".repeat(10_000)})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "10,000 characters are allowed");

    // Deletes: not by another non-admin; by an admin; then gone.
    let editor_comment = on_task["id"].as_str().unwrap();
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &format!("/comments/{editor_comment}"),
            &viewer,
            None
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        send(&app, Method::DELETE, &path, &app.keys.admin, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        send(&app, Method::DELETE, &path, &app.keys.admin, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        send(
            &app,
            Method::PATCH,
            &path,
            &viewer,
            Some(json!({"content": "x"}))
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &format!("/comments/{editor_comment}"),
            &app.keys.editor,
            None
        )
        .await
        .status(),
        204
    );
    let response = app.get(&run_comments, Some(&viewer)).await;
    assert_eq!(header(&response, "x-total-count"), "4");

    // Unknown targets and ids are 404; malformed ones 422.
    let missing = uuid::Uuid::new_v4();
    for path in [
        format!("/runs/{missing}/comments"),
        format!("/task-runs/{missing}/comments"),
    ] {
        assert_eq!(app.get(&path, Some(&viewer)).await.status(), 404);
        assert_eq!(
            send(
                &app,
                Method::POST,
                &path,
                &viewer,
                Some(json!({"content": "x"}))
            )
            .await
            .status(),
            404
        );
    }
    assert_eq!(
        app.get("/runs/nope/comments", Some(&viewer)).await.status(),
        422
    );
    assert_eq!(
        send(&app, Method::DELETE, "/comments/nope", &viewer, None)
            .await
            .status(),
        422
    );
}

on_both_backends!(team_criticality_and_watch, comments_lifecycle);
