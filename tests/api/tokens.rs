//! Attacks on the access-token verifier, each made through `GET /auth/me` on the running
//! app. Every forged token is built by hand from a genuine one so that it has exactly one
//! defect; every rejection must be a 401 `invalid_token` with the RFC 6750 challenge, and
//! the genuine token must still be accepted afterwards.

use std::net::TcpListener;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const HS256_SECRET: &str = "an HS256 secret that is long enough for RFC 7518";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The JSON inside one base64url segment of a token.
fn decode_segment(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn segments(token: &str) -> [&str; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    parts.try_into().expect("a JWS has three segments")
}

/// `value` with the members of `changes` set (or added).
fn with(value: &Value, changes: Value) -> Value {
    let mut value = value.clone();
    for (k, v) in changes.as_object().unwrap() {
        value[k] = v.clone();
    }
    value
}

/// `value` without the member `name`.
fn without(value: &Value, name: &str) -> Value {
    let mut value = value.clone();
    value.as_object_mut().unwrap().remove(name);
    value
}

/// A key that signs the token's `header.payload`, whatever the header claims the
/// algorithm is.
enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    /// Anything jsonwebtoken can sign with; the algorithm picks the signature scheme only.
    Jwt(EncodingKey, Algorithm),
}

impl Signer {
    fn hmac(secret: &[u8]) -> Self {
        Signer::Jwt(EncodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// The app's own private key for `alg`, read from where the app keeps it.
    fn of_app(app: &TestApp, alg: &str) -> Self {
        if alg == "HS256" {
            return Signer::hmac(app.vars["JWT_SECRET"].as_bytes());
        }
        let pem = std::fs::read_to_string(app.keys_dir.join(format!("{}.pem", alg.to_lowercase()))).unwrap();
        match alg {
            "EdDSA" => Signer::Ed25519(ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap()),
            "ES256" => Signer::Jwt(EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(), Algorithm::ES256),
            "RS256" => Signer::Jwt(EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(), Algorithm::RS256),
            other => panic!("no key for {other}"),
        }
    }

    fn sign(&self, input: &str) -> String {
        match self {
            Signer::Ed25519(key) => b64(ed25519_dalek::Signer::sign(key, input.as_bytes()).to_bytes()),
            Signer::Jwt(key, alg) => jsonwebtoken::crypto::sign(input.as_bytes(), key, *alg).unwrap(),
        }
    }
}

/// A token with exactly this header and payload text (raw, so duplicate members are
/// possible), signed by `signer`.
fn forge_raw(header: &str, payload: &str, signer: &Signer) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = signer.sign(&input);
    format!("{input}.{signature}")
}

fn forge(header: &Value, claims: &Value, signer: &Signer) -> String {
    forge_raw(&header.to_string(), &claims.to_string(), signer)
}

/// An app with one signed-up user, the user's genuine tokens, and the app's real key.
struct Fixture {
    app: TestApp,
    access: String,
    refresh: String,
    /// Header and claims of the genuine access token.
    header: Value,
    claims: Value,
    signer: Signer,
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        Self::with_env(backend, &[]).await
    }

    async fn with_env(backend: Backend, overrides: &[(&str, &str)]) -> Self {
        let app = spawn_app_with(backend, overrides).await;
        let body = app.signup("alice").await;
        let access = field(&body, "access_token").to_owned();
        let [header, payload, _] = segments(&access);
        let header = decode_segment(header);
        let signer = Signer::of_app(&app, header["alg"].as_str().unwrap());
        Self {
            refresh: field(&body, "refresh_token").to_owned(),
            claims: decode_segment(payload),
            header,
            access,
            signer,
            app,
        }
    }

    fn kid(&self) -> &str {
        self.header["kid"].as_str().unwrap()
    }

    fn alg(&self) -> &str {
        self.header["alg"].as_str().unwrap()
    }

    /// Signed with the app's real key.
    fn token(&self, header: &Value, claims: &Value) -> String {
        forge(header, claims, &self.signer)
    }

