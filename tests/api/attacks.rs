//! Attacks on the HTTP API that are not forged access tokens (those are in tokens.rs):
//! SQL injection in every field, user enumeration, mass assignment, look-alike usernames,
//! refresh-token replays, oversized and ill-typed input. Each test asserts the exact
//! rejection and then that the genuine account still works and the database is intact.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use crate::common::*;
use diesel::prelude::*;
use futures_util::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tollgate::db::models::User;
use tollgate::db::schema::users;

db_tests!(
    sql_injection_in_signup_fields_is_inert,
    sql_injection_in_login_fields_is_inert,
    sql_injection_in_refresh_tokens_is_inert,
    sql_injection_in_password_change_fields_is_inert,
    login_failures_are_indistinguishable,
    login_timing_does_not_reveal_unknown_users,
    a_taken_username_reveals_nothing_about_its_owner,
    password_change_and_refresh_ignore_extra_fields,
    case_variants_cannot_take_over_an_account,
    unicode_look_alike_usernames_are_refused,
    a_logged_out_session_cannot_be_revived_by_replay,
    concurrent_replays_within_grace_share_one_successor,
    oversized_inputs_are_refused_and_the_server_keeps_serving,
    json_type_confusion_is_422,
);

/// Classic SQL injection payloads, each also tried with a NUL byte somewhere.
const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "' OR '1'='1' --",
    "' OR 1=1; --",
    "admin'--",
    "admin' /*",
    "') OR ('1'='1",
    "\"; DROP TABLE users; --",
    "'; DROP TABLE users; --",
    "' UNION SELECT id, username, password_hash, NULL FROM users --",
    "%' OR 1=1 --",
    "\\'",
    "\\'; DROP TABLE users; --",
    "1; SELECT pg_sleep(3); --",
    "admin\0",
    "\0' OR '1'='1",
];

/// A payload usable where the contract needs a password (at least 8 characters).
fn as_password(payload: &str) -> String {
    if payload.chars().count() >= 8 { payload.to_owned() } else { format!("{payload} padding") }
}

fn user_count(app: &TestApp) -> i64 {
    let mut conn = app.pool.get().unwrap();
    users::table.count().get_result(&mut **conn).unwrap()
}

/// (id, username, email, password_hash) of every row, by username.
type Account = (String, String, Option<String>, String);

fn accounts(app: &TestApp) -> Vec<Account> {
    let mut conn = app.pool.get().unwrap();
    let rows: Vec<User> =
        users::table.select(User::as_select()).order(users::username).load(&mut **conn).unwrap();
    rows.into_iter().map(|u| (u.id.0.to_string(), u.username, u.email, u.password_hash)).collect()
}

async fn post_with_bearer(app: &TestApp, path: &str, token: &str, body: &Value) -> Response {
    app.client.post(app.url(path)).bearer_auth(token).json(body).send().await.unwrap()
}

async fn change_password(app: &TestApp, access: &str, current: &str, new: &str) -> Response {
    post_with_bearer(
        app,
        "/auth/password",
        access,
        &json!({ "current_password": current, "new_password": new }),
    )
    .await
}

async fn logout_with_refresh(app: &TestApp, refresh_token: &str) -> Response {
    app.post_json("/auth/logout", &json!({ "refresh_token": refresh_token })).await
}

async fn send_raw_password_change(app: &TestApp, access: &str, body: impl Into<reqwest::Body>) -> Response {
    let request = app.client.post(app.url("/auth/password")).bearer_auth(access);
    request.header("content-type", "application/json").body(body).send().await.unwrap()
}

async fn assert_invalid_credentials(response: Response) {
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

async fn assert_invalid_refresh(response: Response) {
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

async fn assert_validation_failed(response: Response) {
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

async fn assert_alive(app: &TestApp) {
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "status": "ok" }));
}

