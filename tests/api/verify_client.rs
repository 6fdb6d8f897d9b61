//! `tollgate-verify` against the real tollgate: tokens from signup verify with their
//! claims, forgeries are refused, cached keys outlive tollgate, and the actix-web
//! extractor protects a route of another service.

use crate::common::*;
use actix_web::http::StatusCode as ActixStatus;
use actix_web::{App, HttpResponse, test, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use serde_json::{Value, json};
use tollgate_verify::{Claims, Error, Verifier, VerifierConfig};

db_tests!(
    a_token_from_signup_verifies_with_its_claims,
    forged_and_garbage_tokens_are_rejected,
    cached_keys_keep_verifying_after_tollgate_stops,
    the_extractor_protects_an_actix_route,
    a_consumer_refuses_a_deleted_users_token_after_one_poll,
    a_consumer_refuses_an_ended_sessions_token_after_one_poll_and_no_other,
);

fn verifier_for(app: &TestApp) -> Verifier {
    Verifier::new(VerifierConfig::new(&app.address))
}

fn decode_segment(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn encode_segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// `header.claims` signed by a key tollgate never had.
fn sign_with_stranger_key(header: &Value, claims: &Value) -> String {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let input = format!("{}.{}", encode_segment(header), encode_segment(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

async fn a_token_from_signup_verifies_with_its_claims(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let verifier = verifier_for(&app);

    let claims = verifier.verify(field(&signup, "access_token")).await.unwrap();
    assert_eq!(claims.sub.to_string(), field(&signup["user"], "id"));
    assert_eq!(claims.username, "alice");
    assert_eq!(claims.iss, "tollgate");
    assert_eq!(claims.aud, "tollgate");
    assert_eq!(claims.exp - claims.iat, signup["expires_in"].as_i64().unwrap());
    assert!(claims.nbf <= claims.iat + 1);

    // A second user's token comes from the same cached keys.
    let bob = app.signup("bob").await;
    assert_eq!(verifier.verify(field(&bob, "access_token")).await.unwrap().username, "bob");
}

async fn forged_and_garbage_tokens_are_rejected(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let token = field(&signup, "access_token");
    let verifier = verifier_for(&app);
    verifier.verify(token).await.unwrap();

    let header = decode_segment(token, 0);
    let claims = decode_segment(token, 1);
    let signature = token.rsplit('.').next().unwrap();

    // The genuine signature over other claims.
    let mut admin = claims.clone();
    admin["username"] = json!("admin");
    let tampered = format!("{}.{}.{signature}", encode_segment(&header), encode_segment(&admin));
    assert!(matches!(verifier.verify(&tampered).await, Err(Error::Rejected(_))));

    // Another key claiming tollgate's kid, or a kid tollgate never published.
    let stranger = sign_with_stranger_key(&header, &claims);
    assert!(matches!(verifier.verify(&stranger).await, Err(Error::Rejected(_))));
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!("not-a-tollgate-key");
    let unknown = sign_with_stranger_key(&unknown_kid, &claims);
    assert_eq!(verifier.verify(&unknown).await, Err(Error::UnknownKey));

    // alg=none, an algorithm that is not the key's, and an embedded key.
    let mut none = header.clone();
    none["alg"] = json!("none");
    let unsigned = format!("{}.{}.", encode_segment(&none), encode_segment(&claims));
    assert!(verifier.verify(&unsigned).await.is_err());
    let mut hs256 = header.clone();
    hs256["alg"] = json!("HS256");
    let confused = format!("{}.{}.{signature}", encode_segment(&hs256), encode_segment(&claims));
    assert_eq!(verifier.verify(&confused).await, Err(Error::Header));
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    let mut embedded = header.clone();
    embedded["jwk"] = jwks["keys"][0].clone();
    let with_jwk = sign_with_stranger_key(&embedded, &claims);
    assert_eq!(verifier.verify(&with_jwk).await, Err(Error::Header));

    for garbage in ["", "garbage", "a.b.c", field(&signup, "refresh_token")] {
        assert!(verifier.verify(garbage).await.is_err(), "{garbage}");
    }
}

async fn cached_keys_keep_verifying_after_tollgate_stops(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let verifier = verifier_for(&app);
    verifier.verify(field(&alice, "access_token")).await.unwrap();

    app.server.stop(true).await;
    assert!(reqwest::get(app.url("/healthz")).await.is_err(), "tollgate is down");

    assert_eq!(verifier.verify(field(&alice, "access_token")).await.unwrap().username, "alice");
    assert_eq!(verifier.verify(field(&bob, "access_token")).await.unwrap().username, "bob");
    // A verifier that never reached tollgate has nothing to verify with.
    assert!(matches!(
        verifier_for(&app).verify(field(&alice, "access_token")).await,
        Err(Error::KeysUnavailable(_))
    ));
}

async fn hello(claims: Claims) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "hello": claims.username, "sub": claims.sub }))
}

async fn the_extractor_protects_an_actix_route(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let token = field(&signup, "access_token");
    let service =
        test::init_service(App::new().app_data(verifier_for(&app)).route("/hello", web::get().to(hello)))
            .await;
    let request = |authorization: Option<String>| {
        let mut request = test::TestRequest::get().uri("/hello");
        if let Some(value) = authorization {
            request = request.insert_header(("authorization", value));
        }
        request.to_request()
    };

    let response = test::call_service(&service, request(Some(format!("Bearer {token}")))).await;
    assert_eq!(response.status(), ActixStatus::OK);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body, json!({ "hello": "alice", "sub": signup["user"]["id"] }));

    let cases = [
        (None, "missing_token", r#"Bearer realm="tollgate""#),
        (
            Some("Bearer not-a-token".to_owned()),
            "invalid_token",
            r#"Bearer realm="tollgate", error="invalid_token""#,
        ),
        (
            Some(format!("Bearer {}", field(&signup, "refresh_token"))),
            "invalid_token",
            r#"Bearer realm="tollgate", error="invalid_token""#,
        ),
    ];
    for (authorization, code, challenge) in cases {
        let response = test::call_service(&service, request(authorization)).await;
        assert_eq!(response.status(), ActixStatus::UNAUTHORIZED);
        assert_eq!(response.headers().get("www-authenticate").unwrap(), challenge);
        assert_eq!(response.headers().get("content-type").unwrap(), "application/json");
        let body: Value = test::read_body_json(response).await;
        assert_eq!(body["code"], code, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
}

/// Logs `username` in and returns the access token.
async fn login_token(app: &TestApp, username: &str) -> String {
    let body: Value = app.login(username, PASSWORD).await.json().await.unwrap();
    field(&body, "access_token").to_owned()
}

fn kid_of(token: &str) -> String {
    decode_segment(token, 0)["kid"].as_str().unwrap().to_owned()
}

/// A whole staged rotation, driven by `tollgate keys rotate`, with tollgate and a
/// consumer on manual clocks moved together 200 ms at a time, from before the new key is
/// published until after the old one retired. At each step a fresh token is issued and
/// the consumer verifies every live token: not one valid token may be refused. The
/// consumer may not lean on its unknown-`kid` refetch (spent on a forged `kid` first, with
/// a cooldown longer than the test): it must have the new key from the JWKS (`max-age`
/// 1 s) before the key signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_rejects_no_valid_token_during_a_key_rotation() {
    const TTL_SECS: i64 = 5;
    const STEP: std::time::Duration = std::time::Duration::from_millis(200);
    // One start for both clocks (a whole second), so that they say the same second at
    // every step. The CLI stamps the new key from the system clock, at or past this start.
    let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_now.as_secs());
    let tollgate_clock = tollgate::clock::ManualClock::starting_at(start.into());
    let consumer_clock = tollgate_verify::ManualClock::starting_at(start);
    let app = spawn_app_at(
        Backend::Sqlite,
        &tollgate_clock,
        &[
            ("ACCESS_TOKEN_TTL_SECS", "5"),
            ("JWT_LEEWAY_SECS", "0"),
            ("JWKS_MAX_AGE_SECS", "1"),
            ("JWT_KEY_PUBLISH_AHEAD_SECS", "3"),
        ],
    )
    .await;
    app.signup("alice").await;
    let mut config = VerifierConfig::new(&app.address);
    config.leeway_secs = 0;
    config.unknown_kid_cooldown = std::time::Duration::from_secs(3600);
    config.clock = std::sync::Arc::new(consumer_clock.clone());
    let verifier = Verifier::new(config);

    let first = login_token(&app, "alice").await;
    let first_kid = kid_of(&first);
    verifier.verify(&first).await.unwrap();
    let mut forged_header = decode_segment(&first, 0);
    forged_header["kid"] = json!("forged");
    let forged = sign_with_stranger_key(&forged_header, &decode_segment(&first, 1));
    assert_eq!(verifier.verify(&forged).await, Err(Error::UnknownKey));

    let rotated = app.command(&["keys", "rotate"]).output().unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    // "published <kid> (<alg>); it signs from <RFC 3339 time>"
    let rotated = String::from_utf8(rotated.stdout).unwrap();
    let new_kid = rotated.split_whitespace().nth(1).unwrap().to_owned();
    let signs_from = rotated.split_whitespace().last().unwrap();
    let activate_at = chrono::DateTime::parse_from_rfc3339(signs_from).unwrap().timestamp();
    // The one wait in real time: for tollgate to notice the new key file (the contract
    // gives it 5 s; this only turns a hang into a failure).
    assert!(
        eventually(std::time::Duration::from_secs(20), || async {
            app.published_kids().await.contains(&new_kid)
        })
        .await,
        "tollgate never published {new_kid}"
    );
    assert_eq!(kid_of(&login_token(&app, "alice").await), first_kid, "published before it signs");

    // The old key retires once its last token (issued the second before the activation)
    // is past `exp`; the consumer's cache lets go of it within a `max-age` more.
    let retired_at = activate_at + TTL_SECS + 1;
    let mut live: Vec<(String, i64)> = Vec::new();
    let mut kids = std::collections::BTreeSet::new();
    while tollgate_clock.now().timestamp() < retired_at + 2 {
        tollgate_clock.advance(STEP);
        consumer_clock.advance(STEP);
        let now = tollgate_clock.now().timestamp();
        let token = login_token(&app, "alice").await;
        let expected = if now < activate_at { &first_kid } else { &new_kid };
        assert_eq!(&kid_of(&token), expected, "the key signing at {now} (the new one from {activate_at})");
        kids.insert(kid_of(&token));
        let published = app.published_kids().await;
        assert!(published.contains(&new_kid), "at {now}: {published:?}");
        assert_eq!(published.contains(&first_kid), now < retired_at, "at {now}: {published:?}");
        let exp = decode_segment(&token, 1)["exp"].as_i64().unwrap();
        live.push((token, exp));
        live.retain(|(_, exp)| *exp >= now);
        for (token, exp) in &live {
            let verified = verifier.verify(token).await;
            assert!(
                verified.is_ok(),
                "at {now}, a token of kid {} valid until {exp} was refused: {verified:?}",
                kid_of(token)
            );
        }
        // A refresh of the consumer's keys that this step started is over before the
        // clocks move on.
        verifier.wait_for_fetch().await;
    }
    assert_eq!(kids, [first_kid, new_kid].into(), "the rotation took place");
    assert_eq!(verifier.verify(&first).await, Err(Error::UnknownKey), "the old key retired");
}

/// With the feed token configured, the consumer polls `/auth/revocations` and refuses a
/// logged-out user's earlier tokens within its poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_learns_of_a_logout_from_the_revocation_feed() {
    const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";
    let app = spawn_app_with(Backend::Sqlite, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let signup = app.signup("erin").await;
    let access = field(&signup, "access_token");
    let consumer = FeedConsumer::new(&app, FEED_TOKEN);
    assert!(consumer.verifier.verify(access).await.is_ok());

    let logout = app.client.post(app.url("/auth/logout")).bearer_auth(access).send().await.unwrap();
    assert_eq!(logout.status(), reqwest::StatusCode::NO_CONTENT);
    assert!(consumer.hears_of_the_revocation_of(access).await, "the consumer never heard of the logout");
    let verifier = consumer.verifier;
    // A token issued after the logout is fine.
    let fresh = login_token(&app, "erin").await;
    assert_eq!(verifier.verify(&fresh).await.unwrap().username, "erin");
}

/// The issue saw a deleted user vanish from the feed, so that consumers accepted its
/// tokens until `exp` while introspection said `{"active": false}`.
async fn a_consumer_refuses_a_deleted_users_token_after_one_poll(backend: Backend) {
    const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";
    let app = spawn_app_with(backend, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN)]).await;
    let admin = crate::admin::admin_token(&app, "root").await;
    let signup = app.signup("gina").await;
    let access = field(&signup, "access_token");
    let consumer = FeedConsumer::new(&app, FEED_TOKEN);
    assert!(consumer.verifier.verify(access).await.is_ok());

    let path = format!("/admin/users/{}", field(&signup["user"], "id"));
    let deleted = app.client.delete(app.url(&path)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(deleted.status(), reqwest::StatusCode::NO_CONTENT);
    assert!(consumer.hears_of_the_revocation_of(access).await, "the consumer never heard of the deletion");
}

