//! Cookie mode for browsers, and the demo page.

use crate::common::*;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const ORIGIN: &str = "https://app.example.com";

db_tests!(
    browsers_get_the_refresh_token_only_as_an_httponly_cookie,
    the_cookie_is_refused_without_an_allowed_origin_and_the_csrf_header,
    native_apps_keep_the_json_body_in_cookie_mode,
    logout_by_cookie_revokes_and_clears_it,
    logging_out_the_other_sessions_by_cookie_keeps_it,
    without_cookie_mode_an_origin_changes_nothing,
    the_demo_page_is_served_only_when_enabled,
);

async fn cookie_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[("REFRESH_TOKEN_COOKIE", "true"), ("CORS_ALLOWED_ORIGINS", ORIGIN)]).await
}

/// The value of the `tollgate_refresh` cookie a response sets, after checking its flags.
fn refresh_cookie(headers: &HeaderMap) -> String {
    let set_cookie = headers.get("set-cookie").expect("a Set-Cookie header").to_str().unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth", "Max-Age="] {
        assert!(set_cookie.contains(flag), "{flag} missing in {set_cookie}");
    }
    let value = set_cookie.strip_prefix("tollgate_refresh=").unwrap().split(';').next().unwrap();
    value.to_owned()
}

async fn browser_login(app: &TestApp, username: &str) -> (Value, String) {
    app.signup(username).await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", ORIGIN)
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = refresh_cookie(response.headers());
    let body: Value = response.json().await.unwrap();
    (body, cookie)
}

/// A browser's cookie refresh: `origin` and the CSRF header as given.
async fn cookie_refresh(app: &TestApp, cookie: &str, origin: Option<&str>, csrf: bool) -> reqwest::Response {
    let mut request =
        app.client.post(app.url("/auth/refresh")).header("cookie", format!("tollgate_refresh={cookie}"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if csrf {
        request = request.header("x-tollgate-csrf", "1");
    }
    request.send().await.unwrap()
}

/// A browser's logout by cookie, from the allowed origin with the CSRF header.
async fn cookie_logout(app: &TestApp, cookie: &str) -> reqwest::Response {
    let request =
        app.client.post(app.url("/auth/logout")).header("cookie", format!("tollgate_refresh={cookie}"));
    request.header("origin", ORIGIN).header("x-tollgate-csrf", "1").send().await.unwrap()
}

/// With several sessions, `scope: others` from a browser ends the other devices' sessions
/// and leaves the browser's own, cookie and all.
async fn logging_out_the_other_sessions_by_cookie_keeps_it(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("REFRESH_TOKEN_COOKIE", "true"), ("CORS_ALLOWED_ORIGINS", ORIGIN), ("SESSIONS_PER_USER", "3")],
    )
    .await;
    let (_, cookie) = browser_login(&app, "alice").await;
    let phone: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    let request =
        app.client.post(app.url("/auth/logout")).header("cookie", format!("tollgate_refresh={cookie}"));
    let request = request.header("origin", ORIGIN).header("x-tollgate-csrf", "1");
    let response = request.json(&json!({ "scope": "others" })).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers().get("set-cookie").is_none(), "the browser's cookie is not cleared");
    assert_eq!(app.refresh(field(&phone, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cookie_refresh(&app, &cookie, Some(ORIGIN), true).await.status(), StatusCode::OK);
}

async fn browsers_get_the_refresh_token_only_as_an_httponly_cookie(backend: Backend) {
    let app = cookie_app(backend).await;
    let (login, cookie) = browser_login(&app, "alice").await;
    assert!(login.get("refresh_token").is_none(), "{login}");
    assert!(login["access_token"].is_string());
    assert_eq!(app.user_row("alice").refresh_token_hash, Some(sha256_hex(&cookie)));

    let refreshed = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let successor = refresh_cookie(refreshed.headers());
    assert_ne!(successor, cookie);
    let body: Value = refreshed.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    assert_eq!(app.user_row("alice").refresh_token_hash, Some(sha256_hex(&successor)));

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/auth/refresh"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-tollgate-csrf, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-credentials"], "true");
    assert_eq!(preflight.headers()["access-control-allow-origin"], ORIGIN);
}

