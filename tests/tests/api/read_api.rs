//! Black-box tests of the read endpoints over HTTP, on both storage backends.

use chrono::{Duration, DurationRound, Utc};
use orchestration_tests::app::{OTHER_SPACE, TestApp, body, header, run, run_at, task_run};
use orchestration_tests::{Backend, on_both_backends};
use serde_json::Value;
use shared::domain::model::{Criticality, RunStatus};

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|p| p["dag_id"].as_str().unwrap().to_string())
        .collect()
}

async fn authentication_and_space_scoping(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let keys = &app.keys;

    let response = app.get("/pipelines", None).await;
    assert_eq!(header(&response, "www-authenticate"), "Bearer");
    assert_eq!(
        body(response).await,
        (401, serde_json::json!({"detail": "Not authenticated"}))
    );

    for (key, why) in [
        ("not-a-key", "too short"),
        ("orch_0000000000000000000000000000000000000000", "unknown"),
        (keys.revoked.as_str(), "revoked"),
        (keys.expired.as_str(), "expired"),
    ] {
        let (status, json) = body(app.get("/pipelines", Some(key)).await).await;
        assert_eq!(status, 401, "{why} key");
        assert!(json["detail"].is_string(), "{why} key: {json}");
    }
    let basic = app
        .client
        .get(app.url("acme", "/pipelines"))
        .header("Authorization", format!("Basic {}", keys.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401, "wrong scheme");

    // A space the caller is not a member of, an unknown one and an impossible slug: all 404.
    for slug in [OTHER_SPACE, "nowhere", "Not_A_Slug"] {
        let (status, json) = body(app.get_in(slug, "/pipelines", Some(&keys.admin)).await).await;
        assert_eq!(
            (status, json["detail"].as_str()),
            (404, Some("Space not found")),
            "{slug}"
        );
    }
    for key in [&keys.admin, &keys.editor, &keys.viewer] {
        assert_eq!(app.get("/pipelines", Some(key)).await.status(), 200);
    }
    let (status, _) = body(
        app.get_in(OTHER_SPACE, "/pipelines", Some(&keys.outsider))
            .await,
    )
    .await;
    assert_eq!(status, 200);
}

async fn objects_of_another_space_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let theirs = app
        .add_pipeline(&app.other_connector, "their_dag", |_| {})
        .await;
    let their_run = run(
        &theirs,
        "scheduled__1",
        Duration::hours(1),
        RunStatus::Success,
        Some(10),
    );
    let their_run_id = their_run.run.id;
    app.add_runs(&theirs, vec![their_run]).await;

    for path in [
        format!("/pipelines/{}", theirs.id),
        format!("/pipelines/{}/runs", theirs.id),
        format!("/runs/{their_run_id}"),
    ] {
        let response = app.get(&path, Some(&app.keys.admin)).await;
        let (status, json) = body(response).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            !json.to_string().contains("their_dag"),
            "no data of the other space leaks"
        );
    }
    // The owner of the other space sees them.
    let response = app
        .get_in(
            OTHER_SPACE,
            &format!("/runs/{their_run_id}"),
            Some(&app.keys.outsider),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (_, list) = body(app.get("/pipelines", Some(&app.keys.admin)).await).await;
    assert_eq!(list, serde_json::json!([]));
}

