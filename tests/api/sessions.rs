//! Sessions and devices (`SESSIONS_PER_USER`): every token names its session, a user lists
//! and ends them one by one, and an ended session's tokens are refused at once.

use std::collections::HashSet;

use crate::common::*;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate::db::schema::sessions;

const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";

db_tests!(
    every_token_names_its_session_and_one_session_is_listed,
    several_devices_each_rotate_their_own_chain,
    the_login_beyond_the_limit_ends_the_least_recently_used_session,
    ending_one_session_refuses_its_tokens_at_once_and_in_the_feed,
    sessions_of_others_and_malformed_ids_are_not_found,
    logout_scopes_end_this_the_other_or_every_session,
    reuse_detection_ends_only_the_replayed_chain,
    a_password_change_ends_every_other_session,
    administrators_list_and_end_a_users_sessions,
    disabling_deleting_and_admin_logout_end_every_session,
    parallel_logins_at_the_limit_end_exactly_one_session_each,
    a_restart_keeps_every_session,
    user_agents_are_kept_capped_and_as_given,
);

/// An app with sessions of their own, `SESSIONS_PER_USER=3`.
async fn devices_app(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("SESSIONS_PER_USER", "3"), ("REVOCATION_FEED_TOKEN", FEED_TOKEN)];
    vars.extend_from_slice(overrides);
    spawn_app_with(backend, &vars).await
}