async fn the_cookie_is_refused_without_an_allowed_origin_and_the_csrf_header(backend: Backend) {
    let app = cookie_app(backend).await;
    let (_, cookie) = browser_login(&app, "bob").await;
    for (origin, csrf) in [
        (Some(ORIGIN), false),
        (Some("https://evil.example.com"), true),
        (Some("https://evil.example.com"), false),
        (None, true),
        (Some("null"), true),
    ] {
        let refused = cookie_refresh(&app, &cookie, origin, csrf).await;
        assert_error(refused, StatusCode::FORBIDDEN, "csrf_rejected").await;
    }
    // Any request that carries the cookie is checked, not only the ones that use it.
    let login = app
        .client
        .post(app.url("/auth/login"))
        .header("cookie", format!("tollgate_refresh={cookie}"))
        .header("origin", "https://evil.example.com")
        .json(&json!({ "username": "bob", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_error(login, StatusCode::FORBIDDEN, "csrf_rejected").await;
    // The refusals rotated and revoked nothing.
    assert_eq!(app.user_row("bob").refresh_token_hash, Some(sha256_hex(&cookie)));
    assert_eq!(cookie_refresh(&app, &cookie, Some(ORIGIN), true).await.status(), StatusCode::OK);
}

async fn native_apps_keep_the_json_body_in_cookie_mode(backend: Backend) {
    let app = cookie_app(backend).await;
    let signup = app.signup("carol").await;
    let token = field(&signup, "refresh_token");
    let response = app.refresh(token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_token"].as_str().is_some_and(|t| t.starts_with("tgr_")));
}

async fn logout_by_cookie_revokes_and_clears_it(backend: Backend) {
    let app = cookie_app(backend).await;
    let (login, cookie) = browser_login(&app, "dave").await;
    let logout = cookie_logout(&app, &cookie).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let cleared = logout.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("tollgate_refresh=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(app.user_row("dave").refresh_token_hash, None);
    let again = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
    assert_error(again, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // Logging out again with the dead cookie just clears it.
    let twice = cookie_logout(&app, &cookie).await;
    assert_eq!(twice.status(), StatusCode::NO_CONTENT);
    assert!(twice.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    // A browser without the cookie has no refresh token, whatever its body says.
    let no_cookie = app
        .client
        .post(app.url("/auth/refresh"))
        .header("origin", ORIGIN)
        .header("x-tollgate-csrf", "1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(no_cookie, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let me = app.get_with_bearer("/auth/me", field(&login, "access_token")).await;
    assert_error(me, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn without_cookie_mode_an_origin_changes_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("CORS_ALLOWED_ORIGINS", ORIGIN)]).await;
    app.signup("erin").await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", ORIGIN)
        .json(&json!({ "username": "erin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("access-control-allow-credentials").is_none());
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
}

async fn the_demo_page_is_served_only_when_enabled(backend: Backend) {
    let files = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(files.path().join("demo")).unwrap();
    std::fs::create_dir_all(files.path().join("dist")).unwrap();
    std::fs::write(files.path().join("demo/index.html"), "<h1>tollgate demo</h1>").unwrap();
    std::fs::write(files.path().join("dist/index.js"), "export const x = 1;").unwrap();
    let dir = files.path().to_str().unwrap();
    let app = spawn_app_with(backend.clone(), &[("DEMO_UI", "true"), ("DEMO_UI_DIR", dir)]).await;
    let page = app.get("/demo").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(page.text().await.unwrap(), "<h1>tollgate demo</h1>");
    let script = app.get("/demo/tollgate-client.js").await;
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));

    let off = spawn_app(backend).await;
    assert_error(off.get("/demo").await, StatusCode::NOT_FOUND, "not_found").await;
}
