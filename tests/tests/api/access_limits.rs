//! Per-key rate limits (429 with `Retry-After` and `X-RateLimit-*`, shared by every instance
//! through the table) and the authentication cache's revocation delay, on both backends.

use std::time::Duration;

use chrono::Utc;
use orchestration_tests::app::{OTHER_SPACE, SPACE, TestApp, body};
use orchestration_tests::{Backend, on_both_backends};
use shared::config::AccessConfig;
use shared::http::AppState;

fn limited(per_minute: u32) -> AccessConfig {
    AccessConfig {
        auth_cache_ttl: Duration::from_secs(30),
        rate_limit_per_minute: Some(per_minute),
    }
}

/// A second server on the same table, as a second Lambda instance would be.
async fn second_instance(app: &TestApp, access: AccessConfig) -> String {
    let state = AppState::with_access(app.repo.clone(), access);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, local::app(state)).await.unwrap();
    });
    base
}

fn number(response: &reqwest::Response, name: &str) -> u64 {
    response.headers()[name].to_str().unwrap().parse().unwrap()
}

/// Whether a window boundary is close: a test spanning two windows would see a reset.
async fn wait_for_a_fresh_minute_if_needed() {
    let second = Utc::now().timestamp().rem_euclid(60);
    if second > 50 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
}

async fn over_the_limit_is_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, |state| state.set_access(limited(5))).await;
    wait_for_a_fresh_minute_if_needed().await;
    let outside = app
        .get_in(OTHER_SPACE, "/pipelines", Some(&app.keys.viewer))
        .await;
    assert_eq!(outside.status(), 404);
    assert_eq!(
        number(&outside, "x-ratelimit-remaining"),
        4,
        "a request to a space the key cannot see counts"
    );
    for expected_remaining in (0..4).rev() {
        let response = app.get("/pipelines", Some(&app.keys.viewer)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(number(&response, "x-ratelimit-limit"), 5);
        assert_eq!(
            number(&response, "x-ratelimit-remaining"),
            expected_remaining
        );
    }
    let refused = app.get("/pipelines", Some(&app.keys.viewer)).await;
    assert_eq!(refused.status(), 429);
    let retry_after = number(&refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    // X-RateLimit-Reset is the window's end in Unix seconds; Retry-After counts down to it.
    let reset_at = number(&refused, "x-ratelimit-reset") as i64;
    let now = Utc::now().timestamp();
    assert!(
        (reset_at - now - retry_after as i64).abs() <= 1,
        "reset {reset_at}, now {now}, Retry-After {retry_after}"
    );
    assert_eq!(reset_at % 60, 0, "a minute window ends on the minute");
    assert_eq!(number(&refused, "x-ratelimit-remaining"), 0);
    let (_, detail) = body(refused).await;
    assert_eq!(
        detail,
        serde_json::json!({ "detail": format!("Rate limit exceeded. Retry in {retry_after} seconds.") })
    );

    // Writes count too, and are refused before anything is written.
    app.requests.take_written();
    let response = app
        .client
        .put(app.url(
            SPACE,
            "/pipelines/00000000-0000-0000-0000-000000000000/watch",
        ))
        .bearer_auth(&app.keys.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(app.requests.take_written().is_empty());

    // Requests to spaces the key cannot see count too (each costs table reads): the
    // throttled key gets 429 there, not an unmetered 404.
    let elsewhere = app
        .get_in(OTHER_SPACE, "/pipelines", Some(&app.keys.viewer))
        .await;
    assert_eq!(elsewhere.status(), 429);
    let nowhere = app
        .get_in("no-such-space", "/pipelines", Some(&app.keys.viewer))
        .await;
    assert_eq!(nowhere.status(), 429);

    // Other keys have their own budget; unauthenticated requests are not metered.
    let other = app.get("/pipelines", Some(&app.keys.editor)).await;
    assert_eq!(other.status(), 200);
    assert_eq!(number(&other, "x-ratelimit-remaining"), 4);
    let anonymous = app.get("/pipelines", None).await;
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().get("x-ratelimit-limit").is_none());
}

async fn instances_share_one_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |state| state.set_access(limited(50))).await;
    let second = second_instance(&app, limited(50)).await;
    wait_for_a_fresh_minute_if_needed().await;
    let mut allowed = 0;
    for i in 0..80 {
        let base = if i % 2 == 0 { &app.base } else { &second };
        let response = app
            .client
            .get(format!(
                "{base}/api/v1.0/spaces/{SPACE}/orchestration/pipelines"
            ))
            .bearer_auth(&app.keys.viewer)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => allowed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    // At most the limit across both instances; each may lose one unspent block (of 1).
    assert!(
        (48..=50).contains(&allowed),
        "{allowed} of 80 allowed with a limit of 50 shared by two instances"
    );
}

