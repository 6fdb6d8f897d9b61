//! One key file as the key ring needs it: signing key, public JWK, RFC 7638 `kid`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use pkcs8::DecodePrivateKey;
use tollgate_verify::VerificationKey;

use super::{KeyStoreError, Signer};

/// A key file read and parsed once.
pub(super) struct KeyMaterial {
    pub kid: String,
    pub algorithm: Algorithm,
    pub activate_at: i64,
    pub created_at: i64,
    pub file: PathBuf,
    pub signer: Arc<Signer>,
    pub verification: VerificationKey,
    /// The public key as published: `kid`, `alg` and `use: sig` set.
    pub jwk: Jwk,
}

impl KeyMaterial {
    pub fn parse(
        file: &Path,
        pem: &[u8],
        algorithm: Algorithm,
        activate_at: i64,
    ) -> Result<Self, KeyStoreError> {
        let unusable = |problem: String| KeyStoreError::BadKey { file: file.to_owned(), problem };
        let encoding = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .map_err(|e| unusable(e.to_string()))?;
        let jwk = public_jwk(algorithm, pem, &encoding).map_err(unusable)?;
        let signer = Arc::new(Signer::new(algorithm, &encoding).map_err(unusable)?);
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| unusable(e.to_string()))?;
        let created_at = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        Ok(Self {
            kid,
            algorithm,
            activate_at,
            created_at,
            file: file.to_owned(),
            signer,
            verification: VerificationKey { algorithm, key: decoding },
            jwk,
        })
    }
}

/// The public half of a private key, with its thumbprint as `kid`.
fn public_jwk(algorithm: Algorithm, pem: &[u8], encoding: &EncodingKey) -> Result<Jwk, String> {
    let mut jwk = match algorithm {
        // jsonwebtoken derives Ed25519 public keys only from PKCS#8 v1 files, and ours
        // are v2 (they carry the public key), so the public half comes from the key itself.
        Algorithm::EdDSA => {
            let pem = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_owned())?;
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
            let public = DecodingKey::from_ed_der(key.verifying_key().as_bytes());
            Jwk::from_decoding_key(&public, Some(algorithm))
        }
        _ => Jwk::from_encoding_key(encoding, algorithm),
    }
    .map_err(|e| e.to_string())?;
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_id = Some(thumbprint(&jwk)?);
    Ok(jwk)
}

/// RFC 7638 SHA-256 thumbprint: the `kid` of every key in the directory.
fn thumbprint(jwk: &Jwk) -> Result<String, String> {
    jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::{AlgorithmParameters, RSAKeyParameters, RSAKeyType};

    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // The RSA key of RFC 7638 §3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = Jwk {
            common: Default::default(),
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: n.into(),
                e: "AQAB".into(),
            }),
        };
        assert_eq!(thumbprint(&key).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
