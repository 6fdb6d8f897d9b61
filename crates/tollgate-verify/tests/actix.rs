//! The actix-web extractors against a fake tollgate: status codes, challenges and bodies.
#![cfg(feature = "actix")]

mod support;

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};
use serde_json::{Value, json};
use support::{FakeTollgate, TestKey, claims, claims_for, closed_url, now};
use tollgate_verify::actix::{AuthError, AuthenticatedUser, Role, WithMfa, WithRole};
use tollgate_verify::{Claims, Verifier, VerifierConfig};
use uuid::Uuid;

async fn hello(claims: Claims) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "hello": claims.username, "sub": claims.sub }))
}

async fn whoami(user: AuthenticatedUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "id": user.id, "username": user.username }))
}

struct Editor;

impl Role for Editor {
    const NAME: &'static str = "editor";
}

async fn edit(editor: WithRole<Editor>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "editor": editor.claims.username }))
}

async fn sensitive(user: WithMfa) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": user.claims.username, "amr": user.claims.amr }))
}

async fn maybe(claims: Option<Claims>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": claims.map(|c| c.username) }))
}

macro_rules! app {
    ($verifier:expr) => {
        test::init_service(
            App::new()
                .app_data($verifier)
                .route("/hello", web::get().to(hello))
                .route("/whoami", web::get().to(whoami))
                .route("/maybe", web::get().to(maybe))
                .route("/edit", web::get().to(edit))
                .route("/sensitive", web::get().to(sensitive)),
        )
        .await
    };
}

fn get(path: &str, authorization: &[&str]) -> test::TestRequest {
    let mut request = test::TestRequest::get().uri(path);
    for value in authorization {
        request = request.append_header(("authorization", *value));
    }
    request
}

/// Asserts the status and the `{"error", "code"}` body; returns the response headers.
async fn assert_error(
    response: ServiceResponse,
    status: StatusCode,
    code: &str,
) -> actix_web::http::header::HeaderMap {
    assert_eq!(response.status(), status);
    let headers = response.headers().clone();
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    headers
}

#[actix_web::test]
async fn a_valid_token_reaches_the_handler() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let app = app!(Verifier::new(tollgate.config()));
    let sub = Uuid::new_v4();
    let token = key.sign(&claims_for(sub, now()));

    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response =
            test::call_service(&app, get("/hello", &[&format!("{scheme} {token}")]).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = test::read_body_json(response).await;
        assert_eq!(body, json!({ "hello": "alice", "sub": sub }));
    }
    let response = test::call_service(&app, get("/whoami", &[&format!("Bearer {token}")]).to_request()).await;
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body, json!({ "id": sub, "username": "alice" }));

    let response = test::call_service(&app, get("/maybe", &[&format!("Bearer {token}")]).to_request()).await;
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body, json!({ "user": "alice" }));
    let response = test::call_service(&app, get("/maybe", &[]).to_request()).await;
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body, json!({ "user": null }));
}

#[actix_web::test]
async fn web_data_registration_works_too() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let app = app!(web::Data::new(Verifier::new(tollgate.config())));
    let token = key.sign(&claims());
    let response = test::call_service(&app, get("/hello", &[&format!("Bearer {token}")]).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_web::test]
async fn missing_and_invalid_tokens_are_401_with_a_challenge() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let app = app!(Verifier::new(tollgate.config()));

    let response = test::call_service(&app, get("/hello", &[]).to_request()).await;
    let headers = assert_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    assert_eq!(headers.get("www-authenticate").unwrap(), r#"Bearer realm="tollgate""#);

    let forged = TestKey::generate("key-1").sign(&claims());
    let mut expired = claims();
    expired["exp"] = json!(now() - 600);
    let expired = key.sign(&expired);
    let invalid = [
        "Bearer garbage".to_owned(),
        format!("Bearer {forged}"),
        format!("Bearer {expired}"),
        format!("Basic {}", key.sign(&claims())),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {}", "x".repeat(5000)),
    ];
    for value in &invalid {
        let response = test::call_service(&app, get("/hello", &[value]).to_request()).await;
        let headers = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
        assert_eq!(
            headers.get("www-authenticate").unwrap(),
            r#"Bearer realm="tollgate", error="invalid_token""#
        );
    }

    let token = key.sign(&claims());
    let both = format!("Bearer {token}");
    let response = test::call_service(&app, get("/hello", &[&both, &both]).to_request()).await;
    let headers = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(!headers.contains_key("www-authenticate"), "tollgate sends no challenge with a 400");
}

