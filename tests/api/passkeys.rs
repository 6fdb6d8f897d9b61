//! Passkeys (WebAuthn) against a software authenticator written from the specification
//! (WebAuthn Level 3 §6, CTAP2's CBOR): registration, the sign-in without a password with
//! `amr` `["hwk","mfa","user"]`, and every answer that must be refused: a replayed or
//! expired flow, a wrong origin, RP id, challenge, type or signature, a sign counter that
//! goes backwards, an unknown credential, a disabled account, malformed JSON.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use rand::RngCore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate::clock::ManualClock;
use tollgate::db::schema::{passkeys, users};

use crate::common::*;

db_tests!(
    a_passkey_registered_signs_in_without_a_password,
    a_flow_is_single_use_and_lives_300_seconds,
    an_answer_for_another_origin_rp_challenge_or_type_is_refused,
    a_forged_signature_an_unknown_credential_and_a_counter_going_back_are_refused,
    a_disabled_account_gets_403_and_a_removed_passkey_signs_in_no_more,
    a_user_has_at_most_ten_passkeys_and_a_credential_registers_once,
    malformed_answers_get_400_or_422,
);

const ORIGIN: &str = "http://localhost:3000";
const PASSKEY_ENV: &[(&str, &str)] = &[("WEBAUTHN_RP_ID", "localhost"), ("WEBAUTHN_ORIGINS", ORIGIN)];

/// CBOR (RFC 8949) of the few kinds an authenticator's answers need.
mod cbor {
    fn head(major: u8, len: usize, out: &mut Vec<u8>) {
        let major = major << 5;
        match len {
            0..24 => out.push(major | len as u8),
            24..256 => out.extend([major | 24, len as u8]),
            _ => {
                out.push(major | 25);
                out.extend((len as u16).to_be_bytes());
            }
        }
    }

    pub fn bytes(value: &[u8], out: &mut Vec<u8>) {
        head(2, value.len(), out);
        out.extend(value);
    }

    pub fn text(value: &str, out: &mut Vec<u8>) {
        head(3, value.len(), out);
        out.extend(value.as_bytes());
    }

    pub fn map(entries: usize, out: &mut Vec<u8>) {
        head(5, entries, out);
    }

    /// An integer between -24 and 23.
    pub fn small(value: i8, out: &mut Vec<u8>) {
        match value {
            0.. => out.push(value as u8),
            _ => out.push(0x20 | (-1 - value) as u8),
        }
    }
}

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

/// A platform authenticator holding one discoverable ES256 credential.
struct SoftPasskey {
    key: SigningKey,
    credential_id: Vec<u8>,
    user_handle: Vec<u8>,
    rp_id: String,
    counter: u32,
}

/// What a browser would make of an authenticator's answer, and what can be bent in it.
struct Ceremony<'a> {
    origin: &'a str,
    kind: &'a str,
    /// Replaces the options' challenge.
    challenge: Option<String>,
    /// Replaces the RP id the authenticator hashes.
    rp_id: Option<&'a str>,
    flags: u8,
}

