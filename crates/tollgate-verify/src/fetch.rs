//! HTTP to tollgate: the JWKS and the revocation feed, with bounded bodies and errors that
//! say which URL failed and why.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use crate::{VerificationKey, VerifierConfig, keys_from_jwks};

/// A JWKS or revocation response larger than this is refused (tollgate's are a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// `Cache-Control: max-age` is honoured within these bounds: a `max-age=0` must not turn
/// every request into a fetch, and a key tollgate withdraws must not live for weeks.
const MIN_MAX_AGE: Duration = Duration::from_secs(1);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// One answer of the revocation feed.
#[derive(Deserialize)]
pub(crate) struct RevocationFeed {
    pub revocations: Vec<RevocationEntry>,
    pub now: i64,
}

#[derive(Deserialize)]
pub(crate) struct RevocationEntry {
    pub sub: Uuid,
    /// Set when only that session of `sub` is revoked, not all of them.
    #[serde(default)]
    pub sid: Option<Uuid>,
    /// Unix seconds, rounded up from `not_before_ms`.
    pub not_before: i64,
    /// Unix milliseconds, exact; absent from a tollgate that cut revocations at seconds.
    #[serde(default)]
    pub not_before_ms: Option<i64>,
}

impl RevocationEntry {
    /// The entry as one time in milliseconds, for [`crate::Claims::issued_at_ms`]: a token
    /// issued before `not_before_ms`, or with only `iat` before `not_before`, is revoked,
    /// and that is the same as an issue time before this. (For whole seconds `t`,
    /// `t < not_before` is `t * 1000 < not_before * 1000`, and tollgate's `not_before` is
    /// `not_before_ms` rounded up, so `t < not_before` is `t * 1000 < not_before_ms`.)
    pub fn not_before_ms(&self) -> i64 {
        self.not_before_ms.unwrap_or_else(|| self.not_before.saturating_mul(1000))
    }
}

/// The keys of one JWKS answer, and for how long they are fresh.
pub(crate) struct Jwks {
    pub keys: HashMap<String, VerificationKey>,
    pub max_age: Duration,
}

/// Reaches the tollgate a [`VerifierConfig`] names. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TollgateClient {
    client: reqwest::Client,
    jwks_url: String,
    revocations_url: String,
    default_max_age: Duration,
}

impl TollgateClient {
    pub fn new(config: &VerifierConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            // Keys come from the configured URL only, never from wherever it redirects.
            .redirect(reqwest::redirect::Policy::none())
            // Fetches are rare; a fresh connection each time also keeps the client
            // usable from any runtime (actix-web runs one per worker thread).
            .pool_max_idle_per_host(0)
            .user_agent(concat!("tollgate-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client without TLS configuration always builds");
        Self {
            client,
            jwks_url: config.jwks_url(),
            revocations_url: config.revocations_url(),
            default_max_age: config.default_max_age,
        }
    }

    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    /// `GET /.well-known/jwks.json`. A JWKS without a usable key is an error.
    pub async fn jwks(&self) -> Result<Jwks, String> {
        let url = &self.jwks_url;
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {}", error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(cache_control_max_age)
            .map_or(self.default_max_age, |age| age.clamp(MIN_MAX_AGE, MAX_MAX_AGE));
        let body = read_limited(response).await.map_err(|e| format!("GET {url}: {e}"))?;
        let jwks: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("GET {url}: the body is not JSON: {e}"))?;
        let keys = keys_from_jwks(&jwks);
        if keys.is_empty() {
            return Err(format!("GET {url}: no usable key in the JWKS (is tollgate running with HS256?)"));
        }
        Ok(Jwks { keys, max_age })
    }

    /// `GET /auth/revocations?since=S` with the feed's bearer token.
    pub async fn revocations(&self, token: &str, since: i64) -> Result<RevocationFeed, String> {
        let url = &self.revocations_url;
        let response = self
            .client
            .get(url)
            .query(&[("since", since)])
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {}", error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status {
                reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
                    " (check TOLLGATE_REVOCATION_TOKEN)"
                }
                reqwest::StatusCode::NOT_FOUND => " (is REVOCATION_FEED_TOKEN set on tollgate?)",
                _ => "",
            };
            return Err(format!("GET {url} answered {status}{hint}"));
        }
        let body = read_limited(response).await.map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: unexpected body: {e}"))
    }
}

/// `N` of the first `max-age=N` directive of a `Cache-Control` value.
fn cache_control_max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        let seconds: u64 = seconds.trim().trim_matches('"').parse().ok()?;
        Some(Duration::from_secs(seconds))
    })
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|len| len > MAX_RESPONSE_BYTES as u64) {
        return Err(format!("body larger than {MAX_RESPONSE_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| format!("reading the body failed: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("body larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its sources, e.g. "error sending request: connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let age = |v| cache_control_max_age(v).map(|d| d.as_secs());
        assert_eq!(age("public, max-age=300"), Some(300));
        assert_eq!(age("MAX-AGE=7, public"), Some(7));
        assert_eq!(age("public, s-maxage=10"), None);
        assert_eq!(age("max-age=soon"), None);
        assert_eq!(age("no-store"), None);
    }
}
