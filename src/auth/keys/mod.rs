//! Signing keys: generated on first start, rotated in stages, published as a JWKS.
//!
//! Asymmetric keys live in `JWT_KEYS_DIR` as PKCS#8 PEM files, mode 0600. The first key of
//! an algorithm is `<alg>.pem` (e.g. `eddsa.pem`); keys made by `tollgate keys rotate` are
//! `<activate_at>.<alg>.pem`, where `activate_at` (unix seconds) is when the key starts
//! signing. Every state follows from those times, so instances sharing the directory
//! agree without coordinating:
//!
//! - **pending**: `activate_at` is in the future. Published in the JWKS, so consumer
//!   caches have it before the first token it signs, but not signing yet.
//! - **active**: the newest key whose `activate_at` has passed. Signs new tokens.
//! - **verifying**: superseded, but a token it signed may still be live: published and
//!   accepted until its successor's `activate_at` + access token TTL + leeway.
//! - **retired**: after that. Neither published nor accepted; `keys rotate` deletes it.
//!
//! The [`KeyRing`] holds those times: the keys that sign, verify and are published are
//! picked by the clock at each use, not when the directory was last read.
//!
//! Files are published by an exclusive hard link, so instances starting together on an
//! empty directory agree on one first key. Keys of another algorithm than
//! `JWT_ALGORITHM` are ignored.

mod jwk;
mod lifecycle;
mod secret;
mod signer;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use secrecy::SecretSlice;
use tollgate_verify::VerificationKey;
pub use tollgate_verify::algorithm_name;

pub use self::lifecycle::KeyState;
use self::lifecycle::timeline;
pub use self::signer::Signer;
use self::store::KeyDir;
use crate::clock::Clock;
use crate::config::JwtSettings;

/// How often running servers look at the key directory for added or deleted key files
/// (the contract allows 5 s). States change with time alone, without a look.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The key that signs new access tokens.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    /// Parsed when the key file was read, not for each signature.
    pub signer: Arc<Signer>,
}

/// The keys in force during one stretch of time.
pub struct KeySet {
    pub signing: SigningKey,
    /// Keys that may verify a token, by `kid`; tokens are never verified by any other key.
    pub verifying: HashMap<String, VerificationKey>,
    /// The JWKS document: public keys only; empty under HS256.
    pub jwks: Vec<u8>,
}

/// The key timeline, as the key directory held it at the last reload: the [`KeySet`] of
/// every stretch between two state changes (a key activates, a superseded key retires)
/// from then on. The set is picked by the time of each use, so states change at their
/// times exactly; only a change of the directory rebuilds the ring.
pub struct KeyRing {
    /// By start time; the first one also holds for any time before the next.
    windows: Vec<Window>,
    /// `(kid, activate_at)` of the keys it was built from: a reload that finds the same
    /// keys keeps the ring.
    files: Vec<(String, i64)>,
}

struct Window {
    from: i64,
    keys: KeySet,
}

impl KeyRing {
    /// The keys in force at `now` (unix seconds): a binary search among a few windows.
    pub fn at(&self, now: i64) -> &KeySet {
        &self.windows[self.index_at(now)].keys
    }

    fn index_at(&self, now: i64) -> usize {
        self.windows.partition_point(|window| window.from <= now).saturating_sub(1)
    }
}

/// The [`KeySet`] in force at one moment, holding the ring it comes from.
pub struct KeysInForce {
    ring: Arc<KeyRing>,
    index: usize,
}

impl std::ops::Deref for KeysInForce {
    type Target = KeySet;

    fn deref(&self) -> &KeySet {
        &self.ring.windows[self.index].keys
    }
}

/// One key of the directory, as `tollgate keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: Algorithm,
    pub state: KeyState,
    /// When it starts (or started) signing; 0 for a directory's first key.
    pub activate_at: i64,
    /// When the file was written.
    pub created_at: i64,
    pub file: PathBuf,
}

/// What can go wrong with the key store, at start-up or while running.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} vanished", .0.display())]
    Vanished(PathBuf),
    #[error("cannot use the key in {}: {problem}", file.display())]
    BadKey { file: PathBuf, problem: String },
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("no key is active (is the first key missing?)")]
    NoActiveKey,
    #[error("HS256 needs JWT_SECRET")]
    MissingSecret,
    #[error("HS256 has no key store to rotate; change JWT_SECRET instead")]
    NoKeyDirectory,
}

impl KeyStoreError {
    fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { action, path: path.to_owned(), source }
    }

    fn vanished(path: &std::path::Path) -> Self {
        Self::Vanished(path.to_owned())
    }

    /// The setting an operator should look at.
    pub fn variable(&self) -> &'static str {
        match self {
            Self::MissingSecret => "JWT_SECRET",
            Self::NoKeyDirectory => "JWT_ALGORITHM",
            _ => "JWT_KEYS_DIR",
        }
    }
}