/// The genuine account's whole session works: login, `/auth/me`, refresh. Returns the
/// refreshed token response.
async fn assert_session_works(app: &TestApp, username: &str, password: &str) -> Value {
    let response = app.login(username, password).await;
    assert_eq!(response.status(), StatusCode::OK, "login as {username}");
    let login: Value = response.json().await.unwrap();
    assert_eq!(login["user"]["username"], username.to_ascii_lowercase());
    let me = app.get_with_bearer("/auth/me", field(&login, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me, login["user"]);
    let refreshed = app.refresh(field(&login, "refresh_token")).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(refreshed["user"], login["user"]);
    refreshed
}

async fn sql_injection_in_signup_fields_is_inert(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("admin").await;
    let admin_before = accounts(&app);

    // Usernames: every payload has a character outside [A-Za-z0-9_.-].
    for payload in INJECTIONS {
        let response = app.signup_response(payload, PASSWORD).await;
        assert_validation_failed(response).await;
        let response = app.signup_response(&format!("x{payload}x"), PASSWORD).await;
        assert_validation_failed(response).await;
    }
    assert_eq!(accounts(&app), admin_before);

    // Passwords: SQL in a password is just a password, hashed and never interpreted.
    let mut expected = 1;
    for (i, payload) in INJECTIONS.iter().enumerate() {
        let username = format!("pw{i}");
        let password = as_password(payload);
        let response = app.signup_response(&username, &password).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{payload:?}");
        expected += 1;
        let signup: Value = response.json().await.unwrap();
        let login = app.login(&username, &password).await;
        assert_eq!(login.status(), StatusCode::OK, "{payload:?}");
        let login: Value = login.json().await.unwrap();
        assert_eq!(login["user"]["id"], signup["user"]["id"]);
        assert_invalid_credentials(app.login(&username, PASSWORD).await).await;
        let row = app.user_row(&username);
        assert!(row.password_hash.starts_with("$argon2id$v=19$"));
        assert!(!row.password_hash.contains(&password));
    }

    // Emails: rejected when not an address, else stored verbatim (lower-cased).
    let emails: &[(&str, bool)] = &[
        ("' OR '1'='1", false),
        ("admin'--@example.com", true),
        ("x'OR'1'='1@example.com", true),
        ("\\'@example.com", true),
        ("O'Reilly@Example.com", true),
        ("x@example.com'; DROP TABLE users; --", false),
        ("\"; DROP TABLE users; --@example.com", false),
        ("' UNION SELECT password_hash FROM users --@example.com", false),
        ("%' OR 1=1 --@example.com", false),
        ("x@example.com' --", false),
        ("nul\0@example.com", false),
        ("x@example.com\0", false),
    ];
    for (i, (email, accepted)) in emails.iter().enumerate() {
        let username = format!("mail{i}");
        let response = app
            .post_json("/auth/signup", &json!({ "username": username, "password": PASSWORD, "email": email }))
            .await;
        if *accepted {
            assert_eq!(response.status(), StatusCode::CREATED, "{email:?}");
            expected += 1;
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["user"]["email"], email.to_lowercase());
            assert_eq!(app.user_row(&username).email, Some(email.to_lowercase()));
        } else {
            assert_validation_failed(response).await;
        }
    }

    assert_eq!(user_count(&app), expected);
    let after = accounts(&app);
    assert!(after.contains(&admin_before[0]), "admin's row changed");
    assert_session_works(&app, "admin", PASSWORD).await;
}

async fn sql_injection_in_login_fields_is_inert(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("admin").await;
    app.signup("bob").await;
    let before = accounts(&app);

    // Usernames, with the real password and with the payload itself as password. (NUL
    // bytes in a login username: see nul_byte_in_a_login_username_is_401.)
    for payload in INJECTIONS.iter().filter(|p| !p.contains('\0')) {
        assert_invalid_credentials(app.login(payload, PASSWORD).await).await;
        assert_invalid_credentials(app.login(payload, payload).await).await;
        let padded = as_password(payload);
        assert_invalid_credentials(app.login(&padded, PASSWORD).await).await;
    }
    // LIKE wildcards are not wildcards.
    for pattern in ["adm_n", "adm%", "%", "a%", "_dmin", "%dmin%", "*"] {
        assert_invalid_credentials(app.login(pattern, PASSWORD).await).await;
    }

    // Passwords against a real account. At most a few failures in a row, so that a
    // per-username lockout would not be what answers.
    for (i, payload) in INJECTIONS.iter().enumerate() {
        assert_invalid_credentials(app.login("admin", payload).await).await;
        assert_invalid_credentials(app.login("admin", &as_password(payload)).await).await;
        if i % 2 == 1 {
            assert_eq!(app.login("admin", PASSWORD).await.status(), StatusCode::OK);
        }
    }

    assert_eq!(user_count(&app), 2);
    assert_eq!(accounts(&app), before);
    assert_session_works(&app, "admin", PASSWORD).await;
    assert_session_works(&app, "bob", PASSWORD).await;
}