impl Default for Ceremony<'_> {
    fn default() -> Self {
        Self { origin: ORIGIN, kind: "", challenge: None, rp_id: None, flags: UP | UV }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SoftPasskey {
    /// A new credential for the user and RP of registration options.
    fn new(options: &Value) -> SoftPasskey {
        let mut credential_id = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut credential_id);
        SoftPasskey {
            key: SigningKey::random(&mut rand::thread_rng()),
            credential_id,
            user_handle: URL_SAFE_NO_PAD.decode(field(&options["user"], "id")).unwrap(),
            rp_id: field(&options["rp"], "id").to_owned(),
            counter: 0,
        }
    }

    /// A new credential answering registration options, as `navigator.credentials.create()`
    /// then `toJSON()`.
    fn register(options: &Value, ceremony: Ceremony) -> (SoftPasskey, Value) {
        let passkey = SoftPasskey::new(options);
        let answer = passkey.registration_answer(options, ceremony);
        (passkey, answer)
    }

    fn registration_answer(&self, options: &Value, ceremony: Ceremony) -> Value {
        let client_data = self.client_data(options, &Ceremony { kind: "webauthn.create", ..ceremony });
        let mut auth_data = self.auth_data(ceremony.rp_id, ceremony.flags | AT);
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        self.cose_key(&mut auth_data);
        let mut attestation = Vec::new();
        cbor::map(3, &mut attestation);
        cbor::text("fmt", &mut attestation);
        cbor::text("none", &mut attestation);
        cbor::text("attStmt", &mut attestation);
        cbor::map(0, &mut attestation);
        cbor::text("authData", &mut attestation);
        cbor::bytes(&auth_data, &mut attestation);
        self.credential(json!({
            "clientDataJSON": b64(client_data.as_bytes()),
            "attestationObject": b64(&attestation),
            "transports": ["internal"],
        }))
    }

    /// Answers sign-in options, as `navigator.credentials.get()` then `toJSON()`; the
    /// counter moves on by one first.
    fn sign_in(&mut self, options: &Value, ceremony: Ceremony) -> Value {
        self.counter += 1;
        let client_data = self.client_data(options, &Ceremony { kind: "webauthn.get", ..ceremony });
        let auth_data = self.auth_data(ceremony.rp_id, ceremony.flags);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(client_data.as_bytes()));
        let signature: DerSignature = self.key.sign(&signed);
        self.credential(json!({
            "clientDataJSON": b64(client_data.as_bytes()),
            "authenticatorData": b64(&auth_data),
            "signature": b64(signature.as_bytes()),
            "userHandle": b64(&self.user_handle),
        }))
    }

    /// A `PublicKeyCredential` of this credential with `response`, as `toJSON()` gives it.
    fn credential(&self, response: Value) -> Value {
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        })
    }

    fn client_data(&self, options: &Value, ceremony: &Ceremony) -> String {
        let challenge = ceremony.challenge.clone().unwrap_or_else(|| field(options, "challenge").to_owned());
        json!({ "type": ceremony.kind, "challenge": challenge, "origin": ceremony.origin, "crossOrigin": false })
            .to_string()
    }

    fn auth_data(&self, rp_id: Option<&str>, flags: u8) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.unwrap_or(&self.rp_id).as_bytes()).to_vec();
        data.push(flags);
        data.extend(self.counter.to_be_bytes());
        data
    }

    /// The public key as COSE (RFC 9053): EC2, ES256, P-256, x, y.
    fn cose_key(&self, out: &mut Vec<u8>) {
        let point = self.key.verifying_key().to_encoded_point(false);
        cbor::map(5, out);
        for (label, value) in [(1, 2), (3, -7), (-1, 1)] {
            cbor::small(label, out);
            cbor::small(value, out);
        }
        cbor::small(-2, out);
        cbor::bytes(point.x().unwrap(), out);
        cbor::small(-3, out);
        cbor::bytes(point.y().unwrap(), out);
    }
}

async fn bearer_post(app: &TestApp, path: &str, bearer: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(bearer).json(body).send().await.unwrap()
}

