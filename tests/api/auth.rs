//! Signup, login, the current user, logout and password change.

use crate::common::*;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

db_tests!(
    signup_returns_the_token_response_and_stores_only_hashes,
    signup_ignores_fields_the_contract_does_not_name,
    usernames_are_unique_case_insensitively,
    concurrent_signups_of_one_name_yield_one_account,
    concurrent_signups_of_many_names_all_succeed,
    signup_validation_failures_are_422,
    login_succeeds_case_insensitively_and_replaces_the_session,
    login_failures_look_the_same_for_unknown_users_and_wrong_passwords,
    signup_and_login_are_rate_limited_per_ip,
    me_returns_the_user_and_needs_a_token,
    logout_with_bearer_revokes_the_refresh_token_and_is_idempotent,
    logout_with_refresh_token_revokes_it,
    logout_without_credentials_is_401,
    password_change_starts_a_new_session,
    password_change_refuses_a_wrong_current_password_or_weak_new_one,
    password_length_counts_the_characters_typed_not_their_nfkc_form,
);

fn assert_token_response(body: &Value, username: &str) {
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_expires_in", "refresh_token", "token_type", "user"]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 2_592_000);
    assert_eq!(field(body, "access_token").split('.').count(), 3);
    assert!(field(body, "refresh_token").starts_with("tgr_"));
    let user = body["user"].as_object().unwrap();
    let user_keys: Vec<&str> = user.keys().map(String::as_str).collect();
    assert_eq!(
        user_keys,
        ["created_at", "email", "email_verified", "id", "mfa_enabled", "roles", "username"]
    );
    assert_eq!(user["username"], username);
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["roles"], json!([]));
    uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    let created = user["created_at"].as_str().unwrap();
    chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%SZ").unwrap();
}

async fn signup_returns_the_token_response_and_stores_only_hashes(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/auth/signup",
            &json!({ "username": "Alice", "password": PASSWORD, "email": "Alice@Example.COM" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_token_response(&body, "alice");
    assert_eq!(body["user"]["email"], "alice@example.com");

    let row = app.user_row("alice");
    assert_eq!(row.id.0.to_string(), body["user"]["id"]);
    assert!(row.password_hash.starts_with("$argon2id$v=19$"));
    assert!(!row.password_hash.contains(PASSWORD));
    assert_eq!(row.refresh_token_hash.as_deref(), Some(sha256_hex(field(&body, "refresh_token")).as_str()));
    let stored = format!("{} {:?} {}", row.username, row.email, row.password_hash);
    assert!(!stored.contains(field(&body, "refresh_token")));
}

async fn signup_ignores_fields_the_contract_does_not_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/auth/signup",
            &json!({
                "username": "mallory", "password": PASSWORD,
                "id": "00000000-0000-0000-0000-000000000001",
                "password_hash": "$argon2id$forged", "refresh_token_hash": "00",
                "created_at": "2000-01-01T00:00:00Z", "is_admin": true
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_ne!(body["user"]["id"], "00000000-0000-0000-0000-000000000001");
    assert!(body["user"].get("is_admin").is_none());
    let row = app.user_row("mallory");
    assert!(row.password_hash.starts_with("$argon2id$v=19$"));
    assert_ne!(row.created_at.and_utc().timestamp(), 946_684_800);
    assert_eq!(app.login("mallory", PASSWORD).await.status(), StatusCode::OK);
}

async fn usernames_are_unique_case_insensitively(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("bob").await;
    for taken in ["bob", "BOB", "Bob"] {
        let response = app.signup_response(taken, "another password").await;
        assert_error(response, StatusCode::CONFLICT, "username_taken").await;
    }
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::OK);
}

async fn concurrent_signups_of_one_name_yield_one_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let attempts = (0..10).map(|i| app.signup_response(if i % 2 == 0 { "carol" } else { "CAROL" }, PASSWORD));
    let statuses: Vec<StatusCode> = join_all(attempts).await.into_iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 9, "{statuses:?}");
}

async fn concurrent_signups_of_many_names_all_succeed(backend: Backend) {
    let app = spawn_app(backend).await;
    let names: Vec<String> = (0..20).map(|i| format!("user{i}")).collect();
    let responses = join_all(names.iter().map(|n| app.signup_response(n, PASSWORD))).await;
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.text().await);
    }
}