    /// The genuine header and claims, signed by hand: must be accepted.
    fn valid(&self) -> String {
        self.token(&self.header, &self.claims)
    }

    fn with_header(&self, changes: Value) -> String {
        self.token(&with(&self.header, changes), &self.claims)
    }

    fn with_claims(&self, changes: Value) -> String {
        self.token(&self.header, &with(&self.claims, changes))
    }

    /// `GET /auth/me` with these `Authorization` header values (none, one or several).
    async fn me(&self, authorization: &[&str]) -> Response {
        let mut request = self.app.client.get(self.app.url("/auth/me"));
        for value in authorization {
            request = request.header(AUTHORIZATION, *value);
        }
        request.send().await.unwrap()
    }

    async fn assert_accepted(&self, token: &str, case: &str) {
        let response = self.me(&[&format!("Bearer {token}")]).await;
        assert_eq!(response.status(), StatusCode::OK, "{case}: should be accepted");
        let user: Value = response.json().await.unwrap();
        assert_eq!(user["id"], self.claims["sub"], "{case}");
        assert_eq!(user["username"], "alice", "{case}");
    }

    /// A 401 `invalid_token` with `error="invalid_token"` in the challenge; then the
    /// genuine token still works.
    async fn assert_invalid_token(&self, response: Response, case: &str) {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}: should be rejected");
        let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
        let challenge = challenge.unwrap_or_else(|| panic!("{case}: no WWW-Authenticate"));
        let challenge = challenge.to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{case}: {challenge}");
        assert!(challenge.contains(r#"error="invalid_token""#), "{case}: {challenge}");
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
        self.assert_accepted(&self.access, &format!("genuine token after {case}")).await;
    }

    async fn assert_rejected(&self, token: &str, case: &str) {
        let response = self.me(&[&format!("Bearer {token}")]).await;
        self.assert_invalid_token(response, case).await;
    }

    async fn jwks_text(&self) -> String {
        let response = self.app.get("/.well-known/jwks.json").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key.
fn ed25519_thumbprint(key: &ed25519_dalek::VerifyingKey) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(key.as_bytes()));
    b64(Sha256::digest(canonical))
}

/// Every form of the app's public key an attacker might use as an HMAC secret.
async fn public_key_forms(fx: &Fixture) -> Vec<(&'static str, Vec<u8>)> {
    let pem =
        std::fs::read_to_string(fx.app.keys_dir.join(format!("{}.pem", fx.alg().to_lowercase()))).unwrap();
    let (mut forms, spki_pem) = match fx.alg() {
        "EdDSA" => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().verifying_key();
            let raw = key.as_bytes().to_vec();
            let spki = key.to_public_key_pem(LineEnding::LF).unwrap();
            (vec![("raw 32-byte x", raw)], spki)
        }
        "ES256" => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let key = p256::SecretKey::from_pkcs8_pem(&pem).unwrap().public_key();
            let sec1 = key.to_encoded_point(false).as_bytes().to_vec();
            let spki = key.to_public_key_pem(LineEnding::LF).unwrap();
            (vec![("uncompressed SEC1 point", sec1)], spki)
        }
        "RS256" => {
            use rsa::pkcs1::{EncodeRsaPublicKey, LineEnding as Pkcs1LineEnding};
            let key = rsa::RsaPublicKey::from(rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap());
            let pkcs1_pem = key.to_pkcs1_pem(Pkcs1LineEnding::LF).unwrap().into_bytes();
            let pkcs1_der = key.to_pkcs1_der().unwrap().as_bytes().to_vec();
            let spki = key.to_public_key_pem(LineEnding::LF).unwrap();
            (vec![("PKCS#1 PEM", pkcs1_pem), ("PKCS#1 DER", pkcs1_der)], spki)
        }
        other => panic!("{other} has no public key"),
    };
    let jwks = fx.jwks_text().await;
    let jwk = serde_json::from_str::<Value>(&jwks).unwrap()["keys"][0].to_string();
    forms.extend([
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        ("SPKI PEM without newline", spki_pem.trim_end().as_bytes().to_vec()),
        ("JWK JSON", jwk.into_bytes()),
        ("JWKS document", jwks.into_bytes()),
    ]);
    forms
}