/// A registration's options: the flow id and the `publicKey` object.
async fn registration_options(app: &TestApp, bearer: &str) -> (String, Value) {
    let response = bearer_post(app, "/auth/passkeys/register/options", bearer, &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    (field(&body, "flow_id").to_owned(), body["publicKey"].clone())
}

async fn finish_registration(
    app: &TestApp,
    bearer: &str,
    flow_id: &str,
    answer: &Value,
) -> reqwest::Response {
    let body = json!({ "flow_id": flow_id, "credential": answer, "name": "test key" });
    bearer_post(app, "/auth/passkeys/register", bearer, &body).await
}

/// Signs `username` up and registers a passkey: the session and the authenticator.
async fn registered(app: &TestApp, username: &str) -> (Value, SoftPasskey) {
    let session = app.signup(username).await;
    let bearer = field(&session, "access_token");
    let (flow_id, options) = registration_options(app, bearer).await;
    let (passkey, answer) = SoftPasskey::register(&options, Ceremony::default());
    let response = finish_registration(app, bearer, &flow_id, &answer).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    (session, passkey)
}

async fn login_options(app: &TestApp) -> (String, Value) {
    let response = app.post_json("/auth/passkeys/login/options", &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    (field(&body, "flow_id").to_owned(), body["publicKey"].clone())
}

async fn finish_login(app: &TestApp, flow_id: &str, answer: &Value) -> reqwest::Response {
    app.post_json("/auth/passkeys/login", &json!({ "flow_id": flow_id, "credential": answer })).await
}

/// A sign-in answered with `ceremony`: the response.
async fn sign_in(app: &TestApp, passkey: &mut SoftPasskey, ceremony: Ceremony<'_>) -> reqwest::Response {
    let (flow_id, options) = login_options(app).await;
    let answer = passkey.sign_in(&options, ceremony);
    finish_login(app, &flow_id, &answer).await
}

/// `GET /auth/passkeys` of the bearer's user: the list.
async fn passkeys_of(app: &TestApp, bearer: &str) -> Vec<Value> {
    let response = app.client.get(app.url("/auth/passkeys")).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["passkeys"].as_array().unwrap().clone()
}

async fn assert_refused(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_passkey", "{what}: {body}");
}

fn stored_counter(app: &TestApp, user_id: &str) -> (i64, Option<i64>) {
    let mut conn = app.pool.get().unwrap();
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .select((passkeys::sign_count, passkeys::last_used_at_ms))
        .first(&mut **conn)
        .unwrap()
}

async fn a_passkey_registered_signs_in_without_a_password(backend: Backend) {
    let app = spawn_app_with(backend, PASSKEY_ENV).await;
    let session = app.signup("alice").await;
    let bearer = field(&session, "access_token");
    let user_id = field(&session["user"], "id").to_owned();

    let (flow_id, options) = registration_options(&app, bearer).await;
    assert_eq!(options["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["user"]["name"], "alice", "{options}");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required", "{options}");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required", "{options}");
    assert!(field(&options, "challenge").len() >= 43, "{options}");
    let (mut passkey, answer) = SoftPasskey::register(&options, Ceremony::default());
    let response = finish_registration(&app, bearer, &flow_id, &answer).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let added: Value = response.json().await.unwrap();
    assert_eq!(added["name"], "test key");
    assert!(added["last_used_at"].is_null(), "{added}");
    let passkey_id = field(&added, "id").to_owned();
    assert_eq!(stored_counter(&app, &user_id), (0, None));

    // Discoverable: the options name no credential, and no username is sent.
    let (flow_id, options) = login_options(&app).await;
    assert_eq!(options["rpId"], "localhost", "{options}");
    assert!(
        options.get("allowCredentials").is_none_or(|c| c.as_array().is_some_and(Vec::is_empty)),
        "{options}"
    );
    let answer = passkey.sign_in(&options, Ceremony::default());
    let response = finish_login(&app, &flow_id, &answer).await;
    assert_eq!(response.status(), StatusCode::OK);
    let signed_in: Value = response.json().await.unwrap();
    assert_eq!(signed_in["user"]["id"], user_id.as_str());
    let claims = access_claims(field(&signed_in, "access_token"));
    assert_eq!(claims["amr"], json!(["hwk", "mfa", "user"]), "{claims}");
    let (count, last_used) = stored_counter(&app, &user_id);
    assert_eq!(count, 1);
    assert!(last_used.is_some());

    // A refresh keeps the session's methods.
    let refreshed =
        app.post_json("/auth/refresh", &json!({ "refresh_token": signed_in["refresh_token"] })).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(access_claims(field(&refreshed, "access_token"))["amr"], json!(["hwk", "mfa", "user"]));

    let listed = passkeys_of(&app, field(&refreshed, "access_token")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], passkey_id.as_str());
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
    assert!(listed[0].get("credential").is_none() && listed[0].get("credential_id").is_none());
}

async fn a_flow_is_single_use_and_lives_300_seconds(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, PASSKEY_ENV).await;
    let (_, mut passkey) = registered(&app, "bob").await;

    // The same answer twice, and two answers to one flow at once: one sign-in.
    let (flow_id, options) = login_options(&app).await;
    let answer = passkey.sign_in(&options, Ceremony::default());
    let (first, second) =
        tokio::join!(finish_login(&app, &flow_id, &answer), finish_login(&app, &flow_id, &answer));
    let mut statuses = [first.status(), second.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    assert_refused(finish_login(&app, &flow_id, &answer).await, "a replayed flow").await;

    // Expired: 300 s and a moment later.
    let (flow_id, options) = login_options(&app).await;
    clock.advance(Duration::from_secs(301));
    let answer = passkey.sign_in(&options, Ceremony::default());
    assert_refused(finish_login(&app, &flow_id, &answer).await, "an expired flow").await;
    // The expired flow is gone, the next one is taken in time.
    let (flow_id, options) = login_options(&app).await;
    clock.advance(Duration::from_secs(299));
    let answer = passkey.sign_in(&options, Ceremony::default());
    assert_eq!(finish_login(&app, &flow_id, &answer).await.status(), StatusCode::OK);

    // A login flow does not finish a registration, nor the reverse.
    let session = app.signup("carol").await;
    let bearer = field(&session, "access_token");
    let (login_flow, options) = login_options(&app).await;
    let (_, unused_options) = registration_options(&app, bearer).await;
    let (_, registration) = SoftPasskey::register(&unused_options, Ceremony::default());
    assert_refused(finish_registration(&app, bearer, &login_flow, &registration).await, "a login flow").await;
    let (register_flow, _) = registration_options(&app, bearer).await;
    let answer = passkey.sign_in(&options, Ceremony::default());
    assert_refused(finish_login(&app, &register_flow, &answer).await, "a registration flow").await;
    // Another user's registration flow.
    let other = app.signup("dave").await;
    let (flow_id, options) = registration_options(&app, field(&other, "access_token")).await;
    let (_, answer) = SoftPasskey::register(&options, Ceremony::default());
    assert_refused(finish_registration(&app, bearer, &flow_id, &answer).await, "another user's flow").await;
}

async fn an_answer_for_another_origin_rp_challenge_or_type_is_refused(backend: Backend) {
    let app = spawn_app_with(backend, PASSKEY_ENV).await;
    let session = app.signup("erin").await;
    let bearer = field(&session, "access_token");
    let wrong = || b64(&[7u8; 32]);
    for (what, ceremony) in [
        ("another origin", Ceremony { origin: "https://evil.example", ..Ceremony::default() }),
        ("another port", Ceremony { origin: "http://localhost:3001", ..Ceremony::default() }),
        ("another RP id", Ceremony { rp_id: Some("evil.example"), ..Ceremony::default() }),
        ("another challenge", Ceremony { challenge: Some(wrong()), ..Ceremony::default() }),
        ("no user verification", Ceremony { flags: UP, ..Ceremony::default() }),
    ] {
        let (flow_id, options) = registration_options(&app, bearer).await;
        let (_, answer) = SoftPasskey::register(&options, ceremony);
        assert_refused(finish_registration(&app, bearer, &flow_id, &answer).await, what).await;
    }
    // A registration answer's type is `webauthn.create`: a sign-in's client data is refused.
    let (flow_id, options) = registration_options(&app, bearer).await;
    let (passkey, mut answer) = SoftPasskey::register(&options, Ceremony::default());
    let get = passkey.client_data(&options, &Ceremony { kind: "webauthn.get", ..Ceremony::default() });
    answer["response"]["clientDataJSON"] = json!(b64(get.as_bytes()));
    assert_refused(finish_registration(&app, bearer, &flow_id, &answer).await, "a create of type get").await;

    let (_, mut passkey) = registered(&app, "frank").await;
    for (what, ceremony) in [
        ("another origin", Ceremony { origin: "https://evil.example", ..Ceremony::default() }),
        ("another RP id", Ceremony { rp_id: Some("evil.example"), ..Ceremony::default() }),
        ("another challenge", Ceremony { challenge: Some(wrong()), ..Ceremony::default() }),
        ("no user verification", Ceremony { flags: UP, ..Ceremony::default() }),
    ] {
        assert_refused(sign_in(&app, &mut passkey, ceremony).await, what).await;
    }
    let (flow_id, options) = login_options(&app).await;
    let mut answer = passkey.sign_in(&options, Ceremony::default());
    let create = passkey.client_data(&options, &Ceremony { kind: "webauthn.create", ..Ceremony::default() });
    answer["response"]["clientDataJSON"] = json!(b64(create.as_bytes()));
    assert_refused(finish_login(&app, &flow_id, &answer).await, "a get of type create").await;
    // And the genuine answer still works.
    assert_eq!(sign_in(&app, &mut passkey, Ceremony::default()).await.status(), StatusCode::OK);
}

async fn a_forged_signature_an_unknown_credential_and_a_counter_going_back_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, PASSKEY_ENV).await;
    let (session, mut passkey) = registered(&app, "grace").await;
    let user_id = field(&session["user"], "id").to_owned();

    // Signed by another key.
    let genuine = std::mem::replace(&mut passkey.key, SigningKey::random(&mut rand::thread_rng()));
    assert_refused(sign_in(&app, &mut passkey, Ceremony::default()).await, "a forged signature").await;
    passkey.key = genuine;
    // A credential nobody registered, with the user's handle.
    let (flow_id, options) = login_options(&app).await;
    let mut answer = passkey.sign_in(&options, Ceremony::default());
    answer["id"] = json!(b64(&[9u8; 32]));
    answer["rawId"] = answer["id"].clone();
    assert_refused(finish_login(&app, &flow_id, &answer).await, "an unknown credential").await;
    // The user handle of another user.
    let other = app.signup("heidi").await;
    let (flow_id, options) = login_options(&app).await;
    let mut answer = passkey.sign_in(&options, Ceremony::default());
    let other_id = uuid::Uuid::parse_str(field(&other["user"], "id")).unwrap();
    answer["response"]["userHandle"] = json!(b64(other_id.as_bytes()));
    assert_refused(finish_login(&app, &flow_id, &answer).await, "another user's handle").await;

    // The counter: 5, then 3 (a clone of the authenticator) is refused and stores nothing.
    passkey.counter = 4;
    assert_eq!(sign_in(&app, &mut passkey, Ceremony::default()).await.status(), StatusCode::OK);
    assert_eq!(stored_counter(&app, &user_id).0, 5);
    passkey.counter = 2;
    assert_refused(sign_in(&app, &mut passkey, Ceremony::default()).await, "a counter going back").await;
    passkey.counter = 4;
    assert_refused(sign_in(&app, &mut passkey, Ceremony::default()).await, "a counter standing still").await;
    assert_eq!(stored_counter(&app, &user_id).0, 5);
    assert_eq!(sign_in(&app, &mut passkey, Ceremony::default()).await.status(), StatusCode::OK);
    assert_eq!(stored_counter(&app, &user_id).0, 6);
}

