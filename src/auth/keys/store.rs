//! The key directory: private PEM files, created without races and read once each.

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jsonwebtoken::Algorithm;
use pkcs8::{EncodePrivateKey, LineEnding};
use rand::RngCore;
use rand::rngs::OsRng;
use tollgate_verify::algorithm_name;

use super::KeyStoreError;
use super::jwk::KeyMaterial;

const RSA_BITS: usize = 2048;

/// `JWT_KEYS_DIR` for one algorithm, with the keys already parsed by path.
pub(super) struct KeyDir {
    pub dir: PathBuf,
    pub algorithm: Algorithm,
    parsed: Mutex<HashMap<PathBuf, Arc<KeyMaterial>>>,
}

impl KeyDir {
    /// Creates the directory (mode 0700) and the algorithm's first key if missing.
    pub fn open(dir: PathBuf, algorithm: Algorithm) -> Result<Self, KeyStoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| KeyStoreError::io("cannot create", &dir, e))?;
        let key_dir = Self { dir, algorithm, parsed: Mutex::default() };
        key_dir.create_key(0)?;
        Ok(key_dir)
    }

    /// The file of the key that signs from `activate_at`; 0 names the first key.
    fn key_file(&self, activate_at: i64) -> PathBuf {
        let name = algorithm_name(self.algorithm).to_ascii_lowercase();
        match activate_at {
            0 => self.dir.join(format!("{name}.pem")),
            at => self.dir.join(format!("{at}.{name}.pem")),
        }
    }

    /// Writes a new key signing from `activate_at`, unless that file exists already.
    pub fn create_key(&self, activate_at: i64) -> Result<PathBuf, KeyStoreError> {
        let file = self.key_file(activate_at);
        load_or_create_file(&file, || generate_pem(self.algorithm))?;
        Ok(file)
    }

    /// Reads the key files of the algorithm, parsing only files not seen before.
    pub fn keys(&self) -> Result<Vec<Arc<KeyMaterial>>, KeyStoreError> {
        let suffix = format!("{}.pem", algorithm_name(self.algorithm).to_ascii_lowercase());
        let unreadable = |e| KeyStoreError::io("cannot read", &self.dir, e);
        let entries = fs::read_dir(&self.dir).map_err(unreadable)?;
        let mut cache = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry.map_err(unreadable)?.path();
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
            let pem = read_private_file(&path)?.ok_or_else(|| KeyStoreError::vanished(&path))?;
            let key = Arc::new(KeyMaterial::parse(&path, &pem, self.algorithm, activate_at)?);
            cache.insert(path, key.clone());
            keys.push(key);
        }
        cache.retain(|path, _| path.exists());
        Ok(keys)
    }
}

pub(super) fn generate_pem(algorithm: Algorithm) -> Result<Vec<u8>, KeyStoreError> {
    let pem = match algorithm {
        Algorithm::EdDSA => ed25519_dalek::SigningKey::generate(&mut OsRng).to_pkcs8_pem(LineEnding::LF),
        Algorithm::ES256 => p256::SecretKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF),
        _ => rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)
            .map_err(|e| KeyStoreError::Generate(e.to_string()))?
            .to_pkcs8_pem(LineEnding::LF),
    }
    .map_err(|e| KeyStoreError::Generate(e.to_string()))?;
    Ok(pem.as_bytes().to_vec())
}

/// Reads `path`, or creates it with `generate` if it does not exist. Creation writes a
/// private temporary file and hard-links it into place, which fails if another process
/// got there first; the loser then reads the winner's file.
pub(super) fn load_or_create_file(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>, KeyStoreError>,
) -> Result<Vec<u8>, KeyStoreError> {
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
            read_private_file(path)?.ok_or_else(|| KeyStoreError::vanished(path))
        }
        Err(e) => Err(KeyStoreError::io("cannot write", path, e)),
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), OsRng.next_u64()))
}

/// Reads a secret file, first narrowing its permissions to the owner if they are wider.
fn read_private_file(path: &Path) -> Result<Option<Vec<u8>>, KeyStoreError> {
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyStoreError::io("cannot read", path, e)),
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        log::warn!("{} was readable by others; setting its mode to 0600", path.display());
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| KeyStoreError::io("cannot restrict", path, e))?;
    }
    fs::read(path).map(Some).map_err(|e| KeyStoreError::io("cannot read", path, e))
}

#[cfg(test)]
pub(super) fn write_key_for_test(dir: &Path, activate_at: i64, algorithm: Algorithm) {
    let key_dir = KeyDir { dir: dir.to_owned(), algorithm, parsed: Mutex::default() };
    key_dir.create_key(activate_at).unwrap();
}
