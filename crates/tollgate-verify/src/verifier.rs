//! [`Verifier`]: verifies tollgate access tokens with keys fetched from tollgate's JWKS,
//! cached, refreshed when they expire or when an unknown `kid` shows up (at most once per
//! cooldown), and checked against tollgate's revocation feed when one is configured.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;
use uuid::Uuid;

use crate::{Claims, Error, Rules, VerificationKey, keys_from_jwks, token_kid, verify_with};

/// A JWKS or revocation response larger than this is refused (tollgate's are a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// `Cache-Control: max-age` is honoured within these bounds: a `max-age=0` must not turn
/// every request into a fetch, and a key tollgate withdraws must not live for weeks.
const MIN_MAX_AGE: Duration = Duration::from_secs(1);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// While no key was ever fetched, failed fetches are retried at least this often.
const NO_KEYS_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// How a [`Verifier`] reaches tollgate and what it requires of a token.
///
/// Build it with [`VerifierConfig::new`] (defaults for everything but the URL) or
/// [`VerifierConfig::from_env`], then adjust the public fields if needed.
#[derive(Clone)]
pub struct VerifierConfig {
    /// Base URL of tollgate, e.g. `http://127.0.0.1:8080`. The JWKS is fetched from
    /// `{tollgate_url}/.well-known/jwks.json`, the revocation feed from
    /// `{tollgate_url}/auth/revocations`.
    pub tollgate_url: String,
    /// Required `iss` (tollgate's `JWT_ISSUER`). Default `tollgate`.
    pub issuer: String,
    /// Required `aud` (tollgate's `JWT_AUDIENCE`). Default `tollgate`.
    pub audience: String,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds. Default 30.
    pub leeway_secs: u64,
    /// A token whose `kid` is not among the cached keys makes the verifier refetch the
    /// JWKS at most once per this interval, so forged `kid`s cannot make it hammer
    /// tollgate. Default 30 s.
    pub unknown_kid_cooldown: Duration,
    /// How long fetched keys are used when the JWKS response carries no usable
    /// `Cache-Control: max-age`. Default 300 s.
    pub default_max_age: Duration,
    /// Timeout of one request to tollgate (JWKS or revocation feed). Default 5 s.
    pub fetch_timeout: Duration,
    /// After a failed JWKS fetch, the next attempt waits at least this long (at most 1 s
    /// while no key was ever fetched); meanwhile the keys already cached are used.
    /// Default 5 s.
    pub fetch_retry_interval: Duration,
    /// Bearer token of tollgate's revocation feed (its `REVOCATION_FEED_TOKEN`). Without
    /// it, revocations are not checked and access tokens live until `exp`.
    pub revocation_token: Option<String>,
    /// Interval between two polls of the revocation feed. Default 10 s.
    pub revocation_poll_interval: Duration,
    /// The longest lifetime of an access token (at least tollgate's
    /// `ACCESS_TOKEN_TTL_SECS`): revocation entries older than this are dropped, since
    /// every token they could reject has expired. Default 1 hour.
    pub max_token_age: Duration,
}

impl fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("tollgate_url", &self.tollgate_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("unknown_kid_cooldown", &self.unknown_kid_cooldown)
            .field("default_max_age", &self.default_max_age)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("fetch_retry_interval", &self.fetch_retry_interval)
            .field("revocation_token", &self.revocation_token.as_ref().map(|_| "[redacted]"))
            .field("revocation_poll_interval", &self.revocation_poll_interval)
            .field("max_token_age", &self.max_token_age)
            .finish()
    }
}

/// A configuration variable with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self { variable, problem: problem.into() }
    }
}

impl VerifierConfig {
    /// The defaults, for the tollgate at `tollgate_url` (a trailing `/` is ignored).
    pub fn new(tollgate_url: impl Into<String>) -> Self {
        Self {
            tollgate_url: tollgate_url.into().trim_end_matches('/').to_owned(),
            issuer: "tollgate".to_owned(),
            audience: "tollgate".to_owned(),
            leeway_secs: 30,
            unknown_kid_cooldown: Duration::from_secs(30),
            default_max_age: Duration::from_secs(300),
            fetch_timeout: Duration::from_secs(5),
            fetch_retry_interval: Duration::from_secs(5),
            revocation_token: None,
            revocation_poll_interval: Duration::from_secs(10),
            max_token_age: Duration::from_secs(60 * 60),
        }
    }

