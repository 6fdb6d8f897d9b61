//! Abuse limits on both implementations: the rules themselves (in memory on SQLite, in the
//! database on PostgreSQL), and on PostgreSQL, two instances on one database enforcing one
//! limit together, unless `SHARED_ABUSE_LIMITS=false`.

use std::net::IpAddr;
use std::time::Duration;

use crate::common::*;
use diesel::prelude::*;
use reqwest::{Response, StatusCode};
use serde_json::json;
use tempfile::TempDir;
use tollgate::auth::rate_limit::{AbuseLimits, LimitError, Limited};
use tollgate::clock::ManualClock;
use tollgate::db::build_pool;
use tollgate::db::schema::{ip_attempts, login_failures};

db_tests!(
    the_ip_window_allows_the_limit_then_refuses_until_it_passes,
    a_username_locks_after_ten_failures_for_doubling_periods_capped_at_15_minutes,
    old_failures_are_forgotten,
    any_username_is_counted_case_blind_by_its_first_64_characters,
);
postgres_tests!(
    failures_spread_over_two_instances_lock_the_name_on_both,
    concurrent_failures_over_two_instances_are_all_counted,
    the_ip_limit_spread_over_two_instances_holds_on_both,
    without_shared_limits_each_instance_counts_its_own,
    expired_rows_are_deleted,
);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The limits a server on `backend` runs with, on a fresh database where they need one.
struct Limits {
    limits: AbuseLimits,
    // Dropped after the limits' pool.
    _database: TestDatabase,
    _dir: TempDir,
}

fn limits_on(backend: Backend, per_minute: u32, clock: &ManualClock) -> Limits {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(&backend, &dir);
    let limits = match backend {
        Backend::Sqlite => AbuseLimits::local(per_minute, clock.clock()),
        Backend::Postgres(_) => {
            let pool = build_pool(&test_settings(&database, dir.path()).database).unwrap();
            pool.migrate().unwrap();
            AbuseLimits::shared(pool, per_minute, clock.clock())
        }
    };
    Limits { limits, _database: database, _dir: dir }
}

impl Limits {
    async fn fail(&self, username: &str, times: usize) {
        for _ in 0..times {
            let attempt = self.limits.login_attempt(None, username).await.expect("not locked");
            self.limits.login_failed(&attempt).await.unwrap();
        }
    }

    /// The wait a login for `username` is refused with, if it is.
    async fn locked_for(&self, username: &str) -> Option<u64> {
        match self.limits.login_attempt(None, username).await {
            Ok(_) => None,
            Err(LimitError::Limited(Limited { retry_after_secs })) => Some(retry_after_secs),
            Err(e) => panic!("{e}"),
        }
    }
}

async fn the_ip_window_allows_the_limit_then_refuses_until_it_passes(backend: Backend) {
    let clock = ManualClock::new();
    let limits = limits_on(backend, 3, &clock);
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let other: IpAddr = "2001:db8::1".parse().unwrap();
    for _ in 0..3 {
        limits.limits.attempt(Some(ip)).await.unwrap();
    }
    clock.advance(secs(20));
    match limits.limits.attempt(Some(ip)).await {
        Err(LimitError::Limited(Limited { retry_after_secs })) => assert_eq!(retry_after_secs, 40),
        other => panic!("expected a limit, got {other:?}"),
    }
    // A login counts against the same window.
    assert!(matches!(limits.limits.login_attempt(Some(ip), "alice").await, Err(LimitError::Limited(_))));
    limits.limits.attempt(Some(other)).await.unwrap();
    clock.advance(secs(40));
    limits.limits.attempt(Some(ip)).await.unwrap();
}

