//! What an operator watches: `/metrics` (each series moves by exactly what happened, with
//! bounded labels), its separate listener, and `X-Request-Id` on every answer. The log
//! side of request ids is in `logging.rs`, which reads the real binary's output.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::logging::{Format, Server};
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate::clock::ManualClock;
use tollgate::db::schema::users;

db_tests!(each_series_moves_by_exactly_what_happened);

/// The samples of a scrape, by series (`name{labels}`, as the text format writes it).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(client: &reqwest::Client, base: &str) -> Self {
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4");
        let text = response.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
                (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")))
            })
            .collect();
        Scrape(samples)
    }

    /// A series never observed counts 0.
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn series(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

/// Each expected change: (series, by how much).
fn assert_moved(before: &Scrape, after: &Scrape, expected: &[(&str, f64)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(series, by)| after.get(series) - before.get(series) != *by)
        .map(|(series, by)| {
            format!("{series}: expected +{by}, moved +{}", after.get(series) - before.get(series))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

async fn each_series_moves_by_exactly_what_happened(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("AUTH_RATE_LIMIT_PER_MIN", "6")]).await;
    let before = Scrape::of(&app.client, &app.address).await;
    for gauge in ["tollgate_argon2_queue_depth", "tollgate_db_connections_in_use"] {
        assert_eq!(before.0.get(gauge), Some(&0.0), "{gauge} at rest");
    }

    // Six signup and login attempts from this IP (the limit), then one too many.
    app.signup("alice").await;
    app.signup("bob").await;
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let session: serde_json::Value = login.json().await.unwrap();
    assert_eq!(app.login("alice", "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("nobody", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let mut conn = app.pool.get().unwrap();
    diesel::update(users::table.filter(users::username.eq("bob")))
        .set(users::disabled.eq(true))
        .execute(&mut **conn)
        .unwrap();
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::FORBIDDEN);
    assert_error(app.login("alice", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // A rotation, a replay after the grace window (theft: the session is revoked), junk.
    let first = field(&session, "refresh_token");
    assert_eq!(app.refresh(first).await.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(11));
    assert_eq!(app.refresh(first).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh("not a refresh token").await.status(), StatusCode::UNAUTHORIZED);

    // A path with an id, and a path that matches no route.
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(app.get(&format!("/admin/users/{id}")).await.status(), StatusCode::UNAUTHORIZED);
    let unknown = format!("/no/such/{id}");
    assert_eq!(app.get(&unknown).await.status(), StatusCode::NOT_FOUND);

    let after = Scrape::of(&app.client, &app.address).await;
    assert_moved(
        &before,
        &after,
        &[
            ("tollgate_signups_total", 2.0),
            (r#"tollgate_logins_total{result="success"}"#, 1.0),
            (r#"tollgate_logins_total{result="invalid_credentials"}"#, 2.0),
            (r#"tollgate_logins_total{result="account_disabled"}"#, 1.0),
            (r#"tollgate_logins_total{result="rate_limited"}"#, 1.0),
            (r#"tollgate_logins_total{result="overloaded"}"#, 0.0),
            (r#"tollgate_logins_total{result="error"}"#, 0.0),
            (r#"tollgate_refreshes_total{result="rotated"}"#, 1.0),
            (r#"tollgate_refreshes_total{result="refused"}"#, 2.0),
            (r#"tollgate_refreshes_total{result="rate_limited"}"#, 0.0),
            ("tollgate_refresh_reuse_detected_total", 1.0),
            ("tollgate_rate_limited_total", 1.0),
            (r#"tollgate_http_requests_total{route="/auth/signup",status="201"}"#, 2.0),
            (r#"tollgate_http_requests_total{route="/auth/login",status="200"}"#, 1.0),
            (r#"tollgate_http_requests_total{route="/auth/login",status="401"}"#, 2.0),
            (r#"tollgate_http_requests_total{route="/auth/login",status="403"}"#, 1.0),
            (r#"tollgate_http_requests_total{route="/auth/login",status="429"}"#, 1.0),
            (r#"tollgate_http_requests_total{route="/auth/refresh",status="200"}"#, 1.0),
            (r#"tollgate_http_requests_total{route="/auth/refresh",status="401"}"#, 2.0),
            (r#"tollgate_http_requests_total{route="/admin/users/{id}",status="401"}"#, 1.0),
            (r#"tollgate_http_requests_total{route="unmatched",status="404"}"#, 1.0),
            // The first scrape, counted once it was answered.
            (r#"tollgate_http_requests_total{route="/metrics",status="200"}"#, 1.0),
            (r#"tollgate_http_request_duration_seconds_count{route="/auth/login"}"#, 5.0),
            (r#"tollgate_http_request_duration_seconds_count{route="/auth/signup"}"#, 2.0),
            (r#"tollgate_http_request_duration_seconds_bucket{route="/auth/login",le="+Inf"}"#, 5.0),
        ],
    );
    for gauge in ["tollgate_argon2_queue_depth", "tollgate_db_connections_in_use"] {
        assert_eq!(after.0.get(gauge), Some(&0.0), "{gauge} at rest");
    }
    // Labels are route templates and fixed values: no raw path, id or username.
    for series in after.series() {
        for raw in [id.as_str(), unknown.as_str(), "alice", "bob", "nobody"] {
            assert!(!series.contains(raw), "{raw} became a label: {series}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_bind_addr_metrics_are_served_there_only() {
    let app = spawn_app_with(Backend::Sqlite, &[("METRICS_BIND_ADDR", "127.0.0.1:0")]).await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    assert_ne!(metrics, app.address);
    app.signup("alice").await;
    let scrape = Scrape::of(&app.client, &metrics).await;
    assert_eq!(scrape.get("tollgate_signups_total"), 1.0);
    assert_eq!(scrape.get(r#"tollgate_http_requests_total{route="/auth/signup",status="201"}"#), 1.0);

    let main = app.get("/metrics").await;
    assert!(main.headers().contains_key("x-request-id"));
    assert_error(main, StatusCode::NOT_FOUND, "not_found").await;
    // The metrics listener serves nothing else, with the same JSON errors.
    let other = app.client.get(format!("{metrics}/healthz")).send().await.unwrap();
    assert!(other.headers().contains_key("x-request-id"));
    assert_error(other, StatusCode::NOT_FOUND, "not_found").await;
    let post = app.client.post(format!("{metrics}/metrics")).send().await.unwrap();
    assert_error(post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

fn request_id_of(response: &reqwest::Response) -> String {
    let ids: Vec<_> = response.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].to_str().unwrap().to_owned()
}

/// A fresh id is a uuid v4, a different one each time.
fn assert_fresh(id: &str, seen: &mut Vec<String>) {
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{id:?} is not a uuid"));
    assert_eq!(uuid.get_version_num(), 4, "{id}");
    assert!(!seen.contains(&id.to_owned()), "{id} given twice");
    seen.push(id.to_owned());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sane_request_id_is_echoed_and_any_other_replaced() {
    let app = spawn_app(Backend::Sqlite).await;
    let with_id = |id: &str| app.client.get(app.url("/healthz")).header("x-request-id", id).send();
    let longest = "a".repeat(64);
    for sane in ["abc", "Req.2026-12-02_x", longest.as_str(), "0"] {
        let response = with_id(sane).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(request_id_of(&response), sane);
    }
    let mut seen = Vec::new();
    let too_long = "a".repeat(65);
    let insane: [&[u8]; 9] = [
        too_long.as_bytes(),
        b"has space",
        b"a/b",
        b"a:b",
        b"quote\"d",
        b"semi;colon",
        b"caf\xc3\xa9",
        b"\xff\xfe",
        b"",
    ];
    for id in insane {
        let value = reqwest::header::HeaderValue::from_bytes(id).unwrap();
        let response =
            app.client.get(app.url("/healthz")).header("x-request-id", value).send().await.unwrap();
        assert_fresh(&request_id_of(&response), &mut seen);
    }
    let twice = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "first")
        .header("x-request-id", "second")
        .send()
        .await
        .unwrap();
    assert_fresh(&request_id_of(&twice), &mut seen);
    let without = app.get("/healthz").await;
    assert_fresh(&request_id_of(&without), &mut seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_carries_a_request_id() {
    // Every hash waits longer than a zero queue timeout: logins are refused as overloaded.
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("AUTH_RATE_LIMIT_PER_MIN", "1"), ("ARGON2_QUEUE_TIMEOUT_MS", "0")],
    )
    .await;
    let sent = |request: reqwest::RequestBuilder| request.header("x-request-id", "error-case").send();
    let cases = [
        (app.client.get(app.url("/no/such/path")), StatusCode::NOT_FOUND, "not_found"),
        (app.client.delete(app.url("/healthz")), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (app.client.get(app.url("/auth/me")), StatusCode::UNAUTHORIZED, "missing_token"),
        (
            app.client.post(app.url("/auth/login")).header("content-type", "application/json").body("{"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            app.client
                .post(app.url("/auth/signup"))
                .header("content-type", "application/json")
                .body(vec![b' '; 65 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            app.client.post(app.url("/auth/login")).json(&json!({"username": "a", "password": PASSWORD})),
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
        ),
        (
            app.client.post(app.url("/auth/login")).json(&json!({"username": "a", "password": PASSWORD})),
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        ),
    ];
    for (request, status, code) in cases {
        let response = sent(request).await.unwrap();
        assert_eq!(request_id_of(&response), "error-case", "{status}");
        assert_error(response, status, code).await;
    }
    let scrape = Scrape::of(&app.client, &app.address).await;
    assert_eq!(scrape.get(r#"tollgate_logins_total{result="overloaded"}"#), 1.0);
    assert_eq!(scrape.get(r#"tollgate_logins_total{result="rate_limited"}"#), 1.0);
}

/// Two apps in one process each count only their own requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_has_its_own_registry() {
    let first = spawn_app(Backend::Sqlite).await;
    let second = spawn_app(Backend::Sqlite).await;
    first.signup("alice").await;
    assert_eq!(Scrape::of(&first.client, &first.address).await.get("tollgate_signups_total"), 1.0);
    assert_eq!(Scrape::of(&second.client, &second.address).await.get("tollgate_signups_total"), 0.0);
}

/// SIGTERM while a request is in flight: the request still gets its normal answer, the
/// metrics listener serves through the drain, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_and_stops_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), Format::Text, &[("METRICS_BIND_ADDR", "127.0.0.1:0")]);
    let log = server.log_text();
    let metrics_port = log
        .lines()
        .find_map(|line| line.split("serving metrics on 127.0.0.1:").nth(1))
        .and_then(|port| port.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no metrics listener in:\n{log}"));
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    let client = reqwest::Client::new();
    Scrape::of(&client, &metrics).await;

    // The server answers `100 Continue` once it has taken the request on; the body
    // follows only after the signal.
    let body = json!({ "username": "inflight", "password": PASSWORD }).to_string();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let head = format!(
        "POST /auth/signup HTTP/1.1\r\nHost: tollgate\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // The main server waits for the request above, and the metrics listener for it.
    Scrape::of(&client, &metrics).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201 Created\r\n"), "{response}");
    assert!(response.contains("\"username\":\"inflight\""), "{response}");

    let (status, log) = server.wait();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(
        client.get(format!("{metrics}/metrics")).send().await.is_err(),
        "the metrics listener is still up"
    );
}