/// A login from the device `agent`: the token response.
async fn login_from(app: &TestApp, username: &str, agent: &str) -> Value {
    let body = json!({ "username": username, "password": PASSWORD });
    let response =
        app.client.post(app.url("/auth/login")).header("user-agent", agent).json(&body).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn sid(tokens: &Value) -> String {
    field(&access_claims(field(tokens, "access_token")), "sid").to_owned()
}

async fn list(app: &TestApp, access: &str) -> Vec<Value> {
    let response = app.get_with_bearer("/auth/sessions", access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

fn ids(sessions: &[Value]) -> Vec<String> {
    sessions.iter().map(|s| field(s, "id").to_owned()).collect()
}

async fn me(app: &TestApp, tokens: &Value) -> StatusCode {
    app.get_with_bearer("/auth/me", field(tokens, "access_token")).await.status()
}

async fn refresh_status(app: &TestApp, tokens: &Value) -> StatusCode {
    app.refresh(field(tokens, "refresh_token")).await.status()
}

async fn end(app: &TestApp, tokens: &Value, id: &str) -> reqwest::Response {
    let url = app.url(&format!("/auth/sessions/{id}"));
    app.client.delete(url).bearer_auth(field(tokens, "access_token")).send().await.unwrap()
}

async fn logout(app: &TestApp, tokens: &Value, scope: &str) -> reqwest::Response {
    let request = app.client.post(app.url("/auth/logout")).bearer_auth(field(tokens, "access_token"));
    request.json(&json!({ "scope": scope })).send().await.unwrap()
}

async fn introspected(app: &TestApp, tokens: &Value) -> bool {
    let request = app.client.post(app.url("/auth/introspect")).bearer_auth(FEED_TOKEN);
    let response = request.form(&[("token", field(tokens, "access_token"))]).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    body["active"] == json!(true)
}

fn session_rows(app: &TestApp) -> i64 {
    let mut conn = app.pool.get().unwrap();
    sessions::table.count().get_result(&mut **conn).unwrap()
}

async fn every_token_names_its_session_and_one_session_is_listed(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let first = sid(&signup);
    let rotated: Value = app.refresh(field(&signup, "refresh_token")).await.json().await.unwrap();
    assert_eq!(sid(&rotated), first, "a refresh keeps the session");
    let login = login_from(&app, "alice", "phone/1.0").await;
    assert_ne!(sid(&login), first, "a login starts another");
    // With one session per user the login replaced the other; the sessions table is unused.
    let listed = list(&app, field(&login, "access_token")).await;
    assert_eq!(ids(&listed), [sid(&login)]);
    assert_eq!(listed[0]["current"], json!(true));
    assert_eq!(listed[0]["user_agent"], json!("phone/1.0"));
    assert_eq!(listed[0]["ip"], json!("127.0.0.1"));
    assert_eq!(refresh_status(&app, &rotated).await, StatusCode::UNAUTHORIZED);
    assert_eq!(session_rows(&app), 0);
    assert_eq!(app.user_row("alice").session_id.map(|id| id.0.to_string()), Some(sid(&login)));
    // Ending it is logging out.
    assert_eq!(end(&app, &login, &sid(&login)).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &login).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_status(&app, &login).await, StatusCode::UNAUTHORIZED);
}

async fn several_devices_each_rotate_their_own_chain(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    app.signup("alice").await;
    let phone = login_from(&app, "alice", "phone").await;
    let laptop = login_from(&app, "alice", "laptop").await;
    assert_ne!(sid(&phone), sid(&laptop));
    // Each chain rotates on its own, keeping its session.
    let phone2: Value = app.refresh(field(&phone, "refresh_token")).await.json().await.unwrap();
    assert_eq!(sid(&phone2), sid(&phone));
    let laptop2: Value = app.refresh(field(&laptop, "refresh_token")).await.json().await.unwrap();
    assert_eq!(sid(&laptop2), sid(&laptop));
    for tokens in [&phone, &laptop, &phone2, &laptop2] {
        assert_eq!(me(&app, tokens).await, StatusCode::OK);
    }
    // Most recently used first: the laptop refreshed last. The signup's session is third.
    let listed = list(&app, field(&phone2, "access_token")).await;
    assert_eq!(listed.len(), 3);
    assert_eq!(ids(&listed)[..2], [sid(&laptop), sid(&phone)]);
    let current: Vec<bool> = listed.iter().map(|s| s["current"].as_bool().unwrap()).collect();
    assert_eq!(current, [false, true, false]);
    assert_eq!(listed[0]["user_agent"], json!("laptop"));
    assert_eq!(session_rows(&app), 3);
    assert_eq!(app.user_row("alice").refresh_token_hash, None, "the users row holds no session");
}

async fn the_login_beyond_the_limit_ends_the_least_recently_used_session(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    let oldest = app.signup("alice").await;
    let second = login_from(&app, "alice", "b").await;
    let third = login_from(&app, "alice", "c").await;
    // Used last, the oldest is no longer the least recently used.
    let oldest: Value = app.refresh(field(&oldest, "refresh_token")).await.json().await.unwrap();
    let fourth = login_from(&app, "alice", "d").await;
    assert_eq!(me(&app, &second).await, StatusCode::UNAUTHORIZED, "its access token is refused at once");
    assert_eq!(refresh_status(&app, &second).await, StatusCode::UNAUTHORIZED);
    for tokens in [&oldest, &third, &fourth] {
        assert_eq!(me(&app, tokens).await, StatusCode::OK);
    }
    let listed: HashSet<String> =
        ids(&list(&app, field(&fourth, "access_token")).await).into_iter().collect();
    assert_eq!(listed, HashSet::from([sid(&oldest), sid(&third), sid(&fourth)]));
}

async fn ending_one_session_refuses_its_tokens_at_once_and_in_the_feed(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    let phone = app.signup("alice").await;
    let laptop = login_from(&app, "alice", "laptop").await;
    assert!(introspected(&app, &phone).await);
    // Cached as live, then ended from the laptop.
    assert_eq!(me(&app, &phone).await, StatusCode::OK);
    assert_eq!(end(&app, &laptop, &sid(&phone)).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &phone).await, StatusCode::UNAUTHORIZED);
    assert!(!introspected(&app, &phone).await);
    assert_eq!(refresh_status(&app, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &laptop).await, StatusCode::OK, "the other session goes on");
    assert!(introspected(&app, &laptop).await);
    assert_eq!(refresh_status(&app, &laptop).await, StatusCode::OK);
    // Gone: ending it again finds nothing.
    assert_error(end(&app, &laptop, &sid(&phone)).await, StatusCode::NOT_FOUND, "not_found").await;

    let feed = app.client.get(app.url("/auth/revocations?since=0")).bearer_auth(FEED_TOKEN).send().await;
    let feed: Value = feed.unwrap().json().await.unwrap();
    let entries = feed["revocations"].as_array().unwrap();
    let user = field(&phone["user"], "id");
    let session_entries: Vec<&Value> = entries.iter().filter(|e| e["sid"].is_string()).collect();
    assert_eq!(session_entries.len(), 1, "{feed}");
    assert_eq!(session_entries[0]["sub"], json!(user));
    assert_eq!(session_entries[0]["sid"], json!(sid(&phone)));
    assert!(issued_ms(field(&phone, "access_token")) < session_entries[0]["not_before_ms"].as_i64().unwrap());
    assert!(entries.iter().all(|e| e["sid"].is_string()), "no entry for all of the user's sessions: {feed}");
}

async fn sessions_of_others_and_malformed_ids_are_not_found(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    for id in [sid(&bob).as_str(), "not-a-uuid", "00000000-0000-0000-0000-000000000000", "%20"] {
        assert_error(end(&app, &alice, id).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(me(&app, &bob).await, StatusCode::OK, "bob's session was not touched");
    assert_eq!(ids(&list(&app, field(&alice, "access_token")).await), [sid(&alice)]);
    let no_token = app.client.get(app.url("/auth/sessions")).send().await.unwrap();
    assert_error(no_token, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn logout_scopes_end_this_the_other_or_every_session(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    let a = app.signup("alice").await;
    let b = login_from(&app, "alice", "b").await;
    let c = login_from(&app, "alice", "c").await;
    assert_error(logout(&app, &a, "everywhere").await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    assert_eq!(me(&app, &a).await, StatusCode::OK, "an unknown scope ends nothing");

    assert_eq!(logout(&app, &a, "others").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &a).await, StatusCode::OK);
    for other in [&b, &c] {
        assert_eq!(me(&app, other).await, StatusCode::UNAUTHORIZED);
        assert_eq!(refresh_status(&app, other).await, StatusCode::UNAUTHORIZED);
    }
    let d = login_from(&app, "alice", "d").await;
    assert_eq!(logout(&app, &d, "local").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &d).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &a).await, StatusCode::OK, "local ends only the caller's");
    // By refresh token, with a scope.
    let e = login_from(&app, "alice", "e").await;
    let body = json!({ "refresh_token": field(&e, "refresh_token"), "scope": "global" });
    assert_eq!(app.post_json("/auth/logout", &body).await.status(), StatusCode::NO_CONTENT);
    for tokens in [&a, &e] {
        assert_eq!(me(&app, tokens).await, StatusCode::UNAUTHORIZED);
        assert_eq!(refresh_status(&app, tokens).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(session_rows(&app), 0);
    // A JSON `null` body is no scope at all: the default.
    let f = login_from(&app, "alice", "f").await;
    let request = app.client.post(app.url("/auth/logout")).bearer_auth(field(&f, "access_token"));
    let response = request.header("content-type", "application/json").body("null").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &f).await, StatusCode::UNAUTHORIZED);
}

async fn reuse_detection_ends_only_the_replayed_chain(backend: Backend) {
    let app = devices_app(backend, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let victim = app.signup("alice").await;
    let other = login_from(&app, "alice", "other").await;
    let rotated: Value = app.refresh(field(&victim, "refresh_token")).await.json().await.unwrap();
    // The stolen, rotated token replayed after the grace window.
    assert_eq!(refresh_status(&app, &victim).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &rotated).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_status(&app, &rotated).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &other).await, StatusCode::OK, "the other device stays logged in");
    assert_eq!(refresh_status(&app, &other).await, StatusCode::OK);
}

async fn a_password_change_ends_every_other_session(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    let a = app.signup("alice").await;
    let b = login_from(&app, "alice", "b").await;
    let body = json!({ "current_password": PASSWORD, "new_password": "a new password, long enough" });
    let request = app.client.post(app.url("/auth/password")).bearer_auth(field(&a, "access_token"));
    let changed: Value = request.json(&body).send().await.unwrap().json().await.unwrap();
    for old in [&a, &b] {
        assert_eq!(me(&app, old).await, StatusCode::UNAUTHORIZED);
        assert_eq!(refresh_status(&app, old).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(me(&app, &changed).await, StatusCode::OK);
    assert_eq!(ids(&list(&app, field(&changed, "access_token")).await), [sid(&changed)]);
}

async fn administrators_list_and_end_a_users_sessions(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let a = app.signup("alice").await;
    let b = login_from(&app, "alice", "b").await;
    let user = field(&a["user"], "id").to_owned();
    let listed = app.get_with_bearer(&format!("/admin/users/{user}/sessions"), &admin).await;
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    let listed = listed["sessions"].as_array().unwrap();
    assert_eq!(ids(listed), [sid(&b), sid(&a)]);
    assert!(listed.iter().all(|s| s.get("current").is_none()), "no current session in the admin's view");

    let url = |sid: &str| app.url(&format!("/admin/users/{user}/sessions/{sid}"));
    let ended = app.client.delete(url(&sid(&b))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &a).await, StatusCode::OK);
    let again = app.client.delete(url(&sid(&b))).bearer_auth(&admin).send().await.unwrap();
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;
    let unknown =
        app.get_with_bearer(&format!("/admin/users/{}/sessions", uuid::Uuid::new_v4()), &admin).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    // Not an admin: forbidden, even for one's own sessions.
    let own = app.get_with_bearer(&format!("/admin/users/{user}/sessions"), field(&a, "access_token")).await;
    assert_error(own, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn disabling_deleting_and_admin_logout_end_every_session(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    for (name, method, path, body) in [
        ("alice", reqwest::Method::PATCH, "", Some(json!({ "disabled": true }))),
        ("bob", reqwest::Method::POST, "/logout", None),
        ("carol", reqwest::Method::DELETE, "", None),
    ] {
        let a = app.signup(name).await;
        let b = login_from(&app, name, "b").await;
        let user = field(&a["user"], "id");
        let mut request =
            app.client.request(method, app.url(&format!("/admin/users/{user}{path}"))).bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        assert!(request.send().await.unwrap().status().is_success(), "{name}");
        for tokens in [&a, &b] {
            assert_eq!(me(&app, tokens).await, StatusCode::UNAUTHORIZED, "{name}");
            assert_eq!(refresh_status(&app, tokens).await, StatusCode::UNAUTHORIZED, "{name}");
        }
    }
    assert_eq!(session_rows(&app), 2, "only the admin's two (signup and login) are left");
}

async fn parallel_logins_at_the_limit_end_exactly_one_session_each(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    app.signup("alice").await;
    for round in 0..10 {
        // Three sessions live, then two logins at once.
        let live = [login_from(&app, "alice", "x").await, login_from(&app, "alice", "y").await];
        let (first, second) = tokio::join!(login_from(&app, "alice", "p"), login_from(&app, "alice", "q"));
        assert_eq!(session_rows(&app), 3, "round {round}");
        let listed: HashSet<String> =
            ids(&list(&app, field(&first, "access_token")).await).into_iter().collect();
        assert!(listed.contains(&sid(&first)) && listed.contains(&sid(&second)), "round {round}");
        // Of the two before them, exactly the least recently used ended.
        assert_eq!(me(&app, &live[0]).await, StatusCode::UNAUTHORIZED, "round {round}");
        assert_eq!(me(&app, &live[1]).await, StatusCode::OK, "round {round}");
    }
}

async fn a_restart_keeps_every_session(backend: Backend) {
    let mut app = devices_app(backend, &[]).await;
    let a = app.signup("alice").await;
    let b = login_from(&app, "alice", "b").await;
    app.restart().await;
    for tokens in [&a, &b] {
        assert_eq!(me(&app, tokens).await, StatusCode::OK);
        let rotated: Value = app.refresh(field(tokens, "refresh_token")).await.json().await.unwrap();
        assert_eq!(sid(&rotated), sid(tokens));
    }
}

async fn user_agents_are_kept_capped_and_as_given(backend: Backend) {
    let app = devices_app(backend, &[]).await;
    app.signup("alice").await;
    let long = format!("Mozilla/5.0 <script>alert(1)</script> {}", "x".repeat(1000));
    let login = login_from(&app, "alice", &long).await;
    let listed = list(&app, field(&login, "access_token")).await;
    let agent = listed[0]["user_agent"].as_str().unwrap();
    assert_eq!(agent.chars().count(), 256);
    assert!(long.starts_with(agent), "stored as given, never rewritten");
    let plain = app.post_json("/auth/login", &json!({ "username": "alice", "password": PASSWORD })).await;
    let plain: Value = plain.json().await.unwrap();
    let listed = list(&app, field(&plain, "access_token")).await;
    assert_eq!(listed[0]["id"], json!(sid(&plain)));
    assert_eq!(listed[0]["user_agent"], Value::Null, "reqwest sends none");
}