async fn a_username_locks_after_ten_failures_for_doubling_periods_capped_at_15_minutes(backend: Backend) {
    let clock = ManualClock::new();
    let limits = limits_on(backend, 0, &clock);
    let mut lockouts = Vec::new();
    for _ in 0..6 {
        limits.fail("Alice", 9).await;
        assert_eq!(limits.locked_for("alice").await, None);
        limits.fail("alice", 1).await;
        let retry_after = limits.locked_for("ALICE").await.expect("locked");
        lockouts.push(retry_after);
        clock.advance(secs(retry_after - 1));
        assert_eq!(limits.locked_for("alice").await, Some(1));
        clock.advance(secs(1));
    }
    assert_eq!(lockouts, [60, 120, 240, 480, 900, 900]);
    let attempt = limits.limits.login_attempt(None, "alice").await.unwrap();
    limits.limits.login_succeeded(&attempt).await.unwrap();
    limits.fail("alice", 9).await;
    assert_eq!(limits.locked_for("alice").await, None);
    // The reset took the lockout level too: the next lock is the first one again.
    limits.fail("alice", 1).await;
    assert_eq!(limits.locked_for("alice").await, Some(60));
}

async fn old_failures_are_forgotten(backend: Backend) {
    let clock = ManualClock::new();
    let limits = limits_on(backend, 0, &clock);
    limits.fail("bob", 9).await;
    clock.advance(secs(15 * 60));
    limits.fail("bob", 1).await;
    assert_eq!(limits.locked_for("bob").await, None);
    // Within 15 minutes, though, ten lock: nine more now, one of them just before.
    limits.fail("bob", 8).await;
    assert_eq!(limits.locked_for("bob").await, None);
    limits.fail("bob", 1).await;
    assert_eq!(limits.locked_for("bob").await, Some(60));
    // Half an hour without a failure forgets the lockout level as well.
    clock.advance(secs(30 * 60));
    limits.fail("bob", 10).await;
    assert_eq!(limits.locked_for("bob").await, Some(60));
}

async fn any_username_is_counted_case_blind_by_its_first_64_characters(backend: Backend) {
    let clock = ManualClock::new();
    let limits = limits_on(backend, 0, &clock);
    let prefix = "a".repeat(64);
    for i in 0..10 {
        limits.fail(&format!("{prefix}{i}"), 1).await;
    }
    assert_eq!(limits.locked_for(&format!("{}-anything", prefix.to_uppercase())).await, Some(60));
    assert_eq!(limits.locked_for(&prefix[..63]).await, None);
    // A NUL, which a database column cannot hold, is counted like anything else.
    limits.fail("adm\0in", 10).await;
    assert_eq!(limits.locked_for("ADM\0IN").await, Some(60));
    assert_eq!(limits.locked_for("admin").await, None);
}

/// An app on PostgreSQL and the address of a second instance on its database.
async fn two_instances(
    backend: Backend,
    clock: &ManualClock,
    overrides: &[(&str, &str)],
) -> (TestApp, String) {
    let app = spawn_app_at(backend, clock, overrides).await;
    let (other, handle) = app.start_sibling();
    // The sibling stops with the test's runtime.
    drop(handle);
    (app, other)
}

async fn login_at(app: &TestApp, base: &str, username: &str, password: &str) -> Response {
    let body = json!({ "username": username, "password": password });
    app.client.post(format!("{base}/auth/login")).json(&body).send().await.unwrap()
}

