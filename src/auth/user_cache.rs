//! A short-lived cache of accounts (user rows with their roles) for authentication.
//!
//! Every authenticated request needs the caller's row (does the account exist, was the
//! token revoked?), and `/auth/me` its current roles. Reading them once a second per user
//! instead of once per request keeps token checks cheap; a request served from the cache
//! touches no database. A revocation or change of roles made by this process evicts that
//! user's entry at once ([`UserCache::evict`]), so here it takes effect immediately; one
//! made by another instance sharing the database is seen once the entry is re-read,
//! within [`USER_CACHE_TTL`] (twice that at most) of its last read. Nothing else removes
//! an entry early: a request that revokes nothing leaves the cache as it is.
//!
//! The cache is bounded by memory ([`USER_CACHE_BYTES`]); when full, `quick_cache`
//! evicts the entries least likely to be asked for again. Ages are measured on the
//! injected [`Clock`], never on the cache's own, so tests move time instead of sleeping.
//!
//! An entry older than the TTL is still served, for at most another TTL, while it waits
//! to be re-read: such entries queue, and one request at a time takes up to
//! [`REREAD_BATCH`] of them ([`UserCache::take_aged`]) and re-reads them in one query.
//! With many active users, one read per user per second would otherwise be a query each;
//! and no request waits for a busy user's entry to be re-read. Only an entry older than
//! twice the TTL (its re-read failed, or was refused after an eviction) is not served: the
//! caller reads it itself.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
/// At most this many aged entries are re-read in one query.
pub const REREAD_BATCH: usize = 500;
/// Evictions are counted per group of users, so that one user's eviction refuses only the
/// re-reads of a sixty-fourth of the others (see [`UserCache::put`]).
const EVICTION_GROUPS: usize = 64;

struct Entry {
    fetched: DateTime<Utc>,
    account: Arc<Account>,
    /// The entry is queued for a re-read, or being re-read.
    queued: AtomicBool,
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
    /// How many evictions there have been in each group of users; see [`UserCache::put`].
    evictions: [AtomicU64; EVICTION_GROUPS],
    /// Users whose entries aged past the TTL, to re-read; and how many, so that a request
    /// finds out without taking the lock.
    aged: Mutex<Vec<Uuid>>,
    aged_len: AtomicUsize,
    /// A request is re-reading a batch of them.
    rereading: AtomicBool,
}

/// A batch of aged entries to re-read, taken by [`UserCache::take_aged`]: pass its
/// [`AgedBatch::ids`] to [`Account::find_many`] and what that found to
/// [`UserCache::reread`]. Until it is dropped, no other request takes a batch.
pub struct AgedBatch<'a> {
    cache: &'a UserCache,
    /// Each user with the generation taken before the read.
    users: Vec<(Uuid, u64)>,
}

impl AgedBatch<'_> {
    pub fn ids(&self) -> Vec<Uuid> {
        self.users.iter().map(|(id, _)| *id).collect()
    }
}

impl Drop for AgedBatch<'_> {
    fn drop(&mut self) {
        self.cache.rereading.store(false, Ordering::Release);
    }
}

impl UserCache {
    pub fn new(clock: Clock) -> Self {
        Self::with_capacity(clock, USER_CACHE_BYTES)
    }

    /// A cache holding at most `bytes` of rows.
    pub fn with_capacity(clock: Clock, bytes: u64) -> Self {
        let rows = (bytes / TYPICAL_ROW_BYTES) as usize;
        Self {
            clock,
            entries: Cache::with_weighter(rows, bytes, RowWeight),
            evictions: std::array::from_fn(|_| AtomicU64::default()),
            aged: Mutex::default(),
            aged_len: AtomicUsize::default(),
            rereading: AtomicBool::default(),
        }
    }

    /// The cached account, or `None` when the caller must read it (and then `put` it).
    /// An entry past the TTL is queued for a re-read (see [`UserCache::take_aged`]).
    pub fn get(&self, id: Uuid) -> Option<Arc<Account>> {
        let entry = self.entries.get(&id)?;
        let age = self.clock.now() - entry.fetched;
        if age >= USER_CACHE_TTL * 2 {
            return None;
        }
        if age >= USER_CACHE_TTL && !entry.queued.swap(true, Ordering::AcqRel) {
            let mut queue = self.aged_queue();
            queue.push(id);
            self.aged_len.store(queue.len(), Ordering::Release);
        }
        Some(entry.account.clone())
    }