async fn a_disabled_account_gets_403_and_a_removed_passkey_signs_in_no_more(backend: Backend) {
    let app = spawn_app_with(backend, PASSKEY_ENV).await;
    let (session, mut passkey) = registered(&app, "ivan").await;
    let user_id = field(&session["user"], "id").to_owned();
    {
        let mut conn = app.pool.get().unwrap();
        diesel::update(users::table.filter(users::id.eq(&user_id)))
            .set(users::disabled.eq(true))
            .execute(&mut **conn)
            .unwrap();
    }
    let response = sign_in(&app, &mut passkey, Ceremony::default()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "account_disabled");
    {
        let mut conn = app.pool.get().unwrap();
        diesel::update(users::table.filter(users::id.eq(&user_id)))
            .set(users::disabled.eq(false))
            .execute(&mut **conn)
            .unwrap();
    }
    let signed_in: Value = sign_in(&app, &mut passkey, Ceremony::default()).await.json().await.unwrap();
    let bearer = field(&signed_in, "access_token");
    let id = field(&passkeys_of(&app, bearer).await[0], "id").to_owned();

    // Another user cannot remove it; its owner can, once.
    let other = app.signup("judy").await;
    let path = format!("/auth/passkeys/{id}");
    let theirs =
        app.client.delete(app.url(&path)).bearer_auth(field(&other, "access_token")).send().await.unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let removed = app.client.delete(app.url(&path)).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let again = app.client.delete(app.url(&path)).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_refused(sign_in(&app, &mut passkey, Ceremony::default()).await, "a removed passkey").await;
    let malformed =
        app.client.delete(app.url("/auth/passkeys/not-a-uuid")).bearer_auth(bearer).send().await.unwrap();
    assert!(malformed.status().is_client_error(), "{}", malformed.status());
}

