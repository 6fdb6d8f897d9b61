//! The one way tests start tollgate: [`spawn_app`], the real server on a free port, on
//! SQLite or (when `TEST_DATABASE_URL` is set) on a fresh PostgreSQL database.
#![allow(dead_code)]

pub mod smtp;

use std::collections::HashMap;
use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tollgate::clock::{Clock, ManualClock};
use tollgate::config::Settings;
use tollgate::db::manager::ConnectionManager;
use tollgate::db::models::User;
use tollgate::db::schema::users;
use tollgate::startup::Application;

pub const PASSWORD: &str = "correct horse battery staple";

/// Defines one test per backend for each named `async fn(Backend)`.
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }

            postgres_test!($name);
        }
    )*};
}

/// Defines `$name::postgres` for each named `async fn(Backend)` that needs PostgreSQL.
macro_rules! postgres_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            postgres_test!($name);
        }
    )*};
}

/// The `postgres` test of `super::$name`: ignored unless build.rs found a database
/// configured or CI, so that a skipped test never counts as passed.
macro_rules! postgres_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(postgres_tests), ignore = "set TEST_DATABASE_URL to run on PostgreSQL")]
        async fn postgres() {
            super::$name($crate::common::Backend::postgres()).await
        }
    };
}

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The admin URL; each app gets a database of its own beside it.
    Postgres(String),
}

