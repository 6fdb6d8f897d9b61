//! What requests without a valid token may cost others: a revocation evicts only the
//! revoked user's cached account (and still counts at once), a refused refresh token
//! changes no cache, and refused refresh tokens are limited per client IP. Roles are
//! cached with the row, and a change of roles counts at once too.
//!
//! Each test caches a bystander's account, then changes its row and roles behind the
//! server's back: as long as the server still answers with the old ones, its cache entry
//! was kept. The
//! clock is never advanced past the cache's TTL, so nothing ages out meanwhile.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tollgate::clock::ManualClock;
use tollgate::db::schema::users;

use crate::admin::{admin_token, grant};
use crate::common::*;

db_tests!(
    a_logout_evicts_only_the_user_who_logged_out,
    a_password_change_evicts_only_that_user,
    reuse_detection_evicts_only_the_robbed_user,
    admin_revocations_evict_only_their_user,
    role_changes_by_the_admin_api_count_at_once,
    refused_refresh_tokens_change_no_cache,
    refused_refresh_tokens_are_limited_per_ip_and_correct_refreshes_never,
);

const ORIGINAL_EMAIL: &str = "bob@example.com";

/// Signs up `bob` with an email and caches his account by calling `/auth/me`; returns his
/// access token.
async fn cache_bystander(app: &TestApp) -> String {
    let body = json!({ "username": "bob", "password": PASSWORD, "email": ORIGINAL_EMAIL });
    let signup: Value = app.post_json("/auth/signup", &body).await.json().await.unwrap();
    let access = field(&signup, "access_token").to_owned();
    let cached = me(app, &access).await;
    assert_eq!((&cached["email"], &cached["roles"]), (&json!(ORIGINAL_EMAIL), &json!([])));
    // Behind the server's back: only a re-read of the account would show these.
    let mut conn = app.pool.get().unwrap();
    diesel::update(users::table.filter(users::username.eq("bob")))
        .set(users::email.eq("changed@example.com"))
        .execute(&mut **conn)
        .unwrap();
    grant(app, "bob", &["granted_behind_the_back"]);
    access
}

