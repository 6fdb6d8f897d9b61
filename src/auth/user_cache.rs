//! A short-lived cache of accounts (user rows with their roles) for authentication.
//!
//! Every authenticated request needs the caller's row (does the account exist, was the
//! token revoked?), and `/auth/me` its current roles. Reading them once a second per user
//! instead of once per request keeps token checks cheap; a request served from the cache
//! touches no database. A revocation or change of roles made by this process evicts that
//! user's entry at once ([`UserCache::evict`]), so here it takes effect immediately; one
//! made by another instance sharing the database is seen once the entry is re-read or
//! re-validated, within [`USER_CACHE_TTL`] (twice that at most) of its last check. Nothing else removes
//! an entry early: a request that revokes nothing leaves the cache as it is.
//!
//! The cache is bounded by memory ([`USER_CACHE_BYTES`]); when full, `quick_cache`
//! evicts the entries least likely to be asked for again. Ages are measured on the
//! injected [`Clock`], never on the cache's own, so tests move time instead of sleeping.
//!
//! An entry older than the TTL is still served, for at most another TTL, while it waits
//! to be re-validated: such entries queue, and one request at a time takes up to
//! [`REREAD_BATCH`] of them ([`UserCache::take_aged`]) and checks them in one light query
//! ([`Account::freshness_of`]: per user only `updated_at`, the revocation columns and the
//! roles, not the row). An unchanged entry is renewed; a changed or deleted one is
//! dropped, and the next request reads it itself ([`UserCache::revalidate`]).
//! With many active users, one read per user per second would otherwise be a query each;
//! and no request waits for a busy user's entry to be re-read. The entries of users seen
//! within [`KEPT_FRESH_FOR`] are queued as they age whether or not they are asked for
//! meanwhile (a sweep twice a TTL), so that a user who calls every few seconds still
//! finds a fresh entry. Only an entry older than twice the TTL (not kept fresh, its
//! re-read failed, or was refused after an eviction) is not served: the caller reads it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::accounts::{Account, Freshness};

pub const USER_CACHE_TTL: TimeDelta = TimeDelta::seconds(1);
/// Room for the accounts of many more active users than the 30,000 it is sized for (see
/// [`TYPICAL_ROW_BYTES`]), with a fifth to spare for uneven shards. A bound, not an
/// allocation.
pub const USER_CACHE_BYTES: u64 = 32 << 20;
/// Accounts of this weight are what the cache is sized for: a typical one, with an email
/// and two roles, as [`RowWeight`] weighs it (a test holds the two together).
const TYPICAL_ROW_BYTES: u64 = 352;
const _: () = assert!(30_000 * TYPICAL_ROW_BYTES <= USER_CACHE_BYTES * 4 / 5);
/// A user's entry is re-read as it ages for this long after their last request.
pub const KEPT_FRESH_FOR: TimeDelta = TimeDelta::seconds(30);
/// At most this many aged entries are re-read in one query.
pub const REREAD_BATCH: usize = 500;
/// Evictions are counted per group of users, so that one user's eviction refuses only the
/// re-reads of a sixty-fourth of the others (see [`UserCache::put`]).
const EVICTION_GROUPS: usize = 64;

struct Entry {
    /// When the account was read or last re-validated (microseconds on the clock); a
    /// re-validation renews it in place, with no allocation.
    fetched_us: AtomicI64,
    account: Arc<Account>,
    /// The entry is queued for a re-validation, or being re-validated.
    queued: AtomicBool,
    /// When the user last asked for it (milliseconds on the clock, to within a tenth of a
    /// second: rarer writes keep a busy user's entry from bouncing between cores).
    used_ms: AtomicI64,
}

impl Entry {
    fn age(&self, now: DateTime<Utc>) -> TimeDelta {
        TimeDelta::microseconds(now.timestamp_micros() - self.fetched_us.load(Ordering::Acquire))
    }
}

