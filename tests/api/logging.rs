//! Secrets never reach the logs. The real binary runs at `RUST_LOG=trace` through a whole
//! session; afterwards every byte it wrote to stderr is searched for every password,
//! token, token hash, password hash and key it ever handled. The same log must also hold
//! the auth events and one line per request, so that an empty or lost log cannot pass.
//! Each test runs in both `LOG_FORMAT`s; every line must be in the format asked for, and
//! every line of a request must carry its id.

use crate::common::{TestPool, test_pool};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{field, sha256_hex};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use diesel::prelude::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tollgate::config::Settings;
use tollgate::db::models::User;
use tollgate::db::schema::users;

const OLD_PASSWORD: &str = "Old-Secret-Passw0rd-alpha";
const NEW_PASSWORD: &str = "New-Secret-Passw0rd-bravo";
const WRONG_PASSWORD: &str = "Wrong-Guess-Passw0rd-charlie";
const WRONG_CURRENT: &str = "Wrong-Current-Passw0rd-delta";
const UNKNOWN_USER_PASSWORD: &str = "Unknown-User-Passw0rd-echo";
const HS256_SECRET: &str = "hs256-secret-that-must-never-be-logged-x";

/// Defines `$name::text` and `$name::json` for each named `async fn(Format)`.
macro_rules! in_both_formats {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn text() {
                super::$name(super::Format::Text).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn json() {
                super::$name(super::Format::Json).await
            }
        }
    )*};
}

in_both_formats!(
    a_whole_session_leaves_no_secret_in_the_log,
    the_hs256_secret_is_never_logged,
    refused_bodies_do_not_bring_their_secrets_into_the_log,
    a_password_sent_as_a_json_number_is_not_logged,
    admin_actions_name_the_admin_and_the_target_and_no_secret,
    every_line_of_a_request_carries_its_id,
    a_hashing_thread_logs_with_the_request_id,
);

/// `LOG_FORMAT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// One log line, taken apart.
pub struct Line {
    pub message: String,
    pub request_id: Option<String>,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }

    /// Panics unless the line is in this format: `[time LEVEL target fields] message`, or
    /// one JSON object with at least `timestamp`, `level`, `target` and `message`.
    pub fn parse(self, line: &str) -> Line {
        match self {
            Format::Text => {
                let (head, message) = line
                    .strip_prefix('[')
                    .and_then(|rest| rest.split_once("] "))
                    .unwrap_or_else(|| panic!("not a text log line: {line:?}"));
                let request_id = head
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("request_id="))
                    .map(str::to_owned);
                Line { message: message.to_owned(), request_id }
            }
            Format::Json => {
                let object: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
                for key in ["timestamp", "level", "target", "message"] {
                    assert!(object[key].is_string(), "no {key} in {line}");
                }
                Line {
                    message: object["message"].as_str().unwrap_or_default().to_owned(),
                    request_id: object["request_id"].as_str().map(str::to_owned),
                }
            }
        }
    }
}

/// A running `tollgate` binary whose stderr is captured, every byte of it.
pub struct Server {
    pub child: Child,
    pub port: u16,
    format: Format,
    log: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the binary in `dir` with nothing but these variables (and cheap argon2),
    /// and waits for the `listening on HOST:PORT` line.
    pub fn start(dir: &Path, format: Format, vars: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .current_dir(dir)
            .env_clear()
            .env("RUST_LOG", "trace")
            .env("LOG_FORMAT", format.name())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("ARGON2_MEMORY_KIB", "1024")
            .env("ARGON2_ITERATIONS", "1")
            .env("AUTH_RATE_LIMIT_PER_MIN", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let (port_tx, port_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stderr = BufReader::new(stderr);
            let mut port_tx = Some(port_tx);
            let mut line = Vec::new();
            loop {
                line.clear();
                match stderr.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                sink.lock().unwrap().extend_from_slice(&line);
                if port_tx.is_some()
                    && let Some(port) = listening_port(&String::from_utf8_lossy(&line))
                {
                    let _ = port_tx.take().unwrap().send(port);
                }
            }
        });
        let mut server = Self { child, port: 0, format, log, reader: Some(reader) };
        match port_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(port) => server.port = port,
            Err(_) => panic!("tollgate did not report its port; stderr:\n{}", server.stop()),
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Every line of the log so far, taken apart (and so checked against the format).
    pub fn lines(&self) -> Vec<Line> {
        self.log_text().lines().map(|line| self.format.parse(line)).collect()
    }

    /// The request logger writes its line once the response is complete, which may be
    /// after the client has read it: wait until all `count` lines are there.
    async fn wait_for_request_lines(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while request_lines(&self.lines()).len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit (after a signal, say); returns how, and its log.
    pub fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status, self.log_text())
    }

