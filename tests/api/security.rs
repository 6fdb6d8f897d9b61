//! Abuse limits and protective headers: per-username lockout, the argon2 bound, CORS,
//! security headers and slow clients.

use std::time::Duration;

use crate::common::*;
use futures_util::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

db_tests!(
    a_username_locks_after_ten_failures_and_unknown_names_lock_alike,
    a_successful_login_resets_the_failure_count,
    a_login_flood_is_bounded_and_token_checks_keep_answering,
    forged_forwarding_entries_do_not_escape_the_ip_limit,
    cors_answers_only_configured_origins,
    security_headers_are_on_every_response,
    the_pages_cannot_be_framed_and_run_only_their_own_scripts,
    stalled_clients_are_disconnected,
);

async fn fail_logins(app: &TestApp, username: &str, times: usize) {
    for _ in 0..times {
        assert_error(
            app.login(username, "wrong password").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
}

async fn assert_locked(app: &TestApp, username: &str, password: &str) {
    let response = app.login(username, password).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry_after), "first lockout is 60 s, got {retry_after}");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn a_username_locks_after_ten_failures_and_unknown_names_lock_alike(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("alice").await;
    app.signup("bob").await;
    fail_logins(&app, "alice", 10).await;
    // Locked: even the right password is refused, and the check costs no hash.
    assert_locked(&app, "ALICE", PASSWORD).await;
    fail_logins(&app, "nobody", 10).await;
    assert_locked(&app, "nobody", PASSWORD).await;
    // Other users are unaffected.
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::OK);
}

async fn a_successful_login_resets_the_failure_count(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("carol").await;
    fail_logins(&app, "carol", 9).await;
    assert_eq!(app.login("carol", PASSWORD).await.status(), StatusCode::OK);
    fail_logins(&app, "carol", 9).await;
    assert_eq!(app.login("carol", PASSWORD).await.status(), StatusCode::OK);
}

async fn a_login_flood_is_bounded_and_token_checks_keep_answering(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("ARGON2_MEMORY_KIB", "19456"),
            ("ARGON2_ITERATIONS", "4"),
            ("ARGON2_MAX_CONCURRENT", "1"),
            ("ARGON2_QUEUE_TIMEOUT_MS", "50"),
        ],
    )
    .await;
    let signup = app.signup("dave").await;
    let access = field(&signup, "access_token").to_owned();
    let flood = join_all((0..30).map(|_| app.login("dave", "wrong password")));
    let checks = async {
        let mut statuses = Vec::new();
        for _ in 0..10 {
            let response =
                tokio::time::timeout(Duration::from_secs(5), app.get_with_bearer("/auth/me", &access))
                    .await
                    .expect("/auth/me answers during the flood");
            statuses.push(response.status());
        }
        statuses
    };
    let (logins, checks) = tokio::join!(flood, checks);
    assert!(checks.iter().all(|s| *s == StatusCode::OK), "{checks:?}");
    let mut overloaded = 0;
    for response in logins {
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()["retry-after"], "1");
            assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
            overloaded += 1;
        } else {
            assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
    }
    assert!(overloaded > 0, "30 concurrent logins on one slot with a 50 ms queue must shed some");
    // The flood left nothing behind: the next login works. On a saturated machine the
    // idle-priority hashing thread may still miss the 50 ms queue timeout, which is the
    // overload answer doing its job, so only `overloaded` may come before the 200.
    let mut after = app.login("dave", PASSWORD).await;
    for _ in 0..10 {
        if after.status() != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_error(after, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
        after = app.login("dave", PASSWORD).await;
    }
    assert_eq!(after.status(), StatusCode::OK);
}

