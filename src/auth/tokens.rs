//! Access tokens: signing, and verification through `tollgate_verify::verify_with`, the
//! same routine other services use.

use std::sync::Arc;

pub use tollgate_verify::{ACCESS_TOKEN_TYPE, Claims as AccessClaims, Error as TokenError, MAX_TOKEN_LEN};
use tollgate_verify::{Rules, VerifiedCache};
use uuid::Uuid;

use super::keys::KeyStore;
use crate::clock::Clock;
use crate::config::JwtSettings;

/// Memory for tokens remembered as verified: an EdDSA token's entry weighs ~560 bytes and
/// an RS256 one ~760, so one token for each of 30,000 active users fits, with room for
/// their refreshed successors.
pub const VERIFIED_CACHE_BYTES: u64 = 24 << 20;

pub struct AccessTokens {
    keys: Arc<KeyStore>,
    clock: Clock,
    rules: Rules,
    verified: VerifiedCache,
    ttl_secs: i64,
    leeway_secs: i64,
}

impl AccessTokens {
    pub fn new(keys: Arc<KeyStore>, settings: &JwtSettings, clock: Clock) -> Self {
        Self {
            keys,
            clock,
            rules: Rules::new(&settings.issuer, &settings.audience, settings.leeway_secs),
            verified: VerifiedCache::new(VERIFIED_CACHE_BYTES),
            ttl_secs: settings.access_token_ttl_secs as i64,
            leeway_secs: settings.leeway_secs as i64,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// How long after its issue a token can still be accepted anywhere.
    pub fn max_token_age_secs(&self) -> i64 {
        self.ttl_secs + self.leeway_secs
    }

    /// Signs a token for the user. `tokens_valid_after` is the user's revocation time: a
    /// token issued in the same second as a revocation carries it as `iat`, so that it is
    /// not mistaken for one issued before. `roles` are sorted (as `Account` holds them).
    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        roles: &[String],
        now: i64,
        tokens_valid_after: Option<i64>,
    ) -> String {
        let claims = AccessClaims {
            sub: user_id,
            username: username.to_owned(),
            roles: roles.to_vec(),
            iss: self.rules.issuer().to_owned(),
            aud: self.rules.audience().to_owned(),
            iat: now.max(tokens_valid_after.unwrap_or(now)),
            nbf: now,
            exp: now + self.ttl_secs,
            jti: Uuid::new_v4(),
        };
        self.keys.ring().signing.sign(ACCESS_TOKEN_TYPE, &claims)
    }

    /// Verifies a bearer value against the keys in force (see `tollgate_verify`).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let ring = self.keys.ring();
        self.verified.verify(token, &self.rules, self.clock.unix(), |kid| ring.verifying.get(kid))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::Algorithm;
    use secrecy::SecretString;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn the_injected_clock_decides_expiry() {
        let settings = JwtSettings {
            algorithm: Algorithm::HS256,
            secret: Some(SecretString::from("a test secret of at least thirty-two bytes")),
            keys_dir: "unused".into(),
            issuer: "tollgate".into(),
            audience: "tollgate".into(),
            leeway_secs: 30,
            access_token_ttl_secs: 900,
            jwks_max_age_secs: 300,
            key_publish_ahead_secs: 300,
        };
        let manual = ManualClock::new();
        let keys = Arc::new(KeyStore::open(&settings, manual.clock()).unwrap());
        let tokens = AccessTokens::new(keys, &settings, manual.clock());
        let token = tokens.issue(Uuid::new_v4(), "alice", &[], manual.clock().unix(), None);
        manual.advance(Duration::from_secs(930));
        assert!(tokens.verify(&token).is_ok(), "within TTL + leeway");
        manual.advance(Duration::from_secs(1));
        assert!(matches!(tokens.verify(&token), Err(TokenError::Rejected(_))), "expired, though seen before");
    }
}
