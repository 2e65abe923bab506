//! Summaries of long and fine-grained run histories, over HTTP, on both storage backends:
//! a DAG that runs every minute for 90 days (129,600 runs) is counted exactly in every window,
//! its percentiles are within the documented bound, and durations keep Airflow's microseconds.

use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use orchestration_tests::app::{TestApp, body, run_at};
use orchestration_tests::{Backend, on_both_backends};
use serde_json::Value;
use shared::domain::model::{Run, RunStatus};
use shared::domain::summary::{RunSample, RunSeries, percentile};
use shared::keys;
use shared::repo::RunWithTasks;
use shared::store::{Item, Table};

/// Runs the series keeps one by one (`summary::EXACT_SAMPLES`); older ones are kept per hour.
const EXACT: usize = shared::domain::summary::EXACT_SAMPLES;
/// The documented bound on approximate percentiles (relative).
const BOUND: f64 = 0.01;
const HOUR_MICROS: i64 = 3_600_000_000;

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A deterministic pseudo-random number in 0..n (splitmix64).
fn noise(i: u64, n: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % n
}

async fn durations_keep_airflow_microseconds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app.add_pipeline(&app.connector, "micro", |_| {}).await;
    let base = (Utc::now() - Duration::hours(3))
        .duration_trunc(Duration::microseconds(1))
        .unwrap();
    let mut runs = Vec::new();
    // Durations 1.234567 s, 2.000001 s and 3.999999 s (each rounds differently to ms).
    for (i, us) in [1_234_567i64, 2_000_001, 3_999_999].into_iter().enumerate() {
        let mut run = run_at(
            &p,
            &format!("scheduled__{i}"),
            base + Duration::minutes(i as i64 * 10),
            RunStatus::Success,
            None,
        );
        run.run.ended_at = Some(run.run.started_at.unwrap() + Duration::microseconds(us));
        runs.push(run);
    }
    app.add_runs(&p, runs).await;

    let key = Some(app.keys.viewer.as_str());
    let (status, detail) = body(app.get(&format!("/pipelines/{}?days=1", p.id), key).await).await;
    assert_eq!(status, 200, "{detail}");
    let summary = &detail["summary"];
    assert_eq!(summary["duration_p50"], 2.000001, "{summary}");
    let mean = summary["duration_mean"].as_f64().unwrap();
    assert!((mean - 7.234567 / 3.0).abs() < 1e-12, "{summary}");
    let p95 = 2.000001 + (3.999999 - 2.000001) * 0.9;
    assert!(
        (summary["duration_p95"].as_f64().unwrap() - p95).abs() < 1e-12,
        "{summary}"
    );
    assert_eq!(summary["duration_percentiles_approximate"], false);
    let (_, list) = body(app.get("/pipelines?days=1", key).await).await;
    assert_eq!(list[0]["summary"], *summary);
}

/// What a client should see for one window, computed from the runs themselves.
struct Expected {
    total: u64,
    succeeded: u64,
    failed: u64,
    p50: Option<f64>,
    p95: Option<f64>,
    mean: Option<f64>,
    approximate: bool,
}

/// The documented window: `days` × 24 h before `now`; when runs before its start have left
/// the exact tier (more than [`EXACT`] newer runs), its start is the start of its hour.
fn expected(runs: &[Run], now: DateTime<Utc>, days: i64) -> Expected {
    let start = micros(now - Duration::days(days));
    let mut ats: Vec<i64> = runs.iter().map(|r| micros(r.at())).collect();
    ats.sort_unstable();
    let folded_until = ats.len().checked_sub(EXACT + 1).map(|i| ats[i]);
    let approximate = folded_until.is_some_and(|until| start <= until);
    let from = if approximate {
        start.div_euclid(HOUR_MICROS) * HOUR_MICROS
    } else {
        start
    };
    let in_window: Vec<&Run> = runs.iter().filter(|r| micros(r.at()) >= from).collect();
    let count = |s: RunStatus| in_window.iter().filter(|r| r.status == s).count() as u64;
    let mut durations: Vec<f64> = in_window
        .iter()
        .filter(|r| r.status.is_finished())
        .filter_map(|r| r.duration())
        .collect();
    durations.sort_by(f64::total_cmp);
    Expected {
        total: in_window.len() as u64,
        succeeded: count(RunStatus::Success),
        failed: count(RunStatus::Failed),
        p50: percentile(&durations, 0.5),
        p95: percentile(&durations, 0.95),
        mean: (!durations.is_empty())
            .then(|| durations.iter().sum::<f64>() / durations.len() as f64),
        approximate,
    }
}