async fn invalid_parameters_are_422_in_the_platform_format(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Some(app.keys.viewer.as_str());
    let (status, json) = body(app.get("/pipelines?size=abc", key).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        json["detail"][0]["loc"],
        serde_json::json!(["query", "size"])
    );
    assert_eq!(json["detail"][0]["type"], "int_parsing");
    assert!(json["detail"][0]["msg"].is_string());

    for query in [
        "page=0",
        "size=0",
        "days=0",
        "days=91",
        "days=7.5",
        "status=sideways",
        "provider=dagster",
        "criticality=urgent",
        "team_id=not-a-uuid",
        "connector_id=123",
        "watched_only=maybe",
        "days=1&days=2",
    ] {
        let (status, json) = body(app.get(&format!("/pipelines?{query}"), key).await).await;
        assert_eq!(status, 422, "{query}: {json}");
        assert!(
            json["detail"].as_array().is_some_and(|d| !d.is_empty()),
            "{query}"
        );
    }
    let long_q = "x".repeat(201);
    assert_eq!(
        app.get(&format!("/pipelines?q={long_q}"), key)
            .await
            .status(),
        422
    );

    // Every error is reported at once.
    let (_, json) = body(
        app.get("/pipelines?days=0&criticality=urgent&page=x", key)
            .await,
    )
    .await;
    assert_eq!(json["detail"].as_array().unwrap().len(), 3);

    for path in ["/pipelines/not-a-uuid", "/pipelines/123/runs", "/runs/zzz"] {
        let (status, json) = body(app.get(path, key).await).await;
        assert_eq!(status, 422, "{path}");
        assert_eq!(json["detail"][0]["loc"][0], "path");
    }
    let pipeline = app.add_pipeline(&app.connector, "p", |_| {}).await;
    for query in [
        "started_from=yesterday",
        "started_to=2026-13-01",
        "status=skipped",
        "run_type=Cron-Job",
        "started_from=2026-02-01T00:00:00Z&started_to=2026-01-01T00:00:00Z",
    ] {
        let path = format!("/pipelines/{}/runs?{query}", pipeline.id);
        assert_eq!(app.get(&path, key).await.status(), 422, "{query}");
    }
    // Unknown ids are 404, unknown paths are 404, wrong methods 405, all as JSON.
    let missing = uuid::Uuid::new_v4();
    for path in [
        format!("/pipelines/{missing}"),
        format!("/runs/{missing}"),
        format!("/pipelines/{missing}/runs"),
    ] {
        assert_eq!(body(app.get(&path, key).await).await.0, 404, "{path}");
    }
    assert_eq!(body(app.get("/nothing-here", key).await).await.0, 404);
    let post = app
        .client
        .post(app.url("acme", "/pipelines"))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(body(post).await.0, 405);
}

