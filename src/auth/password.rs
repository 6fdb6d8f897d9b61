//! Password rules and argon2id hashing.
//!
//! A hash costs ~19 MiB and tens of milliseconds, so it runs on [`Passwords`]' own threads,
//! never on the async workers.
//!
//! Once hashes imported from Django are about, a failed check also waits for the
//! [`FailureFloor`]: a wrong password against a pbkdf2 hash costs that pbkdf2, an unknown
//! user costs one argon2, and without the floor the difference would tell a guesser which
//! usernames exist and which accounts still have their Django hash.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{oneshot, watch};
use tollgate_django_hash::{DjangoHash, DjangoHashError};
use tracing::Span;
use unicode_normalization::UnicodeNormalization;

use crate::config::Argon2Settings;

/// The length rule, in the characters (Unicode scalar values) the user typed: what JSON
/// Schema's `minLength`/`maxLength` count too, and what the user sees. Normalisation may
/// turn one into many (U+FDFA into 18) or many into one, so it is never what is counted.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// A string over this many bytes has over [`MAX_PASSWORD_CHARS`] characters: refused
/// before it is even counted.
const MAX_RULE_BYTES: usize = 4 * MAX_PASSWORD_CHARS;
/// What a login accepts before any work, generously: every password the length rule
/// ever allowed, which until it counted typed characters included up to 1024 characters
/// *after* NFKC (a decomposed `é` is two typed characters but one normalised).
const MAX_RAW_PASSWORD_BYTES: usize = 4 * 4 * MAX_PASSWORD_CHARS;
/// The cap on what the hasher reads, 72 KiB: NFKC turns one character into at most 18
/// (U+FDFA; UAX #15) of at most 4 bytes each, so no password within the length rule
/// reaches it, while a login's raw input (up to 16 KiB) can. argon2 reads its input once,
/// into its initial hash, so even this much costs microseconds.
pub const MAX_NORMALIZED_PASSWORD_BYTES: usize = 18 * 4 * MAX_PASSWORD_CHARS;

/// The stored hash of an account that has no password yet (made by an administrator
/// without one): nothing verifies against it, so it cannot log in until one is set.
pub const NO_PASSWORD: &str = "!";

#[derive(Debug, PartialEq, Eq)]
pub enum PasswordRuleError {
    TooShort,
    TooLong,
}

impl std::fmt::Display for PasswordRuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort => write!(f, "password must be at least {MIN_PASSWORD_CHARS} characters"),
            Self::TooLong => write!(f, "password must be at most {MAX_PASSWORD_CHARS} characters"),
        }
    }
}

/// Checks a new password's length in the characters typed, then NFKC-normalises it for
/// hashing. Never truncates.
pub fn normalize(password: &SecretString) -> Result<SecretString, PasswordRuleError> {
    let raw = password.expose_secret();
    if raw.len() > MAX_RULE_BYTES {
        return Err(PasswordRuleError::TooLong);
    }
    match raw.chars().count() {
        n if n < MIN_PASSWORD_CHARS => Err(PasswordRuleError::TooShort),
        n if n > MAX_PASSWORD_CHARS => Err(PasswordRuleError::TooLong),
        _ => nfkc_within_limit(password),
    }
}

/// The bounds alone, which keep normalising and hashing cheap; logins apply only them.
fn nfkc_within_limit(password: &SecretString) -> Result<SecretString, PasswordRuleError> {
    let raw = password.expose_secret();
    if raw.len() > MAX_RAW_PASSWORD_BYTES {
        return Err(PasswordRuleError::TooLong);
    }
    let normalized: String = raw.nfkc().collect();
    if normalized.len() > MAX_NORMALIZED_PASSWORD_BYTES {
        return Err(PasswordRuleError::TooLong);
    }
    Ok(SecretString::from(normalized))
}

#[derive(Clone)]
pub struct PasswordHasherConfig {
    params: Params,
    /// Verified against when the username is unknown, so that both failures cost the same.
    dummy_hash: String,
}

/// Argon2 working memory, kept by each hashing thread so that a hash costs no allocation
/// and no page faults (at the default cost it is 19 MiB).
pub type Memory = Vec<Block>;