/// Every minute for 90 days (start jittered by up to 3 s, microseconds; durations from 20 s
/// to 100 s, microseconds), one failure in 7, the newest still running.
fn every_minute(p: &shared::domain::model::Pipeline, now: DateTime<Utc>) -> Vec<RunWithTasks> {
    let first = now - Duration::days(90) + Duration::seconds(20);
    (0..129_600u64)
        .map(|i| {
            let start = first
                + Duration::minutes(i as i64)
                + Duration::microseconds(noise(i, 3_000_000) as i64);
            let status = if i == 129_599 {
                RunStatus::Running
            } else if i % 7 == 3 {
                RunStatus::Failed
            } else {
                RunStatus::Success
            };
            let mut run = run_at(p, &format!("scheduled__{i}"), start, status, None);
            if status.is_finished() {
                let us = 20_000_000 + noise(i + 1_000_000, 80_000_000) as i64;
                run.run.ended_at = Some(start + Duration::microseconds(us));
            }
            run
        })
        .collect()
}

fn check_window(summary: &Value, want: &Expected, context: &str) {
    assert_eq!(summary["runs_total"], want.total, "{context}: {summary}");
    assert_eq!(summary["runs_succeeded"], want.succeeded, "{context}");
    assert_eq!(summary["runs_failed"], want.failed, "{context}");
    let rate = want.succeeded as f64 / (want.succeeded + want.failed) as f64;
    assert_eq!(summary["success_rate"].as_f64(), Some(rate), "{context}");
    let close = |got: &Value, want: Option<f64>, bound: f64, what: &str| {
        let (got, want) = (got.as_f64().unwrap(), want.unwrap());
        assert!(
            ((got - want) / want).abs() <= bound,
            "{context}: {what} {got} vs exact {want} (bound {bound})"
        );
    };
    close(&summary["duration_mean"], want.mean, 1e-9, "mean");
    let bound = if want.approximate { BOUND } else { 1e-9 };
    close(&summary["duration_p50"], want.p50, bound, "p50");
    close(&summary["duration_p95"], want.p95, bound, "p95");
    assert_eq!(
        summary["duration_percentiles_approximate"], want.approximate,
        "{context}"
    );
}

