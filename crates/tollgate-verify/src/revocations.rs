//! [`Revocations`]: the latest `not_before` per user and per session from tollgate's
//! revocation feed, kept up to date by a poller that runs while the verifier lives. Times
//! are exact to the millisecond: an entry's `not_before_ms` against the token's issue
//! time, the timestamp of its UUIDv7 `jti` ([`Claims::issued_at_ms`]); whole seconds
//! (`iat`, `not_before`) where either side has only those, which can refuse a token issued
//! just after a revocation in the same second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use uuid::Uuid;

use crate::fetch::TollgateClient;
use crate::{Claims, Clock, VerifierConfig};

pub(crate) struct Revocations {
    client: TollgateClient,
    clock: Arc<dyn Clock>,
    /// The feed's bearer token; without one there is no poller.
    token: Option<String>,
    poll_interval: Duration,
    /// Entries older than this many seconds can only reject expired tokens.
    horizon_secs: i64,
    state: RwLock<State>,
    poller_started: AtomicBool,
}

#[derive(Default)]
struct State {
    /// The latest `not_before` in unix milliseconds per `(sub, None)`, which revokes the
    /// user's tokens issued before it, and per `(sub, Some(sid))`, which revokes only
    /// those of that session.
    not_before_ms: HashMap<(Uuid, Option<Uuid>), i64>,
    /// The `since` of the next poll: the `now` of the last successful one.
    since: Option<i64>,
}

impl Revocations {
    pub fn new(config: &VerifierConfig, client: TollgateClient) -> Self {
        let max_token_age = i64::try_from(config.max_token_age.as_secs()).unwrap_or(i64::MAX / 2);
        Self {
            client,
            clock: config.clock.clone(),
            token: config.revocation_token.clone(),
            poll_interval: config.revocation_poll_interval,
            horizon_secs: max_token_age + config.leeway_secs as i64,
            state: RwLock::default(),
            poller_started: AtomicBool::new(false),
        }
    }

    pub fn is_revoked(&self, claims: &Claims) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let issued = claims.issued_at_ms();
        // The user's entry applies to every token; a token without `sid` meets it twice,
        // and no session's entry.
        [None, claims.sid].into_iter().any(|sid| {
            state.not_before_ms.get(&(claims.sub, sid)).is_some_and(|&not_before| issued < not_before)
        })
    }

    /// Whether a poller should run and does not yet.
    pub fn wants_poller(&self) -> bool {
        self.token.is_some() && !self.poller_started.load(Ordering::Relaxed)
    }

    /// Starts the poller on the current tokio runtime, unless there is no feed token or it
    /// runs already. It ends at its first tick after `self` is dropped.
    pub fn spawn_poller(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.token.as_ref()?;
        if self.poller_started.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(tokio::spawn(poll_forever(Arc::downgrade(self), self.clock.clone(), self.poll_interval)))
    }

    /// One poll of the revocation feed; returns how many entries it brought.
    async fn poll(&self) -> Result<usize, String> {
        let Some(token) = &self.token else {
            return Ok(0);
        };
        let since = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            // Before the first poll: only entries that can still reject a live token.
            state.since.unwrap_or_else(|| (self.clock.unix_secs() - self.horizon_secs).max(0))
        };
        let feed = self.client.revocations(token, since).await?;
        let count = feed.revocations.len();
        let horizon_ms = (self.clock.unix_secs() - self.horizon_secs).saturating_mul(1000);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for entry in feed.revocations {
            let at = entry.not_before_ms();
            let not_before = state.not_before_ms.entry((entry.sub, entry.sid)).or_insert(at);
            *not_before = (*not_before).max(at);
        }
        // An entry older than the longest token lifetime can only reject expired tokens.
        state.not_before_ms.retain(|_, not_before| *not_before >= horizon_ms);
        state.since = Some(feed.now);
        Ok(count)
    }
}

async fn poll_forever(revocations: Weak<Revocations>, clock: Arc<dyn Clock>, interval: Duration) {
    let mut due = clock.instant();
    loop {
        clock.sleep_until(due).await;
        // Counted from this tick, not from the end of the poll: a slow poll does not
        // stretch the interval.
        due = clock.instant() + interval;
        let Some(revocations) = revocations.upgrade() else {
            log::debug!("verifier dropped: revocation poller stops");
            return;
        };
        match revocations.poll().await {
            Ok(0) => {}
            Ok(count) => log::debug!("revocation feed: {count} entries"),
            Err(problem) => log::warn!("{problem}; retrying in {}s", interval.as_secs_f32()),
        }
    }
}
