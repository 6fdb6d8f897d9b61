//! The core's rule that keeps the user cache true: every method that revokes evicts the
//! user's cached account itself. Each case warms the cache with the old token, revokes
//! through the API, and expects the very next request with that token to be refused,
//! well within the cache's TTL (the clock does not move, except to leave a grace window).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate::clock::ManualClock;

use crate::admin::admin_token;
use crate::common::*;

db_tests!(
    every_revocation_refuses_the_old_token_at_once_on_a_warm_cache,
    with_several_sessions_every_revocation_refuses_the_old_token_at_once_on_a_warm_cache,
);

/// The ways an account's tokens are revoked, each through its own endpoint.
#[derive(Debug, Clone, Copy)]
enum Revocation {
    LogoutByBearer,
    LogoutByRefreshToken,
    PasswordChange,
    ReuseDetected,
    RoleRemoved,
    Disabled,
    Deleted,
    ForcedLogout,
    PasswordSetByAdmin,
    /// `DELETE /auth/sessions/{sid}`.
    SessionEnded,
    /// Another session of the user's logs out with `scope: others`.
    OthersLoggedOut,
    /// Logins beyond `SESSIONS_PER_USER` end this, the least recently used session.
    LimitReached,
}

const ALL: [Revocation; 9] = [
    Revocation::LogoutByBearer,
    Revocation::LogoutByRefreshToken,
    Revocation::PasswordChange,
    Revocation::ReuseDetected,
    Revocation::RoleRemoved,
    Revocation::Disabled,
    Revocation::Deleted,
    Revocation::ForcedLogout,
    Revocation::PasswordSetByAdmin,
];

async fn every_revocation_refuses_the_old_token_at_once_on_a_warm_cache(backend: Backend) {
    revocations_on_a_warm_cache(backend, "1", &[Revocation::SessionEnded]).await
}

async fn with_several_sessions_every_revocation_refuses_the_old_token_at_once_on_a_warm_cache(
    backend: Backend,
) {
    let sessions = [Revocation::SessionEnded, Revocation::OthersLoggedOut, Revocation::LimitReached];
    revocations_on_a_warm_cache(backend, "3", &sessions).await
}

async fn revocations_on_a_warm_cache(backend: Backend, sessions_per_user: &str, more: &[Revocation]) {
    let clock = ManualClock::new();
    let overrides = [("REFRESH_REUSE_GRACE_SECS", "10"), ("SESSIONS_PER_USER", sessions_per_user)];
    let app = spawn_app_at(backend, &clock, &overrides).await;
    let admin = admin_token(&app, "root").await;
    for (i, revocation) in ALL.iter().chain(more).copied().enumerate() {
        let username = format!("user{i}");
        let signup = app.signup(&username).await;
        let id = field(&signup["user"], "id").to_owned();
        crate::admin::grant(&app, &username, &["editor"]);
        let login: Value = app.login(&username, PASSWORD).await.json().await.unwrap();
        let (access, refresh) = (field(&login, "access_token"), field(&login, "refresh_token"));
        let warm = || async { app.get_with_bearer("/auth/me", access).await.status() };
        assert_eq!(warm().await, StatusCode::OK, "{revocation:?}: the token works before");

        let status = match revocation {
            Revocation::LogoutByBearer => {
                let response = app.client.post(app.url("/auth/logout")).bearer_auth(access).send().await;
                response.unwrap().status()
            }
            Revocation::LogoutByRefreshToken => {
                app.post_json("/auth/logout", &json!({ "refresh_token": refresh })).await.status()
            }
            Revocation::PasswordChange => {
                let body = json!({ "current_password": PASSWORD, "new_password": "another long password" });
                let response = app.client.post(app.url("/auth/password")).bearer_auth(access).json(&body);
                response.send().await.unwrap().status()
            }
            Revocation::ReuseDetected => {
                assert_eq!(app.refresh(refresh).await.status(), StatusCode::OK);
                clock.advance(Duration::from_secs(11));
                // The clock moved past the cache's TTL: warm it again before the replay.
                assert_eq!(warm().await, StatusCode::OK, "{revocation:?}: still live before the replay");
                app.refresh(refresh).await.status()
            }
            Revocation::RoleRemoved => {
                admin_call(&app, &admin, Method::PATCH, &id, Some(json!({ "roles": [] }))).await
            }
            Revocation::Disabled => {
                admin_call(&app, &admin, Method::PATCH, &id, Some(json!({ "disabled": true }))).await
            }
            Revocation::Deleted => admin_call(&app, &admin, Method::DELETE, &id, None).await,
            Revocation::ForcedLogout => admin_logout(&app, &admin, &id).await,
            Revocation::PasswordSetByAdmin => {
                let body = json!({ "password": "set by an administrator" });
                admin_call(&app, &admin, Method::PATCH, &id, Some(body)).await
            }
            Revocation::SessionEnded => {
                let sid = field(&access_claims(access), "sid").to_owned();
                let url = app.url(&format!("/auth/sessions/{sid}"));
                app.client.delete(url).bearer_auth(access).send().await.unwrap().status()
            }
            Revocation::OthersLoggedOut => {
                let other: Value = app.login(&username, PASSWORD).await.json().await.unwrap();
                let request =
                    app.client.post(app.url("/auth/logout")).bearer_auth(field(&other, "access_token"));
                request.json(&json!({ "scope": "others" })).send().await.unwrap().status()
            }
            Revocation::LimitReached => {
                // The signup's session, then this one, are the least recently used (the
                // clock moves, so that no two sessions were used in one instant).
                for _ in 0..3 {
                    clock.advance(Duration::from_millis(1));
                    assert_eq!(app.login(&username, PASSWORD).await.status(), StatusCode::OK);
                }
                StatusCode::OK
            }
        };
        let expected = match revocation {
            Revocation::ReuseDetected => StatusCode::UNAUTHORIZED,
            Revocation::LogoutByBearer
            | Revocation::LogoutByRefreshToken
            | Revocation::Deleted
            | Revocation::SessionEnded
            | Revocation::OthersLoggedOut => StatusCode::NO_CONTENT,
            Revocation::ForcedLogout => StatusCode::NO_CONTENT,
            _ => StatusCode::OK,
        };
        assert_eq!(status, expected, "{revocation:?}: the revocation itself");
        let response = app.get_with_bearer("/auth/me", access).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
}

async fn admin_call(app: &TestApp, admin: &str, method: Method, id: &str, body: Option<Value>) -> StatusCode {
    let mut request = app.client.request(method, app.url(&format!("/admin/users/{id}"))).bearer_auth(admin);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status()
}

async fn admin_logout(app: &TestApp, admin: &str, id: &str) -> StatusCode {
    let url = app.url(&format!("/admin/users/{id}/logout"));
    app.client.post(url).bearer_auth(admin).send().await.unwrap().status()
}
