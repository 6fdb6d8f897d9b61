//! The OpenAPI document and Swagger UI, as served: the document lists exactly the routes
//! the app registers, every error is the `{"error","code"}` schema, and the docs page
//! needs nothing but the server.

use std::collections::BTreeSet;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::Value;
use tollgate::auth::rules::MAX_USERNAME_CHARS;
use tollgate::http::routes::endpoints;

db_tests!(the_document_lists_exactly_the_registered_routes, swagger_ui_is_served_from_the_binary);

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// Every (METHOD, path) of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().unwrap();
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

async fn the_document_lists_exactly_the_registered_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);

    // A route added without documentation, or documentation of a route that is gone,
    // fails here.
    let registered: BTreeSet<(String, String)> =
        endpoints().iter().map(|e| (e.method.to_string(), e.path.to_owned())).collect();
    assert_eq!(operations(&doc), registered);

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path} documents no 500");
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} documents no success");
            for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
            }
        }
    }
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error", "code"]));

    let schemes = &doc["components"]["securitySchemes"];
    for name in ["bearer", "service_token"] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    assert_eq!(doc["paths"]["/auth/me"]["get"]["security"], serde_json::json!([{ "bearer": [] }]));
    let introspect = &doc["paths"]["/auth/introspect"]["post"];
    assert_eq!(introspect["security"], serde_json::json!([{ "service_token": [] }]));
    let bodies = introspect["requestBody"]["content"].as_object().unwrap();
    assert!(
        bodies.contains_key("application/x-www-form-urlencoded") && bodies.contains_key("application/json")
    );

    // Methods a path does not list: 405, naming the one it does (RFC 9110).
    let wrong_method = app.get("/auth/login").await;
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_error(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    // The documented rules are the enforced ones.
    let username = &doc["components"]["schemas"]["SignupRequest"]["properties"]["username"];
    assert_eq!(username["minLength"], 1);
    assert_eq!(username["maxLength"], MAX_USERNAME_CHARS);
}

async fn swagger_ui_is_served_from_the_binary(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = app.get("/docs").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<base href="/docs/">"#), "{html}");
    // Everything the page loads comes from this server: no absolute URL at all.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "{html}");
    for file in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "index.css"] {
        assert!(html.contains(file), "{file} not in {html}");
        let response = app.get(&format!("/docs/{file}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{file}");
    }
    let initializer = app.get("/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(initializer.contains(r#""/openapi.json""#), "{initializer}");
    assert_error(app.get("/docs/no-such-file.js").await, StatusCode::NOT_FOUND, "not_found").await;
}
