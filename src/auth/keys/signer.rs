//! Private keys parsed once, ready to sign. jsonwebtoken's `EncodingKey` keeps DER and
//! parses it again for every signature; for Ed25519 and P-256 that parse derives the
//! public key, which costs about as much as the signature itself.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
use serde::Serialize;
use sha2::Sha256;

use super::SigningKey;

/// A signing key as the signature algorithm uses it.
pub enum Signer {
    Hs256(Hmac<Sha256>),
    EdDsa(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
    Rs256(pkcs1v15::SigningKey<Sha256>),
}

impl Signer {
    /// Parses the DER an `EncodingKey` holds, as jsonwebtoken would for each signature.
    pub fn new(algorithm: Algorithm, key: &EncodingKey) -> Result<Self, String> {
        let der = key.as_bytes();
        Ok(match algorithm {
            Algorithm::HS256 => Self::Hs256(Hmac::new_from_slice(der).map_err(|e| e.to_string())?),
            Algorithm::EdDSA => {
                Self::EdDsa(ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|e| e.to_string())?)
            }
            Algorithm::ES256 => {
                Self::Es256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| e.to_string())?)
            }
            Algorithm::RS256 => Self::Rs256(pkcs1v15::SigningKey::new(
                rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|e| e.to_string())?,
            )),
            other => return Err(format!("{other:?} is not supported")),
        })
    }

    /// The JWS signature of `message` (header and payload, base64url, joined by a dot).
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Hs256(mac) => {
                let mut mac = mac.clone();
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Self::EdDsa(key) => key.sign(message).to_bytes().to_vec(),
            Self::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
            // Blinded, as jsonwebtoken signs: an unblinded RSA private operation leaks
            // the key through its timing.
            Self::Rs256(key) => key.sign_with_rng(&mut rand::thread_rng(), message).to_vec(),
        }
    }
}

impl SigningKey {
    /// A compact JWS of `claims` with this key's `alg` and `kid` and the given `typ`.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> String {
        let mut header = Header::new(self.algorithm);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        let message = format!("{}.{}", base64_json(&header), base64_json(claims));
        let signature = URL_SAFE_NO_PAD.encode(self.signer.sign(message.as_bytes()));
        format!("{message}.{signature}")
    }
}

fn base64_json(value: &impl Serialize) -> String {
    // Headers and claims are plain structs of strings and numbers, which always serialize.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("a header or claims serialize"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::auth::keys::store::generate_pem;

    fn encoding_key(algorithm: Algorithm) -> EncodingKey {
        if algorithm == Algorithm::HS256 {
            return EncodingKey::from_secret(b"a test secret of at least thirty-two bytes");
        }
        let pem = generate_pem(algorithm).unwrap();
        match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .unwrap()
    }

    #[test]
    fn kept_keys_sign_exactly_what_jsonwebtoken_signs() {
        let claims = json!({ "sub": "alice", "roles": ["admin"], "exp": 2_000_000_000 });
        // Every one of these signature schemes is deterministic.
        for algorithm in [Algorithm::HS256, Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let encoding = encoding_key(algorithm);
            let signer = Arc::new(Signer::new(algorithm, &encoding).unwrap());
            let key = SigningKey { kid: "k1".into(), algorithm, signer };
            let mut header = Header::new(algorithm);
            header.typ = Some("at+jwt".into());
            header.kid = Some("k1".into());
            let expected = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
            assert_eq!(key.sign("at+jwt", &claims), expected, "{algorithm:?}");
        }
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let ed = encoding_key(Algorithm::EdDSA);
        assert!(Signer::new(Algorithm::RS256, &ed).is_err());
        assert!(Signer::new(Algorithm::ES384, &ed).is_err());
    }
}