db_tests!(nul_byte_in_a_login_username_is_401);

async fn nul_byte_in_a_login_username_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("admin").await;
    let before = accounts(&app);
    for username in ["admin\0", "\0admin", "adm\0in", "\0' OR '1'='1", "admin\0' --", "\0\0\0"] {
        for password in [PASSWORD, "wrong password"] {
            let response = app.login(username, password).await;
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{username:?}: {body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["code"], "invalid_credentials", "{username:?}");
        }
        assert_alive(&app).await;
    }
    assert_eq!(accounts(&app), before);
    assert_session_works(&app, "admin", PASSWORD).await;
}

async fn sql_injection_in_refresh_tokens_is_inert(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let signup = app.signup("admin").await;
    let real = field(&signup, "refresh_token");
    let before = accounts(&app);

    let mut payloads: Vec<String> = INJECTIONS.iter().map(|p| (*p).to_owned()).collect();
    // The same payloads in the exact shape of a refresh token (tgr_ + 43 characters).
    for payload in INJECTIONS {
        let mut shaped = format!("tgr_{payload}");
        shaped.truncate(47);
        while shaped.len() < 47 {
            shaped.push('A');
        }
        payloads.push(shaped);
    }
    payloads.push(format!("{real}' OR '1'='1"));
    payloads.push(format!("{real}\0"));
    for payload in &payloads {
        assert_invalid_refresh(app.refresh(payload).await).await;
        assert_invalid_refresh(logout_with_refresh(&app, payload).await).await;
    }

    assert_eq!(user_count(&app), 1);
    assert_eq!(accounts(&app), before);
    // Nothing was revoked: the genuine token still refreshes.
    assert_eq!(app.user_row("admin").refresh_token_hash, Some(sha256_hex(real)));
    let refreshed = app.refresh(real).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(
        app.get_with_bearer("/auth/me", field(&refreshed, "access_token")).await.status(),
        StatusCode::OK
    );
    assert_session_works(&app, "admin", PASSWORD).await;
}

async fn sql_injection_in_password_change_fields_is_inert(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("admin").await;
    app.signup("bob").await;
    let bob_before = app.user_row("bob").password_hash;
    let mut access = field(&signup, "access_token").to_owned();
    let mut current = PASSWORD.to_owned();

    for payload in INJECTIONS {
        // As the current password: simply wrong.
        assert_invalid_credentials(change_password(&app, &access, payload, "irrelevant new pw").await).await;
        // As the new password: a valid password like any other.
        let new = as_password(payload);
        let response = change_password(&app, &access, &current, &new).await;
        assert_eq!(response.status(), StatusCode::OK, "{payload:?}");
        let changed: Value = response.json().await.unwrap();
        assert_eq!(changed["user"]["username"], "admin");
        assert_invalid_credentials(app.login("admin", &current).await).await;
        // Logging in with the new password works (and keeps failed logins from piling up).
        let login = app.login("admin", &new).await;
        assert_eq!(login.status(), StatusCode::OK, "{payload:?}");
        let login: Value = login.json().await.unwrap();
        assert_eq!(login["user"], changed["user"]);
        access = field(&login, "access_token").to_owned();
        current = new;
        let row = app.user_row("admin");
        assert!(!row.password_hash.contains(&current));
    }
    // Too short stays too short, whatever it contains.
    assert_validation_failed(change_password(&app, &access, &current, "\\'").await).await;
    assert_validation_failed(change_password(&app, &access, &current, "' OR 1").await).await;

    assert_eq!(user_count(&app), 2);
    assert_eq!(app.user_row("bob").password_hash, bob_before);
    assert_session_works(&app, "bob", PASSWORD).await;
    assert_invalid_credentials(app.login("admin", PASSWORD).await).await;
    assert_session_works(&app, "admin", &current).await;
}