async fn signup_validation_failures_are_422(backend: Backend) {
    let app = spawn_app(backend).await;
    // Django's rule: 1 to 150 of [A-Za-z0-9@.+_-].
    let long_name = "a".repeat(151);
    let long_password = "p".repeat(1025);
    let cases = [
        json!({ "username": "", "password": PASSWORD }),
        json!({ "username": long_name, "password": PASSWORD }),
        json!({ "username": "bad name", "password": PASSWORD }),
        json!({ "username": "bad'--", "password": PASSWORD }),
        json!({ "username": "ålice", "password": PASSWORD }),
        json!({ "username": "a/b", "password": PASSWORD }),
        json!({ "username": "dave", "password": "short" }),
        json!({ "username": "dave", "password": long_password }),
        json!({ "username": "dave", "password": PASSWORD, "email": "not-an-email" }),
        json!({ "username": "dave", "password": PASSWORD, "email": "" }),
        json!({ "username": "dave" }),
        json!({ "password": PASSWORD }),
        json!({ "username": 42, "password": PASSWORD }),
        json!([]),
    ];
    for body in cases {
        let response = app.post_json("/auth/signup", &body).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    // 1024 characters, each several bytes, is within the limit.
    let response = app.signup_response("erin", &"é".repeat(1024)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.login("erin", &"é".repeat(1024)).await.status(), StatusCode::OK);
    // Every name Django's default rule allows signs up, stored lower-case.
    for name in ["a".to_owned(), "Bob+Tag@Example.com".to_owned(), "z".repeat(150)] {
        let body: Value = app.signup_response(&name, PASSWORD).await.json().await.unwrap();
        assert_eq!(body["user"]["username"], name.to_ascii_lowercase(), "{name}");
        assert_eq!(app.login(&name, PASSWORD).await.status(), StatusCode::OK, "{name}");
    }
}

async fn login_succeeds_case_insensitively_and_replaces_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("frank").await;
    let response = app.login("FRANK", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let login: Value = response.json().await.unwrap();
    assert_token_response(&login, "frank");
    assert_eq!(login["user"]["id"], signup["user"]["id"]);
    // One session per user: the signup's refresh token is gone.
    assert_error(
        app.refresh(field(&signup, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(app.refresh(field(&login, "refresh_token")).await.status(), StatusCode::OK);
    // NFKC: the fullwidth spelling of a password is the same password.
    app.signup_response("grace", "ｐａｓｓｗｏｒｄ１２３").await;
    assert_eq!(app.login("grace", "password123").await.status(), StatusCode::OK);
}

async fn login_failures_look_the_same_for_unknown_users_and_wrong_passwords(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("heidi").await;
    let wrong_password = assert_error(
        app.login("heidi", "wrong password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown_user =
        assert_error(app.login("nobody", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials")
            .await;
    let impossible_user =
        assert_error(app.login("x y", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(wrong_password, unknown_user);
    assert_eq!(wrong_password, impossible_user);
    let malformed = app.post_json("/auth/login", &json!({ "username": "heidi" })).await;
    assert_error(malformed, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // The failed attempts did not disturb the real account.
    assert_eq!(app.login("heidi", PASSWORD).await.status(), StatusCode::OK);
}

async fn signup_and_login_are_rate_limited_per_ip(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_RATE_LIMIT_PER_MIN", "3")]).await;
    app.signup("ivan").await;
    assert_eq!(app.login("ivan", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("ivan", "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    let limited = app.login("ivan", PASSWORD).await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let signup = app.signup_response("judy", PASSWORD).await;
    assert_error(signup, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Without TRUST_PROXY_HEADERS a forged client address does not reset the limit.
    let forged = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("forwarded", "for=203.0.113.9")
        .json(&json!({ "username": "ivan", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_error(forged, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn me_returns_the_user_and_needs_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("kim").await;
    let response = app.get_with_bearer("/auth/me", field(&signup, "access_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me, signup["user"]);

    let missing = app.get("/auth/me").await;
    assert_eq!(missing.headers()["www-authenticate"], r#"Bearer realm="tollgate""#);
    assert_error(missing, StatusCode::UNAUTHORIZED, "missing_token").await;
    let invalid = app.get_with_bearer("/auth/me", "not.a.token").await;
    assert!(invalid.headers()["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_token""#));
    assert_error(invalid, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn logout_with_bearer_revokes_the_refresh_token_and_is_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("leo").await;
    let access = field(&signup, "access_token");
    let logout = || app.client.post(app.url("/auth/logout")).bearer_auth(access).send();
    assert_eq!(logout().await.unwrap().status(), StatusCode::NO_CONTENT);
    // The token died with the session, so a second logout is refused, never a 500.
    assert_error(logout().await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(app.user_row("leo").refresh_token_hash, None);
    assert_error(
        app.refresh(field(&signup, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    // tollgate itself rejects access tokens issued before the logout.
    assert_error(app.get_with_bearer("/auth/me", access).await, StatusCode::UNAUTHORIZED, "invalid_token")
        .await;
    // A login right after, even within the same second, gets a token that works.
    let login: serde_json::Value = app.login("leo", PASSWORD).await.json().await.unwrap();
    assert_eq!(app.get_with_bearer("/auth/me", field(&login, "access_token")).await.status(), StatusCode::OK);
    let forged =
        app.client.post(app.url("/auth/logout")).bearer_auth("forged.access.token").send().await.unwrap();
    assert_error(forged, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn logout_with_refresh_token_revokes_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("mia").await;
    let body = json!({ "refresh_token": field(&signup, "refresh_token") });
    assert_eq!(app.post_json("/auth/logout", &body).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.user_row("mia").refresh_token_hash, None);
    assert_error(
        app.post_json("/auth/logout", &body).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    assert_error(
        app.refresh(field(&signup, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    let not_json = app.client.post(app.url("/auth/logout")).body(body.to_string()).send().await.unwrap();
    assert_error(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let malformed = app.post_raw_json("/auth/logout", "{\"refresh_token\":").await;
    assert_error(malformed, StatusCode::BAD_REQUEST, "invalid_json").await;
}

async fn logout_without_credentials_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.client.post(app.url("/auth/logout")).send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn password_change_starts_a_new_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("nina").await;
    let old_hash = app.user_row("nina").password_hash;
    let response = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(field(&signup, "access_token"))
        .json(&json!({ "current_password": PASSWORD, "new_password": "a brand new password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let changed: Value = response.json().await.unwrap();
    assert_token_response(&changed, "nina");
    let row = app.user_row("nina");
    assert_ne!(row.password_hash, old_hash);
    assert_eq!(row.refresh_token_hash, Some(sha256_hex(field(&changed, "refresh_token"))));
    assert_error(
        app.refresh(field(&signup, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    assert_error(app.login("nina", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(app.login("nina", "a brand new password").await.status(), StatusCode::OK);
    // The access token from before the change is revoked; the one it returned works.
    let old = app.get_with_bearer("/auth/me", field(&signup, "access_token")).await;
    assert_error(old, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(
        app.get_with_bearer("/auth/me", field(&changed, "access_token")).await.status(),
        StatusCode::OK
    );
}

async fn password_change_refuses_a_wrong_current_password_or_weak_new_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("oscar").await;
    let access = field(&signup, "access_token");
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/auth/password"))
            .bearer_auth(access)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    assert_error(
        change("wrong password", "a brand new password").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_error(
        change(PASSWORD, "short").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let anonymous = app
        .post_json(
            "/auth/password",
            &json!({ "current_password": PASSWORD, "new_password": "a brand new password" }),
        )
        .await;
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "missing_token").await;
    // Nothing changed: the old password and session still work.
    assert_eq!(app.refresh(field(&signup, "refresh_token")).await.status(), StatusCode::OK);
    assert_eq!(app.login("oscar", PASSWORD).await.status(), StatusCode::OK);
}

/// One typed character that NFKC makes 18 (U+FDFA), and four that it makes eight (a
/// cedilla is a space and a combining cedilla): short as typed, however long normalised.
const SHORT_AS_TYPED: [&str; 2] = ["\u{FDFA}", "¸¸¸¸"];

async fn password_length_counts_the_characters_typed_not_their_nfkc_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let signup = app.signup("oscar").await;
    let target = format!("/admin/users/{}", field(&signup["user"], "id"));
    for short in SHORT_AS_TYPED {
        let refused = [
            app.signup_response("mallory", short).await,
            app.client
                .post(app.url("/auth/password"))
                .bearer_auth(field(&signup, "access_token"))
                .json(&json!({ "current_password": PASSWORD, "new_password": short }))
                .send()
                .await
                .unwrap(),
            app.client
                .post(app.url("/admin/users"))
                .bearer_auth(&admin)
                .json(&json!({ "username": "mallory", "password": short }))
                .send()
                .await
                .unwrap(),
            app.client
                .patch(app.url(&target))
                .bearer_auth(&admin)
                .json(&json!({ "password": short }))
                .send()
                .await
                .unwrap(),
        ];
        for response in refused {
            let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
            assert!(field(&error, "error").contains("at least 8 characters"), "{short:?}: {error}");
        }
    }
    // Nothing was created or changed.
    assert_eq!(app.login("mallory", "\u{FDFA}").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("oscar", PASSWORD).await.status(), StatusCode::OK);
    // Eight typed characters pass, however long NFKC makes them (144 here), and log in.
    let eight = "\u{FDFA}".repeat(8);
    assert_eq!(app.signup_response("trent", &eight).await.status(), StatusCode::CREATED);
    assert_eq!(app.login("trent", &eight).await.status(), StatusCode::OK);
}
