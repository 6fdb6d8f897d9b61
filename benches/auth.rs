//! Micro-benchmarks of the costly steps of authentication.
//!
//! `cargo bench --bench auth` (or `-- <filter>`, e.g. `-- "access token sign"`); with `TEST_DATABASE_URL` set, the refresh rotation is also
//! measured on PostgreSQL. Figures and how they compare are in BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use tollgate::auth::keys::KeyStore;
use tollgate::auth::password::{Memory, PasswordHasherConfig, Passwords};
use tollgate::auth::refresh::{RefreshSessions, RefreshToken, Rotation};
use tollgate::auth::tokens::{ACCESS_TOKEN_TYPE, AccessClaims, AccessTokens, Amr, TokenSession};
use tollgate::clock::Clock;
use tollgate::config::{DatabaseUrl, Settings, parse_database_url};
use tollgate::db::accounts::{Account, NewAccount};
use tollgate::db::manager::ConnectionManager;
use tollgate::db::models::{DbUuid, NewUser};
use tollgate::db::sessions::SessionStore;
use tollgate::db::{WriteConn, build_pool};
use tollgate_verify::Rules;
use uuid::Uuid;

/// A session signed in with a password, without an id (as before sessions had ids).
const PASSWORD_SESSION: TokenSession = TokenSession { id: None, amr: Amr::Password };

fn settings(vars: &[(&str, &str)]) -> Settings {
    Settings::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())).unwrap()
}

fn access_tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a benchmark HS256 secret of 32+ bytes";
    for (name, algorithm) in [
        ("EdDSA", Algorithm::EdDSA),
        ("ES256", Algorithm::ES256),
        ("RS256", Algorithm::RS256),
        ("HS256", Algorithm::HS256),
    ] {
        let keys_dir = dir.path().join(name);
        let keys_dir = keys_dir.to_str().unwrap();
        let settings =
            settings(&[("JWT_ALGORITHM", name), ("JWT_SECRET", secret), ("JWT_KEYS_DIR", keys_dir)]);
        assert_eq!(settings.jwt.algorithm, algorithm);
        let store = Arc::new(KeyStore::open(&settings.jwt, Clock::system()).unwrap());
        let tokens = AccessTokens::new(store.clone(), &settings.jwt, Clock::system());
        let rules = Rules::new(&settings.jwt.issuer, &settings.jwt.audience, settings.jwt.leeway_secs);
        let user = Uuid::new_v4();
        let at = Utc::now().naive_utc();
        let now = at.and_utc().timestamp();
        let mut group = c.benchmark_group(format!("access token sign {name}"));
        group.bench_function("kept key", |b| {
            b.iter(|| tokens.issue(black_box(user), "alice", &[], at, None, PASSWORD_SESSION))
        });
        // How tollgate signed before: jsonwebtoken parses the key's DER for each signature.
        let encoding = match algorithm {
            Algorithm::HS256 => EncodingKey::from_secret(secret.as_bytes()),
            _ => {
                let pem =
                    std::fs::read(Path::new(keys_dir).join(format!("{}.pem", name.to_lowercase()))).unwrap();
                match algorithm {
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                    Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                    _ => EncodingKey::from_rsa_pem(&pem),
                }
                .unwrap()
            }
        };
        let mut header = Header::new(algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(store.ring().signing.kid.clone());
        group.bench_function("parsed per signature", |b| {
            b.iter(|| {
                let claims = AccessClaims {
                    sub: black_box(user),
                    username: "alice".to_owned(),
                    roles: Vec::new(),
                    iss: settings.jwt.issuer.clone(),
                    aud: settings.jwt.audience.clone(),
                    iat: now,
                    nbf: now,
                    exp: now + tokens.ttl_secs(),
                    jti: Uuid::new_v4(),
                    sid: None,
                    amr: vec!["pwd".to_owned()],
                };
                jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
            })
        });
        group.finish();
        let token = tokens.issue(user, "alice", &[], at, None, PASSWORD_SESSION);
        let ring = store.ring();
        c.bench_function(&format!("access token verify {name}"), |b| {
            b.iter(|| {
                tollgate_verify::verify_with(black_box(&token), &rules, now, |kid| ring.verifying.get(kid))
                    .unwrap()
            })
        });
        c.bench_function(&format!("access token verify {name}, seen before"), |b| {
            b.iter(|| tokens.verify(black_box(&token)).unwrap())
        });
    }
}

fn refresh_tokens(c: &mut Criterion) {
    c.bench_function("refresh token mint + sha256", |b| b.iter(|| RefreshToken::mint().hash()));
}

fn passwords(c: &mut Criterion) {
    let hasher = PasswordHasherConfig::new(&settings(&[]).argon2).unwrap();
    let password = SecretString::from("correct horse battery staple");
    let memory = &mut Memory::new();
    let hash = hasher.hash(&password, memory).unwrap();
    let mut group = c.benchmark_group("argon2id default cost");
    group.sample_size(20);
    group.bench_function("hash", |b| b.iter(|| hasher.hash(black_box(&password), memory).unwrap()));
    group.bench_function("verify", |b| {
        b.iter(|| assert!(hasher.verify(black_box(&password), Some(&hash), memory).matches()))
    });
    group.finish();
}