/// What a client can observe of a failed login, apart from the `date` header's value.
#[derive(Debug, PartialEq, Eq)]
struct FailureShape {
    status: StatusCode,
    header_names: BTreeSet<String>,
    headers: BTreeMap<String, Vec<Vec<u8>>>,
    body: String,
}

async fn failure_shape(response: Response) -> FailureShape {
    let status = response.status();
    let header_names = response.headers().keys().map(|k| k.as_str().to_owned()).collect();
    let mut headers: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    // Only their presence can match: these differ on every response.
    for (name, value) in response.headers() {
        if name != "date" && name != "x-request-id" {
            headers.entry(name.as_str().to_owned()).or_default().push(value.as_bytes().to_vec());
        }
    }
    let body = response.text().await.unwrap();
    FailureShape { status, header_names, headers, body }
}

async fn login_failures_are_indistinguishable(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("heidi").await;
    let long = "h".repeat(40);
    let cases: [(&str, &str); 7] = [
        ("heidi", "wrong password"),
        ("HEIDI", "wrong password"),
        ("nobody", PASSWORD),
        ("nobody", "wrong password"),
        ("x", PASSWORD),
        ("bad name!", PASSWORD),
        (&long, PASSWORD),
    ];
    let mut shapes = Vec::new();
    for (username, password) in cases {
        shapes.push(failure_shape(app.login(username, password).await).await);
    }
    let first = &shapes[0];
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert!(first.header_names.contains("date"), "{first:?}");
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["code"], "invalid_credentials");
    for (case, shape) in cases.iter().zip(&shapes).skip(1) {
        assert_eq!(shape, first, "{case:?}");
    }
    assert_session_works(&app, "heidi", PASSWORD).await;
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn timed_login(app: &TestApp, username: &str, password: &str) -> Duration {
    let started = Instant::now();
    let response = app.login(username, password).await;
    let elapsed = started.elapsed();
    assert_invalid_credentials(response).await;
    elapsed
}

/// Coarse on purpose: without the dummy hash an unknown user answers about 100 times
/// faster than a wrong password; with it, both cost one argon2 verification. Measurements
/// are interleaved so that noise from other processes hits both kinds alike.
async fn login_timing_does_not_reveal_unknown_users(backend: Backend) {
    let app = spawn_app_with(backend, &[("ARGON2_MEMORY_KIB", "19456"), ("ARGON2_ITERATIONS", "2")]).await;
    // Several accounts, so that no username collects enough failures to be locked.
    const ACCOUNTS: usize = 5;
    const ROUNDS: usize = 15;
    for i in 0..ACCOUNTS {
        app.signup(&format!("timed{i}")).await;
    }
    // Warm-up: connections, caches, the blocking pool.
    timed_login(&app, "warmup-ghost", "wrong password").await;
    timed_login(&app, "timed0", "wrong password").await;

    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for round in 0..ROUNDS {
        let ghost = format!("ghost{round}");
        let victim = format!("timed{}", round % ACCOUNTS);
        if round % 2 == 0 {
            unknown.push(timed_login(&app, &ghost, "wrong password").await);
            wrong.push(timed_login(&app, &victim, "wrong password").await);
        } else {
            wrong.push(timed_login(&app, &victim, "wrong password").await);
            unknown.push(timed_login(&app, &ghost, "wrong password").await);
        }
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    eprintln!("median login time: unknown user {unknown:?}, wrong password {wrong:?}");
    // Without the dummy hash an unknown user would answer ~100 times faster; a factor of 4
    // leaves room for a loaded machine.
    assert!(
        unknown * 4 >= wrong,
        "an unknown user answers much faster ({unknown:?}) than a wrong password ({wrong:?})"
    );
    assert_session_works(&app, "timed0", PASSWORD).await;
}

async fn a_taken_username_reveals_nothing_about_its_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app
        .post_json(
            "/auth/signup",
            &json!({ "username": "victim", "password": PASSWORD, "email": "Victim@Example.com" }),
        )
        .await;
    assert_eq!(victim.status(), StatusCode::CREATED);
    let victim: Value = victim.json().await.unwrap();
    app.signup("other").await;
    let row_before = app.user_row("victim").refresh_token_hash;

    let mut bodies = HashSet::new();
    for (name, email) in [("victim", None), ("Victim", Some("attacker@example.com")), ("other", None)] {
        let mut body = json!({ "username": name, "password": "attacker password" });
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        let response = app.post_json("/auth/signup", &body).await;
        let headers = format!("{:?}", response.headers()).to_lowercase();
        let error = assert_error(response, StatusCode::CONFLICT, "username_taken").await;
        let text = format!("{error} {headers}").to_lowercase();
        for secret in [
            field(&victim["user"], "id"),
            field(&victim["user"], "created_at"),
            "victim@example.com",
            "@example",
            "victim",
            "other",
        ] {
            assert!(!text.contains(&secret.to_lowercase()), "{secret}: {text}");
        }
        bodies.insert(error.to_string());
    }
    // One body for every taken name: nothing in it depends on whose name it is.
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(user_count(&app), 2);
    // The victim's session was not touched.
    assert_eq!(app.user_row("victim").refresh_token_hash, row_before);
    assert_eq!(app.refresh(field(&victim, "refresh_token")).await.status(), StatusCode::OK);
    assert_session_works(&app, "victim", PASSWORD).await;
}

