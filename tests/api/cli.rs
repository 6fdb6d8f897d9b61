//! `tollgate user …`: the real binary on the database of a running server, its effects
//! checked through the server's HTTP API.
//!
//! The server caches user rows it has authenticated for a second, so each check of an old
//! token here is that token's first use: the server reads the row the CLI just wrote.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

db_tests!(
    create_reads_the_password_from_standard_input_and_makes_the_first_admin,
    refusals_exit_1_with_one_line_and_change_nothing,
    list_prints_one_user_a_line_and_json_objects,
    disable_enable_and_delete_take_effect_on_the_running_server,
    set_password_reads_standard_input_and_ends_the_sessions,
    roles_prints_adds_and_removes_and_a_removal_revokes,
    the_last_enabled_admin_is_kept_as_through_the_admin_api,
    on_a_terminal_the_password_is_prompted_for_twice,
);

/// Runs `tollgate ARGS` on the app's configuration with `stdin` as standard input.
pub fn tollgate(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    let mut child = app
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed; returns its standard output.
pub fn succeeds(app: &TestApp, args: &[&str], stdin: &str) -> String {
    let output = tollgate(app, args, stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    assert_eq!(stderr, "", "{args:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command that must be refused: exit code 1 and one line on standard error.
fn refused(app: &TestApp, args: &[&str], stdin: &str) -> String {
    let output = tollgate(app, args, stdin);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("tollgate: "), "{stderr}");
    assert_eq!(output.stdout, b"", "{args:?}");
    stderr
}

pub async fn login(app: &TestApp, username: &str, password: &str) -> Value {
    let response = app.login(username, password).await;
    assert_eq!(response.status(), StatusCode::OK, "{username}");
    response.json().await.unwrap()
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    app.get_with_bearer("/auth/me", token).await.status()
}

async fn create_reads_the_password_from_standard_input_and_makes_the_first_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let args = ["user", "create", "Root", "--email", "Root@Example.com", "--role", "admin", "--role", "ops"];
    let out = succeeds(&app, &args, &format!("{PASSWORD}\n"));
    let row = app.user_row("root");
    assert_eq!(out, format!("created root ({})\n", row.id.0));
    assert!(row.password_hash.starts_with("$argon2id$") && !row.password_hash.contains(PASSWORD));

    let root = login(&app, "root", PASSWORD).await;
    assert_eq!(root["user"]["email"], "root@example.com");
    assert_eq!(root["user"]["roles"], json!(["admin", "ops"]));
    let token = field(&root, "access_token");
    assert_eq!(access_claims(token)["roles"], json!(["admin", "ops"]));
    let users = app.get_with_bearer("/admin/users", token).await;
    assert_eq!(users.status(), StatusCode::OK);

    // A Windows line end and a missing final newline are both one line.
    succeeds(&app, &["user", "create", "crlf"], &format!("{PASSWORD}\r\n"));
    login(&app, "crlf", PASSWORD).await;
    succeeds(&app, &["user", "create", "bare"], PASSWORD);
    login(&app, "bare", PASSWORD).await;
    // Only the first line is the password.
    succeeds(&app, &["user", "create", "twolines"], &format!("{PASSWORD}\nsecond line\n"));
    login(&app, "twolines", PASSWORD).await;
}

async fn refusals_exit_1_with_one_line_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("alice").await;
    let line = format!("{PASSWORD}\n");
    assert!(refused(&app, &["user", "create", "ALICE"], &line).contains("taken"));
    assert!(refused(&app, &["user", "create", "bob", "--role", "Admin"], &line).contains("Admin"));
    assert!(refused(&app, &["user", "create", "bob", "--email", "nope"], &line).contains("email"));
    assert!(refused(&app, &["user", "create", "b b"], &line).contains("username"));
    assert!(refused(&app, &["user", "create", "bob"], "short\n").contains("password"));
    assert!(refused(&app, &["user", "create", "bob"], "").contains("password"));
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);

    for command in
        [&["disable"][..], &["enable"], &["delete"], &["set-password"], &["roles"], &["roles", "--add", "x"]]
    {
        let mut args = vec!["user"];
        args.extend_from_slice(&command[..1]);
        args.push("nobody");
        args.extend_from_slice(&command[1..]);
        assert!(refused(&app, &args, &line).contains("no such user"), "{args:?}");
    }
    assert!(refused(&app, &["user", "roles", "alice", "--remove", "a b"], "").contains("a b"));
    // A bad configuration is refused the same way.
    let mut bad = app.command(&["user", "list"]);
    let output = bad.env("JWT_ALGORITHM", "none").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_ALGORITHM"));
    login(&app, "alice", PASSWORD).await;
}

