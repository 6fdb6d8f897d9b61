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
//! Files are published by an exclusive hard link, so instances starting together on an
//! empty directory agree on one first key. Keys of another algorithm than
//! `JWT_ALGORITHM` are ignored.

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate_verify::VerificationKey;
pub use tollgate_verify::algorithm_name;

use crate::config::{ConfigError, JwtSettings};

const RSA_BITS: usize = 2048;
const REFRESH_SECRET_FILE: &str = "refresh-secret";
/// How often running servers look at the key directory (the contract allows 5 s).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The key that signs new access tokens.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
}

/// The keys in force at one moment; swapped whole when the key directory or time changes.
pub struct KeyRing {
    pub signing: SigningKey,
    /// Keys that may verify a token, by `kid`; tokens are never verified by any other key.
    pub verifying: HashMap<String, VerificationKey>,
    /// The JWKS document: public keys only; empty under HS256.
    pub jwks: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Pending,
    Active,
    Verifying,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Verifying => "verifying",
            KeyState::Retired => "retired",
        }
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

/// A key file read and parsed once.
struct KeyMaterial {
    kid: String,
    algorithm: Algorithm,
    activate_at: i64,
    created_at: i64,
    file: PathBuf,
    encoding: EncodingKey,
    verification: VerificationKey,
    jwk: Value,
}

enum Source {
    Secret(SigningKey, VerificationKey),
    Dir {
        dir: PathBuf,
        algorithm: Algorithm,
        retire_after_secs: i64,
        parsed: Mutex<HashMap<PathBuf, Arc<KeyMaterial>>>,
    },
}

/// The signing and verification keys of this process, kept current with the key store.
pub struct KeyStore {
    source: Source,
    ring: RwLock<Arc<KeyRing>>,
    /// Keys the deterministic refresh-token successor (HMAC of the old token).
    pub refresh_secret: SecretSlice<u8>,
}

fn key_error(problem: String) -> ConfigError {
    ConfigError { variable: "JWT_KEYS_DIR", problem }
}

impl KeyStore {
    /// Opens the key store, creating the first key (and the refresh secret) if needed.
    pub fn open(settings: &JwtSettings) -> Result<Self, ConfigError> {
        let (source, refresh_secret) = match settings.algorithm {
            Algorithm::HS256 => secret_source(settings),
            algorithm => {
                let dir = settings.keys_dir.clone();
                create_private_dir(&dir)?;
                let refresh_secret = load_or_create_file(&dir.join(REFRESH_SECRET_FILE), || {
                    let mut bytes = vec![0u8; 32];
                    OsRng.fill_bytes(&mut bytes);
                    Ok(bytes)
                })?;
                if refresh_secret.len() < 32 {
                    return Err(key_error(format!("{REFRESH_SECRET_FILE} is shorter than 32 bytes")));
                }
                let first = dir.join(format!("{}.pem", algorithm_name(algorithm).to_ascii_lowercase()));
                load_or_create_file(&first, || generate_pem(algorithm))?;
                let retire_after_secs = (settings.access_token_ttl_secs + settings.leeway_secs) as i64;
                let source = Source::Dir { dir, algorithm, retire_after_secs, parsed: Mutex::default() };
                (source, SecretSlice::from(refresh_secret))
            }
        };
        let ring = build_ring(&source, now())?;
        Ok(Self { source, ring: RwLock::new(Arc::new(ring)), refresh_secret })
    }

    /// The keys in force now.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the key directory and re-derives every key's state at the current time.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let ring = build_ring(&self.source, now())?;
        let changed = {
            let current = self.ring();
            current.signing.kid != ring.signing.kid || current.jwks != ring.jwks
        };
        if changed {
            log::info!("signing key {} in force; JWKS has {} key(s)", ring.signing.kid, ring.verifying.len());
            *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        }
        Ok(())
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
    pub fn list(&self) -> Result<Vec<KeyInfo>, ConfigError> {
        let Source::Dir { .. } = &self.source else { return Ok(Vec::new()) };
        Ok(timeline(&self.source, now())?.into_iter().map(|(key, state)| key.info(state)).collect())
    }

