//! Refresh-token rotation: the rules of the contract, each tried against the real app.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::admin::grant;
use crate::common::*;
use diesel::connection::{Connection, InstrumentationEvent};
use diesel::prelude::*;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate::auth::keys::KeyStore;
use tollgate::auth::refresh::{RefreshSessions, RefreshToken, Rotation};
use tollgate::clock::Clock;
use tollgate::db::WriteConn;
use tollgate::db::manager::ConnectionManager;
use tollgate::db::models::{LiveRotation, Rotated};
use tollgate::db::rotations::Rotations;
use tollgate::db::schema::users;
use tollgate::db::sessions::SessionStore;

db_tests!(
    refresh_rotates_and_the_old_token_stops_working_after_grace,
    concurrent_refreshes_of_one_token_yield_exactly_one_successor,
    a_retry_within_the_grace_window_gets_the_same_successor,
    a_replay_after_the_grace_window_revokes_the_session,
    an_older_ancestor_replayed_after_grace_revokes_too,
    forged_refresh_tokens_never_revoke_anything,
    refresh_tokens_expire_absolutely,
    refresh_input_errors_are_json,
    the_common_rotation_is_one_statement_and_a_retry_falls_back,
    a_session_disabled_by_hand_is_refused_and_left_alone,
);

postgres_tests!(
    batched_rotations_rotate_each_live_token_once_and_leave_the_rest,
    a_batch_that_fails_leaves_each_request_to_rotate_alone,
);