async fn list_prints_one_user_a_line_and_json_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(succeeds(&app, &["user", "list"], ""), "");
    let bob = app.signup("bob").await;
    succeeds(&app, &["user", "create", "alice", "--email", "a@example.com", "--role", "staff"], PASSWORD);
    succeeds(&app, &["user", "disable", "bob"], "");

    let plain = succeeds(&app, &["user", "list"], "");
    let lines: Vec<Vec<&str>> = plain.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{plain}");
    assert_eq!(
        lines[0][..5],
        ["alice", &app.user_row("alice").id.0.to_string(), "a@example.com", "staff", "enabled"]
    );
    assert_eq!(lines[1][..5], ["bob", field(&bob["user"], "id"), "-", "-", "disabled"]);
    assert_eq!(lines[1][5], field(&bob["user"], "created_at"));

    let json = succeeds(&app, &["user", "list", "--json"], "");
    let objects: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 2);
    let keys: Vec<&str> = objects[1].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["created_at", "disabled", "email", "email_verified", "id", "mfa_enabled", "roles", "username"]
    );
    assert_eq!(objects[0]["roles"], json!(["staff"]));
    assert_eq!(objects[1]["id"], bob["user"]["id"]);
    assert_eq!(objects[1]["disabled"], true);
    assert_eq!(objects[1]["email"], Value::Null);
}

