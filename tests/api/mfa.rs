//! The second factor: TOTP enrolment, the two-step login, replay, recovery codes, `amr` in
//! every token, `ADMIN_REQUIRE_MFA`, the administrator's removal, and the key at rest. The
//! injected clock moves time across TOTP steps; nothing sleeps through one.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate::clock::ManualClock;
use tollgate::db::schema::{mfa_recovery_codes, mfa_totp};
use totp_rs::{Algorithm, TOTP};

use crate::common::*;

db_tests!(
    enrolment_turns_the_login_into_two_steps_with_amr_in_every_token,
    a_code_is_accepted_once_within_one_step_of_skew,
    recovery_codes_work_once_and_a_new_set_replaces_the_old,
    an_mfa_token_is_single_use_expires_and_dies_after_five_wrong_codes,
    wrong_codes_count_toward_the_username_lockout,
    removing_or_replacing_the_factor_needs_a_code_of_it,
    admin_require_mfa_refuses_admin_tokens_without_a_second_factor,
    an_administrator_removes_a_lost_factor_and_ends_the_sessions,
    a_reset_by_mail_asks_for_the_second_factor,
    the_secret_is_encrypted_at_rest_and_the_key_is_never_made_anew_over_enrolled_factors,
);

const STEP: Duration = Duration::from_secs(30);

/// What an authenticator app holds: the secret as `setup` gave it.
struct Authenticator(TOTP);

impl Authenticator {
    fn new(base32_secret: &str) -> Self {
        let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, base32_secret).unwrap();
        Self(TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, secret))
    }

    /// The code at the app's time `clock` (plus `steps` steps).
    fn code(&self, clock: &ManualClock, steps: i64) -> String {
        let at = clock.now().timestamp() + steps * 30;
        self.0.generate(at as u64)
    }
}

async fn bearer_post(app: &TestApp, path: &str, bearer: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(bearer).json(body).send().await.unwrap()
}

/// Signs `username` up and enrols a factor: the session, the authenticator and the
/// recovery codes. The clock is then a step past the confirmation's code.
async fn enrolled(app: &TestApp, clock: &ManualClock, username: &str) -> (Value, Authenticator, Vec<String>) {
    let session = app.signup(username).await;
    let bearer = field(&session, "access_token");
    let setup =
        bearer_post(app, "/auth/mfa/totp/setup", bearer, &json!({ "current_password": PASSWORD })).await;
    assert_eq!(setup.status(), StatusCode::OK);
    let setup: Value = setup.json().await.unwrap();
    let authenticator = Authenticator::new(field(&setup, "secret"));
    let code = authenticator.code(clock, 0);
    let confirmed = bearer_post(app, "/auth/mfa/totp/confirm", bearer, &json!({ "code": code })).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let codes =
        confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned());
    clock.advance(STEP);
    (session, authenticator, codes.collect())
}