async fn refresh_ok(app: &TestApp, token: &str) -> Value {
    let response = app.refresh(token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn assert_refresh_refused(app: &TestApp, token: &str) {
    assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

async fn refresh_rotates_and_the_old_token_stops_working_after_grace(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let signup = app.signup("alice").await;
    let first = field(&signup, "refresh_token");
    let rotated = refresh_ok(&app, first).await;
    let second = field(&rotated, "refresh_token");
    assert_ne!(first, second);
    assert_eq!(rotated["user"], signup["user"]);
    assert_eq!(rotated["refresh_expires_in"], 2_592_000);
    assert_eq!(
        app.get_with_bearer("/auth/me", field(&rotated, "access_token")).await.status(),
        StatusCode::OK
    );
    let row = app.user_row("alice");
    assert_eq!(row.refresh_token_hash, Some(sha256_hex(second)));
    assert_eq!(row.previous_refresh_token_hash, Some(sha256_hex(first)));
}

async fn concurrent_refreshes_of_one_token_yield_exactly_one_successor(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("bob").await;
    let token = field(&signup, "refresh_token");
    let successors = distinct_successors(join_all((0..20).map(|_| app.refresh(token))).await).await;
    assert_eq!(successors.len(), 1, "{successors:?}");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(app.user_row("bob").refresh_token_hash, Some(sha256_hex(&successor)));
    refresh_ok(&app, &successor).await;
}

async fn a_retry_within_the_grace_window_gets_the_same_successor(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("carol").await;
    let token = field(&signup, "refresh_token");
    let first = refresh_ok(&app, token).await;
    // The client lost that response and retries.
    let retry = refresh_ok(&app, token).await;
    assert_eq!(first["refresh_token"], retry["refresh_token"]);
    assert_eq!(app.user_row("carol").refresh_token_hash, Some(sha256_hex(field(&first, "refresh_token"))));
    // The successor is a normal live token; the session goes on.
    let next = refresh_ok(&app, field(&retry, "refresh_token")).await;
    assert_ne!(next["refresh_token"], retry["refresh_token"]);
}

async fn a_replay_after_the_grace_window_revokes_the_session(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let signup = app.signup("dave").await;
    let stolen = field(&signup, "refresh_token");
    let victim = refresh_ok(&app, stolen).await;
    assert_refresh_refused(&app, stolen).await;
    let row = app.user_row("dave");
    assert_eq!((row.refresh_token_hash, row.previous_refresh_token_hash), (None, None));
    // Both the thief and the victim must log in again.
    assert_refresh_refused(&app, field(&victim, "refresh_token")).await;
    assert_eq!(app.login("dave", PASSWORD).await.status(), StatusCode::OK);
}

async fn an_older_ancestor_replayed_after_grace_revokes_too(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let signup = app.signup("erin").await;
    let oldest = field(&signup, "refresh_token");
    let second = refresh_ok(&app, oldest).await;
    let third = refresh_ok(&app, field(&second, "refresh_token")).await;
    let current = refresh_ok(&app, field(&third, "refresh_token")).await;
    assert_refresh_refused(&app, oldest).await;
    assert_eq!(app.user_row("erin").refresh_token_hash, None);
    assert_refresh_refused(&app, field(&current, "refresh_token")).await;
}

async fn forged_refresh_tokens_never_revoke_anything(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let signup = app.signup("frank").await;
    let real = field(&signup, "refresh_token");
    let mut forged: Vec<String> = vec![
        String::new(),
        "tgr_".into(),
        real[..real.len() - 1].to_owned(),
        format!("{real}x"),
        real.to_uppercase(),
        format!("tgr_{}", "A".repeat(43)),
        format!("tgr_{}", "-".repeat(43)),
        "' OR 1=1 --".into(),
        field(&signup, "access_token").to_owned(),
        sha256_hex(real),
        "x".repeat(100_000),
    ];
    let mut flipped = real.as_bytes().to_vec();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    forged.push(String::from_utf8(flipped).unwrap());
    for token in &forged {
        let response = app.refresh(token).await;
        let status = response.status();
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::PAYLOAD_TOO_LARGE, "{status}");
    }
    assert_eq!(app.user_row("frank").refresh_token_hash, Some(sha256_hex(real)));
    refresh_ok(&app, real).await;
}

async fn refresh_tokens_expire_absolutely(backend: Backend) {
    let clock = tollgate::clock::ManualClock::new();
    let app = spawn_app_at(backend, &clock, &[("REFRESH_TOKEN_TTL_SECS", "1")]).await;
    let signup = app.signup("grace").await;
    assert_eq!(signup["refresh_expires_in"], 1);
    clock.advance(std::time::Duration::from_millis(1100));
    let token = field(&signup, "refresh_token");
    assert_refresh_refused(&app, token).await;
    // Refused, not taken for a replay: the (dead) session is left as it was.
    let row = app.user_row("grace");
    assert_eq!((row.refresh_token_hash, row.tokens_valid_after), (Some(sha256_hex(token)), None));
}

async fn refresh_input_errors_are_json(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_error(
        app.post_json("/auth/refresh", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let response = app.post_json("/auth/refresh", &json!({ "refresh_token": 7 })).await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let response = app.post_raw_json("/auth/refresh", "{not json").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
}

/// Rotates refresh tokens on one connection of the app's database, counting what each
/// rotation asks of the database.
struct CountingRotations {
    sessions: RefreshSessions,
    conn: r2d2::PooledConnection<ConnectionManager>,
    /// Statements run, and statements prepared to be kept, since the last rotation.
    counts: Arc<[AtomicUsize; 2]>,
}

impl CountingRotations {
    fn new(app: &TestApp) -> Self {
        let settings = app.settings();
        let keys = KeyStore::open(&settings.jwt, Clock::system()).unwrap();
        let sessions =
            RefreshSessions::new(keys.refresh_secret.clone(), &settings.refresh, SessionStore::UsersRow);
        let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let counter = counts.clone();
        let mut conn = app.pool.get().unwrap();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            // On PostgreSQL the live rotation has a REPEATABLE READ transaction of its own
            // (`User::rotate_live_session`): its BEGIN and COMMIT ask nothing.
            InstrumentationEvent::StartQuery { query, .. } if is_transaction_control(&query.to_string()) => {}
            InstrumentationEvent::StartQuery { .. } => _ = counter[0].fetch_add(1, Ordering::Relaxed),
            InstrumentationEvent::CacheQuery { .. } => _ = counter[1].fetch_add(1, Ordering::Relaxed),
            _ => {}
        });
        Self { sessions, conn, counts }
    }

    /// The rotation, the statements it ran and how many of them it prepared to keep.
    fn rotate(&mut self, presented: &str) -> (Rotation, usize, usize) {
        let presented = RefreshToken::parse(presented).unwrap();
        let rotation = self
            .sessions
            .rotate(&mut WriteConn::direct(&mut self.conn), &presented, chrono::Utc::now().naive_utc())
            .unwrap();
        let [run, prepared] = &*self.counts;
        (rotation, run.swap(0, Ordering::Relaxed), prepared.swap(0, Ordering::Relaxed))
    }
}

fn is_transaction_control(sql: &str) -> bool {
    ["BEGIN", "COMMIT", "ROLLBACK"].iter().any(|keyword| sql.starts_with(keyword))
}

impl Drop for CountingRotations {
    fn drop(&mut self) {
        self.conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    }
}

/// Disables the users whose names are `like` this, as an UPDATE by hand would: the
/// sessions stay in the rows.
fn disable_by_hand(app: &TestApp, like: &str) {
    let mut conn = app.pool.get().unwrap();
    diesel::update(users::table.filter(users::username.like(like)))
        .set(users::disabled.eq(true))
        .execute(&mut **conn)
        .unwrap();
}

fn rotated(rotation: Rotation) -> (String, Vec<String>) {
    let Rotation::Rotated(issued) = rotation else { panic!("the token was not rotated") };
    (issued.token.as_str().to_owned(), issued.rotated.roles)
}

async fn the_common_rotation_is_one_statement_and_a_retry_falls_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("heidi").await;
    grant(&app, "heidi", &["staff", "billing:read", "admin"]);
    let token = field(&signup, "refresh_token");
    let mut rotations = CountingRotations::new(&app);
    // The update returns the row and its roles: nothing else is asked. It is prepared
    // once for the connection...
    let (rotation, statements, prepared) = rotations.rotate(token);
    assert_eq!((statements, prepared), (1, 1));
    let (successor, roles) = rotated(rotation);
    assert_eq!(roles, ["admin", "billing:read", "staff"]);
    let row = app.user_row("heidi");
    assert_eq!(row.refresh_token_hash, Some(sha256_hex(&successor)));
    assert_eq!(row.previous_refresh_token_hash, Some(sha256_hex(token)));
    // The retry finds the update refused and looks further: the same successor and roles.
    let (retry, statements, _) = rotations.rotate(token);
    assert!(statements > 1, "{statements}");
    assert_eq!(rotated(retry), (successor.clone(), roles.clone()));
    // ...and the next rotation on it uses the statement prepared the first time.
    let (next, statements, prepared) = rotations.rotate(&successor);
    assert_eq!((statements, prepared), (1, 0));
    let (next, _) = rotated(next);
    let last = refresh_ok(&app, &next).await;
    assert_eq!(last["user"]["roles"], json!(roles));
}

async fn a_session_disabled_by_hand_is_refused_and_left_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("ivan").await;
    let previous = field(&signup, "refresh_token");
    let current = refresh_ok(&app, previous).await;
    let current = field(&current, "refresh_token");
    // Disabling through the API clears the session; a row changed by hand keeps it.
    disable_by_hand(&app, "ivan");
    // Neither the live token nor a retry of its predecessor within grace gets through,
    // and neither counts as a replay.
    assert_refresh_refused(&app, current).await;
    assert_refresh_refused(&app, previous).await;
    let row = app.user_row("ivan");
    assert_eq!(row.refresh_token_hash, Some(sha256_hex(current)));
    assert_eq!(row.previous_refresh_token_hash, Some(sha256_hex(previous)));
    assert_eq!(row.tokens_valid_after, None);
}

