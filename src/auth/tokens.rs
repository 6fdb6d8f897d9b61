//! Access tokens: signing, and verification through `tollgate_verify::verify_with`, the
//! same routine other services use.

use std::sync::Arc;

use chrono::NaiveDateTime;
use rand::RngCore;
use rand::rngs::OsRng;
pub use tollgate_verify::{ACCESS_TOKEN_TYPE, Claims as AccessClaims, Error as TokenError, MAX_TOKEN_LEN};
use tollgate_verify::{Rules, VerifiedCache};
use uuid::Uuid;

use super::keys::KeyStore;
use crate::clock::Clock;
use crate::config::JwtSettings;
use crate::db::models::UnixMillis;

/// Memory for tokens remembered as verified: an EdDSA token's entry (a username and two
/// roles) weighs ~820 bytes, so one token for each of ~40,000 active users fits (a test
/// holds 30,000 of EdDSA's size); an RS256 entry weighs ~1,080 bytes, ~31,000 of them.
/// A bound, not an allocation.
pub const VERIFIED_CACHE_BYTES: u64 = 32 << 20;

/// How a session was authenticated: what its tokens carry as `amr` (RFC 8176), and what
/// the session keeps for its refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amr {
    Password,
    /// A password and a TOTP or recovery code.
    PasswordAndOtp,
    /// A passkey whose authenticator verified the user (a PIN, a fingerprint, a face).
    Passkey,
}

impl Amr {
    /// Every kind stronger than a password alone.
    const STRONGER: [Amr; 2] = [Amr::PasswordAndOtp, Amr::Passkey];

    /// The claim, sorted.
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Amr::Password => &["pwd"],
            Amr::PasswordAndOtp => &["mfa", "otp", "pwd"],
            Amr::Passkey => &["hwk", "mfa", "user"],
        }
    }

    /// As a session stores it: `None` for a password alone, the most common.
    pub fn stored(self) -> Option<String> {
        (self != Amr::Password).then(|| self.methods().join(","))
    }

    /// A token's `amr` claim; anything else counts as the weakest, a password.
    pub fn of_claims(methods: &[String]) -> Self {
        Self::STRONGER
            .into_iter()
            .find(|amr| amr.methods().iter().eq(methods.iter()))
            .unwrap_or(Amr::Password)
    }

    /// A session's, as stored; anything unknown counts as the weakest, a password.
    pub fn of_stored(stored: Option<&str>) -> Self {
        let Some(stored) = stored else { return Amr::Password };
        Self::STRONGER
            .into_iter()
            .find(|amr| amr.methods().iter().copied().eq(stored.split(',')))
            .unwrap_or(Amr::Password)
    }
}

/// The session a token is issued to, as the token carries it: `sid` and `amr`.
#[derive(Debug, Clone, Copy)]
pub struct TokenSession {
    pub id: Option<Uuid>,
    pub amr: Amr,
}

pub struct AccessTokens {
    keys: Arc<KeyStore>,
    clock: Clock,
    rules: Rules,
    verified: VerifiedCache,
    ttl_secs: i64,
    max_token_age_secs: i64,
}

/// How long after its issue a token can still be accepted anywhere: its lifetime and the
/// leeway for clock skew.
pub fn max_token_age_secs(settings: &JwtSettings) -> i64 {
    settings.access_token_ttl_secs as i64 + settings.leeway_secs as i64
}