async fn password_change_and_refresh_ignore_extra_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let alice_id = field(&alice["user"], "id").to_owned();
    let bob_id = field(&bob["user"], "id").to_owned();
    let bob_before = accounts(&app).into_iter().find(|a| a.1 == "bob").unwrap();
    let bob_refresh_before = app.user_row("bob").refresh_token_hash;
    let forged_hash = "$argon2id$v=19$m=1024,t=1,p=1$Zm9yZ2Vkc2FsdA$Zm9yZ2VkaGFzaGZvcmdlZGhhc2g";

    let response = post_with_bearer(
        &app,
        "/auth/password",
        field(&alice, "access_token"),
        &json!({
            "current_password": PASSWORD,
            "new_password": "alice's new password",
            "username": "bob",
            "id": bob_id,
            "user_id": bob_id,
            "sub": bob_id,
            "password_hash": forged_hash,
            "email": "evil@example.com",
            "refresh_token_hash": sha256_hex("x"),
            "is_admin": true,
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["user"], alice["user"]);
    let row = app.user_row("alice");
    assert_eq!(row.id.0.to_string(), alice_id);
    assert_eq!(row.email, None);
    assert_ne!(row.password_hash, forged_hash);
    assert!(row.password_hash.starts_with("$argon2id$v=19$"));
    assert_eq!(row.refresh_token_hash, Some(sha256_hex(field(&changed, "refresh_token"))));
    // Without new_password the forged hash is no substitute.
    let response = post_with_bearer(
        &app,
        "/auth/password",
        field(&changed, "access_token"),
        &json!({ "current_password": "alice's new password", "password_hash": forged_hash }),
    )
    .await;
    assert_validation_failed(response).await;

    // A refresh token names its owner; a user_id beside it changes nothing.
    let response = app
        .post_json(
            "/auth/refresh",
            &json!({
                "refresh_token": field(&changed, "refresh_token"),
                "user_id": bob_id,
                "sub": bob_id,
                "username": "bob",
                "id": bob_id,
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: Value = response.json().await.unwrap();
    assert_eq!(refreshed["user"]["id"], alice_id);
    let me = app.get_with_bearer("/auth/me", field(&refreshed, "access_token")).await;
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], alice_id);
    assert_eq!(me["username"], "alice");

    let bob_after = accounts(&app).into_iter().find(|a| a.1 == "bob").unwrap();
    assert_eq!(bob_after, bob_before);
    assert_eq!(app.user_row("bob").refresh_token_hash, bob_refresh_before);
    assert_eq!(user_count(&app), 2);
    assert_invalid_credentials(app.login("alice", PASSWORD).await).await;
    assert_session_works(&app, "alice", "alice's new password").await;
    assert_session_works(&app, "bob", PASSWORD).await;
}

async fn case_variants_cannot_take_over_an_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.signup("Victim").await;
    assert_eq!(victim["user"]["username"], "victim");
    let before = accounts(&app);
    let attacker = "the attacker's password";
    for variant in ["victim", "VICTIM", "vIcTiM", "Victim"] {
        let response = app.signup_response(variant, attacker).await;
        assert_error(response, StatusCode::CONFLICT, "username_taken").await;
    }
    for variant in ["VICTIM", "victim", "vIcTiM"] {
        assert_invalid_credentials(app.login(variant, attacker).await).await;
    }
    assert_eq!(user_count(&app), 1);
    assert_eq!(accounts(&app), before, "the victim's row changed");
    assert_eq!(app.refresh(field(&victim, "refresh_token")).await.status(), StatusCode::OK);
    assert_session_works(&app, "VICTIM", PASSWORD).await;
    assert_session_works(&app, "Victim", PASSWORD).await;
}

async fn unicode_look_alike_usernames_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("admin").await;
    app.signup("kate").await;
    let before = accounts(&app);
    let look_alikes = [
        "\u{0430}dmin",                             // Cyrillic а
        "\u{FF41}dmin",                             // fullwidth ａ
        "\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}", // ａｄｍｉｎ
        "admin\u{200B}",                            // zero-width space
        "\u{200B}admin",
        "ad\u{200D}min", // zero-width joiner
        "\u{00E4}dmin",  // ä
        "a\u{0308}dmin", // a + combining diaeresis
        "adm\u{0131}n",  // Turkish dotless ı
        "ADM\u{0130}N",  // Turkish dotted İ
        "\u{212A}ate",   // Kelvin sign, lower-cases to k
        "\u{212A}ATE",
        "admin\u{00A0}", // no-break space
        "\u{1D41A}dmin", // mathematical bold a
        "admin\u{FE0F}", // variation selector
    ];
    for name in look_alikes {
        let response = app.signup_response(name, "the attacker's password").await;
        assert_validation_failed(response).await;
        assert_invalid_credentials(app.login(name, PASSWORD).await).await;
    }
    assert_eq!(user_count(&app), 2);
    assert_eq!(accounts(&app), before);
    assert_session_works(&app, "admin", PASSWORD).await;
    assert_session_works(&app, "kate", PASSWORD).await;
}

