//! `POST /auth/introspect` (RFC 7662): who may ask, and `{"active": false}` for every
//! token that is not a live access token of an existing user.

use crate::common::*;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate::clock::ManualClock;
use tollgate::db::schema::users;

const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";

db_tests!(
    a_live_access_token_is_active_with_its_claims,
    form_and_json_bodies_are_both_accepted,
    anything_but_a_live_access_token_is_inactive,
    revoked_disabled_and_deleted_users_tokens_are_inactive,
    callers_need_the_service_token,
    malformed_requests_get_the_json_errors,
);

async fn introspection_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN), ("DEFAULT_ROLES", "member,beta")]).await
}

/// Introspects `token` form-encoded, as RFC 7662 clients do, and returns the 200 body.
async fn introspect(app: &TestApp, token: &str) -> Value {
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(FEED_TOKEN)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

async fn assert_inactive(app: &TestApp, token: &str, what: &str) {
    assert_eq!(introspect(app, token).await, json!({ "active": false }), "{what}");
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

async fn a_live_access_token_is_active_with_its_claims(backend: Backend) {
    let app = introspection_app(backend).await;
    let signup = app.signup("alice").await;
    let access = field(&signup, "access_token");
    let claims = claims_of(access);
    let body = introspect(&app, access).await;
    let expected = json!({
        "active": true,
        "sub": signup["user"]["id"],
        "username": "alice",
        "roles": ["beta", "member"],
        "iss": "tollgate",
        "aud": "tollgate",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "jti": claims["jti"],
        "token_type": "access_token",
    });
    assert_eq!(body, expected);
}

async fn form_and_json_bodies_are_both_accepted(backend: Backend) {
    let app = introspection_app(backend).await;
    let access = field(&app.signup("alice").await, "access_token").to_owned();
    let form = introspect(&app, &access).await;
    let request = app.client.post(app.url("/auth/introspect")).bearer_auth(FEED_TOKEN);
    let json_response = request.json(&json!({ "token": access })).send().await.unwrap();
    assert_eq!(json_response.status(), StatusCode::OK);
    assert_eq!(json_response.json::<Value>().await.unwrap(), form);
    // RFC 7662's optional hint changes nothing.
    let hinted = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(FEED_TOKEN)
        .form(&[("token", access.as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(hinted.json::<Value>().await.unwrap(), form);
}

async fn anything_but_a_live_access_token_is_inactive(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let signup = app.signup("alice").await;
    assert_inactive(&app, field(&signup, "refresh_token"), "a refresh token").await;
    assert_inactive(&app, "", "an empty token").await;
    assert_inactive(&app, "garbage", "garbage").await;
    assert_inactive(&app, &"x".repeat(10_000), "an oversized token").await;
    let access = field(&signup, "access_token");
    let tampered = format!("{}x", &access[..access.len() - 1]);
    assert_inactive(&app, &tampered, "a tampered signature").await;
    // The genuine token is active until its lifetime and the leeway have passed.
    assert_eq!(introspect(&app, access).await["active"], true);
    clock.advance(std::time::Duration::from_secs(900 + 30 + 1));
    assert_inactive(&app, access, "an expired token").await;
}

async fn revoked_disabled_and_deleted_users_tokens_are_inactive(backend: Backend) {
    let app = introspection_app(backend).await;
    let alice = field(&app.signup("alice").await, "access_token").to_owned();
    let logout = app.client.post(app.url("/auth/logout")).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_inactive(&app, &alice, "a token issued before logout").await;

    // Bob's and Carol's tokens are introspected first after their rows changed (so that no
    // cached row hides the change).
    let bob = field(&app.signup("bob").await, "access_token").to_owned();
    let carol = field(&app.signup("carol").await, "access_token").to_owned();
    let mut conn = app.pool.get().unwrap();
    diesel::delete(users::table.filter(users::username.eq("bob"))).execute(&mut **conn).unwrap();
    diesel::update(users::table.filter(users::username.eq("carol")))
        .set(users::disabled.eq(true))
        .execute(&mut **conn)
        .unwrap();
    drop(conn);
    assert_inactive(&app, &bob, "a deleted user's token").await;
    assert_inactive(&app, &carol, "a disabled user's token").await;
}

async fn callers_need_the_service_token(backend: Backend) {
    let app = introspection_app(backend.clone()).await;
    let access = field(&app.signup("alice").await, "access_token").to_owned();
    let without =
        app.client.post(app.url("/auth/introspect")).form(&[("token", &access)]).send().await.unwrap();
    assert!(without.headers().contains_key("www-authenticate"));
    assert_error(without, StatusCode::UNAUTHORIZED, "missing_token").await;
    // A user's access token is no service token.
    for wrong in [access.as_str(), "a-revocation-feed-token-for-testS", "short"] {
        let response = app
            .client
            .post(app.url("/auth/introspect"))
            .bearer_auth(wrong)
            .form(&[("token", &access)])
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }

    let off = spawn_app(backend).await;
    let response = off
        .client
        .post(off.url("/auth/introspect"))
        .bearer_auth(FEED_TOKEN)
        .form(&[("token", &access)])
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

async fn malformed_requests_get_the_json_errors(backend: Backend) {
    let app = introspection_app(backend).await;
    let post = || app.client.post(app.url("/auth/introspect")).bearer_auth(FEED_TOKEN);
    let no_token = post().form(&[("token_type_hint", "access_token")]).send().await.unwrap();
    assert_error(no_token, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let bad_json = post().header("content-type", "application/json").body("{").send().await.unwrap();
    assert_error(bad_json, StatusCode::BAD_REQUEST, "invalid_json").await;
    let text = post().header("content-type", "text/plain").body("token=x").send().await.unwrap();
    assert_error(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let get = app.client.get(app.url("/auth/introspect")).bearer_auth(FEED_TOKEN).send().await.unwrap();
    assert_error(get, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}
