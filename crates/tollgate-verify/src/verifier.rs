//! [`Verifier`]: verifies tollgate access tokens with keys fetched from tollgate's JWKS
//! ([`KeyCache`]) and, when a feed is configured, against its revocations
//! ([`Revocations`]).

use std::fmt;
use std::sync::Arc;

use crate::fetch::TollgateClient;
use crate::key_cache::KeyCache;
use crate::revocations::Revocations;
use crate::{Claims, Error, Rules, VerifierConfig, token_kid, verify_with};

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
    keys: Arc<KeyCache>,
    revocations: Arc<Revocations>,
}

impl Verifier {
    /// A verifier for the tollgate that `config` names. Nothing is fetched until the first
    /// [`verify`](Self::verify) (or [`refresh_keys`](Self::refresh_keys)).
    pub fn new(config: VerifierConfig) -> Self {
        let client = TollgateClient::new(&config);
        Self {
            inner: Arc::new(Inner {
                rules: Rules::new(&config.issuer, &config.audience, config.leeway_secs),
                keys: Arc::new(KeyCache::new(&config, client.clone())),
                revocations: Arc::new(Revocations::new(&config, client)),
                config,
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
        let inner = &self.inner;
        if inner.revocations.wants_poller() && tokio::runtime::Handle::try_current().is_ok() {
            inner.revocations.spawn_poller();
        }
        // A token without a well-formed header never causes a fetch.
        let kid = token_kid(token)?;
        let keys = inner.keys.keys_for(&kid).await?;
        let claims = verify_with(token, &inner.rules, inner.config.clock.unix_secs(), |kid| keys.get(kid))?;
        if inner.revocations.is_revoked(&claims) {
            return Err(Error::Revoked);
        }
        Ok(claims)
    }

    /// Fetches the JWKS now (after a fetch already in flight), whatever the cache holds,
    /// and returns how many keys are cached. Useful to warm the cache at start-up.
    pub async fn refresh_keys(&self) -> Result<usize, Error> {
        self.inner.keys.refresh().await
    }

    /// Waits until the JWKS fetch in flight, if any (a background refresh of expired keys
    /// included, from the moment the `verify` that started it returns), has been applied
    /// to the cache. With a [`ManualClock`](crate::ManualClock)
    /// this is how a test knows the refresh that moving time caused is over.
    pub async fn wait_for_fetch(&self) {
        self.inner.keys.wait_for_fetch().await;
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
        self.inner.revocations.spawn_poller()
    }

    /// Whether the revocation poller runs (started by the first [`verify`](Self::verify)
    /// or by [`spawn_revocation_poller`](Self::spawn_revocation_poller)); never without a
    /// `revocation_token`. True from the moment the call that started it returns, so a
    /// readiness check or a test can rely on it at once.
    pub fn polls_revocations(&self) -> bool {
        // The poller task holds the only weak reference to the revocation list, taken
        // before `spawn_poller` returns and kept until the task ends.
        Arc::weak_count(&self.inner.revocations) > 0
    }
}