async fn a_consumer_refuses_an_ended_sessions_token_after_one_poll_and_no_other(backend: Backend) {
    const FEED_TOKEN: &str = "a-revocation-feed-token-for-tests";
    let app =
        spawn_app_with(backend, &[("REVOCATION_FEED_TOKEN", FEED_TOKEN), ("SESSIONS_PER_USER", "2")]).await;
    let phone = app.signup("hana").await;
    let laptop: Value = app.login("hana", PASSWORD).await.json().await.unwrap();
    let (phone, laptop) = (field(&phone, "access_token"), field(&laptop, "access_token"));
    let consumer = FeedConsumer::new(&app, FEED_TOKEN);
    assert!(consumer.verifier.verify(phone).await.is_ok());
    assert!(consumer.verifier.verify(laptop).await.is_ok());

    let sid = field(&access_claims(phone), "sid").to_owned();
    let ended = app.client.delete(app.url(&format!("/auth/sessions/{sid}"))).bearer_auth(laptop).send().await;
    assert_eq!(ended.unwrap().status(), reqwest::StatusCode::NO_CONTENT);
    assert!(
        consumer.hears_of_the_revocation_of(phone).await,
        "the consumer never heard of the ended session"
    );
    assert!(consumer.verifier.verify(laptop).await.is_ok(), "the other session's token still verifies");
}

/// A consumer polling the revocation feed, on a clock of the test's.
struct FeedConsumer {
    verifier: Verifier,
    clock: tollgate_verify::ManualClock,
    interval: std::time::Duration,
}

impl FeedConsumer {
    fn new(app: &TestApp, feed_token: &str) -> Self {
        let mut config = VerifierConfig::new(&app.address);
        config.revocation_token = Some(feed_token.to_owned());
        let interval = std::time::Duration::from_secs(5);
        config.revocation_poll_interval = interval;
        let clock = tollgate_verify::ManualClock::new();
        config.clock = std::sync::Arc::new(clock.clone());
        Self { verifier: Verifier::new(config), clock, interval }
    }

    /// Whether, within one poll interval on the consumer's clock, it refuses `access` as
    /// revoked: the poll it starts is an HTTP round trip to tollgate, the only thing
    /// waited for.
    async fn hears_of_the_revocation_of(&self, access: &str) -> bool {
        self.clock.advance(self.interval);
        let heard = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while self.verifier.verify(access).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        heard.is_ok() && self.verifier.verify(access).await == Err(Error::Revoked)
    }
}