/// A failed login by what the password is checked against: the verification alone (what
/// a failure cost before the floor), then through the hashing threads with the floor
/// armed, as while imported hashes exist. Unknown users and wrong passwords should take
/// the same time in the second half, whatever the stored hash.
fn failed_logins(c: &mut Criterion) {
    let settings = settings(&[]);
    let hasher = PasswordHasherConfig::new(&settings.argon2).unwrap();
    let memory = &mut Memory::new();
    let wrong = SecretString::from("not the password");
    let argon2id = hasher.hash(&SecretString::from("correct horse battery staple"), memory).unwrap();
    // Well-formed hashes at Django's default costs; no password matches them, and a
    // failure costs the whole verification all the same.
    let stored = [
        ("unknown user", None),
        ("argon2id", Some(argon2id)),
        (
            "pbkdf2_sha256 1500000 (Django 6.1)",
            Some(
                "pbkdf2_sha256$1500000$OHgz7He6zNR96yj7IvI43U$//HCAbswegJqxsRc0u5U+jABpRzXKcFHkb/4BvpbZU8="
                    .into(),
            ),
        ),
        (
            "bcrypt_sha256 cost 12 (Django)",
            Some("bcrypt_sha256$$2b$12$xKBQzvXSAFN4jLNUheWdjeCzZqQQ.JoxiAtEb6DkW.QMXjkQ311hu".into()),
        ),
    ];
    let mut group = c.benchmark_group("failed login");
    group.sample_size(10);
    for (what, stored) in &stored {
        group.bench_function(format!("{what}, verification alone"), |b| {
            b.iter(|| assert!(!hasher.verify(&wrong, stored.as_deref(), memory).matches()))
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap();
    let passwords = Passwords::start(&settings.argon2, true).unwrap();
    // The first failure waits for the floor's measurement.
    runtime.block_on(passwords.verify(wrong.clone(), None)).unwrap();
    for (what, stored) in &stored {
        group.bench_function(format!("{what}, with the floor"), |b| {
            b.iter(|| {
                let verified = runtime.block_on(passwords.verify(wrong.clone(), stored.clone())).unwrap();
                assert!(!verified.matches());
            })
        });
    }
    group.finish();
}

/// One rotation round trip: look the token up, compare-and-set its successor.
fn rotation(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![("SQLite", format!("sqlite://{}", dir.path().join("bench.db").display()), None)];
    if let Ok(admin) = std::env::var("TEST_DATABASE_URL") {
        let name = format!("tollgate_bench_{}", Uuid::new_v4().simple());
        PgConnection::establish(&admin).unwrap().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_owned();
        backends.push(("PostgreSQL", format!("{base}/{name}"), Some((admin, name))));
    }
    for (label, url, cleanup) in backends {
        let mut settings = settings(&[("JWT_KEYS_DIR", dir.path().join("keys").to_str().unwrap())]);
        settings.database.url = parse_database_url(&url).unwrap();
        assert!(matches!(settings.database.url, DatabaseUrl::Sqlite(_) | DatabaseUrl::Postgres(_)));
        let pool = build_pool(&settings.database).unwrap();
        pool.migrate().unwrap();
        let mut conn = ConnectionManager::new(settings.database.url.clone()).establish().unwrap();
        let store = KeyStore::open(&settings.jwt, Clock::system()).unwrap();
        let sessions =
            RefreshSessions::new(store.refresh_secret.clone(), &settings.refresh, SessionStore::UsersRow);
        let now = Utc::now().naive_utc();
        let mut token = RefreshToken::mint();
        let user = NewUser {
            id: DbUuid(Uuid::new_v4()),
            username: "bench".into(),
            email: None,
            password_hash:
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                    .into(),
            refresh_token_hash: Some(token.hash()),
            refresh_token_expires_at: Some(sessions.expiry(now)),
            created_at: now,
            updated_at: now,
            disabled: false,
            email_verified: false,
        };
        Account::insert(&mut WriteConn::direct(&mut conn), NewAccount { user, roles: vec![] }).unwrap();
        c.bench_function(&format!("refresh rotation round trip {label}"), |b| {
            b.iter(|| {
                let Ok(Rotation::Rotated(issued)) =
                    sessions.rotate(&mut WriteConn::direct(&mut conn), &token, Utc::now().naive_utc())
                else {
                    panic!("the live token rotates");
                };
                token = issued.token;
            })
        });
        drop(conn);
        drop(pool);
        if let Some((admin, name)) = cleanup {
            let _ = PgConnection::establish(&admin)
                .unwrap()
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

criterion_group!(benches, access_tokens, refresh_tokens, passwords, failed_logins, rotation);
criterion_main!(benches);