/// An entry's weight: its bytes, the row's strings, the roles and ended sessions included.
#[derive(Clone)]
struct RowWeight;

impl Weighter<Uuid, Arc<Entry>> for RowWeight {
    fn weight(&self, _: &Uuid, entry: &Arc<Entry>) -> u64 {
        let account = &*entry.account;
        let text = [Some(&account.username), account.email.as_ref()];
        let roles = &account.roles;
        let heap: usize =
            text.into_iter().chain(roles.iter().map(Some)).flatten().map(String::capacity).sum();
        let roles = roles.capacity() * size_of::<String>();
        let ended = account.ended_sessions.capacity() * size_of::<Uuid>();
        (size_of::<Uuid>() + size_of::<Entry>() + size_of::<Account>() + roles + ended + heap) as u64
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
    /// When the last sweep for aged entries of recent users ran (milliseconds).
    swept_ms: AtomicI64,
}

/// A batch of aged entries to re-validate, taken by [`UserCache::take_aged`]: pass its
/// [`AgedBatch::ids`] to [`Account::freshness_of`] and what that found to
/// [`UserCache::revalidate`]. Until it is dropped, no other request takes a batch.
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
            swept_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// The cached account, or `None` when the caller must read it (and then `put` it).
    /// An entry past the TTL is queued for a re-read (see [`UserCache::take_aged`]).
    pub fn get(&self, id: Uuid) -> Option<Arc<Account>> {
        let entry = self.entries.get(&id)?;
        let now = self.clock.now();
        let age = entry.age(now);
        if age >= USER_CACHE_TTL * 2 {
            return None;
        }
        let now_ms = now.timestamp_millis();
        if now_ms - entry.used_ms.load(Ordering::Relaxed) >= 100 {
            entry.used_ms.store(now_ms, Ordering::Relaxed);
        }
        if age >= USER_CACHE_TTL {
            self.queue(id, &entry);
        }
        Some(entry.account.clone())
    }

    fn queue(&self, id: Uuid, entry: &Entry) {
        if !entry.queued.swap(true, Ordering::AcqRel) {
            let mut queue = self.aged_queue();
            queue.push(id);
            self.aged_len.store(queue.len(), Ordering::Release);
        }
    }

    /// Queues the aged entries of users seen within [`KEPT_FRESH_FOR`], at most twice a
    /// TTL, by whichever request finds a sweep due.
    fn sweep_if_due(&self) {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let swept = self.swept_ms.load(Ordering::Acquire);
        let due = now_ms.saturating_sub(swept) >= (USER_CACHE_TTL / 2).num_milliseconds();
        if !due || self.swept_ms.compare_exchange(swept, now_ms, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return;
        }
        let recent_ms = (now - KEPT_FRESH_FOR).timestamp_millis();
        for (id, entry) in self.entries.iter() {
            if entry.age(now) >= USER_CACHE_TTL && entry.used_ms.load(Ordering::Relaxed) >= recent_ms {
                self.queue(id, &entry);
            }
        }
    }

    /// The aged entries to re-read, at most [`REREAD_BATCH`], unless there are none or
    /// another request is re-reading already.
    pub fn take_aged(&self) -> Option<AgedBatch<'_>> {
        self.sweep_if_due();
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