async fn pipeline_list_filters_sorting_and_pagination(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other_connector = shared::domain::model::Connector {
        id: uuid::Uuid::new_v4(),
        name: "second".into(),
        ..app.connector.clone()
    };
    app.repo.put_connector(&other_connector).await.unwrap();

    let etl = app
        .add_pipeline(&app.connector, "orders_etl", |p| {
            p.name = "Orders ETL".into();
            p.owners = vec!["Data-Team".into()];
            p.tags = vec!["finance".into()];
        })
        .await;
    let report = app
        .add_pipeline(&app.connector, "daily_report", |p| {
            p.name = "daily report".into();
            p.description = Some("Revenue numbers for the board".into());
        })
        .await;
    let never = app
        .add_pipeline(&other_connector, "never_ran", |p| {
            p.name = "Zeta never ran".into()
        })
        .await;
    app.add_runs(
        &etl,
        vec![run(
            &etl,
            "scheduled__1",
            Duration::hours(2),
            RunStatus::Failed,
            Some(30),
        )],
    )
    .await;
    app.add_runs(
        &report,
        vec![run(
            &report,
            "scheduled__1",
            Duration::hours(2),
            RunStatus::Success,
            Some(30),
        )],
    )
    .await;
    app.repo
        .set_pipeline_governance(
            app.space.id,
            etl.id,
            Some(Some(app.team.id)),
            Some(Some(Criticality::High)),
            app.admin_id,
            Utc::now(),
        )
        .await
        .unwrap();
    app.repo
        .put_watch(&report, app.viewer_id, Utc::now())
        .await
        .unwrap();

    let key = Some(app.keys.viewer.as_str());
    let response = app.get("/pipelines", key).await;
    assert_eq!(header(&response, "x-total-count"), "3");
    assert_eq!(header(&response, "x-page"), "1");
    assert_eq!(header(&response, "x-page-size"), "100");
    assert_eq!(header(&response, "x-total-pages"), "1");
    let (_, list) = body(response).await;
    // Sorted by name, case-insensitively.
    assert_eq!(ids(&list), ["daily_report", "orders_etl", "never_ran"]);
    assert_eq!(list[0]["watched"], true);
    assert_eq!(list[1]["watched"], false);
    assert_eq!(list[1]["status"], "failed");
    assert_eq!(list[2]["status"], "unknown");
    assert_eq!(list[1]["team_id"], app.team.id.to_string());
    assert_eq!(list[1]["criticality"], "high");
    assert_eq!(list[1]["owners"], serde_json::json!(["Data-Team"]));

    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "provider=airflow".into(),
            vec!["daily_report", "orders_etl", "never_ran"],
        ),
        ("status=failed".into(), vec!["orders_etl"]),
        ("status=unknown".into(), vec!["never_ran"]),
        ("owner=data-team".into(), vec!["orders_etl"]),
        ("criticality=high".into(), vec!["orders_etl"]),
        ("criticality=low".into(), vec![]),
        (format!("team_id={}", app.team.id), vec!["orders_etl"]),
        (
            format!("connector_id={}", other_connector.id),
            vec!["never_ran"],
        ),
        ("q=REVENUE".into(), vec!["daily_report"]),
        ("q=finance".into(), vec!["orders_etl"]),
        ("q=etl".into(), vec!["orders_etl"]),
        ("watched_only=true".into(), vec!["daily_report"]),
        ("watched_only=false&q=never".into(), vec!["never_ran"]),
        ("status=success&q=orders".into(), vec![]),
    ];
    for (query, expected) in cases {
        let response = app.get(&format!("/pipelines?{query}"), key).await;
        assert_eq!(
            header(&response, "x-total-count"),
            expected.len().to_string(),
            "{query}"
        );
        let (_, list) = body(response).await;
        assert_eq!(ids(&list), expected, "{query}");
    }
    // The admin does not watch anything.
    let (_, list) = body(
        app.get("/pipelines?watched_only=true", Some(&app.keys.admin))
            .await,
    )
    .await;
    assert_eq!(ids(&list), Vec::<String>::new());

    // Pages: size 2 → two pages, with Link relations keeping the filters.
    let response = app
        .get("/pipelines?size=2&page=2&provider=airflow", key)
        .await;
    assert_eq!(header(&response, "x-total-pages"), "2");
    assert_eq!(header(&response, "x-page"), "2");
    let link = header(&response, "link");
    assert!(
        link.contains("provider=airflow&page=1&size=2>; rel=\"prev\""),
        "{link}"
    );
    assert!(link.contains("page=2&size=2>; rel=\"last\""), "{link}");
    assert!(!link.contains("rel=\"next\""), "{link}");
    let (_, list) = body(response).await;
    assert_eq!(ids(&list), ["never_ran"]);
    let (_, beyond) = body(app.get("/pipelines?size=2&page=5", key).await).await;
    assert_eq!(beyond, serde_json::json!([]));
    // Oversized pages are capped, not rejected.
    let response = app.get("/pipelines?size=5000", key).await;
    assert_eq!(header(&response, "x-page-size"), "1000");

    let _ = never;
}

