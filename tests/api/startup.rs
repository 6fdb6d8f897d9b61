//! The binary as an operator runs it: defaults, refusals, `migrate`, and restarts.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use crate::logging::{Format, Server};
use reqwest::StatusCode;
use serde_json::Value;

db_tests!(a_restart_keeps_users_keys_and_tokens_valid);

async fn a_restart_keeps_users_keys_and_tokens_valid(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let signup = app.signup("alice").await;
    let jwks_before: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    app.restart().await;
    let jwks_after: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    assert_eq!(jwks_before, jwks_after);
    assert_eq!(
        app.get_with_bearer("/auth/me", field(&signup, "access_token")).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.refresh(field(&signup, "refresh_token")).await.status(), StatusCode::OK);
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

/// The binary in an empty directory with only the given variables set.
fn tollgate(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command.current_dir(dir).env_clear().env("RUST_LOG", "info").args(args);
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tollgate` and returns it with the port it reports in its log.
fn serve(dir: &std::path::Path, args: &[&str]) -> (Running, u16) {
    serve_with(dir, args, &[])
}

fn serve_with(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> (Running, u16) {
    let mut command = tollgate(dir, args, &[("BIND_ADDR", "127.0.0.1:0"), ("ARGON2_MEMORY_KIB", "1024")]);
    let mut child = command.envs(vars.iter().copied()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(address) = line.split("listening on ").nth(1) {
            return (running, address.rsplit(':').next().unwrap().trim().parse().unwrap());
        }
    }
    panic!("tollgate exited before listening");
}

#[tokio::test]
async fn the_defaults_serve_on_sqlite_with_keys_made_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&[][..], &["serve"][..]] {
        let (_server, port) = serve(dir.path(), args);
        let health = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    assert!(dir.path().join("data/tollgate.db").exists());
    let key = dir.path().join("data/keys/eddsa.pem");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
}

/// A first start (fresh database, fresh keys) logs no warning; SQLite's checkpoints begin
/// only once the migrations are done, as they found the database locked beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_warns_of_nothing_and_checkpoints_only_after_the_migrations() {
    for algorithm in ["RS256", "ES256", "EdDSA"] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path(), Format::Text, &[("JWT_ALGORITHM", algorithm)]);
        // A write, so that the checkpoints have something to do.
        let signup = reqwest::Client::new()
            .post(server.url("/auth/signup"))
            .json(&serde_json::json!({ "username": "alice", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(signup.status(), StatusCode::CREATED);
        server.child.kill().unwrap();
        let (_, log) = server.wait();
        let lines: Vec<&str> = log.lines().collect();
        let level =
            |line: &str| line.strip_prefix('[').and_then(|l| l.split_whitespace().nth(1)).map(str::to_owned);
        let warnings: Vec<&&str> =
            lines.iter().filter(|l| matches!(level(l).as_deref(), Some("WARN" | "ERROR"))).collect();
        assert!(warnings.is_empty(), "{algorithm}: {warnings:#?}");
        let position = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{algorithm}: no {needle:?} in\n{log}"))
        };
        assert!(
            position("database schema is current") < position("checkpoints of the SQLite log begin"),
            "{algorithm}: checkpoints began before the migrations were done:\n{log}"
        );
    }
}

#[tokio::test]
async fn the_demo_page_and_its_client_come_from_the_binary_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = serve_with(dir.path(), &[], &[("DEMO_UI", "true")]);
    let get = |path: &str| reqwest::get(format!("http://127.0.0.1:{port}{path}"));
    let page = get("/demo").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"from "/demo/tollgate-client.js""#), "{html}");
    let script = get("/demo/tollgate-client.js").await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    // The committed build of clients/js (ci.sh checks that it is the current one).
    let built =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/dist/index.js")).unwrap();
    assert_eq!(script.text().await.unwrap(), built);
    assert!(built.contains("export class TollgateClient"));
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["data"], "nothing but the database and keys was needed or made");
}

type RefusalCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("badkeys")).unwrap();
    std::fs::write(dir.path().join("badkeys/eddsa.pem"), "garbage").unwrap();
    // (the variable the error must name, JWT_ALGORITHM, other variables)
    let cases: &[RefusalCase] = &[
        ("JWT_ALGORITHM", "none", &[]),
        ("JWT_ALGORITHM", "HS512", &[]),
        ("JWT_SECRET", "HS256", &[("JWT_SECRET", "too-short")]),
        ("JWT_SECRET", "HS256", &[]),
        ("JWT_LEEWAY_SECS", "EdDSA", &[("JWT_LEEWAY_SECS", "thirty")]),
        ("ACCESS_TOKEN_TTL_SECS", "EdDSA", &[("ACCESS_TOKEN_TTL_SECS", "-5")]),
        ("DATABASE_URL", "EdDSA", &[("DATABASE_URL", "mysql://localhost/db")]),
        ("BIND_ADDR", "EdDSA", &[("BIND_ADDR", "not an address")]),
        ("JWT_KEYS_DIR", "EdDSA", &[("JWT_KEYS_DIR", "badkeys")]),
        ("PUBLIC_URL", "EdDSA", &[("PUBLIC_URL", "auth.example.com")]),
        ("LOG_FORMAT", "EdDSA", &[("LOG_FORMAT", "bogus")]),
        ("METRICS_BIND_ADDR", "EdDSA", &[("METRICS_BIND_ADDR", "not an address")]),
        ("SHUTDOWN_TIMEOUT_SECS", "EdDSA", &[("SHUTDOWN_TIMEOUT_SECS", "soon")]),
    ];
    for (variable, algorithm, extra) in cases {
        let mut vars = vec![("JWT_ALGORITHM", *algorithm)];
        vars.extend_from_slice(extra);
        let output = tollgate(dir.path(), &[], &vars).output().unwrap();
        assert!(!output.status.success(), "{variable} {vars:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("tollgate:")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(variable), "{variable}: {stderr}");
        assert!(!stderr.contains("too-short"), "the secret leaked: {stderr}");
    }
}

#[test]
fn migrate_applies_pending_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let first = tollgate(dir.path(), &["migrate"], &[]).output().unwrap();
    assert!(first.status.success());
    let migrations = std::fs::read_dir("migrations/sqlite").unwrap().count();
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), format!("applied {migrations} migration(s)"));
    let second = tollgate(dir.path(), &["migrate"], &[]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), "applied 0 migration(s)");
    let unknown = tollgate(dir.path(), &["frobnicate"], &[]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_versions() {
    let versions = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(format!("migrations/{backend}"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert!(!versions("sqlite").is_empty());
    assert_eq!(versions("sqlite"), versions("postgres"));
}