async fn disable_enable_and_delete_take_effect_on_the_running_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.signup("alice").await;
    assert_eq!(succeeds(&app, &["user", "disable", "Alice"], ""), "disabled Alice\n");
    assert_eq!(me_status(&app, field(&alice, "access_token")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(field(&alice, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    assert_error(app.login("alice", PASSWORD).await, StatusCode::FORBIDDEN, "account_disabled").await;

    succeeds(&app, &["user", "enable", "alice"], "");
    let again = login(&app, "alice", PASSWORD).await;
    assert_eq!(me_status(&app, field(&again, "access_token")).await, StatusCode::OK);

    let bob = app.signup("bob").await;
    succeeds(&app, &["user", "delete", "bob"], "");
    assert_eq!(me_status(&app, field(&bob, "access_token")).await, StatusCode::UNAUTHORIZED);
    // For the revocation feed, as a deletion through the admin API.
    assert_eq!(crate::revocations::tombstones(&app), [field(&bob["user"], "id")]);
    assert_error(app.login("bob", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert!(!succeeds(&app, &["user", "list"], "").contains("bob"));
    // The name is free again.
    app.signup("bob").await;
}

async fn set_password_reads_standard_input_and_ends_the_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.signup("alice").await;
    let new_password = "a new password from stdin";
    succeeds(&app, &["user", "set-password", "alice"], &format!("{new_password}\n"));
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, field(&alice, "access_token")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(field(&alice, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    login(&app, "alice", new_password).await;
    assert!(refused(&app, &["user", "set-password", "alice"], "short\n").contains("password"));
    login(&app, "alice", new_password).await;
}

async fn roles_prints_adds_and_removes_and_a_removal_revokes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signup("alice").await;
    assert_eq!(succeeds(&app, &["user", "roles", "alice"], ""), "");
    let added =
        succeeds(&app, &["user", "roles", "alice", "--add", "ops", "--add", "admin", "--add", "ops"], "");
    assert_eq!(added, "admin\nops\n");
    let before = login(&app, "alice", PASSWORD).await;
    assert_eq!(access_claims(field(&before, "access_token"))["roles"], json!(["admin", "ops"]));

    // Adding takes nothing away: the token of a moment ago stays valid.
    assert_eq!(succeeds(&app, &["user", "roles", "alice", "--add", "staff"], ""), "admin\nops\nstaff\n");
    let after_add = login(&app, "alice", PASSWORD).await;
    // Another admin first: the last one's admin role is not taken (see below).
    app.signup("root").await;
    succeeds(&app, &["user", "roles", "root", "--add", "admin"], "");
    let removed = succeeds(&app, &["user", "roles", "alice", "--remove", "admin", "--add", "beta"], "");
    assert_eq!(removed, "beta\nops\nstaff\n");
    for token in [field(&before, "access_token"), field(&after_add, "access_token")] {
        assert_eq!(me_status(&app, token).await, StatusCode::UNAUTHORIZED);
    }
    let refreshed = app.refresh(field(&after_add, "refresh_token")).await;
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(access_claims(field(&refreshed, "access_token"))["roles"], json!(["beta", "ops", "staff"]));
    assert_eq!(succeeds(&app, &["user", "roles", "alice"], ""), "beta\nops\nstaff\n");
}

async fn the_last_enabled_admin_is_kept_as_through_the_admin_api(backend: Backend) {
    let app = spawn_app(backend).await;
    succeeds(&app, &["user", "create", "root", "--role", "admin"], PASSWORD);
    let root = login(&app, "root", PASSWORD).await;
    let take_rights =
        [&["roles", "root", "--remove", "admin"][..], &["disable", "root"], &["delete", "root"]];
    for command in take_rights {
        let args: Vec<&str> = ["user"].iter().chain(command).copied().collect();
        let stderr = refused(&app, &args, "");
        assert!(stderr.contains("no enabled admin"), "{args:?}: {stderr}");
    }
    // Nothing changed, nothing was revoked.
    assert_eq!(succeeds(&app, &["user", "roles", "root"], ""), "admin\n");
    let users = app.get_with_bearer("/admin/users", field(&root, "access_token")).await;
    assert_eq!(users.status(), StatusCode::OK);

    // A disabled admin does not count; an enabled one does.
    succeeds(&app, &["user", "create", "backup", "--role", "admin"], PASSWORD);
    succeeds(&app, &["user", "disable", "backup"], "");
    assert!(refused(&app, &["user", "disable", "root"], "").contains("no enabled admin"));
    succeeds(&app, &["user", "enable", "backup"], "");
    succeeds(&app, &["user", "disable", "root"], "");
    assert!(refused(&app, &["user", "delete", "backup"], "").contains("no enabled admin"));
    succeeds(&app, &["user", "delete", "root"], "");
    assert_eq!(succeeds(&app, &["user", "roles", "backup"], ""), "admin\n");
}

/// `tollgate ARGS` on a terminal: util-linux's `script` gives it a pseudo-terminal and
/// types `typed` into it. Returns the exit code and what the terminal showed.
fn on_a_terminal(app: &TestApp, args: &str, typed: &str) -> (Option<i32>, String) {
    let command = format!("'{}' {args}", env!("CARGO_BIN_EXE_tollgate"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .envs(&app.vars)
        .current_dir(app.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's script runs");
    child.stdin.take().unwrap().write_all(typed.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn on_a_terminal_the_password_is_prompted_for_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let (code, screen) = on_a_terminal(&app, "user create alice", &format!("{PASSWORD}\n{PASSWORD}\n"));
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("Password: ") && screen.contains("Repeat password: "), "{screen}");
    login(&app, "alice", PASSWORD).await;

    let (code, screen) = on_a_terminal(&app, "user create bob", &format!("{PASSWORD}\nanother password\n"));
    assert_eq!(code, Some(1), "{screen}");
    assert!(screen.contains("do not match"), "{screen}");
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);

    let (code, screen) = on_a_terminal(&app, "user set-password alice", "a new password\na new password\n");
    assert_eq!(code, Some(0), "{screen}");
    login(&app, "alice", "a new password").await;
}

#[test]
fn every_command_has_help_and_usage_errors_exit_2() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate")).env_clear().args(args).output().unwrap()
    };
    let commands: [&[&str]; 14] = [
        &[],
        &["serve"],
        &["migrate"],
        &["keys"],
        &["keys", "list"],
        &["keys", "rotate"],
        &["user"],
        &["user", "create"],
        &["user", "list"],
        &["user", "disable"],
        &["user", "enable"],
        &["user", "delete"],
        &["user", "set-password"],
        &["user", "roles"],
    ];
    for command in commands {
        let output = run(&[command, &["--help"]].concat());
        assert!(output.status.success(), "{command:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage: tollgate"), "{command:?}");
    }
    for usage_error in [
        &["frobnicate"][..],
        &["user"],
        &["user", "frobnicate"],
        &["user", "create"],
        // A password never comes from the command line.
        &["user", "create", "bob", "correct-horse-battery"],
        &["user", "create", "bob", "--password", "correct-horse-battery"],
        &["user", "roles", "bob", "--add"],
        &["keys", "list", "extra"],
    ] {
        let output = run(usage_error);
        assert_eq!(output.status.code(), Some(2), "{usage_error:?}");
    }
}