async fn summaries_cover_exactly_the_requested_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app.add_pipeline(&app.connector, "windowed", |_| {}).await;
    let h = Duration::hours;
    let d = Duration::days;
    let runs = vec![
        run(&p, "r1", d(1), RunStatus::Success, Some(10)),
        run(&p, "r2", d(2), RunStatus::Success, Some(20)),
        run(&p, "r3", d(3), RunStatus::Success, Some(30)),
        run(&p, "r4", d(4), RunStatus::Failed, Some(40)),
        run(&p, "r5", h(1), RunStatus::Running, None),
        run(&p, "old1", d(10), RunStatus::Failed, Some(100)),
        run(&p, "old2", d(20), RunStatus::Success, Some(200)),
    ];
    let newest = runs[4].run.id;
    app.add_runs(&p, runs).await;

    let key = Some(app.keys.viewer.as_str());
    let (status, week) = body(app.get(&format!("/pipelines/{}", p.id), key).await).await;
    assert_eq!(status, 200);
    assert_eq!(week["status"], "running");
    let summary = &week["summary"];
    assert_eq!(summary["days"], 7);
    assert_eq!(summary["runs_total"], 5);
    assert_eq!(summary["runs_succeeded"], 3);
    assert_eq!(summary["runs_failed"], 1);
    assert_eq!(summary["success_rate"], 0.75);
    assert_eq!(summary["duration_p50"], 25.0);
    assert_eq!(summary["duration_mean"], 25.0);
    assert!((summary["duration_p95"].as_f64().unwrap() - 38.5).abs() < 1e-9);
    assert_eq!(summary["last_run"]["id"], newest.to_string());
    assert_eq!(summary["last_run"]["status"], "running");
    assert!(summary["last_success_at"].is_string());
    assert!(summary["last_failure_at"].is_string());
    assert_eq!(
        summary["recent_statuses"],
        serde_json::json!(["success", "success", "success", "failed"])
    );

    let (_, month) = body(app.get(&format!("/pipelines/{}?days=30", p.id), key).await).await;
    assert_eq!(month["summary"]["runs_total"], 7);
    assert_eq!(month["summary"]["runs_failed"], 2);
    assert_eq!(month["summary"]["recent_statuses"][5], "success");

    // The list computes the same summary for the same window.
    let (_, list) = body(app.get("/pipelines?days=30", key).await).await;
    assert_eq!(list[0]["summary"], month["summary"]);

    // A one-day window only holds the running run: no finished runs, so no rates.
    let (_, day) = body(app.get(&format!("/pipelines/{}?days=1", p.id), key).await).await;
    assert_eq!(day["summary"]["runs_total"], 1);
    assert_eq!(day["summary"]["success_rate"], Value::Null);
    assert_eq!(day["summary"]["duration_p50"], Value::Null);
    assert_eq!(day["summary"]["last_success_at"], Value::Null);
}

async fn runs_list_newest_first_with_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app.add_pipeline(&app.connector, "runs", |_| {}).await;
    // Airflow's times have microsecond precision; so do these.
    let base = (Utc::now() - Duration::days(5))
        .duration_trunc(Duration::microseconds(1))
        .unwrap();
    let mut runs = Vec::new();
    for i in 0..12 {
        let status = if i % 4 == 3 {
            RunStatus::Failed
        } else {
            RunStatus::Success
        };
        let id = if i % 5 == 0 {
            format!("manual__{i}")
        } else {
            format!("scheduled__{i}")
        };
        runs.push(run_at(&p, &id, base + Duration::hours(i), status, Some(60)));
    }
    // A run that has not started is listed by its queue time, but never matches start bounds.
    let mut queued = run_at(&p, "scheduled__queued", Utc::now(), RunStatus::Queued, None);
    queued.run.started_at = None;
    runs.push(queued);
    app.add_runs(&p, runs).await;

    let key = Some(app.keys.viewer.as_str());
    let path = |q: &str| format!("/pipelines/{}/runs{q}", p.id);
    let response = app.get(&path(""), key).await;
    assert_eq!(header(&response, "x-total-count"), "13");
    let (_, list) = body(response).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dag_run_id"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "scheduled__queued");
    assert_eq!(names[1], "scheduled__11");
    assert_eq!(names[12], "manual__0");
    assert_eq!(list[1]["duration"], 60.0);
    assert_eq!(list[0]["started_at"], Value::Null);

    let stamp =
        |h: i64| (base + Duration::hours(h)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let from_to = format!("?started_from={}&started_to={}", stamp(2), stamp(5));
    let (_, list) = body(app.get(&path(&from_to.replace('+', "%2B")), key).await).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dag_run_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["manual__5", "scheduled__4", "scheduled__3", "scheduled__2"],
        "bounds are inclusive"
    );

    let (_, failed) = body(app.get(&path("?status=failed"), key).await).await;
    assert_eq!(failed.as_array().unwrap().len(), 3);
    let (_, manual) = body(app.get(&path("?run_type=manual"), key).await).await;
    assert_eq!(manual.as_array().unwrap().len(), 3);
    let (_, queued) = body(app.get(&path("?status=queued"), key).await).await;
    assert_eq!(queued.as_array().unwrap().len(), 1);
    let (_, started_since) = body(
        app.get(&path(&format!("?started_from={}", stamp(11))), key)
            .await,
    )
    .await;
    assert_eq!(
        started_since.as_array().unwrap().len(),
        1,
        "the unstarted run does not match a start bound"
    );

    let response = app.get(&path("?size=5&page=3"), key).await;
    assert_eq!(header(&response, "x-total-pages"), "3");
    let (_, page) = body(response).await;
    assert_eq!(page.as_array().unwrap().len(), 3);
}

