//! Early death of access tokens: `tokens_valid_after`, and the feed other services poll.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";

db_tests!(
    logout_password_change_and_reuse_revoke_earlier_access_tokens,
    the_feed_lists_revocations_after_since,
    the_feed_needs_its_token_and_is_off_without_one,
    a_revocation_reaches_other_instances_within_their_cache_ttl,
    an_entry_kept_fresh_still_shows_a_role_changed_by_hand_within_the_ttl,
);

async fn feed(app: &TestApp, since: i64, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/auth/revocations?since={since}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn me_status(app: &TestApp, access: &str) -> StatusCode {
    app.get_with_bearer("/auth/me", access).await.status()
}

async fn logout_password_change_and_reuse_revoke_earlier_access_tokens(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    // Reuse detection: the rotated token replayed after the grace window.
    let signup = app.signup("alice").await;
    let rotated: Value = app.refresh(field(&signup, "refresh_token")).await.json().await.unwrap();
    assert_eq!(me_status(&app, field(&rotated, "access_token")).await, StatusCode::OK);
    assert_eq!(app.refresh(field(&signup, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    for access in [field(&signup, "access_token"), field(&rotated, "access_token")] {
        assert_error(
            app.get_with_bearer("/auth/me", access).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }
    let row = app.user_row("alice");
    assert!(row.tokens_valid_after.is_some());

    // Logout by refresh token.
    let login: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    assert_eq!(me_status(&app, field(&login, "access_token")).await, StatusCode::OK);
    let body = json!({ "refresh_token": field(&login, "refresh_token") });
    assert_eq!(app.post_json("/auth/logout", &body).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&app, field(&login, "access_token")).await, StatusCode::UNAUTHORIZED);

    // A refresh issued after a revocation in the same second is alive.
    let again: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    let refreshed: Value = app.refresh(field(&again, "refresh_token")).await.json().await.unwrap();
    assert_eq!(me_status(&app, field(&refreshed, "access_token")).await, StatusCode::OK);
}

async fn the_feed_lists_revocations_after_since(backend: Backend) {
    let app = spawn_app_with(backend, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let first = feed(&app, 0, FEED_TOKEN).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["revocations"], json!([]));
    let watermark = first["now"].as_i64().unwrap();
    assert!((chrono::Utc::now().timestamp() - watermark).abs() < 60);

    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let logout =
        app.client.post(app.url("/auth/logout")).bearer_auth(field(&alice, "access_token")).send().await;
    assert_eq!(logout.unwrap().status(), StatusCode::NO_CONTENT);

    let listed: Value = feed(&app, watermark, FEED_TOKEN).await.json().await.unwrap();
    let revocations = listed["revocations"].as_array().unwrap();
    assert_eq!(revocations.len(), 1, "{listed}");
    assert_eq!(revocations[0]["sub"], alice["user"]["id"]);
    let not_before = revocations[0]["not_before"].as_i64().unwrap();
    let exact = revocations[0]["not_before_ms"].as_i64().unwrap();
    assert_eq!(Some(exact), app.user_row("alice").tokens_valid_after.map(|t| t.0));
    assert_eq!(not_before, (exact + 999).div_euclid(1000), "rounded up");
    assert_ne!(revocations[0]["sub"], bob["user"]["id"]);
    // Entries at or before `since` are not repeated.
    let later: Value = feed(&app, not_before, FEED_TOKEN).await.json().await.unwrap();
    assert_eq!(later["revocations"], json!([]));
}

async fn the_feed_needs_its_token_and_is_off_without_one(backend: Backend) {
    let app = spawn_app_with(backend.clone(), &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let signup = app.signup("carol").await;
    assert_error(app.get("/auth/revocations").await, StatusCode::UNAUTHORIZED, "missing_token").await;
    let wrong = feed(&app, 0, "a-revocation-feed-token-for-testz").await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A user's access token is not the service token.
    assert_error(
        feed(&app, 0, field(&signup, "access_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let bad_since = app
        .client
        .get(app.url("/auth/revocations?since=yesterday"))
        .bearer_auth(FEED_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(bad_since, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let off = spawn_app(backend).await;
    assert_error(feed(&off, 0, FEED_TOKEN).await, StatusCode::NOT_FOUND, "not_found").await;
}

/// Each instance caches user rows for a second; a logout on one instance is enforced by
/// the others once their cached row expires, and not before the cache says so.
async fn a_revocation_reaches_other_instances_within_their_cache_ttl(backend: Backend) {
    let clock = tollgate::clock::ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let (other, _handle) = app.start_sibling();
    let signup = app.signup("dave").await;
    let access = field(&signup, "access_token");
    let on_other = || app.client.get(format!("{other}/auth/me")).bearer_auth(access).send();
    assert_eq!(on_other().await.unwrap().status(), StatusCode::OK);
    let logout = app.client.post(app.url("/auth/logout")).bearer_auth(access).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // The other instance still answers from its cached row...
    assert_eq!(on_other().await.unwrap().status(), StatusCode::OK);
    // ...until the row is older than the cache's second.
    clock.advance(std::time::Duration::from_millis(1100));
    assert_eq!(
        on_other().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "the other instance never saw the logout"
    );
}

/// An aged entry is re-validated (not re-read) and renewed while nothing changed; a role
/// granted behind the server's back, with no `updated_at` bump, still shows at the next
/// check, and a logout on another instance too.
async fn an_entry_kept_fresh_still_shows_a_role_changed_by_hand_within_the_ttl(backend: Backend) {
    let clock = tollgate::clock::ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let (other, _handle) = app.start_sibling();
    let signup = app.signup("erin").await;
    let access = field(&signup, "access_token");
    let me = || async {
        let response = app.get_with_bearer("/auth/me", access).await;
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    assert_eq!(me().await.1["roles"], json!([]));
    assert_fresh(&app, "erin");
    for _ in 0..3 {
        clock.advance(std::time::Duration::from_millis(1100));
        let (status, body) = me().await;
        assert_eq!((status, &body["roles"]), (StatusCode::OK, &json!([])), "renewed, unchanged");
    }
    // By hand: `updated_at` stays as it was.
    {
        use diesel::prelude::*;
        use tollgate::db::schema::user_roles;
        let mut conn = app.pool.get().unwrap();
        let before = app.user_row("erin");
        diesel::insert_into(user_roles::table)
            .values((user_roles::user_id.eq(before.id), user_roles::role.eq("granted_by_hand")))
            .execute(&mut **conn)
            .unwrap();
        assert_eq!(app.user_row("erin").updated_at, before.updated_at);
    }
    assert_eq!(me().await.1["roles"], json!([]), "still served from the cache");
    clock.advance(std::time::Duration::from_millis(1100));
    assert_eq!(me().await.1["roles"], json!(["granted_by_hand"]), "the re-validation saw the role");
    let logout = app.client.post(format!("{other}/auth/logout")).bearer_auth(access).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(me().await.0, StatusCode::OK, "served from the cache until it ages");
    clock.advance(std::time::Duration::from_millis(1100));
    assert_eq!(me_status(&app, access).await, StatusCode::UNAUTHORIZED, "the re-validation saw the logout");
    // Several roles, as the database aggregates them.
    crate::admin::grant(&app, "erin", &["zz_second", "a_third"]);
    assert_fresh(&app, "erin");
}

/// The light re-validation query agrees with the account as read in full, roles included
/// (whatever order the database aggregates them in).
fn assert_fresh(app: &TestApp, username: &str) {
    use tollgate::db::accounts::Account;
    let mut conn = app.pool.get().unwrap();
    let id = app.user_row(username).id.0;
    let account = Account::find(&mut conn, id).unwrap().unwrap();
    let found = Account::freshness_of(&mut conn, &[id, uuid::Uuid::new_v4()]).unwrap();
    assert_eq!(found.len(), 1, "only the user that exists");
    assert!(found[0].matches(&account), "roles {:?} vs {:?}", found[0].roles, account.roles);
}