async fn me(app: &TestApp, access: &str) -> Value {
    let response = app.get_with_bearer("/auth/me", access).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The bystander is still served from the cache; once its TTL has passed, from the
/// database (which shows that the cache, not luck, answered before).
async fn assert_bystander_still_cached(app: &TestApp, clock: &ManualClock, access: &str) {
    let cached = me(app, access).await;
    assert_eq!(cached["email"], ORIGINAL_EMAIL, "bob's cached row was evicted");
    assert_eq!(cached["roles"], json!([]), "bob's cached roles were evicted");
    clock.advance(Duration::from_secs(2));
    let reread = me(app, access).await;
    assert_eq!(reread["email"], "changed@example.com");
    assert_eq!(reread["roles"], json!(["granted_behind_the_back"]));
}

async fn assert_refused(app: &TestApp, access: &str) {
    let response = app.get_with_bearer("/auth/me", access).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

/// Signs `alice` up and caches her row too; returns her signup response.
async fn cached_alice(app: &TestApp) -> Value {
    let signup = app.signup("alice").await;
    me(app, field(&signup, "access_token")).await;
    signup
}

async fn a_logout_evicts_only_the_user_who_logged_out(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let bob = cache_bystander(&app).await;
    let alice = cached_alice(&app).await;
    let logout =
        app.client.post(app.url("/auth/logout")).bearer_auth(field(&alice, "access_token")).send().await;
    assert_eq!(logout.unwrap().status(), StatusCode::NO_CONTENT);
    assert_refused(&app, field(&alice, "access_token")).await;

    // Logging out by refresh token evicts just as narrowly.
    let carol = app.signup("carol").await;
    me(&app, field(&carol, "access_token")).await;
    let logout =
        app.post_json("/auth/logout", &json!({ "refresh_token": field(&carol, "refresh_token") })).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, field(&carol, "access_token")).await;
    assert!(app.user_row("carol").tokens_valid_after.is_some());

    assert_bystander_still_cached(&app, &clock, &bob).await;
}

async fn a_password_change_evicts_only_that_user(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let bob = cache_bystander(&app).await;
    let alice = cached_alice(&app).await;
    let change = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(field(&alice, "access_token"))
        .json(&json!({ "current_password": PASSWORD, "new_password": "a brand new password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), StatusCode::OK);
    let changed: Value = change.json().await.unwrap();
    assert_refused(&app, field(&alice, "access_token")).await;
    me(&app, field(&changed, "access_token")).await;
    assert_bystander_still_cached(&app, &clock, &bob).await;
}

async fn reuse_detection_evicts_only_the_robbed_user(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let bob = cache_bystander(&app).await;
    let alice = cached_alice(&app).await;
    let rotated: Value = app.refresh(field(&alice, "refresh_token")).await.json().await.unwrap();
    me(&app, field(&rotated, "access_token")).await;
    // Past the (zero) grace window, yet well within the cache's TTL.
    clock.advance(Duration::from_millis(10));
    let replay = app.refresh(field(&alice, "refresh_token")).await;
    assert_error(replay, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(app.user_row("alice").refresh_token_hash, None);
    for access in [field(&alice, "access_token"), field(&rotated, "access_token")] {
        assert_refused(&app, access).await;
    }
    assert_bystander_still_cached(&app, &clock, &bob).await;
}

/// A forced logout, disabling and deletion by an admin: each refuses that user's token
/// at once and leaves everyone else's cached row.
async fn admin_revocations_evict_only_their_user(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let bob = cache_bystander(&app).await;
    let admin = admin_token(&app, "root").await;
    let changes = [
        (reqwest::Method::POST, "/logout", None),
        (reqwest::Method::PATCH, "", Some(json!({ "disabled": true }))),
        (reqwest::Method::DELETE, "", None),
    ];
    for (i, (method, suffix, body)) in changes.into_iter().enumerate() {
        let signup = app.signup(&format!("target{i}")).await;
        let access = field(&signup, "access_token");
        me(&app, access).await;
        let path = format!("/admin/users/{}{suffix}", field(&signup["user"], "id"));
        let mut request = app.client.request(method, app.url(&path)).bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        assert!(request.send().await.unwrap().status().is_success(), "{path}");
        assert_refused(&app, access).await;
    }
    assert_bystander_still_cached(&app, &clock, &bob).await;
}

/// `/auth/me` answers from the cached account, roles included, so the admin API's role
/// changes must reach it at once: a role added shows in the next `/auth/me` of the same
/// token; a role removed revokes every token that carried it, and the next session's
/// `/auth/me` is without it.
async fn role_changes_by_the_admin_api_count_at_once(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let bob = cache_bystander(&app).await;
    let admin = admin_token(&app, "root").await;
    let alice = cached_alice(&app).await;
    let access = field(&alice, "access_token");
    let path = format!("/admin/users/{}", field(&alice["user"], "id"));
    let set_roles = |roles: Value| {
        app.client.patch(app.url(&path)).bearer_auth(&admin).json(&json!({ "roles": roles })).send()
    };
    assert_eq!(me(&app, access).await["roles"], json!([]));

    assert_eq!(set_roles(json!(["editor", "support"])).await.unwrap().status(), StatusCode::OK);
    assert_eq!(me(&app, access).await["roles"], json!(["editor", "support"]));

    assert_eq!(set_roles(json!(["support"])).await.unwrap().status(), StatusCode::OK);
    assert_refused(&app, access).await;
    let login: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    assert_eq!(me(&app, field(&login, "access_token")).await["roles"], json!(["support"]));
    assert_bystander_still_cached(&app, &clock, &bob).await;
}

async fn refused_refresh_tokens_change_no_cache(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let bob = cache_bystander(&app).await;
    let never_issued = format!("tgr_{}", "A".repeat(43));
    for _ in 0..3 {
        let refused = app.refresh(&never_issued).await;
        assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
        let logout = app.post_json("/auth/logout", &json!({ "refresh_token": never_issued })).await;
        assert_error(logout, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
        assert_error(app.refresh("junk").await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
    assert_bystander_still_cached(&app, &clock, &bob).await;
}

async fn assert_limited(response: Response) {
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn refresh_ok(app: &TestApp, token: &str) -> String {
    let response = app.refresh(token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    field(&body, "refresh_token").to_owned()
}

async fn refused_refresh_tokens_are_limited_per_ip_and_correct_refreshes_never(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("AUTH_RATE_LIMIT_PER_MIN", "3")]).await;
    let signup = app.signup("alice").await;
    let first = field(&signup, "refresh_token");
    let second = refresh_ok(&app, first).await;
    // A client that lost the response retries, again and again: never a failure.
    for _ in 0..5 {
        assert_eq!(refresh_ok(&app, first).await, second);
    }
    let never_issued = format!("tgr_{}", "B".repeat(43));
    for _ in 0..3 {
        let refused = app.refresh(&never_issued).await;
        assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
    assert_limited(app.refresh(&never_issued).await).await;
    assert_limited(app.refresh("not even a refresh token").await).await;
    assert_limited(app.post_json("/auth/logout", &json!({ "refresh_token": never_issued })).await).await;
    // The limit never touches a client that refreshes correctly from the same address.
    let mut current = second;
    for _ in 0..5 {
        current = refresh_ok(&app, &current).await;
    }
    assert_eq!(app.user_row("alice").refresh_token_hash, Some(sha256_hex(&current)));
    assert_limited(app.refresh(&never_issued).await).await;
    // A minute later the address may fail again.
    clock.advance(Duration::from_secs(60));
    let refused = app.refresh(&never_issued).await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}