async fn run_detail_has_every_task_try_and_unusual_durations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app.add_pipeline(&app.connector, "tasks", |_| {}).await;
    // Twelve steady runs of ~60 s, then one of 300 s: the last is longer than usual.
    let mut history = Vec::new();
    for i in 0..12 {
        let mut r = run(
            &p,
            &format!("scheduled__{i}"),
            Duration::hours(30 - i),
            RunStatus::Success,
            Some(60),
        );
        let t = task_run(&r.run, "load", 1, "success", Some(50));
        r.task_runs.push(t);
        history.push(r);
    }
    app.add_runs(&p, history).await;
    let mut slow = run(
        &p,
        "scheduled__slow",
        Duration::hours(1),
        RunStatus::Failed,
        Some(300),
    );
    let first = task_run(&slow.run, "load", 1, "up_for_retry", Some(40));
    let second = task_run(&slow.run, "load", 2, "failed", Some(250));
    let extract = task_run(&slow.run, "extract", 1, "success", Some(5));
    slow.task_runs = vec![second, first, extract];
    let slow_id = slow.run.id;
    app.add_runs(&p, vec![slow]).await;

    let (status, detail) = body(
        app.get(&format!("/runs/{slow_id}"), Some(&app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["status"], "failed");
    assert_eq!(detail["longer_than_usual"], true);
    assert_eq!(detail["duration"], 300.0);
    let tasks = detail["task_runs"].as_array().unwrap();
    let order: Vec<(String, u64)> = tasks
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap().to_string(),
                t["try_number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("extract".into(), 1),
            ("load".into(), 1),
            ("load".into(), 2)
        ]
    );
    assert_eq!(tasks[2]["status"], "failed");
    assert_eq!(
        tasks[2]["longer_than_usual"], true,
        "250 s against a history of 50 s"
    );
    assert_eq!(tasks[1]["longer_than_usual"], false);
    assert_eq!(tasks[0]["display_name"], "extract");
    assert_eq!(tasks[2]["run_id"], slow_id.to_string());

    let (_, list) = body(
        app.get(
            &format!("/pipelines/{}/runs?size=2", p.id),
            Some(&app.keys.viewer),
        )
        .await,
    )
    .await;
    assert_eq!(list[0]["longer_than_usual"], true);
    assert_eq!(list[1]["longer_than_usual"], false);
    assert!(
        list[0].get("task_runs").is_none(),
        "lists carry no task runs"
    );

    // Re-ingesting the same runs changes nothing (deterministic ids, idempotent writes).
    let (_, before) = body(
        app.get(&format!("/pipelines/{}", p.id), Some(&app.keys.viewer))
            .await,
    )
    .await;
    let again = run(
        &p,
        "scheduled__0",
        Duration::hours(30),
        RunStatus::Success,
        Some(60),
    );
    app.add_runs(&p, vec![again]).await;
    let (_, after) = body(
        app.get(&format!("/pipelines/{}", p.id), Some(&app.keys.viewer))
            .await,
    )
    .await;
    assert_eq!(
        before["summary"]["runs_total"],
        after["summary"]["runs_total"]
    );
    assert_eq!(after["summary"]["runs_total"], 13);
}

on_both_backends!(
    authentication_and_space_scoping,
    objects_of_another_space_are_not_found,
    invalid_parameters_are_422_in_the_platform_format,
    pipeline_list_filters_sorting_and_pagination,
    summaries_cover_exactly_the_requested_window,
    runs_list_newest_first_with_filters,
    run_detail_has_every_task_try_and_unusual_durations,
);