    /// Kills the process and returns everything it wrote to stderr, each line checked
    /// against the format.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let (_, log) = self.wait();
        for line in log.lines() {
            self.format.parse(line);
        }
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_port(line: &str) -> Option<u16> {
    let address = line.split("listening on ").nth(1)?;
    address
        .split(|c: char| !c.is_ascii_digit() && c != '.' && c != ':')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// The request lines of the log as `METHOD PATH STATUS`, duration dropped: lines whose
/// message is exactly `METHOD /path STATUS <duration>ms`.
fn request_lines(lines: &[Line]) -> Vec<String> {
    let mut found: Vec<String> = lines
        .iter()
        .filter_map(|line| {
            let words: Vec<&str> = line.message.split_whitespace().collect();
            let [method, path, status, duration] = words.as_slice() else {
                return None;
            };
            let is_request = method.chars().all(|c| c.is_ascii_uppercase())
                && path.starts_with('/')
                && status.len() == 3
                && status.chars().all(|c| c.is_ascii_digit())
                && duration.ends_with("ms");
            is_request.then(|| format!("{method} {path} {status}"))
        })
        .collect();
    found.sort();
    found
}

fn sorted(lines: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    lines.sort();
    lines
}

/// Everything that must never be written, by what it is (for the failure message).
#[derive(Default)]
struct Secrets(BTreeMap<String, String>);

impl Secrets {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        assert!(value.len() >= 8, "too short to search for: {value:?}");
        self.0.insert(what.into(), value);
    }

    fn password(&mut self, what: &str, password: &str) {
        self.add(format!("password {what}"), password);
    }

    fn access_token(&mut self, what: &str, token: &str) {
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(segments.len(), 3, "{token}");
        self.add(format!("access token {what}"), token);
        self.add(format!("claims of access token {what}"), segments[1]);
        self.add(format!("signature of access token {what}"), segments[2]);
    }

    fn refresh_token(&mut self, what: &str, token: &str) {
        self.add(format!("refresh token {what}"), token);
        self.add(format!("refresh token {what} without prefix"), token.trim_start_matches("tgr_"));
        self.add(format!("SHA-256 of refresh token {what}"), sha256_hex(token));
    }

    fn tokens_of(&mut self, what: &str, response: &Value) {
        self.access_token(what, field(response, "access_token"));
        self.refresh_token(what, field(response, "refresh_token"));
    }

    fn password_hash(&mut self, what: &str, phc: &str) {
        self.add(format!("password hash {what}"), phc);
        // $argon2id$v=19$m=…,t=…,p=…$<salt>$<digest>
        let parts: Vec<&str> = phc.split('$').collect();
        assert_eq!(parts.len(), 6, "{phc}");
        self.add(format!("salt of password hash {what}"), parts[4]);
        self.add(format!("digest of password hash {what}"), parts[5]);
    }

    fn bytes(&mut self, what: &str, bytes: &[u8]) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.add(format!("{what} as hex"), hex.clone());
        self.add(format!("{what} as upper-case hex"), hex.to_uppercase());
        self.add(format!("{what} as base64"), STANDARD.encode(bytes));
        self.add(format!("{what} as base64url"), URL_SAFE_NO_PAD.encode(bytes));
        if let Ok(text) = std::str::from_utf8(bytes)
            && text.trim().len() >= 8
        {
            self.add(format!("{what} as text"), text.trim());
        }
    }