enum Source {
    /// With the key derived from `JWT_SECRET` for TOTP secrets.
    Secret(SigningKey, VerificationKey, SecretSlice<u8>),
    Dir {
        keys: KeyDir,
        retire_after_secs: i64,
    },
}

/// The signing and verification keys of this process, kept current with the key store.
pub struct KeyStore {
    source: Source,
    clock: Clock,
    ring: RwLock<Arc<KeyRing>>,
    /// The signing key and the number of published keys last logged.
    announced: Mutex<(String, usize)>,
    /// Keys the deterministic refresh-token successor (HMAC of the old token).
    pub refresh_secret: SecretSlice<u8>,
}

impl KeyStore {
    /// The key that encrypts TOTP secrets: `mfa-key` beside the signing keys (made on first
    /// use unless `enrolled`: factors encrypted under it exist, and a new key would lock
    /// them out), or derived from `JWT_SECRET` under HS256. Never in the database.
    pub fn mfa_key(&self, enrolled: bool) -> Result<SecretSlice<u8>, KeyStoreError> {
        match &self.source {
            Source::Secret(_, _, key) => Ok(key.clone()),
            Source::Dir { keys, .. } => secret::mfa_key_file(&keys.dir, !enrolled),
        }
    }

    /// Opens the key store, creating the first key (and the refresh secret) if needed.
    pub fn open(settings: &JwtSettings, clock: Clock) -> Result<Self, KeyStoreError> {
        let (source, refresh_secret) = match settings.algorithm {
            Algorithm::HS256 => {
                let jwt_secret = settings.secret.as_ref().ok_or(KeyStoreError::MissingSecret)?;
                let (signing, verification, refresh_secret) = secret::from_jwt_secret(jwt_secret);
                let mfa_key = secret::mfa_key_of_jwt_secret(jwt_secret);
                (Source::Secret(signing, verification, mfa_key), refresh_secret)
            }
            algorithm => {
                let keys = KeyDir::open(settings.keys_dir.clone(), algorithm)?;
                let refresh_secret = secret::refresh_secret_file(&keys.dir)?;
                let retire_after_secs = (settings.access_token_ttl_secs + settings.leeway_secs) as i64;
                (Source::Dir { keys, retire_after_secs }, refresh_secret)
            }
        };
        let now = clock.unix();
        let ring = build_ring(&source, now)?;
        let in_force = ring.at(now);
        let announced = Mutex::new((in_force.signing.kid.clone(), in_force.verifying.len()));
        Ok(Self { source, clock, ring: RwLock::new(Arc::new(ring)), announced, refresh_secret })
    }

    /// The keys in force now, by the clock: picked at each call (no I/O, no allocation),
    /// so a key signs from its `activate_at` on and retires on time without a reload.
    pub fn ring(&self) -> KeysInForce {
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner()).clone();
        let index = ring.index_at(self.clock.unix());
        KeysInForce { ring, index }
    }

    /// Re-reads the key directory; a ring is rebuilt only when its keys changed.
    pub fn reload(&self) -> Result<(), KeyStoreError> {
        let ring = build_ring(&self.source, self.clock.unix())?;
        let changed = ring.files != self.ring.read().unwrap_or_else(|p| p.into_inner()).files;
        if changed {
            *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        }
        self.announce();
        Ok(())
    }

    /// Logs the keys in force when they differ from the last ones logged: called at each
    /// look at the directory, so a change that time alone made is logged within a second.
    fn announce(&self) {
        let in_force = self.ring();
        let (kid, published) = (&in_force.signing.kid, in_force.verifying.len());
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if (&announced.0, announced.1) != (kid, published) {
            log::info!("signing key {kid} in force; JWKS has {published} key(s)");
            *announced = (kid.clone(), published);
        }
    }

    /// Keeps the ring current in the background, so that rotations made by
    /// `tollgate keys rotate` (or another instance) take effect without a restart.
    pub fn watch(self: &Arc<Self>) {
        if matches!(self.source, Source::Secret(..)) {
            return;
        }
        let store: Weak<Self> = Arc::downgrade(self);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(WATCH_INTERVAL);
                let Some(store) = store.upgrade() else { return };
                if let Err(e) = store.reload() {
                    log::error!("key store: {e}");
                }
            }
        });
    }

    /// Every key of the directory with its state now (empty under HS256).
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        Ok(timeline_of(&self.source, self.clock.unix())?
            .into_iter()
            .map(|(key, state)| key.info(state))
            .collect())
    }

    /// Adds a key that starts signing `publish_ahead_secs` from now and is published at
    /// once; deletes keys that have retired.
    pub fn rotate(&self, publish_ahead_secs: u64) -> Result<KeyInfo, KeyStoreError> {
        let Source::Dir { keys, .. } = &self.source else {
            return Err(KeyStoreError::NoKeyDirectory);
        };
        let now = self.clock.unix();
        for (key, state) in timeline_of(&self.source, now)? {
            if state == KeyState::Retired {
                std::fs::remove_file(&key.file)
                    .map_err(|e| KeyStoreError::io("cannot delete", &key.file, e))?;
                log::info!("deleted retired key {}", key.kid);
            }
        }
        let file = keys.create_key(now + publish_ahead_secs as i64)?;
        self.reload()?;
        let info = self.list()?.into_iter().find(|k| k.file == file);
        info.ok_or_else(|| KeyStoreError::vanished(&file))
    }
}