    /// Reads `TOLLGATE_URL` (required), `TOLLGATE_ISSUER`, `TOLLGATE_AUDIENCE`
    /// (default `tollgate`), `TOLLGATE_LEEWAY_SECS` (30), `TOLLGATE_REVOCATION_TOKEN`
    /// (optional) and `TOLLGATE_REVOCATION_POLL_SECS` (10) from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with variables from `lookup` instead.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| ConfigError::new(name, format!("`{v}` is not a whole number of seconds"))),
            }
        };

        let url = var("TOLLGATE_URL")
            .ok_or_else(|| ConfigError::new("TOLLGATE_URL", "required, e.g. http://127.0.0.1:8080"))?;
        check_url(&url)?;
        let mut config = Self::new(url);
        if let Some(issuer) = var("TOLLGATE_ISSUER") {
            config.issuer = issuer;
        }
        if let Some(audience) = var("TOLLGATE_AUDIENCE") {
            config.audience = audience;
        }
        config.leeway_secs = number("TOLLGATE_LEEWAY_SECS", config.leeway_secs)?;
        config.revocation_token = var("TOLLGATE_REVOCATION_TOKEN");
        let poll = number("TOLLGATE_REVOCATION_POLL_SECS", 10)?;
        if poll == 0 {
            return Err(ConfigError::new("TOLLGATE_REVOCATION_POLL_SECS", "must be at least 1"));
        }
        config.revocation_poll_interval = Duration::from_secs(poll);
        Ok(config)
    }

    fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.tollgate_url)
    }

    fn revocations_url(&self) -> String {
        format!("{}/auth/revocations", self.tollgate_url)
    }
}

fn check_url(url: &str) -> Result<(), ConfigError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ConfigError::new("TOLLGATE_URL", format!("not a URL: {e}")))?;
    match parsed.scheme() {
        "http" => Ok(()),
        "https" if cfg!(feature = "rustls") => Ok(()),
        "https" => {
            Err(ConfigError::new("TOLLGATE_URL", "https needs the `rustls` feature of tollgate-verify"))
        }
        other => {
            Err(ConfigError::new("TOLLGATE_URL", format!("unsupported scheme `{other}` (http or https)")))
        }
    }
}

/// Verifies tollgate access tokens locally with tollgate's published keys.
///
/// Cheap to clone (an `Arc` inside): create one per process and share it, e.g. with
/// `App::new().app_data(verifier.clone())` in actix-web.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner {
    config: VerifierConfig,
    rules: Rules,
    client: reqwest::Client,
    jwks_url: String,
    revocations_url: String,
    keys: RwLock<KeyCache>,
    /// Held while fetching the JWKS: concurrent callers share one fetch.
    fetch: tokio::sync::Mutex<()>,
    revocations: RwLock<Revocations>,
    poller_started: AtomicBool,
    /// A background refresh of expired keys is running.
    refreshing: AtomicBool,
}

#[derive(Default)]
struct KeyCache {
    keys: Arc<HashMap<String, VerificationKey>>,
    /// When the keys were last fetched successfully, and for how long they are fresh.
    fetched_at: Option<Instant>,
    max_age: Duration,
    /// The last failed fetch, and why: no new attempt before `fetch_retry_interval`.
    failed_at: Option<Instant>,
    last_error: Option<String>,
    /// The last refetch that an unknown `kid` caused.
    unknown_kid_refetch_at: Option<Instant>,
}

impl KeyCache {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fetched_at.is_some_and(|at| now.saturating_duration_since(at) < self.max_age)
    }

    /// Whether a fetch failed too recently to try again: `retry` after a failure, or at
    /// most a second while there is no key at all (so that service starts soon after
    /// tollgate does).
    fn in_retry_backoff(&self, now: Instant, retry: Duration) -> bool {
        let retry = if self.fetched_at.is_none() { retry.min(NO_KEYS_RETRY_INTERVAL) } else { retry };
        self.failed_at.is_some_and(|at| now.saturating_duration_since(at) < retry)
    }

    fn unavailable(&self) -> Error {
        Error::KeysUnavailable(
            self.last_error.clone().unwrap_or_else(|| "the JWKS has not been fetched yet".to_owned()),
        )
    }
}

