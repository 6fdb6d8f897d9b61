//! A short-lived cache of user rows for authentication.
//!
//! Every authenticated request needs the caller's row (does the account exist, was the
//! token revoked?). Reading it once a second per user instead of once per request keeps
//! token checks cheap. Any revocation made by this process clears the whole cache at once,
//! so here it takes effect immediately; one made by another instance sharing the database
//! is seen once the row is re-read, [`USER_CACHE_TTL`] after it was last read.
//!
//! When a row has aged out, one request re-reads it while the others keep using the old
//! copy until it arrives (for at most another TTL), so that a busy user's row expiring
//! does not send every concurrent request to the database at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::models::User;

pub const USER_CACHE_TTL: TimeDelta = TimeDelta::seconds(1);
const CAPACITY: usize = 16_384;

struct Entry {
    fetched: DateTime<Utc>,
    generation: u64,
    user: Arc<User>,
    /// Someone is already re-reading this row.
    refreshing: AtomicBool,
}

pub struct UserCache {
    clock: Clock,
    entries: RwLock<HashMap<Uuid, Entry>>,
    generation: AtomicU64,
}

impl UserCache {
    pub fn new(clock: Clock) -> Self {
        Self { clock, entries: RwLock::default(), generation: AtomicU64::default() }
    }

    /// The cached row, or `None` when the caller must read it (and then `put` it).
    pub fn get(&self, id: Uuid) -> Option<Arc<User>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&id)?;
        if entry.generation != self.generation.load(Ordering::Acquire) {
            return None;
        }
        let age = self.clock.now() - entry.fetched;
        let usable = age < USER_CACHE_TTL
            || (age < USER_CACHE_TTL * 2 && entry.refreshing.swap(true, Ordering::AcqRel));
        usable.then(|| entry.user.clone())
    }

    /// Remembers a row read at `generation` (taken before the read, so that a revocation
    /// racing the read is never hidden by it).
    pub fn put(&self, user: Arc<User>, generation: u64) {
        let now = self.clock.now();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| now - e.fetched < USER_CACHE_TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        let entry = Entry { fetched: now, generation, user, refreshing: AtomicBool::new(false) };
        entries.insert(entry.user.id.0, entry);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets every row; called after any change that may revoke tokens.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