/// The directory's keys with their states at `now` (empty under HS256).
fn timeline_of(source: &Source, now: i64) -> Result<Vec<(Arc<jwk::KeyMaterial>, KeyState)>, KeyStoreError> {
    match source {
        Source::Secret(..) => Ok(Vec::new()),
        Source::Dir { keys, retire_after_secs } => Ok(timeline(keys.keys()?, now, *retire_after_secs)),
    }
}

/// The ring from `now` on: the keys in force at `now`, then at each later time a state
/// changes. Under HS256, one secret for all time.
fn build_ring(source: &Source, now: i64) -> Result<KeyRing, KeyStoreError> {
    let (keys, retire_after_secs) = match source {
        Source::Secret(signing, verification, _) => {
            let keys = KeySet {
                signing: signing.clone(),
                verifying: HashMap::from([(signing.kid.clone(), verification.clone())]),
                jwks: jwks_document(JwkSet::default()),
            };
            return Ok(KeyRing { windows: vec![Window { from: i64::MIN, keys }], files: Vec::new() });
        }
        Source::Dir { keys, retire_after_secs } => (keys.keys()?, *retire_after_secs),
    };
    // A key's activation makes it active and the key before it verifying; that one
    // retires once `retire_after_secs` have passed (see `timeline`).
    let mut changes: Vec<i64> = keys
        .iter()
        .flat_map(|key| {
            [key.activate_at, key.activate_at.saturating_add(retire_after_secs).saturating_add(1)]
        })
        .filter(|at| *at > now)
        .collect();
    changes.sort_unstable();
    changes.dedup();
    let starts = std::iter::once((i64::MIN, now)).chain(changes.into_iter().map(|at| (at, at)));
    let windows = starts
        .map(|(from, at)| Ok(Window { from, keys: key_set(timeline(keys.clone(), at, retire_after_secs))? }))
        .collect::<Result<_, KeyStoreError>>()?;
    let mut files: Vec<(String, i64)> = keys.iter().map(|key| (key.kid.clone(), key.activate_at)).collect();
    files.sort();
    Ok(KeyRing { windows, files })
}

/// The keys in force when the keys have the states of `timeline`.
fn key_set(timeline: Vec<(Arc<jwk::KeyMaterial>, KeyState)>) -> Result<KeySet, KeyStoreError> {
    let live: Vec<&jwk::KeyMaterial> =
        timeline.iter().filter(|(_, s)| *s != KeyState::Retired).map(|(k, _)| k.as_ref()).collect();
    let (active, _) =
        timeline.iter().find(|(_, state)| *state == KeyState::Active).ok_or(KeyStoreError::NoActiveKey)?;
    Ok(KeySet {
        signing: SigningKey {
            kid: active.kid.clone(),
            algorithm: active.algorithm,
            signer: active.signer.clone(),
        },
        verifying: live.iter().map(|k| (k.kid.clone(), k.verification.clone())).collect(),
        jwks: jwks_document(JwkSet { keys: live.iter().map(|k| k.jwk.clone()).collect() }),
    })
}

impl jwk::KeyMaterial {
    fn info(&self, state: KeyState) -> KeyInfo {
        KeyInfo {
            kid: self.kid.clone(),
            algorithm: self.algorithm,
            state,
            activate_at: self.activate_at,
            created_at: self.created_at,
            file: self.file.clone(),
        }
    }
}