impl PasswordHasherConfig {
    pub fn new(settings: &Argon2Settings) -> Result<Self, argon2::Error> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)?;
        let mut config = Self { params, dummy_hash: String::new() };
        config.dummy_hash = config
            .hash(&SecretString::from("tollgate dummy password for unknown users"), &mut Memory::new())
            .map_err(|_| argon2::Error::AlgorithmInvalid)?;
        Ok(config)
    }

    /// Hashes a password that passed [`normalize`] into a PHC string.
    pub fn hash(&self, password: &SecretString, memory: &mut Memory) -> Result<String, password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            compute(
                &self.params,
                Version::V0x13,
                password.expose_secret().as_bytes(),
                salt_bytes,
                out,
                memory,
            )
        })?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Verifies a login attempt. `stored` is `None` for an unknown user: the dummy hash is
    /// checked instead and the answer is always no. So it is for an account that cannot log
    /// in ([`NO_PASSWORD`], Django's unusable `!…`, a hash tollgate refuses), which
    /// therefore costs the same time as any other.
    ///
    /// A hash imported from Django is checked as Django checks it: the raw password, not
    /// normalised, and without the minimum length (a rule for new passwords only). When it
    /// matches, the password is hashed again as argon2id, for the caller to store instead.
    pub fn verify(&self, password: &SecretString, stored: Option<&str>, memory: &mut Memory) -> Verified {
        let Ok(normalized) = nfkc_within_limit(password) else {
            return Verified::No;
        };
        let argon2 = |phc: &str, memory: &mut Memory| {
            verify_phc(normalized.expose_secret().as_bytes(), phc, memory).unwrap_or_else(|e| {
                log::error!("stored password hash is unusable: {e}");
                false
            })
        };
        match stored.map(StoredHash::of) {
            Some(StoredHash::Argon2id(phc)) => {
                if argon2(phc, memory) {
                    Verified::Yes
                } else {
                    Verified::No
                }
            }
            Some(StoredHash::Django(hash)) => {
                if !hash.verify(password.expose_secret()) {
                    return Verified::No;
                }
                match self.hash(&normalized, memory) {
                    Ok(rehashed) => Verified::YesRehashed(rehashed),
                    Err(e) => {
                        log::error!("could not re-hash an imported password: {e}");
                        Verified::Yes
                    }
                }
            }
            None | Some(StoredHash::CannotLogIn) => {
                argon2(&self.dummy_hash, memory);
                Verified::No
            }
        }
    }
}

/// The outcome of a password check.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Right, against a hash imported from Django: this argon2id hash is to replace it.
    YesRehashed(String),
}

impl Verified {
    pub fn matches(&self) -> bool {
        !matches!(self, Verified::No)
    }
}

/// What a `password_hash` column holds.
enum StoredHash<'a> {
    /// tollgate's own PHC string (`$argon2id$…`).
    Argon2id(&'a str),
    /// A hash imported from Django (`<algorithm>$…`), which never starts with `$`.
    Django(DjangoHash),
    /// No password ([`NO_PASSWORD`], Django's unusable `!…`) or a hash tollgate refuses.
    CannotLogIn,
}

impl<'a> StoredHash<'a> {
    fn of(stored: &'a str) -> Self {
        if stored.starts_with('$') {
            return StoredHash::Argon2id(stored);
        }
        match DjangoHash::parse(stored) {
            Ok(hash) => StoredHash::Django(hash),
            Err(DjangoHashError::Unusable) => StoredHash::CannotLogIn,
            Err(e) => {
                // The import refuses these, so one here was written by something else.
                log::warn!("stored password hash cannot be verified: {e}");
                StoredHash::CannotLogIn
            }
        }
    }
}

/// Checks a password against a PHC string. The cost parameters come from the stored
/// hash, so raising the configured cost never locks out existing users.
fn verify_phc(password: &[u8], phc: &str, memory: &mut Memory) -> Result<bool, password_hash::Error> {
    let parsed = PasswordHash::new(phc)?;
    if Algorithm::try_from(parsed.algorithm)? != Algorithm::Argon2id {
        return Err(password_hash::Error::Algorithm);
    }
    let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let salt = parsed
        .salt
        .ok_or(password_hash::Error::SaltInvalid(password_hash::errors::InvalidValue::Malformed))?;
    let expected = parsed.hash.ok_or(password_hash::Error::Password)?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let output = Output::init_with(expected.len(), |out| {
        compute(&params, version, password, salt_bytes, out, memory)
    })?;
    // `Output` compares in constant time.
    Ok(output == expected)
}

