//! Staged key rotation with `tollgate keys rotate`, as running servers see it.

use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

/// Short timings: a new key signs 3 s after it is published, and a superseded key
/// retires when its last token can no longer be live (6 s TTL, no leeway).
const TIMINGS: &[(&str, &str)] =
    &[("ACCESS_TOKEN_TTL_SECS", "6"), ("JWT_LEEWAY_SECS", "0"), ("JWT_KEY_PUBLISH_AHEAD_SECS", "3")];

fn keys_command(app: &TestApp, command: &str) -> String {
    let output = app.command(&["keys", command]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn kid_of(token: &str) -> String {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn login_kid(app: &TestApp) -> (String, String) {
    let body: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    let access = field(&body, "access_token").to_owned();
    (kid_of(&access), access)
}

/// Polls `probe` until it is true, for at most `limit`.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_publishes_first_signs_later_and_retires_the_old_key_last() {
    let app = spawn_app_with(Backend::Sqlite, TIMINGS).await;
    let signup = app.signup("alice").await;
    let old_token = field(&signup, "access_token").to_owned();
    let old_kid = kid_of(&old_token);

    let rotated = keys_command(&app, "rotate");
    let new_kid = rotated.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    // Published within the servers' reload interval, before it signs anything.
    assert!(
        eventually(Duration::from_secs(5), || async {
            published_kids(&app).await == [old_kid.clone(), new_kid.clone()]
        })
        .await
    );
    assert_eq!(login_kid(&app).await.0, old_kid, "the new key must not sign before its time");
    let listed = keys_command(&app, "list");
    assert!(listed.lines().any(|l| l.starts_with(&old_kid) && l.contains(" active ")), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with(&new_kid) && l.contains(" pending ")), "{listed}");

    // Then it signs, and tokens of the old key stay valid while they live.
    assert!(eventually(Duration::from_secs(10), || async { login_kid(&app).await.0 == new_kid }).await);
    assert_eq!(app.get_with_bearer("/auth/me", &old_token).await.status(), StatusCode::OK);
    let listed = keys_command(&app, "list");
    assert!(listed.lines().any(|l| l.starts_with(&old_kid) && l.contains(" verifying ")), "{listed}");

    // Once no token it signed can be live, the old key leaves the JWKS.
    assert!(
        eventually(Duration::from_secs(15), || async { published_kids(&app).await == [new_kid.clone()] })
            .await
    );
    assert_error(
        app.get_with_bearer("/auth/me", &old_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let (_, fresh) = login_kid(&app).await;
    assert_eq!(app.get_with_bearer("/auth/me", &fresh).await.status(), StatusCode::OK);
    // The next rotation deletes the retired key's file.
    keys_command(&app, "rotate");
    assert!(!keys_command(&app, "list").contains(&old_kid));
}

#[tokio::test]
async fn hs256_has_no_key_store_to_rotate() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", "an HS256 secret that is long enough!")],
    )
    .await;
    let output = app.command(&["keys", "rotate"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_ALGORITHM"));
}