/// The first step: the `mfa_token` of an account with a factor.
async fn first_step(app: &TestApp, username: &str) -> String {
    let response = app.login(username, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    field(&body, "mfa_token").to_owned()
}

async fn second_step(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    app.post_json("/auth/login/mfa", &json!({ "mfa_token": mfa_token, "code": code })).await
}

/// Both steps with `code`: the token response.
async fn log_in_with(app: &TestApp, username: &str, code: &str) -> Value {
    let token = first_step(app, username).await;
    let response = second_step(app, &token, code).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn amr(session: &Value) -> Value {
    access_claims(field(session, "access_token"))["amr"].clone()
}

async fn me(app: &TestApp, session: &Value) -> Value {
    let response = app.get_with_bearer("/auth/me", field(session, "access_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn enrolment_turns_the_login_into_two_steps_with_amr_in_every_token(backend: Backend) {
    for sessions_per_user in ["1", "3"] {
        let clock = ManualClock::new();
        let app = spawn_app_at(backend.clone(), &clock, &[("SESSIONS_PER_USER", sessions_per_user)]).await;
        let alice = app.signup("alice").await;
        assert_eq!(amr(&alice), json!(["pwd"]));
        assert_eq!(me(&app, &alice).await["mfa_enabled"], false);
        let bearer = field(&alice, "access_token");
        let wrong =
            bearer_post(&app, "/auth/mfa/totp/setup", bearer, &json!({ "current_password": "wrong" })).await;
        assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let setup: Value =
            bearer_post(&app, "/auth/mfa/totp/setup", bearer, &json!({ "current_password": PASSWORD }))
                .await
                .json()
                .await
                .unwrap();
        let secret = field(&setup, "secret");
        assert_eq!(secret.len(), 32, "160 bits in base32");
        assert_eq!(
            field(&setup, "otpauth_uri"),
            format!(
                "otpauth://totp/tollgate:alice?secret={secret}&issuer=tollgate&algorithm=SHA1&digits=6&period=30"
            )
        );
        // Not active until confirmed.
        assert!(
            app.login("alice", PASSWORD).await.json::<Value>().await.unwrap()["access_token"].is_string()
        );
        let authenticator = Authenticator::new(secret);
        let bad = bearer_post(&app, "/auth/mfa/totp/confirm", bearer, &json!({ "code": "000000" })).await;
        assert_error(bad, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
        let code = authenticator.code(&clock, 0);
        let confirmed = bearer_post(&app, "/auth/mfa/totp/confirm", bearer, &json!({ "code": code })).await;
        assert_eq!(confirmed.status(), StatusCode::OK);
        let codes: Value = confirmed.json().await.unwrap();
        let mut codes: Vec<&str> =
            codes["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 10);

        // The first step answers no tokens.
        let first = app.login("alice", PASSWORD).await;
        assert_eq!(first.status(), StatusCode::OK);
        let first: Value = first.json().await.unwrap();
        let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["expires_in", "methods", "mfa_required", "mfa_token"]);
        assert_eq!(
            (&first["expires_in"], &first["methods"]),
            (&json!(300), &json!(["totp", "recovery_code"]))
        );
        // The confirmation's code was accepted once already.
        let replayed = second_step(&app, field(&first, "mfa_token"), &code).await;
        assert_error(replayed, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
        clock.advance(STEP);
        let second = second_step(&app, field(&first, "mfa_token"), &authenticator.code(&clock, 0)).await;
        assert_eq!(second.status(), StatusCode::OK);
        let session: Value = second.json().await.unwrap();
        assert_eq!(amr(&session), json!(["mfa", "otp", "pwd"]));
        assert_eq!(me(&app, &session).await["mfa_enabled"], true);
        assert_eq!(me(&app, &alice).await["mfa_enabled"], true, "the cached account was evicted");
        // A refresh keeps the session's methods.
        let refreshed: Value = app.refresh(field(&session, "refresh_token")).await.json().await.unwrap();
        assert_eq!(amr(&refreshed), json!(["mfa", "otp", "pwd"]), "SESSIONS_PER_USER={sessions_per_user}");
        let again: Value = app.refresh(field(&refreshed, "refresh_token")).await.json().await.unwrap();
        assert_eq!(amr(&again), json!(["mfa", "otp", "pwd"]));
        // A password change keeps them too.
        let change = json!({ "current_password": PASSWORD, "new_password": "a new long password" });
        let changed: Value = bearer_post(&app, "/auth/password", field(&again, "access_token"), &change)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(amr(&changed), json!(["mfa", "otp", "pwd"]));
    }
}

async fn a_code_is_accepted_once_within_one_step_of_skew(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let (_, authenticator, _) = enrolled(&app, &clock, "alice").await;
    // Two steps off either way: refused.
    for steps in [-2, 2] {
        let token = first_step(&app, "alice").await;
        let off = second_step(&app, &token, &authenticator.code(&clock, steps)).await;
        assert_error(off, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    // A phone a step behind (past the step the confirmation used): accepted, and then
    // refused, as is any code of an earlier step.
    clock.advance(STEP);
    let behind = authenticator.code(&clock, -1);
    log_in_with(&app, "alice", &behind).await;
    let token = first_step(&app, "alice").await;
    assert_error(second_step(&app, &token, &behind).await, StatusCode::UNAUTHORIZED, "invalid_mfa_code")
        .await;
    // A phone a step ahead: accepted; then the current step's code is a replay.
    log_in_with(&app, "alice", &authenticator.code(&clock, 1)).await;
    let token = first_step(&app, "alice").await;
    let now = authenticator.code(&clock, 0);
    assert_error(second_step(&app, &token, &now).await, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    for malformed in ["", "12345", "1234567", "abcdef", "12 34 5"] {
        let token = first_step(&app, "alice").await;
        let refused = second_step(&app, &token, malformed).await;
        assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    // Parallel uses of one fresh code: one session.
    clock.advance(STEP * 2);
    let code = authenticator.code(&clock, 0);
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(first_step(&app, "alice").await);
    }
    let attempts = tokens.iter().map(|token| second_step(&app, token, &code));
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.iter().map(reqwest::Response::status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
}

async fn recovery_codes_work_once_and_a_new_set_replaces_the_old(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let (_, authenticator, codes) = enrolled(&app, &clock, "alice").await;
    // Typed loosely: upper case, without the dash.
    let loose = codes[0].to_uppercase().replace('-', "");
    let session = log_in_with(&app, "alice", &loose).await;
    assert_eq!(amr(&session), json!(["mfa", "otp", "pwd"]));
    let token = first_step(&app, "alice").await;
    assert_error(second_step(&app, &token, &codes[0]).await, StatusCode::UNAUTHORIZED, "invalid_mfa_code")
        .await;
    // Stored hashed: no code as it is.
    let mut conn = app.pool.get().unwrap();
    let stored: Vec<String> =
        mfa_recovery_codes::table.select(mfa_recovery_codes::code_hash).load(&mut **conn).unwrap();
    drop(conn);
    assert_eq!(stored.len(), 9);
    assert!(codes.iter().all(|code| !stored.iter().any(|hash| hash.contains(&code.replace('-', "")))));
    // A new set, with a code: the old set stops working.
    let bearer = field(&session, "access_token");
    let wrong = bearer_post(&app, "/auth/mfa/recovery-codes", bearer, &json!({ "code": "000000" })).await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let body = json!({ "code": authenticator.code(&clock, 0) });
    let fresh: Value =
        bearer_post(&app, "/auth/mfa/recovery-codes", bearer, &body).await.json().await.unwrap();
    let fresh: Vec<String> =
        fresh["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
    assert_eq!(fresh.len(), 10);
    let token = first_step(&app, "alice").await;
    assert_error(second_step(&app, &token, &codes[1]).await, StatusCode::UNAUTHORIZED, "invalid_mfa_code")
        .await;
    log_in_with(&app, "alice", &fresh[0]).await;
}

async fn an_mfa_token_is_single_use_expires_and_dies_after_five_wrong_codes(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let (_, authenticator, codes) = enrolled(&app, &clock, "alice").await;
    let token = first_step(&app, "alice").await;
    assert_eq!(second_step(&app, &token, &codes[0]).await.status(), StatusCode::OK);
    assert_error(second_step(&app, &token, &codes[1]).await, StatusCode::UNAUTHORIZED, "invalid_mfa_token")
        .await;
    // A code of a recovery code's form that is not one left (a used one, a made-up one)
    // is a wrong code like any other: the token lives on.
    let token = first_step(&app, "alice").await;
    for wrong in [codes[0].as_str(), "aaaaa-bbbbb"] {
        assert_error(second_step(&app, &token, wrong).await, StatusCode::UNAUTHORIZED, "invalid_mfa_code")
            .await;
    }
    assert_eq!(second_step(&app, &token, &codes[3]).await.status(), StatusCode::OK);
    // Five wrong codes, and the right one no longer helps.
    let token = first_step(&app, "alice").await;
    for _ in 0..5 {
        assert_error(second_step(&app, &token, "000000").await, StatusCode::UNAUTHORIZED, "invalid_mfa_code")
            .await;
    }
    let dead = second_step(&app, &token, &authenticator.code(&clock, 0)).await;
    assert_error(dead, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    // 300 s, then gone.
    let token = first_step(&app, "alice").await;
    clock.advance(Duration::from_secs(301));
    let expired = second_step(&app, &token, &authenticator.code(&clock, 0)).await;
    assert_error(expired, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let forged = format!("tgf_{}", "A".repeat(43));
    for bad in ["", "tgf_", "not-a-token", forged.as_str(), &format!("{token}x")] {
        let refused = second_step(&app, bad, &codes[2]).await;
        assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    }
    let missing = app.post_json("/auth/login/mfa", &json!({ "mfa_token": token })).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn wrong_codes_count_toward_the_username_lockout(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let (_, authenticator, _) = enrolled(&app, &clock, "alice").await;
    // Ten wrong codes over two second steps: the username locks, as after ten wrong passwords.
    for _ in 0..2 {
        let token = first_step(&app, "alice").await;
        for _ in 0..5 {
            second_step(&app, &token, "000000").await;
        }
    }
    let locked = app.login("alice", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    // Past the lockout, a right code clears the count.
    clock.advance(Duration::from_secs(16 * 60));
    log_in_with(&app, "alice", &authenticator.code(&clock, 0)).await;
    let token = first_step(&app, "alice").await;
    assert_error(second_step(&app, &token, "000000").await, StatusCode::UNAUTHORIZED, "invalid_mfa_code")
        .await;
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::OK,
        "one failure on record, no lockout"
    );
}

async fn removing_or_replacing_the_factor_needs_a_code_of_it(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let (_, authenticator, codes) = enrolled(&app, &clock, "alice").await;
    let session = log_in_with(&app, "alice", &codes[0]).await;
    let bearer = field(&session, "access_token");
    // A stolen password and session cannot swap the factor.
    let setup =
        bearer_post(&app, "/auth/mfa/totp/setup", bearer, &json!({ "current_password": PASSWORD })).await;
    assert_error(setup, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let delete = |code: &str| {
        let body = json!({ "code": code });
        app.client.delete(app.url("/auth/mfa/totp")).bearer_auth(bearer).json(&body).send()
    };
    assert_error(delete("000000").await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    assert_error(delete(&codes[0]).await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    assert_eq!(delete(&authenticator.code(&clock, 0)).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &session).await["mfa_enabled"], false);
    let plain: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    assert_eq!(amr(&plain), json!(["pwd"]));
    let mut conn = app.pool.get().unwrap();
    let left: i64 = mfa_recovery_codes::table.count().get_result(&mut **conn).unwrap();
    assert_eq!(left, 0, "the recovery codes went with it");
}

async fn admin_require_mfa_refuses_admin_tokens_without_a_second_factor(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend.clone(), &clock, &[("ADMIN_REQUIRE_MFA", "true")]).await;
    let plain = crate::admin::admin_token(&app, "root").await;
    let refused = app.get_with_bearer("/admin/users", &plain).await;
    assert_error(refused, StatusCode::FORBIDDEN, "mfa_required").await;
    // The same admin, enrolled and signed in with both factors.
    let setup: Value =
        bearer_post(&app, "/auth/mfa/totp/setup", &plain, &json!({ "current_password": PASSWORD }))
            .await
            .json()
            .await
            .unwrap();
    let authenticator = Authenticator::new(field(&setup, "secret"));
    let body = json!({ "code": authenticator.code(&clock, 0) });
    assert_eq!(bearer_post(&app, "/auth/mfa/totp/confirm", &plain, &body).await.status(), StatusCode::OK);
    clock.advance(STEP);
    let strong = log_in_with(&app, "root", &authenticator.code(&clock, 0)).await;
    assert_eq!(
        app.get_with_bearer("/admin/users", field(&strong, "access_token")).await.status(),
        StatusCode::OK
    );
    let refreshed: Value = app.refresh(field(&strong, "refresh_token")).await.json().await.unwrap();
    let after = app.get_with_bearer("/admin/users", field(&refreshed, "access_token")).await;
    assert_eq!(after.status(), StatusCode::OK, "a refresh keeps the second factor");
    // Without the setting, a password alone does.
    let relaxed = spawn_app_at(backend, &clock, &[]).await;
    let admin = crate::admin::admin_token(&relaxed, "root").await;
    assert_eq!(relaxed.get_with_bearer("/admin/users", &admin).await.status(), StatusCode::OK);
}

async fn an_administrator_removes_a_lost_factor_and_ends_the_sessions(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let (signup, _, codes) = enrolled(&app, &clock, "alice").await;
    let session = log_in_with(&app, "alice", &codes[0]).await;
    let id = field(&signup["user"], "id");
    let remove =
        |id: String| app.client.delete(app.url(&format!("/admin/users/{id}/mfa"))).bearer_auth(&admin).send();
    assert_eq!(remove(id.to_owned()).await.unwrap().status(), StatusCode::NO_CONTENT);
    for old in [&signup, &session] {
        let refused = app.get_with_bearer("/auth/me", field(old, "access_token")).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.refresh(field(old, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    }
    let plain: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    assert_eq!(amr(&plain), json!(["pwd"]));
    let unknown = remove(uuid::Uuid::new_v4().to_string()).await.unwrap();
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let user = app.signup("bob").await;
    let not_admin = app
        .client
        .delete(app.url(&format!("/admin/users/{id}/mfa")))
        .bearer_auth(field(&user, "access_token"))
        .send()
        .await
        .unwrap();
    assert_error(not_admin, StatusCode::FORBIDDEN, "forbidden").await;

    // The command line does the same.
    enrolled_again(&app, &clock, &plain).await;
    assert_eq!(app.login("alice", PASSWORD).await.json::<Value>().await.unwrap()["mfa_required"], true);
    let reset = app.command(&["user", "mfa-reset", "alice"]).output().unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    assert!(app.login("alice", PASSWORD).await.json::<Value>().await.unwrap()["access_token"].is_string());
    let nobody = app.command(&["user", "mfa-reset", "nobody"]).output().unwrap();
    assert!(!nobody.status.success());
}

/// Enrols a factor again for a session of a user who has none.
async fn enrolled_again(app: &TestApp, clock: &ManualClock, session: &Value) {
    let bearer = field(session, "access_token");
    let setup: Value =
        bearer_post(app, "/auth/mfa/totp/setup", bearer, &json!({ "current_password": PASSWORD }))
            .await
            .json()
            .await
            .unwrap();
    let code = Authenticator::new(field(&setup, "secret")).code(clock, 0);
    assert_eq!(
        bearer_post(app, "/auth/mfa/totp/confirm", bearer, &json!({ "code": code })).await.status(),
        StatusCode::OK
    );
}

async fn a_reset_by_mail_asks_for_the_second_factor(backend: Backend) {
    let smtp = crate::common::smtp::SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = crate::mail::mail_app(backend, &smtp, &clock, &[]).await;
    let (_, _, codes) = enrolled(&app, &clock, "alice").await;
    let mut conn = app.pool.get().unwrap();
    diesel::update(tollgate::db::schema::users::table)
        .set(tollgate::db::schema::users::email.eq("alice@example.com"))
        .execute(&mut **conn)
        .unwrap();
    drop(conn);
    crate::mail::forgot(&app, "alice@example.com").await;
    let token = crate::mail::token_of(&smtp.wait_for(1, crate::mail::WAIT).await[0]);
    let reset = crate::mail::reset(&app, &token, "a brand new password").await;
    assert_eq!(reset.status(), StatusCode::OK);
    let reset: Value = reset.json().await.unwrap();
    assert_eq!(reset["mfa_required"], true, "the mail proves the address, not the factor: {reset}");
    assert!(reset.get("access_token").is_none());
    let second = second_step(&app, field(&reset, "mfa_token"), &codes[0]).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        app.login("alice", "a brand new password").await.json::<Value>().await.unwrap()["mfa_required"],
        true
    );
}

async fn the_secret_is_encrypted_at_rest_and_the_key_is_never_made_anew_over_enrolled_factors(
    backend: Backend,
) {
    let clock = ManualClock::new();
    let mut app = spawn_app_at(backend, &clock, &[]).await;
    let session = app.signup("alice").await;
    let bearer = field(&session, "access_token");
    let setup: Value =
        bearer_post(&app, "/auth/mfa/totp/setup", bearer, &json!({ "current_password": PASSWORD }))
            .await
            .json()
            .await
            .unwrap();
    let secret = field(&setup, "secret").to_owned();
    let code = Authenticator::new(&secret).code(&clock, 0);
    assert_eq!(
        bearer_post(&app, "/auth/mfa/totp/confirm", bearer, &json!({ "code": code })).await.status(),
        StatusCode::OK
    );
    let mut conn = app.pool.get().unwrap();
    let stored: Option<String> = mfa_totp::table.select(mfa_totp::secret).first(&mut **conn).unwrap();
    drop(conn);
    let stored = stored.unwrap();
    let raw = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &secret).unwrap();
    assert!(!stored.contains(&secret) && !stored.contains(&hex(&raw)), "the secret is not in the database");
    // A restart with the key: the factor still works.
    app.restart().await;
    clock.advance(STEP);
    log_in_with(&app, "alice", &Authenticator::new(&secret).code(&clock, 0)).await;
    // Without it, the start stops and names the file.
    let key = app.keys_dir.join("mfa-key");
    std::fs::remove_file(&key).unwrap();
    let err =
        tollgate::startup::Application::build_with(app.settings(), clock.clock()).err().expect("refused");
    let message = err.to_string();
    assert!(message.contains("mfa-key") && !message.contains('\n'), "{message}");
    assert!(!key.exists(), "no new key was made");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
