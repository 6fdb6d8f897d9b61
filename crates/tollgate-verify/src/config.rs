//! [`VerifierConfig`]: where tollgate is and what a token must say, from code or from
//! the environment.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use crate::env::ConfigError;
use crate::env::Env;
use crate::{Clock, SystemClock};

/// How a [`Verifier`](crate::Verifier) reaches tollgate and what it requires of a token.
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
    /// The time the verifier decides by: a token's `exp`, `nbf` and `iat`, key ages,
    /// retry and cooldown intervals, revocation polls. Default [`SystemClock`]; a
    /// [`ManualClock`](crate::ManualClock) lets tests move time.
    pub clock: Arc<dyn Clock>,
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
            .field("clock", &self.clock)
            .finish()
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
            clock: Arc::new(SystemClock),
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
        let env = Env::new(&lookup);
        let var = |name: &str| env.trimmed(name);
        let number = |name: &'static str, default: u64| env.number(name, default);

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

    pub(crate) fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.tollgate_url)
    }

    pub(crate) fn revocations_url(&self) -> String {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

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
