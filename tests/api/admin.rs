//! Roles in tokens and user objects, disabled accounts, and the admin API.

use std::collections::HashSet;

use crate::common::*;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tollgate::db::accounts::{Account, NewAccount};
use tollgate::db::schema::{user_roles, users};
use tollgate::db::{DbError, WriteConn};

const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";

db_tests!(
    roles_are_in_tokens_and_user_objects_sorted,
    signups_get_the_default_roles_and_admin_creations_the_given_ones,
    signup_and_password_change_cannot_assign_roles_or_disabled,
    the_admin_api_needs_a_token_with_the_admin_role,
    admins_create_read_update_and_delete_users,
    admin_input_is_validated_like_signup,
    an_account_created_without_a_password_cannot_log_in_until_one_is_set,
    paging_walks_every_user_once_while_users_are_created,
    a_cursor_that_is_no_stored_username_is_refused_before_the_database,
    disabling_refuses_old_tokens_at_once_and_reaches_the_feed,
    removing_a_role_revokes_at_once_and_a_demoted_admin_is_refused,
    a_forced_logout_revokes_the_session_and_every_access_token,
    the_last_enabled_admin_cannot_be_demoted_disabled_or_deleted,
    admins_taking_admin_rights_away_at_once_leave_exactly_one_admin,
    a_batch_of_accounts_is_created_whole_or_not_at_all,
);

/// Gives `username` these roles directly in the database, as `tollgate user roles` would.
pub(crate) fn grant(app: &TestApp, username: &str, roles: &[&str]) {
    let mut conn = app.pool.get().unwrap();
    let id = app.user_row(username).id.0;
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    Account::change_roles(&mut WriteConn::direct(&mut conn), id, &roles, &[], chrono::Utc::now().naive_utc())
        .unwrap();
}