    /// Adds a key that starts signing `publish_ahead_secs` from now and is published at
    /// once; deletes keys that have retired.
    pub fn rotate(&self, publish_ahead_secs: u64) -> Result<KeyInfo, ConfigError> {
        let Source::Dir { dir, algorithm, .. } = &self.source else {
            return Err(ConfigError {
                variable: "JWT_ALGORITHM",
                problem: "HS256 has no key store to rotate; change JWT_SECRET instead".into(),
            });
        };
        for (key, state) in timeline(&self.source, now())? {
            if state == KeyState::Retired {
                fs::remove_file(&key.file)
                    .map_err(|e| key_error(format!("cannot delete {}: {e}", key.file.display())))?;
                log::info!("deleted retired key {}", key.kid);
            }
        }
        let activate_at = now() + publish_ahead_secs as i64;
        let file = dir.join(format!("{activate_at}.{}.pem", algorithm_name(*algorithm).to_ascii_lowercase()));
        load_or_create_file(&file, || generate_pem(*algorithm))?;
        self.reload()?;
        let info = self.list()?.into_iter().find(|k| k.file == file);
        info.ok_or_else(|| key_error(format!("{} vanished", file.display())))
    }
}

impl KeyMaterial {
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

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn secret_source(settings: &JwtSettings) -> (Source, SecretSlice<u8>) {
    let secret = settings.secret.as_ref().expect("validated by Settings").expose_secret().as_bytes();
    // Both values are derived one-way from the secret, so neither reveals it and every
    // instance sharing the secret derives the same ones.
    let kid = URL_SAFE_NO_PAD.encode(&hmac(secret, b"tollgate hs256 key id")[..16]);
    let signing = SigningKey { kid, algorithm: Algorithm::HS256, encoding: EncodingKey::from_secret(secret) };
    let verification = VerificationKey { algorithm: Algorithm::HS256, key: DecodingKey::from_secret(secret) };
    let refresh_secret = SecretSlice::from(hmac(secret, b"tollgate refresh successor"));
    (Source::Secret(signing, verification), refresh_secret)
}

/// The keys of the directory in activation order, each with its state at `now`.
fn timeline(source: &Source, now: i64) -> Result<Vec<(Arc<KeyMaterial>, KeyState)>, ConfigError> {
    let Source::Dir { dir, algorithm, retire_after_secs, parsed } = source else {
        return Ok(Vec::new());
    };
    let mut keys = read_key_dir(dir, *algorithm, parsed)?;
    keys.sort_by(|a, b| (a.activate_at, &a.kid).cmp(&(b.activate_at, &b.kid)));
    let activated: Vec<i64> = keys.iter().map(|k| k.activate_at).filter(|at| *at <= now).collect();
    let active_index = activated.len().checked_sub(1);
    Ok(keys
        .into_iter()
        .enumerate()
        .map(|(index, key)| {
            let state = if key.activate_at > now {
                KeyState::Pending
            } else if Some(index) == active_index {
                KeyState::Active
            } else {
                // The next key to activate ended this one's signing.
                let superseded_at = activated[index + 1];
                if now > superseded_at + retire_after_secs { KeyState::Retired } else { KeyState::Verifying }
            };
            (key, state)
        })
        .collect())
}

fn build_ring(source: &Source, now: i64) -> Result<KeyRing, ConfigError> {
    if let Source::Secret(signing, verification) = source {
        return Ok(KeyRing {
            signing: signing.clone(),
            verifying: HashMap::from([(signing.kid.clone(), verification.clone())]),
            jwks: json!({ "keys": [] }).to_string().into_bytes(),
        });
    }
    let keys = timeline(source, now)?;
    let live: Vec<&(Arc<KeyMaterial>, KeyState)> =
        keys.iter().filter(|(_, s)| *s != KeyState::Retired).collect();
    let (active, _) = keys
        .iter()
        .find(|(_, state)| *state == KeyState::Active)
        .ok_or_else(|| key_error("no key is active (is the first key missing?)".into()))?;
    Ok(KeyRing {
        signing: SigningKey {
            kid: active.kid.clone(),
            algorithm: active.algorithm,
            encoding: active.encoding.clone(),
        },
        verifying: live.iter().map(|(k, _)| (k.kid.clone(), k.verification.clone())).collect(),
        jwks: json!({ "keys": live.iter().map(|(k, _)| k.jwk.clone()).collect::<Vec<_>>() })
            .to_string()
            .into_bytes(),
    })
}

/// Reads the key files of one algorithm, parsing only files not seen before.
fn read_key_dir(
    dir: &Path,
    algorithm: Algorithm,
    parsed: &Mutex<HashMap<PathBuf, Arc<KeyMaterial>>>,
) -> Result<Vec<Arc<KeyMaterial>>, ConfigError> {
    let suffix = format!("{}.pem", algorithm_name(algorithm).to_ascii_lowercase());
    let entries = fs::read_dir(dir).map_err(|e| key_error(format!("cannot read {}: {e}", dir.display())))?;
    let mut cache = parsed.lock().unwrap_or_else(|p| p.into_inner());
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| key_error(format!("cannot read {}: {e}", dir.display())))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let activate_at = if name == suffix {
            0
        } else {
            match name.strip_suffix(&suffix).and_then(|p| p.strip_suffix('.')).map(str::parse::<i64>) {
                Some(Ok(at)) => at,
                _ => continue,
            }
        };
        if let Some(key) = cache.get(&path) {
            keys.push(key.clone());
            continue;
        }
        let key = Arc::new(parse_key_file(&path, algorithm, activate_at)?);
        cache.insert(path, key.clone());
        keys.push(key);
    }
    cache.retain(|path, _| path.exists());
    Ok(keys)
}