    /// Renews, in place, the entries of a batch that [`Freshness`] (read after the batch
    /// was taken) says are still right; drops the others, so that the next request reads
    /// them itself: changed (by another instance, or by hand), or not found (deleted).
    /// An entry whose user's group saw an eviction since the batch was taken is left to
    /// age out, as [`UserCache::put`] would refuse it; if the eviction comes after the
    /// check, it removes the entry anyway (renewing one no longer in the cache is harmless).
    pub fn revalidate(&self, batch: AgedBatch<'_>, found: Vec<Freshness>) {
        let mut found: HashMap<Uuid, Freshness> = found.into_iter().map(|f| (f.id, f)).collect();
        let now_us = self.clock.now().timestamp_micros();
        for (id, generation) in &batch.users {
            let Some(entry) = self.entries.get(id) else { continue };
            if !found.remove(id).is_some_and(|freshness| freshness.matches(&entry.account)) {
                self.entries.remove(id);
            } else if self.generation(*id) == *generation {
                // A re-validation is no request: `used_ms` stays the user's last one.
                entry.fetched_us.store(now_us, Ordering::Release);
                entry.queued.store(false, Ordering::Release);
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
        let id = account.id;
        if self.generation(id) != generation {
            return;
        }
        let now = self.clock.now();
        let entry = Entry {
            fetched_us: AtomicI64::new(now.timestamp_micros()),
            account,
            queued: AtomicBool::new(false),
            used_ms: AtomicI64::new(now.timestamp_millis()),
        };
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

    fn row(email: &str) -> Arc<Account> {
        let at = NaiveDateTime::default();
        Arc::new(Account {
            id: Uuid::new_v4(),
            username: "a_typical_username".into(),
            email: Some(email.into()),
            created_at: at,
            updated_at: at,
            tokens_valid_after: None,
            disabled: false,
            email_verified: false,
            mfa_enabled: false,
            roles: vec!["editor".into(), "support".into()],
            ended_sessions: Vec::new(),
        })
    }

    fn freshness(account: &Account) -> Freshness {
        Freshness {
            id: account.id,
            updated_at: account.updated_at,
            tokens_valid_after: account.tokens_valid_after,
            disabled: account.disabled,
            // The database's order, not the account's.
            roles: (!account.roles.is_empty())
                .then(|| account.roles.iter().rev().map(String::as_str).collect::<Vec<_>>().join(",")),
        }
    }

    #[test]
    fn a_changed_account_is_dropped_when_revalidated() {
        let manual = ManualClock::new();
        let cache = UserCache::new(manual.clock());
        let accounts: Vec<_> = (0..5).map(|i| row(&format!("u{i}@example.com"))).collect();
        for account in &accounts {
            cache.put(account.clone(), cache.generation(account.id));
        }
        manual.advance(Duration::from_secs(1));
        for account in &accounts {
            assert!(cache.get(account.id).is_some());
        }
        let mut found: Vec<_> = accounts.iter().map(|a| freshness(a)).collect();
        found[0].updated_at += TimeDelta::seconds(1);
        found[1].tokens_valid_after = Some(crate::db::models::UnixMillis(1));
        found[2].disabled = true;
        found[3].roles = Some("editor".into());
        cache.revalidate(cache.take_aged().unwrap(), found);
        for account in &accounts[..4] {
            assert!(cache.get(account.id).is_none(), "changed: the next request reads it");
        }
        assert!(cache.get(accounts[4].id).is_some(), "the roles match in any order");
    }

    #[test]
    fn thirty_thousand_typical_rows_fit_by_default() {
        let weight = RowWeight.weight(
            &Uuid::nil(),
            &Arc::new(Entry {
                fetched_us: AtomicI64::default(),
                account: row("someone.with.a.long.name@example.com"),
                queued: AtomicBool::new(false),
                used_ms: AtomicI64::default(),
            }),
        );
        assert!(weight <= TYPICAL_ROW_BYTES, "{weight}");
        assert!(weight > TYPICAL_ROW_BYTES / 2, "{weight}");
    }

    #[test]
    fn thirty_thousand_active_users_stay_cached_by_default() {
        let cache = UserCache::new(Clock::system());
        let accounts: Vec<_> = (0..30_000).map(|i| row(&format!("someone.number.{i}@example.com"))).collect();
        for account in &accounts {
            cache.put(account.clone(), cache.generation(account.id));
        }
        let kept = accounts.iter().filter(|account| cache.get(account.id).is_some()).count();
        assert_eq!(kept, accounts.len());
    }

    #[test]
    fn an_eviction_during_a_read_keeps_the_stale_row_out() {
        let cache = UserCache::new(Clock::system());
        let account = row("a@example.com");
        let id = account.id;
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
            cache.put(account.clone(), cache.generation(account.id));
        }
        manual.advance(Duration::from_millis(999));
        assert!(cache.get(alice.id).is_some());
        assert!(cache.take_aged().is_none(), "nothing has aged yet");
        manual.advance(Duration::from_millis(1));
        for _ in 0..3 {
            assert!(cache.get(alice.id).is_some(), "served while it waits");
            assert!(cache.get(bob.id).is_some());
        }
        let batch = cache.take_aged().unwrap();
        assert_eq!(batch.ids(), [alice.id, bob.id], "each queued once");
        assert!(cache.take_aged().is_none(), "one batch at a time");
        // Bob was not found: deleted meanwhile.
        cache.revalidate(batch, vec![freshness(&alice)]);
        assert!(Arc::ptr_eq(&cache.get(alice.id).unwrap(), &alice), "unchanged: renewed");
        assert!(cache.get(bob.id).is_none());
        manual.advance(Duration::from_millis(1999));
        assert!(cache.get(alice.id).is_some(), "renewed when re-validated");
        manual.advance(Duration::from_millis(1));
        assert!(cache.get(alice.id).is_none(), "twice the TTL: the caller reads it");
    }

    #[test]
    fn recent_users_entries_are_reread_as_they_age_unasked() {
        let manual = ManualClock::new();
        let cache = UserCache::new(manual.clock());
        let (recent, gone) = (row("a@example.com"), row("b@example.com"));
        cache.put(gone.clone(), cache.generation(gone.id));
        manual.advance(KEPT_FRESH_FOR.to_std().unwrap());
        cache.put(recent.clone(), cache.generation(recent.id));
        manual.advance(Duration::from_secs(1));
        let batch = cache.take_aged().unwrap();
        assert_eq!(batch.ids(), [recent.id], "only the user seen within KEPT_FRESH_FOR");
        cache.revalidate(batch, vec![freshness(&recent)]);
        manual.advance(Duration::from_millis(1500));
        assert!(cache.get(recent.id).is_some(), "kept fresh: not older than twice the TTL");
        assert!(cache.get(gone.id).is_none());
        let batch = cache.take_aged().unwrap();
        cache.revalidate(batch, vec![freshness(&recent)]);
        // Re-reads are no requests: once KEPT_FRESH_FOR has passed since the last, no more.
        manual.advance(KEPT_FRESH_FOR.to_std().unwrap() + Duration::from_secs(1));
        assert!(cache.take_aged().is_none());
    }

    #[test]
    fn an_eviction_during_a_batch_reread_keeps_the_stale_row_out() {
        let manual = ManualClock::new();
        let cache = UserCache::new(manual.clock());
        let account = row("a@example.com");
        let id = account.id;
        cache.put(account.clone(), cache.generation(id));
        manual.advance(Duration::from_secs(1));
        assert!(cache.get(id).is_some());
        let batch = cache.take_aged().unwrap();
        cache.evict(id);
        cache.revalidate(batch, vec![freshness(&account)]);
        assert!(cache.get(id).is_none());
    }

    #[test]
    fn a_full_cache_evicts_rows_and_stays_within_its_bound() {
        let bytes = 64 * TYPICAL_ROW_BYTES;
        let cache = UserCache::with_capacity(Clock::system(), bytes);
        let accounts: Vec<_> = (0..1_000).map(|i| row(&format!("u{i}@example.com"))).collect();
        for account in &accounts {
            cache.put(account.clone(), cache.generation(account.id));
        }
        assert!(cache.len() < 100, "{}", cache.len());
        assert!(cache.entries.weight() <= bytes);
        for account in &accounts {
            if let Some(cached) = cache.get(account.id) {
                assert!(Arc::ptr_eq(&cached, account), "a row is only ever served for its own id");
            }
        }
    }
}