fn compute(
    params: &Params,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Memory,
) -> Result<(), password_hash::Error> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Argon2::new(Algorithm::Argon2id, version, params.clone())
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .map_err(password_hash::Error::from)
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread stayed busy for the whole queue timeout, or the queue is full.
    #[error("password hashing overloaded")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

enum Job {
    Hash(SecretString, oneshot::Sender<Result<String, HashError>>),
    Verify(SecretString, Option<String>, oneshot::Sender<Result<Checked, HashError>>),
    /// Measures the [`FailureFloor`] (queued when it is armed at start).
    MeasureFloor,
}

/// A verification's outcome and when its thread began it: a failure is held until the
/// floor has passed since then. The time in the queue before is left out, as it does not
/// depend on the account.
#[derive(Debug)]
struct Checked {
    verified: Verified,
    started: Instant,
}

/// How long every failed password check takes at least, counted from when its hashing
/// thread takes it up, so that a wrong password answers no sooner than an unknown user,
/// whatever the stored hash's format and cost.
///
/// Off while only tollgate's argon2id hashes can be met: the unknown-user path verifies
/// against a dummy argon2id hash of the same cost, which is equal already. Armed at start
/// when the database holds an imported (Django) hash, else by the first one a login meets:
/// then the costliest verification the import accepts is measured, once, on a hashing thread
/// (each costly algorithm at its caps, [`DjangoHash::costliest`], and tollgate's own argon2id),
/// and the floor is that CPU time and a quarter more.
///
/// The floor is waited out by a timer, not burnt as work: an unknown user still costs one
/// argon2 of CPU and a wrong pbkdf2 password its pbkdf2, and no hashing thread sleeps, so
/// the floor costs a login flood nothing but the latency of its failures. What stays
/// visible is only what the floor does not cover: the first failure of an account met
/// when the floor was off is answered after the measurement (a second or two), and on a
/// machine so loaded that a verification's wall time overruns the floor (which is
/// measured in CPU time) it takes its own time.
pub struct FailureFloor {
    state: watch::Sender<Floor>,
    /// What the measurement took for each verification it ran.
    measured: Mutex<Vec<(&'static str, Duration)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    Off,
    /// Being measured: a failure waits for the outcome.
    Measuring,
    On(Duration),
}

impl Floor {
    /// When a failure whose check started at `started` may be answered.
    pub fn until(self, started: Instant) -> Option<Instant> {
        match self {
            Floor::On(floor) => Some(started + floor),
            Floor::Off | Floor::Measuring => None,
        }
    }
}

impl FailureFloor {
    fn new() -> Self {
        Self { state: watch::Sender::new(Floor::Off), measured: Mutex::new(Vec::new()) }
    }

    pub fn get(&self) -> Floor {
        *self.state.borrow()
    }

    /// Off becomes Measuring; true for the one caller that must now measure.
    fn arm(&self) -> bool {
        self.state.send_if_modified(|floor| {
            let off = *floor == Floor::Off;
            if off {
                *floor = Floor::Measuring;
            }
            off
        })
    }

    /// The floor once it is known (waiting out a measurement under way).
    async fn settled(&self) -> Floor {
        let mut state = self.state.subscribe();
        let settled = state.wait_for(|floor| *floor != Floor::Measuring).await.map(|floor| *floor);
        settled.unwrap_or(Floor::Off)
    }

    /// Times one verification of each costliest hash (and of tollgate's own argon2id) on
    /// this hashing thread, and sets the floor to the longest and a quarter more.
    ///
    /// In CPU time, not wall time: what a verification costs, whatever else the machine
    /// does meanwhile. A hashing thread runs at idle priority, so on a busy machine the
    /// wall time of a measurement may be many times its cost, and a floor made of it
    /// would keep every failure waiting that long after the load has gone.
    fn measure(&self, hasher: &PasswordHasherConfig, memory: &mut Memory) {
        let wrong = SecretString::from("not the password of any hash measured");
        let timed = |what: &'static str, verify: &mut dyn FnMut() -> bool| {
            let started = thread_cpu_time();
            std::hint::black_box(verify());
            (what, thread_cpu_time().saturating_sub(started))
        };
        let mut measured = vec![timed("argon2id", &mut || {
            hasher.verify(&wrong, Some(&hasher.dummy_hash), memory).matches()
        })];
        for hash in DjangoHash::costliest() {
            measured.push(timed(hash.algorithm().name(), &mut || hash.verify(wrong.expose_secret())));
        }
        let (what, longest) =
            measured.iter().copied().max_by_key(|(_, took)| *took).unwrap_or(("nothing", Duration::ZERO));
        let floor = longest + longest / 4;
        log::info!(
            "imported password hashes are in use: a failed login now answers no sooner than {} ms after its \
             check began (the costliest accepted, {what}, took {} ms)",
            floor.as_millis(),
            longest.as_millis()
        );
        *self.measured.lock().unwrap_or_else(|p| p.into_inner()) = measured;
        self.state.send_replace(Floor::On(floor));
    }