async fn a_user_has_at_most_ten_passkeys_and_a_credential_registers_once(backend: Backend) {
    let app = spawn_app_with(backend, PASSKEY_ENV).await;
    let (session, first) = registered(&app, "kim").await;
    let bearer = field(&session, "access_token");

    // The options exclude the credentials the user has; the same credential id registered
    // by another user is refused.
    let (_, options) = registration_options(&app, bearer).await;
    assert_eq!(options["excludeCredentials"].as_array().map(Vec::len), Some(1), "{options}");
    let other = app.signup("leo").await;
    let other_bearer = field(&other, "access_token");
    let (flow_id, options) = registration_options(&app, other_bearer).await;
    let mut copy = SoftPasskey::new(&options);
    copy.credential_id = first.credential_id.clone();
    let answer = copy.registration_answer(&options, Ceremony::default());
    let response = finish_registration(&app, other_bearer, &flow_id, &answer).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "passkey_exists");

    for _ in 1..10 {
        let (flow_id, options) = registration_options(&app, bearer).await;
        let (_, answer) = SoftPasskey::register(&options, Ceremony::default());
        assert_eq!(finish_registration(&app, bearer, &flow_id, &answer).await.status(), StatusCode::CREATED);
    }
    let response = bearer_post(&app, "/auth/passkeys/register/options", bearer, &json!({})).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "passkey_limit");
    let mut conn = app.pool.get().unwrap();
    let owned: i64 = passkeys::table
        .filter(passkeys::user_id.eq(field(&session["user"], "id")))
        .count()
        .get_result(&mut **conn)
        .unwrap();
    assert_eq!(owned, 10);
}