/// The classic RS/ES → HS confusion: an HS256 token keyed with the public key.
async fn assert_hs256_with_public_key_rejected(fx: &Fixture) {
    let header = with(&fx.header, json!({ "alg": "HS256" }));
    for (form, secret) in public_key_forms(fx).await {
        let token = forge(&header, &fx.claims, &Signer::hmac(&secret));
        let case = format!("{} app, HS256 keyed with the public key as {form}", fx.alg());
        fx.assert_rejected(&token, &case).await;
    }
}

db_tests!(
    hand_built_valid_token_is_accepted,
    alg_none_is_rejected,
    alg_header_must_be_exactly_the_configured_one,
    hs256_signed_with_the_public_key_is_rejected,
    kid_must_name_one_of_our_keys,
    embedded_jwk_jku_and_x5u_are_never_trusted,
    unexpected_header_members_are_refused,
    typ_must_be_at_jwt,
    every_claim_is_required,
    claims_must_have_their_json_types,
    iss_and_aud_must_be_ours,
    exp_nbf_and_iat_honour_the_leeway,
    tampered_and_malformed_tokens_are_rejected,
    oversized_token_is_rejected,
    duplicate_json_members_are_rejected,
    refresh_and_access_tokens_are_not_interchangeable,
    authorization_header_variants,
    es256_tokens_are_pinned,
    rs256_tokens_are_pinned,
    hs256_tokens_are_pinned,
);

/// The baseline every other test relies on: a token built by `forge` from the genuine
/// header and claims is accepted, so a forgery fails only for its own defect.
async fn hand_built_valid_token_is_accepted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    fx.assert_accepted(&fx.access, "genuine token").await;
    fx.assert_accepted(&fx.valid(), "hand-built copy of the genuine token").await;
    let t = now();
    let fresh = with(&fx.claims, json!({ "iat": t, "nbf": t, "exp": t + 60, "jti": uuid::Uuid::new_v4() }));
    fx.assert_accepted(&fx.token(&fx.header, &fresh), "hand-built fresh token").await;
    assert_eq!(fx.header, json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": fx.kid() }));
}

async fn alg_none_is_rejected(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let [_, payload, genuine_signature] = segments(&fx.access);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(with(&fx.header, json!({ "alg": alg })).to_string());
        for (signature, what) in [("", "empty"), (genuine_signature, "the genuine")] {
            let token = format!("{header}.{payload}.{signature}");
            let case = format!("alg {alg:?} with {what} signature");
            fx.assert_rejected(&token, &case).await;
        }
    }
}

/// A genuine EdDSA signature under any other `alg` value.
async fn alg_header_must_be_exactly_the_configured_one(backend: Backend) {
    let fx = Fixture::new(backend).await;
    for alg in [
        json!("eddsa"),
        json!("EDDSA"),
        json!("Ed25519"),
        json!("EdDSA "),
        json!("ES256"),
        json!("RS256"),
        json!("HS256"),
        json!(""),
        json!(null),
        json!(["EdDSA"]),
    ] {
        let case = format!("alg {alg} with a genuine EdDSA signature");
        fx.assert_rejected(&fx.with_header(json!({ "alg": alg })), &case).await;
    }
    let no_alg = fx.token(&without(&fx.header, "alg"), &fx.claims);
    fx.assert_rejected(&no_alg, "no alg").await;
}

async fn hs256_signed_with_the_public_key_is_rejected(backend: Backend) {
    let fx = Fixture::new(backend).await;
    assert_hs256_with_public_key_rejected(&fx).await;
}