    /// The aged entries to re-read, at most [`REREAD_BATCH`], unless there are none or
    /// another request is re-reading already.
    pub fn take_aged(&self) -> Option<AgedBatch<'_>> {
        if self.aged_len.load(Ordering::Acquire) == 0 || self.rereading.swap(true, Ordering::AcqRel) {
            return None;
        }
        let mut queue = self.aged_queue();
        let take = queue.len().min(REREAD_BATCH);
        let users: Vec<(Uuid, u64)> = queue.drain(..take).map(|id| (id, self.generation(id))).collect();
        self.aged_len.store(queue.len(), Ordering::Release);
        drop(queue);
        // Dropping an empty batch lets the next request look again.
        let batch = AgedBatch { cache: self, users };
        (!batch.users.is_empty()).then_some(batch)
    }

    /// Remembers what a batch's re-read found; a user it did not find (deleted) is
    /// forgotten, so that the next request reads it and is refused.
    pub fn reread(&self, batch: AgedBatch<'_>, found: Vec<Account>) {
        let mut found: std::collections::HashMap<Uuid, Account> =
            found.into_iter().map(|account| (account.user.id.0, account)).collect();
        for (id, generation) in &batch.users {
            match found.remove(id) {
                Some(account) => self.put(Arc::new(account), *generation),
                None => {
                    self.entries.remove(id);
                }
            }
        }
    }

    fn aged_queue(&self) -> std::sync::MutexGuard<'_, Vec<Uuid>> {
        self.aged.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn evictions_of(&self, id: Uuid) -> &AtomicU64 {
        &self.evictions[(id.as_u128() % EVICTION_GROUPS as u128) as usize]
    }

    /// The value to pass to [`UserCache::put`], taken before reading the user's row.
    pub fn generation(&self, id: Uuid) -> u64 {
        self.evictions_of(id).load(Ordering::SeqCst)
    }

    /// Remembers an account read after [`UserCache::generation`] returned `generation`. If
    /// an eviction in the user's group happened since, the row may predate a revocation
    /// and is not kept: the second check, after the insert, catches an eviction that ran
    /// between the first check and the insert (it bumps the count before it removes).
    pub fn put(&self, account: Arc<Account>, generation: u64) {
        let id = account.user.id.0;
        if self.generation(id) != generation {
            return;
        }
        let entry = Entry { fetched: self.clock.now(), account, queued: AtomicBool::new(false) };
        self.entries.insert(id, Arc::new(entry));
        if self.generation(id) != generation {
            self.entries.remove(&id);
        }
    }

    /// Forgets the user's account, so that the next request reads the current one. Every
    /// change this process makes that must count at once — each revocation (logout,
    /// password change, refresh-token reuse, and any other) and every change of roles —
    /// calls this right after its write, for that user only.
    pub fn evict(&self, id: Uuid) {
        self.evictions_of(id).fetch_add(1, Ordering::SeqCst);
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
                queued: AtomicBool::new(false),
            }),
        );
        assert!(weight <= TYPICAL_ROW_BYTES, "{weight}");
    }

    #[test]
    fn thirty_thousand_active_users_stay_cached_by_default() {
        let cache = UserCache::new(Clock::system());
        let accounts: Vec<_> = (0..30_000).map(|i| row(&format!("someone.number.{i}@example.com"))).collect();
        for account in &accounts {
            cache.put(account.clone(), cache.generation(account.user.id.0));
        }
        let kept = accounts.iter().filter(|account| cache.get(account.user.id.0).is_some()).count();
        assert_eq!(kept, accounts.len());
    }

    #[test]
    fn an_eviction_during_a_read_keeps_the_stale_row_out() {
        let cache = UserCache::new(Clock::system());
        let account = row("a@example.com");
        let id = account.user.id.0;
        let before_read = cache.generation(id);
        cache.evict(id);
        cache.put(account.clone(), before_read);
        assert!(cache.get(id).is_none());
        cache.put(account.clone(), cache.generation(id));
        assert!(cache.get(id).is_some());
    }

    #[test]
    fn aged_rows_are_served_while_one_batch_rereads_them() {
        let manual = ManualClock::new();
        let cache = UserCache::new(manual.clock());
        let (alice, bob) = (row("a@example.com"), row("b@example.com"));
        for account in [&alice, &bob] {
            cache.put(account.clone(), cache.generation(account.user.id.0));
        }
        manual.advance(Duration::from_millis(999));
        assert!(cache.get(alice.user.id.0).is_some());
        assert!(cache.take_aged().is_none(), "nothing has aged yet");
        manual.advance(Duration::from_millis(1));
        for _ in 0..3 {
            assert!(cache.get(alice.user.id.0).is_some(), "served while it waits");
            assert!(cache.get(bob.user.id.0).is_some());
        }
        let batch = cache.take_aged().unwrap();
        assert_eq!(batch.ids(), [alice.user.id.0, bob.user.id.0], "each queued once");
        assert!(cache.take_aged().is_none(), "one batch at a time");
        let reread = Account { user: alice.user.clone(), roles: vec!["new".into()] };
        // Bob was not found: deleted meanwhile.
        cache.reread(batch, vec![reread]);
        assert_eq!(cache.get(alice.user.id.0).unwrap().roles, ["new"]);
        assert!(cache.get(bob.user.id.0).is_none());
        manual.advance(Duration::from_secs(2));
        assert!(cache.get(alice.user.id.0).is_none(), "twice the TTL: the caller reads it");
    }

    #[test]
    fn an_eviction_during_a_batch_reread_keeps_the_stale_row_out() {
        let manual = ManualClock::new();
        let cache = UserCache::new(manual.clock());
        let account = row("a@example.com");
        let id = account.user.id.0;
        cache.put(account.clone(), cache.generation(id));
        manual.advance(Duration::from_secs(1));
        assert!(cache.get(id).is_some());
        let batch = cache.take_aged().unwrap();
        cache.evict(id);
        cache.reread(batch, vec![Account { user: account.user.clone(), roles: vec![] }]);
        assert!(cache.get(id).is_none());
    }

    #[test]
    fn a_full_cache_evicts_rows_and_stays_within_its_bound() {
        let bytes = 64 * TYPICAL_ROW_BYTES;
        let cache = UserCache::with_capacity(Clock::system(), bytes);
        let accounts: Vec<_> = (0..1_000).map(|i| row(&format!("u{i}@example.com"))).collect();
        for account in &accounts {
            cache.put(account.clone(), cache.generation(account.user.id.0));
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