async fn every_minute_for_90_days_is_counted_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app
        .add_pipeline(&app.connector, "every_minute", |_| {})
        .await;
    let now = Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap();
    let runs = every_minute(&p, now);
    // The newest 200 runs (and one old run, changed below) go through the sync's write path;
    // the series of the others is built as that path builds it (the same upserts and prunes)
    // and stored directly, as ingesting 129,600 runs one transaction per 98 would take long.
    let (older, newest) = runs.split_at(runs.len() - 200);
    let changed = older[1_000].clone();
    app.add_runs(&p, vec![changed.clone()]).await;
    let started = Instant::now();
    let mut series = RunSeries::default();
    for (i, run) in older.iter().enumerate() {
        series.upsert(RunSample::of(&run.run));
        if i % 98 == 97 {
            series.prune(now);
        }
    }
    series.prune(now);
    let encoded = series.encode();
    println!(
        "series of {} runs (every minute, 90 days): {} bytes encoded ({:.1} KB), built in {:?}",
        older.len(),
        encoded.len(),
        encoded.len() as f64 / 1024.0,
        started.elapsed()
    );
    let key = keys::run_series(p.id);
    let mut item = Item::new();
    item.insert("PK".into(), key.pk.into());
    item.insert("SK".into(), key.sk.into());
    item.insert("kind".into(), "run_series".into());
    item.insert("space_id".into(), p.space_id.to_string().into());
    item.insert("pipeline_id".into(), p.id.to_string().into());
    item.insert("series".into(), encoded.clone().into());
    app.requests.put(item, None).await.unwrap();
    app.add_runs(&p, newest.to_vec()).await;

    let stored = app.repo.series_for(&[p.id]).await.unwrap();
    let full = stored[&p.id].encode();
    println!(
        "stored series after ingesting the newest 200: {} bytes ({:.1} KB; DynamoDB's limit 400 KB)",
        full.len(),
        full.len() as f64 / 1024.0
    );
    assert!(
        full.len() < 300_000,
        "the series item stays well below 400 KB"
    );
    // What a list pays per such pipeline: decoding its series and computing a 90-day window,
    // against the first encoding's worst case (12,000 exact samples, 272 KB).
    let mut v1 = RunSeries::default();
    for run in &runs[runs.len() - 12_000..] {
        v1.upsert(RunSample::of(&run.run));
    }
    let v1 = v1.encode();
    let time = |text: &str| {
        let timer = Instant::now();
        for _ in 0..20 {
            let series = RunSeries::decode(text).unwrap();
            std::hint::black_box(series.window(Utc::now(), 90));
        }
        timer.elapsed() / 20
    };
    println!(
        "decode + 90-day window per pipeline: {:?} (hourly tier, {} KB) vs {:?} (12,000 exact samples, {} KB, in the current encoding)",
        time(&full),
        full.len() / 1024,
        time(&v1),
        v1.len() / 1024
    );

    let all: Vec<Run> = runs.iter().map(|r| r.run.clone()).collect();
    let viewer = Some(app.keys.viewer.as_str());
    for days in [90, 89, 60, 42, 41, 30, 7, 3, 1] {
        for path in [
            format!("/pipelines/{}?days={days}", p.id),
            format!("/pipelines?days={days}"),
        ] {
            // The window moves with the request: retry when a run crossed its start meanwhile.
            loop {
                let before = Utc::now();
                let timer = Instant::now();
                let (status, json) = body(app.get(&path, viewer).await).await;
                let elapsed = timer.elapsed();
                let after = Utc::now();
                assert_eq!(status, 200, "{path}: {json}");
                let want = expected(&all, before, days);
                let check = expected(&all, after, days);
                if want.total != check.total {
                    continue;
                }
                let summary = if json.is_array() {
                    json[0]["summary"].clone()
                } else {
                    json["summary"].clone()
                };
                if days == 90 {
                    println!("{path}: {elapsed:?}");
                }
                check_window(&summary, &want, &path);
                let newest_run = &runs.last().unwrap().run;
                assert_eq!(summary["last_run"]["id"], newest_run.id.to_string());
                assert_eq!(summary["last_run"]["status"], "running");
                let last = |s: RunStatus| {
                    let run = all.iter().rev().find(|r| r.status == s).unwrap();
                    stamp(run.ended_at.unwrap())
                };
                assert_eq!(summary["last_success_at"], last(RunStatus::Success));
                assert_eq!(summary["last_failure_at"], last(RunStatus::Failed));
                break;
            }
        }
    }

    // An old run, long out of the exact tier, changes (cleared and failed): counted once.
    let mut flipped = changed;
    flipped.run.status = RunStatus::Failed;
    let index = all.iter().position(|r| r.id == flipped.run.id).unwrap();
    assert_eq!(all[index].status, RunStatus::Success);
    app.add_runs(&p, vec![flipped.clone()]).await;
    let mut all = all;
    all[index] = flipped.run;
    let path = format!("/pipelines/{}?days=90", p.id);
    loop {
        let before = Utc::now();
        let (_, json) = body(app.get(&path, viewer).await).await;
        let want = expected(&all, before, 90);
        if want.total != expected(&all, Utc::now(), 90).total {
            continue; // a run crossed the window's start during the request
        }
        check_window(&json["summary"], &want, "after an old run changed");
        break;
    }
}

on_both_backends!(
    durations_keep_airflow_microseconds,
    every_minute_for_90_days_is_counted_exactly,
);
