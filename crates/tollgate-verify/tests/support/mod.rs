//! A fake tollgate for the verifier's tests: it serves a JWKS and a revocation feed that
//! the test controls, and counts the requests it gets. Tokens are signed by hand.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tollgate_verify::{ManualClock, VerifierConfig};
use uuid::Uuid;

pub const FEED_TOKEN: &str = "feed-secret-for-tests";
/// The revocation poll interval of [`FakeTollgate::feed_config`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a wait for the fake or the verifier may take before the test fails: far
/// more than any of them needs, so that it only turns a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// What the fake answers, and what it was asked.
pub struct State {
    pub jwks: Value,
    pub cache_control: Option<String>,
    pub jwks_status: u16,
    /// While set, JWKS requests are counted but not answered.
    pub jwks_held: bool,
    pub jwks_requests: usize,
    pub feed_status: u16,
    pub feed_body: Value,
    /// `(query string, Authorization header)` of every revocation-feed request.
    pub feed_requests: Vec<(String, Option<String>)>,
}

pub struct FakeTollgate {
    pub url: String,
    /// Every change notifies the waits below.
    pub state: Arc<watch::Sender<State>>,
    /// The time of the verifiers that [`config`](Self::config) makes: it moves only when
    /// the test advances it.
    pub clock: ManualClock,
    accept_loop: Mutex<Option<JoinHandle<()>>>,
}