#[derive(Default)]
struct Revocations {
    /// The latest `not_before` per user: tokens issued before it are revoked.
    not_before: HashMap<Uuid, i64>,
    /// The `since` of the next poll: the `now` of the last successful one.
    since: Option<i64>,
}

#[derive(Deserialize)]
struct RevocationFeed {
    revocations: Vec<RevocationEntry>,
    now: i64,
}

#[derive(Deserialize)]
struct RevocationEntry {
    sub: Uuid,
    not_before: i64,
}

enum Refetch {
    /// The cache is empty or expired.
    Stale,
    /// A token carries a `kid` the cache does not have; the caller started at `since`,
    /// so a fetch completed after it already had the chance to bring that key.
    UnknownKid { kid: String, since: Instant },
}

impl Verifier {
    /// A verifier for the tollgate that `config` names. Nothing is fetched until the first
    /// [`verify`](Self::verify) (or [`refresh_keys`](Self::refresh_keys)).
    pub fn new(config: VerifierConfig) -> Self {
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
        let rules = Rules::new(&config.issuer, &config.audience, config.leeway_secs);
        Self {
            inner: Arc::new(Inner {
                jwks_url: config.jwks_url(),
                revocations_url: config.revocations_url(),
                config,
                rules,
                client,
                keys: RwLock::new(KeyCache::default()),
                fetch: tokio::sync::Mutex::new(()),
                revocations: RwLock::new(Revocations::default()),
                poller_started: AtomicBool::new(false),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration this verifier runs with.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// Verifies an access token: signature with tollgate's key named by its `kid`,
    /// `typ`, `exp`, `nbf`, `iss`, `aud`, and the revocation list when a feed is
    /// configured (the first call then starts the poller if it is not running).
    ///
    /// Keys are fetched on first use and again when the JWKS response's `max-age` has
    /// passed (expired keys keep serving while one background task refreshes them), or
    /// when a token names an unknown `kid` (at most once per `unknown_kid_cooldown`).
    /// Fails with [`Error::KeysUnavailable`] only when no key could ever be fetched;
    /// while tollgate is unreachable, the keys fetched before keep being used.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        if self.inner.config.revocation_token.is_some()
            && !self.inner.poller_started.load(Ordering::Relaxed)
            && tokio::runtime::Handle::try_current().is_ok()
        {
            self.spawn_revocation_poller();
        }
        let since = Instant::now();
        // A token without a well-formed header never causes a fetch.
        let kid = token_kid(token)?;
        let mut keys = self.fresh_keys().await?;
        if !keys.contains_key(&kid) {
            keys = self.refetch(Refetch::UnknownKid { kid, since }).await?;
        }
        let claims = verify_with(token, &self.inner.rules, unix_now(), |kid| keys.get(kid))?;
        if self.is_revoked(&claims) {
            return Err(Error::Revoked);
        }
        Ok(claims)
    }

    /// Fetches the JWKS now (sharing a fetch already in flight), whatever the cache
    /// holds, and returns how many keys are cached. Useful to warm the cache at start-up.
    pub async fn refresh_keys(&self) -> Result<usize, Error> {
        let _guard = self.inner.fetch.lock().await;
        self.inner.fetch_keys().await?;
        Ok(self.cached_keys().len())
    }

    /// Starts polling tollgate's revocation feed every `revocation_poll_interval` on the
    /// current tokio runtime. Returns `None` when no `revocation_token` is configured or
    /// when the poller already runs ([`verify`](Self::verify) starts it on first use).
    /// The task ends by itself once every clone of this verifier is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (like `tokio::spawn`).
    pub fn spawn_revocation_poller(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.inner.config.revocation_token.as_ref()?;
        if self.inner.poller_started.swap(true, Ordering::AcqRel) {
            return None;
        }
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.config.revocation_poll_interval;
        Some(tokio::spawn(poll_revocations_forever(weak, interval)))
    }

    fn cached_keys(&self) -> Arc<HashMap<String, VerificationKey>> {
        self.inner.keys.read().unwrap_or_else(|e| e.into_inner()).keys.clone()
    }

    /// The cached keys. Expired ones are still returned at once while a background task
    /// refreshes them; only a cache that never had keys makes the caller wait for a fetch.
    async fn fresh_keys(&self) -> Result<Arc<HashMap<String, VerificationKey>>, Error> {
        {
            let cache = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
            if cache.is_fresh(Instant::now()) {
                return Ok(cache.keys.clone());
            }
            if cache.fetched_at.is_some() {
                let keys = cache.keys.clone();
                drop(cache);
                self.refresh_in_background();
                return Ok(keys);
            }
        }
        self.refetch(Refetch::Stale).await
    }

    /// Starts one background refresh of expired keys unless one is running.
    fn refresh_in_background(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        /// Clears the flag however the task ends, cancelled with its runtime included.
        struct Done(Arc<Inner>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.refreshing.store(false, Ordering::Release);
            }
        }
        let done = Done(self.inner.clone());
        tokio::spawn(async move {
            let verifier = Verifier { inner: done.0.clone() };
            let _ = verifier.refetch(Refetch::Stale).await;
            drop(done);
        });
    }

    /// Fetches the JWKS if `reason` still calls for it once the fetch lock is held (a
    /// concurrent caller may just have done it), then returns the keys to use.
    async fn refetch(&self, reason: Refetch) -> Result<Arc<HashMap<String, VerificationKey>>, Error> {
        let inner = &self.inner;
        let _guard = inner.fetch.lock().await;
        let now = Instant::now();
        let should_fetch = {
            let mut cache = inner.keys.write().unwrap_or_else(|e| e.into_inner());
            let backoff = cache.in_retry_backoff(now, inner.config.fetch_retry_interval);
            match &reason {
                Refetch::Stale => !cache.is_fresh(now) && !backoff,
                Refetch::UnknownKid { kid, since } => {
                    let cooling = cache.unknown_kid_refetch_at.is_some_and(|at| {
                        now.saturating_duration_since(at) < inner.config.unknown_kid_cooldown
                    });
                    let just_fetched = cache.fetched_at.is_some_and(|at| at >= *since);
                    let wanted = !cache.keys.contains_key(kid) && !just_fetched && !cooling && !backoff;
                    if wanted {
                        cache.unknown_kid_refetch_at = Some(now);
                    }
                    wanted
                }
            }
        };
        if should_fetch {
            if let Refetch::UnknownKid { kid, .. } = &reason {
                let kid: String = kid.chars().take(64).collect();
                log::info!("token with unknown kid {kid:?}: refetching the JWKS");
            }
            // A failure is logged and remembered; the cached keys stay in use.
            let _ = inner.fetch_keys().await;
        }
        let cache = inner.keys.read().unwrap_or_else(|e| e.into_inner());
        if cache.fetched_at.is_none() {
            return Err(cache.unavailable());
        }
        Ok(cache.keys.clone())
    }

    fn is_revoked(&self, claims: &Claims) -> bool {
        let revocations = self.inner.revocations.read().unwrap_or_else(|e| e.into_inner());
        revocations.not_before.get(&claims.sub).is_some_and(|&not_before| claims.iat < not_before)
    }
}

impl Inner {
    /// One JWKS fetch; on success the cache holds exactly the keys tollgate published.
    /// The caller holds the fetch lock.
    async fn fetch_keys(&self) -> Result<(), Error> {
        let result = self.download_jwks().await;
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok((keys, max_age)) => {
                log::debug!(
                    "fetched {} key(s) from {}, fresh for {}s",
                    keys.len(),
                    self.jwks_url,
                    max_age.as_secs()
                );
                cache.keys = Arc::new(keys);
                cache.fetched_at = Some(Instant::now());
                cache.max_age = max_age;
                cache.failed_at = None;
                cache.last_error = None;
                Ok(())
            }
            Err(problem) => {
                let had = cache.keys.len();
                if had > 0 {
                    log::warn!("{problem}; still using the {had} key(s) fetched before");
                } else {
                    log::error!("{problem}; no verification keys yet");
                }
                cache.failed_at = Some(Instant::now());
                cache.last_error = Some(problem.clone());
                Err(Error::KeysUnavailable(problem))
            }
        }
    }

    async fn download_jwks(&self) -> Result<(HashMap<String, VerificationKey>, Duration), String> {
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
            .map_or(self.config.default_max_age, |age| age.clamp(MIN_MAX_AGE, MAX_MAX_AGE));
        let body = read_limited(response).await.map_err(|e| format!("GET {url}: {e}"))?;
        let jwks: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("GET {url}: the body is not JSON: {e}"))?;
        let keys = keys_from_jwks(&jwks);
        if keys.is_empty() {
            return Err(format!("GET {url}: no usable key in the JWKS (is tollgate running with HS256?)"));
        }
        Ok((keys, max_age))
    }