/// A failed login of an unknown user, through the proxy with these forwarding headers.
async fn login_via(app: &TestApp, headers: &[(&str, &str)]) -> Response {
    let mut request = app.client.post(app.url("/auth/login"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.json(&json!({ "username": "nobody", "password": "wrong password" })).send().await.unwrap()
}

async fn forged_forwarding_entries_do_not_escape_the_ip_limit(backend: Backend) {
    // The test client is the one proxy in front of tollgate (127.0.0.1), which appends
    // the address it got the request from to whatever X-Forwarded-For the request had.
    let vars = [("AUTH_RATE_LIMIT_PER_MIN", "3"), ("TRUST_PROXY_HEADERS", "true")];
    let app = spawn_app_with(backend.clone(), &vars).await;
    let forged_left = |i: usize| format!("203.0.113.{i}, 198.51.100.7");
    for i in 0..3 {
        let response = login_via(&app, &[("x-forwarded-for", &forged_left(i))]).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    for i in 3..6 {
        let response = login_via(&app, &[("x-forwarded-for", &forged_left(i))]).await;
        assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
    // A Forwarded header the proxy does not write is the client's own: ignored.
    for i in 0..6 {
        let forwarded = format!("for=203.0.113.{i}");
        let response =
            login_via(&app, &[("forwarded", &forwarded), ("x-forwarded-for", "198.51.100.8")]).await;
        let expected = if i < 3 { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(response.status(), expected, "attempt {i}");
    }
    // Another client behind the same proxy has a limit of its own.
    let other = login_via(&app, &[("x-forwarded-for", "198.51.100.9")]).await;
    assert_error(other, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // Proxies named by network, writing Forwarded: the hop right of the proxies counts.
    let vars = [
        ("AUTH_RATE_LIMIT_PER_MIN", "3"),
        ("TRUST_PROXY_HEADERS", "true"),
        ("TRUSTED_PROXIES", "127.0.0.0/8, 10.0.0.0/8"),
        ("PROXY_HEADER", "forwarded"),
    ];
    let app = spawn_app_with(backend, &vars).await;
    for i in 0..6 {
        let forwarded = format!("for=203.0.113.{i}, for=198.51.100.7, for=10.1.2.3;proto=https");
        let forged = format!("192.0.2.{i}");
        let response = login_via(&app, &[("forwarded", &forwarded), ("x-forwarded-for", &forged)]).await;
        let expected = if i < 3 { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(response.status(), expected, "attempt {i}");
    }
    let other = login_via(&app, &[("forwarded", "for=\"[2001:db8::9]:4711\", for=10.1.2.3")]).await;
    assert_error(other, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

async fn cors_answers_only_configured_origins(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("CORS_ALLOWED_ORIGINS", "https://app.example.com, https://admin.example.com")],
    )
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://admin.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], "https://admin.example.com");
    assert!(simple.headers().get("access-control-allow-credentials").is_none());
    let evil = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::OK, "non-browser semantics are unchanged");
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

async fn security_headers_are_on_every_response(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup_response("erin", PASSWORD).await;
    let login = app.login("erin", "wrong password").await;
    let missing = app.get("/missing").await;
    for response in [signup, login, missing] {
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.headers()["x-content-type-options"], "nosniff");
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
}

/// The directives of a `Content-Security-Policy`, by name.
fn csp(response: &Response) -> std::collections::HashMap<String, Vec<String>> {
    let policy = response.headers()["content-security-policy"].to_str().unwrap();
    policy
        .split(';')
        .filter_map(|directive| {
            let mut words = directive.split_whitespace().map(str::to_owned);
            Some((words.next()?, words.collect()))
        })
        .collect()
}

async fn the_pages_cannot_be_framed_and_run_only_their_own_scripts(backend: Backend) {
    use base64::Engine;
    use sha2::Digest;

    let app = spawn_app_with(backend, &[("DEMO_UI", "true")]).await;
    let demo = app.get("/demo").await;
    assert_eq!(demo.status(), StatusCode::OK);
    assert_eq!(demo.headers()["x-frame-options"], "DENY");
    let policy = csp(&demo);
    let html = demo.text().await.unwrap();
    assert_eq!(policy["frame-ancestors"], ["'none'"]);
    assert_eq!(policy["default-src"], ["'none'"]);
    // Its one inline script by its hash, and the client module from here; nothing else.
    let (_, script) = html.split_once("<script type=\"module\">").unwrap();
    let (script, _) = script.split_once("</script>").unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
    assert_eq!(policy["script-src"], ["'self'".to_owned(), format!("'sha256-{hash}'")]);
    assert!(policy["style-src"].iter().all(|source| source.starts_with("'sha256-")), "{policy:?}");
    assert_eq!(policy["connect-src"], ["'self'"]);

    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert_eq!(docs.headers()["x-frame-options"], "DENY");
    let policy = csp(&docs);
    assert_eq!(policy["frame-ancestors"], ["'none'"]);
    assert_eq!(policy["script-src"], ["'self'"], "Swagger UI's scripts are files under /docs/");
    let html = docs.text().await.unwrap();
    for script in html.split("<script").skip(1) {
        assert!(script.trim_start().starts_with("src=\"./"), "an inline script: {script}");
    }

    // The API's answers: JSON as before, under a policy that lets nothing load or frame.
    let login = app.login("nobody", "wrong password").await;
    let health = app.get("/healthz").await;
    let jwks = app.get("/.well-known/jwks.json").await;
    for response in [login, health, jwks] {
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(
            response.headers()["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body.is_object(), "{body}");
    }
}

async fn stalled_clients_are_disconnected(backend: Backend) {
    let app = spawn_app_with(backend, &[("HTTP_CLIENT_TIMEOUT_SECS", "1")]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled.write_all(b"POST /auth/login HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}
