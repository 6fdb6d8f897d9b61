//! A short-lived cache of accounts (user rows with their roles) for authentication.
//!
//! Every authenticated request needs the caller's row (does the account exist, was the
//! token revoked?), and `/auth/me` its current roles. Reading them once a second per user
//! instead of once per request keeps token checks cheap; no request served from the cache
//! touches the database. A revocation made by this process evicts that user's row at once
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
use crate::db::accounts::Account;

pub const USER_CACHE_TTL: TimeDelta = TimeDelta::seconds(1);
/// Room for the accounts of ~47,000 active users (a row with an email and two roles weighs
/// ~650 bytes, see [`RowWeight`]), so that 30,000 fit with a fifth to spare for uneven
/// shards. A bound, not an allocation: 30,000 accounts take ~20 MB.
pub const USER_CACHE_BYTES: u64 = 32 << 20;
/// Accounts of this weight are what the cache is sized for: a typical one, with an email
/// and two roles.
const TYPICAL_ROW_BYTES: u64 = 704;
const _: () = assert!(30_000 * TYPICAL_ROW_BYTES <= USER_CACHE_BYTES * 4 / 5);

struct Entry {
    fetched: DateTime<Utc>,
    account: Arc<Account>,
    /// Someone is already re-reading this row.
    refreshing: AtomicBool,
}

/// An entry's weight: its bytes, the row's strings and the roles included.
#[derive(Clone)]
struct RowWeight;

impl Weighter<Uuid, Arc<Entry>> for RowWeight {
    fn weight(&self, _: &Uuid, entry: &Arc<Entry>) -> u64 {
        let Account { user, roles } = &*entry.account;
        let text = [
            Some(&user.username),
            user.email.as_ref(),
            Some(&user.password_hash),
            user.refresh_token_hash.as_ref(),
            user.previous_refresh_token_hash.as_ref(),
        ];
        let heap: usize =
            text.into_iter().chain(roles.iter().map(Some)).flatten().map(String::capacity).sum();
        let roles = roles.capacity() * size_of::<String>();
        (size_of::<Uuid>() + size_of::<Entry>() + size_of::<Account>() + roles + heap) as u64
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

    /// The cached account, or `None` when the caller must read it (and then `put` it).
    pub fn get(&self, id: Uuid) -> Option<Arc<Account>> {
        let entry = self.entries.get(&id)?;
        let age = self.clock.now() - entry.fetched;
        let usable = age < USER_CACHE_TTL
            || (age < USER_CACHE_TTL * 2 && entry.refreshing.swap(true, Ordering::AcqRel));
        usable.then(|| entry.account.clone())
    }

    /// The value to pass to [`UserCache::put`], taken before reading the row.
    pub fn generation(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    /// Remembers an account read after [`UserCache::generation`] returned `generation`. If any
    /// eviction happened since, the row may predate a revocation and is not kept: the
    /// second check, after the insert, catches an eviction that ran between the first
    /// check and the insert (it bumps the count before it removes).
    pub fn put(&self, account: Arc<Account>, generation: u64) {
        if self.generation() != generation {
            return;
        }
        let id = account.user.id.0;
        let entry = Entry { fetched: self.clock.now(), account, refreshing: AtomicBool::new(false) };
        self.entries.insert(id, Arc::new(entry));
        if self.generation() != generation {
            self.entries.remove(&id);
        }
    }

    /// Forgets the user's account, so that the next request reads the current one. Every
    /// change this process makes that must count at once — each revocation (logout,
    /// password change, refresh-token reuse, and any other) and every change of roles —
    /// calls this right after its write, for that user only.
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
    use crate::db::models::{DbUuid, User};

    fn row(email: &str) -> Arc<Account> {
        let at = NaiveDateTime::default();
        let user = User {
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
        };
        Arc::new(Account { user, roles: vec!["editor".into(), "support".into()] })
    }

    #[test]
    fn thirty_thousand_typical_rows_fit_by_default() {
        let weight = RowWeight.weight(
            &Uuid::nil(),
            &Arc::new(Entry {
                fetched: Utc::now(),
                account: row("someone.with.a.long.name@example.com"),
                refreshing: AtomicBool::new(false),
            }),
        );
        assert!(weight <= TYPICAL_ROW_BYTES, "{weight}");
    }

    #[test]
    fn thirty_thousand_active_users_stay_cached_by_default() {
        let cache = UserCache::new(Clock::system());
        let accounts: Vec<_> = (0..30_000).map(|i| row(&format!("someone.number.{i}@example.com"))).collect();
        for account in &accounts {
            cache.put(account.clone(), cache.generation());
        }
        let kept = accounts.iter().filter(|account| cache.get(account.user.id.0).is_some()).count();
        assert_eq!(kept, accounts.len());
    }

    #[test]
    fn an_eviction_during_a_read_keeps_the_stale_row_out() {
        let cache = UserCache::new(Clock::system());
        let account = row("a@example.com");
        let before_read = cache.generation();
        cache.evict(account.user.id.0);
        cache.put(account.clone(), before_read);
        assert!(cache.get(account.user.id.0).is_none());
        cache.put(account.clone(), cache.generation());
        assert!(cache.get(account.user.id.0).is_some());
    }

    #[test]
    fn rows_age_out_on_the_injected_clock() {
        let manual = ManualClock::new();
        let cache = UserCache::new(manual.clock());
        let account = row("a@example.com");
        cache.put(account.clone(), cache.generation());
        manual.advance(Duration::from_millis(999));
        assert!(cache.get(account.user.id.0).is_some());
        manual.advance(Duration::from_millis(1));
        assert!(cache.get(account.user.id.0).is_none(), "the first caller re-reads");
        assert!(cache.get(account.user.id.0).is_some(), "the others use the old row meanwhile");
        manual.advance(Duration::from_secs(1));
        assert!(cache.get(account.user.id.0).is_none());
    }

    #[test]
    fn a_full_cache_evicts_rows_and_stays_within_its_bound() {
        let bytes = 64 * TYPICAL_ROW_BYTES;
        let cache = UserCache::with_capacity(Clock::system(), bytes);
        let accounts: Vec<_> = (0..1_000).map(|i| row(&format!("u{i}@example.com"))).collect();
        for account in &accounts {
            cache.put(account.clone(), cache.generation());
        }
        assert!(cache.len() < 100, "{}", cache.len());
        assert!(cache.entries.weight() <= bytes);
        for account in &accounts {
            if let Some(cached) = cache.get(account.user.id.0) {
                assert!(Arc::ptr_eq(&cached, account), "a row is only ever served for its own id");
            }
        }
    }
}
