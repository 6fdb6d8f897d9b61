//! Early death of access tokens: `tokens_valid_after`, and the feed other services poll.

use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate::clock::ManualClock;

const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";

db_tests!(
    logout_password_change_and_reuse_revoke_earlier_access_tokens,
    the_feed_lists_revocations_after_since,
    the_feed_needs_its_token_and_is_off_without_one,
    a_revocation_reaches_other_instances_within_their_cache_ttl,
    an_entry_kept_fresh_still_shows_a_role_changed_by_hand_within_the_ttl,
    ten_logout_login_cycles_in_one_instant_cut_exactly_and_never_issue_ahead,
    forty_forced_logouts_then_a_login_give_a_token_of_now_that_is_accepted,
    a_password_change_issues_a_token_of_now_and_refuses_the_old_one,
    a_revocation_and_an_issue_in_one_instant_cut_exactly,
    a_deleted_user_stays_in_the_feed_until_its_tokens_expired,
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

/// Whether `token` was issued at `clock`'s now: `iat` and `nbf` the current second, never
/// later (a verifier without leeway, such as PyJWT by default, refuses an `iat` ahead), and
/// its exact issue time at most `ahead_ms` past the clock.
fn assert_issued_now(token: &str, clock: &ManualClock, ahead_ms: i64) {
    let claims = access_claims(token);
    let now = clock.now();
    assert_eq!(claims["iat"].as_i64(), Some(now.timestamp()), "{claims}");
    assert_eq!(claims["nbf"], claims["iat"]);
    let issued = issued_ms(token);
    let now_ms = now.timestamp_millis();
    assert!((now_ms..=now_ms + ahead_ms).contains(&issued), "issued {issued}, now {now_ms}");
}

async fn logout(app: &TestApp, access: &str) {
    let response = app.client.post(app.url("/auth/logout")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// The issue saw a token with `iat` 10 s in the future after ten such cycles in a second.
async fn ten_logout_login_cycles_in_one_instant_cut_exactly_and_never_issue_ahead(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let signup = app.signup("alice").await;
    let mut old = vec![field(&signup, "access_token").to_owned()];
    for cycle in 1..=10 {
        logout(&app, old.last().unwrap()).await;
        let login: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
        let fresh = field(&login, "access_token");
        // Each cycle in the same instant is a millisecond on: tokens of one instant must
        // still be told apart.
        assert_issued_now(fresh, &clock, cycle);
        assert_eq!(me_status(&app, fresh).await, StatusCode::OK, "cycle {cycle}: the new token");
        for earlier in &old {
            assert_eq!(
                me_status(&app, earlier).await,
                StatusCode::UNAUTHORIZED,
                "cycle {cycle}: an old token"
            );
        }
        old.push(fresh.to_owned());
    }
}

/// The issue saw `iat` 39 s ahead after 40 forced logouts, and tollgate refused its own
/// token. Without a session in between, nothing pushes the revocation time on.
async fn forty_forced_logouts_then_a_login_give_a_token_of_now_that_is_accepted(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let signup = app.signup("bob").await;
    let path = format!("/admin/users/{}/logout", field(&signup["user"], "id"));
    for _ in 0..40 {
        let response = app.client.post(app.url(&path)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(me_status(&app, field(&signup, "access_token")).await, StatusCode::UNAUTHORIZED);
    let login: Value = app.login("bob", PASSWORD).await.json().await.unwrap();
    let fresh = field(&login, "access_token");
    assert_issued_now(fresh, &clock, 1);
    assert_eq!(me_status(&app, fresh).await, StatusCode::OK);
}

/// The issue saw every password change give `iat` = now + 1 s, which PyJWT refuses.
async fn a_password_change_issues_a_token_of_now_and_refuses_the_old_one(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let signup = app.signup("carol").await;
    let old = field(&signup, "access_token");
    let body = json!({ "current_password": PASSWORD, "new_password": "another good password" });
    let response = app.client.post(app.url("/auth/password")).bearer_auth(old).json(&body).send().await;
    let changed: Value = response.unwrap().json().await.unwrap();
    let fresh = field(&changed, "access_token");
    assert_issued_now(fresh, &clock, 1);
    assert_eq!(me_status(&app, fresh).await, StatusCode::OK);
    assert_eq!(me_status(&app, old).await, StatusCode::UNAUTHORIZED);
}

/// A role taken away at the very instant of a refresh: the token issued before is
/// refused, the one issued after (without the role) accepted, in tollgate and by the
/// feed's exact time, though all three share one millisecond.
async fn a_revocation_and_an_issue_in_one_instant_cut_exactly(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let signup = app.signup("dave").await;
    // Through the API, on the app's clock, as everything that touches dave here.
    let path = format!("/admin/users/{}", field(&signup["user"], "id"));
    let set_roles = |roles: Value| {
        app.client.patch(app.url(&path)).bearer_auth(&admin).json(&json!({ "roles": roles })).send()
    };
    assert_eq!(set_roles(json!(["staff"])).await.unwrap().status(), StatusCode::OK);
    let before: Value = app.login("dave", PASSWORD).await.json().await.unwrap();
    assert_eq!(set_roles(json!([])).await.unwrap().status(), StatusCode::OK);
    let after: Value = app.refresh(field(&before, "refresh_token")).await.json().await.unwrap();
    let (before, after) = (field(&before, "access_token"), field(&after, "access_token"));
    assert_eq!(access_claims(after)["roles"], json!([]));
    assert_issued_now(before, &clock, 0);
    assert_issued_now(after, &clock, 1);
    assert_eq!(access_claims(before)["iat"], access_claims(after)["iat"], "one second");
    assert_eq!(me_status(&app, before).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, after).await, StatusCode::OK);

    let listed: Value = feed(&app, 0, FEED_TOKEN).await.json().await.unwrap();
    let entry = &listed["revocations"].as_array().unwrap()[0];
    let not_before_ms = entry["not_before_ms"].as_i64().unwrap();
    assert!(issued_ms(before) < not_before_ms && not_before_ms <= issued_ms(after), "{entry}");
    // Whole seconds, rounded up: a consumer that knows only `iat` refuses both.
    assert!(access_claims(after)["iat"].as_i64().unwrap() < entry["not_before"].as_i64().unwrap());
}

/// The users whose tombstones are stored, in the order kept.
pub(crate) fn tombstones(app: &TestApp) -> Vec<String> {
    use diesel::prelude::*;
    use tollgate::db::schema::revocations;
    let mut conn = app.pool.get().unwrap();
    revocations::table.order(revocations::id).select(revocations::user_id).load(&mut **conn).unwrap()
}

/// The issue saw the feed go from holding a user to `[]` once it was deleted, while its
/// tokens lived on with every service that checks them itself.
async fn a_deleted_user_stays_in_the_feed_until_its_tokens_expired(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let erin = app.signup("erin").await;
    let id = field(&erin["user"], "id").to_owned();
    let entries = |listed: Value| -> Vec<(String, i64, i64)> {
        let entries = listed["revocations"].as_array().unwrap().iter();
        let entry = |e: &Value| {
            (
                field(e, "sub").to_owned(),
                e["not_before"].as_i64().unwrap(),
                e["not_before_ms"].as_i64().unwrap(),
            )
        };
        entries.map(entry).collect()
    };
    let logout = app.client.post(app.url(&format!("/admin/users/{id}/logout"))).bearer_auth(&admin).send();
    assert_eq!(logout.await.unwrap().status(), StatusCode::NO_CONTENT);
    let listed = entries(feed(&app, 0, FEED_TOKEN).await.json().await.unwrap());
    assert_eq!(listed.iter().map(|e| &e.0).collect::<Vec<_>>(), [&id]);

    clock.advance(Duration::from_secs(2));
    let deleted_at = clock.now();
    let delete = app.client.delete(app.url(&format!("/admin/users/{id}"))).bearer_auth(&admin).send();
    assert_eq!(delete.await.unwrap().status(), StatusCode::NO_CONTENT);
    let listed = entries(feed(&app, 0, FEED_TOKEN).await.json().await.unwrap());
    let [(sub, not_before, not_before_ms)] = &listed[..] else { panic!("{listed:?}") };
    assert_eq!(sub, &id);
    assert!(*not_before_ms > deleted_at.timestamp_millis() && *not_before > deleted_at.timestamp());
    assert_eq!(tombstones(&app), [id.as_str()]);
    // Introspection and tollgate itself refuse the token too.
    assert_eq!(me_status(&app, field(&erin, "access_token")).await, StatusCode::UNAUTHORIZED);

    // Once the token lifetime and the leeway are over, the next deletion forgets it (on
    // the database: a clock moved that far would make new tokens look issued in the future
    // to jsonwebtoken, which checks them on the system clock).
    let frank = app.signup("frank").await;
    let frank_id: uuid::Uuid = field(&frank["user"], "id").parse().unwrap();
    let later = (deleted_at + Duration::from_secs(900 + 30 + 1)).naive_utc();
    let mut conn = app.pool.get().unwrap();
    assert!(
        tollgate::db::accounts::Account::delete(
            &mut tollgate::db::WriteConn::direct(&mut conn),
            frank_id,
            later,
            900 + 30
        )
        .unwrap()
    );
    assert_eq!(tombstones(&app), [frank_id.to_string()]);
}