#[actix_web::test]
async fn a_revoked_token_is_401() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let user = Uuid::new_v4();
    tollgate.set(|s| {
        s.feed_body = json!({ "revocations": [{ "sub": user, "not_before": now() }], "now": now() })
    });
    let verifier = Verifier::new(tollgate.feed_config());
    let _poller = verifier.spawn_revocation_poller().unwrap();
    tollgate.poll_feed(2).await;
    let app = app!(verifier);

    let token = key.sign(&claims_for(user, now() - 60));
    let response = test::call_service(&app, get("/hello", &[&format!("Bearer {token}")]).to_request()).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[actix_web::test]
async fn no_keys_ever_is_503_and_no_verifier_is_500() {
    let key = TestKey::generate("key-1");
    let token = format!("Bearer {}", key.sign(&claims()));

    let app = app!(Verifier::new(VerifierConfig::new(closed_url().await)));
    let response = test::call_service(&app, get("/hello", &[&token]).to_request()).await;
    let headers = assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    assert!(headers.contains_key("retry-after"));

    let app = test::init_service(App::new().route("/hello", web::get().to(hello))).await;
    let response = test::call_service(&app, get("/hello", &[&token]).to_request()).await;
    assert_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal_error").await;
}

#[actix_web::test]
async fn a_role_extractor_lets_in_only_tokens_with_the_role() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let app = app!(Verifier::new(tollgate.config()));
    let mut editor = claims();
    editor["roles"] = json!(["admin", "editor"]);
    let response =
        test::call_service(&app, get("/edit", &[&format!("Bearer {}", key.sign(&editor))]).to_request())
            .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body, json!({ "editor": "alice" }));

    // A valid token with other roles, none, or one that merely contains the name.
    for roles in [json!(["admin"]), json!([]), json!(["editors", "Editor", "editor:read"])] {
        let mut other = claims();
        other["roles"] = roles;
        let request = get("/edit", &[&format!("Bearer {}", key.sign(&other))]).to_request();
        let headers =
            assert_error(test::call_service(&app, request).await, StatusCode::FORBIDDEN, "forbidden").await;
        assert!(headers.get("www-authenticate").is_none());
    }
    // Without a valid token it is the usual 401, not a 403 that would confirm the route.
    let response = test::call_service(&app, get("/edit", &[]).to_request()).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    let response = test::call_service(&app, get("/edit", &["Bearer forged.token.value"]).to_request()).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[actix_web::test]
async fn an_mfa_extractor_lets_in_only_sessions_signed_in_with_a_second_factor() {
    let key = TestKey::generate("key-1");
    let tollgate = FakeTollgate::start(&[&key]).await;
    let app = app!(Verifier::new(tollgate.config()));

    // What tollgate issues after a password and a TOTP or recovery code, and after a passkey.
    for amr in [json!(["mfa", "otp", "pwd"]), json!(["hwk", "mfa", "user"])] {
        let mut two_factors = claims();
        two_factors["amr"] = amr.clone();
        let request = get("/sensitive", &[&format!("Bearer {}", key.sign(&two_factors))]).to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = test::read_body_json(response).await;
        assert_eq!(body, json!({ "user": "alice", "amr": amr }));
    }

    // A password alone, a token from before `amr` (none, or empty), and methods that merely
    // look like it: 403 mfa_required, without a challenge (the token itself is fine).
    for amr in [Some(json!(["pwd"])), None, Some(json!([])), Some(json!(["MFA", "mfa:otp", "otp", "pwd"]))] {
        let mut one_factor = claims();
        if let Some(amr) = amr {
            one_factor["amr"] = amr;
        }
        let request = get("/sensitive", &[&format!("Bearer {}", key.sign(&one_factor))]).to_request();
        let response = test::call_service(&app, request).await;
        let headers = assert_error(response, StatusCode::FORBIDDEN, "mfa_required").await;
        assert!(headers.get("www-authenticate").is_none());
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    }

    // The same token still passes the extractors that ask for no second factor.
    let password_only = key.sign(&claims());
    let response =
        test::call_service(&app, get("/hello", &[&format!("Bearer {password_only}")]).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Without a valid token it is the usual 401, and two headers the usual 400.
    let response = test::call_service(&app, get("/sensitive", &[]).to_request()).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    let mut expired = claims();
    expired["amr"] = json!(["mfa", "otp", "pwd"]);
    expired["exp"] = json!(now() - 600);
    let request = get("/sensitive", &[&format!("Bearer {}", key.sign(&expired))]).to_request();
    assert_error(test::call_service(&app, request).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let both = format!("Bearer {password_only}");
    let response = test::call_service(&app, get("/sensitive", &[&both, &both]).to_request()).await;
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[actix_web::test]
async fn mfa_required_is_tollgates_own_answer() {
    assert_eq!(AuthError::MfaRequired.code(), "mfa_required");
    assert_eq!(AuthError::MfaRequired.to_string(), "this needs a session signed in with a second factor");
}
