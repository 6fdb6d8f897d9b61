//! Access tokens: signing and the one verifier every protected route goes through.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{KeySet, SigningKey, algorithm_name};
use crate::config::JwtSettings;

/// The `typ` header of every access token (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Longer bearer values are rejected before any parsing; real tokens are well under 1 KiB.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub username: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// The only header members a tollgate token has. Anything else (`jku`, `jwk`, `x5u`,
/// `crit`, `cty`…) is refused rather than ignored, and so are duplicate members.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    alg: String,
    typ: String,
    kid: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unexpected header")]
    Header,
    #[error("unknown key id")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Rejected(String),
}

pub struct AccessTokens {
    signing: SigningKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    leeway_secs: i64,
}

impl AccessTokens {
    pub fn new(keys: &KeySet, settings: &JwtSettings) -> Self {
        let algorithm = keys.signing.algorithm;
        // jsonwebtoken's defaults are not ours: pin everything explicitly.
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            signing: keys.signing.clone(),
            verifying: keys.verifying.clone(),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl_secs: settings.access_token_ttl_secs as i64,
            leeway_secs: settings.leeway_secs as i64,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: Uuid, username: &str, now: i64) -> String {
        let claims = AccessClaims {
            sub: user_id,
            username: username.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(self.signing.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.signing.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing.encoding)
            .expect("signing with a key loaded at start-up cannot fail")
    }

    /// Verifies a bearer value: the algorithm is the configured one whatever the header
    /// says, the key is found only by `kid` among our own, and every claim must be present
    /// with its JSON type.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Err(TokenError::Malformed);
        }
        let header_segment = token.split('.').next().unwrap_or_default();
        let header_json = URL_SAFE_NO_PAD
            .decode(header_segment)
            .map_err(|_| TokenError::Malformed)?;
        let header: StrictHeader =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Header)?;
        if header.alg != algorithm_name(self.signing.algorithm) || header.typ != ACCESS_TOKEN_TYPE {
            return Err(TokenError::Header);
        }
        let key = self
            .verifying
            .get(&header.kid)
            .ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|e| TokenError::Rejected(e.to_string()))?
            .claims;
        if claims.iat > chrono::Utc::now().timestamp() + self.leeway_secs {
            return Err(TokenError::Rejected("issued in the future".into()));
        }
        Ok(claims)
    }
}