    fn assert_absent_from(&self, log: &str) {
        assert!(self.0.len() >= 5, "too few secrets collected");
        let mut leaks = Vec::new();
        for (what, value) in &self.0 {
            for line in log.lines().filter(|line| line.contains(value.as_str())) {
                leaks.push(format!("{what} in: {line}"));
            }
        }
        assert!(leaks.is_empty(), "secrets in the log:\n{}", leaks.join("\n"));
    }
}

/// A pool on the SQLite database the binary made in `dir`, to read what it stored.
fn database(dir: &Path) -> TestPool {
    let url = format!("sqlite://{}", dir.join("data/tollgate.db").display());
    let settings =
        Settings::from_lookup(|name| (name == "DATABASE_URL").then(|| url.clone())).expect("valid settings");
    test_pool(&settings)
}

fn password_hash(pool: &TestPool, username: &str) -> String {
    let mut conn = pool.get().unwrap();
    let user: User = users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(&mut **conn)
        .unwrap();
    user.password_hash
}

async fn json_of(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

/// A copy of the token with one character of its signature changed.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn assert_logged(log: &str, needle: &str, times: usize) {
    let found = log.lines().filter(|line| line.contains(needle)).count();
    assert!(found >= times, "expected {needle:?} at least {times} time(s), found {found}; log:\n{log}");
}