async fn a_logged_out_session_cannot_be_revived_by_replay(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let first = field(&signup, "refresh_token").to_owned();
    let rotated = app.refresh(&first).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    let second = field(&rotated, "refresh_token").to_owned();
    let access = field(&rotated, "access_token").to_owned();

    let logout = app.client.post(app.url("/auth/logout")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    // The live token, and the rotated one still inside its grace window: both dead.
    for _ in 0..2 {
        assert_invalid_refresh(app.refresh(&second).await).await;
        assert_invalid_refresh(app.refresh(&first).await).await;
        assert_invalid_refresh(logout_with_refresh(&app, &second).await).await;
        assert_invalid_refresh(logout_with_refresh(&app, &first).await).await;
    }
    let row = app.user_row("alice");
    assert_eq!(row.refresh_token_hash, None);
    assert_eq!(row.previous_refresh_token_hash, None);

    // A new login starts a new session that the old tokens cannot touch.
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let login: Value = login.json().await.unwrap();
    let fresh = field(&login, "refresh_token");
    assert_invalid_refresh(app.refresh(&first).await).await;
    assert_invalid_refresh(app.refresh(&second).await).await;
    assert_eq!(app.user_row("alice").refresh_token_hash, Some(sha256_hex(fresh)));
    let next = app.refresh(fresh).await;
    assert_eq!(next.status(), StatusCode::OK);
    let next: Value = next.json().await.unwrap();
    assert_eq!(app.get_with_bearer("/auth/me", field(&next, "access_token")).await.status(), StatusCode::OK);
}

async fn concurrent_replays_within_grace_share_one_successor(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("bob").await;
    let first = field(&signup, "refresh_token").to_owned();
    let rotated = app.refresh(&first).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    let successor = field(&rotated, "refresh_token").to_owned();

    let responses = join_all((0..10).map(|_| app.refresh(&first))).await;
    let mut successors = HashSet::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"], signup["user"]);
        successors.insert(field(&body, "refresh_token").to_owned());
    }
    assert_eq!(successors, HashSet::from([successor.clone()]));
    let row = app.user_row("bob");
    assert_eq!(row.refresh_token_hash, Some(sha256_hex(&successor)));
    assert_eq!(row.previous_refresh_token_hash, Some(sha256_hex(&first)));
    // Not revoked: the successor is a normal live token.
    let next = app.refresh(&successor).await;
    assert_eq!(next.status(), StatusCode::OK);
    let next: Value = next.json().await.unwrap();
    assert_ne!(next["refresh_token"], successor.as_str());
    assert_session_works(&app, "bob", PASSWORD).await;
}