    /// What the last measurement took, verification by verification.
    pub fn measured(&self) -> Vec<(&'static str, Duration)> {
        self.measured.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, initialised timespec that outlives the call, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every Linux has.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if result != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Whether a `password_hash` column holds a hash imported from Django (usable or not):
/// tollgate's own start with `$`, and accounts without a password are `!…`.
pub fn is_imported_hash(stored: &str) -> bool {
    !stored.is_empty() && !stored.starts_with('$') && !stored.starts_with('!')
}

/// Where argon2 runs: `max_concurrent` dedicated threads, each with its own working
/// memory, in the idle scheduling class (below the HTTP workers). Memory is therefore
/// bounded (threads × cost), and a login flood takes only the CPU that token checks leave
/// idle. Jobs wait in a bounded queue; one that waited longer than the queue timeout, or
/// that finds the queue full, is refused with 503 `overloaded` instead of being hashed.
pub struct Passwords {
    /// Each job with when it was queued and the log span (the request) it belongs to.
    jobs: SyncSender<(Instant, Span, Job)>,
    waiting: Arc<AtomicUsize>,
    floor: Arc<FailureFloor>,
}

/// Queued jobs per hashing thread; beyond this, waiting would only time out anyway.
const WAITING_PER_THREAD: usize = 32;

impl Passwords {
    /// Starts the hashing threads. `imported_hashes`: whether the database holds hashes
    /// imported from Django, which arms the [`FailureFloor`] from the start.
    pub fn start(settings: &Argon2Settings, imported_hashes: bool) -> Result<Self, argon2::Error> {
        let hasher = Arc::new(PasswordHasherConfig::new(settings)?);
        let (jobs, queue) =
            sync_channel::<(Instant, Span, Job)>(settings.max_concurrent * WAITING_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        let waiting = Arc::new(AtomicUsize::new(0));
        let floor = Arc::new(FailureFloor::new());
        for index in 0..settings.max_concurrent {
            let (hasher, queue, waiting, floor) =
                (hasher.clone(), queue.clone(), waiting.clone(), floor.clone());
            let queue_timeout = settings.queue_timeout;
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory = Memory::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((queued_at, span, job)) = next else { return };
                        let _span = span.enter();
                        waiting.fetch_sub(1, Ordering::AcqRel);
                        let stale = queued_at.elapsed() > queue_timeout;
                        run_job(&hasher, &floor, job, stale, &mut memory);
                    }
                })
                .map_err(|_| argon2::Error::ThreadsTooMany)?;
        }
        let passwords = Self { jobs, waiting, floor };
        if imported_hashes && passwords.floor.arm() {
            passwords.submit(Job::MeasureFloor).map_err(|_| argon2::Error::ThreadsTooMany)?;
        }
        Ok(passwords)
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash(password, reply))?;
        answer.await.map_err(|_| HashError::Failed("hashing thread stopped".into()))?
    }

    /// Checks a password (see [`PasswordHasherConfig::verify`]); a failure answers only
    /// once the [`FailureFloor`] has passed.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verified, HashError> {
        let (verified, until) = self.check(password, stored).await?;
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
        Ok(verified)
    }

    /// [`Passwords::verify`] without the wait: the outcome, and for a failure when the
    /// floor allows it to be answered.
    pub async fn check(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<(Verified, Option<Instant>), HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify(password, stored, reply))?;
        let Checked { verified, started } =
            answer.await.map_err(|_| HashError::Failed("hashing thread stopped".into()))??;
        let until = match verified {
            Verified::No => self.floor.settled().await.until(started),
            _ => None,
        };
        Ok((verified, until))
    }

    pub fn failure_floor(&self) -> &FailureFloor {
        &self.floor
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.jobs.try_send((Instant::now(), Span::current(), job)).map_err(|e| {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            match e {
                TrySendError::Full(_) => overloaded(),
                TrySendError::Disconnected(_) => HashError::Failed("hashing threads stopped".into()),
            }
        })
    }

    /// Jobs waiting for a hashing thread now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