async fn kid_must_name_one_of_our_keys(backend: Backend) {
    let fx = Fixture::new(backend).await;
    for kid in [
        json!("unknown-key"),
        json!("../../../../dev/null"),
        json!("' OR '1'='1"),
        json!(""),
        json!(format!("{} ", fx.kid())),
        json!(fx.kid().to_lowercase()),
        json!(null),
        json!(1),
        json!([fx.kid()]),
    ] {
        let case = format!("kid {kid}");
        fx.assert_rejected(&fx.with_header(json!({ "kid": kid })), &case).await;
    }
    let no_kid = fx.token(&without(&fx.header, "kid"), &fx.claims);
    fx.assert_rejected(&no_kid, "no kid").await;
}

/// The attacker signs with their own Ed25519 key and tells the verifier where to find it.
/// A local listener stands in for the attacker's server: it must never be contacted.
async fn embedded_jwk_jku_and_x5u_are_never_trusted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let public = attacker.verifying_key();
    let attacker_kid = ed25519_thumbprint(&public);
    let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(public.as_bytes()) });
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let jku = format!("{base}/jwks.json");
    let x5u = format!("{base}/cert.pem");
    let signer = Signer::Ed25519(attacker);
    for kid in [fx.kid(), attacker_kid.as_str()] {
        for (what, extra) in [
            ("nothing", json!({})),
            ("embedded jwk", json!({ "jwk": with(&jwk, json!({ "kid": kid })) })),
            ("jku", json!({ "jku": jku })),
            ("x5u", json!({ "x5u": x5u })),
            ("jwk, jku and x5u", json!({ "jwk": jwk, "jku": jku, "x5u": x5u })),
        ] {
            let header = with(&with(&fx.header, json!({ "kid": kid })), extra);
            let token = forge(&header, &fx.claims, &signer);
            let case = format!("signed by the attacker, kid {kid}, pointing at it with {what}");
            fx.assert_rejected(&token, &case).await;
        }
    }
    let contacted = server.accept().map(|(_, peer)| peer);
    assert!(
        matches!(&contacted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the verifier contacted the jku/x5u server: {contacted:?}"
    );
}

/// Signed with the real key: the extra member alone is the defect, and it is refused,
/// not ignored.
async fn unexpected_header_members_are_refused(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let jwks: Value = serde_json::from_str(&fx.jwks_text().await).unwrap();
    for extra in [
        json!({ "jwk": jwks["keys"][0] }),
        json!({ "jku": "https://attacker.example/jwks.json" }),
        json!({ "x5u": "https://attacker.example/cert.pem" }),
        json!({ "x5c": ["MIIB"] }),
        json!({ "x5t": "AAAA" }),
        json!({ "crit": ["exp"] }),
        json!({ "crit": ["https://attacker.example/ext"], "https://attacker.example/ext": true }),
        json!({ "b64": false, "crit": ["b64"] }),
        json!({ "cty": "JWT" }),
        json!({ "zip": "DEF" }),
    ] {
        let case = format!("header with {extra}");
        fx.assert_rejected(&fx.with_header(extra), &case).await;
    }
}

async fn typ_must_be_at_jwt(backend: Backend) {
    let fx = Fixture::new(backend).await;
    for typ in [json!("JWT"), json!("jwt"), json!(""), json!(null)] {
        let case = format!("typ {typ}");
        fx.assert_rejected(&fx.with_header(json!({ "typ": typ })), &case).await;
    }
    let no_typ = fx.token(&without(&fx.header, "typ"), &fx.claims);
    fx.assert_rejected(&no_typ, "no typ").await;
}

async fn every_claim_is_required(backend: Backend) {
    let fx = Fixture::new(backend).await;
    for claim in ["sub", "username", "roles", "iss", "aud", "iat", "nbf", "exp", "jti"] {
        let token = fx.token(&fx.header, &without(&fx.claims, claim));
        fx.assert_rejected(&token, &format!("no {claim} claim")).await;
    }
}

