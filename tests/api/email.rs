//! Email verification and change against a real SMTP server (`common::smtp`): the link a
//! signup mails, resending it, a change of address, `EMAIL_VERIFICATION=required`, and the
//! administrator's `email_verified`.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate::clock::ManualClock;
use tollgate::db::schema::mail_tokens;

use crate::common::smtp::{Received, SmtpServer};
use crate::common::*;
use crate::mail::{WAIT, forgot, mail_app, outbox_rows, token_of};

db_tests!(
    a_signup_with_an_email_mails_a_link_that_verifies_it_once,
    of_parallel_uses_of_one_verification_token_exactly_one_succeeds,
    bad_expired_and_foreign_verification_tokens_are_refused,
    resend_mails_a_new_link_within_the_cooldown_rules,
    an_email_change_mails_the_new_address_and_tells_the_old,
    required_verification_refuses_logins_until_the_link_is_used,
    an_administrator_sets_email_verified_and_a_new_address_is_unverified,
    a_disabled_account_cannot_use_its_verification_link,
);

async fn signup(app: &TestApp, username: &str, email: &str) -> Value {
    let body = json!({ "username": username, "password": PASSWORD, "email": email });
    let response = app.post_json("/auth/signup", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/auth/email/verify", &json!({ "token": token })).await
}

async fn resend(app: &TestApp, bearer: &str) -> reqwest::Response {
    app.client.post(app.url("/auth/email/verify/resend")).bearer_auth(bearer).send().await.unwrap()
}

async fn change(app: &TestApp, bearer: &str, email: &str, password: &str) -> reqwest::Response {
    let body = json!({ "email": email, "current_password": password });
    app.client.post(app.url("/auth/email")).bearer_auth(bearer).json(&body).send().await.unwrap()
}

async fn me(app: &TestApp, bearer: &str) -> Value {
    let response = app.get_with_bearer("/auth/me", bearer).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Waits until the outbox is empty and returns every mail the server got: nothing more
/// is on its way.
async fn all_sent(app: &TestApp, smtp: &SmtpServer) -> Vec<Received> {
    assert!(eventually(WAIT, || async { outbox_rows(app) == 0 }).await, "the outbox did not empty");
    smtp.messages()
}

async fn a_signup_with_an_email_mails_a_link_that_verifies_it_once(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[("APP_NAME", "Acme")]).await;
    let alice = signup(&app, "alice", "Alice@Example.com").await;
    assert_eq!(alice["user"]["email_verified"], false);
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, ["alice@example.com"]);
    assert_eq!(mail.header("subject").as_deref(), Some("Acme: confirm your email address"));
    let token = token_of(&mail);
    assert!(mail.text_body().unwrap().contains("/auth/email/verify?token="));
    assert!(mail.html_body().unwrap().contains(&token), "the HTML part has the link too");
    assert!(mail.text_body().unwrap().contains("24 hours"));
    // Only its hash is stored.
    let mut conn = app.pool.get().unwrap();
    let stored: Option<String> = mail_tokens::table
        .filter(mail_tokens::purpose.eq("email_verify"))
        .select(mail_tokens::token_hash)
        .first(&mut **conn)
        .unwrap();
    assert_eq!(stored, Some(sha256_hex(&token)));
    drop(conn);

    // Opening the link verifies nothing.
    let page = app.get(&format!("/auth/email/verify?token={token}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("data-action=\"/auth/email/verify\""));
    let bearer = field(&alice, "access_token");
    assert_eq!(me(&app, bearer).await["email_verified"], false);

    let verified = verify(&app, &token).await;
    assert_eq!(verified.status(), StatusCode::OK);
    let user: Value = verified.json().await.unwrap();
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["email"], "alice@example.com");
    assert!(user.get("password_hash").is_none() && user.get("access_token").is_none(), "{user}");
    assert_eq!(me(&app, bearer).await["email_verified"], true, "the cached account was evicted");
    assert!(app.user_row("alice").email_verified);
    assert_error(verify(&app, &token).await, StatusCode::UNAUTHORIZED, "invalid_verification_token").await;
    // A signup without an address gets no mail.
    app.signup("bob").await;
    assert_eq!(all_sent(&app, &smtp).await.len(), 1);
}