fn overloaded() -> HashError {
    log::warn!("password hashing overloaded; request refused");
    HashError::Overloaded
}

fn run_job(hasher: &PasswordHasherConfig, floor: &FailureFloor, job: Job, stale: bool, memory: &mut Memory) {
    // A stale job is refused; one whose client has gone is dropped unanswered.
    match job {
        Job::Hash(_, reply) if stale => drop(reply.send(Err(overloaded()))),
        Job::Verify(_, _, reply) if stale => drop(reply.send(Err(overloaded()))),
        Job::Hash(_, reply) if reply.is_closed() => {}
        Job::Verify(_, _, reply) if reply.is_closed() => {}
        Job::Hash(password, reply) => {
            let hashed =
                hasher.hash(&password, memory).map_err(|e| HashError::Failed(format!("argon2: {e}")));
            let _ = reply.send(hashed);
        }
        Job::Verify(password, stored, reply) => {
            let started = Instant::now();
            let verified = hasher.verify(&password, stored.as_deref(), memory);
            // Armed before the answer goes, so that this failure too waits for the floor.
            let measure = stored.as_deref().is_some_and(is_imported_hash) && floor.arm();
            let _ = reply.send(Ok(Checked { verified, started }));
            if measure {
                floor.measure(hasher, memory);
            }
        }
        Job::MeasureFloor => floor.measure(hasher, memory),
    }
}