async fn claims_must_have_their_json_types(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let exp = fx.claims["exp"].as_i64().unwrap();
    let iat = fx.claims["iat"].as_i64().unwrap();
    let sub = fx.claims["sub"].as_str().unwrap();
    for change in [
        json!({ "exp": exp.to_string() }),
        json!({ "exp": exp as f64 }),
        json!({ "exp": exp as f64 + 0.5 }),
        json!({ "exp": null }),
        json!({ "nbf": iat.to_string() }),
        json!({ "nbf": iat as f64 }),
        json!({ "iat": iat.to_string() }),
        json!({ "iat": iat as f64 }),
        json!({ "aud": [fx.claims["aud"]] }),
        json!({ "iss": [fx.claims["iss"]] }),
        json!({ "sub": "not-a-uuid" }),
        json!({ "sub": sub.replace('-', "") + "0" }),
        json!({ "sub": 1 }),
        // Well-formed and validly signed, but no such user.
        json!({ "sub": uuid::Uuid::new_v4() }),
        json!({ "username": 1 }),
        json!({ "username": null }),
        json!({ "jti": "not-a-uuid" }),
        json!({ "jti": 7 }),
        json!({ "roles": "admin" }),
        json!({ "roles": [1] }),
        json!({ "roles": null }),
        json!({ "roles": { "admin": true } }),
    ] {
        let case = format!("claims with {change}");
        fx.assert_rejected(&fx.with_claims(change), &case).await;
    }
}

async fn iss_and_aud_must_be_ours(backend: Backend) {
    let fx = Fixture::new(backend).await;
    for change in [
        json!({ "iss": "https://attacker.example" }),
        json!({ "iss": "Tollgate" }),
        json!({ "iss": "" }),
        json!({ "aud": "another-service" }),
        json!({ "aud": "Tollgate" }),
        json!({ "aud": "" }),
    ] {
        let case = format!("claims with {change}");
        fx.assert_rejected(&fx.with_claims(change), &case).await;
    }
}

/// With the default 30 s leeway: a little late or early is accepted, beyond it is not.
async fn exp_nbf_and_iat_honour_the_leeway(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let t = now();
    let beyond = 31 + 5;
    let timed = |iat: i64, nbf: i64, exp: i64| fx.with_claims(json!({ "iat": iat, "nbf": nbf, "exp": exp }));
    fx.assert_accepted(&timed(t - 900, t - 900, t - 10), "expired 10 s ago").await;
    fx.assert_rejected(&timed(t - 900, t - 900, t - beyond), "expired 36 s ago").await;
    fx.assert_accepted(&timed(t, t + 10, t + 900), "nbf 10 s ahead").await;
    fx.assert_rejected(&timed(t, t + beyond, t + 900), "nbf 36 s ahead").await;
    fx.assert_accepted(&timed(t + 10, t, t + 900), "iat 10 s ahead").await;
    fx.assert_rejected(&timed(t + 3600, t, t + 900), "iat an hour ahead").await;
    fx.assert_rejected(&timed(t + 86_400 * 365, t, t + 900), "iat a year ahead").await;
}