fn jwks_document(set: JwkSet) -> Vec<u8> {
    serde_json::to_vec(&set).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use secrecy::ExposeSecret;
    use serde_json::Value;

    use super::*;
    use crate::clock::ManualClock;

    fn settings(dir: &Path, algorithm: Algorithm) -> JwtSettings {
        JwtSettings {
            algorithm,
            secret: None,
            keys_dir: dir.to_owned(),
            issuer: "tollgate".into(),
            audience: "tollgate".into(),
            leeway_secs: 30,
            access_token_ttl_secs: 900,
            jwks_max_age_secs: 300,
            key_publish_ahead_secs: 300,
        }
    }

    fn open(settings: &JwtSettings) -> Result<KeyStore, KeyStoreError> {
        KeyStore::open(settings, Clock::system())
    }

    fn jwks(store: &KeyStore) -> Value {
        serde_json::from_slice(&store.ring().jwks).unwrap()
    }

    fn published(store: &KeyStore) -> Vec<String> {
        jwks(store)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn keys_persist_with_private_modes_and_a_stable_thumbprint_kid() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let dir = tempfile::tempdir().unwrap();
            let keys_dir = dir.path().join("keys");
            let first = open(&settings(&keys_dir, algorithm)).unwrap();
            let again = open(&settings(&keys_dir, algorithm)).unwrap();
            assert_eq!(first.ring().signing.kid, again.ring().signing.kid);
            assert_eq!(first.refresh_secret.expose_secret(), again.refresh_secret.expose_secret());
            assert_eq!(first.ring().signing.kid.len(), 43, "base64url of a SHA-256");
            assert_eq!(jwks(&first)["keys"][0]["kid"], first.ring().signing.kid);
            for entry in fs::read_dir(&keys_dir).unwrap() {
                let mode = entry.unwrap().metadata().unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            assert_eq!(fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
    }

    #[test]
    fn states_follow_from_activation_times() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&settings(dir.path(), Algorithm::EdDSA)).unwrap();
        let first = store.ring().signing.kid.clone();
        for at in [1_000, 2_000] {
            store::write_key_for_test(dir.path(), at, Algorithm::EdDSA);
        }
        // Retirement comes access TTL + leeway (930 s) after the successor activates.
        let states = |now| -> Vec<KeyState> {
            timeline_of(&store.source, now).unwrap().into_iter().map(|(_, state)| state).collect()
        };
        use KeyState::*;
        assert_eq!(states(999), [Active, Pending, Pending]);
        assert_eq!(states(1_000), [Verifying, Active, Pending]);
        assert_eq!(states(1_930), [Verifying, Active, Pending]);
        assert_eq!(states(1_931), [Retired, Active, Pending]);
        assert_eq!(states(2_000), [Retired, Verifying, Active]);
        assert_eq!(states(2_931), [Retired, Retired, Active]);
        assert_eq!(timeline_of(&store.source, 999).unwrap()[0].0.kid, first);
    }

    #[test]
    fn rotation_publishes_ahead_and_switches_signing_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&settings(dir.path(), Algorithm::ES256)).unwrap();
        let old = store.ring().signing.kid.clone();
        let new = store.rotate(300).unwrap();
        assert_eq!(new.state, KeyState::Pending);
        assert_ne!(new.kid, old);
        let ring = store.ring();
        assert_eq!(ring.signing.kid, old, "the new key does not sign before it activates");
        assert_eq!(published(&store), [old.as_str(), new.kid.as_str()]);
        assert!(ring.verifying.contains_key(&new.kid));
        let states: Vec<KeyState> = store.list().unwrap().iter().map(|k| k.state).collect();
        assert_eq!(states, [KeyState::Active, KeyState::Pending]);
    }

    #[test]
    fn time_alone_moves_the_keys_through_their_states() {
        let dir = tempfile::tempdir().unwrap();
        let manual = ManualClock::starting_at(chrono::DateTime::from_timestamp(10_000, 0).unwrap());
        let store = KeyStore::open(&settings(dir.path(), Algorithm::EdDSA), manual.clock()).unwrap();
        let old = store.ring().signing.kid.clone();
        let new = store.rotate(300).unwrap().kid;
        let step = |secs| manual.advance(Duration::from_secs(secs));
        // No reload from here on: only the clock moves.
        step(299);
        assert_eq!(store.ring().signing.kid, old);
        assert_eq!(published(&store), [old.as_str(), new.as_str()]);
        step(1);
        assert_eq!(store.ring().signing.kid, new, "signs from its activate_at");
        assert!(store.ring().verifying.contains_key(&old));
        // The old key's last token lives until 10_300 + 900 s TTL + 30 s leeway.
        step(930);
        assert_eq!(published(&store), [old.as_str(), new.as_str()]);
        step(1);
        assert_eq!(published(&store), [new.as_str()]);
        assert!(!store.ring().verifying.contains_key(&old), "retired on time");
        assert_eq!(store.ring().signing.kid, new);
    }

    #[test]
    fn a_corrupt_key_file_stops_start_up_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("eddsa.pem"), "not a key").unwrap();
        let err = open(&settings(dir.path(), Algorithm::EdDSA)).err().unwrap();
        assert_eq!(err.variable(), "JWT_KEYS_DIR");
    }
}
