//! Staged key rotation with `tollgate keys rotate`, as running servers see it.

use std::time::Duration;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use tollgate::auth::keys::{KeyState, KeyStore};
use tollgate::clock::ManualClock;

/// A superseded key retires when its last token can no longer be live (6 s TTL, no
/// leeway). A new key signs 300 s after it is published: far more than the test takes in
/// real time, so the CLI (on the system clock) sees it pending however slow the machine
/// is, while the server's clock is moved to its activation.
const TTL_SECS: i64 = 6;
const TIMINGS: &[(&str, &str)] =
    &[("ACCESS_TOKEN_TTL_SECS", "6"), ("JWT_LEEWAY_SECS", "0"), ("JWT_KEY_PUBLISH_AHEAD_SECS", "300")];

fn keys_command(app: &TestApp, command: &str) -> String {
    let output = app.command(&["keys", command]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn kid_of(token: &str) -> String {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

async fn login_kid(app: &TestApp) -> (String, String) {
    let body: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    let access = field(&body, "access_token").to_owned();
    (kid_of(&access), access)
}

/// Moves `clock` on to the start of the unix second `at`.
fn advance_to(clock: &ManualClock, at: i64) {
    let micros = at * 1_000_000 - clock.now().timestamp_micros();
    clock.advance(Duration::from_micros(u64::try_from(micros).expect("the clock only moves on")));
}

/// The store of `app`'s key directory on `app`'s clock: what `tollgate keys` would say at
/// the server's time, which the test has moved past the system's.
fn key_store(app: &TestApp) -> KeyStore {
    KeyStore::open(&app.settings().jwt, app.clock.clone()).unwrap()
}

fn state_of(app: &TestApp, kid: &str) -> Option<KeyState> {
    key_store(app).list().unwrap().into_iter().find(|key| key.kid == kid).map(|key| key.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_publishes_first_signs_later_and_retires_the_old_key_last() {
    let clock = ManualClock::new();
    let app = spawn_app_at(Backend::Sqlite, &clock, TIMINGS).await;
    let old_kid = kid_of(field(&app.signup("alice").await, "access_token"));

    let rotated = keys_command(&app, "rotate");
    let new_kid = rotated.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    // Published within the servers' reload interval, before it signs anything: the one
    // wait in real time, for the server to notice the file.
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.published_kids().await == [old_kid.clone(), new_kid.clone()]
        })
        .await
    );
    assert_eq!(login_kid(&app).await.0, old_kid, "the new key must not sign before its time");
    let listed = keys_command(&app, "list");
    assert!(listed.lines().any(|l| l.starts_with(&old_kid) && l.contains(" active ")), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with(&new_kid) && l.contains(" pending ")), "{listed}");

    // Then it signs from its activation second on, and tokens of the old key stay valid
    // while they live.
    let activate_at = key_store(&app).list().unwrap().iter().find(|k| k.kid == new_kid).unwrap().activate_at;
    advance_to(&clock, activate_at - 1);
    let (kid, old_token) = login_kid(&app).await;
    assert_eq!(kid, old_kid, "one second before its activation");
    clock.advance(Duration::from_secs(1));
    assert_eq!(login_kid(&app).await.0, new_kid);
    assert_eq!(app.get_with_bearer("/auth/me", &old_token).await.status(), StatusCode::OK);
    assert_eq!(state_of(&app, &old_kid), Some(KeyState::Verifying));
    assert_eq!(state_of(&app, &new_kid), Some(KeyState::Active));

    // Once no token it signed can be live, the old key leaves the JWKS.
    advance_to(&clock, activate_at + TTL_SECS);
    assert_eq!(app.published_kids().await, [old_kid.as_str(), new_kid.as_str()]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(app.published_kids().await, [new_kid.as_str()]);
    assert_eq!(state_of(&app, &old_kid), Some(KeyState::Retired));
    assert_error(
        app.get_with_bearer("/auth/me", &old_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let (_, fresh) = login_kid(&app).await;
    assert_eq!(app.get_with_bearer("/auth/me", &fresh).await.status(), StatusCode::OK);
    // The next rotation deletes the retired key's file.
    key_store(&app).rotate(300).unwrap();
    assert_eq!(state_of(&app, &old_kid), None);
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