async fn tampered_and_malformed_tokens_are_rejected(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let bob = fx.app.signup("bob").await;
    let bob_id = bob["user"]["id"].clone();
    let [header, payload, signature] = segments(&fx.access);
    let resigned = |claims: Value| format!("{header}.{}.{signature}", b64(claims.to_string()));
    let jwe_header = b64(r#"{"alg":"dir","enc":"A256GCM","typ":"at+jwt"}"#);
    let cases = [
        (
            resigned(with(&fx.claims, json!({ "username": "admin" }))),
            "payload tampered (username), genuine signature",
        ),
        (
            resigned(with(&fx.claims, json!({ "sub": bob_id }))),
            "payload tampered (another user's sub), genuine signature",
        ),
        (
            resigned(with(&fx.claims, json!({ "exp": now() + 86_400 * 365 }))),
            "payload tampered (exp extended), genuine signature",
        ),
        (format!("{header}.{payload}."), "signature stripped"),
        (
            format!("{header}.{payload}.{}", &signature[..signature.len() - 1]),
            "signature missing its last character",
        ),
        (
            format!("{header}.{payload}.{}", &signature[..signature.len() - 2]),
            "signature missing its last two characters",
        ),
        (format!("{header}.{payload}.{}", &signature[..signature.len() / 2]), "signature cut in half"),
        (format!("{header}.{payload}.{signature}{signature}"), "signature doubled"),
        (format!("{header}.{payload}"), "two segments"),
        (format!("{header}.{payload}.{signature}."), "four segments"),
        (format!("{jwe_header}..{}.{payload}.{}", b64([0; 12]), b64([0; 16])), "five segments (JWE compact)"),
        (format!("{header}.{payload}.{signature}.AAAA.AAAA"), "five segments (JWS with two more)"),
        ("..".to_owned(), "three empty segments"),
        (format!(".{payload}.{signature}"), "empty header segment"),
        (format!("{header}..{signature}"), "empty payload segment"),
        (format!("{header}!.{payload}.{signature}"), "non-base64 header"),
        (format!("{header}.{payload}*.{signature}"), "non-base64 payload"),
        (format!("{header}.{payload}.{signature}%"), "non-base64 signature"),
        (format!("{header}.pay load.{signature}"), "space inside the token"),
        (format!("{}.{payload}.{signature}", b64("not json")), "header is not JSON"),
        (format!("{}.{payload}.{signature}", b64("[]")), "header is a JSON array"),
        (forge_raw(&fx.header.to_string(), "not json", &fx.signer), "payload is not JSON (validly signed)"),
        (forge_raw(&fx.header.to_string(), "[]", &fx.signer), "payload is a JSON array (validly signed)"),
        (
            forge_raw(&fx.header.to_string(), &format!("{}x", fx.claims), &fx.signer),
            "payload with trailing garbage (validly signed)",
        ),
        ("not-a-token".to_owned(), "not a token at all"),
    ];
    for (token, case) in &cases {
        fx.assert_rejected(token, case).await;
    }
}

/// 10 KB of padding in an otherwise valid, validly signed token: refused for its size
/// alone, since the same token with a short padding claim is accepted.
async fn oversized_token_is_rejected(backend: Backend) {
    let fx = Fixture::new(backend).await;
    fx.assert_accepted(&fx.with_claims(json!({ "pad": "A".repeat(16) })), "short extra claim").await;
    let huge = fx.with_claims(json!({ "pad": "A".repeat(10 * 1024) }));
    assert!(huge.len() > 10 * 1024);
    fx.assert_rejected(&huge, "10 KB token").await;
}

/// Raw JSON with a member twice: the parser must refuse it, not pick one of the values.
async fn duplicate_json_members_are_rejected(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let kid = fx.kid();
    let header = fx.header.to_string();
    let claims = fx.claims.to_string();
    let sub = &fx.claims["sub"];
    let exp = &fx.claims["exp"];
    let typ_kid = format!(r#""typ":"at+jwt","kid":"{kid}""#);
    let headers = [
        format!(r#"{{"alg":"EdDSA","alg":"none",{typ_kid}}}"#),
        format!(r#"{{"alg":"none","alg":"EdDSA",{typ_kid}}}"#),
        format!(r#"{{"alg":"EdDSA","alg":"EdDSA",{typ_kid}}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"JWT","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"other","kid":"{kid}"}}"#),
    ];
    for raw in &headers {
        let token = forge_raw(raw, &claims, &fx.signer);
        fx.assert_rejected(&token, &format!("header {raw}")).await;
    }
    let body = &claims[1..];
    let payloads = [
        format!(r#"{{"sub":"{}",{body}"#, uuid::Uuid::new_v4()),
        format!(r#"{{"sub":{sub},{body}"#),
        format!(r#"{{"exp":{},{body}"#, now() - 3600),
        format!(r#"{{"exp":{exp},{body}"#),
        format!(r#"{{"username":"admin",{body}"#),
        format!(r#"{},"exp":{}}}"#, &claims[..claims.len() - 1], now() - 3600),
    ];
    for raw in &payloads {
        let token = forge_raw(&header, raw, &fx.signer);
        fx.assert_rejected(&token, &format!("payload {raw}")).await;
    }
}

async fn refresh_and_access_tokens_are_not_interchangeable(backend: Backend) {
    let fx = Fixture::new(backend).await;
    fx.assert_rejected(&fx.refresh, "refresh token used as a bearer token").await;
    let response = fx.app.refresh(&fx.access).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let response = fx.app.refresh(&fx.refresh).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the genuine refresh token still works after an access token was offered"
    );
    let rotated: Value = response.json().await.unwrap();
    fx.assert_accepted(field(&rotated, "access_token"), "access token from the refresh").await;
    fx.assert_accepted(&fx.access, "original access token after the refresh").await;
}

async fn authorization_header_variants(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let access = fx.access.as_str();
    for value in [
        format!("Basic {}", b64(format!("alice:{PASSWORD}"))),
        format!("Basic {access}"),
        format!("Token {access}"),
        format!("Bearer: {access}"),
        access.to_owned(),
        "Bearer ".to_owned(),
        "Bearer      ".to_owned(),
        "Bearer".to_owned(),
    ] {
        let case = format!("Authorization: {value:?}");
        fx.assert_invalid_token(fx.me(&[&value]).await, &case).await;
    }
    for scheme in ["bearer", "BEARER"] {
        let response = fx.me(&[&format!("{scheme} {access}")]).await;
        assert_eq!(response.status(), StatusCode::OK, "scheme {scheme:?}");
    }

    let bearer = format!("Bearer {access}");
    for second in [bearer.as_str(), "Bearer forged"] {
        let response = fx.me(&[&bearer, second]).await;
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }

    let response = fx.me(&[]).await;
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");
    assert_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    fx.assert_accepted(access, "genuine token after the header variants").await;
}

/// Under another `JWT_ALGORITHM`: tokens carry alg/typ/kid, the hand-built twin of the
/// genuine token is accepted, and the same key under any other declared `alg` is not.
async fn assert_algorithm_pinned(backend: Backend, alg: &str, overrides: &[(&str, &str)]) {
    let mut env = vec![("JWT_ALGORITHM", alg)];
    env.extend_from_slice(overrides);
    let fx = Fixture::with_env(backend, &env).await;
    fx.assert_accepted(&fx.access, &format!("genuine {alg} token")).await;
    assert_eq!(fx.header, json!({ "alg": alg, "typ": "at+jwt", "kid": fx.kid() }));
    assert!(!fx.kid().is_empty());
    let jwks: Value = serde_json::from_str(&fx.jwks_text().await).unwrap();
    if alg == "HS256" {
        assert_eq!(jwks, json!({ "keys": [] }), "no secret is published");
    } else {
        assert_eq!(jwks["keys"][0]["kid"], fx.kid(), "kid names the published key");
    }
    fx.assert_accepted(&fx.valid(), &format!("hand-built {alg} token")).await;
    for other in
        ["none", "EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "HS256", "HS384", "HS512"]
    {
        if other != alg {
            let case = format!("{alg} signature under alg {other}");
            fx.assert_rejected(&fx.with_header(json!({ "alg": other })), &case).await;
        }
    }
    if alg != "HS256" {
        assert_hs256_with_public_key_rejected(&fx).await;
    }
}

async fn es256_tokens_are_pinned(backend: Backend) {
    assert_algorithm_pinned(backend, "ES256", &[]).await;
}

async fn rs256_tokens_are_pinned(backend: Backend) {
    assert_algorithm_pinned(backend, "RS256", &[]).await;
}

async fn hs256_tokens_are_pinned(backend: Backend) {
    assert_algorithm_pinned(backend, "HS256", &[("JWT_SECRET", HS256_SECRET)]).await;
}