/// Puts the calling thread in Linux's `SCHED_IDLE` class: it runs only on CPU time no
/// other thread wants, so token checks are never queued behind a hash, yet an otherwise
/// idle machine hashes at full speed.
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid, initialised struct that
    // outlives the call.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if result != 0 {
        log::debug!("could not lower the priority of a hashing thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasherConfig {
        PasswordHasherConfig::new(&Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
            queue_timeout: std::time::Duration::ZERO,
        })
        .unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn length_is_counted_in_the_characters_typed_not_after_nfkc() {
        assert_eq!(normalize(&secret("1234567")).unwrap_err(), PasswordRuleError::TooShort);
        assert!(normalize(&secret("12345678")).is_ok());
        // Eight characters of four bytes each.
        assert!(normalize(&secret("🔑🔑🔑🔑🔑🔑🔑🔑")).is_ok());
        assert!(normalize(&secret(&"é".repeat(MAX_PASSWORD_CHARS))).is_ok());
        assert_eq!(
            normalize(&secret(&"a".repeat(MAX_PASSWORD_CHARS + 1))).unwrap_err(),
            PasswordRuleError::TooLong
        );
        // One typed character that NFKC makes 18 (ARABIC LIGATURE SALLALLAHOU ALAYHE
        // WASALLAM), and four that it makes eight (a space and a combining cedilla each).
        for short in ["\u{FDFA}", "¸¸¸¸", "\u{FDFA}\u{FDFA}\u{FDFA}\u{FDFA}\u{FDFA}\u{FDFA}\u{FDFA}"] {
            assert!(short.nfkc().count() >= MIN_PASSWORD_CHARS, "{short:?} is short only as typed");
            assert_eq!(normalize(&secret(short)).unwrap_err(), PasswordRuleError::TooShort, "{short:?}");
        }
        assert!(normalize(&secret(&"\u{FDFA}".repeat(MIN_PASSWORD_CHARS))).is_ok());
        // Eight typed characters that NFKC composes into four still pass: they were typed.
        assert_eq!(normalize(&secret("e\u{301}e\u{301}e\u{301}e\u{301}")).unwrap().expose_secret(), "éééé");
        // The fullwidth form normalises to ASCII, so both spellings are one password.
        assert_eq!(normalize(&secret("ｐａｓｓｗｏｒｄ")).unwrap().expose_secret(), "password");
    }

    #[test]
    fn the_longest_expansion_of_the_longest_password_stays_under_the_hashing_cap() {
        // The premise of the cap, over every character there is: NFKD (which NFKC only
        // shortens) makes at most 18 characters of one.
        let longest = (0..=char::MAX as u32)
            .filter_map(char::from_u32)
            .map(|c| std::iter::once(c).nfkd().count())
            .max()
            .unwrap();
        assert_eq!(longest, 18);
        let worst = "\u{FDFA}".repeat(MAX_PASSWORD_CHARS);
        let normalized = normalize(&secret(&worst)).unwrap();
        assert_eq!(normalized.expose_secret().chars().count(), 18 * MAX_PASSWORD_CHARS);
        assert!(normalized.expose_secret().len() <= MAX_NORMALIZED_PASSWORD_BYTES);
        // A login's raw input may be longer than any rule allows, but what it hashes is capped.
        let flood = "\u{FDFA}".repeat(MAX_RAW_PASSWORD_BYTES / 3);
        assert_eq!(nfkc_within_limit(&secret(&flood)).unwrap_err(), PasswordRuleError::TooLong);
    }

    #[test]
    fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let (hasher, memory) = (cheap(), &mut Memory::new());
        let hash = hasher.hash(&secret("correct horse"), memory).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(hasher.verify(&secret("correct horse"), Some(&hash), memory), Verified::Yes);
        assert_eq!(hasher.verify(&secret("correct horsf"), Some(&hash), memory), Verified::No);
        assert_eq!(hasher.verify(&secret("correct horse"), None, memory), Verified::No);
        assert_eq!(hasher.verify(&secret("correct horse"), Some(NO_PASSWORD), memory), Verified::No);
    }

    #[test]
    fn hashes_agree_with_the_reference_implementation_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let (hasher, memory) = (cheap(), &mut Memory::new());
        let ours = hasher.hash(&secret("correct horse"), memory).unwrap();
        let reference = Argon2::default();
        assert!(reference.verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
        // A stored hash of other costs (the crate's defaults) verifies with its own costs.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = reference.hash_password(b"battery staple", &salt).unwrap().to_string();
        assert!(hasher.verify(&secret("battery staple"), Some(&theirs), memory).matches());
        assert!(!hasher.verify(&secret("battery stapler"), Some(&theirs), memory).matches());
        // Argon2i and garbage are refused, never a panic.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default());
        let argon2i = argon2i.hash_password(b"battery staple", &salt).unwrap().to_string();
        assert!(!hasher.verify(&secret("battery staple"), Some(&argon2i), memory).matches());
        assert!(!hasher.verify(&secret("battery staple"), Some("$argon2id$v=19$garbage"), memory).matches());
    }

    fn cheap_settings() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
            // The measurement holds one thread for a few seconds on a busy machine.
            queue_timeout: std::time::Duration::from_secs(60),
        }
    }

    /// pbkdf2_sha256 at 1000 iterations of "pbkdf2 password" (tests/api/import.rs).
    const PBKDF2: &str =
        "pbkdf2_sha256$1000$WDB1qiaJxU3HEMx4HtobrY$7ulBAGeIbKJ3qM6FNxTaEJsHvwWhFznyjhR3WYF4qmY=";

    /// Checks `password` against `stored` and returns the outcome with how long after the
    /// call at least, and at most, the floor holds it (`None`: not held).
    async fn checked(
        passwords: &Passwords,
        password: &str,
        stored: Option<&str>,
    ) -> (Verified, Option<(Duration, Duration)>) {
        let before = Instant::now();
        let (verified, until) = passwords.check(secret(password), stored.map(str::to_owned)).await.unwrap();
        let after = Instant::now();
        // The check started between the call and its answer, so the hold ends a floor after.
        (verified, until.map(|until| (until.saturating_duration_since(after), until - before)))
    }

    fn on(passwords: &Passwords) -> Duration {
        match passwords.failure_floor().get() {
            Floor::On(floor) => floor,
            other => panic!("the floor is {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_an_imported_hash_is_met_every_failure_is_held_to_the_costliest_verification() {
        let passwords = Passwords::start(&cheap_settings(), false).unwrap();
        let argon2 = passwords.hash(secret("correct horse")).await.unwrap();
        // Only argon2id about: an unknown user costs a dummy of the same kind, unheld.
        assert_eq!(checked(&passwords, "correct horse", None).await, (Verified::No, None));
        assert_eq!(checked(&passwords, "wrong horse", Some(&argon2)).await, (Verified::No, None));
        assert_eq!(passwords.failure_floor().get(), Floor::Off);

        // The first imported hash arms the floor, and its own failure waits for it.
        let (verified, held) = checked(&passwords, "wrong password", Some(PBKDF2)).await;
        assert_eq!(verified, Verified::No);
        let floor = on(&passwords);
        let (_, at_most) = held.expect("held");
        assert!(at_most >= floor, "held {at_most:?}, floor {floor:?}");
        // The floor is the costliest verification the import accepts, measured at the caps,
        // and a quarter more.
        let measured = passwords.failure_floor().measured();
        let names: Vec<&str> = measured.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["argon2id", "pbkdf2_sha256", "argon2", "bcrypt_sha256", "scrypt"]);
        let longest = measured.iter().map(|(_, took)| *took).max().unwrap();
        assert_eq!(floor, longest + longest / 4);

        // Now every failure is held to that one floor, whatever it was checked against.
        for stored in
            [None, Some(PBKDF2), Some(argon2.as_str()), Some(NO_PASSWORD), Some("bcrypt$$2b$16$nope")]
        {
            let (verified, held) = checked(&passwords, "wrong password", stored).await;
            assert_eq!(verified, Verified::No, "{stored:?}");
            let (at_least, at_most) = held.unwrap_or_else(|| panic!("{stored:?} not held"));
            assert!(
                at_least <= floor && floor <= at_most,
                "{stored:?}: {at_least:?}..{at_most:?}, floor {floor:?}"
            );
        }
        // A success is not held: whoever has the password learns nothing from the time.
        assert_eq!(checked(&passwords, "correct horse", Some(&argon2)).await, (Verified::Yes, None));
        let (verified, held) = checked(&passwords, "pbkdf2 password", Some(PBKDF2)).await;
        assert!(matches!(verified, Verified::YesRehashed(_)) && held.is_none());
        // Measured once.
        assert_eq!(passwords.failure_floor().measured(), measured);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imported_hashes_in_the_database_arm_the_floor_from_the_start() {
        let passwords = Passwords::start(&cheap_settings(), true).unwrap();
        assert_ne!(passwords.failure_floor().get(), Floor::Off);
        // An unknown user is held even before any imported hash is met.
        let (verified, held) = checked(&passwords, "wrong password", None).await;
        assert_eq!(verified, Verified::No);
        assert!(held.unwrap().1 >= on(&passwords));
        assert_eq!(passwords.failure_floor().measured().len(), 5);
    }

    #[test]
    fn hashes_over_the_caps_are_refused_at_login_without_being_run() {
        let (hasher, memory) = (cheap(), &mut Memory::new());
        let salt = "OHgz7He6zNR96yj7IvI43U";
        let over_caps = [
            format!("pbkdf2_sha256$10000000${salt}$//HCAbswegJqxsRc0u5U+jABpRzXKcFHkb/4BvpbZU8="),
            "bcrypt$$2b$16$xKBQzvXSAFN4jLNUheWdjeCzZqQQ.JoxiAtEb6DkW.QMXjkQ311hu".to_owned(),
        ];
        for stored in &over_caps {
            // Nothing is left to run: the parse refused it, so it cannot log in at all.
            assert!(matches!(StoredHash::of(stored), StoredHash::CannotLogIn), "{stored}");
            assert_eq!(hasher.verify(&secret("whatever it was"), Some(stored), memory), Verified::No);
            assert!(is_imported_hash(stored));
        }
        assert!(!is_imported_hash(NO_PASSWORD) && !is_imported_hash("!unusable") && !is_imported_hash(""));
        assert!(!is_imported_hash(&hasher.dummy_hash));
    }

    #[test]
    fn a_password_that_differs_after_the_1024th_character_is_a_different_password() {
        let (hasher, memory) = (cheap(), &mut Memory::new());
        let base = "x".repeat(MAX_PASSWORD_CHARS - 1);
        let hash = hasher.hash(&secret(&format!("{base}a")), memory).unwrap();
        assert!(!hasher.verify(&secret(&format!("{base}b")), Some(&hash), memory).matches());
    }
}