impl AccessTokens {
    pub fn new(keys: Arc<KeyStore>, settings: &JwtSettings, clock: Clock) -> Self {
        Self {
            keys,
            clock,
            rules: Rules::new(&settings.issuer, &settings.audience, settings.leeway_secs),
            verified: VerifiedCache::new(VERIFIED_CACHE_BYTES),
            ttl_secs: settings.access_token_ttl_secs as i64,
            max_token_age_secs: max_token_age_secs(settings),
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// See [`max_token_age_secs`].
    pub fn max_token_age_secs(&self) -> i64 {
        self.max_token_age_secs
    }

    /// Signs a token for the user, issued at `now` unless the user's revocation time
    /// `tokens_valid_after` is later (a revocation in this very millisecond, which set it a
    /// millisecond ahead): then at that time, so that the token is not taken for one issued
    /// before the revocation. That exact time is the timestamp of the `jti`, a UUIDv7, and
    /// revocations are checked against it (`Claims::issued_at_ms`); `iat` and `nbf` are
    /// `now` in whole seconds, so never ahead of the clock. `roles` are sorted (as
    /// `Account` holds them).
    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        roles: &[String],
        now: NaiveDateTime,
        tokens_valid_after: Option<UnixMillis>,
        session: TokenSession,
    ) -> String {
        let issued = UnixMillis::of(now).max(tokens_valid_after.unwrap_or(UnixMillis(i64::MIN)));
        let iat = now.and_utc().timestamp();
        let claims = AccessClaims {
            sub: user_id,
            username: username.to_owned(),
            roles: roles.to_vec(),
            iss: self.rules.issuer().to_owned(),
            aud: self.rules.audience().to_owned(),
            iat,
            nbf: iat,
            exp: iat + self.ttl_secs,
            jti: issue_id(issued),
            sid: session.id,
            amr: session.amr.methods().iter().map(|method| (*method).to_owned()).collect(),
        };
        self.keys.ring().signing.sign(ACCESS_TOKEN_TYPE, &claims)
    }

    /// Verifies a bearer value against the keys in force (see `tollgate_verify`).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let ring = self.keys.ring();
        self.verified.verify(token, &self.rules, self.clock.unix(), |kid| ring.verifying.get(kid))
    }
}

/// A token id that says when it was issued: a UUIDv7 (RFC 9562) with the issue time as its
/// timestamp, and 74 random bits.
fn issue_id(issued: UnixMillis) -> Uuid {
    let mut random = [0u8; 10];
    OsRng.fill_bytes(&mut random);
    let millis = u64::try_from(issued.0).unwrap_or_default();
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::Algorithm;
    use secrecy::SecretString;

    use super::*;
    use crate::clock::ManualClock;

    fn hs256_settings() -> JwtSettings {
        JwtSettings {
            algorithm: Algorithm::HS256,
            secret: Some(SecretString::from("a test secret of at least thirty-two bytes")),
            keys_dir: "unused".into(),
            issuer: "tollgate".into(),
            audience: "tollgate".into(),
            leeway_secs: 30,
            access_token_ttl_secs: 900,
            jwks_max_age_secs: 300,
            key_publish_ahead_secs: 300,
        }
    }

    fn access_tokens(settings: &JwtSettings, manual: &ManualClock) -> AccessTokens {
        let keys = Arc::new(KeyStore::open(settings, manual.clock()).unwrap());
        AccessTokens::new(keys, settings, manual.clock())
    }

    #[test]
    fn the_injected_clock_decides_expiry() {
        let settings = hs256_settings();
        let manual = ManualClock::new();
        let tokens = access_tokens(&settings, &manual);
        let token = tokens.issue(
            Uuid::new_v4(),
            "alice",
            &[],
            manual.now().naive_utc(),
            None,
            TokenSession { id: None, amr: Amr::Password },
        );
        manual.advance(Duration::from_secs(930));
        assert!(tokens.verify(&token).is_ok(), "within TTL + leeway");
        manual.advance(Duration::from_secs(1));
        assert!(matches!(tokens.verify(&token), Err(TokenError::Rejected(_))), "expired, though seen before");
    }

    #[test]
    fn one_token_for_each_of_thirty_thousand_active_users_stays_verified() {
        let manual = ManualClock::new();
        let tokens = access_tokens(&hs256_settings(), &manual);
        let roles = ["editor".to_owned(), "support".to_owned()];
        // An HS256 signature is 43 characters shorter than an EdDSA one: the longer name
        // makes up for it, so that these weigh what EdDSA tokens do.
        let issued: Vec<String> = (0..30_000)
            .map(|i| {
                let name = format!("user_{i}_with_a_name_long_enough_for_an_eddsa_token_size");
                tokens.issue(
                    Uuid::new_v4(),
                    &name,
                    &roles,
                    manual.now().naive_utc(),
                    None,
                    TokenSession { id: None, amr: Amr::Password },
                )
            })
            .collect();
        for token in &issued {
            tokens.verify(token).unwrap();
        }
        assert_eq!(tokens.verified.len(), issued.len());
    }
}
