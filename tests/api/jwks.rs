//! The published key set: public keys only, `kid` = RFC 7638 thumbprint.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

db_tests!(jwks_publishes_each_asymmetric_key_by_thumbprint, jwks_is_empty_under_hs256);

/// RFC 7638 §3.2: the required members only, in lexicographic order.
fn thumbprint(jwk: &Value) -> String {
    let required: &[&str] = match jwk["kty"].as_str().unwrap() {
        "OKP" => &["crv", "kty", "x"],
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        other => panic!("unexpected kty {other}"),
    };
    let members: serde_json::Map<String, Value> =
        required.iter().map(|m| ((*m).to_owned(), jwk[*m].clone())).collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(serde_json::to_string(&members).unwrap()))
}

fn token_kid(token: &str) -> String {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

async fn jwks_publishes_each_asymmetric_key_by_thumbprint(backend: Backend) {
    for (algorithm, kty, members) in [
        ("EdDSA", "OKP", &["alg", "crv", "kid", "kty", "use", "x"][..]),
        ("ES256", "EC", &["alg", "crv", "kid", "kty", "use", "x", "y"][..]),
        ("RS256", "RSA", &["alg", "e", "kid", "kty", "n", "use"][..]),
    ] {
        let app = spawn_app_with(backend.clone(), &[("JWT_ALGORITHM", algorithm)]).await;
        let response = app.get("/.well-known/jwks.json").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        let jwks: Value = response.json().await.unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let jwk = &keys[0];
        let names: Vec<&str> = jwk.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(names, members, "{algorithm}: public members only, never d/p/q");
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
            (Some(kty), Some(algorithm), Some("sig"))
        );
        assert_eq!(jwk["kid"], json!(thumbprint(jwk)));
        let signup = app.signup("alice").await;
        assert_eq!(jwk["kid"], json!(token_kid(field(&signup, "access_token"))));
    }
}

async fn jwks_is_empty_under_hs256(backend: Backend) {
    let secret = "an HS256 secret that is long enough!";
    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", secret)]).await;
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    assert_eq!(jwks, json!({ "keys": [] }));
    let signup = app.signup("alice").await;
    assert_eq!(
        app.get_with_bearer("/auth/me", field(&signup, "access_token")).await.status(),
        StatusCode::OK
    );
}
