//! Many instances on one database, and the database going away and coming back.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::common::*;
use futures_util::future::join_all;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tollgate::auth::keys::KeyStore;
use tollgate::clock::Clock;
use tollgate::db::build_pool;

db_tests!(
    two_instances_share_one_database_and_key_store,
    instances_starting_together_agree_on_keys_and_schema
);
postgres_tests!(a_database_outage_gives_503_quickly_and_service_resumes_by_itself);

async fn two_instances_share_one_database_and_key_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let (other, _handle) = app.start_sibling();
    let signup = app.signup("alice").await;
    let access = field(&signup, "access_token");
    let on_other = app.client.get(format!("{other}/auth/me")).bearer_auth(access).send().await.unwrap();
    assert_eq!(on_other.status(), StatusCode::OK);

    let token = field(&signup, "refresh_token");
    let requests = (0..20).map(|i| {
        let base = if i % 2 == 0 { app.address.clone() } else { other.clone() };
        app.client
            .post(format!("{base}/auth/refresh"))
            .json(&serde_json::json!({ "refresh_token": token }))
            .send()
    });
    let responses = join_all(requests).await.into_iter().map(Result::unwrap).collect();
    let successors = distinct_successors(responses).await;
    assert_eq!(successors.len(), 1, "{successors:?}");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(app.user_row("alice").refresh_token_hash, Some(sha256_hex(&successor)));
}

/// Instances started at the same moment on an empty key directory and a fresh database
/// must end up with one key and one schema.
async fn instances_starting_together_agree_on_keys_and_schema(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(&backend, &dir);
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256] {
        let mut settings = test_settings(&database, &dir.path().join(format!("keys-{algorithm:?}")));
        settings.jwt.algorithm = algorithm;
        let settings = Arc::new(settings);
        let barrier = Arc::new(Barrier::new(6));
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let (settings, barrier) = (settings.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let pool = build_pool(&settings.database).unwrap();
                    barrier.wait();
                    pool.migrate().expect("concurrent migrations succeed");
                    KeyStore::open(&settings.jwt, Clock::system())
                        .map(|keys| keys.ring().signing.kid.clone())
                        .expect("keys load")
                })
            })
            .collect();
        let kids: HashSet<String> = starts.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(kids.len(), 1, "{algorithm:?}: {kids:?}");
        let files: Vec<_> =
            std::fs::read_dir(&settings.jwt.keys_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "one key and one refresh secret, no leftovers: {files:?}");
    }
    let keys_dir = dir.path().join("keys-EdDSA").display().to_string();
    let app = spawn_on(database, dir, &[("JWT_KEYS_DIR", &keys_dir)]).await;
    app.signup("bob").await;
}

/// What the proxy in front of PostgreSQL does with connections.
#[derive(Clone, Copy, PartialEq)]
enum Link {
    Up,
    /// Every connection cut, new ones refused.
    Down,
    /// Every connection cut, new ones accepted and never answered: a database behind a
    /// dead route.
    Hanging,
}

/// A TCP proxy in front of PostgreSQL.
struct Proxy {
    port: u16,
    link: watch::Sender<Link>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, _) = watch::channel(Link::Up);
        let state = link.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut state = state.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let link = *state.borrow_and_update();
                    match link {
                        Link::Down => return, // dropping the socket refuses the connection
                        Link::Hanging => {
                            let _ = state.wait_for(|now| *now != link).await;
                            return;
                        }
                        Link::Up => {}
                    }
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|now| *now != Link::Up) => {}
                    }
                });
            }
        });
        Self { port, link }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

async fn a_database_outage_gives_503_quickly_and_service_resumes_by_itself(backend: Backend) {
    let Backend::Postgres(admin_url) = &backend else { unreachable!() };
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(&backend, &dir);
    let host_port = admin_url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    let proxy = Proxy::start(host_port.clone()).await;
    let proxied_url = database.url.replace(&host_port, &format!("127.0.0.1:{}", proxy.port));
    let app = spawn_on(database, dir, &[("DATABASE_URL", &proxied_url)]).await;
    let signup = app.signup("carol").await;
    let access = field(&signup, "access_token");
    let refresh = field(&signup, "refresh_token");

    for link in [Link::Down, Link::Hanging] {
        proxy.set(link);
        let ready = tokio::time::timeout(Duration::from_secs(10), app.get("/readyz")).await.expect("no hang");
        assert_error(ready, StatusCode::SERVICE_UNAVAILABLE, "database_unavailable").await;
        let me = tokio::time::timeout(Duration::from_secs(10), app.get_with_bearer("/auth/me", access))
            .await
            .expect("no hang");
        assert_eq!(me.headers()["retry-after"], "1");
        assert_error(me, StatusCode::SERVICE_UNAVAILABLE, "database_unavailable").await;
        let login = tokio::time::timeout(Duration::from_secs(10), app.login("carol", PASSWORD))
            .await
            .expect("no hang");
        assert_error(login, StatusCode::SERVICE_UNAVAILABLE, "database_unavailable").await;
        let rotated =
            tokio::time::timeout(Duration::from_secs(10), app.refresh(refresh)).await.expect("no hang");
        assert_error(rotated, StatusCode::SERVICE_UNAVAILABLE, "database_unavailable").await;
    }
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    proxy.set(Link::Up);
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "service did not resume");
    assert_eq!(app.get_with_bearer("/auth/me", access).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(refresh).await.status(), StatusCode::OK);
    assert_eq!(app.login("carol", PASSWORD).await.status(), StatusCode::OK);
}