    /// One poll of the revocation feed; returns how many entries it brought.
    async fn poll_revocations(&self) -> Result<usize, String> {
        let Some(token) = &self.config.revocation_token else {
            return Ok(0);
        };
        let url = &self.revocations_url;
        let since = {
            let revocations = self.revocations.read().unwrap_or_else(|e| e.into_inner());
            revocations.since.unwrap_or_else(|| {
                // Before the first poll: only entries that can still reject a live token.
                (unix_now() - self.max_token_age_secs() - self.config.leeway_secs as i64).max(0)
            })
        };
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
        let feed: RevocationFeed =
            serde_json::from_slice(&body).map_err(|e| format!("GET {url}: unexpected body: {e}"))?;
        let count = feed.revocations.len();
        let horizon = unix_now() - self.max_token_age_secs() - self.config.leeway_secs as i64;
        let mut revocations = self.revocations.write().unwrap_or_else(|e| e.into_inner());
        for entry in feed.revocations {
            let not_before = revocations.not_before.entry(entry.sub).or_insert(entry.not_before);
            *not_before = (*not_before).max(entry.not_before);
        }
        // An entry older than the longest token lifetime can only reject expired tokens.
        revocations.not_before.retain(|_, not_before| *not_before >= horizon);
        revocations.since = Some(feed.now);
        Ok(count)
    }

