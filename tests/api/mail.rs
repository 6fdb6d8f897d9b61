//! Mail against a real SMTP server (`common::smtp`): the outbox and its sender, and the
//! password reset by mail.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate::clock::ManualClock;
use tollgate::db::schema::{mail_tokens, outbox};

use crate::common::smtp::{Received, SmtpServer};
use crate::common::*;

pub const WAIT: Duration = Duration::from_secs(20);
pub const NEW_PASSWORD: &str = "a brand new password";

db_tests!(
    mail_test_sends_one_mail_or_fails_with_the_smtp_error,
    mail_endpoints_are_not_found_while_mail_is_off,
    a_reset_by_mail_sets_the_password_and_ends_every_session,
    forgot_answers_alike_for_unknown_addresses_and_keeps_the_cooldown,
    of_parallel_uses_of_one_reset_token_exactly_one_succeeds,
    a_refused_password_keeps_the_token_and_bad_tokens_are_refused,
    a_disabled_account_gets_no_mail_and_its_token_is_refused,
    addresses_with_header_injection_are_refused,
    an_smtp_server_that_is_down_or_refuses_delays_the_mail_not_the_request,
    mail_queued_before_a_restart_goes_out_after_it,
);
postgres_tests!(two_instances_on_one_database_send_each_mail_once);

pub fn mail_vars(smtp: &SmtpServer) -> Vec<(&'static str, String)> {
    vec![("SMTP_URL", smtp.url()), ("MAIL_FROM", "tollgate <no-reply@example.com>".to_owned())]
}

pub async fn mail_app(
    backend: Backend,
    smtp: &SmtpServer,
    clock: &ManualClock,
    more: &[(&str, &str)],
) -> TestApp {
    let vars = mail_vars(smtp);
    let mut overrides: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    overrides.extend_from_slice(more);
    spawn_app_at(backend, clock, &overrides).await
}

/// Signs up with an address, and takes the verification mail the signup sends: the mails
/// a test counts next are its own.
pub async fn signup_with_email(app: &TestApp, smtp: &SmtpServer, username: &str, email: &str) -> Value {
    let body = json!({ "username": username, "password": PASSWORD, "email": email });
    let response = app.post_json("/auth/signup", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let verification = smtp.take(1, WAIT).await.remove(0);
    assert_eq!(verification.to, [email.to_lowercase()]);
    response.json().await.unwrap()
}

pub async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/auth/password/forgot", &json!({ "email": email })).await
}

pub async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json("/auth/password/reset", &json!({ "token": token, "new_password": password })).await
}

/// The token of the reset link in a mail's text.
pub fn token_of(mail: &Received) -> String {
    let text = mail.text_body().expect("a text part");
    let start = text.find("token=").expect("a link with a token") + "token=".len();
    text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}

pub fn outbox_rows(app: &TestApp) -> i64 {
    let mut conn = app.pool.get().unwrap();
    outbox::table.count().get_result(&mut **conn).unwrap()
}

async fn mail_test_sends_one_mail_or_fails_with_the_smtp_error(backend: Backend) {
    let mut smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[]).await;
    let run = |app: &TestApp| app.command(&["mail", "test", "ops@example.com"]).output().unwrap();
    let sent = run(&app);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let mail = &smtp.wait_for(1, WAIT).await[0];
    assert_eq!(mail.to, ["ops@example.com"]);
    assert_eq!(mail.header("subject").as_deref(), Some("tollgate: test mail"));
    assert!(mail.text_body().is_some() && mail.html_body().is_some(), "a text and an HTML part");

    smtp.stop().await;
    let failed = run(&app);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("mail not sent"), "{stderr}");
    let bad = app.command(&["mail", "test", "not an address"]).output().unwrap();
    assert!(!bad.status.success());
}

async fn mail_endpoints_are_not_found_while_mail_is_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let forgot = forgot(&app, "alice@example.com").await;
    assert_error(forgot, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(reset(&app, "tgm_x", NEW_PASSWORD).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/auth/password/reset?token=x").await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/auth/email/verify?token=x").await, StatusCode::NOT_FOUND, "not_found").await;
    let verify = app.post_json("/auth/email/verify", &json!({ "token": "tgm_x" })).await;
    assert_error(verify, StatusCode::NOT_FOUND, "not_found").await;
    let alice = app.signup("alice").await;
    let bearer = field(&alice, "access_token");
    let resend =
        app.client.post(app.url("/auth/email/verify/resend")).bearer_auth(bearer).send().await.unwrap();
    assert_error(resend, StatusCode::NOT_FOUND, "not_found").await;
    let change = json!({ "email": "alice@example.com", "current_password": PASSWORD });
    let change =
        app.client.post(app.url("/auth/email")).bearer_auth(bearer).json(&change).send().await.unwrap();
    assert_error(change, StatusCode::NOT_FOUND, "not_found").await;
}