async fn a_whole_session_leaves_no_secret_in_the_log(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), format, &[]);
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| client.post(server.url(path)).json(&body).send();
    let mut secrets = Secrets::default();
    for (what, password) in [
        ("old", OLD_PASSWORD),
        ("new", NEW_PASSWORD),
        ("wrong", WRONG_PASSWORD),
        ("wrong current", WRONG_CURRENT),
        ("of an unknown user", UNKNOWN_USER_PASSWORD),
    ] {
        secrets.password(what, password);
    }
    let mut requests = Vec::new();

    let signup = post(
        "/auth/signup",
        json!({ "username": "Alice", "password": OLD_PASSWORD, "email": "alice@example.com" }),
    )
    .await
    .unwrap();
    let signup = json_of(signup, StatusCode::CREATED).await;
    requests.push("POST /auth/signup 201");
    secrets.tokens_of("of signup", &signup);
    let user_id = field(&signup["user"], "id").to_owned();
    let pool = database(dir.path());
    secrets.password_hash("old", &password_hash(&pool, "alice"));

    let login = post("/auth/login", json!({ "username": "alice", "password": OLD_PASSWORD })).await.unwrap();
    let login = json_of(login, StatusCode::OK).await;
    requests.push("POST /auth/login 200");
    secrets.tokens_of("of login", &login);

    for (username, password) in [("alice", WRONG_PASSWORD), ("nobody", UNKNOWN_USER_PASSWORD)] {
        let failed =
            post("/auth/login", json!({ "username": username, "password": password })).await.unwrap();
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
        requests.push("POST /auth/login 401");
    }

    let me =
        client.get(server.url("/auth/me")).bearer_auth(field(&login, "access_token")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    requests.push("GET /auth/me 200");

    let refresh_body = json!({ "refresh_token": field(&login, "refresh_token") });
    let refreshed = post("/auth/refresh", refresh_body.clone()).await.unwrap();
    let refreshed = json_of(refreshed, StatusCode::OK).await;
    requests.push("POST /auth/refresh 200");
    secrets.tokens_of("of refresh", &refreshed);
    // The client lost that response and retries within the grace window.
    let retried = post("/auth/refresh", refresh_body).await.unwrap();
    let retried = json_of(retried, StatusCode::OK).await;
    requests.push("POST /auth/refresh 200");
    assert_eq!(retried["refresh_token"], refreshed["refresh_token"]);
    secrets.tokens_of("of the retried refresh", &retried);

    let change = |current: &str| {
        client
            .post(server.url("/auth/password"))
            .bearer_auth(field(&refreshed, "access_token"))
            .json(&json!({ "current_password": current, "new_password": NEW_PASSWORD }))
            .send()
    };
    assert_eq!(change(WRONG_CURRENT).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    requests.push("POST /auth/password 401");
    let changed = json_of(change(OLD_PASSWORD).await.unwrap(), StatusCode::OK).await;
    requests.push("POST /auth/password 200");
    secrets.tokens_of("of password change", &changed);

    let logout = client
        .post(server.url("/auth/logout"))
        .bearer_auth(field(&changed, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    requests.push("POST /auth/logout 204");

    let relogin =
        post("/auth/login", json!({ "username": "alice", "password": NEW_PASSWORD })).await.unwrap();
    let relogin = json_of(relogin, StatusCode::OK).await;
    requests.push("POST /auth/login 200");
    secrets.tokens_of("of the second login", &relogin);
    let access = field(&relogin, "access_token");
    let refresh = field(&relogin, "refresh_token");

    // Tokens in a query string: the request line has the path only. (Before the logout, in
    // case logout ever revokes access tokens too.)
    let query = format!("?token={access}&refresh_token={refresh}");
    let me = client.get(server.url(&format!("/auth/me{query}"))).bearer_auth(access).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    requests.push("GET /auth/me 200");
    let health = client.get(server.url(&format!("/healthz{query}"))).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    requests.push("GET /healthz 200");

    let logout = post("/auth/logout", json!({ "refresh_token": refresh })).await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    requests.push("POST /auth/logout 204");

    // Failures with forged credentials.
    let forged_refresh = format!("tgr_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
    secrets.refresh_token("forged", &forged_refresh);
    let forged = post("/auth/refresh", json!({ "refresh_token": forged_refresh })).await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    requests.push("POST /auth/refresh 401");
    let revoked = post("/auth/refresh", json!({ "refresh_token": refresh })).await.unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    requests.push("POST /auth/refresh 401");
    let forged_access = tampered(access);
    secrets.access_token("tampered", &forged_access);
    let forged = client.get(server.url("/auth/me")).bearer_auth(&forged_access).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    requests.push("GET /auth/me 401");

    server.wait_for_request_lines(requests.len()).await;
    let log = server.stop();

    // What the service stored and the key material it made.
    secrets.password_hash("new", &password_hash(&pool, "alice"));
    let keys = dir.path().join("data/keys");
    let refresh_secret = std::fs::read(keys.join("refresh-secret")).unwrap();
    secrets.bytes("refresh-secret", &refresh_secret);
    let pem = std::fs::read_to_string(keys.join("eddsa.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----") && !l.trim().is_empty()).collect();
    for (i, line) in pem.lines().filter(|l| !l.starts_with("-----") && !l.trim().is_empty()).enumerate() {
        secrets.add(format!("line {i} of eddsa.pem"), line.trim());
    }
    let der = STANDARD.decode(&body).unwrap();
    secrets.bytes("Ed25519 private key", &der[der.len() - 32..]);

    secrets.assert_absent_from(&log);

    // The log is real: the events and one line per request are there.
    assert_logged(&log, &format!("listening on 127.0.0.1:{}", server.port), 1);
    assert_logged(&log, &format!("signup user_id={user_id}"), 1);
    assert_logged(&log, &format!("login user_id={user_id}"), 2);
    assert_logged(&log, &format!("login failed user_id={user_id}"), 1);
    assert_logged(&log, "login failed", 2);
    assert_logged(&log, &format!("refresh token rotated user_id={user_id}"), 1);
    assert_logged(&log, &format!("password changed user_id={user_id}"), 1);
    assert_logged(&log, &format!("logout user_id={user_id}"), 2);
    assert_eq!(request_lines(&server.lines()), sorted(&requests), "log:\n{log}");
    for fragment in ["?token=", "&refresh_token=", "/auth/me?", "/healthz?"] {
        assert!(!log.contains(fragment), "a query string was logged:\n{log}");
    }
}

async fn the_hs256_secret_is_never_logged(format: Format) {
    assert_eq!(HS256_SECRET.len(), 40);
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        Server::start(dir.path(), format, &[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", HS256_SECRET)]);
    let client = reqwest::Client::new();
    let mut secrets = Secrets::default();
    secrets.add("JWT_SECRET", HS256_SECRET);
    secrets.bytes("JWT_SECRET", HS256_SECRET.as_bytes());
    secrets.password("old", OLD_PASSWORD);
    secrets.password("wrong", WRONG_PASSWORD);

    let signup = client
        .post(server.url("/auth/signup"))
        .json(&json!({ "username": "bob", "password": OLD_PASSWORD }))
        .send()
        .await
        .unwrap();
    let signup = json_of(signup, StatusCode::CREATED).await;
    secrets.tokens_of("of signup", &signup);
    let user_id = field(&signup["user"], "id").to_owned();
    let login = client
        .post(server.url("/auth/login"))
        .json(&json!({ "username": "bob", "password": WRONG_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    let me =
        client.get(server.url("/auth/me")).bearer_auth(field(&signup, "access_token")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let refreshed = client
        .post(server.url("/auth/refresh"))
        .json(&json!({ "refresh_token": field(&signup, "refresh_token") }))
        .send()
        .await
        .unwrap();
    let refreshed = json_of(refreshed, StatusCode::OK).await;
    secrets.tokens_of("of refresh", &refreshed);
    let jwks: Value =
        client.get(server.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks, json!({ "keys": [] }));

    let requests = [
        "POST /auth/signup 201",
        "POST /auth/login 401",
        "GET /auth/me 200",
        "POST /auth/refresh 200",
        "GET /.well-known/jwks.json 200",
    ];
    server.wait_for_request_lines(requests.len()).await;
    let log = server.stop();
    secrets.password_hash("old", &password_hash(&database(dir.path()), "bob"));

    secrets.assert_absent_from(&log);
    assert_logged(&log, &format!("signup user_id={user_id}"), 1);
    assert_logged(&log, &format!("login failed user_id={user_id}"), 1);
    assert_logged(&log, &format!("refresh token rotated user_id={user_id}"), 1);
    assert_eq!(request_lines(&server.lines()), sorted(&requests), "log:\n{log}");
}

/// Bodies the service refuses still carry secrets: their error messages, logged at debug
/// level, must not quote them.
async fn refused_bodies_do_not_bring_their_secrets_into_the_log(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), format, &[]);
    let client = reqwest::Client::new();
    let mut secrets = Secrets::default();
    secrets.password("old", OLD_PASSWORD);
    secrets.password("wrong", WRONG_PASSWORD);

    let signup = client
        .post(server.url("/auth/signup"))
        .json(&json!({ "username": "carol", "password": OLD_PASSWORD }))
        .send()
        .await
        .unwrap();
    let signup = json_of(signup, StatusCode::CREATED).await;
    secrets.tokens_of("of signup", &signup);
    let access = field(&signup, "access_token");
    let refresh = field(&signup, "refresh_token");

    let raw = |path: &str, body: String| {
        client
            .post(server.url(path))
            .bearer_auth(access)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("/auth/login", format!(r#"{{"username":"carol","password":"{WRONG_PASSWORD}""#), 400),
        ("/auth/login", format!(r#"{{"username":"carol","password":"{WRONG_PASSWORD}"}} trailing"#), 400),
        (
            "/auth/login",
            format!(r#"{{"username":"carol","password":"{WRONG_PASSWORD}","password":"{OLD_PASSWORD}"}}"#),
            422,
        ),
        ("/auth/refresh", format!(r#"{{"refresh_token":"{refresh}","refresh_token":"{refresh}"}}"#), 422),
        ("/auth/refresh", format!(r#"{{"refresh_token":["{refresh}"]}}"#), 422),
        (
            "/auth/password",
            format!(r#"{{"current_password":"{OLD_PASSWORD}","new_password":"{WRONG_PASSWORD}"#),
            400,
        ),
    ];
    for (path, body, status) in &cases {
        let response = raw(path, body.clone()).await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{body}");
    }
    server.wait_for_request_lines(cases.len() + 1).await;
    let log = server.stop();
    secrets.assert_absent_from(&log);
    assert_eq!(request_lines(&server.lines()).len(), cases.len() + 1, "log:\n{log}");
    assert_logged(&log, "Error in response", cases.len());
}

/// A client that sends a numeric password as a JSON number gets 422; the serde message
/// quotes the number, and it must not reach the log even at debug level.
async fn a_password_sent_as_a_json_number_is_not_logged(format: Format) {
    const NUMERIC_PASSWORD: u64 = 918_273_645_546_372_819;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), format, &[]);
    let client = reqwest::Client::new();
    for path in ["/auth/signup", "/auth/login"] {
        let response = client
            .post(server.url(path))
            .json(&json!({ "username": "dave", "password": NUMERIC_PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    server.wait_for_request_lines(2).await;
    let log = server.stop();
    assert_eq!(request_lines(&server.lines()).len(), 2, "log:\n{log}");
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains(&NUMERIC_PASSWORD.to_string())).collect();
    assert!(leaks.is_empty(), "the password in the log:\n{}", leaks.join("\n"));
}

/// Every admin action leaves one line naming the acting admin and the target, and none
/// of the passwords or tokens it handled. The first admin is made with the CLI, on the
/// server's own database.
async fn admin_actions_name_the_admin_and_the_target_and_no_secret(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), format, &[]);
    let mut cli = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(dir.path())
        .env_clear()
        .env("RUST_LOG", "trace")
        .env("LOG_FORMAT", format.name())
        .args(["user", "create", "root", "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut cli.stdin.take().unwrap(), format!("{OLD_PASSWORD}\n").as_bytes())
        .unwrap();
    let cli = cli.wait_with_output().unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let mut secrets = Secrets::default();
    secrets.password("of the admin", OLD_PASSWORD);
    secrets.password("set by the admin", NEW_PASSWORD);
    secrets.password("reset by the admin", WRONG_CURRENT);
    secrets.password_hash("of the admin", &password_hash(&database(dir.path()), "root"));

    let client = reqwest::Client::new();
    let login =
        client.post(server.url("/auth/login")).json(&json!({ "username": "root", "password": OLD_PASSWORD }));
    let login = json_of(login.send().await.unwrap(), StatusCode::OK).await;
    secrets.tokens_of("of the admin", &login);
    let admin_id = field(&login["user"], "id").to_owned();
    let admin = field(&login, "access_token").to_owned();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let request = client.request(method, server.url(&path)).bearer_auth(&admin);
        match body {
            Some(body) => request.json(&body).send(),
            None => request.send(),
        }
    };
    let body = json!({ "username": "bob", "password": NEW_PASSWORD, "roles": ["staff"] });
    let created = json_of(
        call(reqwest::Method::POST, "/admin/users".into(), Some(body)).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let target = field(&created, "id").to_owned();
    let path = format!("/admin/users/{target}");
    let patch = json!({ "password": WRONG_CURRENT, "roles": [] });
    assert_eq!(
        call(reqwest::Method::PATCH, path.clone(), Some(patch)).await.unwrap().status(),
        StatusCode::OK
    );
    let logout = call(reqwest::Method::POST, format!("{path}/logout"), None).await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(call(reqwest::Method::DELETE, path, None).await.unwrap().status(), StatusCode::NO_CONTENT);

    server.wait_for_request_lines(5).await;
    let log = server.stop();
    for action in ["create", "update", "logout", "delete"] {
        let line = format!("admin {action} admin_id={admin_id} target_id={target}");
        assert_eq!(log.lines().filter(|l| l.contains(&line)).count(), 1, "{line:?} once in:\n{log}");
    }
    secrets.assert_absent_from(&log);
    secrets.assert_absent_from(&format!(
        "{}{}",
        String::from_utf8_lossy(&cli.stdout),
        String::from_utf8_lossy(&cli.stderr)
    ));
}

/// The lines of a request carry its id: the handler's own, those written on the blocking
/// pool (the refresh rotation runs there) and the request line; and every auth event has
/// one.
async fn every_line_of_a_request_carries_its_id(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), format, &[]);
    let client = reqwest::Client::new();
    let post = |path: &str, id: &str, body: Value| {
        client.post(server.url(path)).header("x-request-id", id).json(&body).send()
    };
    let signup = post("/auth/signup", "signup-1", json!({ "username": "erin", "password": OLD_PASSWORD }))
        .await
        .unwrap();
    let signup = json_of(signup, StatusCode::CREATED).await;
    let user_id = field(&signup["user"], "id").to_owned();
    let refresh = json!({ "refresh_token": field(&signup, "refresh_token") });
    let refreshed = post("/auth/refresh", "refresh.2", refresh).await.unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let failed = post("/auth/login", "login_3", json!({ "username": "erin", "password": WRONG_PASSWORD }))
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    // An id that is not sane is replaced, and the log has the replacement.
    let insane = post("/auth/login", "no spaces", json!({ "username": "erin", "password": WRONG_PASSWORD }))
        .await
        .unwrap();
    let replaced = insane.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(replaced, "no spaces");
    server.wait_for_request_lines(4).await;
    server.stop();

    let lines = server.lines();
    let messages_of = |id: &str| -> Vec<String> {
        lines.iter().filter(|l| l.request_id.as_deref() == Some(id)).map(|l| l.message.clone()).collect()
    };
    for (id, event, request) in [
        ("signup-1", format!("signup user_id={user_id}"), "POST /auth/signup 201"),
        ("refresh.2", format!("refresh token rotated user_id={user_id}"), "POST /auth/refresh 200"),
        ("login_3", format!("login failed user_id={user_id}"), "POST /auth/login 401"),
        (replaced.as_str(), format!("login failed user_id={user_id}"), "POST /auth/login 401"),
    ] {
        let messages = messages_of(id);
        assert!(messages.contains(&event), "{event:?} without request id {id}: {messages:?}");
        assert!(messages.iter().any(|m| m.starts_with(request)), "no request line for {id}: {messages:?}");
    }
    for line in lines.iter().filter(|l| l.message.contains("user_id=") || l.message.starts_with("POST ")) {
        assert!(line.request_id.is_some(), "a line of a request without its id: {:?}", line.message);
    }
}

/// With a zero queue timeout every hash is refused on the hashing thread itself, which
/// logs why: that line too has the id of the request it belongs to.
async fn a_hashing_thread_logs_with_the_request_id(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), format, &[("ARGON2_QUEUE_TIMEOUT_MS", "0")]);
    let login = reqwest::Client::new()
        .post(server.url("/auth/login"))
        .header("x-request-id", "hash-4")
        .json(&json!({ "username": "frank", "password": WRONG_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    server.wait_for_request_lines(1).await;
    server.stop();
    let refusals: Vec<Line> =
        server.lines().into_iter().filter(|l| l.message.contains("password hashing overloaded")).collect();
    assert_eq!(refusals.len(), 1, "{}", server.log_text());
    assert_eq!(refusals[0].request_id.as_deref(), Some("hash-4"));
}

#[test]
fn settings_debug_never_shows_the_hs256_secret() {
    let vars = [
        ("JWT_ALGORITHM", "HS256"),
        ("JWT_SECRET", HS256_SECRET),
        ("DATABASE_URL", "sqlite://data/tollgate.db"),
    ];
    let settings =
        Settings::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
            .unwrap();
    assert!(settings.jwt.secret.is_some());
    for debug in [format!("{settings:?}"), format!("{settings:#?}")] {
        assert!(debug.contains("HS256"), "{debug}");
        assert!(!debug.contains(HS256_SECRET), "{debug}");
        // Not even a part of it.
        for part in HS256_SECRET.as_bytes().chunks(10) {
            let part = std::str::from_utf8(part).unwrap();
            assert!(!debug.contains(part), "{part:?} in {debug}");
        }
    }
}