    fn max_token_age_secs(&self) -> i64 {
        i64::try_from(self.config.max_token_age.as_secs()).unwrap_or(i64::MAX / 2)
    }
}

async fn poll_revocations_forever(inner: Weak<Inner>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            log::debug!("verifier dropped: revocation poller stops");
            return;
        };
        match inner.poll_revocations().await {
            Ok(0) => {}
            Ok(count) => log::debug!("revocation feed: {count} entries"),
            Err(problem) => log::warn!("{problem}; retrying in {}s", interval.as_secs_f32()),
        }
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

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
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

    #[test]
    fn config_from_lookup_reads_defaults_and_overrides() {
        let vars = HashMap::from([
            ("TOLLGATE_URL", "http://127.0.0.1:8080/"),
            ("TOLLGATE_AUDIENCE", "api"),
            ("TOLLGATE_LEEWAY_SECS", "5"),
            ("TOLLGATE_REVOCATION_TOKEN", "feed-secret"),
        ]);
        let config = VerifierConfig::from_lookup(|name| vars.get(name).map(|v| v.to_string())).unwrap();
        assert_eq!(config.tollgate_url, "http://127.0.0.1:8080");
        assert_eq!(config.jwks_url(), "http://127.0.0.1:8080/.well-known/jwks.json");
        assert_eq!(config.issuer, "tollgate");
        assert_eq!(config.audience, "api");
        assert_eq!(config.leeway_secs, 5);
        assert_eq!(config.revocation_token.as_deref(), Some("feed-secret"));
        assert_eq!(config.revocation_poll_interval, Duration::from_secs(10));
        assert!(!format!("{config:?}").contains("feed-secret"));
    }

    #[test]
    fn config_errors_name_the_variable() {
        let error = |vars: &[(&str, &str)]| {
            let vars: HashMap<_, _> = vars.iter().copied().collect();
            VerifierConfig::from_lookup(|name| vars.get(name).map(|v| v.to_string())).unwrap_err().variable
        };
        assert_eq!(error(&[]), "TOLLGATE_URL");
        assert_eq!(error(&[("TOLLGATE_URL", "not a url")]), "TOLLGATE_URL");
        assert_eq!(error(&[("TOLLGATE_URL", "ftp://x")]), "TOLLGATE_URL");
        assert_eq!(
            error(&[("TOLLGATE_URL", "http://x"), ("TOLLGATE_LEEWAY_SECS", "-1")]),
            "TOLLGATE_LEEWAY_SECS"
        );
        assert_eq!(
            error(&[("TOLLGATE_URL", "http://x"), ("TOLLGATE_REVOCATION_POLL_SECS", "0")]),
            "TOLLGATE_REVOCATION_POLL_SECS"
        );
    }
}