async fn a_reset_by_mail_sets_the_password_and_ends_every_session(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[("APP_NAME", "Acme")]).await;
    let signup = signup_with_email(&app, &smtp, "alice", "Alice@Example.com").await;
    let login: Value = app.login("alice", PASSWORD).await.json().await.unwrap();

    let accepted = forgot(&app, "alice@example.com").await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(accepted.json::<Value>().await.unwrap(), json!({}));
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, ["alice@example.com"]);
    assert_eq!(mail.header("subject").as_deref(), Some("Acme: reset your password"));
    let token = token_of(&mail);
    assert!(mail.html_body().unwrap().contains(&token), "the HTML part has the link too");
    // Only its hash is stored, and the outbox held no token.
    let mut conn = app.pool.get().unwrap();
    let stored: Option<String> = mail_tokens::table
        .filter(mail_tokens::purpose.eq("password_reset"))
        .select(mail_tokens::token_hash)
        .first(&mut **conn)
        .unwrap();
    assert_eq!(stored, Some(sha256_hex(&token)));
    drop(conn);

    // Opening the link uses nothing.
    let page = app.get(&format!("/auth/password/reset?token={token}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("<form"));

    let reset = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(reset.status(), StatusCode::OK);
    let reset: Value = reset.json().await.unwrap();
    assert_eq!(app.get_with_bearer("/auth/me", field(&reset, "access_token")).await.status(), StatusCode::OK);
    for old in [&signup, &login] {
        assert_eq!(
            app.get_with_bearer("/auth/me", field(old, "access_token")).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(app.refresh(field(old, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert!(app.user_row("alice").email_verified, "the reset proved the address");
    // Used: refused from now on.
    let again = self::reset(&app, &token, "yet another password").await;
    assert_error(again, StatusCode::UNAUTHORIZED, "invalid_reset_token").await;
}

pub async fn forgot_answers_alike_for_unknown_addresses_and_keeps_the_cooldown(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    signup_with_email(&app, &smtp, "alice", "alice@example.com").await;
    // Addresses are not unique: each account with it gets its own mail.
    signup_with_email(&app, &smtp, "alice2", "alice@example.com").await;
    let unknown = forgot(&app, "nobody@example.com").await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.json::<Value>().await.unwrap(), json!({}));
    for _ in 0..3 {
        assert_eq!(forgot(&app, "alice@example.com").await.status(), StatusCode::ACCEPTED);
    }
    let mails = smtp.wait_for(2, WAIT).await;
    let mut names: Vec<String> = mails
        .iter()
        .map(|m| m.text_body().unwrap())
        .map(|t| t.split_whitespace().nth(1).unwrap().trim_end_matches(',').to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "alice2"]);
    // Past the cooldown, another request sends again, and its token replaces the first.
    clock.advance(Duration::from_secs(61));
    assert_eq!(forgot(&app, "alice@example.com").await.status(), StatusCode::ACCEPTED);
    let mails = smtp.wait_for(4, WAIT).await;
    assert_eq!(mails.len(), 4, "nothing was sent within the cooldown, unknown address included");
    let first = token_of(&mails[0]);
    let newer: Vec<String> = mails[2..].iter().map(token_of).collect();
    assert!(!newer.contains(&first));
    let replaced = reset(&app, &first, NEW_PASSWORD).await;
    assert_error(replaced, StatusCode::UNAUTHORIZED, "invalid_reset_token").await;
}

async fn of_parallel_uses_of_one_reset_token_exactly_one_succeeds(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[]).await;
    signup_with_email(&app, &smtp, "alice", "alice@example.com").await;
    forgot(&app, "alice@example.com").await;
    let token = token_of(&smtp.wait_for(1, WAIT).await[0]);
    let attempts = (0..8).map(|i| {
        let (app, token) = (&app, token.clone());
        async move { reset(app, &token, &format!("{NEW_PASSWORD} {i}")).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
}

async fn a_refused_password_keeps_the_token_and_bad_tokens_are_refused(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    signup_with_email(&app, &smtp, "alice", "alice@example.com").await;
    forgot(&app, "alice@example.com").await;
    let token = token_of(&smtp.wait_for(1, WAIT).await[0]);
    assert_error(reset(&app, &token, "short").await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    for bad in ["", "tgm_", "not-a-token", &format!("{token}x"), &token.replace("tgm_", "tgr_")] {
        assert_error(reset(&app, bad, NEW_PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_reset_token")
            .await;
    }
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), StatusCode::OK, "still usable");
    // Expired: a new one, an hour and a second later.
    clock.advance(Duration::from_secs(61));
    forgot(&app, "alice@example.com").await;
    let token = token_of(&smtp.wait_for(2, WAIT).await[1]);
    clock.advance(Duration::from_secs(3601));
    assert_error(reset(&app, &token, NEW_PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_reset_token")
        .await;
}

async fn a_disabled_account_gets_no_mail_and_its_token_is_refused(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let alice = signup_with_email(&app, &smtp, "alice", "alice@example.com").await;
    forgot(&app, "alice@example.com").await;
    let token = token_of(&smtp.wait_for(1, WAIT).await[0]);
    assert!(eventually(WAIT, || async { outbox_rows(&app) == 0 }).await);
    let path = app.url(&format!("/admin/users/{}", field(&alice["user"], "id")));
    let disabled = app.client.patch(path).bearer_auth(&admin).json(&json!({ "disabled": true })).send().await;
    assert_eq!(disabled.unwrap().status(), StatusCode::OK);
    assert_error(reset(&app, &token, NEW_PASSWORD).await, StatusCode::FORBIDDEN, "account_disabled").await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(forgot(&app, "alice@example.com").await.status(), StatusCode::ACCEPTED);
    assert_eq!(outbox_rows(&app), 0, "nothing queued for a disabled account");
    assert_eq!(smtp.messages().len(), 1);
}

async fn addresses_with_header_injection_are_refused(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[]).await;
    for bad in [
        "alice@example.com\r\nBcc: eve@example.com",
        "alice@example.com\nX: y",
        "a@b\rc.com",
        "not an address",
    ] {
        assert_error(forgot(&app, bad).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    assert_eq!(outbox_rows(&app), 0);
}

async fn an_smtp_server_that_is_down_or_refuses_delays_the_mail_not_the_request(backend: Backend) {
    let mut smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    signup_with_email(&app, &smtp, "alice", "alice@example.com").await;
    signup_with_email(&app, &smtp, "bob", "bob@example.com").await;
    smtp.stop().await;
    assert_eq!(forgot(&app, "alice@example.com").await.status(), StatusCode::ACCEPTED);
    // The first attempt fails; the mail waits in the outbox with its error.
    assert!(eventually(WAIT, || async { last_error(&app).is_some() }).await, "no attempt was made");
    assert_eq!(outbox_rows(&app), 1);
    smtp.restart().await;
    // A temporary refusal (451) is retried like a server that is down.
    smtp.refuse_next(1, 451);
    clock.advance(Duration::from_secs(5));
    // Recorded with the time of its next attempt before the clock moves on to it.
    assert!(eventually(WAIT, || async { attempts(&app) == Some(2) }).await, "the 451 was not recorded");
    clock.advance(Duration::from_secs(10));
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, ["alice@example.com"]);
    assert!(eventually(WAIT, || async { outbox_rows(&app) == 0 }).await);
    // A permanent refusal (554) is given up at once, and counted.
    smtp.refuse_next(1, 554);
    assert_eq!(forgot(&app, "bob@example.com").await.status(), StatusCode::ACCEPTED);
    assert!(eventually(WAIT, || async { outbox_rows(&app) == 0 }).await, "a refused mail is dropped");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"tollgate_mails_total{kind="password_reset",result="sent"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"tollgate_mails_total{kind="password_reset",result="retried"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tollgate_mails_total{kind="password_reset",result="dropped"} 1"#),
        "{metrics}"
    );
}

fn attempts(app: &TestApp) -> Option<i32> {
    let mut conn = app.pool.get().unwrap();
    outbox::table.select(outbox::attempts).first(&mut **conn).optional().unwrap()
}

fn last_error(app: &TestApp) -> Option<String> {
    let mut conn = app.pool.get().unwrap();
    outbox::table
        .select(outbox::last_error)
        .first::<Option<String>>(&mut **conn)
        .optional()
        .unwrap()
        .flatten()
}

async fn mail_queued_before_a_restart_goes_out_after_it(backend: Backend) {
    let mut smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let mut app = mail_app(backend, &smtp, &clock, &[]).await;
    signup_with_email(&app, &smtp, "alice", "alice@example.com").await;
    smtp.stop().await;
    forgot(&app, "alice@example.com").await;
    assert!(eventually(WAIT, || async { last_error(&app).is_some() }).await);
    app.restart().await;
    smtp.restart().await;
    clock.advance(Duration::from_secs(5));
    let token = token_of(&smtp.wait_for(1, WAIT).await[0]);
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), StatusCode::OK);
}

async fn two_instances_on_one_database_send_each_mail_once(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    let (_sibling, _handle) = app.start_sibling();
    // Each user gets two mails: the signup's verification link and the reset link.
    for i in 0..20 {
        let email = format!("user{i}@example.com");
        let body = json!({ "username": format!("user{i}"), "password": PASSWORD, "email": email });
        assert_eq!(app.post_json("/auth/signup", &body).await.status(), StatusCode::CREATED);
        forgot(&app, &email).await;
    }
    smtp.wait_for(40, WAIT).await;
    assert!(eventually(WAIT, || async { outbox_rows(&app) == 0 }).await);
    let mut sent: Vec<(String, String)> =
        smtp.messages().iter().map(|m| (m.to.join(","), m.header("subject").unwrap_or_default())).collect();
    sent.sort();
    let before = sent.len();
    sent.dedup();
    assert_eq!((before, sent.len()), (40, 40), "each mail once");
}
