//! Signing keys: generated and persisted on first start, published as a JWKS.
//!
//! Asymmetric keys live in `JWT_KEYS_DIR` as PKCS#8 PEM files, one per algorithm, mode 0600.
//! Instances that start together on an empty directory agree on one key because each file
//! is published by an exclusive hard link: the first writer wins, the others read its key.

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

use crate::config::{ConfigError, JwtSettings};

const RSA_BITS: usize = 2048;
const REFRESH_SECRET_FILE: &str = "refresh-secret";

/// The key that signs new access tokens.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
}

/// Everything derived from the key material at start-up.
pub struct KeySet {
    pub signing: SigningKey,
    /// Keys that may verify a token, by `kid`; tokens are never verified by any other key.
    pub verifying: HashMap<String, DecodingKey>,
    /// Public keys only; empty under HS256.
    pub jwks: Value,
    /// Keys the deterministic refresh-token successor (HMAC of the old token).
    pub refresh_secret: SecretSlice<u8>,
}

fn key_error(problem: String) -> ConfigError {
    ConfigError {
        variable: "JWT_KEYS_DIR",
        problem,
    }
}

impl KeySet {
    pub fn load_or_create(settings: &JwtSettings) -> Result<Self, ConfigError> {
        match settings.algorithm {
            Algorithm::HS256 => Ok(Self::from_secret(settings)),
            algorithm => Self::from_dir(&settings.keys_dir, algorithm),
        }
    }

    fn from_secret(settings: &JwtSettings) -> Self {
        let secret = settings
            .secret
            .as_ref()
            .expect("validated by Settings")
            .expose_secret()
            .as_bytes();
        // Both values are derived one-way from the secret, so neither reveals it and every
        // instance sharing the secret derives the same ones.
        let kid = URL_SAFE_NO_PAD.encode(&hmac(secret, b"tollgate hs256 key id")[..16]);
        let refresh_secret = hmac(secret, b"tollgate refresh successor");
        let signing = SigningKey {
            kid: kid.clone(),
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
        };
        Self {
            signing,
            verifying: HashMap::from([(kid, DecodingKey::from_secret(secret))]),
            jwks: json!({ "keys": [] }),
            refresh_secret: SecretSlice::from(refresh_secret),
        }
    }

    fn from_dir(dir: &Path, algorithm: Algorithm) -> Result<Self, ConfigError> {
        create_private_dir(dir)?;
        let file = dir.join(format!(
            "{}.pem",
            algorithm_name(algorithm).to_ascii_lowercase()
        ));
        let pem = load_or_create_file(&file, || generate_pem(algorithm))?;
        let pem = String::from_utf8(pem)
            .map_err(|_| key_error(format!("{} is not PEM text", file.display())))?;
        let public = PublicKey::from_private_pem(algorithm, &pem)
            .map_err(|e| key_error(format!("cannot read the key in {}: {e}", file.display())))?;
        let encoding = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .map_err(|e| key_error(format!("cannot use the key in {}: {e}", file.display())))?;
        let kid = public.thumbprint();
        let decoding = public
            .decoding_key()
            .map_err(|e| key_error(format!("cannot use the key in {}: {e}", file.display())))?;
        let refresh_secret = load_or_create_file(&dir.join(REFRESH_SECRET_FILE), || {
            let mut bytes = vec![0u8; 32];
            OsRng.fill_bytes(&mut bytes);
            Ok(bytes)
        })?;
        if refresh_secret.len() < 32 {
            return Err(key_error(format!(
                "{REFRESH_SECRET_FILE} is shorter than 32 bytes"
            )));
        }
        Ok(Self {
            jwks: json!({ "keys": [public.jwk(&kid, algorithm)] }),
            signing: SigningKey {
                kid: kid.clone(),
                algorithm,
                encoding,
            },
            verifying: HashMap::from([(kid, decoding)]),
            refresh_secret: SecretSlice::from(refresh_secret),
        })
    }
}

pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        Algorithm::HS256 => "HS256",
        _ => "unsupported",
    }
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
                let key =
                    ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                Ok(Self::Ed25519 {
                    x: b64(key.verifying_key().as_bytes()),
                })
            }
            Algorithm::ES256 => {
                let key = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &key.public_key(),
                    false,
                );
                let (x, y) = point
                    .x()
                    .zip(point.y())
                    .ok_or("the EC public key is the identity")?;
                Ok(Self::P256 {
                    x: b64(x),
                    y: b64(y),
                })
            }
            _ => {
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                Ok(Self::Rsa {
                    n: b64(&key.n().to_bytes_be()),
                    e: b64(&key.e().to_bytes_be()),
                })
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
        Algorithm::EdDSA => {
            ed25519_dalek::SigningKey::generate(&mut OsRng).to_pkcs8_pem(LineEnding::LF)
        }
        Algorithm::ES256 => p256::SecretKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF),
        _ => rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)
            .map_err(|e| key_error(format!("cannot generate an RSA key: {e}")))?
            .to_pkcs8_pem(LineEnding::LF),
    }
    .map_err(|e| key_error(format!("cannot encode the new key: {e}")))?;
    Ok(pem.as_bytes().to_vec())
}

fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
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
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
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
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_private_file(path)?
            .ok_or_else(|| key_error(format!("{} vanished", path.display()))),
        Err(e) => Err(key_error(format!("cannot write {}: {e}", path.display()))),
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        OsRng.next_u64()
    ))
}

/// Reads a secret file, first narrowing its permissions to the owner if they are wider.
fn read_private_file(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(key_error(format!("cannot read {}: {e}", path.display()))),
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "{} was readable by others; setting its mode to 0600",
            path.display()
        );
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| key_error(format!("cannot restrict {}: {e}", path.display())))?;
    }
    fs::read(path)
        .map(Some)
        .map_err(|e| key_error(format!("cannot read {}: {e}", path.display())))
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
        }
    }

    #[test]
    fn keys_persist_with_private_modes_and_a_stable_thumbprint_kid() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let dir = tempfile::tempdir().unwrap();
            let keys_dir = dir.path().join("keys");
            let first = KeySet::load_or_create(&settings(&keys_dir, algorithm)).unwrap();
            let again = KeySet::load_or_create(&settings(&keys_dir, algorithm)).unwrap();
            assert_eq!(first.signing.kid, again.signing.kid);
            assert_eq!(
                first.refresh_secret.expose_secret(),
                again.refresh_secret.expose_secret()
            );
            assert_eq!(first.signing.kid.len(), 43, "base64url of a SHA-256");
            assert_eq!(first.jwks["keys"][0]["kid"], first.signing.kid);
            for entry in fs::read_dir(&keys_dir).unwrap() {
                let mode = entry.unwrap().metadata().unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            assert_eq!(
                fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // The RSA key of RFC 7638 §3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = PublicKey::Rsa {
            n: n.into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_corrupt_key_file_stops_start_up_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("eddsa.pem"), "not a key").unwrap();
        let err = KeySet::load_or_create(&settings(dir.path(), Algorithm::EdDSA))
            .err()
            .unwrap();
        assert_eq!(err.variable, "JWT_KEYS_DIR");
    }
}
