//! [`KeyCache`]: tollgate's keys by `kid`, fresh for the JWKS answer's `max-age`, refetched
//! when a token names an unknown `kid` (at most once per cooldown), one fetch at a time,
//! and still used, however old, while tollgate cannot be reached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::fetch::TollgateClient;
use crate::{Clock, Error, VerificationKey, VerifierConfig};

/// While no key was ever fetched, failed fetches are retried at least this often.
const NO_KEYS_RETRY_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) type Keys = Arc<HashMap<String, VerificationKey>>;

pub(crate) struct KeyCache {
    client: TollgateClient,
    clock: Arc<dyn Clock>,
    unknown_kid_cooldown: Duration,
    fetch_retry_interval: Duration,
    state: RwLock<State>,
    /// Held while fetching the JWKS: concurrent callers share one fetch.
    fetch: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct State {
    keys: Keys,
    /// Successful fetches so far: a caller that saw generation `g` knows whether a fetch
    /// completed since.
    generation: u64,
    /// When the keys were last fetched successfully, and for how long they are fresh.
    fetched_at: Option<Instant>,
    max_age: Duration,
    /// The last failed fetch, and why: no new attempt before `fetch_retry_interval`.
    failed_at: Option<Instant>,
    last_error: Option<String>,
    /// The last refetch that an unknown `kid` caused.
    unknown_kid_refetch_at: Option<Instant>,
}

impl State {
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

enum Refetch {
    /// The cache is empty or expired.
    Stale,
    /// A token carries a `kid` the cache does not have; the caller saw the keys of fetch
    /// `generation`, so a fetch completed after it already had the chance to bring that key.
    UnknownKid { kid: String, generation: u64 },
}

impl KeyCache {
    pub fn new(config: &VerifierConfig, client: TollgateClient) -> Self {
        Self {
            client,
            clock: config.clock.clone(),
            unknown_kid_cooldown: config.unknown_kid_cooldown,
            fetch_retry_interval: config.fetch_retry_interval,
            state: RwLock::default(),
            fetch: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The keys to verify a token signed with `kid`: the cached ones, refetched first when
    /// the cache never had keys or lacks `kid` (see [`Refetch`]).
    pub async fn keys_for(self: &Arc<Self>, kid: &str) -> Result<Keys, Error> {
        let generation = self.read().generation;
        let keys = self.fresh_keys().await?;
        if keys.contains_key(kid) {
            return Ok(keys);
        }
        self.refetch(Refetch::UnknownKid { kid: kid.to_owned(), generation }).await
    }

    /// Fetches the JWKS now (after a fetch in flight), whatever the cache holds, and
    /// returns how many keys are cached.
    pub async fn refresh(&self) -> Result<usize, Error> {
        let _guard = self.fetch.lock().await;
        self.fetch_keys().await?;
        Ok(self.read().keys.len())
    }

    /// Waits for the fetch in flight, if any, to be applied.
    pub async fn wait_for_fetch(&self) {
        drop(self.fetch.lock().await);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached keys. Expired ones are still returned at once while a background task
    /// refreshes them; only a cache that never had keys makes the caller wait for a fetch.
    async fn fresh_keys(self: &Arc<Self>) -> Result<Keys, Error> {
        {
            let state = self.read();
            if state.is_fresh(self.clock.instant()) {
                return Ok(state.keys.clone());
            }
            if state.fetched_at.is_some() {
                let keys = state.keys.clone();
                drop(state);
                self.refresh_in_background();
                return Ok(keys);
            }
        }
        self.refetch(Refetch::Stale).await
    }

    /// Starts one background refresh of expired keys unless a fetch is in flight (if
    /// that one brings no fresh keys, the next `verify` tries again). The fetch lock is
    /// taken here, before the task runs, so that [`wait_for_fetch`](Self::wait_for_fetch)
    /// called after this returns waits for the refresh; the task releases it however it
    /// ends, cancelled with its runtime included.
    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(guard) = self.fetch.clone().try_lock_owned() else {
            return;
        };
        let cache = self.clone();
        tokio::spawn(async move {
            let _ = cache.refetch_locked(Refetch::Stale).await;
            drop(guard);
        });
    }

    async fn refetch(&self, reason: Refetch) -> Result<Keys, Error> {
        let _guard = self.fetch.lock().await;
        self.refetch_locked(reason).await
    }

    /// Fetches the JWKS if `reason` still calls for it now that the caller holds the fetch
    /// lock (a concurrent caller may just have done it), then returns the keys to use.
    async fn refetch_locked(&self, reason: Refetch) -> Result<Keys, Error> {
        let now = self.clock.instant();
        let should_fetch = {
            let mut state = self.write();
            let backoff = state.in_retry_backoff(now, self.fetch_retry_interval);
            match &reason {
                Refetch::Stale => !state.is_fresh(now) && !backoff,
                Refetch::UnknownKid { kid, generation } => {
                    let cooling = state
                        .unknown_kid_refetch_at
                        .is_some_and(|at| now.saturating_duration_since(at) < self.unknown_kid_cooldown);
                    let just_fetched = state.generation > *generation;
                    let wanted = !state.keys.contains_key(kid) && !just_fetched && !cooling && !backoff;
                    if wanted {
                        state.unknown_kid_refetch_at = Some(now);
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
            let _ = self.fetch_keys().await;
        }
        let state = self.read();
        if state.fetched_at.is_none() {
            return Err(state.unavailable());
        }
        Ok(state.keys.clone())
    }

    /// One JWKS fetch; on success the cache holds exactly the keys tollgate published.
    /// The caller holds the fetch lock.
    async fn fetch_keys(&self) -> Result<(), Error> {
        let result = self.client.jwks().await;
        let now = self.clock.instant();
        let mut state = self.write();
        match result {
            Ok(jwks) => {
                log::debug!(
                    "fetched {} key(s) from {}, fresh for {}s",
                    jwks.keys.len(),
                    self.client.jwks_url(),
                    jwks.max_age.as_secs()
                );
                state.keys = Arc::new(jwks.keys);
                state.generation += 1;
                state.fetched_at = Some(now);
                state.max_age = jwks.max_age;
                state.failed_at = None;
                state.last_error = None;
                Ok(())
            }
            Err(problem) => {
                let had = state.keys.len();
                if had > 0 {
                    log::warn!("{problem}; still using the {had} key(s) fetched before");
                } else {
                    log::error!("{problem}; no verification keys yet");
                }
                state.failed_at = Some(now);
                state.last_error = Some(problem.clone());
                Err(Error::KeysUnavailable(problem))
            }
        }
    }
}