impl Backend {
    /// Panics without `TEST_DATABASE_URL`: only a build that runs the PostgreSQL tests
    /// calls this, and under CI a missing database must fail them.
    pub fn postgres() -> Self {
        let url = std::env::var("TEST_DATABASE_URL").unwrap_or_default();
        assert!(!url.is_empty(), "TEST_DATABASE_URL is not set, and CI requires the PostgreSQL tests");
        Backend::Postgres(url)
    }
}

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn create(backend: &Backend, dir: &TempDir) -> Self {
        match backend {
            Backend::Sqlite => {
                Self { url: format!("sqlite://{}", dir.path().join("tollgate.db").display()), postgres: None }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("tollgate_test_{}", uuid::Uuid::new_v4().simple());
                // This admin connection comes before any pool: OpenSSL must not register
                // its exit-time clean-up here either.
                tollgate::db::tls::init();
                let mut admin =
                    PgConnection::establish(admin_url).expect("TEST_DATABASE_URL must be reachable");
                admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
                let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(admin_url);
                Self { url: format!("{base}/{name}"), postgres: Some((admin_url.clone(), name)) }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener's address, when the test set `METRICS_BIND_ADDR`.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    /// Connections of the test's own to the app's database, to read and change its rows.
    pub pool: TestPool,
    pub keys_dir: PathBuf,
    pub vars: HashMap<String, String>,
    /// The clock the server runs on: the system's unless the test asked for a manual one.
    pub clock: Clock,
    pub server: actix_web::dev::ServerHandle,
    // Dropped last: the database and the directory outlive the server handle.
    pub database: TestDatabase,
    pub dir: TempDir,
}

/// The variables every test app gets unless it overrides them: cheap argon2 (the cost
/// is the benchmarks' business), a patient hashing queue, and no rate limit (tests of
/// the limit set one).
fn base_vars(database_url: &str, keys_dir: &std::path::Path) -> HashMap<String, String> {
    HashMap::from(
        [
            ("DATABASE_URL", database_url.to_owned()),
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("JWT_KEYS_DIR", keys_dir.display().to_string()),
            ("ARGON2_MEMORY_KIB", "1024".to_owned()),
            ("ARGON2_ITERATIONS", "1".to_owned()),
            ("AUTH_RATE_LIMIT_PER_MIN", "0".to_owned()),
            // A loaded machine (CI beside other builds) must not turn a burst of test
            // signups into 503 `overloaded`; the tests of overload set their own.
            ("ARGON2_QUEUE_TIMEOUT_MS", "30000".to_owned()),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "2".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    )
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(&backend, &dir);
    spawn_on(database, dir, overrides).await
}

/// Starts the app on a manual clock that the test moves instead of sleeping.
pub async fn spawn_app_at(backend: Backend, clock: &ManualClock, overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(&backend, &dir);
    spawn_on_clock(database, dir, overrides, clock.clock()).await
}

/// Starts the app on a database the caller made (e.g. to reach it through a proxy).
pub async fn spawn_on(database: TestDatabase, dir: TempDir, overrides: &[(&str, &str)]) -> TestApp {
    spawn_on_clock(database, dir, overrides, Clock::system()).await
}

async fn spawn_on_clock(
    database: TestDatabase,
    dir: TempDir,
    overrides: &[(&str, &str)],
    clock: Clock,
) -> TestApp {
    let keys_dir = dir.path().join("keys");
    let mut vars = base_vars(&database.url, &keys_dir);
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let (address, metrics_address, server) = launch(&vars, &clock);
    let settings = settings_from(&vars);
    let pool = test_pool(&settings);
    let client = reqwest::Client::new();
    TestApp { address, metrics_address, client, pool, keys_dir, vars, clock, server, database, dir }
}

/// Connections to a database of the test's, beside (never through) the app's pool.
pub type TestPool = r2d2::Pool<ConnectionManager>;

pub fn test_pool(settings: &Settings) -> TestPool {
    r2d2::Pool::builder().max_size(4).build_unchecked(ConnectionManager::new(settings.database.url.clone()))
}

/// The settings an app on this database and key directory would run with.
pub fn test_settings(database: &TestDatabase, keys_dir: &std::path::Path) -> Settings {
    settings_from(&base_vars(&database.url, keys_dir))
}

fn settings_from(vars: &HashMap<String, String>) -> Settings {
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings are valid")
}

fn start(vars: &HashMap<String, String>, clock: &Clock) -> (String, actix_web::dev::ServerHandle) {
    let (address, _, handle) = launch(vars, clock);
    (address, handle)
}

/// Starts an app; returns its address, its metrics listener's (if any) and its handle.
fn launch(
    vars: &HashMap<String, String>,
    clock: &Clock,
) -> (String, Option<String>, actix_web::dev::ServerHandle) {
    let app = Application::build_with(settings_from(vars), clock.clone()).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_port().map(|port| format!("http://127.0.0.1:{port}"));
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    (address, metrics_address, handle)
}

impl TestApp {
    /// Starts another instance on the same database and key directory; returns its address.
    pub fn start_sibling(&self) -> (String, actix_web::dev::ServerHandle) {
        start(&self.vars, &self.clock)
    }

    pub fn settings(&self) -> Settings {
        settings_from(&self.vars)
    }

    /// Stops the server and starts a new one on the same database and key directory.
    pub async fn restart(&mut self) {
        self.server.stop(true).await;
        let (address, metrics_address, server) = launch(&self.vars, &self.clock);
        self.address = address;
        self.metrics_address = metrics_address;
        self.server = server;
    }

    /// The `tollgate` binary with these arguments, on this app's configuration (and so its
    /// database and key directory) and nothing else from the environment.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command.env_clear().args(args).current_dir(self.dir.path()).envs(&self.vars);
        command
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    /// POSTs `body` as it is, labelled JSON: for bodies `json!` cannot make (malformed,
    /// oversized, deeply nested).
    pub async fn post_raw_json(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        let request = self.client.post(self.url(path)).header("content-type", "application/json");
        request.body(body).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with_bearer(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn signup_response(&self, username: &str, password: &str) -> Response {
        self.post_json("/auth/signup", &json!({ "username": username, "password": password })).await
    }

    /// Signs a user up and returns the token response.
    pub async fn signup(&self, username: &str) -> Value {
        let response = self.signup_response(username, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json("/auth/login", &json!({ "username": username, "password": password })).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/refresh", &json!({ "refresh_token": refresh_token })).await
    }

    pub fn user_row(&self, username: &str) -> User {
        let mut conn = self.pool.get().unwrap();
        users::table
            .filter(users::username.eq(username))
            .select(User::as_select())
            .first(&mut **conn)
            .unwrap()
    }
}

/// Asserts the error contract: the status and `{"error": <non-empty>, "code": <code>}`.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    body
}

pub fn sha256_hex(value: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name].as_str().unwrap_or_else(|| panic!("{name} missing in {body}"))
}

/// The distinct refresh tokens that concurrent refreshes of one token returned; every
/// response must be either such a 200 or a 401.
pub async fn distinct_successors(responses: Vec<Response>) -> std::collections::HashSet<String> {
    let mut successors = std::collections::HashSet::new();
    for response in responses {
        match response.status() {
            StatusCode::OK => {
                let body: Value = response.json().await.unwrap();
                successors.insert(field(&body, "refresh_token").to_owned());
            }
            status => assert_eq!(status, StatusCode::UNAUTHORIZED),
        }
    }
    successors
}

/// The claims of an access token, read without verifying it (the server did).
pub fn access_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWS has a payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

impl TestApp {
    /// The `kid`s of the JWKS, in its order.
    pub async fn published_kids(&self) -> Vec<String> {
        let jwks: Value = self.get("/.well-known/jwks.json").await.json().await.unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }
}

/// Polls `probe` until it is true, for at most `limit`: a wait for an event (a server
/// noticing a file), never for time to pass (move the clock for that).
pub async fn eventually<F: std::future::Future<Output = bool>>(
    limit: std::time::Duration,
    mut probe: impl FnMut() -> F,
) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if probe().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// When an access token was issued, in unix milliseconds: the timestamp of its `jti`, a
/// UUIDv7.
pub fn issued_ms(token: &str) -> i64 {
    let jti: uuid::Uuid = field(&access_claims(token), "jti").parse().unwrap();
    tollgate_verify::uuid_v7_millis(&jti).expect("the jti is a UUIDv7")
}