/// Signs up `username`, makes it an admin, logs it in and returns its access token.
pub(crate) async fn admin_token(app: &TestApp, username: &str) -> String {
    app.signup(username).await;
    grant(app, username, &["admin"]);
    let login: Value = app.login(username, PASSWORD).await.json().await.unwrap();
    field(&login, "access_token").to_owned()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn json_of(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

fn role_rows(app: &TestApp, id: &str) -> Vec<String> {
    use diesel::prelude::*;
    let mut conn = app.pool.get().unwrap();
    let mut roles: Vec<String> = user_roles::table
        .filter(user_roles::user_id.eq(id))
        .select(user_roles::role)
        .load(&mut **conn)
        .unwrap();
    roles.sort();
    roles
}

async fn feed_subjects(app: &TestApp) -> Vec<String> {
    let response = app.client.get(app.url("/auth/revocations?since=0")).bearer_auth(FEED_TOKEN).send().await;
    let feed = json_of(response.unwrap(), StatusCode::OK).await;
    feed["revocations"].as_array().unwrap().iter().map(|r| field(r, "sub").to_owned()).collect()
}

async fn roles_are_in_tokens_and_user_objects_sorted(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    assert_eq!(access_claims(field(&signup, "access_token"))["roles"], json!([]));
    grant(&app, "alice", &["staff", "billing:read", "admin"]);

    let login = json_of(app.login("alice", PASSWORD).await, StatusCode::OK).await;
    let sorted = json!(["admin", "billing:read", "staff"]);
    assert_eq!(access_claims(field(&login, "access_token"))["roles"], sorted);
    assert_eq!(login["user"]["roles"], sorted);
    let me =
        json_of(app.get_with_bearer("/auth/me", field(&login, "access_token")).await, StatusCode::OK).await;
    assert_eq!(me["roles"], sorted);

    // Read again at refresh: a role added since is in the next token.
    grant(&app, "alice", &["editor"]);
    let refreshed = json_of(app.refresh(field(&login, "refresh_token")).await, StatusCode::OK).await;
    let now_sorted = json!(["admin", "billing:read", "editor", "staff"]);
    assert_eq!(access_claims(field(&refreshed, "access_token"))["roles"], now_sorted);
    assert_eq!(refreshed["user"]["roles"], now_sorted);
    // Adding a role takes nothing away, so the earlier token stays valid.
    assert_eq!(app.get_with_bearer("/auth/me", field(&login, "access_token")).await.status(), StatusCode::OK);
}

async fn signups_get_the_default_roles_and_admin_creations_the_given_ones(backend: Backend) {
    let app = spawn_app_with(backend, &[("DEFAULT_ROLES", "member, beta")]).await;
    let signup = app.signup("alice").await;
    assert_eq!(signup["user"]["roles"], json!(["beta", "member"]));
    assert_eq!(access_claims(field(&signup, "access_token"))["roles"], json!(["beta", "member"]));
    assert_eq!(role_rows(&app, field(&signup["user"], "id")), ["beta", "member"]);

    let admin = admin_token(&app, "root").await;
    let defaulted =
        call(&app, Method::POST, "/admin/users", Some(&admin), Some(json!({ "username": "bob" })));
    assert_eq!(json_of(defaulted.await, StatusCode::CREATED).await["roles"], json!(["beta", "member"]));
    let body = json!({ "username": "carol", "roles": [] });
    let none = call(&app, Method::POST, "/admin/users", Some(&admin), Some(body));
    assert_eq!(json_of(none.await, StatusCode::CREATED).await["roles"], json!([]));
    let body = json!({ "username": "dave", "roles": ["ops", "admin", "ops"] });
    let given = call(&app, Method::POST, "/admin/users", Some(&admin), Some(body));
    assert_eq!(json_of(given.await, StatusCode::CREATED).await["roles"], json!(["admin", "ops"]));
}

async fn signup_and_password_change_cannot_assign_roles_or_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({ "username": "mallory", "password": PASSWORD, "roles": ["admin"], "disabled": true });
    let signup = json_of(app.post_json("/auth/signup", &body).await, StatusCode::CREATED).await;
    assert_eq!(signup["user"]["roles"], json!([]));
    assert_eq!(access_claims(field(&signup, "access_token"))["roles"], json!([]));
    let id = field(&signup["user"], "id").to_owned();
    assert!(role_rows(&app, &id).is_empty());
    assert!(!app.user_row("mallory").disabled);

    let change = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(field(&signup, "access_token"))
        .json(&json!({
            "current_password": PASSWORD, "new_password": "another long password",
            "roles": ["admin"], "disabled": false,
        }))
        .send()
        .await
        .unwrap();
    let changed = json_of(change, StatusCode::OK).await;
    assert_eq!(changed["user"]["roles"], json!([]));
    let token = field(&changed, "access_token");
    assert_eq!(access_claims(token)["roles"], json!([]));
    assert!(role_rows(&app, &id).is_empty());
    let refused = call(&app, Method::GET, "/admin/users", Some(token), None).await;
    assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn the_admin_api_needs_a_token_with_the_admin_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.signup("alice").await;
    grant(&app, "alice", &["administrator", "admins", "staff"]);
    let login = json_of(app.login("alice", PASSWORD).await, StatusCode::OK).await;
    let id = field(&user["user"], "id").to_owned();
    let endpoints = [
        (Method::GET, "/admin/users".to_owned(), None),
        (Method::POST, "/admin/users".to_owned(), Some(json!({ "username": "eve", "roles": ["admin"] }))),
        (Method::GET, format!("/admin/users/{id}"), None),
        (Method::PATCH, format!("/admin/users/{id}"), Some(json!({ "roles": ["admin"] }))),
        (Method::DELETE, format!("/admin/users/{id}"), None),
        (Method::POST, format!("/admin/users/{id}/logout"), None),
    ];
    for (method, path, body) in &endpoints {
        let case = format!("{method} {path}");
        let response = call(&app, method.clone(), path, None, body.clone()).await;
        assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="tollgate""#, "{case}");
        assert_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
        let response = call(&app, method.clone(), path, Some("not.a.token"), body.clone()).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
        // Valid tokens without the exact role `admin`: before and after the grant.
        for token in [field(&user, "access_token"), field(&login, "access_token")] {
            let response = call(&app, method.clone(), path, Some(token), body.clone()).await;
            assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }
    // Nothing happened: no user created, alice untouched.
    assert_eq!(role_rows(&app, &id), ["administrator", "admins", "staff"]);
    assert_eq!(app.login("eve", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_with_bearer("/auth/me", field(&login, "access_token")).await.status(), StatusCode::OK);
    // Methods the API does not have are 405, also for an admin.
    let admin = admin_token(&app, "root").await;
    let response = call(&app, Method::PUT, &format!("/admin/users/{id}"), Some(&admin), None).await;
    assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

async fn admins_create_read_update_and_delete_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = admin_token(&app, "root").await;
    let body =
        json!({ "username": "Bob", "password": PASSWORD, "email": "Bob@Example.com", "roles": ["staff"] });
    let created = json_of(
        call(&app, Method::POST, "/admin/users", Some(&admin), Some(body)).await,
        StatusCode::CREATED,
    )
    .await;
    let keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["created_at", "disabled", "email", "email_verified", "id", "mfa_enabled", "roles", "username"]
    );
    assert_eq!(created["username"], "bob");
    assert_eq!(created["email"], "bob@example.com");
    assert_eq!(created["roles"], json!(["staff"]));
    assert_eq!(created["disabled"], false);
    let id = field(&created, "id").to_owned();
    let row = app.user_row("bob");
    assert!(row.password_hash.starts_with("$argon2id$"));
    assert_eq!(row.refresh_token_hash, None);
    // Bob can log in with the password the admin set.
    let bob = json_of(app.login("bob", PASSWORD).await, StatusCode::OK).await;
    assert_eq!(access_claims(field(&bob, "access_token"))["roles"], json!(["staff"]));

    let taken = json!({ "username": "BOB", "password": PASSWORD });
    let response = call(&app, Method::POST, "/admin/users", Some(&admin), Some(taken)).await;
    assert_error(response, StatusCode::CONFLICT, "username_taken").await;

    let read = json_of(
        call(&app, Method::GET, &format!("/admin/users/{id}"), Some(&admin), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, created);
    for unknown in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned(), id.to_uppercase() + "0"] {
        let path = format!("/admin/users/{unknown}");
        for method in [Method::GET, Method::DELETE] {
            assert_error(
                call(&app, method, &path, Some(&admin), None).await,
                StatusCode::NOT_FOUND,
                "not_found",
            )
            .await;
        }
        let patch = call(&app, Method::PATCH, &path, Some(&admin), Some(json!({}))).await;
        assert_error(patch, StatusCode::NOT_FOUND, "not_found").await;
        let logout = call(&app, Method::POST, &format!("{path}/logout"), Some(&admin), None).await;
        assert_error(logout, StatusCode::NOT_FOUND, "not_found").await;
    }

    // PATCH changes only what it names; null removes the email.
    let path = format!("/admin/users/{id}");
    let patched =
        call(&app, Method::PATCH, &path, Some(&admin), Some(json!({ "roles": ["staff", "editor"] })));
    let patched = json_of(patched.await, StatusCode::OK).await;
    assert_eq!(
        (patched["roles"].clone(), patched["email"].clone()),
        (json!(["editor", "staff"]), json!("bob@example.com"))
    );
    let patched = call(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        Some(json!({ "email": null, "id": "x", "username": "eve" })),
    );
    let patched = json_of(patched.await, StatusCode::OK).await;
    assert_eq!((patched["email"].clone(), patched["username"].clone()), (Value::Null, json!("bob")));
    assert_eq!(patched["roles"], json!(["editor", "staff"]));
    let patched = call(&app, Method::PATCH, &path, Some(&admin), Some(json!({ "email": "new@example.com" })));
    assert_eq!(json_of(patched.await, StatusCode::OK).await["email"], "new@example.com");

    // A new password works, the old one and the old session no longer do.
    let patched =
        call(&app, Method::PATCH, &path, Some(&admin), Some(json!({ "password": "a brand new password" })));
    assert_eq!(patched.await.status(), StatusCode::OK);
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(field(&bob, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get_with_bearer("/auth/me", field(&bob, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login("bob", "a brand new password").await.status(), StatusCode::OK);

    // Delete: the user and its roles are gone; a second delete is 404.
    let deleted = call(&app, Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(role_rows(&app, &id).is_empty());
    assert_eq!(app.login("bob", "a brand new password").await.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        call(&app, Method::DELETE, &path, Some(&admin), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        call(&app, Method::GET, &path, Some(&admin), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn admin_input_is_validated_like_signup(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = admin_token(&app, "root").await;
    let target = app.signup("alice").await;
    let path = format!("/admin/users/{}", field(&target["user"], "id"));
    let creations = [
        (json!({ "username": "a b" }), "username"),
        (json!({ "username": "bob", "email": "not an address" }), "email"),
        (json!({ "username": "bob", "password": "short" }), "password"),
        (json!({ "username": "bob", "roles": ["Admin"] }), "roles"),
        (json!({ "username": "bob", "roles": [""] }), "roles"),
        (json!({ "username": "bob", "roles": ["x".repeat(65)] }), "roles"),
    ];
    for (body, named) in creations {
        let response = call(&app, Method::POST, "/admin/users", Some(&admin), Some(body.clone())).await;
        let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(field(&error, "error").contains(named), "{body}: {error}");
    }
    let updates = [
        (json!({ "email": "nope" }), "email"),
        (json!({ "password": "short" }), "password"),
        (json!({ "roles": ["with space"] }), "roles"),
    ];
    for (body, named) in updates {
        let response = call(&app, Method::PATCH, &path, Some(&admin), Some(body.clone())).await;
        let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(field(&error, "error").contains(named), "{body}: {error}");
    }
    for body in [json!({ "roles": "admin" }), json!({ "disabled": "yes" }), json!({ "roles": [1] })] {
        let response = call(&app, Method::PATCH, &path, Some(&admin), Some(body)).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    let malformed = app
        .client
        .post(app.url("/admin/users"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_error(malformed, StatusCode::BAD_REQUEST, "invalid_json").await;
    // Nothing was half-written: no user bob, alice unchanged.
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert!(role_rows(&app, field(&target["user"], "id")).is_empty());
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

async fn an_account_created_without_a_password_cannot_log_in_until_one_is_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = admin_token(&app, "root").await;
    let created = call(&app, Method::POST, "/admin/users", Some(&admin), Some(json!({ "username": "bob" })));
    let id = field(&json_of(created.await, StatusCode::CREATED).await, "id").to_owned();
    for password in [PASSWORD, "!", ""] {
        assert_error(app.login("bob", password).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let path = format!("/admin/users/{id}");
    let set = call(&app, Method::PATCH, &path, Some(&admin), Some(json!({ "password": PASSWORD }))).await;
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::OK);
}

async fn paging_walks_every_user_once_while_users_are_created(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = admin_token(&app, "root").await;
    for name in ["user03", "user01", "user05", "user07", "user02", "user06"] {
        let body = json!({ "username": name });
        assert_eq!(
            call(&app, Method::POST, "/admin/users", Some(&admin), Some(body)).await.status(),
            StatusCode::CREATED
        );
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &next {
            Some(cursor) => format!("/admin/users?limit=3&after={cursor}"),
            None => "/admin/users?limit=3".to_owned(),
        };
        let page = json_of(call(&app, Method::GET, &query, Some(&admin), None).await, StatusCode::OK).await;
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 3);
        for user in users {
            assert!(user["disabled"].is_boolean() && user["roles"].is_array(), "{user}");
            assert!(user.get("password_hash").is_none());
            seen.push(field(user, "username").to_owned());
        }
        pages += 1;
        if pages == 1 {
            // One user before the cursor (not seen: already passed), one after it (seen).
            for name in ["user00", "user04"] {
                let created =
                    call(&app, Method::POST, "/admin/users", Some(&admin), Some(json!({ "username": name })));
                assert_eq!(created.await.status(), StatusCode::CREATED);
            }
        }
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["root", "user01", "user02", "user03", "user04", "user05", "user06", "user07"]);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    assert_eq!(pages, 3);

    let all =
        json_of(call(&app, Method::GET, "/admin/users", Some(&admin), None).await, StatusCode::OK).await;
    assert_eq!(all["users"].as_array().unwrap().len(), 9);
    assert_eq!(all["next"], Value::Null);
    for query in ["limit=0", "limit=101", "limit=ten", "limit=-1"] {
        let response = call(&app, Method::GET, &format!("/admin/users?{query}"), Some(&admin), None).await;
        let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(field(&error, "error").contains("limit"), "{error}");
    }
    for cursor in ["%21%21", "a", "%2F%2F%2F"] {
        let response =
            call(&app, Method::GET, &format!("/admin/users?after={cursor}"), Some(&admin), None).await;
        let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(field(&error, "error").contains("after"), "{error}");
    }
}

async fn a_cursor_that_is_no_stored_username_is_refused_before_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = admin_token(&app, "root").await;
    app.signup("zed").await;
    // "AA" was base64 for a NUL, which reached PostgreSQL and failed there (500); "00" is
    // the hex one. Then invalid UTF-8, an upper-case name (never stored so), a space, an
    // empty and an over-long name, upper-case hex, and a base64 cursor of before.
    let long = "7a".repeat(151);
    let refused = ["AA", "00", "7a00", "ff", "c3", "416c696365", "6120", "", &long, "7A", "em9k"];
    for cursor in refused {
        let response =
            call(&app, Method::GET, &format!("/admin/users?after={cursor}"), Some(&admin), None).await;
        let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(field(&error, "error").contains("after"), "{cursor:?}: {error}");
    }
    // Any cursor of the pattern is a position, whether or not that user exists: "s".
    let page = call(&app, Method::GET, "/admin/users?after=73", Some(&admin), None).await;
    let page = json_of(page, StatusCode::OK).await;
    let names: Vec<&str> = page["users"].as_array().unwrap().iter().map(|u| field(u, "username")).collect();
    assert_eq!(names, ["zed"]);
}

async fn disabling_refuses_old_tokens_at_once_and_reaches_the_feed(backend: Backend) {
    let app = spawn_app_with(backend, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let admin = admin_token(&app, "root").await;
    let alice = app.signup("alice").await;
    let id = field(&alice["user"], "id").to_owned();
    assert!(!feed_subjects(&app).await.contains(&id));

    let path = format!("/admin/users/{id}");
    let disabled = call(&app, Method::PATCH, &path, Some(&admin), Some(json!({ "disabled": true }))).await;
    assert_eq!(json_of(disabled, StatusCode::OK).await["disabled"], true);
    assert!(app.user_row("alice").disabled);
    assert_eq!(app.user_row("alice").refresh_token_hash, None);

    let me = app.get_with_bearer("/auth/me", field(&alice, "access_token")).await;
    assert_error(me, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let refresh = app.refresh(field(&alice, "refresh_token")).await;
    assert_error(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // The right password learns that the account is disabled; a wrong one learns nothing.
    assert_error(app.login("alice", PASSWORD).await, StatusCode::FORBIDDEN, "account_disabled").await;
    assert_error(app.login("alice", "wrong password").await, StatusCode::UNAUTHORIZED, "invalid_credentials")
        .await;
    assert!(feed_subjects(&app).await.contains(&id));

    let listed =
        json_of(call(&app, Method::GET, "/admin/users", Some(&admin), None).await, StatusCode::OK).await;
    let entry = listed["users"].as_array().unwrap().iter().find(|u| u["id"] == id.as_str()).unwrap().clone();
    assert_eq!(entry["disabled"], true);

    let enabled = call(&app, Method::PATCH, &path, Some(&admin), Some(json!({ "disabled": false }))).await;
    assert_eq!(json_of(enabled, StatusCode::OK).await["disabled"], false);
    let login = json_of(app.login("alice", PASSWORD).await, StatusCode::OK).await;
    assert_eq!(app.get_with_bearer("/auth/me", field(&login, "access_token")).await.status(), StatusCode::OK);
}

async fn removing_a_role_revokes_at_once_and_a_demoted_admin_is_refused(backend: Backend) {
    let app = spawn_app_with(backend, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let root = admin_token(&app, "root").await;
    app.signup("deputy").await;
    grant(&app, "deputy", &["admin", "staff"]);
    let deputy = json_of(app.login("deputy", PASSWORD).await, StatusCode::OK).await;
    let deputy_token = field(&deputy, "access_token");
    let id = field(&deputy["user"], "id").to_owned();
    assert_eq!(
        call(&app, Method::GET, "/admin/users", Some(deputy_token), None).await.status(),
        StatusCode::OK
    );

    let path = format!("/admin/users/{id}");
    let demoted = call(&app, Method::PATCH, &path, Some(&root), Some(json!({ "roles": ["staff"] }))).await;
    assert_eq!(json_of(demoted, StatusCode::OK).await["roles"], json!(["staff"]));
    // The old token still says admin, but was issued before the demotion: refused at once.
    let refused = call(&app, Method::GET, "/admin/users", Some(deputy_token), None).await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(app.get_with_bearer("/auth/me", deputy_token).await.status(), StatusCode::UNAUTHORIZED);
    assert!(feed_subjects(&app).await.contains(&id));
    let row = app.user_row("deputy");
    assert!(row.tokens_valid_after.is_some_and(|t| t.0 > issued_ms(deputy_token)));

    // The session survives: a refresh yields a token without the role, which gets 403.
    let refreshed = json_of(app.refresh(field(&deputy, "refresh_token")).await, StatusCode::OK).await;
    let fresh = field(&refreshed, "access_token");
    assert_eq!(access_claims(fresh)["roles"], json!(["staff"]));
    assert_eq!(app.get_with_bearer("/auth/me", fresh).await.status(), StatusCode::OK);
    assert_error(
        call(&app, Method::GET, "/admin/users", Some(fresh), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // The root admin's own token is untouched by a change to someone else.
    assert_eq!(call(&app, Method::GET, &path, Some(&root), None).await.status(), StatusCode::OK);
}

/// The users that may use the admin API now: enabled, with the `admin` role.
fn enabled_admins(app: &TestApp) -> Vec<String> {
    use diesel::prelude::*;
    let mut conn = app.pool.get().unwrap();
    let mut admins: Vec<String> = users::table
        .inner_join(user_roles::table)
        .filter(user_roles::role.eq("admin"))
        .filter(users::disabled.eq(false))
        .select(users::username)
        .load(&mut **conn)
        .unwrap();
    admins.sort();
    admins
}

async fn the_last_enabled_admin_cannot_be_demoted_disabled_or_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = admin_token(&app, "root").await;
    let root_id = app.user_row("root").id.0.to_string();
    let root_path = format!("/admin/users/{root_id}");
    let changes = [
        (Method::PATCH, Some(json!({ "roles": [] }))),
        (Method::PATCH, Some(json!({ "roles": ["ops"], "email": "root@example.com" }))),
        (Method::PATCH, Some(json!({ "disabled": true }))),
        (Method::DELETE, None),
    ];
    for (method, body) in changes.clone() {
        let response = call(&app, method.clone(), &root_path, Some(&root), body.clone()).await;
        let error = assert_error(response, StatusCode::CONFLICT, "last_admin").await;
        assert!(field(&error, "error").contains("no enabled admin"), "{method} {body:?}: {error}");
    }
    // Nothing of the refused changes stayed (the email neither), nothing was revoked.
    assert_eq!(role_rows(&app, &root_id), ["admin"]);
    let row = app.user_row("root");
    assert!(!row.disabled && row.email.is_none());
    assert_eq!(call(&app, Method::GET, "/admin/users", Some(&root), None).await.status(), StatusCode::OK);
    // A change that leaves the admin an admin goes through.
    let kept = call(&app, Method::PATCH, &root_path, Some(&root), Some(json!({ "roles": ["admin", "ops"] })));
    assert_eq!(json_of(kept.await, StatusCode::OK).await["roles"], json!(["admin", "ops"]));

    // A disabled admin is no admin: it does not count as the one that remains.
    let body = json!({ "username": "backup", "password": PASSWORD, "roles": ["admin"] });
    let backup =
        json_of(call(&app, Method::POST, "/admin/users", Some(&root), Some(body)).await, StatusCode::CREATED);
    let backup_path = format!("/admin/users/{}", field(&backup.await, "id"));
    let disable = json!({ "disabled": true });
    let disabled = call(&app, Method::PATCH, &backup_path, Some(&root), Some(disable.clone())).await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let response = call(&app, Method::PATCH, &root_path, Some(&root), Some(json!({ "roles": [] }))).await;
    assert_error(response, StatusCode::CONFLICT, "last_admin").await;
    // Enabled again, it does: now root may go, and backup is the last.
    let enabled =
        call(&app, Method::PATCH, &backup_path, Some(&root), Some(json!({ "disabled": false }))).await;
    assert_eq!(enabled.status(), StatusCode::OK);
    let demoted = call(&app, Method::PATCH, &root_path, Some(&root), Some(json!({ "roles": ["ops"] }))).await;
    assert_eq!(demoted.status(), StatusCode::OK);
    assert_eq!(enabled_admins(&app), ["backup"]);
    let backup_token = json_of(app.login("backup", PASSWORD).await, StatusCode::OK).await;
    let backup_token = field(&backup_token, "access_token");
    for (method, body) in [(Method::PATCH, Some(disable)), (Method::DELETE, None)] {
        let response = call(&app, method, &backup_path, Some(backup_token), body).await;
        assert_error(response, StatusCode::CONFLICT, "last_admin").await;
    }
    // Users who are not enabled admins change as before.
    let deleted = call(&app, Method::DELETE, &root_path, Some(backup_token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(enabled_admins(&app), ["backup"]);
}

/// A change that takes the admin rights of the user at `path` away.
#[derive(Clone, Copy, Debug)]
enum Demotion {
    Roles,
    Disable,
    Delete,
}

async fn demote(app: &TestApp, token: &str, id: &str, how: Demotion) -> Response {
    let path = format!("/admin/users/{id}");
    match how {
        Demotion::Roles => {
            call(app, Method::PATCH, &path, Some(token), Some(json!({ "roles": ["ops"] }))).await
        }
        Demotion::Disable => {
            call(app, Method::PATCH, &path, Some(token), Some(json!({ "disabled": true }))).await
        }
        Demotion::Delete => call(app, Method::DELETE, &path, Some(token), None).await,
    }
}

async fn admins_taking_admin_rights_away_at_once_leave_exactly_one_admin(backend: Backend) {
    const ROUNDS: usize = 12;
    let app = spawn_app(backend).await;
    let ways = [Demotion::Roles, Demotion::Disable, Demotion::Delete];
    let mut survivor: Option<String> = None;
    for round in 0..ROUNDS {
        // Two admins, and no other: the one that survived the round before steps down.
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let (a_token, b_token) = (admin_token(&app, &a).await, admin_token(&app, &b).await);
        if let Some(previous) = survivor.take() {
            let mut conn = app.pool.get().unwrap();
            let id = app.user_row(&previous).id.0;
            Account::change_roles(
                &mut WriteConn::direct(&mut conn),
                id,
                &[],
                &["admin".to_owned()],
                chrono::Utc::now().naive_utc(),
            )
            .unwrap();
        }
        assert_eq!(enabled_admins(&app), [a.clone(), b.clone()]);
        let (a_id, b_id) = (app.user_row(&a).id.0.to_string(), app.user_row(&b).id.0.to_string());
        let (a_way, b_way) = (ways[round % 3], ways[round / 3 % 3]);
        // Even rounds: each steps down itself, so that neither change revokes the other's
        // token, and the one that loses the race is always refused for being the last.
        // Odd rounds: each demotes the other; the loser may also find its token revoked
        // by the winner's change (401), or its admin role gone (403).
        let ((a_target, b_target), mutual) =
            if round % 2 == 0 { ((&a_id, &b_id), false) } else { ((&b_id, &a_id), true) };
        let (a_answer, b_answer) =
            tokio::join!(demote(&app, &a_token, a_target, a_way), demote(&app, &b_token, b_target, b_way));
        let (a_status, b_status) = (a_answer.status(), b_answer.status());
        let context = format!("round {round} ({a_way:?} / {b_way:?}): {a_status} / {b_status}");
        let (winner, loser) = match (a_status.is_success(), b_status.is_success()) {
            (true, false) => (&a, b_answer),
            (false, true) => (&b, a_answer),
            _ => panic!("exactly one must succeed, {context}"),
        };
        let loser_status = loser.status();
        let code = loser.json::<Value>().await.unwrap()["code"].as_str().unwrap().to_owned();
        let refused = (loser_status, code.as_str());
        let allowed = [(StatusCode::CONFLICT, "last_admin")]
            .into_iter()
            .chain(mutual.then_some((StatusCode::UNAUTHORIZED, "invalid_token")))
            .chain(mutual.then_some((StatusCode::FORBIDDEN, "forbidden")))
            .any(|expected| expected == refused);
        assert!(allowed, "{context}: {code}");
        // With the self-demotions, the winner is the one that stepped down.
        let remaining = if mutual {
            winner.clone()
        } else if winner == &a {
            b.clone()
        } else {
            a.clone()
        };
        assert_eq!(enabled_admins(&app), std::slice::from_ref(&remaining), "{context}");
        survivor = Some(remaining);
    }
}

async fn a_forced_logout_revokes_the_session_and_every_access_token(backend: Backend) {
    let app = spawn_app_with(backend, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let admin = admin_token(&app, "root").await;
    let alice = app.signup("alice").await;
    let id = field(&alice["user"], "id").to_owned();
    let response = call(&app, Method::POST, &format!("/admin/users/{id}/logout"), Some(&admin), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_with_bearer("/auth/me", field(&alice, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        app.refresh(field(&alice, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(app.user_row("alice").refresh_token_hash, None);
    assert!(feed_subjects(&app).await.contains(&id));
    // Only a logout: the account itself is as it was.
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

/// The batch insert imports build on: with roles and the disabled flag, in one transaction.
async fn a_batch_of_accounts_is_created_whole_or_not_at_all(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("taken").await;
    let now = chrono::Utc::now().naive_utc();
    let account = |name: &str, roles: &[&str]| {
        let roles = roles.iter().map(|r| (*r).to_owned()).collect();
        NewAccount::new(name.to_owned(), None, "!".to_owned(), roles, now)
    };
    let mut conn = app.pool.get().unwrap();
    let mut disabled = account("carol", &[]);
    disabled.user.disabled = true;
    let batch = [account("alice", &["admin", "staff"]), disabled, account("bob", &[])];
    Account::insert_batch(&mut WriteConn::direct(&mut conn), &batch).unwrap();
    assert_eq!(role_rows(&app, &app.user_row("alice").id.0.to_string()), ["admin", "staff"]);
    assert!(app.user_row("carol").disabled);
    assert!(!app.user_row("bob").disabled);

    // One taken name (whatever its case was) and nothing of the batch is written.
    let batch = [account("dave", &["staff"]), account("taken", &["admin"]), account("erin", &[])];
    let refused = Account::insert_batch(&mut WriteConn::direct(&mut conn), &batch);
    assert!(matches!(refused, Err(DbError::UniqueViolation)), "{:?}", refused.err());
    for name in ["dave", "erin"] {
        assert!(Account::find_by_username(&mut conn, name).unwrap().is_none(), "{name}");
    }
    let taken = app.user_row("taken");
    assert!(role_rows(&app, &taken.id.0.to_string()).is_empty());
}
