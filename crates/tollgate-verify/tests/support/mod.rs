//! A fake tollgate for the verifier's tests: it serves a JWKS and a revocation feed that
//! the test controls, and counts the requests it gets. Tokens are signed by hand.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tollgate_verify::VerifierConfig;
use uuid::Uuid;

pub const FEED_TOKEN: &str = "feed-secret-for-tests";

/// What the fake answers, and what it was asked.
pub struct State {
    pub jwks: Value,
    pub cache_control: Option<String>,
    pub jwks_status: u16,
    pub jwks_delay: Duration,
    pub jwks_requests: usize,
    pub feed_status: u16,
    pub feed_body: Value,
    /// `(query string, Authorization header)` of every revocation-feed request.
    pub feed_requests: Vec<(String, Option<String>)>,
}

pub struct FakeTollgate {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    accept_loop: Mutex<Option<JoinHandle<()>>>,
}

impl FakeTollgate {
    /// A fake that publishes `keys` with no `Cache-Control` header.
    pub async fn start(keys: &[&TestKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            jwks: jwks(keys),
            cache_control: None,
            jwks_status: 200,
            jwks_delay: Duration::ZERO,
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
        Self { url, state, accept_loop: Mutex::new(Some(accept_loop)) }
    }

    pub fn config(&self) -> VerifierConfig {
        let mut config = VerifierConfig::new(&self.url);
        config.fetch_timeout = Duration::from_secs(3);
        config
    }

    pub fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    pub fn jwks_requests(&self) -> usize {
        self.state.lock().unwrap().jwks_requests
    }

    pub fn feed_requests(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().feed_requests.clone()
    }

    /// Closes the listening socket: from now on, connections are refused.
    pub async fn stop(&self) {
        let task = self.accept_loop.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Waits until the JWKS has been fetched `count` times (expired keys are refreshed
    /// in the background), then a little longer so that the fetch is applied.
    pub async fn wait_for_jwks_requests(&self, count: usize) {
        for _ in 0..200 {
            if self.jwks_requests() >= count {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the JWKS was not fetched {count} times");
    }

    /// Waits until the revocation feed has been asked `count` times.
    pub async fn wait_for_feed_requests(&self, count: usize) {
        for _ in 0..200 {
            if self.feed_requests().len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the revocation feed was not polled {count} times");
    }
}

/// A URL where nothing listens.
pub async fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
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

    let (status, body, cache_control, delay) = {
        let mut state = state.lock().unwrap();
        match path {
            "/.well-known/jwks.json" => {
                state.jwks_requests += 1;
                (state.jwks_status, state.jwks.to_string(), state.cache_control.clone(), state.jwks_delay)
            }
            "/auth/revocations" => {
                state.feed_requests.push((query.to_owned(), authorization.clone()));
                if authorization.as_deref() == Some(&format!("Bearer {FEED_TOKEN}")) {
                    (state.feed_status, state.feed_body.to_string(), None, Duration::ZERO)
                } else {
                    (401, r#"{"code":"invalid_token"}"#.to_owned(), None, Duration::ZERO)
                }
            }
            _ => (404, r#"{"code":"not_found"}"#.to_owned(), None, Duration::ZERO),
        }
    };
    tokio::time::sleep(delay).await;
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
    json!({
        "sub": sub,
        "username": "alice",
        "roles": [],
        "iss": "tollgate",
        "aud": "tollgate",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 900,
        "jti": Uuid::from_u128(rand::random()),
    })
}

pub fn claims() -> Value {
    claims_for(Uuid::from_u128(rand::random()), now())
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