fn parse_key_file(file: &Path, algorithm: Algorithm, activate_at: i64) -> Result<KeyMaterial, ConfigError> {
    let bytes = read_private_file(file)?.ok_or_else(|| key_error(format!("{} vanished", file.display())))?;
    let pem =
        String::from_utf8(bytes).map_err(|_| key_error(format!("{} is not PEM text", file.display())))?;
    let unusable = |e: String| key_error(format!("cannot use the key in {}: {e}", file.display()));
    let public = PublicKey::from_private_pem(algorithm, &pem).map_err(unusable)?;
    let encoding = match algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .map_err(|e| unusable(e.to_string()))?;
    let kid = public.thumbprint();
    let decoding = public.decoding_key().map_err(|e| unusable(e.to_string()))?;
    let created_at = fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Ok(KeyMaterial {
        jwk: public.jwk(&kid, algorithm),
        kid,
        algorithm,
        activate_at,
        created_at,
        file: file.to_owned(),
        encoding,
        verification: VerificationKey { algorithm, key: decoding },
    })
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The public half of a signing key, as base64url JWK members.
enum PublicKey {
    Ed25519 { x: String },
    P256 { x: String, y: String },
    Rsa { n: String, e: String },
}

impl PublicKey {
    fn from_private_pem(algorithm: Algorithm, pem: &str) -> Result<Self, String> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match algorithm {
            Algorithm::EdDSA => {
                let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                Ok(Self::Ed25519 { x: b64(key.verifying_key().as_bytes()) })
            }
            Algorithm::ES256 => {
                let key = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                let point =
                    p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
                let (x, y) = point.x().zip(point.y()).ok_or("the EC public key is the identity")?;
                Ok(Self::P256 { x: b64(x), y: b64(y) })
            }
            _ => {
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                Ok(Self::Rsa { n: b64(&key.n().to_bytes_be()), e: b64(&key.e().to_bytes_be()) })
            }
        }
    }

    /// RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    fn thumbprint(&self) -> String {
        let canonical = match self {
            Self::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            Self::P256 { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            Self::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    fn decoding_key(&self) -> jsonwebtoken::errors::Result<DecodingKey> {
        match self {
            Self::Ed25519 { x } => DecodingKey::from_ed_components(x),
            Self::P256 { x, y } => DecodingKey::from_ec_components(x, y),
            Self::Rsa { n, e } => DecodingKey::from_rsa_components(n, e),
        }
    }

    fn jwk(&self, kid: &str, algorithm: Algorithm) -> Value {
        let mut jwk = match self {
            Self::Ed25519 { x } => json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
            Self::P256 { x, y } => json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }),
            Self::Rsa { n, e } => json!({ "kty": "RSA", "n": n, "e": e }),
        };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(algorithm_name(algorithm));
        jwk["use"] = json!("sig");
        jwk
    }
}

fn generate_pem(algorithm: Algorithm) -> Result<Vec<u8>, ConfigError> {
    let pem = match algorithm {
        Algorithm::EdDSA => ed25519_dalek::SigningKey::generate(&mut OsRng).to_pkcs8_pem(LineEnding::LF),
        Algorithm::ES256 => p256::SecretKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF),
        _ => rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)
            .map_err(|e| key_error(format!("cannot generate an RSA key: {e}")))?
            .to_pkcs8_pem(LineEnding::LF),
    }
    .map_err(|e| key_error(format!("cannot encode the new key: {e}")))?;
    Ok(pem.as_bytes().to_vec())
}

fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    match fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(key_error(format!("cannot create {}: {e}", dir.display()))),
    }
}

/// Reads `path`, or creates it with `generate` if it does not exist. Creation writes a
/// private temporary file and hard-links it into place, which fails if another process
/// got there first; the loser then reads the winner's file.
fn load_or_create_file(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>, ConfigError>,
) -> Result<Vec<u8>, ConfigError> {
    if let Some(contents) = read_private_file(path)? {
        return Ok(contents);
    }
    let contents = generate()?;
    let tmp = temporary_path(path);
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(&contents)?;
        file.sync_all()
    };
    let published = write().and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match published {
        Ok(()) => {
            log::info!("created {}", path.display());
            Ok(contents)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            read_private_file(path)?.ok_or_else(|| key_error(format!("{} vanished", path.display())))
        }
        Err(e) => Err(key_error(format!("cannot write {}: {e}", path.display()))),
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), OsRng.next_u64()))
}

/// Reads a secret file, first narrowing its permissions to the owner if they are wider.
fn read_private_file(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(key_error(format!("cannot read {}: {e}", path.display()))),
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        log::warn!("{} was readable by others; setting its mode to 0600", path.display());
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| key_error(format!("cannot restrict {}: {e}", path.display())))?;
    }
    fs::read(path).map(Some).map_err(|e| key_error(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn jwks(store: &KeyStore) -> Value {
        serde_json::from_slice(&store.ring().jwks).unwrap()
    }

    #[test]
    fn keys_persist_with_private_modes_and_a_stable_thumbprint_kid() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let dir = tempfile::tempdir().unwrap();
            let keys_dir = dir.path().join("keys");
            let first = KeyStore::open(&settings(&keys_dir, algorithm)).unwrap();
            let again = KeyStore::open(&settings(&keys_dir, algorithm)).unwrap();
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
        let store = KeyStore::open(&settings(dir.path(), Algorithm::EdDSA)).unwrap();
        let first = store.ring().signing.kid.clone();
        for at in [1_000, 2_000] {
            fs::write(dir.path().join(format!("{at}.eddsa.pem")), generate_pem(Algorithm::EdDSA).unwrap())
                .unwrap();
            fs::set_permissions(
                dir.path().join(format!("{at}.eddsa.pem")),
                fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        // Retirement comes access TTL + leeway (930 s) after the successor activates.
        let states = |now| -> Vec<KeyState> {
            timeline(&store.source, now).unwrap().into_iter().map(|(_, state)| state).collect()
        };
        use KeyState::*;
        assert_eq!(states(999), [Active, Pending, Pending]);
        assert_eq!(states(1_000), [Verifying, Active, Pending]);
        assert_eq!(states(1_930), [Verifying, Active, Pending]);
        assert_eq!(states(1_931), [Retired, Active, Pending]);
        assert_eq!(states(2_000), [Retired, Verifying, Active]);
        assert_eq!(states(2_931), [Retired, Retired, Active]);
        assert_eq!(timeline(&store.source, 999).unwrap()[0].0.kid, first);
    }

    #[test]
    fn rotation_publishes_ahead_and_switches_signing_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&settings(dir.path(), Algorithm::ES256)).unwrap();
        let old = store.ring().signing.kid.clone();
        let new = store.rotate(300).unwrap();
        assert_eq!(new.state, KeyState::Pending);
        assert_ne!(new.kid, old);
        let ring = store.ring();
        assert_eq!(ring.signing.kid, old, "the new key does not sign before it activates");
        let published: Vec<String> = jwks(&store)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(published, [old.clone(), new.kid.clone()]);
        assert!(ring.verifying.contains_key(&new.kid));
        let states: Vec<KeyState> = store.list().unwrap().iter().map(|k| k.state).collect();
        assert_eq!(states, [KeyState::Active, KeyState::Pending]);
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // The RSA key of RFC 7638 §3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = PublicKey::Rsa { n: n.into(), e: "AQAB".into() };
        assert_eq!(key.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn a_corrupt_key_file_stops_start_up_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("eddsa.pem"), "not a key").unwrap();
        let err = KeyStore::open(&settings(dir.path(), Algorithm::EdDSA)).err().unwrap();
        assert_eq!(err.variable, "JWT_KEYS_DIR");
    }
}
