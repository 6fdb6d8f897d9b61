//! `/healthz`, `/readyz`, and the error contract for requests no handler takes.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

db_tests!(
    health_and_readiness_answer,
    unknown_paths_and_methods_are_json_errors,
    oversized_and_mistyped_bodies_are_json_errors
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.headers()["x-content-type-options"], "nosniff");
}

async fn unknown_paths_and_methods_are_json_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_error(app.get("/nope").await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/auth/login").await, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let delete = app.client.delete(app.url("/auth/me")).send().await.unwrap();
    assert_error(delete, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let post = app.post_json("/healthz", &json!({})).await;
    assert_error(post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

async fn oversized_and_mistyped_bodies_are_json_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let huge = json!({ "username": "alice", "password": "p".repeat(70 * 1024) });
    for path in ["/auth/signup", "/auth/login", "/auth/refresh", "/auth/logout"] {
        assert_error(app.post_json(path, &huge).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            .await;
    }
    let form = app.client.post(app.url("/auth/signup")).body("username=alice").send().await.unwrap();
    assert_error(form, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let text = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "text/plain")
        .body(r#"{"username":"a","password":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_error(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    for malformed in ["{", "{\"username\": }", "", "{\"username\": \"a\",}"] {
        let response = app.post_raw_json("/auth/signup", malformed).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
    }
    // The server still serves after all that.
    app.signup("alice").await;
}