async fn of_parallel_uses_of_one_verification_token_exactly_one_succeeds(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[]).await;
    signup(&app, "alice", "alice@example.com").await;
    let token = token_of(&smtp.wait_for(1, WAIT).await[0]);
    let attempts = (0..8).map(|_| {
        let (app, token) = (&app, token.clone());
        async move { verify(app, &token).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
}

async fn bad_expired_and_foreign_verification_tokens_are_refused(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    signup(&app, "alice", "alice@example.com").await;
    let token = token_of(&smtp.wait_for(1, WAIT).await[0]);
    // A reset token is not a verification token, nor the reverse.
    forgot(&app, "alice@example.com").await;
    let reset_token = token_of(&smtp.wait_for(2, WAIT).await[1]);
    let reset = json!({ "token": token, "new_password": "a brand new password" });
    let reset = app.post_json("/auth/password/reset", &reset).await;
    assert_error(reset, StatusCode::UNAUTHORIZED, "invalid_reset_token").await;
    for bad in ["", "tgm_", "not-a-token", &format!("{token}x"), &token.replace("tgm_", "tgr_"), &reset_token]
    {
        assert_error(verify(&app, bad).await, StatusCode::UNAUTHORIZED, "invalid_verification_token").await;
    }
    let missing = app.post_json("/auth/email/verify", &json!({})).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Expired a day and a second after it was issued.
    clock.advance(Duration::from_secs(86_401));
    assert_error(verify(&app, &token).await, StatusCode::UNAUTHORIZED, "invalid_verification_token").await;
    assert!(!app.user_row("alice").email_verified);
}

async fn resend_mails_a_new_link_within_the_cooldown_rules(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    let alice = signup(&app, "alice", "alice@example.com").await;
    let bearer = field(&alice, "access_token");
    let first = token_of(&smtp.wait_for(1, WAIT).await[0]);
    // Within the cooldown: accepted, nothing sent.
    let accepted = resend(&app, bearer).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(accepted.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(all_sent(&app, &smtp).await.len(), 1);
    // Past it, a new link replaces the first.
    clock.advance(Duration::from_secs(61));
    assert_eq!(resend(&app, bearer).await.status(), StatusCode::ACCEPTED);
    let second = token_of(&smtp.wait_for(2, WAIT).await[1]);
    assert_error(verify(&app, &first).await, StatusCode::UNAUTHORIZED, "invalid_verification_token").await;
    assert_eq!(verify(&app, &second).await.status(), StatusCode::OK);
    // Verified: nothing more to send.
    clock.advance(Duration::from_secs(61));
    assert_eq!(resend(&app, bearer).await.status(), StatusCode::ACCEPTED);
    assert_eq!(all_sent(&app, &smtp).await.len(), 2);
    // No address, nothing to verify; no token, no resend.
    let bob = app.signup("bob").await;
    let none = resend(&app, field(&bob, "access_token")).await;
    assert_error(none, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let anonymous = app.client.post(app.url("/auth/email/verify/resend")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn an_email_change_mails_the_new_address_and_tells_the_old(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[]).await;
    let alice = signup(&app, "alice", "alice@example.com").await;
    let bearer = field(&alice, "access_token");
    assert_eq!(verify(&app, &token_of(&smtp.take(1, WAIT).await[0])).await.status(), StatusCode::OK);

    let wrong = change(&app, bearer, "alice@example.org", "not the password").await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    for bad in ["alice@example.org\r\nBcc: eve@example.com", "not an address", ""] {
        let refused = change(&app, bearer, bad, PASSWORD).await;
        assert_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    assert!(all_sent(&app, &smtp).await.is_empty(), "a refused change mails nothing");

    let accepted = change(&app, bearer, "Alice@Example.org", PASSWORD).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(accepted.json::<Value>().await.unwrap(), json!({}));
    let mut mails = smtp.wait_for(2, WAIT).await;
    mails.sort_by_key(|mail| mail.to.clone());
    let (notice, link) = (&mails[0], &mails[1]);
    assert_eq!(notice.to, ["alice@example.com"]);
    assert_eq!(notice.header("subject").as_deref(), Some("tollgate: your email address is being changed"));
    assert!(notice.text_body().unwrap().contains("alice@example.org"));
    assert!(!notice.text_body().unwrap().contains("token="), "the old address gets no link");
    assert_eq!(link.to, ["alice@example.org"]);
    // Nothing changes until the link is used.
    let before = me(&app, bearer).await;
    assert_eq!((&before["email"], &before["email_verified"]), (&json!("alice@example.com"), &json!(true)));
    let changed = verify(&app, &token_of(link)).await;
    assert_eq!(changed.status(), StatusCode::OK);
    let after = me(&app, bearer).await;
    assert_eq!((&after["email"], &after["email_verified"]), (&json!("alice@example.org"), &json!(true)));
    // The session goes on, and a reset now goes to the new address.
    clock.advance(Duration::from_secs(61));
    forgot(&app, "alice@example.com").await;
    forgot(&app, "alice@example.org").await;
    let mails = smtp.wait_for(3, WAIT).await;
    assert_eq!(all_sent(&app, &smtp).await.len(), 3);
    assert_eq!(mails[2].to, ["alice@example.org"]);
}

async fn required_verification_refuses_logins_until_the_link_is_used(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let clock = ManualClock::new();
    let app = mail_app(backend, &smtp, &clock, &[("EMAIL_VERIFICATION", "required")]).await;
    let without = app.signup_response("bob", PASSWORD).await;
    assert_error(without, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    signup(&app, "alice", "alice@example.com").await;
    let first = token_of(&smtp.wait_for(1, WAIT).await[0]);
    // The wrong password learns nothing of the address.
    let wrong = app.login("alice", "not the password").await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let refused = app.login("alice", PASSWORD).await;
    assert_error(refused, StatusCode::FORBIDDEN, "email_not_verified").await;
    assert_eq!(all_sent(&app, &smtp).await.len(), 1, "within the cooldown, no second mail");
    // Past it, a refused login mails a new link.
    clock.advance(Duration::from_secs(61));
    assert_error(app.login("alice", PASSWORD).await, StatusCode::FORBIDDEN, "email_not_verified").await;
    let second = token_of(&smtp.wait_for(2, WAIT).await[1]);
    assert_ne!(first, second);
    assert_eq!(verify(&app, &second).await.status(), StatusCode::OK);
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

async fn an_administrator_sets_email_verified_and_a_new_address_is_unverified(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let alice = signup(&app, "alice", "alice@example.com").await;
    let link = token_of(&smtp.wait_for(1, WAIT).await[0]);
    let path = app.url(&format!("/admin/users/{}", field(&alice["user"], "id")));
    let patch = |body: Value| {
        let (app, path, admin) = (&app, path.clone(), admin.clone());
        async move {
            let response = app.client.patch(path).bearer_auth(admin).json(&body).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(patch(json!({ "email_verified": true })).await["email_verified"], true);
    assert_eq!(me(&app, field(&alice, "access_token")).await["email_verified"], true);
    // Setting the same address keeps it verified; a new one is not, and the pending link
    // no longer says what the account's address is.
    assert_eq!(patch(json!({ "email": "alice@example.com" })).await["email_verified"], true);
    let moved = patch(json!({ "email": "alice@example.net" })).await;
    assert_eq!((&moved["email"], &moved["email_verified"]), (&json!("alice@example.net"), &json!(false)));
    assert_error(verify(&app, &link).await, StatusCode::UNAUTHORIZED, "invalid_verification_token").await;
    let both = patch(json!({ "email": "alice@example.org", "email_verified": true })).await;
    assert_eq!((&both["email"], &both["email_verified"]), (&json!("alice@example.org"), &json!(true)));
    let bad = app.client.patch(&path).bearer_auth(&admin).json(&json!({ "email_verified": "yes" })).send();
    assert_eq!(bad.await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_disabled_account_cannot_use_its_verification_link(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = mail_app(backend, &smtp, &ManualClock::new(), &[]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let alice = signup(&app, "alice", "alice@example.com").await;
    let token = token_of(&smtp.wait_for(1, WAIT).await[0]);
    let path = app.url(&format!("/admin/users/{}", field(&alice["user"], "id")));
    let disabled = app.client.patch(path).bearer_auth(&admin).json(&json!({ "disabled": true })).send().await;
    assert_eq!(disabled.unwrap().status(), StatusCode::OK);
    assert_error(verify(&app, &token).await, StatusCode::FORBIDDEN, "account_disabled").await;
    assert!(!app.user_row("alice").email_verified);
}
