//! Keys derived from secrets rather than read from key files: the HS256 signing key, and
//! the refresh secret that keys each refresh token's successor.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;
use tollgate_verify::VerificationKey;

use super::store::load_or_create_file;
use super::{KeyStoreError, Signer, SigningKey};

const REFRESH_SECRET_FILE: &str = "refresh-secret";
const REFRESH_SECRET_BYTES: usize = 32;
const MFA_KEY_FILE: &str = "mfa-key";
const MFA_KEY_BYTES: usize = 32;

/// The HS256 key pair and refresh secret of `JWT_SECRET`. Both are derived one-way from
/// the secret, so neither reveals it and every instance sharing the secret derives the
/// same ones.
pub(super) fn from_jwt_secret(secret: &SecretString) -> (SigningKey, VerificationKey, SecretSlice<u8>) {
    let secret = secret.expose_secret().as_bytes();
    let kid = URL_SAFE_NO_PAD.encode(&hmac(secret, b"tollgate hs256 key id")[..16]);
    let signer = Signer::new(Algorithm::HS256, &EncodingKey::from_secret(secret))
        .expect("HMAC takes keys of any length");
    let signing = SigningKey { kid, algorithm: Algorithm::HS256, signer: Arc::new(signer) };
    let verification = VerificationKey { algorithm: Algorithm::HS256, key: DecodingKey::from_secret(secret) };
    (signing, verification, SecretSlice::from(hmac(secret, b"tollgate refresh successor")))
}

/// The refresh secret of a key directory, created on first start.
pub(super) fn refresh_secret_file(dir: &Path) -> Result<SecretSlice<u8>, KeyStoreError> {
    let file = dir.join(REFRESH_SECRET_FILE);
    let secret = load_or_create_file(&file, || {
        let mut bytes = vec![0u8; REFRESH_SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Ok(bytes)
    })?;
    if secret.len() < REFRESH_SECRET_BYTES {
        return Err(KeyStoreError::BadKey {
            file,
            problem: format!("shorter than {REFRESH_SECRET_BYTES} bytes"),
        });
    }
    Ok(SecretSlice::from(secret))
}

/// The key that encrypts TOTP secrets under HS256: derived one-way from `JWT_SECRET`, as
/// the refresh secret is.
pub(super) fn mfa_key_of_jwt_secret(secret: &SecretString) -> SecretSlice<u8> {
    SecretSlice::from(hmac(secret.expose_secret().as_bytes(), b"tollgate mfa secrets"))
}

/// The key that encrypts TOTP secrets, from the key directory; made when missing only if
/// `may_create` (no secret is encrypted under a key that would be lost).
pub(super) fn mfa_key_file(dir: &Path, may_create: bool) -> Result<SecretSlice<u8>, KeyStoreError> {
    let file = dir.join(MFA_KEY_FILE);
    let key = load_or_create_file(&file, || {
        if !may_create {
            return Err(KeyStoreError::BadKey {
                file: file.clone(),
                problem: "missing, yet accounts have a second factor that only it decrypts: restore \
                          it from a backup (a new key would lock every one of them out)"
                    .into(),
            });
        }
        let mut bytes = vec![0u8; MFA_KEY_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Ok(bytes)
    })?;
    if key.len() != MFA_KEY_BYTES {
        return Err(KeyStoreError::BadKey { file, problem: format!("not {MFA_KEY_BYTES} bytes") });
    }
    Ok(SecretSlice::from(key))
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}
