//! The discovery documents: exactly the contract's members, URLs from `PUBLIC_URL`.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PATHS: [&str; 2] = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"];

db_tests!(both_documents_describe_the_issuer_from_public_url, the_default_public_url_is_the_bind_address);

async fn documents(app: &TestApp) -> Vec<Value> {
    let mut bodies = Vec::new();
    for path in PATHS {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json", "{path}");
        bodies.push(response.json().await.unwrap());
    }
    bodies
}

async fn both_documents_describe_the_issuer_from_public_url(backend: Backend) {
    let overrides = [
        ("PUBLIC_URL", "https://auth.example.com/"),
        ("JWT_ISSUER", "https://auth.example.com"),
        ("JWT_ALGORITHM", "ES256"),
    ];
    let app = spawn_app_with(backend, &overrides).await;
    let expected = json!({
        "issuer": "https://auth.example.com",
        "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
        "introspection_endpoint": "https://auth.example.com/auth/introspect",
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    });
    for body in documents(&app).await {
        assert_eq!(body, expected);
    }
}

async fn the_default_public_url_is_the_bind_address(backend: Backend) {
    let app = spawn_app(backend).await;
    let bind_addr = &app.vars["BIND_ADDR"];
    for body in documents(&app).await {
        assert_eq!(body["issuer"], "tollgate");
        assert_eq!(body["jwks_uri"], format!("http://{bind_addr}/.well-known/jwks.json"));
        assert_eq!(body["introspection_endpoint"], format!("http://{bind_addr}/auth/introspect"));
        assert_eq!(body["id_token_signing_alg_values_supported"], json!(["EdDSA"]));
    }
}