fn live_rotation(current: &str, i: usize, now: chrono::NaiveDateTime) -> LiveRotation {
    LiveRotation {
        current_hash: sha256_hex(current),
        successor_hash: sha256_hex(&format!("successor {i}")),
        expires_at: now + chrono::TimeDelta::days(1),
        now,
    }
}

async fn batched_rotations_rotate_each_live_token_once_and_leave_the_rest(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tokens = Vec::new();
    for i in 0..30 {
        let signup = app.signup(&format!("batch{i}")).await;
        tokens.push(field(&signup, "refresh_token").to_owned());
    }
    grant(&app, "batch0", &["staff", "admin"]);
    disable_by_hand(&app, "batch2_");
    let disabled_before = app.user_row("batch25");
    let settings = app.settings().database;
    let rotations = Rotations::spawn(ConnectionManager::new(settings.url), settings.connect_timeout).unwrap();
    // Microseconds, as PostgreSQL keeps them.
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now().naive_utc(), 6);
    // Every token twice, and one that was never issued, all at once: batches of many,
    // with a token repeated within a batch or across two.
    let jobs: Vec<(usize, LiveRotation)> = (0..2)
        .flat_map(|_| tokens.iter().enumerate())
        .map(|(i, token)| (i, live_rotation(token, i, now)))
        .chain([(99, live_rotation(RefreshToken::mint().as_str(), 99, now))])
        .collect();
    let answers = join_all(jobs.into_iter().map(|(i, job)| {
        let rotations = rotations.clone();
        async move { (i, rotations.rotate(job, SessionStore::UsersRow.batch_sql()).await.unwrap()) }
    }))
    .await;
    let mut rotated = vec![0; 30];
    for (i, answer) in answers {
        let Some(Rotated { user, roles, .. }) = answer else { continue };
        assert!(i < 20, "batch{i} is disabled or unknown, yet was rotated");
        rotated[i] += 1;
        assert_eq!(user.username, format!("batch{i}"));
        assert_eq!(user.refresh_token_hash, Some(sha256_hex(&format!("successor {i}"))));
        assert_eq!(roles, if i == 0 { vec!["admin", "staff"] } else { vec![] });
    }
    assert_eq!(rotated, [vec![1; 20], vec![0; 10]].concat());
    for (i, token) in tokens.iter().enumerate().take(20) {
        // What the single statement writes (`SessionChange::rotated`), row by row.
        let row = app.user_row(&format!("batch{i}"));
        assert_eq!(row.refresh_token_hash, Some(sha256_hex(&format!("successor {i}"))));
        assert_eq!(row.previous_refresh_token_hash, Some(sha256_hex(token)));
        assert_eq!(row.refresh_token_expires_at, Some(now + chrono::TimeDelta::days(1)));
        assert_eq!(row.refresh_token_rotated_at, Some(now));
        assert_eq!(row.updated_at, now);
        assert_eq!(row.tokens_valid_after, None);
    }
    let disabled = app.user_row("batch25");
    assert_eq!(disabled.refresh_token_hash, disabled_before.refresh_token_hash);
    assert_eq!(disabled.updated_at, disabled_before.updated_at);
}

async fn a_batch_that_fails_leaves_each_request_to_rotate_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let signup = app.signup("judy").await;
    let first = refresh_ok(&app, field(&signup, "refresh_token")).await;
    let first = field(&first, "refresh_token");
    // The batches' connection (the one that ran the batch statement) dies; the next
    // batch fails on it.
    let mut conn = app.pool.get().unwrap();
    let killed: Vec<bool> = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%FROM unnest(%' \
         AND datname = current_database() AND pid <> pg_backend_pid()",
    ))
    .load(&mut **conn)
    .unwrap();
    drop(conn);
    assert_eq!(killed, [true]);
    let second = refresh_ok(&app, first).await;
    let second = field(&second, "refresh_token");
    assert_eq!(app.user_row("judy").refresh_token_hash, Some(sha256_hex(second)));
    // The retry is answered the same, and the batches go on with a new connection.
    assert_eq!(refresh_ok(&app, first).await["refresh_token"], second);
    let third = refresh_ok(&app, second).await;
    assert_eq!(app.user_row("judy").refresh_token_hash, Some(sha256_hex(field(&third, "refresh_token"))));
}