/// 400 `invalid_json` or 422 `validation_failed`: either is a correct answer to JSON too
/// deep to read.
async fn assert_unreadable(response: Response) {
    let status = response.status();
    let code = if status == StatusCode::BAD_REQUEST { "invalid_json" } else { "validation_failed" };
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_error(response, status, code).await;
}

async fn oversized_inputs_are_refused_and_the_server_keeps_serving(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let access = field(&signup, "access_token").to_owned();

    let huge_name = "u".repeat(10 * 1024);
    assert_validation_failed(app.signup_response(&huge_name, PASSWORD).await).await;
    assert_invalid_credentials(app.login(&huge_name, PASSWORD).await).await;
    assert_alive(&app).await;

    let huge_password = "p".repeat(5000);
    assert_validation_failed(app.signup_response("bob", &huge_password).await).await;
    assert_invalid_credentials(app.login("alice", &huge_password).await).await;
    assert_validation_failed(change_password(&app, &access, PASSWORD, &huge_password).await).await;
    assert_invalid_credentials(change_password(&app, &access, &huge_password, "a new password").await).await;
    assert_alive(&app).await;

    // Syntactically an address (labels under 63 characters), only too long.
    let long_email =
        format!("{}@{}{}.com", "e".repeat(60), format!("{}.", "d".repeat(49)).repeat(4), "d".repeat(35));
    assert_eq!(long_email.chars().count(), 300);
    let response = app
        .post_json("/auth/signup", &json!({ "username": "carol", "password": PASSWORD, "email": long_email }))
        .await;
    assert_validation_failed(response).await;
    assert_alive(&app).await;

    let huge_token = format!("tgr_{}", "A".repeat(60 * 1024));
    assert_invalid_refresh(app.refresh(&huge_token).await).await;
    assert_invalid_refresh(logout_with_refresh(&app, &huge_token).await).await;
    assert_alive(&app).await;

    // Authorization headers of 16 KiB, and of 40 KiB (past the HTTP parser's head limit).
    for size in [16 * 1024, 40 * 1024] {
        let huge_bearer = format!("Bearer {}", "a".repeat(size));
        for request in [
            app.client.get(app.url("/auth/me")),
            app.client.post(app.url("/auth/logout")),
            app.client
                .post(app.url("/auth/password"))
                .json(&json!({ "current_password": PASSWORD, "new_password": "a new password" })),
        ] {
            let response = request.header("authorization", &huge_bearer).send().await.unwrap();
            let status = response.status();
            assert!(status.is_client_error(), "{size}: {status}");
            let body = response.bytes().await.unwrap();
            if !body.is_empty() {
                let body: Value = serde_json::from_slice(&body).expect("a JSON error body");
                assert!(body["code"].is_string(), "{body}");
                if status == StatusCode::UNAUTHORIZED {
                    assert_eq!(body["code"], "invalid_token");
                }
            }
            assert_alive(&app).await;
        }
    }

    // Bodies over 64 KiB, valid JSON apart from their size.
    for size in [64 * 1024 + 1, 65 * 1024 + 1] {
        let prefix = format!(r#"{{"username":"alice","password":"{PASSWORD}","pad":""#);
        let mut body = prefix.clone();
        body.push_str(&"x".repeat(size - prefix.len() - 2));
        body.push_str("\"}");
        assert_eq!(body.len(), size);
        for path in ["/auth/signup", "/auth/login", "/auth/refresh", "/auth/logout"] {
            let response = app.post_raw_json(path, body.clone()).await;
            assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
        }
        let response = send_raw_password_change(&app, &access, body.clone()).await;
        assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
        assert_alive(&app).await;
    }

    // Deeply nested JSON: refused without exhausting the stack.
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}null{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let in_field = format!(r#"{{"username":{arrays},"password":"{PASSWORD}"}}"#, arrays = &arrays);
    for body in [&arrays, &objects, &in_field] {
        assert!(body.len() < 64 * 1024);
        for path in ["/auth/signup", "/auth/login", "/auth/refresh"] {
            assert_unreadable(app.post_raw_json(path, body.clone()).await).await;
            assert_alive(&app).await;
        }
        let response = send_raw_password_change(&app, &access, body.clone()).await;
        assert_unreadable(response).await;
        assert_alive(&app).await;
    }

    assert_eq!(user_count(&app), 1);
    assert_session_works(&app, "alice", PASSWORD).await;
}

async fn json_type_confusion_is_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let access = field(&signup, "access_token").to_owned();
    let before = accounts(&app);

    let wrong_types =
        [json!(["alice"]), json!({ "username": "alice" }), json!(42), json!(null), json!(true), json!(1.5)];
    for username in &wrong_types {
        for path in ["/auth/signup", "/auth/login"] {
            let response = app.post_json(path, &json!({ "username": username, "password": PASSWORD })).await;
            assert_validation_failed(response).await;
        }
    }
    for password in [
        json!(12345678),
        json!(1234567890123_i64),
        json!([PASSWORD]),
        json!({ "password": PASSWORD }),
        json!(null),
        json!(false),
    ] {
        for (path, username) in [("/auth/signup", "bob"), ("/auth/login", "alice")] {
            let response = app.post_json(path, &json!({ "username": username, "password": password })).await;
            assert_validation_failed(response).await;
        }
        let response = post_with_bearer(
            &app,
            "/auth/password",
            &access,
            &json!({ "current_password": password, "new_password": "a new password" }),
        )
        .await;
        assert_validation_failed(response).await;
        let response = post_with_bearer(
            &app,
            "/auth/password",
            &access,
            &json!({ "current_password": PASSWORD, "new_password": password }),
        )
        .await;
        assert_validation_failed(response).await;
    }
    for email in [json!(42), json!(["a@example.com"]), json!({ "a": 1 })] {
        let response = app
            .post_json("/auth/signup", &json!({ "username": "bob", "password": PASSWORD, "email": email }))
            .await;
        assert_validation_failed(response).await;
    }
    for token in [
        json!([field(&signup, "refresh_token")]),
        json!({ "refresh_token": field(&signup, "refresh_token") }),
        json!(7),
        json!(null),
    ] {
        let body = json!({ "refresh_token": token });
        assert_validation_failed(app.post_json("/auth/refresh", &body).await).await;
        assert_validation_failed(app.post_json("/auth/logout", &body).await).await;
    }

    // Strings that are not Unicode (a lone surrogate) cannot even be read.
    for path in ["/auth/signup", "/auth/login"] {
        let body = format!(r#"{{"username":"adm\ud800in","password":"{PASSWORD}"}}"#);
        assert_unreadable(app.post_raw_json(path, body).await).await;
        let body = r#"{"username":"alice","password":"pass\udc00word"}"#;
        assert_unreadable(app.post_raw_json(path, body).await).await;
    }

    assert_eq!(user_count(&app), 1);
    assert_eq!(accounts(&app), before);
    // The signup session survived all of that.
    assert_eq!(app.refresh(field(&signup, "refresh_token")).await.status(), StatusCode::OK);
    assert_session_works(&app, "alice", PASSWORD).await;
}
