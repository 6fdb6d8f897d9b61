//! A short-lived cache of user rows for authentication.
//!
//! Every authenticated request needs the caller's row (does the account exist, was the
//! token revoked?). Reading it once a second per user instead of once per request keeps
//! token checks cheap. A revocation made by this process evicts that user's row at once
//! ([`UserCache::evict`]), so here it takes effect immediately; one made by another
//! instance sharing the database is seen once the row is re-read, [`USER_CACHE_TTL`]
//! after it was last read. Nothing else removes a row early: a request that revokes
//! nothing leaves the cache as it is.
//!
//! The cache is bounded by memory ([`USER_CACHE_BYTES`]); when full, `quick_cache`
//! evicts the rows least likely to be asked for again. Ages are measured on the injected
//! [`Clock`], never on the cache's own, so tests move time instead of sleeping.
//!
//! When a row has aged out, one request re-reads it while the others keep using the old
//! copy until it arrives (for at most another TTL), so that a busy user's row expiring
//! does not send every concurrent request to the database at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::models::User;

pub const USER_CACHE_TTL: TimeDelta = TimeDelta::seconds(1);
/// Room for the rows of ~40,000 active users (a row with an email weighs ~550 bytes, see
/// [`RowWeight`]), so that 30,000 fit with a fifth to spare for uneven shards.
pub const USER_CACHE_BYTES: u64 = 24 << 20;
/// Rows of this weight are what the cache is sized for: a typical one, with an email.
const TYPICAL_ROW_BYTES: u64 = 640;
const _: () = assert!(30_000 * TYPICAL_ROW_BYTES <= USER_CACHE_BYTES * 4 / 5);

struct Entry {
    fetched: DateTime<Utc>,
    user: Arc<User>,
    /// Someone is already re-reading this row.
    refreshing: AtomicBool,
}

/// An entry's weight: its bytes, the row's strings included.
#[derive(Clone)]
struct RowWeight;

impl Weighter<Uuid, Arc<Entry>> for RowWeight {
    fn weight(&self, _: &Uuid, entry: &Arc<Entry>) -> u64 {
        let user = &entry.user;
        let text = [
            Some(&user.username),
            user.email.as_ref(),
            Some(&user.password_hash),
            user.refresh_token_hash.as_ref(),
            user.previous_refresh_token_hash.as_ref(),
        ];
        let heap: usize = text.into_iter().flatten().map(String::capacity).sum();
        (size_of::<Uuid>() + size_of::<Entry>() + size_of::<User>() + heap) as u64
    }
}

pub struct UserCache {
    clock: Clock,
    entries: Cache<Uuid, Arc<Entry>, RowWeight>,
    /// How many evictions there have been; see [`UserCache::put`].
    evictions: AtomicU64,
}

impl UserCache {
    pub fn new(clock: Clock) -> Self {
        Self::with_capacity(clock, USER_CACHE_BYTES)
    }

    /// A cache holding at most `bytes` of rows.
    pub fn with_capacity(clock: Clock, bytes: u64) -> Self {
        let rows = (bytes / TYPICAL_ROW_BYTES) as usize;
        Self { clock, entries: Cache::with_weighter(rows, bytes, RowWeight), evictions: AtomicU64::default() }
    }

    /// The cached row, or `None` when the caller must read it (and then `put` it).
    pub fn get(&self, id: Uuid) -> Option<Arc<User>> {
        let entry = self.entries.get(&id)?;
        let age = self.clock.now() - entry.fetched;
        let usable = age < USER_CACHE_TTL
            || (age < USER_CACHE_TTL * 2 && entry.refreshing.swap(true, Ordering::AcqRel));
        usable.then(|| entry.user.clone())
    }

    /// The value to pass to [`UserCache::put`], taken before reading the row.
    pub fn generation(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    /// Remembers a row read after [`UserCache::generation`] returned `generation`. If any
    /// eviction happened since, the row may predate a revocation and is not kept: the
    /// second check, after the insert, catches an eviction that ran between the first
    /// check and the insert (it bumps the count before it removes).
    pub fn put(&self, user: Arc<User>, generation: u64) {
        if self.generation() != generation {
            return;
        }
        let id = user.id.0;
        let entry = Entry { fetched: self.clock.now(), user, refreshing: AtomicBool::new(false) };
        self.entries.insert(id, Arc::new(entry));
        if self.generation() != generation {
            self.entries.remove(&id);
        }
    }

    /// Forgets the user's row, so that the next request reads the current one. Every
    /// change this process makes that must count at once — each revocation (logout,
    /// password change, refresh-token reuse, and any other) — calls this right after its
    /// write, for that user only.
    pub fn evict(&self, id: Uuid) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(&id);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::NaiveDateTime;

    use super::*;
    use crate::clock::ManualClock;
    use crate::db::models::DbUuid;

    fn row(email: &str) -> Arc<User> {
        let at = NaiveDateTime::default();
        Arc::new(User {
            id: DbUuid(Uuid::new_v4()),
            username: "a_typical_username".into(),
            email: Some(email.into()),
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${}${}", "s".repeat(22), "h".repeat(43)),
            refresh_token_hash: Some("0".repeat(64)),
            refresh_token_expires_at: Some(at),
            previous_refresh_token_hash: Some("1".repeat(64)),
            refresh_token_rotated_at: Some(at),
            created_at: at,
            updated_at: at,
            tokens_valid_after: None,
            disabled: false,
        })
    }

    #[test]
    fn thirty_thousand_typical_rows_fit_by_default() {
        let weight = RowWeight.weight(
            &Uuid::nil(),
            &Arc::new(Entry {
                fetched: Utc::now(),
                user: row("someone.with.a.long.name@example.com"),
                refreshing: AtomicBool::new(false),
            }),
        );
        assert!(weight <= TYPICAL_ROW_BYTES, "{weight}");
    }

    #[test]
    fn an_eviction_during_a_read_keeps_the_stale_row_out() {
        let cache = UserCache::new(Clock::system());
        let user = row("a@example.com");
        let before_read = cache.generation();
        cache.evict(user.id.0);
        cache.put(user.clone(), before_read);
        assert!(cache.get(user.id.0).is_none());
        cache.put(user.clone(), cache.generation());
        assert!(cache.get(user.id.0).is_some());
    }

    #[test]
    fn rows_age_out_on_the_injected_clock() {
        let manual = ManualClock::new();
        let cache = UserCache::new(manual.clock());
        let user = row("a@example.com");
        cache.put(user.clone(), cache.generation());
        manual.advance(Duration::from_millis(999));
        assert!(cache.get(user.id.0).is_some());
        manual.advance(Duration::from_millis(1));
        assert!(cache.get(user.id.0).is_none(), "the first caller re-reads");
        assert!(cache.get(user.id.0).is_some(), "the others use the old row meanwhile");
        manual.advance(Duration::from_secs(1));
        assert!(cache.get(user.id.0).is_none());
    }

    #[test]
    fn a_full_cache_evicts_rows_and_stays_within_its_bound() {
        let bytes = 64 * TYPICAL_ROW_BYTES;
        let cache = UserCache::with_capacity(Clock::system(), bytes);
        let users: Vec<_> = (0..1_000).map(|i| row(&format!("u{i}@example.com"))).collect();
        for user in &users {
            cache.put(user.clone(), cache.generation());
        }
        assert!(cache.len() < 100, "{}", cache.len());
        assert!(cache.entries.weight() <= bytes);
        for user in &users {
            if let Some(cached) = cache.get(user.id.0) {
                assert!(Arc::ptr_eq(&cached, user), "a row is only ever served for its own id");
            }
        }
    }
}