impl FakeTollgate {
    /// A fake that publishes `keys` with no `Cache-Control` header.
    pub async fn start(keys: &[&TestKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(watch::Sender::new(State {
            jwks: jwks(keys),
            cache_control: None,
            jwks_status: 200,
            jwks_held: false,
            jwks_requests: 0,
            feed_status: 200,
            feed_body: json!({ "revocations": [], "now": now() }),
            feed_requests: Vec::new(),
        }));
        let shared = state.clone();
        let accept_loop = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { url, state, clock: ManualClock::new(), accept_loop: Mutex::new(Some(accept_loop)) }
    }

    pub fn config(&self) -> VerifierConfig {
        let mut config = VerifierConfig::new(&self.url);
        config.fetch_timeout = Duration::from_secs(3);
        config.clock = Arc::new(self.clock.clone());
        config
    }

    /// [`config`](Self::config) with the revocation feed polled every [`POLL_INTERVAL`].
    pub fn feed_config(&self) -> VerifierConfig {
        let mut config = self.config();
        config.revocation_token = Some(FEED_TOKEN.to_owned());
        config.revocation_poll_interval = POLL_INTERVAL;
        config
    }

    pub fn set(&self, change: impl FnOnce(&mut State)) {
        self.state.send_modify(change);
    }

    pub fn jwks_requests(&self) -> usize {
        self.state.borrow().jwks_requests
    }

    pub fn feed_requests(&self) -> Vec<(String, Option<String>)> {
        self.state.borrow().feed_requests.clone()
    }

    /// Closes the listening socket: from now on, connections are refused.
    pub async fn stop(&self) {
        let task = self.accept_loop.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Waits until the JWKS has been asked for `count` times.
    pub async fn wait_for_jwks_requests(&self, count: usize) {
        self.wait_for(&format!("JWKS request {count}"), |s| s.jwks_requests >= count).await;
    }

    /// Waits until the revocation feed has been asked `count` times.
    pub async fn wait_for_feed_requests(&self, count: usize) {
        self.wait_for(&format!("feed request {count}"), |s| s.feed_requests.len() >= count).await;
    }

    /// Moves the clock on one poll interval at a time until the revocation feed has been
    /// asked `count` times. The poller polls once at its start, then once per interval;
    /// the clock moves only after the poll before was asked for, so no tick is skipped.
    /// When the `n`th request arrives, the poll before it has been applied.
    pub async fn poll_feed(&self, count: usize) {
        self.wait_for_feed_requests(1).await;
        loop {
            let asked = self.feed_requests().len();
            if asked >= count {
                return;
            }
            self.clock.advance(POLL_INTERVAL);
            self.wait_for_feed_requests(asked + 1).await;
        }
    }

    async fn wait_for(&self, waiting_for: &str, condition: impl FnMut(&State) -> bool) {
        let mut state = self.state.subscribe();
        // The sender lives in `self`: the wait ends only by the condition.
        let _ = within(waiting_for, state.wait_for(condition)).await;
    }
}

/// `future`'s output, or a failed test when it hangs (see [`HANG_GUARD`]).
pub async fn within<T>(waiting_for: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {waiting_for}"))
}

/// A URL where nothing listens.
pub async fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

async fn serve(mut stream: TcpStream, state: Arc<watch::Sender<State>>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
        if request.len() > 64 * 1024 {
            return;
        }
    }
    let request = String::from_utf8_lossy(&request).into_owned();
    let mut lines = request.split("\r\n");
    let target = lines.next().and_then(|line| line.split(' ').nth(1)).unwrap_or("/").to_owned();
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_owned());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));

    let is_jwks = path == "/.well-known/jwks.json";
    state.send_modify(|state| match path {
        "/.well-known/jwks.json" => state.jwks_requests += 1,
        "/auth/revocations" => state.feed_requests.push((query.to_owned(), authorization.clone())),
        _ => {}
    });
    if is_jwks {
        let _ = state.subscribe().wait_for(|state| !state.jwks_held).await;
    }
    let (status, body, cache_control) = {
        let state = state.borrow();
        match path {
            "/.well-known/jwks.json" => {
                (state.jwks_status, state.jwks.to_string(), state.cache_control.clone())
            }
            "/auth/revocations" if authorization.as_deref() == Some(&format!("Bearer {FEED_TOKEN}")) => {
                (state.feed_status, state.feed_body.to_string(), None)
            }
            "/auth/revocations" => (401, r#"{"code":"invalid_token"}"#.to_owned(), None),
            _ => (404, r#"{"code":"not_found"}"#.to_owned(), None),
        }
    };
    let cache_control = cache_control.map(|value| format!("Cache-Control: {value}\r\n")).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{cache_control}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// An Ed25519 key of the fake tollgate.
pub struct TestKey {
    signing: SigningKey,
    pub kid: String,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        Self { signing: SigningKey::generate(&mut rand::rngs::OsRng), kid: kid.to_owned() }
    }

    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes()),
        })
    }

    /// A token as tollgate signs it.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": self.kid }), claims)
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// The claims of a valid token for `sub`, issued at `iat`, living 15 minutes.
pub fn claims_for(sub: Uuid, iat: i64) -> Value {
    claims_issued_at(sub, iat * 1000)
}

/// The claims of a valid token for `sub` issued at `issued_ms` (unix milliseconds), as
/// tollgate makes them: `iat` in whole seconds, the exact time in the `jti`, a UUIDv7.
pub fn claims_issued_at(sub: Uuid, issued_ms: i64) -> Value {
    let iat = issued_ms.div_euclid(1000);
    let jti = uuid::Builder::from_unix_timestamp_millis(issued_ms as u64, &rand::random()).into_uuid();
    json!({
        "sub": sub,
        "username": "alice",
        "roles": [],
        "iss": "tollgate",
        "aud": "tollgate",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 900,
        "jti": jti,
    })
}

/// `claims` with the `sid` of the session they belong to.
pub fn in_session(mut claims: Value, sid: Uuid) -> Value {
    claims["sid"] = json!(sid);
    claims
}

/// [`claims_for`] as a tollgate that cut revocations at whole seconds made them: with a
/// random `jti`.
pub fn legacy_claims_for(sub: Uuid, iat: i64) -> Value {
    let mut claims = claims_for(sub, iat);
    claims["jti"] = json!(Uuid::new_v4());
    claims
}

pub fn claims() -> Value {
    claims_for(Uuid::from_u128(rand::random()), now())
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