async fn revocation_takes_effect_within_the_cache_ttl(backend: Backend) {
    let app = TestApp::spawn_with(backend, |state| {
        state.set_access(AccessConfig {
            auth_cache_ttl: Duration::from_millis(1500),
            rate_limit_per_minute: None,
        })
    })
    .await;
    let user = app.admin_id;
    let key = app
        .repo
        .create_api_key(user, "short-lived", None, None, Utc::now())
        .await
        .unwrap();
    assert_eq!(app.get("/pipelines", Some(&key.secret)).await.status(), 200);
    app.repo
        .revoke_api_key(key.record.id, Utc::now())
        .await
        .unwrap();
    // Still served from this instance's cache...
    assert_eq!(app.get("/pipelines", Some(&key.secret)).await.status(), 200);
    // ...but never by an instance that has not cached it, nor after the time to live.
    let fresh = second_instance(&app, AccessConfig::default()).await;
    let response = app
        .client
        .get(format!(
            "{fresh}/api/v1.0/spaces/{SPACE}/orchestration/pipelines"
        ))
        .bearer_auth(&key.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(app.get("/pipelines", Some(&key.secret)).await.status(), 401);
}

async fn a_zero_ttl_turns_the_cache_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, |state| {
        state.set_access(AccessConfig {
            auth_cache_ttl: Duration::ZERO,
            rate_limit_per_minute: None,
        })
    })
    .await;
    let key = app
        .repo
        .create_api_key(app.admin_id, "k", None, None, Utc::now())
        .await
        .unwrap();
    assert_eq!(app.get("/pipelines", Some(&key.secret)).await.status(), 200);
    app.requests.take();
    assert_eq!(app.get("/pipelines", Some(&key.secret)).await.status(), 200);
    assert_eq!(app.requests.take(), 2 + 1, "key, membership, list");
    app.repo
        .revoke_api_key(key.record.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(app.get("/pipelines", Some(&key.secret)).await.status(), 401);
}

/// Two `Authorization` headers are refused (401), as API Gateway refuses the joined value:
/// which key would count is not the client's guess to make.
async fn two_authorization_headers_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .client
        .get(app.url(SPACE, "/pipelines"))
        .header("authorization", format!("Bearer {}", app.keys.viewer))
        .header("authorization", format!("Bearer {}", app.keys.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (_, detail) = body(response).await;
    assert_eq!(detail["detail"], "Send exactly one Authorization header");
}

on_both_backends!(
    two_authorization_headers_are_refused,
    over_the_limit_is_429_with_retry_after,
    instances_share_one_limit,
    revocation_takes_effect_within_the_cache_ttl,
    a_zero_ttl_turns_the_cache_off
);

#[test]
fn access_settings_come_from_the_environment_and_typos_are_errors() {
    use shared::config::{AUTH_CACHE_ENV, RATE_LIMIT_ENV};
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    };
    let config =
        AccessConfig::from_lookup(env(&[(RATE_LIMIT_ENV, "0"), (AUTH_CACHE_ENV, "5")])).unwrap();
    assert_eq!(config.rate_limit_per_minute, None);
    assert_eq!(config.auth_cache_ttl, Duration::from_secs(5));
    let config = AccessConfig::from_lookup(env(&[(RATE_LIMIT_ENV, " 120 ")])).unwrap();
    assert_eq!(config.rate_limit_per_minute, Some(120));
    let error = AccessConfig::from_lookup(env(&[(RATE_LIMIT_ENV, "lots")])).unwrap_err();
    assert!(error.contains(RATE_LIMIT_ENV), "{error}");
    assert!(AccessConfig::from_lookup(env(&[(AUTH_CACHE_ENV, "-1")])).is_err());
    assert_eq!(
        AccessConfig::from_lookup(env(&[])).unwrap(),
        AccessConfig::default()
    );
}