/// `times` wrong passwords for `username`, taking turns between the two instances.
async fn fail_over_both(app: &TestApp, other: &str, username: &str, times: usize) {
    for i in 0..times {
        let base = if i % 2 == 0 { &app.address } else { other };
        let response = login_at(app, base, username, "wrong password").await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

async fn assert_limited(response: Response, retry_after: u64) {
    assert_eq!(response.headers()["retry-after"], retry_after.to_string().as_str());
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn failures_spread_over_two_instances_lock_the_name_on_both(backend: Backend) {
    let clock = ManualClock::new();
    let (app, other) = two_instances(backend, &clock, &[]).await;
    app.signup("alice").await;
    fail_over_both(&app, &other, "alice", 10).await;
    // Locked on both, even for the right password; the clock has not moved.
    for base in [&app.address, &other] {
        assert_limited(login_at(&app, base, "Alice", PASSWORD).await, 60).await;
    }
    // Unknown names lock alike.
    fail_over_both(&app, &other, "nobody", 10).await;
    assert_limited(login_at(&app, &other, "nobody", PASSWORD).await, 60).await;

    clock.advance(secs(60));
    assert_eq!(login_at(&app, &other, "alice", PASSWORD).await.status(), StatusCode::OK);
    // That success reset the count for both instances.
    fail_over_both(&app, &other, "alice", 9).await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

async fn concurrent_failures_over_two_instances_are_all_counted(backend: Backend) {
    let clock = ManualClock::new();
    let (app, other) = two_instances(backend, &clock, &[]).await;
    app.signup("erin").await;
    assert_eq!(app.login("erin", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(rows(&app), (0, 0), "a success with nothing on record writes nothing");
    let bases = [&app.address, &other];
    let logins = (0..10).map(|i| login_at(&app, bases[i % 2], "erin", "wrong password"));
    for response in futures_util::future::join_all(logins).await {
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // None of the ten was lost to a concurrent one: the tenth locked the name.
    for base in bases {
        assert_limited(login_at(&app, base, "erin", PASSWORD).await, 60).await;
    }
}

async fn the_ip_limit_spread_over_two_instances_holds_on_both(backend: Backend) {
    let clock = ManualClock::new();
    let (app, other) = two_instances(backend, &clock, &[("AUTH_RATE_LIMIT_PER_MIN", "4")]).await;
    app.signup("bob").await;
    assert_eq!(login_at(&app, &other, "bob", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(login_at(&app, &other, "bob", PASSWORD).await.status(), StatusCode::OK);
    clock.advance(secs(15));
    for base in [&app.address, &other] {
        assert_limited(login_at(&app, base, "bob", PASSWORD).await, 45).await;
    }
    let signup = app.client.post(format!("{other}/auth/signup"));
    let signup = signup.json(&json!({ "username": "carol", "password": PASSWORD })).send().await.unwrap();
    assert_limited(signup, 45).await;
    clock.advance(secs(45));
    assert_eq!(login_at(&app, &other, "bob", PASSWORD).await.status(), StatusCode::OK);
}

/// The two tests above, with the limits per process: each instance sees only its share.
async fn without_shared_limits_each_instance_counts_its_own(backend: Backend) {
    let clock = ManualClock::new();
    let settings = [("SHARED_ABUSE_LIMITS", "false"), ("AUTH_RATE_LIMIT_PER_MIN", "7")];
    let (app, other) = two_instances(backend, &clock, &settings).await;
    app.signup("alice").await;
    // Five failures each: neither instance locks the name.
    fail_over_both(&app, &other, "alice", 10).await;
    assert_eq!(login_at(&app, &other, "alice", PASSWORD).await.status(), StatusCode::OK);
    // Seven attempts at each, where one shared limit would have refused the eighth of all.
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(login_at(&app, &other, "alice", PASSWORD).await.status(), StatusCode::OK);
    assert_limited(app.login("alice", PASSWORD).await, 60).await;
}

fn rows(app: &TestApp) -> (i64, i64) {
    let mut conn = app.pool.get().unwrap();
    let attempts = ip_attempts::table.count().get_result(&mut **conn).unwrap();
    let failures = login_failures::table.count().get_result(&mut **conn).unwrap();
    (attempts, failures)
}

async fn expired_rows_are_deleted(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("AUTH_RATE_LIMIT_PER_MIN", "100")]).await;
    app.signup("dave").await;
    for name in ["dave", "erin", "frank"] {
        assert_eq!(app.login(name, "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(rows(&app), (1, 3));
    // Still within their time: a sweep leaves them.
    clock.advance(secs(29 * 60));
    assert_eq!(app.login("dave", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(rows(&app), (1, 2), "the success forgot dave's failure, the others stay");
    // Past it, the next attempt's sweep deletes them; the window it opened stays.
    clock.advance(secs(60));
    app.signup("grace").await;
    assert_eq!(rows(&app), (1, 0));
    let mut conn = app.pool.get().unwrap();
    let window_ends: i64 = ip_attempts::table.select(ip_attempts::expires_at_ms).first(&mut **conn).unwrap();
    assert_eq!(window_ends, clock.now().timestamp_millis() + 60_000);
}