async fn malformed_answers_get_400_or_422(backend: Backend) {
    let app = spawn_app_with(backend, PASSKEY_ENV).await;
    let (session, mut passkey) = registered(&app, "mallory").await;
    let bearer = field(&session, "access_token");
    let (flow_id, options) = login_options(&app).await;
    let genuine = passkey.sign_in(&options, Ceremony::default());
    let mut bodies = vec![
        json!({}),
        json!({ "flow_id": flow_id }),
        json!({ "flow_id": "not-a-uuid", "credential": genuine }),
        json!({ "flow_id": flow_id, "credential": 7 }),
        json!({ "flow_id": flow_id, "credential": { "id": "x" } }),
        json!({ "flow_id": flow_id, "credential": [] }),
    ];
    for (path, value) in [
        ("/response/clientDataJSON", json!("%%%")),
        ("/response/clientDataJSON", json!(b64(b"{not json"))),
        ("/response/clientDataJSON", json!(b64(b"{\"type\":1}"))),
        ("/response/authenticatorData", json!(b64(b"short"))),
        ("/response/authenticatorData", json!(7)),
        ("/response/signature", json!(b64(b"not DER"))),
        ("/response/userHandle", json!(b64(b"not a uuid"))),
        ("/response/userHandle", json!(null)),
        ("/rawId", json!({ "deep": [1, 2, { "deeper": null }] })),
        ("/type", json!("password")),
    ] {
        let mut answer = genuine.clone();
        *answer.pointer_mut(path).unwrap() = value;
        bodies.push(json!({ "flow_id": flow_id, "credential": answer }));
    }
    for body in &bodies {
        let response = app.post_json("/auth/passkeys/login", body).await;
        let status = response.status();
        assert!([400, 401, 422].contains(&status.as_u16()), "{body}: {status}");
        let error: Value = response.json().await.unwrap();
        assert!(error["code"].is_string(), "{body}: {error}");
    }
    let (flow_id, options) = registration_options(&app, bearer).await;
    let (_, genuine) = SoftPasskey::register(&options, Ceremony::default());
    for (path, value) in [
        ("/response/attestationObject", json!(b64(b"\xa1\x63fmt"))),
        ("/response/attestationObject", json!(b64(&[0xff; 64]))),
        ("/response/attestationObject", json!("%%%")),
        ("/response/clientDataJSON", json!(b64(b"[]"))),
        ("/id", json!(null)),
    ] {
        let mut answer = genuine.clone();
        *answer.pointer_mut(path).unwrap() = value;
        let response = finish_registration(&app, bearer, &flow_id, &answer).await;
        let status = response.status();
        assert!([400, 401, 422].contains(&status.as_u16()), "{path}: {status}");
    }
    for name in ["", " ", &"x".repeat(65), "a\u{7}b"] {
        let (flow_id, options) = registration_options(&app, bearer).await;
        let (_, answer) = SoftPasskey::register(&options, Ceremony::default());
        let body = json!({ "flow_id": flow_id, "credential": answer, "name": name });
        let response = bearer_post(&app, "/auth/passkeys/register", bearer, &body).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
    }
    // Nothing above was a sign-in: the genuine one still works.
    assert_eq!(sign_in(&app, &mut passkey, Ceremony::default()).await.status(), StatusCode::OK);
}
